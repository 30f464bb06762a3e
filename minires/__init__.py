"""minires: a deep-learning framework written from scratch on NumPy (CPU) and CuPy (GPU), with PyTorch's API.

    import minires as mr
    import minires.nn.functional as F

Every op is a ``Function`` in ``minires/ops`` whose docstring derives its backward. The layers are in
``minires.nn``, the ResNet zoo in ``minires.models``, ``save``/``load`` in ``minires.serialization``.
"""

from . import cuda, data, models, nn, optim, utils
from .errors import DeviceError, DTypeError, GraphError, ShapeError, TargetIndexError
from .grad_mode import enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from .gradcheck import GradcheckError, directional_gradcheck, gradcheck
from .ops.activation import log_softmax, relu, sigmoid, softmax, tanh
from .ops.elementwise import abs, clamp, erf, exp, log, sqrt
from .ops.linalg import matmul
from .ops.reduction import argmax, argmin, max, mean, min, sum
from .ops.shape import cat, flatten, permute, reshape, squeeze, stack, transpose, unsqueeze
from .rng import manual_seed
from .serialization import load, save
from .tensor import (
    Tensor,
    arange,
    bool_,
    float16,
    float32,
    float64,
    int32,
    int64,
    ones,
    ones_like,
    rand,
    randn,
    tensor,
    uint8,
    zeros,
    zeros_like,
)

__version__ = "0.1.0"
