"""The layers of ``minires.nn``, one file per kind; each forward calls its op in ``minires.nn.functional``."""

from .activation import GELU, LogSoftmax, ReLU, Sigmoid, Softmax, Tanh
from .container import DataParallel, ModuleDict, ModuleList, Sequential
from .conv import ConstantPad2d, Conv2d, ZeroPad2d
from .dropout import Dropout
from .lazy import LazyBatchNorm2d, LazyConv2d, LazyLinear, LazyModuleMixin
from .linear import Flatten, Identity, Linear
from .loss import CrossEntropyLoss, NLLLoss
from .norm import BatchNorm1d, BatchNorm2d, GroupNorm
from .pooling import AdaptiveAvgPool2d, AvgPool2d, MaxPool2d

__all__ = [
    "AdaptiveAvgPool2d",
    "AvgPool2d",
    "BatchNorm1d",
    "BatchNorm2d",
    "ConstantPad2d",
    "Conv2d",
    "CrossEntropyLoss",
    "DataParallel",
    "Dropout",
    "Flatten",
    "GELU",
    "GroupNorm",
    "Identity",
    "LazyBatchNorm2d",
    "LazyConv2d",
    "LazyLinear",
    "LazyModuleMixin",
    "Linear",
    "LogSoftmax",
    "MaxPool2d",
    "ModuleDict",
    "ModuleList",
    "NLLLoss",
    "ReLU",
    "Sequential",
    "Sigmoid",
    "Softmax",
    "Tanh",
    "ZeroPad2d",
]
