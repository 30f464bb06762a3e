"""``mr.cuda``: whether a GPU is usable, as ``torch.cuda`` answers it."""

from __future__ import annotations

from . import backend


def is_available() -> bool:
    """True when CuPy is installed and sees an NVIDIA GPU."""
    return backend.cuda_available()


def device_count() -> int:
    return backend.cupy.cuda.runtime.getDeviceCount() if backend.cuda_available() else 0


def synchronize() -> None:
    """Wait for the GPU to finish its queued work (for timing); a no-op without a GPU."""
    if backend.cuda_available():
        backend.cupy.cuda.Device().synchronize()
