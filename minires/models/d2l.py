"""The d2l ResNet-18 (Dive into Deep Learning, section 8.6): a plain ``Sequential`` of ``Residual`` blocks.

    b1   Conv2d(in, 64, 7, stride 2, padding 3) -> BatchNorm2d -> ReLU -> MaxPool2d(3, 2, 1)
    b2   two Residual(64, 64)                                   (the max pool already halved the size)
    b3   Residual(64, 128, use_1x1conv=True, strides=2), Residual(128, 128)
    b4   Residual(128, 256, use_1x1conv=True, strides=2), Residual(256, 256)
    b5   Residual(256, 512, use_1x1conv=True, strides=2), Residual(512, 512)
    head AdaptiveAvgPool2d((1, 1)) -> Flatten -> Linear(512, num_classes)

For a 1x1x224x224 input the stages give (1,64,56,56), (1,64,56,56), (1,128,28,28), (1,256,14,14),
(1,512,7,7), (1,512,1,1), (1,512), (1,10). The state_dict keys equal those of the book's PyTorch
``net`` ("0.0.weight", "1.0.conv1.weight", ..., "7.bias"), in the same order.
"""

from __future__ import annotations

from .. import nn
from .blocks import Residual


def resnet_block(
    input_channels: int, num_channels: int, num_residuals: int, first_block: bool = False
) -> list[Residual]:
    """The book's stage: ``num_residuals`` Residual blocks, the first halving the size with a 1x1-conv
    shortcut unless ``first_block`` (the stage right after the stem's max pool)."""
    blk = []
    for i in range(num_residuals):
        if i == 0 and not first_block:
            blk.append(Residual(input_channels, num_channels, use_1x1conv=True, strides=2))
        else:
            blk.append(Residual(num_channels, num_channels))
    return blk


def d2l_resnet18(in_channels: int = 1, num_classes: int = 10) -> nn.Sequential:
    """The d2l ResNet-18 as a ``Sequential`` (PyTorch's default initialization, as in the book).
    Shapes: x (N, in_channels, H, W) -> logits (N, num_classes)."""
    b1 = nn.Sequential(
        nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3),
        nn.BatchNorm2d(64),
        nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
    )
    b2 = nn.Sequential(*resnet_block(64, 64, 2, first_block=True))
    b3 = nn.Sequential(*resnet_block(64, 128, 2))
    b4 = nn.Sequential(*resnet_block(128, 256, 2))
    b5 = nn.Sequential(*resnet_block(256, 512, 2))
    return nn.Sequential(
        b1, b2, b3, b4, b5, nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(), nn.Linear(512, num_classes)
    )
