"""``minires.nn``: ``Module`` and ``Parameter``, the layers (``Conv2d``, ``BatchNorm2d``, ``Linear``, ...),
their lazy forms (``LazyConv2d``, ...; ``nn.parameter.UninitializedParameter``), the containers, ``init``
and the functional API (``minires.nn.functional``), with PyTorch's names."""

from . import functional, init, parallel, parameter, utils
from .module import Module
from .modules import (
    GELU,
    AdaptiveAvgPool2d,
    AvgPool2d,
    BatchNorm1d,
    BatchNorm2d,
    ConstantPad2d,
    Conv2d,
    CrossEntropyLoss,
    DataParallel,
    Dropout,
    Flatten,
    GroupNorm,
    Identity,
    LazyBatchNorm2d,
    LazyConv2d,
    LazyLinear,
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
    ZeroPad2d,
)
from .modules.sync_batchnorm import SyncBatchNorm
from .parameter import Parameter, UninitializedBuffer, UninitializedParameter
