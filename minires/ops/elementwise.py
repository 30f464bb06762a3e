"""Elementwise arithmetic: + - * / ** with broadcasting, and the unary exp, log, sqrt, abs, erf, clamp.

Each binary op broadcasts its inputs forward and sums its gradients back to each input's shape with
``sum_to`` (see ``broadcast.py``). Operands may be Tensors, arrays or Python scalars, on either side;
dtypes combine as in PyTorch (a Python scalar takes the tensor's dtype; float32 with float64 gives float64;
an integer tensor with a float gives float32).
"""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any

import numpy as np

from ..backend import get_array_module, refuse_host_array
from ..function import Function
from ..memory_order import broadcast, ufunc_in_order
from ..tensor import Tensor, dtype_category, float32, int64
from .broadcast import broadcast_shapes, sum_to


def _result_dtype(a: Tensor, b: Tensor) -> np.dtype:
    """PyTorch's promotion between two tensors: the higher category (bool < integer < float) wins, then the
    wider type; but a 0-d tensor beside a tensor with dimensions decides the dtype only when its category
    is higher (float32[3] + float64[] stays float32, int64[3] + float64[] gives float64)."""
    if (a.ndim == 0) != (b.ndim == 0):
        dims, zero = (b, a) if a.ndim == 0 else (a, b)
        return zero.dtype if dtype_category(zero.dtype) > dtype_category(dims.dtype) else dims.dtype
    if dtype_category(a.dtype) != dtype_category(b.dtype):
        return a.dtype if dtype_category(a.dtype) > dtype_category(b.dtype) else b.dtype
    return np.promote_types(a.dtype, b.dtype)


def _scalar_dtype(value: Any, t: Tensor) -> np.dtype:
    """The dtype a Python scalar takes beside tensor ``t``: ``t``'s, unless the scalar is of a higher kind."""
    if isinstance(value, float) and t.dtype.kind != "f":
        return float32
    if isinstance(value, int) and not isinstance(value, bool) and t.dtype.kind == "b":
        return int64
    return t.dtype


def _as_tensor(value: Any, like: Tensor, op: str) -> Tensor:
    """A scalar or a NumPy array as a Tensor on ``like``'s device (on the GPU, scalars only, as PyTorch)."""
    refuse_host_array(value, like.device, op)
    xp = get_array_module(like.data)
    if isinstance(value, (bool, int, float)):
        return Tensor._wrap(xp.asarray(value, dtype=_scalar_dtype(value, like)))
    return Tensor(xp.asarray(value))


def _on_device_of(scalar: Tensor, other: Tensor) -> Tensor:
    """A 0-d CPU tensor beside a GPU tensor is taken as a scalar, moved over (PyTorch's rule); any other
    pair on two devices is left for the Function to refuse."""
    if scalar.ndim == 0 and scalar.device == "cpu" and other.device != "cpu":
        return scalar.to(other.device)
    return scalar


def operands(a: Any, b: Any, op: str, elementwise: bool = True) -> tuple[Tensor, Tensor]:
    """Both operands as Tensors of one dtype, after checking (elementwise ops) that their shapes broadcast."""
    if not isinstance(a, Tensor) and not isinstance(b, Tensor):
        raise TypeError(f"{op}: expected at least one Tensor, got {type(a).__name__} and {type(b).__name__}")
    a = _as_tensor(a, b, op) if not isinstance(a, Tensor) else a
    b = _as_tensor(b, a, op) if not isinstance(b, Tensor) else b
    if a.device != b.device:
        a, b = _on_device_of(a, b), _on_device_of(b, a)
    if elementwise:
        broadcast_shapes(op, a.shape, b.shape)
    dtype = _result_dtype(a, b)
    if a.dtype != dtype:
        a = a.to(dtype)
    if b.dtype != dtype:
        b = b.to(dtype)
    return a, b


class Add(Function):
    r"""y = a + b (broadcast).

    Backward: dy/da = dy/db = 1, so da = sum_to(g, a.shape), db = sum_to(g, b.shape).

    Two arrays of one shape (a ResNet's residual sum) are added a batch chunk at a time on minires's
    threads, into an array laid out as a (PyTorch's rule too: the first operand's memory order wins).
    NumPy's own choice for two different orders is C order: the sum of a channels-last conv branch and
    an NCHW shortcut was NCHW, and every layer after it, forward and backward, then read one layout and
    wrote the other (measured, AVX-512, Haswell kernels: cifar_resnet20's and d2l_resnet18's training
    steps 2% faster with this).
    """

    saved = ("a_shape", "b_shape")

    def forward(self, a: Any, b: Any) -> Any:
        self.a_shape, self.b_shape = a.shape, b.shape
        if a.shape != b.shape or a.ndim == 0 or broadcast(a):  # NumPy's (or CuPy's) a + b: a broadcast
            return a + b  # a has no memory order of its own (PyTorch skips its repeated axes)
        xp = get_array_module(a)
        return ufunc_in_order(xp.add, a, b, xp.empty_like(a))  # y in a's memory order

    def backward(self, g: Any) -> tuple[Any, Any]:
        return sum_to(g, self.a_shape), sum_to(g, self.b_shape)


class Sub(Function):
    r"""y = a - b (broadcast).

    Backward: da = sum_to(g, a.shape), db = -sum_to(g, b.shape).
    """

    saved = ("a_shape", "b_shape")

    def forward(self, a: Any, b: Any) -> Any:
        self.a_shape, self.b_shape = a.shape, b.shape
        return a - b

    def backward(self, g: Any) -> tuple[Any, Any]:
        db = -sum_to(g, self.b_shape) if self.needs_input_grad[1] else None
        return sum_to(g, self.a_shape), db


class Mul(Function):
    r"""y = a * b (broadcast).

    Backward (product rule): dy/da = b, dy/db = a, so
        da = sum_to(g * b, a.shape),   db = sum_to(g * a, b.shape).
    """

    saved = ("a", "b")

    def forward(self, a: Any, b: Any) -> Any:
        self.a, self.b = a, b
        return a * b

    def backward(self, g: Any) -> tuple[Any, Any]:
        da = sum_to(g * self.b, self.a.shape) if self.needs_input_grad[0] else None
        db = sum_to(g * self.a, self.b.shape) if self.needs_input_grad[1] else None
        return da, db


class Div(Function):
    r"""y = a / b (broadcast).

    Backward: dy/da = 1/b, dy/db = -a/b^2, so da = sum_to(g / b, a.shape), db = sum_to(-g * a / b^2, b.shape).
    """

    saved = ("a", "b")

    def forward(self, a: Any, b: Any) -> Any:
        self.a, self.b = a, b
        return a / b

    def backward(self, g: Any) -> tuple[Any, Any]:
        da = sum_to(g / self.b, self.a.shape) if self.needs_input_grad[0] else None
        db = sum_to(-g * self.a / (self.b * self.b), self.b.shape) if self.needs_input_grad[1] else None
        return da, db


class Pow(Function):
    r"""y = a ** b (broadcast).

    Backward: dy/da = b a^(b-1); dy/db = a^b ln a = y ln a (defined for a > 0).
    As PyTorch does, dy/da is taken as 0 where b = 0 (a^0 = 1 is constant in a, even at a = 0) and dy/db
    as 0 where a = 0 and b >= 0, instead of 0 * inf = nan: for b > 0 that is the limit of a^b ln a as
    a -> 0+, but at b = 0 it is a convention (a^0 ln a = ln a -> -inf there), PyTorch's.
    """

    saved = ("a", "b", "y")

    def forward(self, a: Any, b: Any) -> Any:
        self.a, self.b = a, b
        self.y = a**b
        return self.y

    def backward(self, g: Any) -> tuple[Any, Any]:
        xp = get_array_module(g)
        a, b = self.a, self.b
        da = db = None
        if self.needs_input_grad[0]:
            with np.errstate(divide="ignore", invalid="ignore"):
                dy_da = xp.where(b == 0, 0, b * a ** (b - 1))
            da = sum_to(g * dy_da, a.shape)
        if self.needs_input_grad[1]:
            with np.errstate(divide="ignore", invalid="ignore"):
                dy_db = xp.where((a == 0) & (b >= 0), 0, self.y * xp.log(a))
            db = sum_to(g * dy_db, b.shape)
        return da, db


class Neg(Function):
    r"""y = -x.  Backward: dx = -g."""

    saved = ()

    def forward(self, x: Any) -> Any:
        return -x

    def backward(self, g: Any) -> Any:
        return -g


class Exp(Function):
    r"""y = e^x.  Backward: dy/dx = e^x = y, so dx = g * y (reusing the output)."""

    saved = ("y",)

    def forward(self, x: Any) -> Any:
        self.y = get_array_module(x).exp(x)
        return self.y

    def backward(self, g: Any) -> Any:
        return g * self.y


class Log(Function):
    r"""y = ln x.  Backward: dy/dx = 1/x, so dx = g / x."""

    saved = ("x",)

    def forward(self, x: Any) -> Any:
        self.x = x
        return get_array_module(x).log(x)

    def backward(self, g: Any) -> Any:
        return g / self.x


class Sqrt(Function):
    r"""y = sqrt(x).  Backward: dy/dx = 1 / (2 sqrt(x)) = 1 / (2y), so dx = g / (2y)."""

    saved = ("y",)

    def forward(self, x: Any) -> Any:
        self.y = get_array_module(x).sqrt(x)
        return self.y

    def backward(self, g: Any) -> Any:
        return g / (2 * self.y)


class Abs(Function):
    r"""y = |x|.  Backward: dy/dx = sign(x) (PyTorch takes 0 at x = 0), so dx = g * sign(x)."""

    saved = ("x",)

    def forward(self, x: Any) -> Any:
        self.x = x
        return get_array_module(x).abs(x)

    def backward(self, g: Any) -> Any:
        return g * get_array_module(g).sign(self.x)


def erf_array(x: Any) -> Any:
    """The error function on a raw array: SciPy's on the CPU, CuPy's on the GPU."""
    if get_array_module(x) is np:
        from scipy.special import erf

        return erf(x).astype(x.dtype, copy=False)
    from cupyx.scipy.special import erf

    return erf(x)


class Erf(Function):
    r"""y = erf(x) = 2/sqrt(pi) * integral_0^x e^(-t^2) dt.

    Backward (fundamental theorem of calculus): dy/dx = 2/sqrt(pi) e^(-x^2), so dx = g * 2/sqrt(pi) e^(-x^2).
    """

    saved = ("x",)

    def forward(self, x: Any) -> Any:
        self.x = x
        return erf_array(x)

    def backward(self, g: Any) -> Any:
        xp = get_array_module(g)
        return g * (2 / math.sqrt(math.pi)) * xp.exp(-self.x * self.x)


class Clamp(Function):
    r"""y = min(max(x, lo), hi) (either bound may be None).

    Backward: dy/dx = 1 where lo <= x <= hi, else 0 (PyTorch passes the gradient at the bounds).
    """

    saved = ("mask",)

    def __init__(self, lo: float | None, hi: float | None) -> None:
        self.lo, self.hi = lo, hi

    def forward(self, x: Any) -> Any:
        xp = get_array_module(x)
        self.mask = xp.ones(x.shape, dtype=bool)
        if self.lo is not None:
            self.mask &= x >= self.lo
        if self.hi is not None:
            self.mask &= x <= self.hi
        return xp.clip(x, self.lo, self.hi).astype(x.dtype, copy=False)

    def backward(self, g: Any) -> Any:
        return g * self.mask


class Maximum(Function):
    r"""y = max(a, b) elementwise (broadcast; ``torch.maximum``, ``torch.max(a, b)``); ``Minimum``: min(a, b).
    A NaN in either operand gives NaN, as in PyTorch.

    Backward: y is a where a wins and b where b wins, so dy/da = 1 and dy/db = 0 where a > b, the reverse
    where a < b; at a tie (a = b) y has no derivative, and PyTorch gives each operand half of g (the
    midpoint of the subgradients [0, 1]). With h = g / 2 at ties and g elsewhere:
        da = sum_to(h * [not a < b], a.shape),   db = sum_to(h * [not a > b], b.shape)
    (for the minimum the two comparisons swap). A NaN compares false both ways: both operands get g, as
    PyTorch's rule gives them.
    """

    saved = ("a", "b")
    largest = True

    def forward(self, a: Any, b: Any) -> Any:
        self.a, self.b = a, b
        xp = get_array_module(a)
        return (xp.maximum if self.largest else xp.minimum)(a, b)

    def backward(self, g: Any) -> tuple[Any, Any]:
        xp = get_array_module(g)
        a, b = self.a, self.b
        h = xp.where(a == b, g * g.dtype.type(0.5), g)  # the broadcast shape
        a_loses, b_loses = (a < b, a > b) if self.largest else (a > b, a < b)
        da = _masked_sum_to(~a_loses, h, a.shape) if self.needs_input_grad[0] else None
        db = _masked_sum_to(~b_loses, h, b.shape) if self.needs_input_grad[1] else None
        return da, db


class Minimum(Maximum):
    r"""y = min(a, b) elementwise (``torch.minimum``, ``torch.min(a, b)``).

    Backward: ``Maximum``'s derivation with the comparisons swapped (a is the output where a < b). With
    h = g / 2 at ties (a = b) and g elsewhere:
        da = sum_to(h * [not a > b], a.shape),   db = sum_to(h * [not a < b], b.shape)
    """

    largest = False


class ClampTensor(Function):
    r"""y = min(max(x, lo), hi) elementwise, with tensor bounds (broadcast; either may be None), as
    ``torch.clamp(x, min=lo, max=hi)``: where lo > hi, y = hi.

    Backward, PyTorch's rule: x's gradient passes where it is inside the bounds, lo <= x <= hi (bounds
    included, as ``Clamp``); lo takes it where x < lo and lo < hi (lo is the output there); hi where x > hi,
    or everywhere hi < lo (hi is the output there):
        dx = sum_to(g [lo <= x <= hi]),   dlo = sum_to(g [x < lo and lo < hi]),
        dhi = sum_to(g [x > hi or hi < lo])
    (with one bound, only its own comparison).
    """

    saved = ("x", "lo", "hi")

    def forward(self, x: Any, lo: Any | None, hi: Any | None) -> Any:
        xp = get_array_module(x)
        self.x, self.lo, self.hi = x, lo, hi
        y = x if lo is None else xp.maximum(x, lo)
        return y if hi is None else xp.minimum(y, hi)

    def backward(self, g: Any) -> tuple[Any, Any, Any]:
        xp = get_array_module(g)
        x, lo, hi = self.x, self.lo, self.hi
        inside = xp.ones(g.shape, dtype=bool)
        if lo is not None:
            inside &= x >= lo
        if hi is not None:
            inside &= x <= hi
        dx = _masked_sum_to(inside, g, x.shape) if self.needs_input_grad[0] else None
        dlo = dhi = None
        if lo is not None and self.needs_input_grad[1]:
            dlo = _masked_sum_to((x < lo) if hi is None else (x < lo) & (lo < hi), g, lo.shape)
        if hi is not None and self.needs_input_grad[2]:
            dhi = _masked_sum_to((x > hi) if lo is None else (x > hi) | (hi < lo), g, hi.shape)
        return dx, dlo, dhi


def _masked_sum_to(keep: Any, g: Any, shape: tuple[int, ...]) -> Any:
    """g where ``keep`` (broadcast against g), 0 elsewhere, in g's dtype, summed back to ``shape`` (an
    operand's, through ``sum_to``): the gradient that a choice between operands sends to one of them."""
    xp = get_array_module(g)
    return sum_to(xp.where(keep, g, g.dtype.type(0)), shape)


# ----- wrappers --------------------------------------------------------------------------------------
def add(a: Any, b: Any) -> Tensor:
    return Add()(*operands(a, b, "add"))


def sub(a: Any, b: Any) -> Tensor:
    return Sub()(*operands(a, b, "sub"))


def mul(a: Any, b: Any) -> Tensor:
    return Mul()(*operands(a, b, "mul"))


def div(a: Any, b: Any) -> Tensor:
    a, b = operands(a, b, "div")
    if a.dtype.kind != "f":  # true division of integers gives floats, as in PyTorch
        a, b = a.to(float32), b.to(float32)
    return Div()(a, b)


def pow(a: Any, b: Any) -> Tensor:  # noqa: A001 - PyTorch's name
    return Pow()(*operands(a, b, "pow"))


def maximum(a: Tensor, b: Tensor) -> Tensor:
    """The elementwise maximum of two tensors, broadcast, as ``torch.maximum`` (see ``Maximum``)."""
    return Maximum()(*_two_tensors(a, b, "maximum"))


def minimum(a: Tensor, b: Tensor) -> Tensor:
    """The elementwise minimum of two tensors, broadcast, as ``torch.minimum`` (see ``Minimum``)."""
    return Minimum()(*_two_tensors(a, b, "minimum"))


def _two_tensors(a: Any, b: Any, op: str) -> tuple[Tensor, Tensor]:
    """``a`` and ``b`` promoted as PyTorch promotes two tensors (``operands``); both must be Tensors, as
    torch.maximum asks."""
    for name, v in (("input", a), ("other", b)):
        if not isinstance(v, Tensor):
            raise TypeError(f"{op}: expected {name} to be a Tensor, got {type(v).__name__}")
    return operands(a, b, op)


def neg(x: Tensor) -> Tensor:
    return Neg()(x)


def _float_input(x: Any, op: str) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}: expected a Tensor, got {type(x).__name__}")
    return x if x.dtype.kind == "f" else x.to(float32)


def exp(x: Tensor) -> Tensor:
    return Exp()(_float_input(x, "exp"))


def log(x: Tensor) -> Tensor:
    return Log()(_float_input(x, "log"))


def sqrt(x: Tensor) -> Tensor:
    return Sqrt()(_float_input(x, "sqrt"))


def abs(x: Tensor) -> Tensor:  # noqa: A001 - PyTorch's name
    return Abs()(x)


def erf(x: Tensor) -> Tensor:
    return Erf()(_float_input(x, "erf"))


def clamp(x: Tensor, min: Any = None, max: Any = None) -> Tensor:  # noqa: A002
    """``torch.clamp``: each bound a number, a Tensor (broadcast against x, then ``ClampTensor``) or None."""
    if min is None and max is None:
        raise ValueError("clamp: at least one of min and max must be given")
    if isinstance(min, Tensor) or isinstance(max, Tensor):
        bounds = [b if b is None or isinstance(b, Tensor) else _as_tensor(b, x, "clamp") for b in (min, max)]
        tensors = [t for t in (x, *bounds) if t is not None]
        broadcast_shapes("clamp", *[t.shape for t in tensors])
        so_far: Any = x  # PyTorch's promotion over the three: only ndim and dtype matter (_result_dtype)
        for t in tensors[1:]:
            ndim = so_far.ndim if so_far.ndim >= t.ndim else t.ndim  # (max is the bound here)
            so_far = SimpleNamespace(ndim=ndim, dtype=_result_dtype(so_far, t))
        dtype = so_far.dtype
        x, lo, hi = (None if t is None else t.to(dtype) if t.dtype != dtype else t for t in (x, *bounds))
        return ClampTensor()(x, lo, hi)
    return Clamp(min, max)(x)
