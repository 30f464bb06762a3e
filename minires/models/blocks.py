"""Residual blocks: d2l's ``Residual``, torchvision's ``BasicBlock`` and ``Bottleneck``, and ``PreActBlock``.

Every block computes y = F(x) + shortcut(x): the layers learn the residual F, and the shortcut is the
identity unless the block changes the resolution or the channel count. The gradient then reaches x along
two paths, dL/dx = dL/dy (dF/dx + dshortcut/dx), so even a deep stack of blocks passes dL/dy down the
identity path unchanged (He et al. 2016). Backward needs nothing here: each block is a composition of
ops whose backward lives in ``minires/ops``.

Attribute names, registration order and constructor arguments are those of the originals, so that a
block's ``state_dict`` keys equal its PyTorch twin's key for key, in order.

Each batch norm that a ReLU follows, with or without the residual added in between, runs with it as one
op (``batch_norm_relu``, minires/nn/modules/norm.py: the same values and gradients, one pass over memory
for three) unless a hook or ``mr.fuse_norm_relu(False)`` asks for the separate ops; the formulas in the
docstrings are what the blocks compute either way.

Notation: N, C, H, W (input), C' = planes (output channels of a block's last conv, times ``expansion``).
"""

from __future__ import annotations

from collections.abc import Callable

from .. import nn
from ..nn.modules.norm import batch_norm_relu
from ..ops.shape import cat
from ..tensor import Tensor, zeros


def he_init_(model: nn.Module, mode: str = "fan_out") -> None:
    """torchvision's ResNet initialization, in place: every Conv2d weight kaiming_normal_(``mode``, relu)
    (He et al. 2015: variance 2 / fan keeps the activations' scale through ReLU layers), every
    BatchNorm2d weight 1 and bias 0."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode=mode, nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.constant_(m.weight, 1)
            nn.init.constant_(m.bias, 0)


class Residual(nn.Module):
    """The d2l residual block (Dive into Deep Learning, section 8.6), as the book writes it:

        Y = relu(bn1(conv1(X)));  Y = bn2(conv2(Y));  return relu(Y + conv3(X) or X)

    conv1 (3x3, stride ``strides``) and conv2 (3x3) keep their biases, as in the book. With
    ``use_1x1conv`` the shortcut is conv3, a 1x1 conv of stride ``strides`` (needed when the block
    changes the channel count or the resolution); otherwise ``conv3`` is None and the shortcut is X.
    Shapes: X (N, input_channels, H, W) -> (N, num_channels, ceil(H / strides), ceil(W / strides)).
    """

    def __init__(self, input_channels: int, num_channels: int, use_1x1conv: bool = False, strides: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(input_channels, num_channels, kernel_size=3, padding=1, stride=strides)
        self.conv2 = nn.Conv2d(num_channels, num_channels, kernel_size=3, padding=1)
        if use_1x1conv:
            self.conv3 = nn.Conv2d(input_channels, num_channels, kernel_size=1, stride=strides)
        else:
            self.conv3 = None
        self.bn1 = nn.BatchNorm2d(num_channels)
        self.bn2 = nn.BatchNorm2d(num_channels)

    def forward(self, X: Tensor) -> Tensor:
        Y = batch_norm_relu(self.bn1, None, self.conv1(X))  # F.relu(bn1(conv1(X)))
        Y = self.conv2(Y)  # (N, num_channels, H', W')
        shortcut = X if self.conv3 is None else (lambda: self.conv3(X))  # (N, num_channels, H', W')
        return batch_norm_relu(self.bn2, None, Y, shortcut)  # F.relu(bn2(Y) + X), the book's Y += X between


def conv3x3(
    in_planes: int, out_planes: int, stride: int = 1, groups: int = 1, dilation: int = 1
) -> nn.Conv2d:
    """3x3 convolution without bias, padded to keep the size at stride 1 (torchvision's helper)."""
    return nn.Conv2d(
        in_planes,
        out_planes,
        kernel_size=3,
        stride=stride,
        padding=dilation,
        groups=groups,
        bias=False,
        dilation=dilation,
    )


def conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    """1x1 convolution without bias (torchvision's helper)."""
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """torchvision's ResNet-18/34 block: two 3x3 convs, each followed by BatchNorm.

        out = relu(bn1(conv1(x)));  out = bn2(conv2(out));  return relu(out + downsample(x) or x)

    conv1 carries the stride. ``downsample`` is the shortcut module when the shape changes (torchvision
    passes Sequential(conv1x1 with stride, BatchNorm2d)); None means the identity. As torchvision,
    only groups=1, base_width=64 and dilation=1 are supported (ValueError, NotImplementedError otherwise).
    ``norm_layer`` builds the normalization layers (default ``nn.BatchNorm2d``).
    Shapes: x (N, inplanes, H, W) -> (N, planes, ceil(H / stride), ceil(W / stride)).
    """

    expansion: int = 1

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        groups: int = 1,
        base_width: int = 64,
        dilation: int = 1,
        norm_layer: Callable[..., nn.Module] | None = None,
    ) -> None:
        super().__init__()
        if norm_layer is None:
            norm_layer = nn.BatchNorm2d
        if groups != 1 or base_width != 64:
            raise ValueError("BasicBlock only supports groups=1 and base_width=64")
        if dilation > 1:
            raise NotImplementedError("Dilation > 1 not supported in BasicBlock")
        # Both conv1 and downsample reduce the resolution when stride != 1.
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = norm_layer(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = norm_layer(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        out = batch_norm_relu(self.bn1, self.relu, self.conv1(x))  # relu(bn1(conv1(x))), (N, planes, H', W')
        out = self.conv2(out)
        # the shortcut, (N, planes, H', W'): downsample(x) made after bn2 is called, in torchvision's order
        identity = x if self.downsample is None else (lambda: self.downsample(x))
        return batch_norm_relu(self.bn2, self.relu, out, identity)  # relu(bn2(out) + identity)


class Bottleneck(nn.Module):
    """torchvision's ResNet-50/101/152 block (ResNet v1.5): 1x1 reduce, 3x3, 1x1 expand by 4.

        out = relu(bn1(conv1(x)));  out = relu(bn2(conv2(out)));  out = bn3(conv3(out))
        return relu(out + downsample(x) or x)

    The stride sits on the 3x3 conv2 (v1.5; the original paper put it on conv1), which is more accurate.
    The inner width is int(planes * base_width / 64) * groups: groups > 1 gives ResNeXt (conv2 a grouped
    conv), base_width 128 gives Wide ResNet-50-2. The output has planes * 4 channels.
    Shapes: x (N, inplanes, H, W) -> (N, 4 planes, ceil(H / stride), ceil(W / stride)).
    """

    expansion: int = 4

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        groups: int = 1,
        base_width: int = 64,
        dilation: int = 1,
        norm_layer: Callable[..., nn.Module] | None = None,
    ) -> None:
        super().__init__()
        if norm_layer is None:
            norm_layer = nn.BatchNorm2d
        width = int(planes * (base_width / 64.0)) * groups
        self.conv1 = conv1x1(inplanes, width)
        self.bn1 = norm_layer(width)
        self.conv2 = conv3x3(width, width, stride, groups, dilation)
        self.bn2 = norm_layer(width)
        self.conv3 = conv1x1(width, planes * self.expansion)
        self.bn3 = norm_layer(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        out = batch_norm_relu(self.bn1, self.relu, self.conv1(x))  # relu(bn1(conv1(x))), (N, width, H, W)
        # relu(bn2(conv2(out))), (N, width, H', W')
        out = batch_norm_relu(self.bn2, self.relu, self.conv2(out))
        out = self.conv3(out)  # (N, 4 planes, H', W')
        identity = x if self.downsample is None else (lambda: self.downsample(x))  # made after bn3 is called
        return batch_norm_relu(self.bn3, self.relu, out, identity)  # relu(bn3(out) + identity)


class PreActBlock(nn.Module):
    """The pre-activation block of ResNet v2 (He et al. 2016, "Identity Mappings in Deep Residual
    Networks"): BatchNorm and ReLU come before each conv, and nothing follows the addition,

        a = relu(bn1(x));  out = conv2(relu(bn2(conv1(a))));  return out + shortcut(a) or x

    so the identity path from block to block is a pure sum. Arguments: ``in_planes`` input channels,
    ``planes`` output channels, ``stride`` of conv1 (3x3). When stride != 1 or the channel count changes,
    ``shortcut`` is Sequential(1x1 conv with that stride, no bias), applied to the pre-activated a (as in
    the paper and in pytorch-cifar's PreActBlock, whose names bn1, conv1, bn2, conv2, shortcut these are);
    otherwise ``shortcut`` is None and the identity x is added.
    Shapes: x (N, in_planes, H, W) -> (N, planes, ceil(H / stride), ceil(W / stride)).
    """

    expansion: int = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=1, padding=1, bias=False)
        if stride != 1 or in_planes != self.expansion * planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, self.expansion * planes, kernel_size=1, stride=stride, bias=False)
            )
        else:
            self.shortcut = None

    def forward(self, x: Tensor) -> Tensor:
        a = batch_norm_relu(self.bn1, None, x)  # F.relu(bn1(x))
        shortcut = self.shortcut(a) if self.shortcut is not None else x  # (N, planes, H', W')
        out = self.conv1(a)
        out = self.conv2(batch_norm_relu(self.bn2, None, out))  # conv2(F.relu(bn2(out)))
        out += shortcut  # pytorch-cifar's; in place outside the graph (Tensor.__iadd__)
        return out


class ZeroPadShortcut(nn.Module):
    """The parameter-free shortcut of He et al. 2016's CIFAR ResNets (option A, section 4.2): keep every
    ``stride``-th pixel and zero-pad the new channels, half before and half after the old ones (as
    F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, planes // 4, planes // 4)) in the common CIFAR code).

    Backward is that of slicing and concatenation: the gradient of the kept pixels is dL/dy on the old
    channels, the padded channels send nothing back, and the skipped pixels get 0.
    Shapes: x (N, in_planes, H, W) -> (N, planes, ceil(H / stride), ceil(W / stride)).
    """

    def __init__(self, in_planes: int, planes: int, stride: int = 2) -> None:
        super().__init__()
        if planes < in_planes:
            raise ValueError(f"ZeroPadShortcut: planes ({planes}) must be at least in_planes ({in_planes})")
        self.in_planes, self.planes, self.stride = in_planes, planes, stride

    def forward(self, x: Tensor) -> Tensor:
        s = self.stride
        x = x[:, :, ::s, ::s]  # (N, in_planes, H', W')
        N, C, H, W = x.shape
        extra = self.planes - C
        front, back = extra // 2, extra - extra // 2
        parts = [zeros(N, front, H, W, dtype=x.dtype, device=x.device), x]
        parts.append(zeros(N, back, H, W, dtype=x.dtype, device=x.device))
        return cat(parts, dim=1)  # (N, planes, H', W')

    def extra_repr(self) -> str:
        return f"{self.in_planes}, {self.planes}, stride={self.stride}"
