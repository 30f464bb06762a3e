"""``python -m minires.explain OP``: an op's derivation, read from its docstring, then a gradcheck of it.

    python -m minires.explain --list      the ops it knows, one a line
    python -m minires.explain conv2d      Conv2d's docstring (and im2col's, col2im's), then the check

The check runs the op's backward on a small random float64 input and compares it, element by element,
with central differences (the same comparison as ``mr.gradcheck``, and the same random output weights
v, so that L = <v, op(x)>): it prints the largest absolute difference |analytic - numerical| per input
and that difference relative to the largest |numerical|, then ``mr.gradcheck``'s verdict. The exit
status is 0 when the backward passes, 1 when it does not, 2 for an unknown op.

The ops, their derivations and their samples come from the op registry, minires/ops/registry.py (the
only list of ops in minires): ``OP`` is an entry's name, an alias (``view``) or a public spelling
(``F.relu``, ``Tensor.__add__``). tests/test_guide.py checks that docs/backward.md quotes the docstrings
printed here verbatim.
"""

from __future__ import annotations

import argparse
import inspect
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from .gradcheck import GradcheckError, gradcheck, gradient_pairs
from .ops.registry import REGISTRY, Entry, Registry
from .tensor import Tensor

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


def run_check(entry: Entry, out: TextIO, seed: int = 0) -> bool:
    """Print the comparison and ``mr.gradcheck``'s verdict for ``entry``'s sample; True when it passes."""
    # The inputs come from another stream than v (``seed``): an input equal to v can hide a wrong backward.
    fn, inputs = entry.sample(np.random.default_rng([seed, 1]))
    print(f"gradcheck (float64, central differences, eps={EPS:g}) of {entry.call}:", file=out)
    for r in compare(fn, inputs, seed=seed):
        print(
            f"  input {r.position} {r.shape}: max |analytic - numerical| = {r.max_abs_diff:.2e}, "
            f"relative to max |numerical| ({r.max_numerical:.2e}) = {r.max_rel_diff:.2e}",
            file=out,
        )
    try:
        gradcheck(fn, inputs, eps=EPS, atol=ATOL, rtol=RTOL, seed=seed)
    except GradcheckError as exc:
        print(f"FAILED (atol={ATOL:g}, rtol={RTOL:g}): {exc}", file=out)
        return False
    print(f"passed: mr.gradcheck(atol={ATOL:g}, rtol={RTOL:g}) agrees", file=out)
    return True


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
        print(f"unknown op {args.op!r}; python -m minires.explain --list shows the ops", file=sys.stderr)
        return 2
    title = entry.name if entry.name == args.op else f"{args.op} (alias of {entry.name})"
    print(f"{title}\n{'=' * len(title)}\n", file=out)
    print(derivation(entry), file=out)
    print(file=out)
    return 0 if run_check(entry, out, seed=args.seed) else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:  # the reader stopped early (``--list | head``): not an error of ours
        sys.stdout = None
        sys.exit(0)
