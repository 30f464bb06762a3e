"""The array backend: NumPy on the CPU, CuPy on an NVIDIA GPU.

Every op works on raw arrays and picks its array module with ``xp = get_array_module(x)``, so that one
piece of code runs on both devices. CuPy is optional: without it (or without a GPU) only ``"cpu"`` exists.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np

from .errors import DeviceError

try:  # CuPy is the `gpu` extra; importing it can fail in many ways on a machine without CUDA.
    import cupy

    cupy.cuda.runtime.getDeviceCount()
except Exception:  # noqa: BLE001 - any failure means "no usable GPU"
    cupy = None

Array = Any  # a numpy.ndarray or a cupy.ndarray


def cuda_available() -> bool:
    """True when CuPy is installed and sees at least one GPU."""
    return cupy is not None


def get_array_module(*arrays: Array) -> ModuleType:
    """``cupy`` if any argument is a CuPy array, else ``numpy`` (DeZero's idiom)."""
    if cupy is not None:
        for a in arrays:
            if isinstance(a, cupy.ndarray):
                return cupy
    return np


def normalize_device(device: Any) -> str:
    """Map ``None``, ``"cpu"``, ``"cuda"``, ``"cuda:0"`` (or an object with ``.type``) to "cpu" or "cuda"."""
    if device is None:
        return "cpu"
    name = getattr(device, "type", device)
    if not isinstance(name, str):
        raise DeviceError(f"device: expected 'cpu' or 'cuda', got {device!r}")
    base = name.split(":")[0]
    if base not in ("cpu", "cuda"):
        raise DeviceError(f"device: expected 'cpu' or 'cuda', got {device!r}")
    if base == "cuda" and not cuda_available():
        raise DeviceError("device 'cuda' was asked for, but CuPy is not installed or sees no GPU")
    return base


def device_of(array: Array) -> str:
    """``"cuda"`` for a CuPy array, ``"cpu"`` otherwise."""
    return "cuda" if get_array_module(array) is not np else "cpu"


def array_module_for(device: str) -> ModuleType:
    """The array module that holds arrays on ``device``."""
    return cupy if device == "cuda" else np


def to_device(array: Array, device: str) -> Array:
    """Move ``array`` to ``device`` (a no-op when it is there already)."""
    if device_of(array) == device:
        return array
    if device == "cuda":
        return cupy.asarray(array)
    return cupy.asnumpy(array)


def to_numpy(array: Array) -> np.ndarray:
    """A NumPy array with the values of ``array`` (copied back from the GPU when needed)."""
    if cupy is not None and isinstance(array, cupy.ndarray):
        return cupy.asnumpy(array)
    return np.asarray(array)
