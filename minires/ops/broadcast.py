"""Broadcasting and its adjoint, ``sum_to``.

Forward, NumPy broadcasting repeats an array along new leading axes and along axes of size 1. Each
repeated copy of an element x_i feeds the output, so by the chain rule its gradient is the sum of the
gradients of all its copies: backward of a broadcast is a sum over the broadcast axes. Every op that
broadcasts its inputs (``a + b``, ``a * b``, ``matmul``'s batch axes) ends its backward with ``sum_to``.
"""

from __future__ import annotations

from typing import Any

from ..backend import get_array_module
from ..errors import ShapeError
from ..function import Function


def sum_to(g: Any, shape: tuple[int, ...]) -> Any:
    """Sum ``g`` down to ``shape``, undoing NumPy broadcasting: ``sum_to(broadcast_to(x, s).grad, x.shape)``.

    Leading axes that broadcasting added are summed away; axes where ``shape`` has a 1 are summed with
    keepdims. Shapes: g (*lead, *s') with s' broadcast from ``shape``; result ``shape``.
    """
    shape = tuple(shape)
    if tuple(g.shape) == shape:
        return g
    lead = g.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(
        i + lead for i, n in enumerate(shape) if n == 1 and g.shape[i + lead] != 1
    )
    out = g.sum(axis=axes, keepdims=True) if axes else g
    if lead:
        out = out.reshape(out.shape[lead:])
    return out


def broadcast_shapes(op: str, *shapes: tuple[int, ...]) -> tuple[int, ...]:
    """The broadcast shape, or a ``ShapeError`` naming ``op`` and the shapes that do not fit."""
    ndim = max(len(s) for s in shapes)
    out = []
    for i in range(ndim):
        sizes = {s[len(s) - ndim + i] for s in shapes if len(s) - ndim + i >= 0} - {1}
        if len(sizes) > 1:
            raise ShapeError(
                f"{op}: shapes {' and '.join(str(tuple(s)) for s in shapes)} cannot be broadcast together"
            )
        out.append(sizes.pop() if sizes else 1)
    return tuple(out)


class BroadcastTo(Function):
    r"""y = x repeated to ``shape`` by NumPy's broadcasting rules.

    Backward: dx = sum_to(g, x.shape), the sum of the gradients of all copies of each element.
    Shapes: x broadcastable to ``shape``; y ``shape``.
    """

    may_view = True  # its output may be a view of x's array (Function.may_view)

    saved = ("x_shape",)

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.shape = tuple(shape)

    def forward(self, x: Any) -> Any:
        self.x_shape = x.shape
        return get_array_module(x).broadcast_to(x, self.shape)

    def backward(self, g: Any) -> Any:
        return sum_to(g, self.x_shape)
