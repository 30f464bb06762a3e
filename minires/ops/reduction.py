"""Reductions: sum, mean, max/min (over all elements or along a dim), argmax/argmin, topk."""

from __future__ import annotations

import builtins
import operator
from collections import namedtuple
from typing import Any

from ..backend import get_array_module
from ..errors import ShapeError
from ..function import Function
from ..tensor import Tensor, int64
from . import elementwise

ValuesIndices = namedtuple("ValuesIndices", ["values", "indices"])  # what torch.max(x, dim) returns


def dim_alias(op: str, dim: Any, axis: Any, keepdim: bool = False, keepdims: Any = None) -> tuple[Any, bool]:
    """``(dim, keepdim)`` with torch's aliases resolved: ``axis`` for ``dim``, ``keepdims`` for ``keepdim``
    (NumPy's spellings, which torch accepts and the d2l book writes: ``y_hat.argmax(axis=1)``)."""
    if axis is not None:
        if dim is not None:
            raise TypeError(f"{op}: got both dim and its alias axis; give one of them")
        dim = axis
    return dim, bool(keepdim if keepdims is None else keepdims)


def as_input(op: str, x: Any) -> Tensor:
    """``x`` itself, or a raw NumPy/CuPy array wrapped as a Tensor: ``mr.max(outputs.data, 1)`` works as in
    torch, where ``.data`` is a tensor (in minires it is the array)."""
    if isinstance(x, Tensor):
        return x
    if isinstance(x, get_array_module(x).ndarray):
        return Tensor._wrap(x)
    raise TypeError(f"{op}: expected a Tensor, got {type(x).__name__}")


def normalize_dims(op: str, dim: Any, ndim: int) -> tuple[int, ...] | None:
    """``dim`` (None, an int, or a sequence of ints, negatives allowed) as a sorted tuple of axes."""
    if dim is None:
        return None
    dims = (dim,) if isinstance(dim, int) else tuple(dim)
    nd = builtins.max(ndim, 1)
    for d in dims:
        if not -nd <= d < nd:
            raise ShapeError(f"{op}: dim {d} is out of range for a tensor with {ndim} dimensions")
    out = tuple(sorted({d % nd for d in dims}))
    if len(out) != len(dims):
        raise ShapeError(f"{op}: dim {dim} names a dimension more than once")
    return out if ndim else None


def reduced_dims(op: str, dim: Any, ndim: int) -> tuple[int, ...] | None:
    """``normalize_dims`` for sum and mean, where an empty sequence of dims (``dim=()``, ``dim=[]``) means
    every dim, as in torch (``x.sum(dim=())`` is the sum of all elements)."""
    if dim is not None and not isinstance(dim, int) and len(tuple(dim)) == 0:
        return None
    return normalize_dims(op, dim, ndim)


def _expand_back(g: Any, x_shape: tuple[int, ...], axes: tuple[int, ...] | None, keepdim: bool) -> Any:
    """Reshape a reduced gradient so that it broadcasts against x (re-insert the reduced axes as size 1)."""
    if axes is None:
        return g.reshape((1,) * len(x_shape))
    if not keepdim:
        g = get_array_module(g).expand_dims(g, axes)
    return g


class Sum(Function):
    r"""y = sum of x over ``axes`` (all of them when None).

    Backward: every summed x_i has dy/dx_i = 1, so dx = g broadcast back to x's shape.
    Shapes: x (*); y x's shape without ``axes`` (or with 1s there when ``keepdim``).
    """

    saved = ("x_shape",)

    def __init__(self, axes: tuple[int, ...] | None, keepdim: bool) -> None:
        self.axes, self.keepdim = axes, keepdim

    def forward(self, x: Any) -> Any:
        self.x_shape = x.shape
        return x.sum(axis=self.axes, keepdims=self.keepdim)

    def backward(self, g: Any) -> Any:
        xp = get_array_module(g)
        return xp.broadcast_to(_expand_back(g, self.x_shape, self.axes, self.keepdim), self.x_shape)


class Mean(Function):
    r"""y = (1/m) sum of x over ``axes``, m the number of elements averaged.

    Backward: dy/dx_i = 1/m, so dx = g / m broadcast back to x's shape.
    """

    saved = ("x_shape",)

    def __init__(self, axes: tuple[int, ...] | None, keepdim: bool) -> None:
        self.axes, self.keepdim = axes, keepdim

    def forward(self, x: Any) -> Any:
        self.x_shape = x.shape
        return x.mean(axis=self.axes, keepdims=self.keepdim)

    def backward(self, g: Any) -> Any:
        xp = get_array_module(g)
        m = 1
        for a in range(len(self.x_shape)) if self.axes is None else self.axes:
            m *= self.x_shape[a]
        return xp.broadcast_to(_expand_back(g, self.x_shape, self.axes, self.keepdim) / m, self.x_shape)


class MaxAll(Function):
    r"""y = max (or min) over every element of x.

    Backward: y is the value of the extreme elements; when k elements tie for it, PyTorch shares the
    gradient evenly, dx_i = g / k for each of them and 0 elsewhere.
    """

    saved = ("ties",)

    def __init__(self, largest: bool) -> None:
        self.largest = largest

    def forward(self, x: Any) -> Any:
        y = x.max() if self.largest else x.min()
        self.ties = x == y
        return y

    def backward(self, g: Any) -> Any:
        return g * self.ties / self.ties.sum()


class MaxDim(Function):
    r"""y = max (or min) of x along ``dim``, with the index of the first extreme element.

    Backward: y_j = x_(i_j, j), so dy_j/dx = 1 at the selected index i_j and 0 elsewhere: dx is g
    scattered to the indices (ties: the first occurrence, as PyTorch's CPU kernel returns it).
    """

    saved = ("x_shape", "idx")

    def __init__(self, dim: int, keepdim: bool, largest: bool) -> None:
        self.dim, self.keepdim, self.largest = dim, keepdim, largest

    def forward(self, x: Any) -> Any:
        xp = get_array_module(x)
        self.x_shape = x.shape
        idx = (x.argmax if self.largest else x.argmin)(axis=self.dim, keepdims=True)  # first extreme element
        self.idx = idx
        y = xp.take_along_axis(x, idx, axis=self.dim)
        return y if self.keepdim else y.squeeze(self.dim)

    def backward(self, g: Any) -> Any:
        xp = get_array_module(g)
        if not self.keepdim:
            g = xp.expand_dims(g, self.dim)
        dx = xp.zeros(self.x_shape, dtype=g.dtype)
        xp.put_along_axis(dx, self.idx, g, axis=self.dim)
        return dx


class TopK(Function):
    r"""y = the k largest (or smallest) elements of x along ``dim``, in order, and their indices i.

    Backward: y_j = x_(i_j) along ``dim``, so dy_j/dx = 1 at index i_j and 0 elsewhere: dx is g scattered
    to the k indices (all distinct, so nothing adds up) and 0 elsewhere; max along a dim is the case k = 1.
    Shapes: x (..., n, ...); y, i (..., k, ...), the size n of ``dim`` replaced by k.
    """

    saved = ("x_shape", "idx")

    def __init__(self, k: int, dim: int, largest: bool) -> None:
        self.k, self.dim, self.largest = k, dim, largest

    def forward(self, x: Any) -> Any:
        xp = get_array_module(x)
        self.x_shape = x.shape
        order = xp.argsort(x, axis=self.dim)  # ascending along dim
        if self.largest:
            order = xp.flip(order, axis=self.dim)
        self.idx = xp.take(order, xp.arange(self.k), axis=self.dim)  # (..., k, ...)
        return xp.take_along_axis(x, self.idx, axis=self.dim)

    def backward(self, g: Any) -> Any:
        xp = get_array_module(g)
        dx = xp.zeros(self.x_shape, dtype=g.dtype)
        xp.put_along_axis(dx, self.idx, g, axis=self.dim)
        return dx


def sum(  # noqa: A001 - PyTorch's name
    x: Tensor, dim: Any = None, keepdim: bool = False, *, axis: Any = None, keepdims: Any = None
) -> Tensor:
    x = as_input("sum", x)
    dim, keepdim = dim_alias("sum", dim, axis, keepdim, keepdims)
    axes = reduced_dims("sum", dim, x.ndim)
    if x.dtype.kind in "bi" or x.dtype.kind == "u":
        x = x.to(int64)  # PyTorch sums integers and bools as int64
    return Sum(axes, keepdim)(x)


def mean(
    x: Tensor, dim: Any = None, keepdim: bool = False, *, axis: Any = None, keepdims: Any = None
) -> Tensor:
    x = as_input("mean", x)
    dim, keepdim = dim_alias("mean", dim, axis, keepdim, keepdims)
    if x.dtype.kind != "f":
        raise TypeError(f"mean: expected a floating-point tensor, got {x.dtype}")
    return Mean(reduced_dims("mean", dim, x.ndim), keepdim)(x)


def _one_dim(op: str, dim: Any) -> int | None:
    """``dim`` of max, min, argmax and argmin: None or one int (a NumPy int too); a tuple or list of dims,
    which torch refuses there, is a TypeError (not a reduction over its first dim)."""
    if dim is None:
        return None
    if isinstance(dim, bool) or not hasattr(dim, "__index__"):
        raise TypeError(f"{op}: expected dim to be an int (one dimension), got {dim!r}")
    return operator.index(dim)


def _extreme(op: str, x: Tensor, dim: Any, keepdim: bool, largest: bool) -> Any:
    x = as_input(op, x)
    if isinstance(dim, Tensor):  # max(input, other): the elementwise maximum, as torch.max's overload
        if keepdim:
            raise TypeError(f"{op}(input, other) takes no keepdim: it is the elementwise {op}imum")
        return (elementwise.maximum if largest else elementwise.minimum)(x, dim)
    dim = _one_dim(op, dim)  # torch.max's dim is one int: a tuple is refused
    if x.numel() == 0:
        raise ShapeError(f"{op}: expected a non-empty tensor, got shape {x.shape}")
    if dim is None:
        return MaxAll(largest)(x)
    axes = normalize_dims(op, dim, x.ndim)
    if axes is None:  # a 0-d tensor: its only element
        return ValuesIndices(x, Tensor._wrap(get_array_module(x.data).zeros((), dtype=int64)))
    f = MaxDim(axes[0], keepdim, largest)
    values = f(x)
    idx = f.idx if keepdim else f.idx.squeeze(axes[0])
    return ValuesIndices(values, Tensor._wrap(idx.astype(int64, copy=False)))


def max(  # noqa: A001 - PyTorch's name
    x: Tensor, dim: Any = None, keepdim: bool = False, *, axis: Any = None, keepdims: Any = None
) -> Any:
    """The largest element, or ``(values, indices)`` along ``dim``, or with a Tensor for ``dim`` (torch's
    ``max(input, other)``) the elementwise maximum, as in ``torch.max``."""
    dim, keepdim = dim_alias("max", dim, axis, keepdim, keepdims)
    return _extreme("max", x, dim, keepdim, largest=True)


def min(  # noqa: A001 - PyTorch's name
    x: Tensor, dim: Any = None, keepdim: bool = False, *, axis: Any = None, keepdims: Any = None
) -> Any:
    """The smallest element, or ``(values, indices)`` along ``dim``, or with a Tensor for ``dim`` (torch's
    ``min(input, other)``) the elementwise minimum, as in ``torch.min``."""
    dim, keepdim = dim_alias("min", dim, axis, keepdim, keepdims)
    return _extreme("min", x, dim, keepdim, largest=False)


def _arg(op: str, x: Tensor, dim: int | None, keepdim: bool, largest: bool) -> Tensor:
    x = as_input(op, x)
    data = x.data
    fn = data.argmax if largest else data.argmin
    dim = _one_dim(op, dim)  # torch.argmax's dim is one int
    if dim is None:
        idx = fn()
        if keepdim:
            idx = idx.reshape((1,) * x.ndim)
        return Tensor._wrap(get_array_module(data).asarray(idx, dtype=int64))
    axes = normalize_dims(op, dim, x.ndim)
    if axes is None:
        return Tensor._wrap(get_array_module(data).zeros((), dtype=int64))
    return Tensor._wrap(fn(axis=axes[0], keepdims=keepdim).astype(int64, copy=False))


def argmax(
    x: Tensor, dim: int | None = None, keepdim: bool = False, *, axis: Any = None, keepdims: Any = None
) -> Tensor:
    """Index of the largest element (first one on ties), over all elements or along ``dim``; no gradient."""
    dim, keepdim = dim_alias("argmax", dim, axis, keepdim, keepdims)
    return _arg("argmax", x, dim, keepdim, largest=True)


def argmin(
    x: Tensor, dim: int | None = None, keepdim: bool = False, *, axis: Any = None, keepdims: Any = None
) -> Tensor:
    """Index of the smallest element (first one on ties); no gradient."""
    dim, keepdim = dim_alias("argmin", dim, axis, keepdim, keepdims)
    return _arg("argmin", x, dim, keepdim, largest=False)


def topk(
    x: Tensor,
    k: int,
    dim: int = -1,
    largest: bool = True,
    sorted: bool = True,  # noqa: A002 - PyTorch's name
) -> Any:
    """``(values, indices)`` of the ``k`` largest (``largest=False``: smallest) elements along ``dim``, as
    ``torch.topk``; always in sorted order (torch leaves the order open when ``sorted=False``). The values
    carry the gradient (see ``TopK``), the indices are int64. Ties go to either element."""
    x = as_input("topk", x)
    if x.ndim == 0:
        raise ShapeError("topk: expected a tensor with at least one dimension, got a 0-d tensor")
    axes = normalize_dims("topk", dim, x.ndim)
    d = axes[0]
    if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k <= x.shape[d]:
        raise ShapeError(
            f"topk: k={k!r} is out of range for dim {dim} of size {x.shape[d]} (shape {x.shape})"
        )
    f = TopK(k, d, largest)
    values = f(x)
    return ValuesIndices(values, Tensor._wrap(f.idx.astype(int64, copy=False)))
