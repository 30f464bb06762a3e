"""``Function``: one differentiable op, with its forward and its backward side by side.

A subclass sets its parameters in ``__init__`` (stride, dim, ...), names in ``saved`` the attributes its
forward keeps for backward, and writes two methods on raw NumPy/CuPy arrays:

    saved = ("x_hat", "inv_std")             what forward sets on ``self`` for backward
    forward(self, *xs)  -> y                 setting the ``saved`` attributes
    backward(self, gy)  -> gx or (gx1, gx2)  one gradient per input, ``None`` where none is needed

``backward`` must not modify ``gy`` in place: the engine may hand the same array to several nodes.

Calling an instance on Tensors runs ``forward`` and, when some input requires a gradient (and grad mode
is on), makes the result a node of the graph. ``self.needs_input_grad`` tells forward and backward
which inputs want a gradient, so that work nobody needs (the input gradient of the first conv) is skipped.

The ``saved`` attributes that hold arrays are freed after ``backward`` has used them, unless the caller
asked for ``retain_graph=True``; a second backward through a node that freed some raises ``GraphError``.
As in PyTorch, which frees saved tensors only, a node that saved none (a sum keeps its input's shape, an
addition nothing) runs again: ``y = (x + x).sum(); y.backward(); y.backward()`` accumulates twice.
(tests/test_saved.py runs every op of the registry and checks that forward sets no attribute that ``saved``
does not name.)

In anomaly mode (``minires.autograd.detect_anomaly``) each recorded node also keeps ``creation_stack``,
the stack of the line that created it, for the error that backward raises when the node's gradient is NaN.
Off (the default) that costs one check of a module flag per node.
"""

from __future__ import annotations

import sys
import traceback
import weakref
from typing import Any

import numpy as np

from .backend import get_array_module
from .errors import DeviceError, GraphError
from .grad_mode import is_grad_enabled
from .tensor import Tensor

# Anomaly mode: global, as PyTorch's (not per thread). Set through minires.autograd.set_detect_anomaly.
_anomaly_enabled = False


def is_anomaly_enabled() -> bool:
    """True while anomaly mode is on: new nodes record where forward created them."""
    return _anomaly_enabled


def set_anomaly_enabled(mode: bool) -> None:
    """Turn anomaly mode on or off (``minires.autograd.set_detect_anomaly`` is the public switch)."""
    global _anomaly_enabled
    _anomaly_enabled = bool(mode)


def _shares_memory(y: Any, inputs: tuple) -> bool:
    """Whether the array ``y`` may share memory with one of the inputs' arrays (a view op's output): an
    in-place op recorded in the graph replaces a tensor's array, which a view's base would not see, so it
    is refused on such a tensor (Tensor._records). A bounds check, no scan of the arrays."""
    xp = get_array_module(y)
    may_share = getattr(xp, "may_share_memory", None)
    if may_share is None:
        return False  # (an array on another device than an input's shares nothing with it)
    return any(t is not None and get_array_module(t.data) is xp and may_share(y, t.data) for t in inputs)


def _holds_array(value: Any) -> bool:
    """A saved value is (or holds, in a list or tuple) a NumPy or CuPy array or a Tensor: a buffer that
    release() frees."""
    if isinstance(value, (list, tuple)):
        return any(_holds_array(v) for v in value)
    return isinstance(value, (np.ndarray, Tensor)) or isinstance(value, get_array_module(value).ndarray)


def _forward_stack() -> traceback.StackSummary:
    """The caller's stack, without the frames of this file (``Function.__call__``): the op's wrapper, the
    layer that called it, ..., the user's line."""
    frame = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename == __file__:
        frame = frame.f_back
    return traceback.extract_stack(frame)


class Function:
    """Base class of every op; see the module docstring for the contract."""

    # Set when the node is recorded in a graph.
    needs_input_grad: tuple[bool, ...] = ()
    next_nodes: tuple[Any, ...] = ()  # per input: its grad_fn, the leaf Tensor itself, or None
    input_shapes: tuple[Any, ...] = ()
    saved: tuple[str, ...] = ()  # the attributes forward sets for backward; release() frees them
    may_view = False  # forward may return a view of an input's array (shape ops): Tensor._is_view then
    _freed = False
    _hooks: list | None = None
    _retain_grad = False
    _output_ref: Any = None
    creation_stack: traceback.StackSummary | None = None  # set in anomaly mode: where forward created it

    @property
    def name(self) -> str:
        """The op's name as errors print it: the class name in lower case."""
        return type(self).__name__.lower()

    def forward(self, *xs: Any) -> Any:
        raise NotImplementedError

    def backward(self, gy: Any) -> Any:
        raise NotImplementedError

    def __call__(self, *inputs: Tensor | None) -> Tensor:
        device = None
        for t in inputs:
            if t is None:
                continue
            if not isinstance(t, Tensor):
                raise TypeError(f"{self.name}: expected Tensor inputs, got {type(t).__name__}")
            if device is None:
                device = t.device
            elif t.device != device:
                raise DeviceError(
                    f"{self.name}: expected all tensors on the same device, got {device} and {t.device}"
                )
        record = is_grad_enabled() and any(t is not None and t.requires_grad for t in inputs)
        self.needs_input_grad = tuple(record and t is not None and t.requires_grad for t in inputs)
        y = self.forward(*[None if t is None else t.data for t in inputs])
        record = record and y.dtype.kind in "fc"  # integer results (a cast to int64) carry no gradient
        out = Tensor._wrap(y, requires_grad=record)
        if self.may_view:  # a slice, reshape or transpose of an input: refused by recorded in-place ops
            out._is_view = _shares_memory(y, inputs)
        if record:
            self.next_nodes = tuple(
                None if t is None or not t.requires_grad else (t.grad_fn if t.grad_fn is not None else t)
                for t in inputs
            )
            self.input_shapes = tuple(None if t is None else t.shape for t in inputs)
            self._output_ref = weakref.ref(out)
            out.grad_fn = self
            if _anomaly_enabled:
                self.creation_stack = _forward_stack()
        return out

    def release(self) -> None:
        """Free the arrays that forward saved; a later backward through this node then raises
        ``GraphError``. Shapes, sizes and flags stay, as PyTorch keeps them: a node that saved no array
        can run again."""
        for key in self.saved:
            if _holds_array(self.__dict__.get(key)):
                del self.__dict__[key]
                self._freed = True

    def run_backward(self, gy: Any) -> tuple[Any, ...]:
        """``backward`` with its result as a tuple of one gradient per input (the engine calls this)."""
        if self._freed:
            raise GraphError(
                f"{self.name}: trying to backward through the graph a second time; its saved buffers were "
                "freed by the first backward (call backward(retain_graph=True) the first time)"
            )
        gxs = self.backward(gy)
        if not isinstance(gxs, tuple):
            gxs = (gxs,)
        if len(gxs) != len(self.next_nodes):
            raise GraphError(
                f"{self.name}: backward returned {len(gxs)} gradients for {len(self.next_nodes)} inputs"
            )
        return gxs

    def __repr__(self) -> str:
        return f"<{type(self).__name__}Backward>"
