"""What every writer asks of a value: is it an array, and which NumPy array on the host is it.

An array is a minires ``Tensor`` (an ``nn.Parameter`` among them), a NumPy or CuPy array, or a torch
tensor (a PyTorch ``state_dict`` given to ``mr.save``); CuPy and torch tensors are copied to the host.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import backend
from ..nn.parameter import Parameter
from ..tensor import Tensor


def host_array(value: Any) -> np.ndarray | None:
    """``value`` as a NumPy array if it is an array (see the module docstring), else None."""
    if isinstance(value, Tensor):
        return backend.to_numpy(value.data)
    if isinstance(value, np.ndarray) or (
        backend.cupy is not None and isinstance(value, backend.cupy.ndarray)
    ):
        return backend.to_numpy(value)
    if type(value).__module__.startswith("torch") and hasattr(value, "detach") and hasattr(value, "numpy"):
        return value.detach().cpu().numpy()
    return None


def is_parameter(value: Any) -> bool:
    """True for an ``nn.Parameter`` (saved as such where the format can say so)."""
    return isinstance(value, Parameter)
