"""``python -m minires.explain OP``: an op's derivation, read from its docstring, then a gradcheck of it.

    python -m minires.explain --list      the ops it knows, one a line
    python -m minires.explain conv2d      Conv2d's docstring (and im2col's, col2im's), then the check

The check runs the op's backward on a small random float64 input and compares it, element by element,
with central differences (the same comparison as ``mr.gradcheck``, and the same random output weights
v, so that L = <v, op(x)>): it prints the largest absolute difference |analytic - numerical| per input
and that difference relative to the largest |numerical|, then ``mr.gradcheck``'s verdict. The exit
status is 0 when the backward passes, 1 when it does not, 2 for an unknown op.

The registry below maps each op name to the ``Function`` classes (or functions) whose docstrings derive
its backward, and to a sample: a small input and the call that is checked. It is the only list of ops in
minires; tests/test_explain.py checks it against the op table in tests/, and tests/test_guide.py checks
that docs/backward.md quotes these docstrings verbatim.
"""

from __future__ import annotations

import argparse
import inspect
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from .gradcheck import GradcheckError, gradcheck, gradient_pairs
from .nn import functional as F
from .ops import (
    activation,
    broadcast,
    conv,
    dropout,
    elementwise,
    im2col,
    linalg,
    loss,
    norm,
    pool,
    reduction,
    shape,
)
from .rng import manual_seed
from .tensor import Tensor, float64, tensor

# Tolerances of the verdict: those of the op table's gradcheck test (tests/test_op_gradcheck.py).
EPS, ATOL, RTOL = 1e-6, 1e-6, 1e-4

Sample = Callable[[np.random.Generator], tuple[Callable[..., Tensor], list[Any]]]


@dataclass(frozen=True)
class Entry:
    """One op: where its backward is derived, and a small call of it that the check runs."""

    sources: tuple[Any, ...]  # classes, functions or modules whose docstrings derive the backward
    call: str  # the checked call, as a reader would write it
    sample: Sample  # rng -> (fn, inputs): fn(*inputs) is the op; the float inputs require grad


# ----- sample inputs: small, float64, away from kinks ------------------------------------------------------
def _leaf(a: np.ndarray) -> Tensor:
    return tensor(np.asarray(a, dtype=np.float64), requires_grad=True)


def _normal(rng: np.random.Generator, *shape: int, scale: float = 1.0) -> Tensor:
    return _leaf(scale * rng.standard_normal(shape))


def _positive(rng: np.random.Generator, *shape: int) -> Tensor:
    """Values in [0.5, 2]: for log, sqrt, the base of pow."""
    return _leaf(rng.uniform(0.5, 2.0, shape))


def _away_from(rng: np.random.Generator, *shape: int, points: Sequence[float] = (0.0,)) -> Tensor:
    """Values at least 0.1 from every kink in ``points`` (ReLU and abs at 0, clamp at its bounds)."""
    x = rng.uniform(-2.0, 2.0, shape)
    for p in points:
        near = np.abs(x - p) < 0.1
        x[near] = p + np.where(x[near] >= p, 0.1, -0.1)
    return _leaf(x)


def _distinct(rng: np.random.Generator, *shape: int) -> Tensor:
    """Values at least 0.2 apart, in random order: no ties for a max (its kink)."""
    n = int(np.prod(shape))
    return _leaf((rng.permutation(n) * 0.25 + rng.uniform(0.0, 0.05, n)).reshape(shape) - n / 8)


def _labels(rng: np.random.Generator, n: int, classes: int) -> Tensor:
    return tensor(rng.integers(0, classes, n))


def _dropout(x: Tensor) -> Tensor:
    manual_seed(0)  # the same mask on every call, as finite differences need
    return F.dropout(x, p=0.5, training=True)


def _unary(fn: Callable[[Tensor], Tensor], make: Callable[..., Tensor], *shape: int) -> Sample:
    return lambda rng: (fn, [make(rng, *shape)])


REGISTRY: dict[str, Entry] = {
    # ----- the ResNet's ops, in the order docs/backward.md takes them -----
    "linear": Entry(
        (linalg.Linear,),
        "F.linear(x, w, b), x (4, 3), w (2, 3), b (2,)",
        lambda rng: (F.linear, [_normal(rng, 4, 3), _normal(rng, 2, 3), _normal(rng, 2)]),
    ),
    "relu": Entry((activation.ReLU,), "F.relu(x), x (3, 4)", _unary(F.relu, _away_from, 3, 4)),
    "gelu": Entry(
        (activation.GELU,),
        "F.gelu(x) + F.gelu(x, approximate='tanh'), x (3, 4)",
        lambda rng: (lambda x: F.gelu(x) + F.gelu(x, approximate="tanh"), [_normal(rng, 3, 4, scale=2.0)]),
    ),
    "conv2d": Entry(
        (conv.Conv2d, im2col.im2col, im2col.col2im),
        "F.conv2d(x, w, b, stride=2, padding=1), x (2, 3, 5, 5), w (4, 3, 3, 3), b (4,)",
        lambda rng: (
            lambda x, w, b: F.conv2d(x, w, b, stride=2, padding=1),
            [_normal(rng, 2, 3, 5, 5), _normal(rng, 4, 3, 3, 3, scale=0.3), _normal(rng, 4)],
        ),
    ),
    "batch_norm": Entry(
        (norm.BatchNorm,),
        "F.batch_norm(x, None, None, gamma, beta, training=True), x (4, 3, 2, 2), gamma, beta (3,)",
        lambda rng: (
            lambda x, gamma, beta: F.batch_norm(x, None, None, gamma, beta, training=True),
            [_normal(rng, 4, 3, 2, 2), _normal(rng, 3), _normal(rng, 3)],
        ),
    ),
    "group_norm": Entry(
        (norm.GroupNorm,),
        "F.group_norm(x, 2, gamma, beta), x (2, 4, 2, 2), gamma, beta (4,)",
        lambda rng: (
            lambda x, gamma, beta: F.group_norm(x, 2, gamma, beta),
            [_normal(rng, 2, 4, 2, 2), _normal(rng, 4), _normal(rng, 4)],
        ),
    ),
    "max_pool2d": Entry(
        (pool.MaxPool2d,),
        "F.max_pool2d(x, 3, stride=2, padding=1), x (1, 2, 5, 5) of distinct values",
        lambda rng: (lambda x: F.max_pool2d(x, 3, stride=2, padding=1), [_distinct(rng, 1, 2, 5, 5)]),
    ),
    "avg_pool2d": Entry(
        (pool.AvgPool2d,),
        "F.avg_pool2d(x, 3, stride=2, padding=1), x (1, 2, 5, 5)",
        lambda rng: (lambda x: F.avg_pool2d(x, 3, stride=2, padding=1), [_normal(rng, 1, 2, 5, 5)]),
    ),
    "adaptive_avg_pool2d": Entry(
        (pool.AdaptiveAvgPool2d,),
        "F.adaptive_avg_pool2d(x, (3, 2)), x (2, 2, 5, 7)",
        lambda rng: (lambda x: F.adaptive_avg_pool2d(x, (3, 2)), [_normal(rng, 2, 2, 5, 7)]),
    ),
    "cross_entropy": Entry(
        (loss.CrossEntropy,),
        "F.cross_entropy(x, t, label_smoothing=0.1), x (4, 5), t (4,) class indices",
        lambda rng: (
            lambda x, t: F.cross_entropy(x, t, label_smoothing=0.1),
            [_normal(rng, 4, 5, scale=2.0), _labels(rng, 4, 5)],
        ),
    ),
    "add": Entry(
        (elementwise.Add,),
        "a + b, a (3, 4), b (4,) broadcast",
        lambda rng: (lambda a, b: a + b, [_normal(rng, 3, 4), _normal(rng, 4)]),
    ),
    "broadcast_to": Entry(
        (broadcast, broadcast.BroadcastTo, broadcast.sum_to),
        "x.expand(2, 3, 4), x (3, 1)",
        lambda rng: (lambda x: x.expand(2, 3, 4), [_normal(rng, 3, 1)]),
    ),
    # ----- elementwise -----
    "sub": Entry(
        (elementwise.Sub,),
        "a - b, a (3, 4), b (3, 1)",
        lambda rng: (lambda a, b: a - b, [_normal(rng, 3, 4), _normal(rng, 3, 1)]),
    ),
    "mul": Entry(
        (elementwise.Mul,),
        "a * b, a (2, 3), b (3,)",
        lambda rng: (lambda a, b: a * b, [_normal(rng, 2, 3), _normal(rng, 3)]),
    ),
    "div": Entry(
        (elementwise.Div,),
        "a / b, a (2, 3), b (3,) away from 0",
        lambda rng: (lambda a, b: a / b, [_normal(rng, 2, 3), _positive(rng, 3)]),
    ),
    "pow": Entry(
        (elementwise.Pow,),
        "a ** b, a (2, 3) in [0.5, 2], b (2, 3)",
        lambda rng: (lambda a, b: a**b, [_positive(rng, 2, 3), _normal(rng, 2, 3)]),
    ),
    "neg": Entry((elementwise.Neg,), "-x, x (3, 4)", _unary(lambda x: -x, _normal, 3, 4)),
    "exp": Entry((elementwise.Exp,), "mr.exp(x), x (3, 4)", _unary(elementwise.exp, _normal, 3, 4)),
    "log": Entry((elementwise.Log,), "mr.log(x), x (3, 4) > 0", _unary(elementwise.log, _positive, 3, 4)),
    "sqrt": Entry((elementwise.Sqrt,), "mr.sqrt(x), x (3, 4) > 0", _unary(elementwise.sqrt, _positive, 3, 4)),
    "erf": Entry((elementwise.Erf,), "mr.erf(x), x (3, 4)", _unary(elementwise.erf, _normal, 3, 4)),
    "abs": Entry((elementwise.Abs,), "mr.abs(x), x (3, 4)", _unary(elementwise.abs, _away_from, 3, 4)),
    "clamp": Entry(
        (elementwise.Clamp,),
        "mr.clamp(x, -0.5, 0.5), x (3, 4)",
        lambda rng: (
            lambda x: elementwise.clamp(x, -0.5, 0.5),
            [_away_from(rng, 3, 4, points=(-0.5, 0.5))],
        ),
    ),
    "sigmoid": Entry((activation.Sigmoid,), "F.sigmoid(x), x (3, 4)", _unary(F.sigmoid, _normal, 3, 4)),
    "tanh": Entry((activation.Tanh,), "F.tanh(x), x (3, 4)", _unary(F.tanh, _normal, 3, 4)),
    "softmax": Entry(
        (activation.Softmax,),
        "F.softmax(x, dim=1), x (2, 4)",
        lambda rng: (lambda x: F.softmax(x, dim=1), [_normal(rng, 2, 4, scale=2.0)]),
    ),
    "log_softmax": Entry(
        (activation.LogSoftmax,),
        "F.log_softmax(x, dim=-1), x (2, 4)",
        lambda rng: (lambda x: F.log_softmax(x, dim=-1), [_normal(rng, 2, 4, scale=2.0)]),
    ),
    "nll_loss": Entry(
        (loss.NLLLoss,),
        "F.nll_loss(x, t), x (4, 5), t (4,) class indices",
        lambda rng: (F.nll_loss, [_normal(rng, 4, 5), _labels(rng, 4, 5)]),
    ),
    # ----- reductions -----
    "sum": Entry(
        (reduction.Sum,),
        "x.sum(dim=1), x (2, 3, 4)",
        lambda rng: (lambda x: x.sum(dim=1), [_normal(rng, 2, 3, 4)]),
    ),
    "mean": Entry(
        (reduction.Mean,),
        "x.mean(dim=(0, 2)), x (2, 3, 4)",
        lambda rng: (lambda x: x.mean(dim=(0, 2)), [_normal(rng, 2, 3, 4)]),
    ),
    "max": Entry(
        (reduction.MaxAll, reduction.MaxDim),
        "x.max(dim=1).values + x.max(), x (3, 4) of distinct values",
        lambda rng: (lambda x: x.max(dim=1)[0] + x.max(), [_distinct(rng, 3, 4)]),
    ),
    "min": Entry(
        (reduction.MaxAll, reduction.MaxDim),
        "x.min(dim=0).values + x.min(), x (3, 4) of distinct values",
        lambda rng: (lambda x: x.min(dim=0)[0] + x.min(), [_distinct(rng, 3, 4)]),
    ),
    "topk": Entry(
        (reduction.TopK,),
        "x.topk(2, dim=1).values, x (3, 4) of distinct values",
        lambda rng: (lambda x: x.topk(2, dim=1)[0], [_distinct(rng, 3, 4)]),
    ),
    # ----- matrix products -----
    "matmul": Entry(
        (linalg.MatMul,),
        "a @ b, a (2, 3, 4), b (4, 2) broadcast over the batch",
        lambda rng: (lambda a, b: a @ b, [_normal(rng, 2, 3, 4), _normal(rng, 4, 2)]),
    ),
    # ----- shape ops -----
    "reshape": Entry(
        (shape.Reshape,),
        "x.reshape(4, 6), x (2, 3, 4)",
        lambda rng: (lambda x: x.reshape(4, 6), [_normal(rng, 2, 3, 4)]),
    ),
    "flatten": Entry(
        (shape.Reshape,),
        "x.flatten(1), x (2, 3, 4)",
        lambda rng: (lambda x: x.flatten(1), [_normal(rng, 2, 3, 4)]),
    ),
    "unsqueeze": Entry(
        (shape.Reshape,),
        "x.unsqueeze(1), x (2, 3)",
        lambda rng: (lambda x: x.unsqueeze(1), [_normal(rng, 2, 3)]),
    ),
    "squeeze": Entry(
        (shape.Reshape,),
        "x.squeeze(1), x (2, 1, 3)",
        lambda rng: (lambda x: x.squeeze(1), [_normal(rng, 2, 1, 3)]),
    ),
    "permute": Entry(
        (shape.Permute,),
        "x.permute(2, 0, 1), x (2, 3, 4)",
        lambda rng: (lambda x: x.permute(2, 0, 1), [_normal(rng, 2, 3, 4)]),
    ),
    "transpose": Entry(
        (shape.Permute,),
        "x.transpose(0, 2), x (2, 3, 4)",
        lambda rng: (lambda x: x.transpose(0, 2), [_normal(rng, 2, 3, 4)]),
    ),
    "getitem": Entry(
        (shape.GetItem,),
        "x[[0, 2, 0]], x (3, 4) (row 0 taken twice)",
        lambda rng: (lambda x: x[[0, 2, 0]], [_normal(rng, 3, 4)]),
    ),
    "cat": Entry(
        (shape.Cat,),
        "mr.cat([a, b], dim=1), a (2, 3), b (2, 2)",
        lambda rng: (lambda a, b: shape.cat([a, b], dim=1), [_normal(rng, 2, 3), _normal(rng, 2, 2)]),
    ),
    "stack": Entry(
        (shape.Stack,),
        "mr.stack([a, b], dim=1), a, b (2, 3)",
        lambda rng: (lambda a, b: shape.stack([a, b], dim=1), [_normal(rng, 2, 3), _normal(rng, 2, 3)]),
    ),
    "pad": Entry(
        (shape.Pad,),
        "F.pad(x, (1, 2, -1, 1)), x (2, 3, 4): columns padded, rows cropped then padded",
        lambda rng: (lambda x: F.pad(x, (1, 2, -1, 1)), [_normal(rng, 2, 3, 4)]),
    ),
    "to": Entry(
        (shape.ToDevice, shape.ToDtype),
        "ToDtype(float64)(ToDevice('cpu')(x)), x (3, 4) (x.to() of a CPU float64 x would return x itself)",
        lambda rng: (lambda x: shape.to_dtype(shape.to_device(x, "cpu"), float64), [_normal(rng, 3, 4)]),
    ),
    # ----- dropout -----
    "dropout": Entry(
        (dropout.Dropout,),
        "F.dropout(x, p=0.5) under mr.manual_seed(0), x (3, 4)",
        _unary(_dropout, _normal, 3, 4),
    ),
}

# Other names of registry entries: API spellings of the same op.
ALIASES: dict[str, str] = {"view": "reshape", "cpu": "to", "expand": "broadcast_to", "sum_to": "broadcast_to"}


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


def resolve(name: str, registry: Mapping[str, Entry]) -> str | None:
    """The registry name of ``name`` (itself, or what it is an alias of), or None."""
    if name in registry:
        return name
    target = ALIASES.get(name)
    return target if target in registry else None


def list_ops(registry: Mapping[str, Entry], out: TextIO) -> None:
    """One line per op: its name, then where its backward is derived; then the aliases."""
    width = max(len(n) for n in [*registry, *ALIASES])
    for name, entry in registry.items():
        where = ", ".join(f"{source_name(s)} ({source_path(s)})" for s in entry.sources)
        print(f"{name:<{width}}  {where}", file=out)
    for alias, target in ALIASES.items():
        if target in registry:
            print(f"{alias:<{width}}  alias of {target}", file=out)


def main(argv: Sequence[str] | None = None, registry: Mapping[str, Entry] | None = None) -> int:
    """The command line; ``registry`` replaces REGISTRY (the tests pass a broken op)."""
    registry = REGISTRY if registry is None else registry
    parser = argparse.ArgumentParser(
        prog="python -m minires.explain",
        description="Print an op's backward derivation (its docstring), then gradcheck it in float64.",
    )
    parser.add_argument("op", nargs="?", help="the op's name (see --list)")
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
    name = resolve(args.op, registry)
    if name is None:
        print(f"unknown op {args.op!r}; python -m minires.explain --list shows the ops", file=sys.stderr)
        return 2
    entry = registry[name]
    title = name if name == args.op else f"{args.op} (alias of {name})"
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
