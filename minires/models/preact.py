"""Pre-activation ResNet-18 (ResNet v2, He et al. 2016, "Identity Mappings in Deep Residual Networks"),
CIFAR-style as in pytorch-cifar: a 3x3 stem and no max pool, for 32x32 inputs.

    conv1    3x3 (64, no bias)                               (N, 64, H, W)
    layer1   2 PreActBlocks at 64 channels                   (N, 64, H, W)
    layer2   2 PreActBlocks at 128, the first stride 2       (N, 128, H/2, W/2)
    layer3   2 PreActBlocks at 256, the first stride 2       (N, 256, H/4, W/4)
    layer4   2 PreActBlocks at 512, the first stride 2       (N, 512, H/8, W/8)
    bn, relu the final BatchNorm-ReLU: a v2 block ends at the addition, unnormalized
    head     avgpool to 1x1 -> flatten -> fc                 (N, num_classes)
"""

from __future__ import annotations

from collections.abc import Sequence

from .. import nn
from ..nn.modules.norm import batch_norm_relu
from ..ops.shape import flatten
from ..tensor import Tensor
from .blocks import PreActBlock, he_init_


class PreActResNet(nn.Module):
    """A pre-activation ResNet of PreActBlocks, ``num_blocks`` per stage (four stages, 64 to 512 channels).
    He initialization for the convs (kaiming_normal_, fan_out, relu), BatchNorm weight 1 and bias 0.
    Shapes: x (N, in_channels, H, W) -> logits (N, num_classes)."""

    def __init__(
        self, num_blocks: Sequence[int] = (2, 2, 2, 2), num_classes: int = 10, in_channels: int = 3
    ) -> None:
        super().__init__()
        if len(num_blocks) != 4:
            raise ValueError(f"PreActResNet: num_blocks must give 4 stages, got {num_blocks!r}")
        self.in_planes = 64
        self.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
        self.layer1 = self._make_layer(64, num_blocks[0], stride=1)
        self.layer2 = self._make_layer(128, num_blocks[1], stride=2)
        self.layer3 = self._make_layer(256, num_blocks[2], stride=2)
        self.layer4 = self._make_layer(512, num_blocks[3], stride=2)
        self.bn = nn.BatchNorm2d(512)
        self.relu = nn.ReLU(inplace=True)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512, num_classes)

        he_init_(self, mode="fan_out")

    def _make_layer(self, planes: int, blocks: int, stride: int) -> nn.Sequential:
        layers = []
        for s in [stride] + [1] * (blocks - 1):
            layers.append(PreActBlock(self.in_planes, planes, s))
            self.in_planes = planes
        return nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv1(x)  # (N, 64, H, W)
        out = self.layer1(out)
        out = self.layer2(out)
        out = self.layer3(out)
        out = self.layer4(out)  # (N, 512, H/8, W/8)
        out = batch_norm_relu(self.bn, self.relu, out)  # relu(bn(out))
        out = flatten(self.avgpool(out), 1)  # (N, 512)
        return self.fc(out)  # (N, num_classes)


def preact_resnet18(num_classes: int = 10, in_channels: int = 3) -> PreActResNet:
    """Pre-activation ResNet-18: PreActBlock, [2, 2, 2, 2]; 11,172,170 parameters for 10 classes."""
    return PreActResNet((2, 2, 2, 2), num_classes=num_classes, in_channels=in_channels)
