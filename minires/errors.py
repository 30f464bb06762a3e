"""The errors minires raises on bad input.

Each one derives from the Python built-in a caller would catch (``ValueError`` for a wrong shape or value,
``TypeError`` for a wrong dtype) and also from ``RuntimeError``, which is what PyTorch raises in the same
places, so that code written against either framework catches them.
"""


class ShapeError(ValueError, RuntimeError):
    """An op got arrays whose shapes (or shape-like arguments) do not fit together."""


class DTypeError(TypeError, RuntimeError):
    """An op got an array of a dtype it cannot work with (float targets for cross_entropy, ...)."""


class DeviceError(ValueError, RuntimeError):
    """An op got tensors on different devices, or a device that is not available."""


class GraphError(RuntimeError):
    """The autograd graph cannot do what was asked (a second backward through freed buffers, ...)."""


class TargetIndexError(IndexError, ValueError, RuntimeError):
    """A class-index target lies outside [0, C) (PyTorch raises IndexError here)."""
