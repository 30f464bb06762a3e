"""Whether ops record the graph: ``no_grad``, ``enable_grad``, ``set_grad_enabled``, ``inference_mode``,
``is_grad_enabled``; and beside it the other per-thread switches of the ops, ``conv_layout`` and
``fuse_norm_relu``.

The mode is per thread, as in PyTorch: a ``no_grad`` block in one thread leaves the others recording.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Callable, Iterator
from typing import Any


class _State(threading.local):
    """The switches of one thread; the class attributes are every new thread's defaults."""

    enabled = True  # grad mode
    conv_layout: str | None = None  # the forced layout of conv2d, None: each layer chooses
    fuse_norm_relu = True  # the blocks' batch norm -> (add ->) ReLU as one op


_state = _State()

# The names of minires/ops/conv_layouts.py's layouts: three unfolds (the shifted rows also with their kernel
# rows stacked), Winograd's F(2x2, 3x3), F(3x3, 3x3) and F(4x4, 3x3), and a product per live kernel tap.
CONV_LAYOUTS = ("nchw", "rows", "rows_stacked", "nhwc", "winograd", "winograd3", "winograd4", "taps")


def forced_conv_layout() -> str | None:
    """The unfold layout that every conv2d of this thread uses (set by ``conv_layout``); None: each layer
    chooses its own (``minires.ops.conv_layouts.choose_layout``)."""
    return _state.conv_layout


@contextlib.contextmanager
def conv_layout(layout: str | None) -> Iterator[None]:
    """Within the block every conv2d of this thread runs in ``layout``: "nchw", "rows" or "rows_stacked"
    (stride-1 layers only; the others fall back to "nchw"), "nhwc", "winograd", "winograd3" or "winograd4"
    (Winograd's F(2x2, 3x3), F(3x3, 3x3) or F(4x4, 3x3): 3x3 stride-1 layers of one group only; the others
    fall back to the per-layer choice) or "taps" (any layer); None is the per-layer choice. For tests (every
    layout against the same references) and benchmarks (each layout timed on each layer). The layout is fixed
    when a convolution runs forward, and the override then in force also picks the layout of dx's
    flipped-kernel convolution: its backward is the same inside the block or not."""
    if layout is not None and layout not in CONV_LAYOUTS:
        raise ValueError(f"conv_layout: expected one of {CONV_LAYOUTS} or None, got {layout!r}")
    saved = forced_conv_layout()
    _state.conv_layout = layout
    try:
        yield
    finally:
        _state.conv_layout = saved


def norm_relu_fused() -> bool:
    """Whether this thread's blocks run batch norm -> (add ->) ReLU as one op (``fuse_norm_relu``)."""
    return _state.fuse_norm_relu


@contextlib.contextmanager
def fuse_norm_relu(enabled: bool) -> Iterator[None]:
    """Within the block, the residual blocks and stems of this thread (minires.models) run their batch norm
    followed by a ReLU, with or without a residual added in between, as one op (True, the default:
    ``BatchNormReLU``, one pass over memory for three, the same bits), or as the separate ops (False: the
    graph that PyTorch's blocks record, BatchNormBackward, AddBackward and ReLUBackward, as
    docs/backward.md draws it). For a learner's picture of the textbook graph, and for tests and benchmarks
    that compare the two."""
    if not isinstance(enabled, bool):
        raise TypeError(f"fuse_norm_relu: expected a bool, got {enabled!r}")
    saved = norm_relu_fused()
    _state.fuse_norm_relu = enabled
    try:
        yield
    finally:
        _state.fuse_norm_relu = saved


def is_grad_enabled() -> bool:
    """True when ops record the graph for backward (the default)."""
    return _state.enabled


def _set(mode: bool) -> None:
    _state.enabled = bool(mode)


class _GradMode:
    """A context manager that is also a decorator, with or without parentheses (``@no_grad``)."""

    mode = True

    def __new__(cls, orig_func: Callable[..., Any] | None = None) -> Any:
        if orig_func is None:
            return super().__new__(cls)
        return cls()(orig_func)

    def __enter__(self) -> None:
        self.prev = is_grad_enabled()
        _set(self.mode)

    def __exit__(self, *exc: object) -> None:
        _set(self.prev)

    def __call__(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        mode = self.mode

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            prev = is_grad_enabled()
            _set(mode)
            try:
                return fn(*args, **kwargs)
            finally:
                _set(prev)

        return wrapper


class no_grad(_GradMode):  # noqa: N801 - PyTorch's name
    """Context manager and decorator: ops inside record no graph (inference, optimizer updates)."""

    mode = False


class enable_grad(_GradMode):  # noqa: N801 - PyTorch's name
    """Context manager and decorator: record the graph again inside a ``no_grad`` block."""

    mode = True


class set_grad_enabled(_GradMode):  # noqa: N801 - PyTorch's name
    """Turn graph recording on or off now; as a context manager the previous mode comes back on exit,
    and as a decorator the mode applies inside the decorated function only."""

    def __new__(cls, mode: bool) -> set_grad_enabled:
        return object.__new__(cls)

    def __init__(self, mode: bool) -> None:
        self.prev = is_grad_enabled()
        self.mode = bool(mode)
        _set(self.mode)

    def __enter__(self) -> None:
        pass

    def __call__(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        _set(self.prev)  # used as a decorator: the mode belongs to the function, not to the caller
        return super().__call__(fn)


class inference_mode(_GradMode):  # noqa: N801 - PyTorch's name
    """``inference_mode(mode=True)``: context manager and decorator (with or without parentheses). With
    ``mode=True`` it is ``no_grad`` (minires has no separate inference tensors: results are plain tensors
    that record no graph); ``inference_mode(False)`` changes nothing, as in torch."""

    def __new__(cls, mode: Any = True) -> Any:
        if callable(mode):  # @inference_mode without parentheses
            return cls()(mode)
        return object.__new__(cls)

    def __init__(self, mode: Any = True) -> None:
        self.enabled = bool(mode)

    def __enter__(self) -> None:
        self.prev = is_grad_enabled()
        _set(self.prev and not self.enabled)

    def __call__(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        enabled = self.enabled

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            prev = is_grad_enabled()
            _set(prev and not enabled)
            try:
                return fn(*args, **kwargs)
            finally:
                _set(prev)

        return wrapper
