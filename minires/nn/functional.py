"""``minires.nn.functional``: torch.nn.functional's names over minires's ops.

Each function here is the lowercase wrapper of a ``Function`` in ``minires/ops``; read the op's
docstring there for its forward, its backward and the derivation.
"""

from ..ops.activation import gelu, log_softmax, relu, sigmoid, softmax, tanh
from ..ops.conv import conv2d
from ..ops.dropout import dropout
from ..ops.linalg import linear
from ..ops.loss import cross_entropy, nll_loss
from ..ops.norm import batch_norm, group_norm
from ..ops.pool import adaptive_avg_pool2d, avg_pool2d, max_pool2d
from ..ops.shape import pad

__all__ = [
    "adaptive_avg_pool2d",
    "avg_pool2d",
    "conv2d",
    "max_pool2d",
    "batch_norm",
    "cross_entropy",
    "dropout",
    "gelu",
    "group_norm",
    "linear",
    "log_softmax",
    "nll_loss",
    "pad",
    "relu",
    "sigmoid",
    "softmax",
    "tanh",
]
