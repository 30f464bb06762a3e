"""minires: a deep-learning framework written from scratch on NumPy (CPU) and CuPy (GPU), with PyTorch's API.

    import minires as mr
    import minires.nn.functional as F

Every op is a ``Function`` in ``minires/ops`` whose docstring derives its backward. The layers are in
``minires.nn``, the ResNet zoo in ``minires.models``, ``save``/``load`` in ``minires.serialization``.
"""

from types import SimpleNamespace
from typing import Any

from . import autograd, backends, cuda, data, distributed, models, nn, optim, utils
from .cuda import GradScaler as _GradScaler
from .cuda import autocast
from .errors import DeviceError, DTypeError, GraphError, ShapeError, TargetIndexError
from .grad_mode import (
    enable_grad,
    fuse_norm_relu,
    inference_mode,
    is_grad_enabled,
    no_grad,
    set_grad_enabled,
)
from .gradcheck import GradcheckError, directional_gradcheck, gradcheck
from .ops.activation import log_softmax, relu, sigmoid, softmax, tanh
from .ops.elementwise import abs, clamp, erf, exp, log, maximum, minimum, sqrt
from .ops.linalg import matmul
from .ops.reduction import argmax, argmin, max, mean, min, sum, topk
from .ops.shape import cat, flatten, permute, reshape, squeeze, stack, transpose, unsqueeze
from .rng import manual_seed
from .serialization import load, save
from .tensor import (
    Tensor,
    arange,
    as_tensor,
    bool_,
    device,
    float16,
    float32,
    float64,
    from_numpy,
    int32,
    int64,
    is_tensor,
    ones,
    ones_like,
    rand,
    randn,
    tensor,
    uint8,
    zeros,
    zeros_like,
)
from .threads import get_num_threads, set_num_threads

# torch's other names of the dtypes: `dtype=mr.long` for class labels, `x.to(mr.float)`.
float = float32  # noqa: A001
double = float64
half = float16
long = int64
int = int32  # noqa: A001
bool = bool_  # noqa: A001

# `torch.amp.autocast(...)`, `torch.amp.GradScaler(...)` (minires.cuda explains why they raise when enabled)
amp = SimpleNamespace(autocast=autocast, GradScaler=_GradScaler)


def compile(model: Any = None, **kwargs: Any) -> Any:  # noqa: A001 - PyTorch's name
    """``torch.compile`` is out of scope: minires runs every op eagerly, in Python over NumPy/CuPy."""
    raise NotImplementedError(
        "torch.compile is not available in minires, which runs every op eagerly (there is no graph "
        "compiler); call the model itself, without compiling it"
    )


__version__ = "0.1.0"
