"""The op registry: every differentiable op of minires, once, by name. It is the only list of ops in minires.

Each ``Entry`` says, for one op:

    name      the op's name, as its error messages, ``python -m minires.explain`` and the test ids print it
    sources   the ``Function`` classes (or functions, or a module) whose docstrings derive its backward:
              what ``python -m minires.explain NAME`` prints and docs/backward.md quotes verbatim
    call      a small example call, as a reader would write it
    sample    rng -> (fn, inputs): that example, on small float64 inputs away from the op's kinks;
              ``fn(*inputs)`` is the op, and its float inputs require grad
    api       the public spellings the op covers, torch's with ``torch`` read as ``mr``:
              ``F.relu`` (minires.nn.functional), ``mr.relu`` (minires), ``Tensor.relu``, ``Tensor.__add__``
    aliases   other short names that ``get`` resolves to it (``view`` for reshape, ``cpu`` for to)

``get(name)`` finds an entry by its name, an alias or a public spelling; ``names()`` lists the entries.
Who reads it: ``minires.explain`` (the derivation, then a gradcheck of the sample), and tests/op_table.py,
whose rows extend the entry of their name with what only the tests need (the PyTorch twin, a hypothesis
strategy, kinks, bad inputs); tests/test_registry.py checks that entries, rows and public names agree.

The registry names ops by module attribute (``activation.ReLU``, ``conv.conv2d``), never through
``minires.nn``: it is part of the ops layer.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..rng import manual_seed
from ..tensor import Tensor, float64, tensor
from . import (
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
    sync_norm,
)

Sample = Callable[[np.random.Generator], tuple[Callable[..., Tensor], list[Any]]]


@dataclass(frozen=True)
class Entry:
    """One op: where its backward is derived, the names it goes by, and a small call of it."""

    name: str
    sources: tuple[Any, ...]  # classes, functions or modules whose docstrings derive the backward
    call: str  # the example call, as a reader would write it
    sample: Sample  # rng -> (fn, inputs): fn(*inputs) is the op; the float inputs require grad
    api: tuple[str, ...] = ()  # public spellings: "F.relu", "mr.relu", "Tensor.relu", "Tensor.__add__"
    aliases: tuple[str, ...] = ()  # other short names of the op: "view" for reshape


class UnknownOpError(LookupError):
    """No entry has this name, alias or public spelling."""


class Registry:
    """Entries in order, each found by its name, an alias or a public spelling (one op per key)."""

    def __init__(self, entries: Iterable[Entry]) -> None:
        self._entries: dict[str, Entry] = {}
        self._keys: dict[str, str] = {}  # name, alias or spelling -> entry name
        for entry in entries:
            for key in (entry.name, *entry.aliases, *entry.api):
                if key in self._keys:
                    raise ValueError(
                        f"op registry: {key!r} names both {self._keys[key]!r} and {entry.name!r}"
                    )
                self._keys[key] = entry.name
            self._entries[entry.name] = entry

    def names(self) -> list[str]:
        """The entries' names, in order."""
        return list(self._entries)

    def aliases(self) -> dict[str, str]:
        """Each alias -> the name of its entry, in the entries' order."""
        return {alias: e.name for e in self._entries.values() for alias in e.aliases}

    def api(self) -> dict[str, str]:
        """Each public spelling (``F.relu``, ``Tensor.__add__``) -> the name of its entry."""
        return {spelling: e.name for e in self._entries.values() for spelling in e.api}

    def find(self, name: str) -> Entry | None:
        """The entry of ``name`` (its name, an alias or a public spelling), or None."""
        key = self._keys.get(name)
        return None if key is None else self._entries[key]

    def get(self, name: str) -> Entry:
        """The entry of ``name`` (its name, an alias or a public spelling); UnknownOpError if none."""
        entry = self.find(name)
        if entry is None:
            close = difflib.get_close_matches(name, self._keys, n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise UnknownOpError(f"unknown op {name!r}: no entry in minires/ops/registry.py has it{hint}")
        return entry

    def __iter__(self) -> Iterator[Entry]:
        return iter(self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._keys


# ----- sample inputs: small, float64, away from kinks ------------------------------------------------------
def _leaf(a: np.ndarray) -> Tensor:
    return tensor(np.asarray(a, dtype=np.float64), requires_grad=True)


def _normal(rng: np.random.Generator, *shape: int, scale: float = 1.0) -> Tensor:
    return _leaf(scale * rng.standard_normal(shape))


def _positive(rng: np.random.Generator, *shape: int) -> Tensor:
    """Values in [0.5, 2]: for log, sqrt, the base of pow."""
    return _leaf(rng.uniform(0.5, 2.0, shape))


def _batch_norm_relu_sample(rng: np.random.Generator) -> tuple[Callable[..., Tensor], list[Any]]:
    """batch_norm_relu in training with a residual r chosen so that batch norm's output plus r, the ReLU's
    input, is at least 0.1 from its kink at 0."""
    x, gamma, beta = rng.standard_normal((4, 3, 2, 2)), rng.standard_normal(3), rng.standard_normal(3)
    mu, var = x.mean(axis=(0, 2, 3), keepdims=True), x.var(axis=(0, 2, 3), keepdims=True)
    y = (x - mu) / np.sqrt(var + 1e-5) * gamma.reshape(1, 3, 1, 1) + beta.reshape(1, 3, 1, 1)
    r = _away_from(rng, 4, 3, 2, 2).data - y  # y + r: the values away from 0
    return (
        lambda x, gamma, beta, r: norm.batch_norm_relu(x, None, None, gamma, beta, training=True, residual=r),
        [_leaf(x), _leaf(gamma), _leaf(beta), _leaf(r)],
    )


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
    return dropout.dropout(x, p=0.5, training=True)


def _unary(fn: Callable[[Tensor], Tensor], make: Callable[..., Tensor], *shape: int) -> Sample:
    return lambda rng: (fn, [make(rng, *shape)])


# ----- the entries -----------------------------------------------------------------------------------------
REGISTRY = Registry(
    [
        # ----- the ResNet's ops, in the order docs/backward.md takes them -----
        Entry(
            "linear",
            (linalg.Linear,),
            "F.linear(x, w, b), x (4, 3), w (2, 3), b (2,)",
            lambda rng: (linalg.linear, [_normal(rng, 4, 3), _normal(rng, 2, 3), _normal(rng, 2)]),
            api=("F.linear",),
        ),
        Entry(
            "relu",
            (activation.ReLU,),
            "F.relu(x), x (3, 4)",
            _unary(activation.relu, _away_from, 3, 4),
            api=("F.relu", "mr.relu", "Tensor.relu"),
        ),
        Entry(
            "gelu",
            (activation.GELU,),
            "F.gelu(x) + F.gelu(x, approximate='tanh'), x (3, 4)",
            lambda rng: (
                lambda x: activation.gelu(x) + activation.gelu(x, approximate="tanh"),
                [_normal(rng, 3, 4, scale=2.0)],
            ),
            api=("F.gelu",),
        ),
        Entry(
            "conv2d",
            (conv.Conv2d, im2col.im2col, im2col.col2im),
            "F.conv2d(x, w, b, stride=2, padding=1), x (2, 3, 5, 5), w (4, 3, 3, 3), b (4,)",
            lambda rng: (
                lambda x, w, b: conv.conv2d(x, w, b, stride=2, padding=1),
                [_normal(rng, 2, 3, 5, 5), _normal(rng, 4, 3, 3, 3, scale=0.3), _normal(rng, 4)],
            ),
            api=("F.conv2d",),
        ),
        Entry(
            "batch_norm",
            (norm.BatchNorm,),
            "F.batch_norm(x, None, None, gamma, beta, training=True), x (4, 3, 2, 2), gamma, beta (3,)",
            lambda rng: (
                lambda x, gamma, beta: norm.batch_norm(x, None, None, gamma, beta, training=True),
                [_normal(rng, 4, 3, 2, 2), _normal(rng, 3), _normal(rng, 3)],
            ),
            api=("F.batch_norm",),
        ),
        Entry(
            "batch_norm_relu",
            (norm.BatchNormReLU,),
            "batch_norm_relu(x, None, None, gamma, beta, training=True, residual=r), x, r (4, 3, 2, 2), "
            "gamma, beta (3,)",
            lambda rng: _batch_norm_relu_sample(rng),
        ),
        Entry(
            "sync_batch_norm",
            (sync_norm.SyncBatchNorm,),
            "sync_batch_norm(x, None, None, gamma, beta) on one rank, x (4, 3, 2, 2), gamma, beta (3,)",
            lambda rng: (
                lambda x, gamma, beta: sync_norm.sync_batch_norm(x, None, None, gamma, beta),
                [_normal(rng, 4, 3, 2, 2), _normal(rng, 3), _normal(rng, 3)],
            ),
        ),
        Entry(
            "group_norm",
            (norm.GroupNorm,),
            "F.group_norm(x, 2, gamma, beta), x (2, 4, 2, 2), gamma, beta (4,)",
            lambda rng: (
                lambda x, gamma, beta: norm.group_norm(x, 2, gamma, beta),
                [_normal(rng, 2, 4, 2, 2), _normal(rng, 4), _normal(rng, 4)],
            ),
            api=("F.group_norm",),
        ),
        Entry(
            "max_pool2d",
            (pool.MaxPool2d,),
            "F.max_pool2d(x, 3, stride=2, padding=1), x (1, 2, 5, 5) of distinct values",
            lambda rng: (lambda x: pool.max_pool2d(x, 3, stride=2, padding=1), [_distinct(rng, 1, 2, 5, 5)]),
            api=("F.max_pool2d",),
        ),
        Entry(
            "avg_pool2d",
            (pool.AvgPool2d,),
            "F.avg_pool2d(x, 3, stride=2, padding=1), x (1, 2, 5, 5)",
            lambda rng: (lambda x: pool.avg_pool2d(x, 3, stride=2, padding=1), [_normal(rng, 1, 2, 5, 5)]),
            api=("F.avg_pool2d",),
        ),
        Entry(
            "adaptive_avg_pool2d",
            (pool.AdaptiveAvgPool2d,),
            "F.adaptive_avg_pool2d(x, (3, 2)), x (2, 2, 5, 7)",
            lambda rng: (lambda x: pool.adaptive_avg_pool2d(x, (3, 2)), [_normal(rng, 2, 2, 5, 7)]),
            api=("F.adaptive_avg_pool2d",),
        ),
        Entry(
            "cross_entropy",
            (loss.CrossEntropy,),
            "F.cross_entropy(x, t, label_smoothing=0.1), x (4, 5), t (4,) class indices",
            lambda rng: (
                lambda x, t: loss.cross_entropy(x, t, label_smoothing=0.1),
                [_normal(rng, 4, 5, scale=2.0), _labels(rng, 4, 5)],
            ),
            api=("F.cross_entropy",),
        ),
        Entry(
            "add",
            (elementwise.Add,),
            "a + b, a (3, 4), b (4,) broadcast",
            lambda rng: (lambda a, b: a + b, [_normal(rng, 3, 4), _normal(rng, 4)]),
            api=("Tensor.__add__", "Tensor.__radd__"),
        ),
        Entry(
            "broadcast_to",
            (broadcast, broadcast.BroadcastTo, broadcast.sum_to),
            "x.expand(2, 3, 4), x (3, 1)",
            lambda rng: (lambda x: x.expand(2, 3, 4), [_normal(rng, 3, 1)]),
            api=("Tensor.expand",),
            aliases=("expand", "sum_to"),
        ),
        # ----- elementwise -----
        Entry(
            "sub",
            (elementwise.Sub,),
            "a - b, a (3, 4), b (3, 1)",
            lambda rng: (lambda a, b: a - b, [_normal(rng, 3, 4), _normal(rng, 3, 1)]),
            api=("Tensor.__sub__", "Tensor.__rsub__"),
        ),
        Entry(
            "mul",
            (elementwise.Mul,),
            "a * b, a (2, 3), b (3,)",
            lambda rng: (lambda a, b: a * b, [_normal(rng, 2, 3), _normal(rng, 3)]),
            api=("Tensor.__mul__", "Tensor.__rmul__"),
        ),
        Entry(
            "div",
            (elementwise.Div,),
            "a / b, a (2, 3), b (3,) away from 0",
            lambda rng: (lambda a, b: a / b, [_normal(rng, 2, 3), _positive(rng, 3)]),
            api=("Tensor.__truediv__", "Tensor.__rtruediv__"),
        ),
        Entry(
            "pow",
            (elementwise.Pow,),
            "a ** b, a (2, 3) in [0.5, 2], b (2, 3)",
            lambda rng: (lambda a, b: a**b, [_positive(rng, 2, 3), _normal(rng, 2, 3)]),
            api=("Tensor.pow", "Tensor.__pow__", "Tensor.__rpow__"),
        ),
        Entry(
            "neg",
            (elementwise.Neg,),
            "-x, x (3, 4)",
            _unary(lambda x: -x, _normal, 3, 4),
            api=("Tensor.__neg__",),
        ),
        Entry(
            "exp",
            (elementwise.Exp,),
            "mr.exp(x), x (3, 4)",
            _unary(elementwise.exp, _normal, 3, 4),
            api=("mr.exp", "Tensor.exp"),
        ),
        Entry(
            "log",
            (elementwise.Log,),
            "mr.log(x), x (3, 4) > 0",
            _unary(elementwise.log, _positive, 3, 4),
            api=("mr.log", "Tensor.log"),
        ),
        Entry(
            "sqrt",
            (elementwise.Sqrt,),
            "mr.sqrt(x), x (3, 4) > 0",
            _unary(elementwise.sqrt, _positive, 3, 4),
            api=("mr.sqrt", "Tensor.sqrt"),
        ),
        Entry(
            "erf",
            (elementwise.Erf,),
            "mr.erf(x), x (3, 4)",
            _unary(elementwise.erf, _normal, 3, 4),
            api=("mr.erf",),
        ),
        Entry(
            "abs",
            (elementwise.Abs,),
            "mr.abs(x), x (3, 4)",
            _unary(elementwise.abs, _away_from, 3, 4),
            api=("mr.abs", "Tensor.abs", "Tensor.__abs__"),
        ),
        Entry(
            "maximum",
            (elementwise.Maximum,),
            "mr.maximum(a, b), a (2, 3), b (3,)",
            lambda rng: (elementwise.maximum, [_normal(rng, 2, 3), _normal(rng, 3)]),
            api=("mr.maximum", "Tensor.maximum"),
        ),
        Entry(
            "minimum",
            (elementwise.Minimum,),
            "mr.minimum(a, b), a (2, 3), b (3,)",
            lambda rng: (elementwise.minimum, [_normal(rng, 2, 3), _normal(rng, 3)]),
            api=("mr.minimum", "Tensor.minimum"),
        ),
        Entry(
            "clamp",
            (elementwise.Clamp, elementwise.ClampTensor),
            "mr.clamp(x, -0.5, 0.5), x (3, 4)",
            lambda rng: (
                lambda x: elementwise.clamp(x, -0.5, 0.5),
                [_away_from(rng, 3, 4, points=(-0.5, 0.5))],
            ),
            api=("mr.clamp", "Tensor.clamp"),
        ),
        Entry(
            "sigmoid",
            (activation.Sigmoid,),
            "F.sigmoid(x), x (3, 4)",
            _unary(activation.sigmoid, _normal, 3, 4),
            api=("F.sigmoid", "mr.sigmoid", "Tensor.sigmoid"),
        ),
        Entry(
            "tanh",
            (activation.Tanh,),
            "F.tanh(x), x (3, 4)",
            _unary(activation.tanh, _normal, 3, 4),
            api=("F.tanh", "mr.tanh", "Tensor.tanh"),
        ),
        Entry(
            "softmax",
            (activation.Softmax,),
            "F.softmax(x, dim=1), x (2, 4)",
            lambda rng: (lambda x: activation.softmax(x, dim=1), [_normal(rng, 2, 4, scale=2.0)]),
            api=("F.softmax", "mr.softmax", "Tensor.softmax"),
        ),
        Entry(
            "log_softmax",
            (activation.LogSoftmax,),
            "F.log_softmax(x, dim=-1), x (2, 4)",
            lambda rng: (lambda x: activation.log_softmax(x, dim=-1), [_normal(rng, 2, 4, scale=2.0)]),
            api=("F.log_softmax", "mr.log_softmax", "Tensor.log_softmax"),
        ),
        Entry(
            "nll_loss",
            (loss.NLLLoss,),
            "F.nll_loss(x, t), x (4, 5), t (4,) class indices",
            lambda rng: (loss.nll_loss, [_normal(rng, 4, 5), _labels(rng, 4, 5)]),
            api=("F.nll_loss",),
        ),
        # ----- reductions -----
        Entry(
            "sum",
            (reduction.Sum,),
            "x.sum(dim=1), x (2, 3, 4)",
            lambda rng: (lambda x: x.sum(dim=1), [_normal(rng, 2, 3, 4)]),
            api=("mr.sum", "Tensor.sum"),
        ),
        Entry(
            "mean",
            (reduction.Mean,),
            "x.mean(dim=(0, 2)), x (2, 3, 4)",
            lambda rng: (lambda x: x.mean(dim=(0, 2)), [_normal(rng, 2, 3, 4)]),
            api=("mr.mean", "Tensor.mean"),
        ),
        Entry(
            "max",
            (reduction.MaxAll, reduction.MaxDim),
            "x.max(dim=1).values + x.max(), x (3, 4) of distinct values",
            lambda rng: (lambda x: x.max(dim=1)[0] + x.max(), [_distinct(rng, 3, 4)]),
            api=("mr.max", "Tensor.max"),
        ),
        Entry(
            "min",
            (reduction.MaxAll, reduction.MaxDim),
            "x.min(dim=0).values + x.min(), x (3, 4) of distinct values",
            lambda rng: (lambda x: x.min(dim=0)[0] + x.min(), [_distinct(rng, 3, 4)]),
            api=("mr.min", "Tensor.min"),
        ),
        Entry(
            "topk",
            (reduction.TopK,),
            "x.topk(2, dim=1).values, x (3, 4) of distinct values",
            lambda rng: (lambda x: x.topk(2, dim=1)[0], [_distinct(rng, 3, 4)]),
            api=("mr.topk", "Tensor.topk"),
        ),
        # ----- matrix products -----
        Entry(
            "matmul",
            (linalg.MatMul,),
            "a @ b, a (2, 3, 4), b (4, 2) broadcast over the batch",
            lambda rng: (lambda a, b: a @ b, [_normal(rng, 2, 3, 4), _normal(rng, 4, 2)]),
            api=("mr.matmul", "Tensor.matmul", "Tensor.__matmul__"),
        ),
        # ----- shape ops -----
        Entry(
            "reshape",
            (shape.Reshape,),
            "x.reshape(4, 6), x (2, 3, 4)",
            lambda rng: (lambda x: x.reshape(4, 6), [_normal(rng, 2, 3, 4)]),
            api=("mr.reshape", "Tensor.reshape", "Tensor.view"),
            aliases=("view",),
        ),
        Entry(
            "flatten",
            (shape.Reshape,),
            "x.flatten(1), x (2, 3, 4)",
            lambda rng: (lambda x: x.flatten(1), [_normal(rng, 2, 3, 4)]),
            api=("mr.flatten", "Tensor.flatten"),
        ),
        Entry(
            "unsqueeze",
            (shape.Reshape,),
            "x.unsqueeze(1), x (2, 3)",
            lambda rng: (lambda x: x.unsqueeze(1), [_normal(rng, 2, 3)]),
            api=("mr.unsqueeze", "Tensor.unsqueeze"),
        ),
        Entry(
            "squeeze",
            (shape.Reshape,),
            "x.squeeze(1), x (2, 1, 3)",
            lambda rng: (lambda x: x.squeeze(1), [_normal(rng, 2, 1, 3)]),
            api=("mr.squeeze", "Tensor.squeeze"),
        ),
        Entry(
            "permute",
            (shape.Permute,),
            "x.permute(2, 0, 1), x (2, 3, 4)",
            lambda rng: (lambda x: x.permute(2, 0, 1), [_normal(rng, 2, 3, 4)]),
            api=("mr.permute", "Tensor.permute"),
        ),
        Entry(
            "transpose",
            (shape.Permute,),
            "x.transpose(0, 2), x (2, 3, 4)",
            lambda rng: (lambda x: x.transpose(0, 2), [_normal(rng, 2, 3, 4)]),
            api=("mr.transpose", "Tensor.transpose"),
        ),
        Entry(
            "getitem",
            (shape.GetItem,),
            "x[[0, 2, 0]], x (3, 4) (row 0 taken twice)",
            lambda rng: (lambda x: x[[0, 2, 0]], [_normal(rng, 3, 4)]),
            api=("Tensor.__getitem__",),
        ),
        Entry(
            "setitem",
            (shape.SetItem,),
            "y[0] = v, y = x * 1, x (3, 4), v (4,)",
            lambda rng: (lambda x, v: shape.set_item(x * 1, 0, v), [_normal(rng, 3, 4), _normal(rng, 4)]),
            api=("Tensor.__setitem__",),
        ),
        Entry(
            "cat",
            (shape.Cat,),
            "mr.cat([a, b], dim=1), a (2, 3), b (2, 2)",
            lambda rng: (lambda a, b: shape.cat([a, b], dim=1), [_normal(rng, 2, 3), _normal(rng, 2, 2)]),
            api=("mr.cat",),
        ),
        Entry(
            "stack",
            (shape.Stack,),
            "mr.stack([a, b], dim=1), a, b (2, 3)",
            lambda rng: (lambda a, b: shape.stack([a, b], dim=1), [_normal(rng, 2, 3), _normal(rng, 2, 3)]),
            api=("mr.stack",),
        ),
        Entry(
            "pad",
            (shape.Pad,),
            "F.pad(x, (1, 2, -1, 1)), x (2, 3, 4): columns padded, rows cropped then padded",
            lambda rng: (lambda x: shape.pad(x, (1, 2, -1, 1)), [_normal(rng, 2, 3, 4)]),
            api=("F.pad",),
        ),
        Entry(
            "to",
            (shape.ToDevice, shape.ToDtype),
            "ToDtype(float64)(ToDevice('cpu')(x)), x (3, 4) "
            "(x.to() of a CPU float64 x would return x itself)",
            lambda rng: (lambda x: shape.to_dtype(shape.to_device(x, "cpu"), float64), [_normal(rng, 3, 4)]),
            api=("Tensor.to", "Tensor.cpu"),
            aliases=("cpu",),
        ),
        # ----- dropout -----
        Entry(
            "dropout",
            (dropout.Dropout,),
            "F.dropout(x, p=0.5) under mr.manual_seed(0), x (3, 4)",
            _unary(_dropout, _normal, 3, 4),
            api=("F.dropout",),
        ),
    ]
)


def get(name: str) -> Entry:
    """The entry of ``name``: its name (``relu``), an alias (``view``) or a public spelling (``F.relu``,
    ``Tensor.__add__``). Raises UnknownOpError, with the closest names, when none has it."""
    return REGISTRY.get(name)


def find(name: str) -> Entry | None:
    """Like ``get``, but None for an unknown name."""
    return REGISTRY.find(name)


def names() -> list[str]:
    """The entries' names, in order (docs/backward.md's order for the ResNet's ops, then by kind)."""
    return REGISTRY.names()


def aliases() -> dict[str, str]:
    """Each alias (``view``, ``cpu``, ``expand``, ``sum_to``) -> the name of its entry."""
    return REGISTRY.aliases()


def api() -> dict[str, str]:
    """Each public spelling (``F.relu``, ``mr.exp``, ``Tensor.__add__``) -> the name of its entry."""
    return REGISTRY.api()
