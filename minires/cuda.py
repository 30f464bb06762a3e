"""``mr.cuda``: whether a GPU is usable, as ``torch.cuda`` answers it, its seeding and memory calls, and
``mr.cuda.amp`` (automatic mixed precision), which minires does not do.

minires computes in the dtype of its tensors (float32 by default, float64 for checks); it has no float16
autocasting and no loss scaling. ``autocast`` and ``GradScaler`` therefore exist only so that a training
loop written as ``enabled=use_amp`` runs with ``use_amp = False``, exactly as torch runs it then; enabled,
they raise ``NotImplementedError``.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from . import backend, rng


def is_available() -> bool:
    """True when CuPy is installed and sees an NVIDIA GPU; ``unavailable_reason()`` says why not."""
    return backend.cuda_available()


def unavailable_reason() -> str:
    """Why ``is_available()`` is False, in words (the failure met probing CuPy); "" when it is True."""
    return backend.cuda_unavailable_reason()


def device_count() -> int:
    return backend.cupy.cuda.runtime.getDeviceCount() if backend.cuda_available() else 0


def current_device() -> int:
    """The index of the GPU in use (minires uses one, CuPy's current device)."""
    if not backend.cuda_available():
        raise RuntimeError("current_device: no GPU (CuPy is not installed or sees no GPU)")
    return int(backend.cupy.cuda.Device().id)


def get_device_name(device: Any = None) -> str:
    """The GPU's name, "NVIDIA H100 80GB HBM3" say."""
    if not backend.cuda_available():
        raise RuntimeError("get_device_name: no GPU (CuPy is not installed or sees no GPU)")
    index = getattr(device, "index", device)
    index = backend.cupy.cuda.Device().id if index is None or isinstance(index, str) else int(index)
    name = backend.cupy.cuda.runtime.getDeviceProperties(index)["name"]
    return name.decode() if isinstance(name, bytes) else str(name)


def synchronize() -> None:
    """Wait for the GPU to finish its queued work (for timing), and raise the error of any check that was
    deferred to the next synchronization and failed (a class index out of range); a no-op without a GPU."""
    if backend.cuda_available():
        backend.cupy.cuda.Device().synchronize()
        backend.flush_deferred_checks()


def empty_cache() -> None:
    """Give the GPU memory that CuPy's pool holds unused back to the driver; a no-op without a GPU."""
    if backend.cuda_available():
        backend.cupy.get_default_memory_pool().free_all_blocks()


def manual_seed(seed: int) -> None:
    """Seed the GPU's generator only (``mr.manual_seed`` seeds every generator); without a GPU it is
    silently ignored, as in torch."""
    rng.cuda_manual_seed(seed)


def manual_seed_all(seed: int) -> None:
    """As ``manual_seed``: minires drives one GPU."""
    manual_seed(seed)


# ----- automatic mixed precision: out of scope, with its disabled form as torch's -----------------------
_NO_AMP = (
    "minires has no automatic mixed precision: it computes in the dtype of its tensors (float32 by "
    "default). Drop the autocast context and the GradScaler, or pass enabled=False to both"
)


class autocast:  # noqa: N801 - PyTorch's name
    """``autocast(device_type, dtype=None, enabled=True, cache_enabled=None)`` as ``torch.autocast``:
    with ``enabled=False`` a context (and decorator) that changes nothing, as torch's; enabled, it raises
    ``NotImplementedError`` (see the module docstring)."""

    def __init__(
        self,
        device_type: str = "cuda",
        dtype: Any = None,
        enabled: bool = True,
        cache_enabled: bool | None = None,
    ) -> None:
        if enabled:
            raise NotImplementedError(f"torch.autocast / torch.cuda.amp.autocast: {_NO_AMP}")
        self.device_type, self.enabled = device_type, False

    def __enter__(self) -> autocast:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def __call__(self, fn: Any) -> Any:
        return fn


def _cuda_autocast(enabled: bool = True, dtype: Any = None, cache_enabled: bool | None = None) -> autocast:
    """``torch.cuda.amp.autocast(enabled=True, dtype=torch.float16, cache_enabled=True)``."""
    return autocast("cuda", dtype, enabled, cache_enabled)


class GradScaler:
    """``GradScaler(device="cuda", init_scale=2.0**16, growth_factor=2.0, backoff_factor=0.5,
    growth_interval=2000, enabled=True)`` as ``torch.amp.GradScaler``: with ``enabled=False`` it does what
    torch's does then, ``scale(loss)`` returns the loss, ``step(optimizer)`` calls ``optimizer.step()``,
    ``unscale_`` and ``update`` do nothing; enabled, it raises ``NotImplementedError``."""

    def __init__(
        self,
        device: str = "cuda",
        init_scale: float = 2.0**16,
        growth_factor: float = 2.0,
        backoff_factor: float = 0.5,
        growth_interval: int = 2000,
        enabled: bool = True,
    ) -> None:
        if enabled:
            raise NotImplementedError(f"torch.amp.GradScaler / torch.cuda.amp.GradScaler: {_NO_AMP}")

    def is_enabled(self) -> bool:
        return False

    def scale(self, outputs: Any) -> Any:
        return outputs

    def unscale_(self, optimizer: Any) -> None:
        return None

    def step(self, optimizer: Any, *args: Any, **kwargs: Any) -> Any:
        return optimizer.step(*args, **kwargs)

    def update(self, new_scale: Any = None) -> None:
        return None

    def get_scale(self) -> float:
        return 1.0

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        return None


def _cuda_grad_scaler(
    init_scale: float = 2.0**16,
    growth_factor: float = 2.0,
    backoff_factor: float = 0.5,
    growth_interval: int = 2000,
    enabled: bool = True,
) -> GradScaler:
    """``torch.cuda.amp.GradScaler(init_scale=2.0**16, ..., enabled=True)``."""
    return GradScaler("cuda", init_scale, growth_factor, backoff_factor, growth_interval, enabled)


amp = SimpleNamespace(autocast=_cuda_autocast, GradScaler=_cuda_grad_scaler)
"""``mr.cuda.amp.autocast(...)`` and ``mr.cuda.amp.GradScaler(...)``, torch.cuda.amp's spellings."""
