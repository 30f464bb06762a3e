"""``python -m minires.explain OP``: an op's derivation, read from its docstring, then a gradcheck of it.

    python -m minires.explain --list      the ops it knows, one a line
    python -m minires.explain conv2d      Conv2d's docstring (and im2col's, col2im's), then the check
    python -m minires.explain conv2d --stride 2 --padding 0 --dilation 2 --groups 2
                                          the check of that configuration of the op
    python -m minires.explain gelu --approximate tanh --dtype float32 --seed 3

The check runs the op's backward on a small random float64 input and compares it, element by element,
with central differences (the same comparison as ``mr.gradcheck``, and the same random output weights
v, so that L = <v, op(x)>): it prints the largest absolute difference |analytic - numerical| per input
and that difference relative to the largest |numerical|, then ``mr.gradcheck``'s verdict. The exit
status is 0 when the backward passes, 1 when it does not, 2 for an unknown op (the message suggests the
close names: ``Conv2d`` -> ``conv2d``) or a configuration the op does not take.

The configuration: ``--stride``, ``--padding``, ``--dilation``, ``--groups`` and ``--kernel-size`` for conv2d
and the pools (each an int or a pair ``2,1``; avg_pool2d has no dilation, the pools no groups), and
``--approximate none|tanh`` for gelu (without it, each GELU form is checked on its own). The input shapes
are chosen to fit the configuration. ``--dtype float32`` also runs the backward in float32 and compares it
with the float64 one (finite differences are too coarse in float32: the float64 gradcheck stays the
reference). Every run prints what it checked: the call, the input and output shapes, the dtype, the seed.

The ops, their derivations and their samples come from the op registry, minires/ops/registry.py (the
only list of ops in minires): ``OP`` is an entry's name, an alias (``view``) or a public spelling
(``F.relu``, ``Tensor.__add__``). tests/test_guide.py checks that docs/backward.md quotes the docstrings
printed here verbatim.
"""

from __future__ import annotations

import argparse
import difflib
import inspect
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from .gradcheck import GradcheckError, gradcheck, gradient_pairs
from .ops import activation, conv, pool
from .ops.registry import REGISTRY, Entry, Registry
from .tensor import Tensor, tensor

# Tolerances of the verdict: those of the op table's gradcheck test (tests/test_op_gradcheck.py).
EPS, ATOL, RTOL = 1e-6, 1e-6, 1e-4


# ----- the derivation --------------------------------------------------------------------------------------
def source_path(obj: Any) -> str:
    """The file that defines ``obj``, relative to the repository root: ``minires/ops/conv.py``."""
    path = Path(inspect.getsourcefile(obj) or "?").resolve()
    root = Path(__file__).resolve().parent.parent
    return path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)


def source_name(obj: Any) -> str:
    """``Conv2d`` for a class or function, the file name for a module."""
    return Path(source_path(obj)).name if inspect.ismodule(obj) else obj.__qualname__


def docstring(obj: Any) -> str:
    """``obj``'s own docstring (not an inherited one), its indentation removed: what the guide quotes."""
    return inspect.cleandoc(obj.__doc__ or "")


def derivation(entry: Entry) -> str:
    """Every source's docstring, each under the line that names where it is."""
    parts = [f"--- {source_path(obj)}: {source_name(obj)}\n{docstring(obj)}" for obj in entry.sources]
    return "\n\n".join(parts)


# ----- the check -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class InputReport:
    """How the analytic gradient of one input compares with central differences."""

    position: int
    shape: tuple[int, ...]
    max_abs_diff: float  # max |analytic - numerical|
    max_numerical: float  # max |numerical|
    max_rel_diff: float  # max_abs_diff / max_numerical (0 when both are 0)


def compare(
    fn: Callable[..., Tensor], inputs: Sequence[Any], eps: float = EPS, seed: int = 0
) -> list[InputReport]:
    """The analytic gradient of L = <v, fn(*inputs)> against central differences, for every input that
    requires grad, as ``mr.gradcheck`` computes them (``gradient_pairs``), summarized per input."""
    reports = []
    for pos, t, analytic, numerical in gradient_pairs(fn, inputs, eps, seed):
        diff = float(np.abs(analytic - numerical).max(initial=0.0))
        scale = float(np.abs(numerical).max(initial=0.0))
        reports.append(InputReport(pos, tuple(t.shape), diff, scale, diff / scale if scale else 0.0))
    return reports


# ----- the configuration ------------------------------------------------------------------------------------
Pair = tuple[int, int]

# The options each configurable op takes; every other op takes none of them.
OPTIONS: dict[str, tuple[str, ...]] = {
    "conv2d": ("stride", "padding", "dilation", "groups", "kernel_size"),
    "max_pool2d": ("stride", "padding", "dilation", "kernel_size"),
    "avg_pool2d": ("stride", "padding", "kernel_size"),
    "gelu": ("approximate",),
}
# The registry's example configurations, where an option left out falls back to.
DEFAULTS: dict[str, dict[str, Any]] = {
    "conv2d": {"stride": (2, 2), "padding": (1, 1), "dilation": (1, 1), "groups": 1, "kernel_size": (3, 3)},
    "max_pool2d": {"stride": (2, 2), "padding": (1, 1), "dilation": (1, 1), "kernel_size": (3, 3)},
    "avg_pool2d": {"stride": (2, 2), "padding": (1, 1), "kernel_size": (3, 3)},
}


class ConfigError(ValueError):
    """The op does not take an option given, or rejects its value."""


@dataclass(frozen=True)
class Check:
    """One call to check: as a reader would write it, the function, its inputs and their names."""

    call: str
    fn: Callable[..., Tensor]
    inputs: list[Any]
    names: tuple[str, ...]


def _pair_arg(text: str) -> Pair:
    """``2`` -> (2, 2); ``2,1`` -> (2, 1)."""
    try:
        parts = [int(p) for p in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an int or a pair like 2,1, got {text!r}") from None
    if len(parts) == 1:
        parts *= 2
    if len(parts) != 2:
        raise argparse.ArgumentTypeError(f"expected an int or a pair like 2,1, got {text!r}")
    return parts[0], parts[1]


def _distinct(rng: np.random.Generator, *shape: int) -> Tensor:
    """Values 0.25 apart in random order: no ties, so max pooling stays away from its kink."""
    n = int(np.prod(shape))
    values = (rng.permutation(n) * 0.25 + rng.uniform(0.0, 0.05, n)).reshape(shape) - n / 8
    return tensor(values, requires_grad=True)


def _normal(rng: np.random.Generator, *shape: int, scale: float = 1.0) -> Tensor:
    return tensor(scale * rng.standard_normal(shape), requires_grad=True)


def _side(out: int, kernel: int, stride: int, padding: int, dilation: int) -> int:
    """An input size that gives at least ``out`` outputs (and at least 5)."""
    return max(5, (out - 1) * stride + dilation * (kernel - 1) + 1 - 2 * padding)


def _configured(name: str, config: dict[str, Any], rng: np.random.Generator) -> list[Check]:
    """The checks of op ``name`` in ``config`` (the options given, the example's for the others)."""
    if name == "gelu":
        forms = [config["approximate"]] if "approximate" in config else ["none", "tanh"]
        return [
            Check(
                f"F.gelu(x, approximate={form!r}), x (3, 4)",
                (lambda x, form=form: activation.gelu(x, approximate=form)),
                [_normal(rng, 3, 4, scale=2.0)],
                ("x",),
            )
            for form in forms
        ]
    c = {**DEFAULTS[name], **config}
    (KH, KW), (SH, SW), (PH, PW) = c["kernel_size"], c["stride"], c["padding"]
    DH, DW = c.get("dilation", (1, 1))
    H, W = _side(3, KH, SH, PH, DH), _side(3, KW, SW, PW, DW) + 1  # not square: a swapped axis shows
    if name == "conv2d":
        G = c["groups"]
        if G < 1:
            raise ConfigError(f"conv2d: groups must be a positive int, got {G}")
        C, OC = 2 * G, 3 * G
        args = f"stride={c['stride']}, padding={c['padding']}, dilation={c['dilation']}, groups={G}"
        return [
            Check(
                f"F.conv2d(x, w, b, {args})",
                lambda x, w, b: conv.conv2d(x, w, b, c["stride"], c["padding"], c["dilation"], G),
                [_normal(rng, 2, C, H, W), _normal(rng, OC, C // G, KH, KW, scale=0.3), _normal(rng, OC)],
                ("x", "w", "b"),
            )
        ]
    if name == "max_pool2d":
        args = f"{c['kernel_size']}, stride={c['stride']}, padding={c['padding']}, dilation={c['dilation']}"
        return [
            Check(
                f"F.max_pool2d(x, {args}), x of distinct values",
                lambda x: pool.max_pool2d(x, c["kernel_size"], c["stride"], c["padding"], c["dilation"]),
                [_distinct(rng, 2, 2, H, W)],
                ("x",),
            )
        ]
    args = f"{c['kernel_size']}, stride={c['stride']}, padding={c['padding']}"
    return [
        Check(
            f"F.avg_pool2d(x, {args})",
            lambda x: pool.avg_pool2d(x, c["kernel_size"], c["stride"], c["padding"]),
            [_normal(rng, 2, 2, H, W)],
            ("x",),
        )
    ]


def checks_for(entry: Entry, config: dict[str, Any], seed: int = 0) -> list[Check]:
    """What to check for ``entry``: its registry example, or (with ``config``, or for gelu, whose two forms
    are checked one at a time) the configured calls. Raises ConfigError for an option the op does not take."""
    allowed = OPTIONS.get(entry.name, ())
    wrong = [k for k in config if k not in allowed]
    if wrong:
        takes = (
            f"takes only {', '.join('--' + o.replace('_', '-') for o in allowed)}"
            if allowed
            else "takes none of the configuration options"
        )
        raise ConfigError(
            f"{entry.name} {takes}; got {', '.join('--' + k.replace('_', '-') for k in wrong)} "
            f"(configurable: {', '.join(OPTIONS)})"
        )
    # The inputs come from another stream than v (``seed``): an input equal to v can hide a wrong backward.
    rng = np.random.default_rng([seed, 1])
    if config or entry.name == "gelu":
        return _configured(entry.name, config, rng)
    fn, inputs = entry.sample(rng)
    try:
        names = tuple(inspect.signature(fn).parameters)[: len(inputs)]
    except (TypeError, ValueError):
        names = ()
    if len(names) != len(inputs):
        names = tuple(f"input {i}" for i in range(len(inputs)))
    return [Check(entry.call, fn, inputs, names)]


def describe(check: Check, dtype: str, seed: int) -> str:
    """What a check runs: the call, each input's shape and dtype, the output's shape, dtype and seed."""
    shapes = ", ".join(
        f"{n} {t.shape} {t.dtype}" if isinstance(t, Tensor) else f"{n} {t!r}"
        for n, t in zip(check.names, check.inputs, strict=True)
    )
    y = check.fn(*check.inputs)
    also = f"; the backward also in {dtype}" if dtype != "float64" else ""
    return (
        f"checked: {check.call}\n  inputs {shapes} -> output {y.shape}\n"
        f"  gradcheck in float64{also}, seed {seed}"
    )


# ----- the check -------------------------------------------------------------------------------------------
# The largest |g32 - g64| / max |g64| accepted for a float32 backward.
DTYPE_RTOL = {"float32": 1e-4}


def dtype_report(check: Check, dtype: str, seed: int, out: TextIO) -> bool:
    """The backward in ``dtype`` against the float64 one (which gradcheck verifies), per input: the result
    must keep the dtype, and differ by at most ``DTYPE_RTOL`` relative to the largest float64 gradient."""
    grads = {}
    for run_dtype in ("float64", dtype):
        xs = [
            tensor(t.data.astype(run_dtype), requires_grad=t.requires_grad)
            if isinstance(t, Tensor) and t.dtype.kind == "f"
            else t
            for t in check.inputs
        ]
        y = check.fn(*xs)
        v = np.random.default_rng(seed).standard_normal(y.shape).astype(run_dtype)
        y.backward(tensor(v))
        grads[run_dtype] = [
            (i, t.grad) for i, t in enumerate(xs) if isinstance(t, Tensor) and t.requires_grad
        ]
    ok = True
    print(f"{dtype} backward against the float64 one (L = <v, y> with the same v):", file=out)
    for (pos, g64), (_, g) in zip(grads["float64"], grads[dtype], strict=True):
        diff = float(np.abs(g.numpy().astype(np.float64) - g64.numpy()).max(initial=0.0))
        scale = float(np.abs(g64.numpy()).max(initial=0.0))
        rel = diff / scale if scale else diff
        good = str(g.dtype) == dtype and rel <= DTYPE_RTOL[dtype]
        ok &= good
        print(
            f"  input {pos} {g.shape}: gradient dtype {g.dtype}, max |g_{dtype} - g_float64| = {diff:.2e}, "
            f"relative {rel:.2e} ({'ok' if good else 'FAILED'}: "
            f"at most {DTYPE_RTOL[dtype]:g}, dtype {dtype})",
            file=out,
        )
    return ok


def run_check(
    entry: Entry, out: TextIO, seed: int = 0, config: dict[str, Any] | None = None, dtype: str = "float64"
) -> bool:
    """Print, for each check of ``entry`` (its example, or ``config``'s calls), what it checks, the
    comparison with central differences and ``mr.gradcheck``'s verdict (and with ``dtype`` float32 the
    float32 backward against the float64 one); True when every check passes."""
    passed = True
    for check in checks_for(entry, config or {}, seed):
        print(describe(check, dtype, seed), file=out)
        print(f"gradcheck (float64, central differences, eps={EPS:g}) of {check.call}:", file=out)
        for r in compare(check.fn, check.inputs, seed=seed):
            print(
                f"  input {r.position} {r.shape}: max |analytic - numerical| = {r.max_abs_diff:.2e}, "
                f"relative to max |numerical| ({r.max_numerical:.2e}) = {r.max_rel_diff:.2e}",
                file=out,
            )
        try:
            gradcheck(check.fn, check.inputs, eps=EPS, atol=ATOL, rtol=RTOL, seed=seed)
        except GradcheckError as exc:
            print(f"FAILED (atol={ATOL:g}, rtol={RTOL:g}): {exc}", file=out)
            passed = False
        else:
            print(f"passed: mr.gradcheck(atol={ATOL:g}, rtol={RTOL:g}) agrees", file=out)
        if dtype != "float64" and not dtype_report(check, dtype, seed, out):
            print(f"FAILED: the {dtype} backward differs from the float64 one", file=out)
            passed = False
        print(file=out)
    return passed


def suggestions(name: str, registry: Registry) -> list[str]:
    """The known names closest to ``name``: the same name in another case first, then difflib's matches
    (of the name as given and in lower case), at most three."""
    keys = [*registry.names(), *registry.aliases(), *registry.api()]
    folded = name.lower()
    same_case = [k for k in keys if k.lower() == folded]
    lower = {k.lower(): k for k in keys}
    close = difflib.get_close_matches(name, keys, n=5, cutoff=0.6)
    close += [lower[k] for k in difflib.get_close_matches(folded, list(lower), n=5, cutoff=0.6)]
    return list(dict.fromkeys(same_case + close))[:3]


def list_ops(registry: Registry, out: TextIO) -> None:
    """One line per op: its name, then where its backward is derived; then the aliases."""
    aliases = registry.aliases()
    width = max(len(n) for n in [*registry.names(), *aliases])
    for entry in registry:
        where = ", ".join(f"{source_name(s)} ({source_path(s)})" for s in entry.sources)
        print(f"{entry.name:<{width}}  {where}", file=out)
    for alias, target in aliases.items():
        print(f"{alias:<{width}}  alias of {target}", file=out)


def main(argv: Sequence[str] | None = None, registry: Registry | None = None) -> int:
    """The command line; ``registry`` replaces the op registry (the tests pass a broken op)."""
    registry = REGISTRY if registry is None else registry
    parser = argparse.ArgumentParser(
        prog="python -m minires.explain",
        description="Print an op's backward derivation (its docstring), then gradcheck it in float64.",
    )
    parser.add_argument(
        "op", nargs="?", help="the op's name or alias (see --list), or F.relu, Tensor.__add__, ..."
    )
    parser.add_argument("--list", action="store_true", help="list the ops")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random input and weights")
    parser.add_argument(
        "--dtype",
        choices=("float64", *DTYPE_RTOL),
        default="float64",
        help="also compare the backward in this dtype with the float64 one",
    )
    group = parser.add_argument_group("configuration (conv2d, max_pool2d, avg_pool2d; gelu)")
    for option in ("stride", "padding", "dilation", "kernel-size"):
        group.add_argument(f"--{option}", type=_pair_arg, metavar="N[,M]")
    group.add_argument("--groups", type=int, metavar="G")
    group.add_argument("--approximate", choices=("none", "tanh"), help="the GELU form to check")
    args = parser.parse_args(argv)
    out = sys.stdout
    if args.list:
        list_ops(registry, out)
        return 0
    if args.op is None:
        parser.print_usage(sys.stderr)
        print("name an op, or --list", file=sys.stderr)
        return 2
    entry = registry.find(args.op)
    if entry is None:
        close = suggestions(args.op, registry)
        hint = f"; did you mean {' or '.join(close)}?" if close else ""
        print(
            f"unknown op {args.op!r}{hint} (python -m minires.explain --list shows the ops)", file=sys.stderr
        )
        return 2
    options = ("stride", "padding", "dilation", "groups", "kernel_size", "approximate")
    config = {k: getattr(args, k) for k in options if getattr(args, k) is not None}
    try:  # an option the op does not take, or a value it rejects: said before anything is printed
        for check in checks_for(entry, config, args.seed):
            check.fn(*check.inputs)
    except (ValueError, TypeError, RuntimeError) as exc:
        print(f"python -m minires.explain {entry.name}: {exc}", file=sys.stderr)
        return 2
    title = entry.name if entry.name == args.op else f"{args.op} (alias of {entry.name})"
    print(f"{title}\n{'=' * len(title)}\n", file=out)
    print(derivation(entry), file=out)
    print(file=out)
    return 0 if run_check(entry, out, seed=args.seed, config=config, dtype=args.dtype) else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:  # the reader stopped early (``--list | head``): not an error of ours
        sys.stdout = None
        sys.exit(0)
