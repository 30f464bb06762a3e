"""The random number generators behind ``mr.randn``, ``mr.rand``, dropout and initialization.

One NumPy ``Generator`` for the CPU, and for the GPU a counter-based scheme as PyTorch's CUDA generator
has (a seed and an offset): the k-th draw on the GPU comes from a fresh Philox generator keyed by
``(seed, k)``. Both are seeded together by ``manual_seed``, so a seeded run is reproducible on each
device, and both states are small dicts of numbers that a checkpoint saves and ``set_state`` restores
(CuPy's own generator state lives in device memory and cannot be saved).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import backend

_np_gen = np.random.default_rng()
_cuda_seed: int | None = None  # None until first use when no manual_seed was given
_cuda_draws = 0  # how many GPU draws were made since seeding: the offset of the next one


def manual_seed(seed: int) -> None:
    """Seed every generator minires uses."""
    global _np_gen
    _np_gen = np.random.default_rng(int(seed))
    cuda_manual_seed(seed)


def cuda_manual_seed(seed: int) -> None:
    """Seed the GPU's generator only."""
    global _cuda_seed, _cuda_draws
    _cuda_seed, _cuda_draws = int(seed), 0


def generator(device: str = "cpu") -> Any:
    """The generator for ``device``: a ``numpy.random.Generator``, or on "cuda" a ``cupy.random.Generator``
    for one draw (each call gives the next one: call it once per draw)."""
    global _cuda_seed, _cuda_draws
    if device == "cpu":
        return _np_gen
    if _cuda_seed is None:
        _cuda_seed = int(np.random.SeedSequence().entropy % 2**63)
    cupy = backend.cupy
    key = [_cuda_seed, _cuda_draws]
    _cuda_draws += 1
    return cupy.random.Generator(cupy.random.Philox4x3210(key))


def get_state() -> dict:
    """Every generator's state, a dict of numbers, for checkpoints: ``{"cpu": ..., "cuda": ...}``."""
    return {
        "cpu": _np_gen.bit_generator.state,
        "cuda": {"seed": _cuda_seed, "draws": _cuda_draws},
    }


def set_state(state: dict) -> None:
    """Restore a state returned by ``get_state`` (or the CPU state alone, as earlier checkpoints hold)."""
    global _cuda_seed, _cuda_draws
    if "cpu" not in state:  # a NumPy bit generator's state: checkpoints written before the GPU's was kept
        _np_gen.bit_generator.state = state
        return
    _np_gen.bit_generator.state = state["cpu"]
    cuda = state["cuda"]
    _cuda_seed = None if cuda["seed"] is None else int(cuda["seed"])
    _cuda_draws = int(cuda["draws"])
