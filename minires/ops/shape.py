"""Shape ops: reshape/view/flatten, permute/transpose, (un)squeeze, expand, indexing, cat/stack, constant
padding, and the moves between dtypes and devices. None of them changes a value, so each backward only puts
the gradient back where its element came from.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import backend
from ..backend import get_array_module, refuse_wrapped_indices
from ..errors import DeviceError, ShapeError
from ..function import Function
from ..tensor import Tensor, as_dtype, is_dtype_name, promote_dtypes
from .broadcast import BroadcastTo, sum_to
from .reduction import dim_alias


class Reshape(Function):
    r"""y = x with shape ``shape`` (the same elements in row-major order).

    Backward: element k of y is element k of x, so dx = g reshaped to x's shape.
    """

    may_view = True  # its output may be a view of x's array (Function.may_view)

    saved = ("x_shape",)

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.shape = shape

    def forward(self, x: Any) -> Any:
        self.x_shape = x.shape
        return x.reshape(self.shape)

    def backward(self, g: Any) -> Any:
        return g.reshape(self.x_shape)


class Permute(Function):
    r"""y = x with its axes reordered: y.shape[i] = x.shape[dims[i]].

    Backward: undo the permutation, dx = g permuted by the inverse order argsort(dims).
    """

    may_view = True  # its output may be a view of x's array (Function.may_view)

    saved = ()

    def __init__(self, dims: tuple[int, ...]) -> None:
        self.dims = dims

    def forward(self, x: Any) -> Any:
        return x.transpose(self.dims)

    def backward(self, g: Any) -> Any:
        return g.transpose(tuple(np.argsort(self.dims)))


class GetItem(Function):
    r"""y = x[index] (basic slicing, integer and boolean array indexing).

    Backward: each y element is one x element, so dx is zero except at the indexed positions, where
    the gradients are added (an index that repeats an element sends it the sum of the gradients).
    """

    may_view = True  # its output may be a view of x's array (Function.may_view)

    saved = ("x_shape",)

    def __init__(self, index: Any) -> None:
        self.index = index

    def forward(self, x: Any) -> Any:
        self.x_shape = x.shape
        refuse_wrapped_indices(x, self.index)  # CuPy would wrap them around
        return x[self.index]

    def backward(self, g: Any) -> Any:
        xp = get_array_module(g)
        dx = xp.zeros(self.x_shape, dtype=g.dtype)
        if _is_basic(self.index):
            dx[self.index] = g  # a basic index names each element at most once
        else:
            xp.add.at(dx, self.index, g)
        return dx


class SetItem(Function):
    r"""y = x with y[index] = v: ``x[index] = v`` (and ``fill_``, ``copy_``) recorded in the graph, as
    PyTorch records an assignment into a tensor that requires grad or of a value that does. v is
    broadcast to the indexed shape (x's dtype); x's other elements are kept.

    Backward: an element of y at an indexed position is a value of v, any other the element of x, so
        dx = g with zeros at the indexed positions,   dv = sum_to(g[index], v.shape)
    (sum_to undoes v's broadcast). An index that names an element twice keeps the last write, as NumPy's
    assignment does, and both writes' values get the gradient there (PyTorch leaves that case undefined).
    """

    saved = ("v_shape",)

    def __init__(self, index: Any) -> None:
        self.index = index

    def forward(self, x: Any, v: Any) -> Any:
        self.v_shape = v.shape
        refuse_wrapped_indices(x, self.index)  # CuPy would wrap them around
        y = x.copy()
        y[self.index] = v
        return y

    def backward(self, g: Any) -> tuple[Any, Any]:
        dx = dv = None
        if self.needs_input_grad[0]:
            dx = g.copy()
            dx[self.index] = 0
        if self.needs_input_grad[1]:
            g_v = g[self.index]
            lead = len(self.v_shape) - g_v.ndim  # v may carry leading 1s beyond the indexed block
            dv = sum_to(g_v.reshape((1,) * lead + g_v.shape) if lead > 0 else g_v, self.v_shape)
        return dx, dv


def _raw_index(x: Tensor, index: Any) -> Any:
    """An index as NumPy (CuPy) takes it: Tensors as their arrays, a list as an array, as torch reads them."""
    if isinstance(index, Tensor):
        return index.data
    if isinstance(index, tuple):
        return tuple(i.data if isinstance(i, Tensor) else i for i in index)
    if isinstance(index, list):
        return get_array_module(x.data).asarray(index)
    return index


def set_item(x: Tensor, index: Any, value: Any) -> Tensor:
    """x with ``x[index] = value`` as a new tensor in the graph (``SetItem``); the Tensor's in-place
    ``__setitem__``, ``fill_`` and ``copy_`` take it when the graph must record them (tensor.py)."""
    index = _raw_index(x, index)
    v = value if isinstance(value, Tensor) else Tensor._wrap(get_array_module(x.data).asarray(value))
    if v.device != x.device:
        raise DeviceError(f"__setitem__: the value is on {v.device} but the tensor is on {x.device}")
    if v.dtype != x.dtype:
        v = v.to(x.dtype)
    target = x.data[index].ndim if _is_basic(index) else None  # a view: no copy
    while target is not None and v.ndim > target and v.shape[0] == 1:  # torch drops a value's leading 1s
        v = v.reshape(v.shape[1:])
    try:
        return SetItem(index)(x, v)
    except (IndexError, ValueError) as exc:
        raise ShapeError(
            f"__setitem__: cannot assign a value of shape {v.shape} at index {index!r} of a tensor of shape "
            f"{x.shape}: {exc}"
        ) from None


def _is_basic(index: Any) -> bool:
    items = index if isinstance(index, tuple) else (index,)
    return all(isinstance(i, (int, slice)) or i is None or i is Ellipsis for i in items)


class Cat(Function):
    r"""y = the inputs joined along ``dim``.

    Backward: each input's gradient is its slice of g along ``dim``.
    """

    saved = ("sizes",)

    def __init__(self, dim: int) -> None:
        self.dim = dim

    def forward(self, *xs: Any) -> Any:
        self.sizes = [x.shape[self.dim] for x in xs]
        return get_array_module(*xs).concatenate(xs, axis=self.dim)

    def backward(self, g: Any) -> tuple[Any, ...]:
        xp = get_array_module(g)
        return tuple(xp.split(g, np.cumsum(self.sizes)[:-1].tolist(), axis=self.dim))


class Stack(Function):
    r"""y = the inputs stacked along a new axis ``dim``.

    Backward: input i's gradient is g[..., i, ...] (index i along ``dim``).
    """

    saved = ()

    def __init__(self, dim: int) -> None:
        self.dim = dim

    def forward(self, *xs: Any) -> Any:
        return get_array_module(*xs).stack(xs, axis=self.dim)

    def backward(self, g: Any) -> tuple[Any, ...]:
        xp = get_array_module(g)
        return tuple(xp.take(g, i, axis=self.dim) for i in range(g.shape[self.dim]))


class Pad(Function):
    r"""y = x with a border of the constant ``value``: ``widths`` gives (before, after) for each dim of x;
    a negative width crops instead (torch's F.pad with mode="constant").

    Backward: each y element is either an x element, shifted by the widths before it, or the constant,
    which does not depend on x. So dx = g cut back to the x elements, g[max(0, before) : size - max(0,
    after)] along each dim, and dx = 0 for the x elements that a negative width cropped.
    Shapes: x (n_0, n_1, ...); y (n_0 + before_0 + after_0, n_1 + before_1 + after_1, ...).
    """

    saved = ("x_shape",)

    def __init__(self, widths: tuple[tuple[int, int], ...], value: float) -> None:
        self.widths, self.value = widths, value

    def _crop(self, shape: tuple[int, ...]) -> tuple[slice, ...]:
        """The x elements that stay (a negative width removes some)."""
        return tuple(slice(max(0, -b), n - max(0, -a)) for (b, a), n in zip(self.widths, shape, strict=True))

    def forward(self, x: Any) -> Any:
        xp = get_array_module(x)
        self.x_shape = x.shape
        grow = tuple((max(0, b), max(0, a)) for b, a in self.widths)
        return xp.pad(x[self._crop(x.shape)], grow, mode="constant", constant_values=self.value)

    def backward(self, g: Any) -> Any:
        inner = tuple(slice(max(0, b), n - max(0, a)) for (b, a), n in zip(self.widths, g.shape, strict=True))
        if all(b >= 0 and a >= 0 for b, a in self.widths):
            return g[inner]
        dx = get_array_module(g).zeros(self.x_shape, dtype=g.dtype)
        dx[self._crop(self.x_shape)] = g[inner]
        return dx


class ToDtype(Function):
    r"""y = x converted to ``dtype``.  Backward: dx = g converted back to x's dtype."""

    may_view = True  # its output may be a view of x's array (Function.may_view)

    saved = ("x_dtype",)

    def __init__(self, dtype: Any) -> None:
        self.dtype = dtype

    def forward(self, x: Any) -> Any:
        self.x_dtype = x.dtype
        return x.astype(self.dtype)

    def backward(self, g: Any) -> Any:
        return g.astype(self.x_dtype)


class ToDevice(Function):
    r"""y = x copied to ``device``.  Backward: dx = g copied back to x's device."""

    may_view = True  # its output may be a view of x's array (Function.may_view)

    saved = ("x_device",)

    def __init__(self, device: str) -> None:
        self.device = device

    def forward(self, x: Any) -> Any:
        self.x_device = backend.device_of(x)
        return backend.to_device(x, self.device)

    def backward(self, g: Any) -> Any:
        return backend.to_device(g, self.x_device)


class Clone(Function):
    r"""y = a copy of x.  Backward: dx = g."""

    saved = ()

    def forward(self, x: Any) -> Any:
        return x.copy()

    def backward(self, g: Any) -> Any:
        return g


# ----- wrappers --------------------------------------------------------------------------------------
def _dim(op: str, dim: int, ndim: int) -> int:
    if not -ndim <= dim < ndim:
        raise ShapeError(f"{op}: dim {dim} is out of range for a tensor with {ndim} dimensions")
    return dim % ndim


def _shape_args(shape: tuple) -> tuple:
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        return tuple(shape[0])
    return tuple(shape)


def reshape(x: Tensor, *shape: Any) -> Tensor:
    shape = tuple(int(s) for s in _shape_args(shape))
    known = 1
    for s in shape:
        known *= s if s != -1 else 1
    if shape.count(-1) > 1 or (
        -1 in shape and (known == 0 or x.numel() % known) or -1 not in shape and known != x.numel()
    ):
        raise ShapeError(
            f"reshape: shape {shape} is invalid for a tensor of shape {x.shape} ({x.numel()} elements)"
        )
    return Reshape(shape)(x)


def flatten(x: Tensor, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    """Merge dims ``start_dim`` .. ``end_dim`` into one: (N, C, H, W) -> (N, C*H*W) for start_dim=1."""
    if x.ndim == 0:
        return reshape(x, 1)
    s, e = _dim("flatten", start_dim, x.ndim), _dim("flatten", end_dim, x.ndim)
    if s > e:
        raise ShapeError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim} for shape {x.shape}")
    return reshape(x, *x.shape[:s], -1 if x.numel() else 0, *x.shape[e + 1 :]) if s != e else x


def permute(x: Tensor, *dims: Any) -> Tensor:
    dims = tuple(_dim("permute", int(d), x.ndim) for d in _shape_args(dims))
    if sorted(dims) != list(range(x.ndim)):
        raise ShapeError(
            f"permute: dims {dims} are not a permutation of the {x.ndim} dimensions of {x.shape}"
        )
    return Permute(dims)(x)


def transpose(x: Tensor, dim0: int, dim1: int) -> Tensor:
    if x.ndim == 0:
        return x
    dims = list(range(x.ndim))
    a, b = _dim("transpose", dim0, x.ndim), _dim("transpose", dim1, x.ndim)
    dims[a], dims[b] = dims[b], dims[a]
    return Permute(tuple(dims))(x)


def unsqueeze(x: Tensor, dim: int | None = None, *, axis: int | None = None) -> Tensor:
    dim, _ = dim_alias("unsqueeze", dim, axis)
    if dim is None:
        raise TypeError("unsqueeze: missing the dim to insert")
    d = _dim("unsqueeze", dim, x.ndim + 1)
    return Reshape(x.shape[:d] + (1,) + x.shape[d:])(x)


def squeeze(x: Tensor, dim: Any = None, *, axis: Any = None) -> Tensor:
    """x without its axes of size 1: all of them (``dim`` None), or those among ``dim`` (an int, or a
    tuple or list of them, as torch 2 takes; a named axis longer than 1 stays)."""
    dim, _ = dim_alias("squeeze", dim, axis)
    if dim is None:
        return Reshape(tuple(s for s in x.shape if s != 1))(x)
    dims = list(dim) if isinstance(dim, (tuple, list)) else [dim]
    if x.ndim == 0:
        for d in dims:
            _dim("squeeze", d, 1)  # a 0-d tensor takes dim 0 or -1, as torch
        return x
    axes = [_dim("squeeze", d, x.ndim) for d in dims]
    if len(set(axes)) != len(axes):
        raise ShapeError(f"squeeze: dim {dim} names a dimension more than once")
    drop = {a for a in axes if x.shape[a] == 1}
    if not drop:
        return x
    return Reshape(tuple(s for i, s in enumerate(x.shape) if i not in drop))(x)


def expand(x: Tensor, *shape: Any) -> Tensor:
    """Broadcast to ``shape``; -1 keeps a dimension's size (as ``torch.Tensor.expand``)."""
    shape = _shape_args(shape)
    lead = len(shape) - x.ndim
    if lead < 0:
        raise ShapeError(f"expand: shape {shape} has fewer dimensions than the tensor's {x.shape}")
    full = tuple(x.shape[i - lead] if s == -1 else int(s) for i, s in enumerate(shape))
    for i, n in enumerate(x.shape):
        if n != 1 and n != full[i + lead]:
            raise ShapeError(f"expand: cannot expand shape {x.shape} to {tuple(shape)}")
    return BroadcastTo(full)(x)


def broadcast_to(x: Tensor, shape: Sequence[int]) -> Tensor:
    return expand(x, *shape)


def getitem(x: Tensor, index: Any) -> Tensor:
    index = _raw_index(x, index)
    try:
        return GetItem(index)(x)
    except IndexError as exc:
        raise IndexError(
            f"getitem: index {index!r} is invalid for a tensor of shape {x.shape}: {exc}"
        ) from None


def _check_joinable(op: str, tensors: Sequence[Tensor], dim: int | None) -> None:
    if not tensors:
        raise ValueError(f"{op}: expected a non-empty sequence of tensors")
    devices = {t.device for t in tensors}
    if len(devices) > 1:
        raise DeviceError(f"{op}: expected all tensors on the same device, got {sorted(devices)}")
    first = tensors[0].shape
    for t in tensors[1:]:
        same = (
            t.shape == first
            if dim is None
            else len(t.shape) == len(first)
            and all(a == b for i, (a, b) in enumerate(zip(t.shape, first, strict=True)) if i != dim)
        )
        if not same:
            raise ShapeError(f"{op}: tensor shapes {first} and {t.shape} do not match (dim={dim})")


def cat(tensors: Sequence[Tensor], dim: int | None = None, *, axis: int | None = None) -> Tensor:
    dim = dim_alias("cat", dim, axis)[0] or 0
    tensors = list(tensors)
    _check_joinable("cat", tensors, None if not tensors else _dim("cat", dim, tensors[0].ndim))
    return Cat(_dim("cat", dim, tensors[0].ndim))(*_common_dtype(tensors))


def stack(tensors: Sequence[Tensor], dim: int | None = None, *, axis: int | None = None) -> Tensor:
    dim = dim_alias("stack", dim, axis)[0] or 0
    tensors = list(tensors)
    _check_joinable("stack", tensors, None)
    return Stack(_dim("stack", dim, tensors[0].ndim + 1))(*_common_dtype(tensors))


def _common_dtype(tensors: list[Tensor]) -> list[Tensor]:
    dtype = promote_dtypes([t.dtype for t in tensors])
    return [t if t.dtype == dtype else to_dtype(t, dtype) for t in tensors]


PAD_MODES = ("constant", "reflect", "replicate", "circular")


def pad(
    input: Tensor,  # noqa: A002 - PyTorch's name
    pad: Sequence[int],
    mode: str = "constant",
    value: float | None = None,
) -> Tensor:
    """Pad with the constant ``value`` (0 when None), as ``torch.nn.functional.pad``: ``pad`` gives
    (before, after) pairs from the last dim backwards, (left, right, top, bottom, front, back, ...), so
    ``F.pad(x, (1, 1, 2, 2))`` adds 1 column each side and 2 rows above and below; negative widths crop.
    Only mode="constant"; "reflect", "replicate" and "circular" raise NotImplementedError."""
    if not isinstance(input, Tensor):
        raise TypeError(f"pad: expected input to be a Tensor, got {type(input).__name__}")
    if mode != "constant":
        if mode in PAD_MODES:
            raise NotImplementedError(
                f"pad: mode={mode!r} (torch.nn.functional.pad's {mode} padding) is not implemented in "
                "minires; only mode='constant' is (F.pad(x, pad, value=0), nn.ZeroPad2d, nn.ConstantPad2d)"
            )
        raise ValueError(f"pad: unknown padding mode {mode!r}; expected one of {', '.join(PAD_MODES)}")
    widths = [int(p) for p in pad]
    if len(widths) % 2 or len(widths) // 2 > input.ndim:
        raise ShapeError(
            f"pad: the padding {tuple(pad)} must have an even length of at most twice the {input.ndim} "
            f"dims of the input of shape {input.shape}"
        )
    pairs = [(0, 0)] * input.ndim
    for i in range(len(widths) // 2):  # pair i pads the dim i-th from the last
        pairs[input.ndim - 1 - i] = (widths[2 * i], widths[2 * i + 1])
    for (b, a), n in zip(pairs, input.shape, strict=True):
        if n + b + a < 0:
            raise ShapeError(
                f"pad: the padding {tuple(pad)} crops more than the size {n} of a dim of the input of shape "
                f"{input.shape}"
            )
    return Pad(tuple(pairs), 0.0 if value is None else value)(input)


def to_dtype(x: Tensor, dtype: Any) -> Tensor:
    return ToDtype(dtype)(x)


def to_device(x: Tensor, device: str) -> Tensor:
    return ToDevice(device)(x)


def clone(x: Tensor) -> Tensor:
    return Clone()(x)


def to(
    x: Tensor,
    *args: Any,
    device: Any = None,
    dtype: Any = None,
    non_blocking: bool = False,
    copy: bool = False,
) -> Tensor:
    """``x.to("cuda")``, ``x.to(mr.float64)``, ``x.to(device, dtype)``, ``x.to(other)`` (other's device
    and dtype); differentiable, as PyTorch's (a ToDtype and/or a ToDevice node). ``non_blocking`` is
    accepted and has no effect; ``copy=True`` returns a new tensor even when nothing changes."""
    for a in args:
        if isinstance(a, Tensor):
            device, dtype = a.device, a.dtype
        elif isinstance(a, str) and a.split(":")[0] in ("cpu", "cuda"):
            device = a
        elif isinstance(a, (np.dtype, type)) or isinstance(a, str) and is_dtype_name(a):
            dtype = a
        else:  # a device object with a .type, as torch.device has
            device = a
    out = x
    if dtype is not None and as_dtype(dtype) != x.dtype:
        out = to_dtype(out, as_dtype(dtype))
    if device is not None and backend.normalize_device(device) != x.device:
        out = to_device(out, backend.normalize_device(device))
    return clone(out) if copy and out is x else out
