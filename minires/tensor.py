"""``Tensor``: an n-dimensional array (NumPy or CuPy) that remembers how it was computed.

A Tensor holds ``data`` (the raw array), and, when it requires a gradient, ``grad_fn``: the ``Function``
node that produced it (``None`` for a leaf, such as a parameter). ``backward()`` walks those nodes
(see ``autograd.py``) and leaves the gradient of each leaf in its ``.grad``.

Creation follows ``torch.tensor``: Python floats become float32, a float64 array stays float64,
integers become int64 (class labels), and ``mr.tensor`` always copies.

This file holds what needs no op: the data and its properties, conversions, in-place updates of the data,
comparisons. The operators and methods that run an op (``x + y``, ``x.sum()``, ``x.reshape()``,
``x.backward()``) are the ops' own functions, installed on the class from one table in
``minires/ops/tensor_methods.py``; their signatures are declared below under ``TYPE_CHECKING`` for
static tools. So this file imports neither the ops nor the autograd engine, and they import it.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from . import backend
from .backend import get_array_module
from .errors import DeviceError, DTypeError, GraphError, ShapeError
from .grad_mode import is_grad_enabled
from .memory_order import ufunc_in_order

float16 = np.dtype("float16")
float32 = np.dtype("float32")
float64 = np.dtype("float64")
int32 = np.dtype("int32")
int64 = np.dtype("int64")
uint8 = np.dtype("uint8")
bool_ = np.dtype("bool")
_DTYPE_NAMES = {
    "float": float32,
    "double": float64,
    "half": float16,
    "long": int64,
    "int": int32,
    "bool": bool_,
}
_TYPE_NAMES = {  # Tensor.type()'s names, as torch's "torch.FloatTensor"
    float32: "FloatTensor",
    float64: "DoubleTensor",
    float16: "HalfTensor",
    int64: "LongTensor",
    int32: "IntTensor",
    uint8: "ByteTensor",
    bool_: "BoolTensor",
}


_OPERATORS = {"add": "__add__", "sub": "__sub__", "mul": "__mul__", "div": "__truediv__"}  # x op= y


def as_dtype(dtype: Any) -> np.dtype | None:
    """Normalize ``"float32"``, ``np.float32`` or ``mr.float32`` to a ``numpy.dtype``; None stays None."""
    if dtype is None:
        return None
    if isinstance(dtype, str) and dtype in _DTYPE_NAMES:
        return _DTYPE_NAMES[dtype]
    try:
        return np.dtype(dtype)
    except TypeError as exc:
        raise DTypeError(f"dtype: cannot interpret {dtype!r} as a dtype") from exc


def is_dtype_name(name: str) -> bool:
    """Whether ``name`` is a dtype's name (``"float32"``, ``"double"``, ...)."""
    try:
        as_dtype(name)
    except DTypeError:
        return False
    return True


def dtype_category(dtype: np.dtype) -> int:
    """PyTorch's categories of dtypes in promotion: bool 0, integers 1, floats 2 (others 3)."""
    return {"b": 0, "i": 1, "u": 1, "f": 2}.get(dtype.kind, 3)


def promote_dtypes(dtypes: list[np.dtype]) -> np.dtype:
    """PyTorch's promotion among values of equal standing (the items of ``torch.tensor``'s nested data, the
    tensors of ``torch.cat`` and ``torch.stack``): the highest category (bool < integer < float) wins, then
    the widest type within it; so int64 with float32 gives float32 (NumPy's result_type: float64), and
    uint8 with int8 gives int16."""
    top = max(dtype_category(d) for d in dtypes)
    return np.result_type(*[d for d in dtypes if dtype_category(d) == top])


_PYTHON_DTYPES = {bool: np.dtype(bool), int: int64, float: float32}  # torch's defaults for Python scalars


def _item_dtypes(data: Any, found: set) -> None:
    """Add to ``found`` the dtype that each value of nested Python data stands for in torch.tensor: Python
    floats the default float32, ints int64, bools bool; NumPy scalars and arrays (and Tensors) their own
    dtype. A level's types are taken at once (``set(map(type, ...))``), so a long flat list costs about
    what NumPy's conversion does. Other types (complex, str) add their NumPy dtype, which tensor refuses."""
    kinds = set(map(type, data))
    nested = False
    for kind in kinds:
        if kind in _PYTHON_DTYPES:
            found.add(_PYTHON_DTYPES[kind])
        elif issubclass(kind, np.generic):
            found.add(np.dtype(kind))
        elif issubclass(kind, (list, tuple, np.ndarray, Tensor)):
            nested = True
        else:
            found.add(np.asarray(next(v for v in data if type(v) is kind)).dtype)
    if nested:  # a level of scalars only (the long one, as a rule) is not walked value by value
        for v in data:
            if isinstance(v, (list, tuple)):
                _item_dtypes(v, found)
            elif isinstance(v, (np.ndarray, Tensor)):
                found.add(v.dtype)


def _default_array(data: Any) -> np.ndarray:
    """Python data (a scalar, or nested lists and tuples of scalars, NumPy scalars and arrays) to a NumPy
    array with PyTorch's dtypes: Python floats float32, ints int64, NumPy values their own dtype, promoted
    together as torch.tensor does (``[np.float64(1.0), 2.0]`` is float64, ``[1, 2.5]`` float32); empty
    data float32."""
    if isinstance(data, (list, tuple)):
        found: set = set()
        _item_dtypes(data, found)
        dtype = promote_dtypes(list(found)) if found else float32
    else:
        dtype = _PYTHON_DTYPES.get(type(data)) or np.asarray(data).dtype
    if dtype_category(dtype) == 3:
        raise DTypeError(f"tensor: cannot make a tensor from data of dtype {dtype}")
    return np.array(data, dtype=dtype)


class Tensor:
    """An array with autograd; see the module docstring."""

    __array_ufunc__ = None  # `ndarray + Tensor` defers to Tensor.__radd__ instead of looping in NumPy
    __hash__ = object.__hash__  # `==` is elementwise, but Tensors stay usable as dict keys

    def __init__(self, data: Any, requires_grad: bool = False) -> None:
        if isinstance(data, Tensor):
            data = data.data
        xp = get_array_module(data)
        self.data = data if isinstance(data, xp.ndarray) else _default_array(data)
        self._grad: Tensor | None = None
        self.grad_fn: Any = None
        self._hooks: list | None = None
        self._post_accumulate_hooks: list | None = None
        self._requires_grad = False
        self._is_view = False  # its array shares memory with another Tensor's (Function.__call__, detach)
        self.requires_grad = requires_grad

    @property
    def grad(self) -> Tensor | None:
        """The gradient that backward accumulates into this tensor (a leaf's, or a non-leaf's after
        ``retain_grad``); None until then."""
        return self._grad

    @grad.setter
    def grad(self, value: Tensor | None) -> None:
        """As torch checks an assigned ``.grad``: None, or a Tensor of this tensor's shape, dtype and
        device (an optimizer or a hand-written step would otherwise go on with a wrong one)."""
        if value is not None:
            if not isinstance(value, Tensor):
                kind = type(value).__name__
                raise TypeError(f"assigned grad expected to be a Tensor or None but got grad of type {kind}")
            if value.shape != self.shape:
                raise ShapeError(
                    f"attempting to assign a gradient of size {list(value.shape)} to a tensor of size "
                    f"{list(self.shape)}. Please ensure that the gradient and the tensor are the same size"
                )
            if value.dtype != self.dtype:
                raise DTypeError(
                    f"attempting to assign a gradient with dtype {value.dtype} to a tensor with dtype "
                    f"{self.dtype}"
                )
            if value.device != self.device:
                raise DeviceError(
                    f"attempting to assign a gradient on {value.device} to a tensor on {self.device}"
                )
        self._grad = value

    if TYPE_CHECKING:  # installed by minires/ops/tensor_methods.py (TENSOR_METHODS); see the module docstring

        def backward(self, gradient: Any = None, retain_graph: bool = False) -> None: ...
        def __add__(self, other: Any) -> Tensor: ...
        def __radd__(self, other: Any) -> Tensor: ...
        def __sub__(self, other: Any) -> Tensor: ...
        def __rsub__(self, other: Any) -> Tensor: ...
        def __mul__(self, other: Any) -> Tensor: ...
        def __rmul__(self, other: Any) -> Tensor: ...
        def __truediv__(self, other: Any) -> Tensor: ...
        def __rtruediv__(self, other: Any) -> Tensor: ...
        def __pow__(self, other: Any) -> Tensor: ...
        def __rpow__(self, other: Any) -> Tensor: ...
        def __matmul__(self, other: Any) -> Tensor: ...
        def __rmatmul__(self, other: Any) -> Tensor: ...
        def __neg__(self) -> Tensor: ...
        def __abs__(self) -> Tensor: ...
        def __getitem__(self, index: Any) -> Tensor: ...
        def mul(self, other: Any) -> Tensor: ...
        def div(self, other: Any) -> Tensor: ...
        def exp(self) -> Tensor: ...
        def log(self) -> Tensor: ...
        def sqrt(self) -> Tensor: ...
        def abs(self) -> Tensor: ...
        def pow(self, exponent: Any) -> Tensor: ...
        def clamp(self, min: Any = None, max: Any = None) -> Tensor: ...  # noqa: A002
        def _set_item(self, index: Any, value: Any) -> Tensor: ...
        def maximum(self, other: Tensor) -> Tensor: ...
        def minimum(self, other: Tensor) -> Tensor: ...
        def relu(self) -> Tensor: ...
        def sigmoid(self) -> Tensor: ...
        def tanh(self) -> Tensor: ...
        def softmax(self, dim: int | None = None, *, axis: int | None = None) -> Tensor: ...
        def log_softmax(self, dim: int | None = None, *, axis: int | None = None) -> Tensor: ...
        def sum(
            self, dim: Any = None, keepdim: bool = False, *, axis: Any = None, keepdims: Any = None
        ) -> Tensor: ...
        def mean(
            self, dim: Any = None, keepdim: bool = False, *, axis: Any = None, keepdims: Any = None
        ) -> Tensor: ...
        def max(
            self, dim: Any = None, keepdim: bool = False, *, axis: Any = None, keepdims: Any = None
        ) -> Any: ...
        def min(
            self, dim: Any = None, keepdim: bool = False, *, axis: Any = None, keepdims: Any = None
        ) -> Any: ...
        def argmax(
            self, dim: Any = None, keepdim: bool = False, *, axis: Any = None, keepdims: Any = None
        ) -> Tensor: ...
        def argmin(
            self, dim: Any = None, keepdim: bool = False, *, axis: Any = None, keepdims: Any = None
        ) -> Tensor: ...
        def topk(self, k: int, dim: int = -1, largest: bool = True, sorted: bool = True) -> Any: ...  # noqa: A002
        def matmul(self, other: Any) -> Tensor: ...
        def reshape(self, *shape: Any) -> Tensor: ...
        def view(self, *shape: Any) -> Tensor: ...
        def flatten(self, start_dim: int = 0, end_dim: int = -1) -> Tensor: ...
        def permute(self, *dims: Any) -> Tensor: ...
        def transpose(self, dim0: int, dim1: int) -> Tensor: ...
        def unsqueeze(self, dim: int | None = None, *, axis: int | None = None) -> Tensor: ...
        def squeeze(self, dim: int | None = None, *, axis: int | None = None) -> Tensor: ...
        def expand(self, *shape: Any) -> Tensor: ...
        def clone(self) -> Tensor: ...
        def to(
            self,
            *args: Any,
            device: Any = None,
            dtype: Any = None,
            non_blocking: bool = False,
            copy: bool = False,
        ) -> Tensor: ...

    @classmethod
    def _wrap(cls, array: Any, requires_grad: bool = False) -> Tensor:
        """Wrap a raw array without copying or checks (ops use this for their results)."""
        t = cls.__new__(cls)
        xp = get_array_module(array)
        t.data = array if isinstance(array, xp.ndarray) else xp.asarray(array)
        t._grad = None
        t.grad_fn = None
        t._hooks = None
        t._post_accumulate_hooks = None
        t._requires_grad = requires_grad
        t._is_view = False
        return t

    @staticmethod
    def _coerce_array(value: Any, like: Any) -> Any:
        """``value`` as an array on the device and with the dtype of ``like``."""
        xp = get_array_module(like)
        if isinstance(value, Tensor):
            value = value.data
        if hasattr(value, "shape"):
            value = backend.to_device(value, backend.device_of(like))
        return xp.asarray(value, dtype=like.dtype)

    # ----- properties -------------------------------------------------------------------------------
    @property
    def requires_grad(self) -> bool:
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, flag: bool) -> None:
        if self.grad_fn is not None and not flag:
            raise GraphError(
                "requires_grad: a non-leaf tensor cannot be set to not require grad; use detach()"
            )
        if flag and self.data.dtype.kind not in "fc":
            raise DTypeError(
                f"requires_grad: only floating-point tensors can require gradients, got {self.dtype}"
            )
        self._requires_grad = bool(flag)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape)

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def device(self) -> str:
        return backend.device_of(self.data)

    @property
    def is_cuda(self) -> bool:
        return self.device == "cuda"

    @property
    def is_leaf(self) -> bool:
        return self.grad_fn is None

    @property
    def T(self) -> Tensor:  # noqa: N802 - PyTorch's name
        return self.permute(*range(self.ndim - 1, -1, -1))

    def size(self, dim: int | None = None) -> Any:
        if dim is None:
            return self.shape
        if self.ndim == 0:
            raise IndexError(f"Dimension specified as {dim} but tensor has no dimensions")
        if not -self.ndim <= dim < self.ndim:
            raise IndexError(
                f"Dimension out of range (expected to be in range of [{-self.ndim}, {self.ndim - 1}], "
                f"but got {dim})"
            )
        return self.shape[dim]

    def numel(self) -> int:
        return int(self.data.size)

    def dim(self) -> int:
        return self.ndim

    def is_floating_point(self) -> bool:
        """Whether the dtype is a floating-point one (float16, float32, float64), as torch's."""
        return self.dtype.kind == "f"

    def __len__(self) -> int:
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    def __iter__(self) -> Iterator[Tensor]:
        return (self[i] for i in range(len(self)))

    def __repr__(self) -> str:
        body = np.array2string(self.numpy(), separator=", ", prefix="tensor(")
        extra = ""
        if self.dtype not in (float32, int64, bool_):
            extra += f", dtype={self.dtype}"
        if self.device != "cpu":
            extra += f", device='{self.device}'"
        if self.grad_fn is not None:
            extra += f", grad_fn={self.grad_fn!r}"
        elif self.requires_grad:
            extra += ", requires_grad=True"
        return f"tensor({body}{extra})"

    # ----- autograd ---------------------------------------------------------------------------------
    def detach(self) -> Tensor:
        """The same data, cut from the graph."""
        out = Tensor._wrap(self.data)
        out._is_view = True
        return out

    def detach_(self) -> Tensor:
        self.grad_fn = None
        self._requires_grad = False
        return self

    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        self.requires_grad = requires_grad
        return self

    def register_hook(self, hook: Any) -> Any:
        """Call ``hook(grad)`` when this tensor's gradient is computed; a returned Tensor replaces it."""
        if not self.requires_grad:
            raise GraphError("register_hook: cannot register a hook on a tensor that does not require grad")
        owner = self.grad_fn if self.grad_fn is not None else self
        if owner._hooks is None:
            owner._hooks = []
        owner._hooks.append(hook)
        return _HookHandle(owner._hooks, hook)

    def register_post_accumulate_grad_hook(self, hook: Any) -> Any:
        """Call ``hook(tensor)`` after backward has added this leaf's gradient into ``.grad`` (torch's name):
        not under ``mr.autograd.grad``, which accumulates nothing. DistributedDataParallel's all-reduce
        hangs here."""
        if self.grad_fn is not None:
            raise GraphError("register_post_accumulate_grad_hook: only leaf tensors accumulate a .grad")
        if not self.requires_grad:
            raise GraphError(
                "register_post_accumulate_grad_hook: cannot register a hook on a tensor that does not "
                "require grad"
            )
        if self._post_accumulate_hooks is None:
            self._post_accumulate_hooks = []
        self._post_accumulate_hooks.append(hook)
        return _HookHandle(self._post_accumulate_hooks, hook)

    def retain_grad(self) -> None:
        """Keep ``.grad`` on this non-leaf tensor after backward (leaves keep it anyway)."""
        if self.grad_fn is not None:
            self.grad_fn._retain_grad = True

    # ----- conversion and devices -------------------------------------------------------------------
    def numpy(self) -> np.ndarray:
        """A NumPy copy of the data (copied back from the GPU when needed)."""
        return np.array(backend.to_numpy(self.data), copy=True)

    def tolist(self) -> Any:
        return self.numpy().tolist()

    def item(self) -> Any:
        if self.numel() != 1:
            raise ShapeError(
                f"item: only a one-element tensor can be converted to a Python scalar, got {self.shape}"
            )
        return backend.to_numpy(self.data.reshape(())).item()  # on the GPU: one copy, with deferred checks

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __bool__(self) -> bool:
        return bool(self.item())

    def __index__(self) -> int:
        """A one-element integer tensor as a list index: ``classes[predicted[j]]``."""
        if self.dtype.kind not in "iub" or self.numel() != 1:
            raise TypeError(
                f"only integer tensors of a single element can be converted to an index, got {self.dtype} "
                f"of shape {self.shape}"
            )
        return int(self.item())

    def __format__(self, spec: str) -> str:
        """A 0-d tensor formats as its value, ``f"{loss:.4f}"``; any other only with an empty spec."""
        if self.ndim == 0:
            return self.item().__format__(spec)
        return object.__format__(self, spec)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        arr = backend.to_numpy(self.data)
        return arr if dtype is None else arr.astype(dtype)

    def cpu(self) -> Tensor:
        return self.to("cpu")

    def cuda(self) -> Tensor:
        return self.to("cuda")

    def float(self) -> Tensor:
        return self.to(float32)

    def double(self) -> Tensor:
        return self.to(float64)

    def long(self) -> Tensor:
        return self.to(int64)

    def int(self) -> Tensor:
        return self.to(int32)

    def half(self) -> Tensor:
        return self.to(float16)

    def bool(self) -> Tensor:
        return self.to(bool_)

    def type(self, dtype: Any = None, non_blocking: bool = False) -> Any:
        """``x.type(mr.int64)`` converts (as ``to``); ``x.type()`` names the type, "minires.FloatTensor"
        (``"minires.cuda.FloatTensor"`` on the GPU), and such a name (or torch's) converts too."""
        if dtype is None:
            where = "minires.cuda." if self.device == "cuda" else "minires."
            return where + _TYPE_NAMES.get(self.dtype, f"{self.dtype}Tensor")
        if isinstance(dtype, str) and dtype.endswith("Tensor"):
            by_name = {name: dt for dt, name in _TYPE_NAMES.items()}
            kind = dtype.rsplit(".", 1)[-1]
            if kind not in by_name or dtype.split(".")[0] not in ("torch", "minires"):
                raise DTypeError(f"type: invalid type {dtype!r}")
            return self.to(by_name[kind], device="cuda" if ".cuda." in dtype else "cpu")
        return self.to(dtype)

    def type_as(self, other: Tensor) -> Tensor:
        return self.to(other.dtype)

    def contiguous(self) -> Tensor:
        return self

    # ----- in-place methods: on data outside the graph (optimizers, init), recorded in it otherwise --
    def _records(self, value: Any) -> bool:
        """Whether an in-place op on this tensor must be recorded in the graph, as PyTorch records it: in
        grad mode, when this tensor or the value written requires grad. On a leaf that requires grad it
        is refused (``_check_not_leaf``); a leaf that does not (``buf = zeros(3); buf[0] = w``) becomes a
        node, as in PyTorch."""
        value_needs_grad = isinstance(value, Tensor) and value.requires_grad
        records = is_grad_enabled() and (self.requires_grad or value_needs_grad)
        if records and self._is_view:
            raise GraphError(
                "an in-place operation on a view of another tensor (a slice, view, reshape, transpose or "
                "detach of it) cannot be recorded in the graph: the write would not reach the tensor it "
                "views. Write into that tensor itself (x[index] = ...), or do it inside mr.no_grad()"
            )
        return records

    def zero_(self) -> Tensor:
        return self.fill_(0)

    def fill_(self, value: Any) -> Tensor:
        if self._records(value):
            self._check_not_leaf("fill_")
            return self._become(self._set_item(..., value))
        self.data[...] = value.data if isinstance(value, Tensor) else value
        return self

    def copy_(self, src: Any) -> Tensor:
        if self._records(src):
            self._check_not_leaf("copy_")
            return self._become(self._set_item(..., src))
        self.data[...] = Tensor._coerce_array(src, like=self.data)
        return self

    def add_(self, other: Any, alpha: float = 1) -> Tensor:
        if alpha != 1:  # scaled on its own device, so that _update_data still checks that device
            if isinstance(other, Tensor) and other.requires_grad and is_grad_enabled():
                other = other * alpha  # in the graph: the gradient reaches other times alpha
            else:
                other = Tensor._wrap(alpha * other.data) if isinstance(other, Tensor) else alpha * other
        return self._inplace(other, "add")

    def sub_(self, other: Any, alpha: float = 1) -> Tensor:
        return self.add_(other, alpha=-alpha)

    def mul_(self, other: Any) -> Tensor:
        return self._inplace(other, "mul")

    def div_(self, other: Any) -> Tensor:
        return self._inplace(other, "div")

    def _update_data(self, other: Any, name: str) -> Tensor:
        """``self.data <name>= other`` in place, outside the graph: the array keeps its dtype (a result that
        does not fit, a float into an int tensor, is a DTypeError) and its shape (ShapeError)."""
        other = self._operand(other, name)
        data, xp = self.data, get_array_module(self.data)
        ufunc = {"add": xp.add, "sub": xp.subtract, "mul": xp.multiply, "div": xp.true_divide}[name]
        try:
            if (
                getattr(other, "shape", None) == data.shape
                and data.ndim
                and other.dtype == data.dtype
                and (other is data or not xp.may_share_memory(other, data))
                and "raise" not in np.geterr().values()
            ):  # a residual sum under no_grad (``out += identity``): a batch chunk at a time on the threads,
                # an other of the other memory order copied over first. NumPy's one call still does an
                # other that overlaps data (it copies it first) and, under np.errstate(...="raise"), the
                # update that may raise (it writes every value, then raises; a chunk would stop the rest)
                ufunc_in_order(ufunc, data, other, data, casting="same_kind")
                return self
            ufunc(data, other, out=data, casting="same_kind")
        except TypeError as exc:
            raise DTypeError(
                f"{name}: the result cannot be stored in place in a tensor of dtype {self.dtype}"
            ) from exc
        except ValueError as exc:
            raise self._broadcast_error(name, other) from exc
        return self

    def _operand(self, other: Any, name: str) -> Any:
        """The array of ``other`` for an op of ``name`` with this tensor, as PyTorch takes it: a tensor on
        this device, a 0-d CPU tensor (a scalar) or a scalar; a NumPy array beside a CPU tensor only."""
        if isinstance(other, Tensor):
            if other.device != self.device and not (other.ndim == 0 and other.device == "cpu"):
                raise DeviceError(
                    f"{name}: expected both tensors on one device, got {self.device} and {other.device}"
                )
            other = other.data
        backend.refuse_host_array(other, self.device, name)
        xp = get_array_module(self.data)
        if isinstance(other, np.ndarray) and xp is not np:  # a 0-d host array (a scalar): copied over
            other = xp.asarray(other)
        return other

    def _broadcast_error(self, name: str, other: Any) -> ShapeError:
        return ShapeError(
            f"{name}: an operand of shape {tuple(getattr(other, 'shape', ()))} cannot be broadcast in place "
            f"to shape {self.shape}"
        )

    # ----- in-place operators: x += y, x -= y, x *= y, x /= y ------------------------------------------
    def _inplace(self, other: Any, name: str) -> Tensor:
        """``self <name>= other`` in place (``+=``, ``add_``, ...), as PyTorch does it.

        Outside the graph (no grad needed, or inside ``no_grad``) the data is updated in place: the manual
        SGD step ``p -= lr * p.grad``. A leaf that requires grad cannot be modified in place in grad mode.
        A non-leaf (``Y += X`` in a residual block's forward), or a tensor that takes a value that requires
        grad, is recorded in the graph: the result is computed out of place and then becomes this very
        Tensor object, so that every alias of ``Y`` sees it, while the arrays that earlier ops saved for
        backward stay untouched.
        """
        if self._records(other):
            self._check_not_leaf(name)
            out = getattr(self, _OPERATORS[name])(other)
            if out.shape != self.shape:
                raise self._broadcast_error(name, other)
            if out.dtype != self.dtype:
                out = out.to(self.dtype)
            return self._become(out)
        return self._update_data(other, name)

    def _check_not_leaf(self, op: str) -> None:
        """PyTorch's rule for an in-place op in the graph: never on a leaf that requires grad."""
        if self.requires_grad and self.grad_fn is None:
            raise GraphError(
                f"{op}: a leaf tensor that requires grad is being used in an in-place operation; "
                "do it inside mr.no_grad()"
            )

    def _become(self, out: Tensor) -> Tensor:
        """An in-place op recorded in the graph: ``out`` (computed out of place, of this shape and dtype)
        becomes this very Tensor object, so that every alias of it sees the result, while the arrays that
        earlier ops saved for backward stay untouched. A ``retain_grad`` moves to the new node, as in
        PyTorch: ``.grad`` is then the gradient of the tensor's latest value."""
        retain = self.grad_fn is not None and self.grad_fn._retain_grad
        if retain:
            self.grad_fn._retain_grad = False
        self.data, self.grad_fn, self._requires_grad = out.data, out.grad_fn, out.requires_grad
        if self.grad_fn is not None:
            self.grad_fn._output_ref = weakref.ref(self)
            self.grad_fn._retain_grad = retain
        return self

    def __iadd__(self, other: Any) -> Tensor:
        return self._inplace(other, "add")

    def __isub__(self, other: Any) -> Tensor:
        return self._inplace(other, "sub")

    def __imul__(self, other: Any) -> Tensor:
        return self._inplace(other, "mul")

    def __itruediv__(self, other: Any) -> Tensor:
        return self._inplace(other, "div")

    def __pos__(self) -> Tensor:
        return self

    def __setitem__(self, index: Any, value: Any) -> None:
        if self._records(value):  # recorded: x[index] = v as a new node that this tensor becomes
            self._check_not_leaf("__setitem__")
            self._become(self._set_item(index, value))
            return
        if isinstance(index, Tensor):
            index = index.data
        elif isinstance(index, tuple):
            index = tuple(i.data if isinstance(i, Tensor) else i for i in index)
        backend.refuse_wrapped_indices(self.data, index)  # CuPy would wrap them around
        if isinstance(value, Tensor):
            value = value.data
        if hasattr(value, "shape") and backend.device_of(value) != self.device:
            value = backend.to_device(value, self.device)  # torch copies the value over, as copy_ does
        self.data[index] = value

    # Comparisons give bool tensors and carry no gradient.
    def _compare(self, other: Any, name: str) -> Tensor:
        other = self._operand(other, name.strip("_"))
        return Tensor._wrap(getattr(self.data, name)(other))

    def __eq__(self, other: Any) -> Tensor:  # type: ignore[override]
        return self._compare(other, "__eq__")

    def __ne__(self, other: Any) -> Tensor:  # type: ignore[override]
        return self._compare(other, "__ne__")

    def __lt__(self, other: Any) -> Tensor:
        return self._compare(other, "__lt__")

    def __le__(self, other: Any) -> Tensor:
        return self._compare(other, "__le__")

    def __gt__(self, other: Any) -> Tensor:
        return self._compare(other, "__gt__")

    def __ge__(self, other: Any) -> Tensor:
        return self._compare(other, "__ge__")

    def eq(self, other: Any) -> Tensor:
        return self == other

    def ne(self, other: Any) -> Tensor:
        return self != other

    def lt(self, other: Any) -> Tensor:
        return self < other

    def le(self, other: Any) -> Tensor:
        return self <= other

    def gt(self, other: Any) -> Tensor:
        return self > other

    def ge(self, other: Any) -> Tensor:
        return self >= other

    def all(self, dim: int | None = None, keepdim: bool = False) -> Tensor:
        """True where every element (along ``dim``) is nonzero; a bool tensor, no gradient."""
        return Tensor._wrap(self.data.astype(bool).all(axis=dim, keepdims=keepdim))

    def any(self, dim: int | None = None, keepdim: bool = False) -> Tensor:
        """True where some element (along ``dim``) is nonzero; a bool tensor, no gradient."""
        return Tensor._wrap(self.data.astype(bool).any(axis=dim, keepdims=keepdim))

    # Arithmetic spelled as methods, as torch's ``x.add(y, alpha=2)``; each is the operator's op.
    def add(self, other: Any, alpha: float = 1) -> Tensor:
        return self + (other if alpha == 1 else other * alpha)

    def sub(self, other: Any, alpha: float = 1) -> Tensor:
        return self - (other if alpha == 1 else other * alpha)

    def t(self) -> Tensor:
        return self.transpose(0, 1) if self.ndim == 2 else self

    def expand_as(self, other: Tensor) -> Tensor:
        return self.expand(*other.shape)

    def view_as(self, other: Tensor) -> Tensor:
        return self.reshape(other.shape)


class _HookHandle:
    """What ``register_hook`` returns: ``remove()`` takes the hook off again."""

    def __init__(self, hooks: list, hook: Any) -> None:
        self.hooks, self.hook = hooks, hook

    def remove(self) -> None:
        if self.hook in self.hooks:
            self.hooks.remove(self.hook)


# ----- creation functions ------------------------------------------------------------------------------
def tensor(data: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    """A new leaf tensor holding a copy of ``data`` (an array, nested list, scalar or Tensor)."""
    dtype = as_dtype(dtype)
    if isinstance(data, Tensor):
        data = data.data
    xp = get_array_module(data)
    if isinstance(data, np.generic):  # a NumPy scalar keeps its dtype, as an array does
        data = np.asarray(data)
    if isinstance(data, xp.ndarray):
        arr = data.astype(dtype or data.dtype, copy=True)
    else:
        arr = _default_array(data) if dtype is None else np.array(data, dtype=dtype)
    target = backend.normalize_device(device) if device is not None else backend.device_of(arr)
    arr = backend.to_device(arr, target)
    return Tensor(arr, requires_grad=requires_grad)


def _shape_arg(shape: tuple, size: Any = None) -> tuple[int, ...]:
    """``(2, 3)`` from ``zeros(2, 3)``, ``zeros((2, 3))`` or ``zeros(size=(2, 3))``."""
    if size is not None:
        if shape:
            raise TypeError("expected the shape either as positional arguments or as size=, not both")
        shape = (size,)
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    return tuple(int(s) for s in shape)


def _filled(
    kind: str, shape: tuple, dtype: Any, device: Any, requires_grad: bool, size: Any = None
) -> Tensor:
    dev = backend.normalize_device(device)
    xp = backend.array_module_for(dev)
    dtype = as_dtype(dtype) or float32
    shape = _shape_arg(shape, size)
    if kind in ("zeros", "ones"):
        arr = getattr(xp, kind)(shape, dtype=dtype)
    else:
        from . import rng

        gen = rng.generator(dev)
        if dtype.kind != "f":
            raise DTypeError(f"{kind}: expected a floating-point dtype, got {dtype}")
        arr = gen.standard_normal(shape, dtype=dtype) if kind == "randn" else gen.random(shape, dtype=dtype)
    return Tensor(arr, requires_grad=requires_grad)


def zeros(
    *shape: Any, size: Any = None, dtype: Any = None, device: Any = None, requires_grad: bool = False
) -> Tensor:
    return _filled("zeros", shape, dtype, device, requires_grad, size)


def ones(
    *shape: Any, size: Any = None, dtype: Any = None, device: Any = None, requires_grad: bool = False
) -> Tensor:
    return _filled("ones", shape, dtype, device, requires_grad, size)


def randn(
    *shape: Any, size: Any = None, dtype: Any = None, device: Any = None, requires_grad: bool = False
) -> Tensor:
    """Standard normal samples from the generator seeded by ``mr.manual_seed``."""
    return _filled("randn", shape, dtype, device, requires_grad, size)


def rand(
    *shape: Any, size: Any = None, dtype: Any = None, device: Any = None, requires_grad: bool = False
) -> Tensor:
    """Uniform samples in [0, 1) from the generator seeded by ``mr.manual_seed``; ``rand(size=(1, 1, 224,
    224))`` as the d2l book writes it."""
    return _filled("rand", shape, dtype, device, requires_grad, size)


def zeros_like(t: Tensor, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    return zeros(t.shape, dtype=dtype or t.dtype, device=device or t.device, requires_grad=requires_grad)


def ones_like(t: Tensor, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    return ones(t.shape, dtype=dtype or t.dtype, device=device or t.device, requires_grad=requires_grad)


def arange(
    start: float, end: float | None = None, step: float = 1, dtype: Any = None, device: Any = None
) -> Tensor:
    if end is None:
        start, end = 0, start
    dev = backend.normalize_device(device)
    arr = backend.array_module_for(dev).arange(start, end, step)
    return Tensor(arr.astype(as_dtype(dtype) or (int64 if arr.dtype.kind in "iu" else float32)))


def from_numpy(array: np.ndarray) -> Tensor:
    """A tensor sharing ``array``'s memory and dtype, as ``torch.from_numpy`` (changes show in both)."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"from_numpy: expected a numpy.ndarray, got {type(array).__name__}")
    if array.dtype.kind not in "fiub":
        raise DTypeError(f"from_numpy: cannot make a tensor from an array of dtype {array.dtype}")
    return Tensor(array)


def as_tensor(data: Any, dtype: Any = None, device: Any = None) -> Tensor:
    """``data`` as a tensor without copying when it already is one (or an array) of that dtype and device,
    as ``torch.as_tensor``; otherwise a copy as ``mr.tensor`` makes it."""
    if isinstance(data, Tensor):
        return data.to(device=device, dtype=dtype)
    xp = get_array_module(data)
    if isinstance(data, xp.ndarray) and data.dtype.kind in "fiub":
        return Tensor(data).to(device=device, dtype=dtype)
    return tensor(data, dtype=dtype, device=device)


def is_tensor(obj: Any) -> bool:
    return isinstance(obj, Tensor)


class device:  # noqa: N801 - PyTorch's name
    """``mr.device("cuda")``, ``mr.device("cuda:0")``, ``mr.device("cpu")``, ``mr.device("cuda", 0)``: a
    device as ``torch.device``, with ``.type`` and ``.index``, accepted wherever a device string is. It can
    name "cuda" on a machine without a GPU; moving a tensor there is what fails.
    """

    def __init__(self, type: Any, index: int | None = None) -> None:  # noqa: A002 - PyTorch's name
        if isinstance(type, device):
            type, index = type.type, type.index if index is None else index
        if not isinstance(type, str):
            raise TypeError(f"device: expected a string such as 'cuda:0', got {type!r}")
        kind, _, number = type.partition(":")
        if kind not in ("cpu", "cuda"):
            raise DeviceError(f"device: expected 'cpu' or 'cuda' (with an optional ':index'), got {type!r}")
        if number:
            if index is not None or not number.isdigit():
                raise DeviceError(f"device: invalid device string {type!r}")
            index = int(number)
        self.type, self.index = kind, index

    def __str__(self) -> str:
        return self.type if self.index is None else f"{self.type}:{self.index}"

    def __repr__(self) -> str:
        index = "" if self.index is None else f", index={self.index}"
        return f"device(type='{self.type}'{index})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, str):
            try:
                other = device(other)
            except DeviceError:
                return False
        if not isinstance(other, device):
            return NotImplemented
        return (self.type, self.index) == (other.type, other.index)

    def __hash__(self) -> int:
        return hash((self.type, self.index))
