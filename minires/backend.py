"""The array backend: NumPy on the CPU, CuPy on an NVIDIA GPU.

Every op works on raw arrays and picks its array module with ``xp = get_array_module(x)``, so that one
piece of code runs on both devices. CuPy is optional: without it (or without a GPU) only ``"cpu"`` exists.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

import numpy as np

from .errors import DeviceError


def _probe_cupy() -> tuple[ModuleType | None, str]:
    """CuPy when it is installed and can reach a GPU, else None and the reason, in words: CuPy is the
    ``gpu`` extra, and on a machine without CUDA importing it or asking for a device can fail in many ways
    (no package, no driver, an old driver, no CUDA runtime libraries, no device)."""
    try:
        import cupy
    except ImportError as exc:
        return None, f"CuPy is not installed ({exc}); install it with pip install 'minires[gpu]'"
    except Exception as exc:  # noqa: BLE001 - a broken CuPy install raises anything
        return None, f"CuPy is installed but cannot be imported ({type(exc).__name__}: {exc})"
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # noqa: BLE001 - CUDARuntimeError, a missing libcudart, ...
        return None, (
            f"CuPy {cupy.__version__} cannot reach a GPU ({type(exc).__name__}: {exc}); check the NVIDIA "
            "driver (nvidia-smi) and that CuPy's CUDA version matches it"
        )
    if count < 1:
        return None, f"CuPy {cupy.__version__} sees no GPU (getDeviceCount() is 0)"
    return cupy, ""


cupy, _unavailable_reason = _probe_cupy()

Array = Any  # a numpy.ndarray or a cupy.ndarray


def cuda_available() -> bool:
    """True when CuPy is installed and sees at least one GPU."""
    return cupy is not None


def cuda_unavailable_reason() -> str:
    """Why the GPU cannot be used ("" when it can): the failure met when CuPy was probed."""
    return "" if cupy is not None else _unavailable_reason


def get_array_module(*arrays: Array) -> ModuleType:
    """``cupy`` if any argument is a CuPy array, else ``numpy`` (DeZero's idiom)."""
    if cupy is not None:
        for a in arrays:
            if isinstance(a, cupy.ndarray):
                return cupy
    return np


def normalize_device(device: Any) -> str:
    """Map ``None``, ``"cpu"``, ``"cuda"``, ``"cuda:N"`` (or an object with ``.type`` and ``.index``) to
    "cpu" or "cuda". minires computes on one GPU, CuPy's current device: ``cuda:N`` naming another one is
    refused rather than silently meaning the current one."""
    if device is None:
        return "cpu"
    name = getattr(device, "type", device)
    if not isinstance(name, str):
        raise DeviceError(f"device: expected 'cpu' or 'cuda', got {device!r}")
    base, _, index_text = name.partition(":")
    index = None if isinstance(device, str) else getattr(device, "index", None)
    if index_text:
        if not index_text.isdigit():
            raise DeviceError(f"device: expected 'cpu', 'cuda' or 'cuda:N', got {device!r}")
        index = int(index_text)
    if base not in ("cpu", "cuda"):
        raise DeviceError(f"device: expected 'cpu' or 'cuda', got {device!r}")
    if base == "cpu":
        if index not in (None, 0):
            raise DeviceError(f"device: the CPU is device 'cpu' (or 'cpu:0'), got {device!r}")
        return "cpu"
    if not cuda_available():
        raise DeviceError(f"device {name!r} was asked for, but the GPU cannot be used: {_unavailable_reason}")
    if index is not None:
        current = cupy.cuda.runtime.getDevice()
        if index != current:
            raise DeviceError(
                f"device: minires computes on one GPU, CuPy's current device cuda:{current}; got {device!r}. "
                f"To use GPU {index}, select it first (cupy.cuda.Device({index}).use()) and pass 'cuda'"
            )
    return "cuda"


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
    """A NumPy array with the values of ``array`` (copied back from the GPU when needed).

    From the GPU, the checks that ``defer_check`` queued are read in the same copy, and the first that
    failed raises its error: the one wait for the device serves both.
    """
    if cupy is None or not isinstance(array, cupy.ndarray):
        return np.asarray(array)
    if not _deferred:
        return cupy.asnumpy(array)
    checks = _deferred[:]
    _deferred.clear()
    value = cupy.ascontiguousarray(array)
    flags = cupy.stack([failed for failed, _ in checks]).astype(cupy.uint8)  # (checks,)
    packed = cupy.asnumpy(cupy.concatenate([value.reshape(-1).view(cupy.uint8), flags]))  # one copy
    _raise_first_failed(checks, packed[value.nbytes :])
    return packed[: value.nbytes].view(value.dtype).reshape(array.shape)  # ascontiguousarray makes 0-d 1-d


# ----- checks of device values, deferred to the next read -----------------------------------------------
# An op that must refuse bad values held on the GPU (a class index out of range, which CuPy's gather would
# wrap around silently) cannot look at them without waiting for the device, once per call. Instead it
# queues a 0-d boolean device array, True when the check failed, and the error to raise. The queue is read
# with the next value the host reads (``to_numpy``: a logged loss, a printed tensor), in the same copy, or
# when ``flush_deferred_checks`` is called (``mr.cuda.synchronize``), or when it holds MAX_DEFERRED checks.
# CUDA reports PyTorch's device-side asserts the same way: at the next synchronization.
MAX_DEFERRED = 64
_deferred: list[tuple[Array, Callable[[], Exception]]] = []


def defer_check(failed: Array, error: Callable[[], Exception]) -> None:
    """Queue a check of device values: ``failed`` a 0-d boolean CuPy array, ``error()`` the exception to
    raise when it reads True (built then, so its message may read the offending values)."""
    _deferred.append((failed, error))
    if len(_deferred) >= MAX_DEFERRED:
        flush_deferred_checks()


def flush_deferred_checks() -> None:
    """Read the queued checks (one wait for the device) and raise the first failed one's error."""
    if not _deferred:
        return
    checks = _deferred[:]
    _deferred.clear()
    flags = cupy.asnumpy(cupy.stack([failed for failed, _ in checks]))
    _raise_first_failed(checks, flags)


def _raise_first_failed(checks: list[tuple[Array, Callable[[], Exception]]], flags: np.ndarray) -> None:
    for (_, error), failed in zip(checks, flags, strict=True):
        if failed:
            raise error()


def refuse_host_array(value: Any, device: str, op: str) -> None:
    """A DeviceError where ``value``, a NumPy array with dimensions, meets a tensor on the GPU as an operand
    of ``op``: PyTorch refuses it there (it would have to live on the host), and takes Python and NumPy
    scalars (0-d arrays too). Beside a CPU tensor a NumPy array is fine, as in PyTorch."""
    if device != "cpu" and isinstance(value, np.ndarray) and value.ndim > 0:
        raise DeviceError(
            f"{op}: expected all operands on {device}, got a NumPy array of shape {value.shape} (host "
            f"memory); move it first: mr.tensor(array, device={device!r})"
        )


def refuse_wrapped_indices(array: Array, index: Any) -> None:
    """Raise NumPy's IndexError where ``array[index]`` has an integer-array index outside its axis.

    NumPy and PyTorch refuse such an index; CuPy wraps it around the axis (``x[[3]]`` of a length-3 axis
    is ``x[[0]]``), so on the GPU it is checked here, at one sync per device index array. On the CPU
    this does nothing: NumPy raises by itself.
    """
    if get_array_module(array) is np:
        return
    shape = array.shape
    items = index if isinstance(index, tuple) else (index,)
    items = [np.asarray(i) if isinstance(i, list) else i for i in items]  # a list indexes as an array
    is_mask = [getattr(i, "dtype", None) is not None and i.dtype.kind == "b" for i in items]
    named = sum(  # the axes that the index names; an Ellipsis stands for the others
        i.ndim if mask else 1
        for i, mask in zip(items, is_mask, strict=True)
        if i is not None and i is not ...
    )
    axis = 0  # the axis of ``array`` that the item indexes
    for i, mask in zip(items, is_mask, strict=True):
        if i is Ellipsis:
            axis += len(shape) - named
        elif mask:
            axis += i.ndim
        elif i is not None:
            if getattr(i, "dtype", None) is not None and i.dtype.kind in "iu" and axis < len(shape):
                n = shape[axis]
                if i.size and bool(((i < -n) | (i >= n)).any()):
                    raise IndexError(f"an index is out of bounds for axis {axis} with size {n}")
            axis += 1
