"""What ``Tensor`` gets from the ops: its operators and methods, installed from one name -> function table.

``minires/tensor.py`` defines the Tensor and what needs no op (its data, properties, in-place updates of
the data); it imports neither the ops nor the autograd engine. Every method that runs an op is the op's
own function, filed here under the method's name and set on the class by ``install`` when
``minires.ops`` is imported (which ``import minires`` does before anything else), as DeZero's
``setup_variable()`` and Chainer's ``install_variable_arithmetics()`` do. So ``x + y`` is
``elementwise.add(x, y)``, ``x.sum(1)`` is ``reduction.sum(x, 1)`` and ``loss.backward()`` is
``autograd.backward(loss)``: one definition each, found by following the table.

A reflected operator (``2 - x``) swaps the operands: ``_reflected(elementwise.sub)(x, 2)`` is
``sub(2, x)``. The signatures static tools see are declared in tensor.py's ``TYPE_CHECKING`` block;
tests/test_architecture.py checks that the two lists name the same methods.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .. import autograd
from ..tensor import Tensor
from . import activation, elementwise, linalg, reduction, shape


def _reflected(fn: Callable[[Any, Any], Tensor], symbol: str) -> Callable[[Tensor, Any], Tensor]:
    """The method for ``other <symbol> self``: ``fn(other, self)``."""

    def method(self: Tensor, other: Any) -> Tensor:
        return fn(other, self)

    method.__name__ = f"__r{fn.__name__}__"
    method.__doc__ = f"``other {symbol} self``: ``{fn.__module__}.{fn.__name__}(other, self)``."
    return method


TENSOR_METHODS: dict[str, Callable[..., Any]] = {
    # autograd
    "backward": autograd.backward,
    # arithmetic operators and their reflected forms
    "__add__": elementwise.add,
    "__radd__": _reflected(elementwise.add, "+"),
    "__sub__": elementwise.sub,
    "__rsub__": _reflected(elementwise.sub, "-"),
    "__mul__": elementwise.mul,
    "__rmul__": _reflected(elementwise.mul, "*"),
    "__truediv__": elementwise.div,
    "__rtruediv__": _reflected(elementwise.div, "/"),
    "__pow__": elementwise.pow,
    "__rpow__": _reflected(elementwise.pow, "**"),
    "__matmul__": linalg.matmul,
    "__rmatmul__": _reflected(linalg.matmul, "@"),
    "__neg__": elementwise.neg,
    "__abs__": elementwise.abs,
    "__getitem__": shape.getitem,
    "_set_item": shape.set_item,
    # elementwise
    "mul": elementwise.mul,
    "div": elementwise.div,
    "exp": elementwise.exp,
    "log": elementwise.log,
    "sqrt": elementwise.sqrt,
    "abs": elementwise.abs,
    "pow": elementwise.pow,
    "clamp": elementwise.clamp,
    "maximum": elementwise.maximum,
    "minimum": elementwise.minimum,
    # activations
    "relu": activation.relu,
    "sigmoid": activation.sigmoid,
    "tanh": activation.tanh,
    "softmax": activation.softmax,
    "log_softmax": activation.log_softmax,
    # reductions
    "sum": reduction.sum,
    "mean": reduction.mean,
    "max": reduction.max,
    "min": reduction.min,
    "argmax": reduction.argmax,
    "argmin": reduction.argmin,
    "topk": reduction.topk,
    "matmul": linalg.matmul,
    # shapes, copies, devices and dtypes
    "reshape": shape.reshape,
    "view": shape.reshape,
    "flatten": shape.flatten,
    "permute": shape.permute,
    "transpose": shape.transpose,
    "unsqueeze": shape.unsqueeze,
    "squeeze": shape.squeeze,
    "expand": shape.expand,
    "clone": shape.clone,
    "to": shape.to,
}


def install(cls: type = Tensor) -> None:
    """Set every method of ``TENSOR_METHODS`` on ``cls`` (the subclasses, ``Parameter``, inherit them)."""
    for name, fn in TENSOR_METHODS.items():
        setattr(cls, name, fn)
