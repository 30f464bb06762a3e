"""The random number generators behind ``mr.randn``, ``mr.rand``, dropout and initialization.

One NumPy ``Generator`` (and one CuPy generator when a GPU is used) seeded together by ``manual_seed``,
so that a seeded run is reproducible on each device.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import backend

_np_gen = np.random.default_rng()
_cp_gen = None
_seed: int | None = None


def manual_seed(seed: int) -> None:
    """Seed every generator minires uses."""
    global _np_gen, _cp_gen, _seed
    _seed = int(seed)
    _np_gen = np.random.default_rng(_seed)
    _cp_gen = None  # re-created from the seed on first use


def generator(device: str = "cpu") -> Any:
    """The generator for ``device``: a ``numpy.random.Generator`` or a ``cupy.random.Generator``."""
    global _cp_gen
    if device == "cpu":
        return _np_gen
    if _cp_gen is None:
        _cp_gen = backend.cupy.random.default_rng(_seed)
    return _cp_gen


def get_state() -> dict:
    """The CPU generator's state (a dict of numbers), for checkpoints."""
    return _np_gen.bit_generator.state


def set_state(state: dict) -> None:
    """Restore a state returned by ``get_state``."""
    _np_gen.bit_generator.state = state
