"""Activations: relu, gelu (exact and tanh), sigmoid, tanh, and softmax / log_softmax along a dim."""

from __future__ import annotations

import math
from typing import Any

from ..backend import get_array_module
from ..errors import DTypeError, ShapeError
from ..function import Function
from ..grad_mode import is_grad_enabled
from ..memory_order import in_order_of
from ..tensor import Tensor
from ..threads import each_chunk
from .elementwise import erf_array
from .reduction import dim_alias


class ReLU(Function):
    r"""y = max(x, 0).

    Backward: dy/dx = 1 for x > 0 and 0 for x < 0; at the kink x = 0 PyTorch (and minires) take 0.
    So dx = g * [y > 0]. y is saved, not x (y > 0 exactly where x > 0), as PyTorch does: in a ResNet the
    conv after a ReLU keeps y anyway (not the pooling layer after the stem's). Like a conv's saved input, y
    must not be changed in place before backward (minires has no version counter that would notice).
    On the CPU both passes run a batch chunk at a time on minires's threads (threads.each_chunk).
    """

    saved = ("y",)

    def forward(self, x: Any) -> Any:
        self.y = relu_into(x, get_array_module(x).empty_like(x))
        return self.y

    def backward(self, g: Any) -> Any:
        xp, y = get_array_module(g), self.y
        g = in_order_of(g, y)  # g from a layer of the other layout: copied over, not read against the grain
        dx = xp.empty_like(y)
        each_chunk(xp, lambda c: xp.multiply(g[c], y[c] > 0, out=dx[c]), y)
        return dx


def relu_into(x: Any, y: Any) -> Any:
    """y = max(x, 0) written into the array y (x itself for relu's in-place form), a batch chunk at a time
    on minires's threads; returns y."""
    xp = get_array_module(x)
    if x.dtype == bool:
        raise DTypeError("relu: expected a numeric tensor, got dtype bool (relu is not defined for bool)")
    if xp.issubdtype(x.dtype, xp.floating):  # clip to [0, inf]: NumPy's clip is 2-3x faster than its
        top = xp.inf  # maximum with a scalar (measured), keeps NaN, and keeps -0.0 as PyTorch does
        each_chunk(xp, lambda c: xp.clip(x[c], 0, top, out=y[c]), x)
    else:  # integers: clip's float bound would promote them
        each_chunk(xp, lambda c: xp.maximum(x[c], 0, out=y[c]), x)
    return y


class GELU(Function):
    r"""y = x * Phi(x), Phi the standard normal CDF.

    Exact ("none"): Phi(x) = (1 + erf(x / sqrt 2)) / 2, and by the product rule
        dy/dx = Phi(x) + x phi(x),  phi(x) = Phi'(x) = e^(-x^2/2) / sqrt(2 pi).
    Tanh ("tanh"):  y = x/2 (1 + tanh u), u = sqrt(2/pi) (x + 0.044715 x^3), and by the chain rule
        dy/dx = (1 + tanh u)/2 + x/2 (1 - tanh^2 u) sqrt(2/pi) (1 + 3 * 0.044715 x^2).
    """

    saved = ("x", "tanh_u", "cdf")

    def __init__(self, approximate: str = "none") -> None:
        if approximate not in ("none", "tanh"):
            raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    def forward(self, x: Any) -> Any:
        xp = get_array_module(x)
        self.x = x
        if self.approximate == "none":
            self.cdf = 0.5 * (1 + erf_array(x * (1 / math.sqrt(2))))
            return x * self.cdf
        self.tanh_u = xp.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3))
        return 0.5 * x * (1 + self.tanh_u)

    def backward(self, g: Any) -> Any:
        xp = get_array_module(g)
        x = self.x
        if self.approximate == "none":
            pdf = xp.exp(-0.5 * x * x) * (1 / math.sqrt(2 * math.pi))
            return g * (self.cdf + x * pdf)
        t = self.tanh_u
        du_dx = math.sqrt(2 / math.pi) * (1 + 3 * 0.044715 * x * x)
        return g * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * du_dx)


class Sigmoid(Function):
    r"""y = 1 / (1 + e^(-x)), computed without overflow for either sign of x.

    Backward: dy/dx = e^(-x) / (1 + e^(-x))^2 = y (1 - y), so dx = g * y * (1 - y).
    """

    saved = ("y",)

    def forward(self, x: Any) -> Any:
        xp = get_array_module(x)
        e = xp.exp(-xp.abs(x))  # in (0, 1]: never overflows
        self.y = xp.where(x >= 0, 1 / (1 + e), e / (1 + e))
        return self.y

    def backward(self, g: Any) -> Any:
        return g * self.y * (1 - self.y)


class Tanh(Function):
    r"""y = tanh x.  Backward: dy/dx = 1 - tanh^2 x = 1 - y^2, so dx = g * (1 - y^2)."""

    saved = ("y",)

    def forward(self, x: Any) -> Any:
        self.y = get_array_module(x).tanh(x)
        return self.y

    def backward(self, g: Any) -> Any:
        return g * (1 - self.y * self.y)


class Softmax(Function):
    r"""y_i = e^(x_i - m) / sum_j e^(x_j - m) along ``dim``, m = max_j x_j (shifting by m avoids overflow
    and does not change y).

    Backward: dy_i/dx_k = y_i (delta_ik - y_k), so dx_k = sum_i g_i y_i (delta_ik - y_k)
        = y_k (g_k - sum_i g_i y_i).
    """

    saved = ("y",)

    def __init__(self, dim: int) -> None:
        self.dim = dim

    def forward(self, x: Any) -> Any:
        xp = get_array_module(x)
        e = xp.exp(x - x.max(axis=self.dim, keepdims=True))
        self.y = e / e.sum(axis=self.dim, keepdims=True)
        return self.y

    def backward(self, g: Any) -> Any:
        y = self.y
        return y * (g - (g * y).sum(axis=self.dim, keepdims=True))


class LogSoftmax(Function):
    r"""y_i = x_i - logsumexp(x) = (x_i - m) - ln sum_j e^(x_j - m) along ``dim``, m = max_j x_j.

    Backward: dy_i/dx_k = delta_ik - softmax(x)_k, so dx_k = g_k - softmax(x)_k sum_i g_i,
    with softmax(x) = e^y.
    """

    saved = ("y",)

    def __init__(self, dim: int) -> None:
        self.dim = dim

    def forward(self, x: Any) -> Any:
        xp = get_array_module(x)
        shifted = x - x.max(axis=self.dim, keepdims=True)
        self.y = shifted - xp.log(xp.exp(shifted).sum(axis=self.dim, keepdims=True))
        return self.y

    def backward(self, g: Any) -> Any:
        xp = get_array_module(g)
        return g - xp.exp(self.y) * g.sum(axis=self.dim, keepdims=True)


def _check_dim(op: str, x: Tensor, dim: int) -> int:
    nd = max(x.ndim, 1)
    if not -nd <= dim < nd:
        raise ShapeError(f"{op}: dim {dim} is out of range for a tensor of shape {x.shape}")
    return dim % nd


def relu(x: Tensor, inplace: bool = False) -> Tensor:
    """max(x, 0). ``inplace=True`` puts the result in x and returns x, as PyTorch does. Outside the graph
    (inside ``no_grad``, or x needs no gradient) x's array is overwritten: no new array, one pass fewer
    (an eval-mode ResNet's every ReLU). In the graph the result is computed out of place, as a ReLU node,
    and x then stands for it (``Tensor._become``): the array x had stays as it was, for whichever op saved
    it for backward (minires has no version counter that would notice it changed); a leaf that requires
    grad is refused, as PyTorch does."""
    if not inplace:
        return ReLU()(x)
    if not (is_grad_enabled() and x.requires_grad):
        relu_into(x.data, x.data)
        return x
    x._check_not_leaf("relu")
    return x._become(ReLU()(x))


def gelu(x: Tensor, approximate: str = "none") -> Tensor:
    return GELU(approximate)(x)


def sigmoid(x: Tensor) -> Tensor:
    return Sigmoid()(x)


def tanh(x: Tensor) -> Tensor:
    return Tanh()(x)


def _softmax_dim(op: str, x: Tensor, dim: int | None, axis: int | None) -> int:
    dim, _ = dim_alias(op, dim, axis)
    if dim is None:
        raise TypeError(f"{op}: missing dim, the dimension to normalize over (dim=1 for (N, C) logits)")
    return _check_dim(op, x, dim)


def softmax(x: Tensor, dim: int | None = None, *, axis: int | None = None) -> Tensor:
    return Softmax(_softmax_dim("softmax", x, dim, axis))(x)


def log_softmax(x: Tensor, dim: int | None = None, *, axis: int | None = None) -> Tensor:
    return LogSoftmax(_softmax_dim("log_softmax", x, dim, axis))(x)
