"""``minires.nn``: ``Module`` and ``Parameter``, the layers (``Conv2d``, ``BatchNorm2d``, ``Linear``, ...),
the containers, ``init`` and the functional API (``minires.nn.functional``), with PyTorch's names."""

from . import functional, init, utils
from .module import Module
from .modules import (
    GELU,
    AdaptiveAvgPool2d,
    AvgPool2d,
    BatchNorm1d,
    BatchNorm2d,
    Conv2d,
    CrossEntropyLoss,
    Dropout,
    Flatten,
    Identity,
    Linear,
    LogSoftmax,
    MaxPool2d,
    ModuleDict,
    ModuleList,
    NLLLoss,
    ReLU,
    Sequential,
    Sigmoid,
    Softmax,
    Tanh,
)
from .parameter import Parameter
