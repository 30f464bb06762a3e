"""The residual blocks of ``minires.models`` against their PyTorch twins (tests/torch_twins.py), and a
whole-block float64 gradcheck.

For random shapes and options, each block and its twin get the same weights (copied by state_dict) and
the same input: outputs, the input gradient, every parameter gradient and the running statistics must
agree, in train mode and in eval mode, to RTOL64 in float64 and RTOL32 in float32 (relative to each
tensor's largest entry; in float32 plus 10 times torch's own float32 error against its float64 result, see
torch_twins.compare_with_twin). The gradcheck then checks a block's backward, through BatchNorm in
training mode, against central differences, for the input and every parameter.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from types import ModuleType, SimpleNamespace
from typing import Any

import numpy as np
import pytest
from hypothesis import given, reject, settings
from hypothesis import strategies as st

import minires as mr
from minires import nn
from minires.models import BasicBlock, Bottleneck, PreActBlock, Residual, ZeroPadShortcut

RTOL64 = 1e-8
RTOL32 = 1e-4
# Each example builds two blocks and runs them twice; a few dozen examples cover the options.
EXAMPLES = settings(max_examples=min(30, settings.default.max_examples), deadline=None)


@pytest.fixture(scope="module")
def twins(torch: ModuleType) -> ModuleType:
    """tests/torch_twins.py, imported once torch is known to be there."""
    return importlib.import_module("torch_twins")


def _downsample(framework: Any, inplanes: int, outplanes: int, stride: int) -> Any:
    """torchvision's projection shortcut, Sequential(1x1 conv, BatchNorm2d), in either framework."""
    return framework.Sequential(
        framework.Conv2d(inplanes, outplanes, kernel_size=1, stride=stride, bias=False),
        framework.BatchNorm2d(outplanes),
    )


def _block_pair(twins: ModuleType, kind: str, cin: int, cout: int, stride: int, option: int) -> tuple:
    """(minires block, torch twin) of one kind, with the same constructor arguments."""
    tnn = twins.nn
    if kind == "Residual":
        use_1x1conv = bool(option) or stride != 1 or cin != cout
        return Residual(cin, cout, use_1x1conv, stride), twins.Residual(cin, cout, use_1x1conv, stride)
    if kind == "BasicBlock":
        if stride == 1 and cin == cout and not option:
            return BasicBlock(cin, cout), twins.BasicBlock(cin, cout)
        return (
            BasicBlock(cin, cout, stride, _downsample(nn, cin, cout, stride)),
            twins.BasicBlock(cin, cout, stride, _downsample(tnn, cin, cout, stride)),
        )
    if kind == "Bottleneck":
        # option: 0 plain, 1 ResNeXt-style (groups 2), 2 wide (base_width 128), 3 dilation 2
        kwargs = [{}, {"groups": 2, "base_width": 64}, {"base_width": 128}, {"dilation": 2}][option]
        planes = max(1, cout // 4)
        if stride == 1 and cin == 4 * planes:
            return Bottleneck(cin, planes, **kwargs), twins.Bottleneck(cin, planes, **kwargs)
        return (
            Bottleneck(cin, planes, stride, _downsample(nn, cin, 4 * planes, stride), **kwargs),
            twins.Bottleneck(cin, planes, stride, _downsample(tnn, cin, 4 * planes, stride), **kwargs),
        )
    if kind == "PreActBlock":
        return PreActBlock(cin, cout, stride), twins.PreActBlock(cin, cout, stride)
    assert kind == "ZeroPadShortcut"
    cout = max(cout, cin)
    return ZeroPadShortcut(cin, cout, stride), twins.ZeroPadShortcut(cin, cout, stride)


KINDS = ["Residual", "BasicBlock", "Bottleneck", "PreActBlock", "ZeroPadShortcut"]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("kind", KINDS)
@EXAMPLES
@given(
    n=st.integers(2, 3),
    cin=st.integers(1, 8),
    cout=st.integers(1, 8),
    stride=st.sampled_from([1, 2]),
    hw=st.tuples(st.integers(3, 7), st.integers(3, 7)),
    option=st.integers(0, 3),
    seed=st.integers(0, 2**16),
)
def test_block_matches_torch(
    twins: ModuleType,
    backend: str,
    kind: str,
    dtype: str,
    n: int,
    cin: int,
    cout: int,
    stride: int,
    hw: tuple[int, int],
    option: int,
    seed: int,
) -> None:
    if kind == "Bottleneck":
        cout = 4 * max(1, cout // 4)
    twins.torch.manual_seed(seed)  # the weights (the twin's, copied into minires's) come from the example
    model, twin = _block_pair(twins, kind, cin, cout, stride, option)  # so a failure replays
    rtol = RTOL64 if dtype == "float64" else RTOL32
    twins.compare_with_twin(
        model, twin, (n, cin, *hw), dtype, rtol, device=backend, seed=seed, on_kink=lambda _: reject()
    )


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("kind", KINDS)
def test_block_under_no_grad_equals_the_graph_and_leaves_its_input(
    twins: ModuleType, kind: str, stride: int
) -> None:
    """Outside the graph the blocks' residual add and ReLU(inplace=True) overwrite their own arrays (as
    torchvision's do): the eval-mode output is bit for bit the one computed in the graph (out of place),
    the twin's to RTOL64, and the block's input is left as it was."""
    twins.torch.manual_seed(stride)
    model, twin = _block_pair(twins, kind, 4, 8 if kind == "Bottleneck" else 4, stride, 0)
    model, twin = model.double(), twin.double()
    model.load_state_dict({k: v.detach().numpy() for k, v in twin.state_dict().items()})
    model.eval(), twin.eval()
    data = np.random.default_rng(stride).standard_normal((2, 4, 5, 6))
    x = mr.tensor(data, requires_grad=True)
    in_graph = model(x)
    with mr.no_grad():
        outside = model(x)
    with twins.torch.no_grad():
        reference = twin(twins.torch.tensor(data)).numpy()
    np.testing.assert_array_equal(x.numpy(), data)
    np.testing.assert_array_equal(outside.numpy(), in_graph.detach().numpy())
    np.testing.assert_allclose(outside.numpy(), reference, rtol=RTOL64, atol=RTOL64 * np.abs(reference).max())


@pytest.mark.parametrize(
    "build",
    [
        lambda t: t.Residual(3, 3),
        lambda t: t.Residual(3, 6, use_1x1conv=True, strides=2),
        lambda t: t.BasicBlock(8, 8),
        lambda t: t.Bottleneck(16, 4, 2, t.nn.Sequential(t.nn.Conv2d(16, 16, 1, 2, bias=False))),
        lambda t: t.PreActBlock(4, 4),
        lambda t: t.PreActBlock(4, 8, 2),
    ],
    ids=["Residual", "Residual-1x1", "BasicBlock", "Bottleneck-downsample", "PreAct", "PreAct-shortcut"],
)
def test_block_state_dict_keys_equal_torch(twins: ModuleType, build: Callable[[Any], Any]) -> None:
    """The same constructor call in both frameworks gives the same keys, in the same order and shapes."""
    minires_side = SimpleNamespace(
        Residual=Residual, BasicBlock=BasicBlock, Bottleneck=Bottleneck, PreActBlock=PreActBlock, nn=nn
    )
    model, twin = build(minires_side), build(twins)
    assert list(model.state_dict()) == list(twin.state_dict())
    for k, v in twin.state_dict().items():
        assert model.state_dict()[k].shape == tuple(v.shape), k


def test_residual_attributes_as_in_d2l() -> None:
    """conv1, conv2, conv3 registered before bn1, bn2; convs with bias; conv3 None without use_1x1conv."""
    blk = Residual(3, 6, use_1x1conv=True, strides=2)
    assert [name for name, _ in blk.named_children()] == ["conv1", "conv2", "conv3", "bn1", "bn2"]
    assert all(c.bias is not None for c in (blk.conv1, blk.conv2, blk.conv3))
    assert blk.conv3.stride == (2, 2) and blk.conv3.kernel_size == (1, 1)
    plain = Residual(3, 3)
    assert plain.conv3 is None
    assert [name for name, _ in plain.named_children()] == ["conv1", "conv2", "bn1", "bn2"]
    x = mr.randn(4, 3, 6, 6)
    assert blk(x).shape == (4, 6, 3, 3) and plain(x).shape == (4, 3, 6, 6)


def test_bottleneck_width_and_stride_placement() -> None:
    """width = int(planes * base_width / 64) * groups; the stride on the 3x3 conv2 (ResNet v1.5)."""
    b = Bottleneck(256, 128, stride=2, groups=32, base_width=4)
    assert b.conv1.weight.shape == (256, 256, 1, 1)  # width = int(128 * 4 / 64) * 32 = 256
    assert b.conv2.weight.shape == (256, 8, 3, 3) and b.conv2.groups == 32 and b.conv2.stride == (2, 2)
    assert b.conv1.stride == (1, 1) and b.conv3.weight.shape == (512, 256, 1, 1)
    assert Bottleneck(64, 64, base_width=128).conv2.weight.shape == (128, 128, 3, 3)  # wide: 2 x 64
    assert b.stride == 2 and b.downsample is None and Bottleneck.expansion == 4 and BasicBlock.expansion == 1


def test_basic_block_rejects_what_torchvision_rejects() -> None:
    with pytest.raises(ValueError, match="BasicBlock only supports groups=1 and base_width=64"):
        BasicBlock(4, 4, groups=2)
    with pytest.raises(ValueError, match="BasicBlock only supports groups=1 and base_width=64"):
        BasicBlock(4, 4, base_width=32)
    with pytest.raises(NotImplementedError, match="Dilation > 1 not supported in BasicBlock"):
        BasicBlock(4, 4, dilation=2)
    with pytest.raises(ValueError, match="planes"):
        ZeroPadShortcut(8, 4)


def test_preact_block_shortcut_only_when_shape_changes() -> None:
    assert PreActBlock(8, 8).shortcut is None
    assert [n for n, _ in PreActBlock(8, 8).named_children()] == ["bn1", "conv1", "bn2", "conv2"]
    blk = PreActBlock(8, 16, stride=2)
    assert blk.shortcut[0].weight.shape == (16, 8, 1, 1) and blk.shortcut[0].bias is None
    assert blk(mr.randn(2, 8, 5, 5)).shape == (2, 16, 3, 3)


def test_zero_pad_shortcut_values() -> None:
    """Option A: every second pixel, the extra channels zero, half before and half after."""
    x = np.arange(2 * 2 * 4 * 4, dtype=np.float64).reshape(2, 2, 4, 4)
    y = ZeroPadShortcut(2, 6, stride=2)(mr.tensor(x)).numpy()
    assert y.shape == (2, 6, 2, 2)
    np.testing.assert_array_equal(y[:, 2:4], x[:, :, ::2, ::2])
    assert not y[:, :2].any() and not y[:, 4:].any()
    assert not list(ZeroPadShortcut(2, 6).parameters())


# ----- whole-block gradcheck ----------------------------------------------------------------------------


def _with_parameters(module: nn.Module, names: list[str]) -> Callable[..., mr.Tensor]:
    """fn(x, *params): the module's forward with the named parameters replaced by the given tensors (as
    torch.func.functional_call), so that gradcheck can perturb them and read their gradients."""
    owners = []
    for name in names:
        *path, leaf = name.split(".")
        owner = module
        for part in path:
            owner = getattr(owner, part)
        owners.append((owner, leaf))

    def fn(x: mr.Tensor, *params: mr.Tensor) -> mr.Tensor:
        saved = [owner._parameters[leaf] for owner, leaf in owners]
        for (owner, leaf), p in zip(owners, params, strict=True):
            owner._parameters[leaf] = p
        try:
            return module(x)
        finally:
            for (owner, leaf), p in zip(owners, saved, strict=True):
                owner._parameters[leaf] = p

    return fn


def _gradcheck_block(module: nn.Module, x_shape: tuple[int, ...], seed: int = 0) -> None:
    module.double().train()
    rng = np.random.default_rng(seed)
    with mr.no_grad():  # BatchNorm weights and biases away from their 1 and 0 start: a generic point
        for p in module.parameters():
            if p.ndim == 1:  # BatchNorm weights and biases, conv biases
                p.copy_(rng.uniform(0.5, 1.5, p.shape))
    names = [n for n, _ in module.named_parameters()]
    x = mr.tensor(rng.standard_normal(x_shape), requires_grad=True)
    params = [mr.tensor(p.data, requires_grad=True) for _, p in module.named_parameters()]
    fn = _with_parameters(module, names)
    with mr.no_grad():  # the swap takes effect: other weights, other output (else the check is vacuous)
        moved = [mr.tensor(p.data * 1.5) for p in params]
        assert not np.allclose(fn(x, *params).numpy(), fn(x, *moved).numpy())
    assert mr.gradcheck(fn, [x, *params], eps=1e-6, atol=1e-6, rtol=1e-4)


def test_gradcheck_residual_with_batchnorm_training() -> None:
    """d2l Residual with its 1x1-conv shortcut and stride 2, BatchNorm in training mode: input and all
    10 parameters against central differences."""
    mr.manual_seed(0)
    _gradcheck_block(Residual(2, 3, use_1x1conv=True, strides=2), (3, 2, 5, 5))


def test_gradcheck_bottleneck() -> None:
    """A ResNeXt-style Bottleneck (groups 2) with stride 2 and a projection shortcut, in training mode."""
    mr.manual_seed(1)
    block = Bottleneck(4, 2, stride=2, downsample=_downsample(nn, 4, 8, 2), groups=2, base_width=64)
    _gradcheck_block(block, (2, 4, 5, 5), seed=1)


def test_gradcheck_basic_and_preact_blocks() -> None:
    mr.manual_seed(2)
    _gradcheck_block(BasicBlock(2, 3, 2, _downsample(nn, 2, 3, 2)), (2, 2, 4, 4), seed=2)
    _gradcheck_block(PreActBlock(2, 3, 2), (2, 2, 4, 4), seed=3)
