"""``Parameter``: a Tensor that a Module registers as one of its learnable weights.

A Parameter is an ordinary leaf Tensor (``requires_grad=True`` by default) whose type tells ``Module``'s
attribute assignment to file it under ``_parameters``, so that it shows up in ``parameters()`` and in the
``state_dict()``. Ops on a Parameter give plain Tensors.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..tensor import Tensor


class Parameter(Tensor):
    """``Parameter(data=None, requires_grad=True)``, as ``torch.nn.Parameter``.

    ``data`` (a Tensor or an array) is shared, not copied, as PyTorch shares the storage; ``None`` gives
    an empty float32 tensor. The result is always a leaf, even when ``data`` came out of an op.
    """

    def __init__(self, data: Any = None, requires_grad: bool = True) -> None:
        if data is None:
            data = np.empty(0, dtype=np.float32)
        super().__init__(data.data if isinstance(data, Tensor) else data, requires_grad=requires_grad)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()
