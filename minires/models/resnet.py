"""torchvision's ResNet family: ResNet-18/34/50/101/152, ResNeXt-50 32x4d and Wide ResNet-50-2.

The structure, attribute names and initialization are torchvision's (torchvision/models/resnet.py, ResNet
v1.5), so the ``state_dict`` keys and the parameter counts equal torchvision's and its weights load
unchanged. One argument is added: ``in_channels`` (3 in torchvision), for grayscale or other inputs.

    stem     conv1 7x7/2 (64) -> bn1 -> relu -> maxpool 3x3/2        (N, 64, H/4, W/4)
    layer1   blocks at 64 planes, stride 1                           (N, 64 e, H/4, W/4)
    layer2   blocks at 128 planes, the first with stride 2           (N, 128 e, H/8, W/8)
    layer3   blocks at 256 planes, the first with stride 2           (N, 256 e, H/16, W/16)
    layer4   blocks at 512 planes, the first with stride 2           (N, 512 e, H/32, W/32)
    head     avgpool to 1x1 -> flatten -> fc                         (N, num_classes)

with e = block.expansion (1 for BasicBlock, 4 for Bottleneck). A stage's first block gets a
``downsample`` shortcut, Sequential(1x1 conv with the stride, BatchNorm2d), when the shape changes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from .. import nn
from ..nn.modules.norm import batch_norm_relu
from ..ops.shape import flatten
from ..tensor import Tensor
from .blocks import BasicBlock, Bottleneck, conv1x1, he_init_


class ResNet(nn.Module):
    """torchvision's ResNet, with its arguments (plus ``in_channels``) and its initialization:
    convs kaiming_normal_(mode="fan_out", nonlinearity="relu"), BatchNorm weight 1 and bias 0, fc PyTorch's
    default. ``zero_init_residual`` zeroes the last BatchNorm weight of every block (bn3 in a Bottleneck,
    bn2 in a BasicBlock), so that each block starts as the identity (Goyal et al. 2017).
    ``replace_stride_with_dilation`` (three bools, for layer2..4) trades a stage's stride for dilation.
    Shapes: x (N, in_channels, H, W) -> logits (N, num_classes).
    """

    def __init__(
        self,
        block: type[BasicBlock | Bottleneck],
        layers: Sequence[int],
        num_classes: int = 1000,
        zero_init_residual: bool = False,
        groups: int = 1,
        width_per_group: int = 64,
        replace_stride_with_dilation: Sequence[bool] | None = None,
        norm_layer: Callable[..., nn.Module] | None = None,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        if norm_layer is None:
            norm_layer = nn.BatchNorm2d
        self._norm_layer = norm_layer
        self.inplanes = 64
        self.dilation = 1
        if replace_stride_with_dilation is None:
            # each element in the tuple says whether to replace the 2x2 stride with a dilated conv
            replace_stride_with_dilation = [False, False, False]
        if len(replace_stride_with_dilation) != 3:
            raise ValueError(
                "replace_stride_with_dilation should be None "
                f"or a 3-element tuple, got {replace_stride_with_dilation}"
            )
        self.groups = groups
        self.base_width = width_per_group
        self.conv1 = nn.Conv2d(in_channels, self.inplanes, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = norm_layer(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, 64, layers[0])
        self.layer2 = self._make_layer(
            block, 128, layers[1], stride=2, dilate=replace_stride_with_dilation[0]
        )
        self.layer3 = self._make_layer(
            block, 256, layers[2], stride=2, dilate=replace_stride_with_dilation[1]
        )
        self.layer4 = self._make_layer(
            block, 512, layers[3], stride=2, dilate=replace_stride_with_dilation[2]
        )
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512 * block.expansion, num_classes)

        he_init_(self, mode="fan_out")
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, Bottleneck) and m.bn3.weight is not None:
                    nn.init.constant_(m.bn3.weight, 0)
                elif isinstance(m, BasicBlock) and m.bn2.weight is not None:
                    nn.init.constant_(m.bn2.weight, 0)

    def _make_layer(
        self,
        block: type[BasicBlock | Bottleneck],
        planes: int,
        blocks: int,
        stride: int = 1,
        dilate: bool = False,
    ) -> nn.Sequential:
        norm_layer = self._norm_layer
        downsample = None
        previous_dilation = self.dilation
        if dilate:
            self.dilation *= stride
            stride = 1
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                conv1x1(self.inplanes, planes * block.expansion, stride),
                norm_layer(planes * block.expansion),
            )
        layers = [
            block(
                self.inplanes,
                planes,
                stride,
                downsample,
                self.groups,
                self.base_width,
                previous_dilation,
                norm_layer,
            )
        ]
        self.inplanes = planes * block.expansion
        for _ in range(1, blocks):
            layers.append(
                block(
                    self.inplanes,
                    planes,
                    groups=self.groups,
                    base_width=self.base_width,
                    dilation=self.dilation,
                    norm_layer=norm_layer,
                )
            )
        return nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv1(x)  # (N, 64, H/2, W/2)
        x = batch_norm_relu(self.bn1, self.relu, x)  # relu(bn1(x))
        x = self.maxpool(x)  # (N, 64, H/4, W/4)
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        x = self.layer4(x)  # (N, 512 e, H/32, W/32)
        x = self.avgpool(x)  # (N, 512 e, 1, 1)
        x = flatten(x, 1)  # (N, 512 e)
        return self.fc(x)  # (N, num_classes)


def _overwrite_named_param(kwargs: dict[str, Any], param: str, new_value: Any) -> None:
    """Set kwargs[param] to the value a named variant fixes; another value given raises, as torchvision."""
    if param in kwargs and kwargs[param] != new_value:
        raise ValueError(
            f"The parameter '{param}' expected value {new_value} but got {kwargs[param]} instead."
        )
    kwargs[param] = new_value


def resnet18(num_classes: int = 1000, in_channels: int = 3, **kwargs: Any) -> ResNet:
    """ResNet-18: BasicBlock, [2, 2, 2, 2]; 11,689,512 parameters (1000 classes, 3 channels)."""
    return ResNet(BasicBlock, [2, 2, 2, 2], num_classes=num_classes, in_channels=in_channels, **kwargs)


def resnet34(num_classes: int = 1000, in_channels: int = 3, **kwargs: Any) -> ResNet:
    """ResNet-34: BasicBlock, [3, 4, 6, 3]; 21,797,672 parameters."""
    return ResNet(BasicBlock, [3, 4, 6, 3], num_classes=num_classes, in_channels=in_channels, **kwargs)


def resnet50(num_classes: int = 1000, in_channels: int = 3, **kwargs: Any) -> ResNet:
    """ResNet-50: Bottleneck, [3, 4, 6, 3]; 25,557,032 parameters."""
    return ResNet(Bottleneck, [3, 4, 6, 3], num_classes=num_classes, in_channels=in_channels, **kwargs)


def resnet101(num_classes: int = 1000, in_channels: int = 3, **kwargs: Any) -> ResNet:
    """ResNet-101: Bottleneck, [3, 4, 23, 3]; 44,549,160 parameters."""
    return ResNet(Bottleneck, [3, 4, 23, 3], num_classes=num_classes, in_channels=in_channels, **kwargs)


def resnet152(num_classes: int = 1000, in_channels: int = 3, **kwargs: Any) -> ResNet:
    """ResNet-152: Bottleneck, [3, 8, 36, 3]; 60,192,808 parameters."""
    return ResNet(Bottleneck, [3, 8, 36, 3], num_classes=num_classes, in_channels=in_channels, **kwargs)


def resnext50_32x4d(num_classes: int = 1000, in_channels: int = 3, **kwargs: Any) -> ResNet:
    """ResNeXt-50 32x4d: ResNet-50 whose 3x3 convs have 32 groups of width 4 (per 64 planes);
    25,028,904 parameters."""
    _overwrite_named_param(kwargs, "groups", 32)
    _overwrite_named_param(kwargs, "width_per_group", 4)
    return ResNet(Bottleneck, [3, 4, 6, 3], num_classes=num_classes, in_channels=in_channels, **kwargs)


def wide_resnet50_2(num_classes: int = 1000, in_channels: int = 3, **kwargs: Any) -> ResNet:
    """Wide ResNet-50-2: ResNet-50 with bottlenecks twice as wide (width_per_group 128);
    68,883,240 parameters."""
    _overwrite_named_param(kwargs, "width_per_group", 64 * 2)
    return ResNet(Bottleneck, [3, 4, 6, 3], num_classes=num_classes, in_channels=in_channels, **kwargs)
