"""The model zoo (``minires.models``) against its PyTorch twins (tests/torch_twins.py).

- Structure: parameter counts equal torchvision's published ones, and every model's state_dict keys equal
  its twin's (list equality, order included), resnet101/152 and wide_resnet50_2 included (counted and
  keyed, not run).
- Values: with the twin's weights copied over by state_dict, the logits, the input gradient, every
  parameter gradient and the running statistics agree in train mode and in eval mode: RTOL64 in float64,
  RTOL32 (plus torch's own float32 error, see torch_twins.compare_with_twin) in float32, relative to each
  tensor's largest entry. Inputs are small (2x3x64x64 at most) so that the file runs in well under a minute.
- Options: ``in_channels``, ``num_classes``, ``zero_init_residual``, dilation, the CIFAR depths and
  shortcuts, torchvision's errors for unsupported arguments, and the d2l shape walk.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from types import ModuleType
from typing import Any, NamedTuple

import numpy as np
import pytest

import minires as mr
import minires.models as models
from minires import nn

RTOL64 = 1e-8
RTOL32 = 1e-4

TORCHVISION_COUNTS = {
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "resnet50": 25_557_032,
    "resnet101": 44_549_160,
    "resnet152": 60_192_808,
    "resnext50_32x4d": 25_028_904,
    "wide_resnet50_2": 68_883_240,
}


@pytest.fixture(scope="module")
def twins(torch: ModuleType) -> ModuleType:
    """tests/torch_twins.py, imported once torch is known to be there."""
    return importlib.import_module("torch_twins")


def _count(module: Any) -> int:
    return sum(int(np.prod(p.shape)) for p in module.parameters())


# ----- structure ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(TORCHVISION_COUNTS))
def test_torchvision_parameter_count_and_keys(twins: ModuleType, name: str) -> None:
    model = getattr(models, name)()
    with twins.torch.device("meta"):  # shapes only: no memory, no initialization
        twin = getattr(twins, name)()
    assert _count(model) == TORCHVISION_COUNTS[name] == _count(twin)
    assert list(model.state_dict()) == list(twin.state_dict())
    twin_shapes = [tuple(v.shape) for v in twin.state_dict().values()]
    assert [v.shape for v in model.state_dict().values()] == twin_shapes


OTHER_COUNTS = {
    "d2l_resnet18": (lambda m: m.d2l_resnet18(), 11_178_378),
    # He et al. 2016 give ResNet-20 0.27M parameters: option A (parameter-free shortcuts) has 269,722;
    # option B adds the two 1x1-conv + BN projections, 2,752 more.
    "cifar_resnet20_A": (lambda m: m.cifar_resnet(20), 269_722),
    "cifar_resnet20_B": (lambda m: m.cifar_resnet(20, shortcut="B"), 272_474),
    "cifar_resnet110_A": (lambda m: m.cifar_resnet(110), 1_727_962),  # the paper's 1.7M
    "preact_resnet18": (lambda m: m.preact_resnet18(), 11_172_170),
}


@pytest.mark.parametrize("name", list(OTHER_COUNTS))
def test_other_models_parameter_count_and_keys(twins: ModuleType, name: str) -> None:
    build, count = OTHER_COUNTS[name]
    model, twin = build(models), build(twins)
    assert _count(model) == count == _count(twin)
    assert list(model.state_dict()) == list(twin.state_dict())


def test_d2l_keys_are_those_of_the_books_sequential(twins: ModuleType) -> None:
    keys = list(models.d2l_resnet18().state_dict())
    assert keys == list(twins.d2l_resnet18().state_dict())
    assert keys[:7] == [
        "0.0.weight",
        "0.0.bias",
        "0.1.weight",
        "0.1.bias",
        "0.1.running_mean",
        "0.1.running_var",
        "0.1.num_batches_tracked",
    ]
    assert "2.0.conv3.weight" in keys and "1.0.conv3.weight" not in keys
    assert keys[-2:] == ["7.weight", "7.bias"]


def test_d2l_shapes_stage_by_stage() -> None:
    """The walk of the d2l book: a 1x1x224x224 input through each stage of the Sequential."""
    net = models.d2l_resnet18()
    net.eval()
    expected = [(1, 64, 56, 56), (1, 64, 56, 56), (1, 128, 28, 28), (1, 256, 14, 14), (1, 512, 7, 7)]
    expected += [(1, 512, 1, 1), (1, 512), (1, 10)]
    X = mr.randn(1, 1, 224, 224)
    shapes = []
    with mr.no_grad():
        for layer in net:
            X = layer(X)
            shapes.append(X.shape)
    assert shapes == expected
    assert len(net) == 8 and isinstance(net[0], nn.Sequential) and isinstance(net[1][0], models.Residual)


def test_torchvision_structure() -> None:
    m = models.resnet50()
    assert [n for n, _ in m.named_children()] == [
        "conv1",
        "bn1",
        "relu",
        "maxpool",
        "layer1",
        "layer2",
        "layer3",
        "layer4",
        "avgpool",
        "fc",
    ]
    assert [len(m.layer1), len(m.layer2), len(m.layer3), len(m.layer4)] == [3, 4, 6, 3]
    assert isinstance(m.layer2[0], models.Bottleneck) and m.layer2[0].conv2.stride == (2, 2)
    assert m.layer1[0].downsample is not None and m.layer1[1].downsample is None  # 64 -> 256 channels
    assert m.fc.weight.shape == (1000, 2048)
    r18 = models.resnet18()
    assert r18.layer1[0].downsample is None and isinstance(r18.layer3[0].downsample, nn.Sequential)
    assert models.resnext50_32x4d().layer1[0].conv2.groups == 32


def test_torchvision_initialization() -> None:
    """Convs kaiming_normal_(fan_out, relu): std sqrt(2 / (out_channels * KH * KW)); BN weight 1, bias 0."""
    mr.manual_seed(0)
    m = models.resnet18()
    w = m.layer3[0].conv1.weight.numpy()  # (256, 128, 3, 3), 295k draws
    assert abs(w.std() - np.sqrt(2 / (256 * 9))) < 0.01 * np.sqrt(2 / (256 * 9))
    assert abs(w.mean()) < 1e-3
    for mod in m.modules():
        if isinstance(mod, nn.BatchNorm2d):
            assert (mod.weight.numpy() == 1).all() and (mod.bias.numpy() == 0).all()


def test_zero_init_residual() -> None:
    """The last BN weight of every block is 0, the others 1; each block then starts as the identity."""
    for build, last in [(models.resnet18, "bn2"), (models.resnet50, "bn3")]:
        m = build(zero_init_residual=True)
        for mod in m.modules():
            if isinstance(mod, (models.BasicBlock, models.Bottleneck)):
                assert not getattr(mod, last).weight.numpy().any()
                assert (mod.bn1.weight.numpy() == 1).all()
        assert (m.bn1.weight.numpy() == 1).all()
        assert all(
            (getattr(mod, last).weight.numpy() == 1).all()
            for mod in build().modules()
            if isinstance(mod, (models.BasicBlock, models.Bottleneck))
        )
    # a stride-1 BasicBlock whose bn2 weight (and bias) is 0 computes relu(x + 0) = x for x >= 0
    block = models.resnet18(zero_init_residual=True).layer1[1]
    block.eval()
    x = mr.tensor(np.abs(np.random.default_rng(0).standard_normal((2, 64, 5, 5))).astype(np.float32))
    np.testing.assert_array_equal(block(x).numpy(), x.numpy())


def test_in_channels_and_num_classes() -> None:
    for build in (models.resnet18, models.resnet50, models.resnext50_32x4d):
        m = build(num_classes=7, in_channels=1)
        assert m.conv1.weight.shape == (64, 1, 7, 7) and m.fc.weight.shape[0] == 7
    m = models.d2l_resnet18(in_channels=3, num_classes=5)
    assert m[0][0].weight.shape == (64, 3, 7, 7) and m[7].weight.shape == (5, 512)
    m = models.cifar_resnet(8, num_classes=100, in_channels=1)
    assert m.conv1.weight.shape == (16, 1, 3, 3) and m.fc.weight.shape == (100, 64)
    m = models.preact_resnet18(num_classes=4, in_channels=2)
    assert m.conv1.weight.shape == (64, 2, 3, 3) and m.fc.weight.shape == (4, 512)
    assert models.resnet18(10, 1).fc.weight.shape == (10, 512)  # positional (num_classes, in_channels)


def test_torchvision_errors() -> None:
    with pytest.raises(ValueError, match="replace_stride_with_dilation should be None or a 3-element tuple"):
        models.resnet50(replace_stride_with_dilation=[False, True])
    with pytest.raises(NotImplementedError, match="Dilation > 1 not supported in BasicBlock"):
        models.resnet18(replace_stride_with_dilation=[False, False, True])
    with pytest.raises(ValueError, match="The parameter 'groups' expected value 32 but got 16 instead"):
        models.resnext50_32x4d(groups=16)
    with pytest.raises(ValueError, match="BasicBlock only supports groups=1"):
        models.resnet18(groups=2)


@pytest.mark.parametrize("depth", [20, 32, 44, 56, 110])
@pytest.mark.parametrize("shortcut", ["A", "B"])
def test_cifar_depths(twins: ModuleType, depth: int, shortcut: str) -> None:
    """6n + 2 layers: n blocks per stage, 16/32/64 channels; option A adds no parameters."""
    m, twin = models.cifar_resnet(depth, shortcut=shortcut), twins.cifar_resnet(depth, shortcut=shortcut)
    n = (depth - 2) // 6
    assert [len(m.layer1), len(m.layer2), len(m.layer3)] == [n, n, n]
    convs = [mod for mod in m.modules() if isinstance(mod, nn.Conv2d)]
    assert len(convs) + 1 == depth + (2 if shortcut == "B" else 0)  # + fc; option B adds two 1x1 convs
    assert _count(m) == _count(twin)
    assert list(m.state_dict()) == list(twin.state_dict())
    if shortcut == "A":
        assert isinstance(m.layer2[0].downsample, models.ZeroPadShortcut)
        no_projection = models.cifar_resnet(depth, shortcut="B")
        assert _count(no_projection) - _count(m) == (16 * 32 + 2 * 32) + (32 * 64 + 2 * 64)


@pytest.mark.parametrize("depth", [0, 2, 7, 18, 21, 111, 20.0, "20"])
def test_cifar_bad_depth(depth: Any) -> None:
    with pytest.raises(ValueError, match="depth must be 6n \\+ 2"):
        models.cifar_resnet(depth)
    with pytest.raises(ValueError, match="shortcut must be 'A'"):
        models.cifar_resnet(20, shortcut="C")


# ----- values against torch -----------------------------------------------------------------------------


class Case(NamedTuple):
    build: Callable[[Any], Any]  # called with minires.models or with the twins module
    x_shape: tuple[int, ...]
    float32: bool = True  # False: float64 only (a variant of a model that float32 already covers)
    grads32: bool = True  # whether float32 gradients are compared (float64 ones always are)


# The torchvision nets get 64x64 inputs, so that layer4 is 2x2 and its training-mode BatchNorm sees
# N*H*W = 8 values per channel: at 32x32 it sees 2, and a BatchNorm over 2 values passes back almost
# nothing (x_hat = +-1, and the two terms of its backward cancel), leaving rounding noise below it.
FORWARD_CASES = {
    # float32 gradients of resnet18 left to float64: at this input one ReLU input of layer4.0 is exactly 0
    # in float64 (a kink), and float32 rounding decides its sign and so its gradient (+3.9e-6 with the
    # channels-last convs, -1.5e-5 with channels-first ones, whose gradients match torch float32)
    "resnet18": Case(lambda m: m.resnet18(num_classes=10), (2, 3, 64, 64), grads32=False),
    "resnet50": Case(lambda m: m.resnet50(), (2, 3, 64, 64), grads32=False),
    "resnext50_32x4d": Case(lambda m: m.resnext50_32x4d(num_classes=10), (2, 3, 64, 64), float32=False),
    "resnet50_dilated": Case(
        lambda m: m.resnet50(num_classes=10, replace_stride_with_dilation=[False, True, True]),
        (2, 3, 16, 16),
        float32=False,
    ),
    "resnet18_gray_7": Case(lambda m: m.resnet18(num_classes=7, in_channels=1), (2, 1, 64, 64), False),
    # at this input torch's own float32 gradients of d2l_resnet18 are off its float64 ones by up to 4% of
    # their scale (a kink within rounding, see torch_twins.KINK_LIMIT): its gradients are float64 only
    "d2l_resnet18": Case(lambda m: m.d2l_resnet18(), (2, 1, 64, 64), grads32=False),
    "d2l_resnet18_rgb_5": Case(lambda m: m.d2l_resnet18(in_channels=3, num_classes=5), (2, 3, 64, 64), False),
    "cifar_resnet20_A": Case(lambda m: m.cifar_resnet(20), (2, 3, 16, 16)),
    "cifar_resnet20_B": Case(lambda m: m.cifar_resnet(20, shortcut="B"), (2, 3, 16, 16)),
    "cifar_resnet8_gray_3": Case(lambda m: m.cifar_resnet(8, num_classes=3, in_channels=1), (3, 1, 12, 12)),
    "preact_resnet18": Case(lambda m: m.preact_resnet18(), (2, 3, 16, 16)),
    "preact_resnet18_gray_4": Case(
        lambda m: m.preact_resnet18(num_classes=4, in_channels=1), (2, 1, 16, 16), False
    ),
}
DTYPE_CASES = [(name, "float64") for name in FORWARD_CASES]
DTYPE_CASES += [(name, "float32") for name, case in FORWARD_CASES.items() if case.float32]


@pytest.mark.parametrize(("name", "dtype"), DTYPE_CASES)
def test_model_matches_torch(twins: ModuleType, backend: str, name: str, dtype: str) -> None:
    """Outputs, the input gradient, every parameter gradient and the running statistics, train and eval.

    In float32 the tolerance is RTOL32 plus 10 times torch's own float32 error (see compare_with_twin).
    float32 gradients of the Bottleneck nets are left to float64: one float32 rounding that moves a ReLU
    input across 0 (a kink) changes a weight gradient by up to a tenth of its scale, differently in each
    library; there torch's own float32 gradients differ from its float64 ones by up to 4e-2 (norm-wise;
    resnet50 at 2x3x64x64, four weight draws). The weights are drawn under a fixed torch seed, so each
    case is the same network every run.
    """
    case = FORWARD_CASES[name]
    twins.torch.manual_seed(0)
    model, twin = case.build(models), case.build(twins)
    rtol, grads = (RTOL64, True) if dtype == "float64" else (RTOL32, case.grads32)
    twins.compare_with_twin(model, twin, case.x_shape, dtype, rtol, device=backend, check_grads=grads)


def test_zero_init_residual_model_matches_torch(twins: ModuleType) -> None:
    """With zero_init_residual the residual branches start silent; outputs and gradients still agree."""
    model, twin = models.resnet18(zero_init_residual=True), twins.resnet18(zero_init_residual=True)
    assert not model.layer1[0].bn2.weight.numpy().any() and not twin.layer1[0].bn2.weight.detach().any()
    twins.compare_with_twin(model, twin, (2, 3, 64, 64), "float64", RTOL64)


def test_pytorch_weights_round_trip(twins: ModuleType) -> None:
    """A state_dict loaded from PyTorch comes back out bit for bit, and loads back into PyTorch."""
    twin = twins.resnet18(num_classes=10)
    model = models.resnet18(num_classes=10)
    model.load_state_dict(twin.state_dict())
    state = model.state_dict()
    for k, v in twin.state_dict().items():
        assert state[k].dtype == v.numpy().dtype and np.array_equal(state[k], v.numpy()), k
    fresh = twins.resnet18(num_classes=10)
    fresh.load_state_dict({k: twins.torch.from_numpy(np.asarray(v)) for k, v in state.items()})
    for k, v in fresh.state_dict().items():
        assert np.array_equal(v.numpy(), twin.state_dict()[k].numpy()), k


def test_whole_model_directional_gradcheck() -> None:
    """A CIFAR ResNet-8 in training mode, float64: the input gradient against central differences
    along random directions (two forward passes per direction)."""
    mr.manual_seed(0)
    model = models.cifar_resnet(8, shortcut="A").double()
    x = mr.tensor(np.random.default_rng(0).standard_normal((2, 3, 8, 8)), requires_grad=True)
    assert mr.directional_gradcheck(model, [x], n_directions=4, eps=1e-6, atol=1e-7, rtol=1e-5)


# ----- a training step stays on the device ---------------------------------------------------------------
# The device-to-host synchronisations one training step makes, each named. A real GPU waits at each one
# for the queued kernels, so a new one (an `if bool(...)`, a `.item()` or a `float(loss)` in a hot path)
# slows every step; this bound catches it on the CuPy stand-in, which counts them.
# None: cross_entropy's target range check is read with the next value read from the device
# (backend.defer_check), MaxPool2d's NaN check and its bincount are host-side on the CPU only.
TRAINING_STEP_SYNCS: dict[str, int] = {}


@pytest.mark.parametrize("backend", ["standin"], indirect=True)
def test_a_training_step_syncs_at_most_at_the_known_places(backend: str) -> None:
    """d2l_resnet18, batch 8 of 1x28x28, SGD with momentum, cross_entropy: forward, backward and step on
    the CuPy stand-in make no more device-to-host syncs than TRAINING_STEP_SYNCS names, of each kind."""
    from cupy_standin import syncs

    mr.manual_seed(0)
    model = models.d2l_resnet18().to(backend)
    optimizer = mr.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    x = mr.randn(8, 1, 28, 28, device=backend)
    y = mr.tensor(np.arange(8) % 10, device=backend)

    def step() -> None:
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()

    step()  # the first step creates the momentum buffers
    with syncs.counting() as block:
        step()
    counts = {reason: block.reasons.count(reason) for reason in set(block.reasons)}
    over = {r: n for r, n in counts.items() if n > TRAINING_STEP_SYNCS.get(r, 0)}
    assert not over, f"syncs beyond the known ones in one training step: {over} (all: {counts})"
