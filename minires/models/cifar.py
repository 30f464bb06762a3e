"""He et al. 2016's ResNets for CIFAR-10 (section 4.2): depth 6n + 2 (20, 32, 44, 56, 110, ...).

    stem    conv1 3x3 (16, no bias) -> bn1 -> relu            (N, 16, 32, 32)
    layer1  n BasicBlocks at 16 channels                       (N, 16, 32, 32)
    layer2  n BasicBlocks at 32 channels, the first stride 2   (N, 32, 16, 16)
    layer3  n BasicBlocks at 64 channels, the first stride 2   (N, 64, 8, 8)
    head    global average pool -> flatten -> fc               (N, num_classes)

6n convs in the blocks, plus the stem conv and fc, make the depth 6n + 2. The shortcut of the two blocks
that change shape is, with ``shortcut="A"`` (the paper's CIFAR choice), the parameter-free
``ZeroPadShortcut`` (stride-2 subsampling, extra channels zero); ResNet-20 then has 269,722 parameters
(0.27M, the paper's Table 6). With ``shortcut="B"`` it is a projection, Sequential(1x1 conv, BatchNorm2d),
in the block's ``downsample`` as torchvision names it (272,474 parameters for ResNet-20).
"""

from __future__ import annotations

from .. import nn
from ..nn.modules.norm import batch_norm_relu
from ..ops.shape import flatten
from ..tensor import Tensor
from .blocks import BasicBlock, ZeroPadShortcut, conv1x1, he_init_


class CifarResNet(nn.Module):
    """The 6n+2 CIFAR ResNet; see the module docstring. He (Kaiming normal) initialization for the convs,
    kaiming_normal_(mode="fan_in", nonlinearity="relu") as in the paper, BatchNorm weight 1 and bias 0.
    Shapes: x (N, in_channels, H, W) -> logits (N, num_classes)."""

    def __init__(self, depth: int, num_classes: int = 10, in_channels: int = 3, shortcut: str = "A") -> None:
        super().__init__()
        if not isinstance(depth, int) or depth < 8 or (depth - 2) % 6 != 0:
            raise ValueError(
                "cifar_resnet: depth must be 6n + 2 with n >= 1 (8, 14, 20, 32, 44, 56, 110, ...), "
                f"got {depth!r}"
            )
        if shortcut not in ("A", "B"):
            raise ValueError(
                f"cifar_resnet: shortcut must be 'A' (zero-padding) or 'B' (projection), got {shortcut!r}"
            )
        n = (depth - 2) // 6
        self.inplanes = 16
        self.conv1 = nn.Conv2d(in_channels, 16, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = self._make_layer(16, n, 1, shortcut)
        self.layer2 = self._make_layer(32, n, 2, shortcut)
        self.layer3 = self._make_layer(64, n, 2, shortcut)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(64, num_classes)

        he_init_(self, mode="fan_in")

    def _make_layer(self, planes: int, blocks: int, stride: int, shortcut: str) -> nn.Sequential:
        downsample: nn.Module | None = None
        if stride != 1 or self.inplanes != planes:
            if shortcut == "A":
                downsample = ZeroPadShortcut(self.inplanes, planes, stride)
            else:
                downsample = nn.Sequential(conv1x1(self.inplanes, planes, stride), nn.BatchNorm2d(planes))
        layers = [BasicBlock(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes
        layers += [BasicBlock(planes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        x = batch_norm_relu(self.bn1, self.relu, self.conv1(x))  # relu(bn1(conv1(x))), (N, 16, H, W)
        x = self.layer1(x)
        x = self.layer2(x)  # (N, 32, H/2, W/2)
        x = self.layer3(x)  # (N, 64, H/4, W/4)
        x = flatten(self.avgpool(x), 1)  # (N, 64)
        return self.fc(x)  # (N, num_classes)


def cifar_resnet(depth: int, num_classes: int = 10, in_channels: int = 3, shortcut: str = "A") -> CifarResNet:
    """He et al. 2016's CIFAR ResNet of ``depth`` = 6n + 2 layers (20, 32, 44, 56, 110); ValueError
    for any other depth. ``shortcut``: "A" zero-padding identity (parameter-free), "B" 1x1-conv projection."""
    return CifarResNet(depth, num_classes=num_classes, in_channels=in_channels, shortcut=shortcut)
