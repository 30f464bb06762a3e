"""``minires.models``: residual blocks and the ResNet model zoo, weight-compatible with PyTorch.

    from minires.models import resnet18, d2l_resnet18, cifar_resnet, preact_resnet18

Each model has the structure, parameter names and parameter count of its PyTorch original
(torchvision, the d2l book, He et al.'s CIFAR ResNets, pytorch-cifar's pre-activation ResNet), so that
PyTorch state_dicts load unchanged.
"""

from .blocks import BasicBlock, Bottleneck, PreActBlock, Residual, ZeroPadShortcut, conv1x1, conv3x3
from .cifar import CifarResNet, cifar_resnet
from .d2l import d2l_resnet18, resnet_block
from .preact import PreActResNet, preact_resnet18
from .resnet import (
    ResNet,
    resnet18,
    resnet34,
    resnet50,
    resnet101,
    resnet152,
    resnext50_32x4d,
    wide_resnet50_2,
)

__all__ = [
    "BasicBlock",
    "Bottleneck",
    "CifarResNet",
    "PreActBlock",
    "PreActResNet",
    "ResNet",
    "Residual",
    "ZeroPadShortcut",
    "cifar_resnet",
    "conv1x1",
    "conv3x3",
    "d2l_resnet18",
    "preact_resnet18",
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
    "resnet_block",
    "resnext50_32x4d",
    "wide_resnet50_2",
]
