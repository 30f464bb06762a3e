"""Matrix products: ``matmul`` (with NumPy's 1-d and batch-broadcasting rules) and ``linear``."""

from __future__ import annotations

from typing import Any

from ..backend import get_array_module
from ..errors import DTypeError, ShapeError
from ..function import Function
from ..tensor import Tensor
from .broadcast import broadcast_shapes, sum_to
from .elementwise import operands


class MatMul(Function):
    r"""Y = A @ B, batched over leading axes that broadcast.

    Backward: Y_ij = sum_k A_ik B_kj, so dY_ij/dA_ik = B_kj and dY_ij/dB_kj = A_ik:
        dA = G @ B^T,   dB = A^T @ G,
    each summed over the batch axes it was broadcast along (sum_to). A 1-d A is treated as a row (1, K)
    and a 1-d B as a column (K, 1), and those axes are dropped from Y, as NumPy and PyTorch do.
    Shapes: A (*, M, K), B (*, K, N), Y (*, M, N).
    """

    saved = ("a", "b")

    def forward(self, a: Any, b: Any) -> Any:
        self.a, self.b = a, b
        return get_array_module(a).matmul(a, b)

    def backward(self, g: Any) -> tuple[Any, Any]:
        xp = get_array_module(g)
        a, b = self.a, self.b
        a2 = a[None, :] if a.ndim == 1 else a  # (1, K) row
        b2 = b[:, None] if b.ndim == 1 else b  # (K, 1) column
        if a.ndim == 1:
            g = xp.expand_dims(g, -2 if b.ndim > 1 else 0)
        if b.ndim == 1:
            g = xp.expand_dims(g, -1)
        da = db = None
        if self.needs_input_grad[0]:
            da = sum_to(xp.matmul(g, xp.swapaxes(b2, -1, -2)), a2.shape).reshape(a.shape)
        if self.needs_input_grad[1]:
            db = sum_to(xp.matmul(xp.swapaxes(a2, -1, -2), g), b2.shape).reshape(b.shape)
        return da, db


class Linear(Function):
    r"""y = x W^T + b, over any leading axes of x.

    Backward, with g = dL/dy flattened to rows (M = product of leading axes):
        dx = g W,   dW = g^T x,   db = sum of g over rows,
    because y_mo = sum_i x_mi W_oi + b_o gives dy_mo/dx_mi = W_oi, dy_mo/dW_oi = x_mi, dy_mo/db_o = 1.
    Shapes: x (*, in), W (out, in), b (out,), y (*, out).
    """

    saved = ("x", "w")

    def forward(self, x: Any, w: Any, b: Any | None) -> Any:
        self.x, self.w = x, w
        y = x @ w.T
        if b is not None:
            y += b
        return y

    def backward(self, g: Any) -> tuple[Any, Any, Any]:
        x, w = self.x, self.w
        dx = g @ w if self.needs_input_grad[0] else None
        dw = db = None
        if self.needs_input_grad[1]:
            dw = g.reshape(-1, g.shape[-1]).T @ x.reshape(-1, x.shape[-1])  # (out, M) @ (M, in)
        if self.needs_input_grad[2]:
            db = g.reshape(-1, g.shape[-1]).sum(axis=0)
        return dx, dw, db


def matmul(a: Any, b: Any) -> Tensor:
    a, b = operands(a, b, "matmul", elementwise=False)
    _check_matmul_shapes(a, b)
    return MatMul()(a, b)


def _check_matmul_shapes(a: Tensor, b: Tensor) -> None:
    """Raise a ShapeError that names both shapes unless ``a @ b`` is defined."""
    if a.ndim == 0 or b.ndim == 0:
        raise ShapeError(
            f"matmul: both arguments need at least 1 dimension, got shapes {a.shape} and {b.shape}"
        )
    k_a = a.shape[-1]
    k_b = b.shape[0] if b.ndim == 1 else b.shape[-2]
    if k_a != k_b:
        raise ShapeError(f"matmul: shapes {a.shape} and {b.shape} cannot be multiplied ({k_a} != {k_b})")
    if a.ndim > 2 or b.ndim > 2:
        broadcast_shapes("matmul", a.shape[:-2], b.shape[:-2] if b.ndim > 1 else ())


def linear(input: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:  # noqa: A002
    """y = input @ weight^T + bias, weight of shape (out_features, in_features)."""
    if weight.ndim != 2:
        raise ShapeError(
            f"linear: expected a 2-d weight (out_features, in_features), got shape {weight.shape}"
        )
    if input.ndim < 1 or input.shape[-1] != weight.shape[1]:
        raise ShapeError(
            f"linear: input's last dimension must equal in_features={weight.shape[1]} "
            f"(weight {weight.shape}), "
            f"got input of shape {input.shape}"
        )
    if bias is not None and bias.shape != (weight.shape[0],):
        raise ShapeError(f"linear: expected bias of shape ({weight.shape[0]},), got {bias.shape}")
    if input.dtype != weight.dtype:
        raise DTypeError(f"linear: input dtype {input.dtype} does not match weight dtype {weight.dtype}")
    return Linear()(input, weight, bias)
