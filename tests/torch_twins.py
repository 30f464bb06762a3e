"""PyTorch twins of every block and model in ``minires.models``, written in torch.

torchvision cannot be installed beside the CPU torch here, so its ResNet code is restated below (from
torchvision/models/resnet.py, ResNet v1.5), with the d2l book's ``Residual`` network, the pre-activation
block of the widely used pytorch-cifar repository, and He et al.'s CIFAR ResNets. Every attribute is
named and registered in the same order as in the original (and in minires), so a twin's ``state_dict``
has the same keys, in the same order, as the minires model's: tests copy weights over key by key and
compare outputs and gradients.

Only the tests import this module, after their ``torch`` fixture has checked that torch is installed.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

# ----- d2l (Dive into Deep Learning, section 8.6, PyTorch version) -----------------------------------


class Residual(nn.Module):
    """The d2l residual block, as the book writes it."""

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

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        Y = F.relu(self.bn1(self.conv1(X)))
        Y = self.bn2(self.conv2(Y))
        if self.conv3:
            X = self.conv3(X)
        Y += X
        return F.relu(Y)


def resnet_block(input_channels: int, num_channels: int, num_residuals: int, first_block: bool = False):
    blk = []
    for i in range(num_residuals):
        if i == 0 and not first_block:
            blk.append(Residual(input_channels, num_channels, use_1x1conv=True, strides=2))
        else:
            blk.append(Residual(num_channels, num_channels))
    return blk


def d2l_resnet18(in_channels: int = 1, num_classes: int = 10) -> nn.Sequential:
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


# ----- torchvision.models.resnet ----------------------------------------------------------------------


def conv3x3(
    in_planes: int, out_planes: int, stride: int = 1, groups: int = 1, dilation: int = 1
) -> nn.Conv2d:
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
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
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
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = norm_layer(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = norm_layer(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x
        out = self.conv1(x)
        out = self.bn1(out)
        out = self.relu(out)
        out = self.conv2(out)
        out = self.bn2(out)
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        out = self.relu(out)
        return out


class Bottleneck(nn.Module):
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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        return self.relu(out)


class ResNet(nn.Module):
    def __init__(
        self,
        block: type[BasicBlock | Bottleneck],
        layers: list[int],
        num_classes: int = 1000,
        zero_init_residual: bool = False,
        groups: int = 1,
        width_per_group: int = 64,
        replace_stride_with_dilation: list[bool] | None = None,
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

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)
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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        return self.fc(x)


def resnet18(num_classes: int = 1000, in_channels: int = 3, **kwargs) -> ResNet:
    return ResNet(BasicBlock, [2, 2, 2, 2], num_classes=num_classes, in_channels=in_channels, **kwargs)


def resnet34(num_classes: int = 1000, in_channels: int = 3, **kwargs) -> ResNet:
    return ResNet(BasicBlock, [3, 4, 6, 3], num_classes=num_classes, in_channels=in_channels, **kwargs)


def resnet50(num_classes: int = 1000, in_channels: int = 3, **kwargs) -> ResNet:
    return ResNet(Bottleneck, [3, 4, 6, 3], num_classes=num_classes, in_channels=in_channels, **kwargs)


def resnet101(num_classes: int = 1000, in_channels: int = 3, **kwargs) -> ResNet:
    return ResNet(Bottleneck, [3, 4, 23, 3], num_classes=num_classes, in_channels=in_channels, **kwargs)


def resnet152(num_classes: int = 1000, in_channels: int = 3, **kwargs) -> ResNet:
    return ResNet(Bottleneck, [3, 8, 36, 3], num_classes=num_classes, in_channels=in_channels, **kwargs)


def resnext50_32x4d(num_classes: int = 1000, in_channels: int = 3, **kwargs) -> ResNet:
    return ResNet(
        Bottleneck,
        [3, 4, 6, 3],
        num_classes=num_classes,
        in_channels=in_channels,
        groups=32,
        width_per_group=4,
        **kwargs,
    )


def wide_resnet50_2(num_classes: int = 1000, in_channels: int = 3, **kwargs) -> ResNet:
    return ResNet(
        Bottleneck,
        [3, 4, 6, 3],
        num_classes=num_classes,
        in_channels=in_channels,
        width_per_group=128,
        **kwargs,
    )


# ----- pre-activation ResNet (He et al. 2016, "Identity Mappings"; pytorch-cifar's PreActBlock) -------------


class PreActBlock(nn.Module):
    expansion = 1

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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(x))
        shortcut = self.shortcut(out) if hasattr(self, "shortcut") else x
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        out += shortcut
        return out


class PreActResNet18(nn.Module):
    """minires's preact_resnet18: pytorch-cifar's PreActResNet18 plus the final BN-ReLU of ResNet v2."""

    def __init__(self, num_classes: int = 10, in_channels: int = 3) -> None:
        super().__init__()
        self.in_planes = 64
        self.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
        self.layer1 = self._make_layer(64, 2, stride=1)
        self.layer2 = self._make_layer(128, 2, stride=2)
        self.layer3 = self._make_layer(256, 2, stride=2)
        self.layer4 = self._make_layer(512, 2, stride=2)
        self.bn = nn.BatchNorm2d(512)
        self.relu = nn.ReLU(inplace=True)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512, num_classes)

    def _make_layer(self, planes: int, num_blocks: int, stride: int) -> nn.Sequential:
        layers = []
        for s in [stride] + [1] * (num_blocks - 1):
            layers.append(PreActBlock(self.in_planes, planes, s))
            self.in_planes = planes
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(x)
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        out = self.relu(self.bn(out))
        out = self.avgpool(out)
        return self.fc(torch.flatten(out, 1))


def preact_resnet18(num_classes: int = 10, in_channels: int = 3) -> PreActResNet18:
    return PreActResNet18(num_classes, in_channels)


# ----- CIFAR ResNets (He et al. 2016, section 4.2) ------------------------------------------------------


class ZeroPadShortcut(nn.Module):
    """Option A: x[:, :, ::s, ::s] with the extra channels zero-padded, half before and half after
    (as F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, planes // 4, planes // 4)) in the common CIFAR code)."""

    def __init__(self, in_planes: int, planes: int, stride: int) -> None:
        super().__init__()
        self.in_planes, self.planes, self.stride = in_planes, planes, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        extra = self.planes - self.in_planes
        front = extra // 2
        return F.pad(x[:, :, :: self.stride, :: self.stride], (0, 0, 0, 0, front, extra - front))


class CifarResNet(nn.Module):
    def __init__(self, depth: int, num_classes: int = 10, in_channels: int = 3, shortcut: str = "A") -> None:
        super().__init__()
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

    def _make_layer(self, planes: int, blocks: int, stride: int, shortcut: str) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes:
            if shortcut == "A":
                downsample = ZeroPadShortcut(self.inplanes, planes, stride)
            else:
                downsample = nn.Sequential(conv1x1(self.inplanes, planes, stride), nn.BatchNorm2d(planes))
        layers = [BasicBlock(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes
        layers += [BasicBlock(planes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def cifar_resnet(depth: int, num_classes: int = 10, in_channels: int = 3, shortcut: str = "A") -> CifarResNet:
    return CifarResNet(depth, num_classes, in_channels, shortcut)


# ----- comparing a minires module with its twin ---------------------------------------------------------


def assert_close(
    actual: np.ndarray, expected: np.ndarray, rtol: float, what: str, floor: float = 0.0, slack: float = 0.0
) -> float:
    """|actual - expected| <= rtol * max(max |expected|, floor) + slack elementwise: a tolerance relative to
    the tensor's scale, so that near-zero entries of a gradient are judged against its large ones. ``floor``
    sets a least scale (for tensors that are zero in exact arithmetic), ``slack`` adds torch's own float32
    error (see ``compare_with_twin``). NaN fails. Returns the measured max |actual - expected| / scale."""
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape}, torch's {expected.shape}"
    assert actual.dtype == expected.dtype, f"{what}: dtype {actual.dtype}, torch's {expected.dtype}"
    if actual.dtype.kind not in "fc":
        assert np.array_equal(actual, expected), f"{what}: {actual!r} differs from torch's {expected!r}"
        return 0.0
    scale = max(float(np.abs(expected).max()) if expected.size else 0.0, floor)
    diff = np.abs(actual - expected)
    err = float(diff.max()) if diff.size else 0.0
    assert np.isfinite(diff).all() and err <= rtol * scale + slack, (
        f"{what}: max difference {err:.3e} from torch's, over rtol {rtol:g} times its scale {scale:.3e}"
        f"{f' plus {slack:.3e}' if slack else ''} (worst at {np.unravel_index(diff.argmax(), diff.shape)})"
    )
    return err / scale if scale else 0.0


def torch_dtype(dtype: str) -> torch.dtype:
    return {"float32": torch.float32, "float64": torch.float64}[dtype]


def load_twin_weights(model, twin: nn.Module) -> None:
    """Copy the twin's state_dict into the minires model (torch tensors, as PyTorch checkpoints hold them),
    after checking that the keys agree, order included."""
    keys, twin_keys = list(model.state_dict()), list(twin.state_dict())
    assert keys == twin_keys, f"state_dict keys differ from torch's:\n{keys}\n{twin_keys}"
    model.load_state_dict(twin.state_dict())


def _run(net, x: np.ndarray, v_rng: np.random.Generator, training: bool, framework: str, device: str) -> dict:
    """One pass in train or eval mode, pulled back with a random dL/dy: {name: array} of the output, the
    input gradient and each parameter gradient (None where it has none), and the state_dict after it."""
    import minires as mr

    net.train(training)
    net.zero_grad()
    if framework == "torch":
        x_in = torch.tensor(x, requires_grad=True)
        y = net(x_in)
        y.backward(torch.from_numpy(v_rng.standard_normal(tuple(y.shape)).astype(x.dtype)))
        state = {k: v.numpy() for k, v in net.state_dict().items()}
    else:
        x_in = mr.tensor(x, device=device, requires_grad=True)
        y = net(x_in)
        y.backward(mr.tensor(v_rng.standard_normal(y.shape).astype(x.dtype), device=device))
        state = net.state_dict()

    def as_np(t: Any) -> np.ndarray | None:
        return None if t is None else t.detach().numpy()

    out = {"output": as_np(y), "input gradient": as_np(x_in.grad)}
    out.update({f"grad of {n}": as_np(p.grad) for n, p in net.named_parameters()})
    return {"values": out, "state": state}


KINK_LIMIT = 1e-2  # torch's own float32 error, as a share of a tensor's scale, beyond which see on_kink


def _fail(message: str) -> None:
    raise AssertionError(message)


def compare_with_twin(
    model,
    twin: nn.Module,
    x_shape: tuple[int, ...],
    dtype: str,
    rtol: float,
    device: str = "cpu",
    seed: int = 0,
    check_grads: bool = True,
    on_kink: Callable[[str], Any] | None = None,
) -> float:
    """Run the minires model and its twin on the same input and weights, in train mode, then in eval mode
    (with the running statistics the training pass left). Each pass checks the output, the input gradient
    and every parameter gradient (by name, in the same order); after the training pass, every state_dict
    entry too (running statistics, num_batches_tracked, and the weights it left alone).
    ``check_grads=False`` leaves out the gradients. Returns the worst relative error measured.

    Where torch's own float32 result is off its float64 one by more than KINK_LIMIT of a tensor's scale,
    the input sits on a kink (a ReLU input or a max-pool tie within float32 rounding), and no float32
    implementation can be compared there: ``on_kink(message)`` is called (by default an AssertionError;
    a hypothesis test passes ``hypothesis.reject`` to draw another example), rather than letting the
    slack swallow the comparison.

    Tolerances: ``rtol`` relative to each tensor's scale; a gradient that is 0 in exact arithmetic (the
    bias of a conv followed by BatchNorm in training: BatchNorm subtracts the channel mean) is rounding
    noise in both, so gradients get a least scale of 1% of the largest one. In float32 the twin also runs
    in float64, and 10 times torch's own float32 error against it (per tensor) is added: where float32
    rounding itself is amplified (a sum that cancels), minires need only be about as accurate as torch.
    """
    twin.to(torch_dtype(dtype))
    model.to(device)
    if dtype == "float64":
        model.double()
    else:
        model.float()
    load_twin_weights(model, twin)
    reference = copy.deepcopy(twin).double() if dtype == "float32" else None
    x = np.random.default_rng(seed).standard_normal(x_shape).astype(dtype)
    worst = 0.0
    for training in (True, False):
        mode = "train" if training else "eval"
        runs = {
            "minires": _run(model, x, np.random.default_rng(seed + 1), training, "minires", device),
            "torch": _run(twin, x, np.random.default_rng(seed + 1), training, "torch", device),
        }
        if reference is not None:
            runs["float64"] = _run(
                reference, x.astype(np.float64), np.random.default_rng(seed + 1), training, "torch", device
            )
        mine, theirs = runs["minires"]["values"], runs["torch"]["values"]
        assert list(mine) == list(theirs), f"parameter names differ from torch's: {list(mine)} {list(theirs)}"
        names = list(theirs) if check_grads else ["output"]
        floor = 1e-2 * max([float(np.abs(theirs[n]).max()) for n in names if n != "output"], default=0.0)
        for name in names:
            assert mine[name] is not None, f"{mode}: minires has no {name}"
            slack = 0.0
            if reference is not None:
                slack = 10 * float(np.abs(theirs[name] - runs["float64"]["values"][name]).max())
            scale_floor = floor if name != "output" else 0.0
            scale = max(float(np.abs(theirs[name]).max()) if theirs[name].size else 0.0, scale_floor)
            if slack > 10 * KINK_LIMIT * scale:
                message = (
                    f"{mode}: {name}: torch's float32 result is off its float64 one by {slack / 10:.2e}, "
                    f"{slack / 10 / scale:.1%} of its scale: the input sits on a kink, where float32 "
                    "results cannot be compared; compare in float64, or with another input"
                )
                (on_kink or _fail)(message)
                continue
            worst = max(
                worst, assert_close(mine[name], theirs[name], rtol, f"{mode}: {name}", scale_floor, slack)
            )
        if training:  # the running statistics it updated, and the weights it left alone
            state, twin_state = runs["minires"]["state"], runs["torch"]["state"]
            # a batch mean near 0 is a sum that cancels: judged against 1% of the state's largest entry
            floats = [float(np.abs(e).max()) for e in twin_state.values() if e.dtype.kind == "f"]
            floor = 1e-2 * max(floats, default=0.0)
            for k, e in twin_state.items():
                slack = 0.0
                if reference is not None and e.dtype.kind == "f":
                    slack = 10 * float(np.abs(e - runs["float64"]["state"][k]).max())
                worst = max(worst, assert_close(state[k], e, rtol, f"after training: {k}", floor, slack))
    return worst


def parameter_count(module) -> int:
    """Number of parameter elements (torch or minires module)."""
    return sum(int(np.prod(p.shape)) for p in module.parameters())
