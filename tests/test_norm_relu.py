"""The blocks' batch norm -> (add ->) ReLU as one op (ops/norm.py ``BatchNormReLU``, nn/modules/norm.py
``batch_norm_relu``): the same bits as the separate ops in every model, training and eval, float32 and
float64, in every memory layout; taken only where nothing would see the ops in between.

The op's values and gradients against PyTorch and finite differences are the op table's row
``batch_norm_relu`` (tests/op_table.py)."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import minires as mr
import minires.nn as nn
from minires.autograd import topological_order
from minires.models import cifar_resnet, d2l_resnet18, preact_resnet18, resnet18, resnet50
from minires.models.blocks import BasicBlock
from minires.nn.modules.norm import batch_norm_relu
from minires.ops.conv import conv_layout
from minires.ops.norm import BatchNormReLU

MODELS: dict[str, tuple[Callable[[], nn.Module], tuple[int, ...]]] = {
    "cifar_resnet8_A": (lambda: cifar_resnet(8, in_channels=1), (4, 1, 12, 12)),
    "cifar_resnet8_B": (lambda: cifar_resnet(8, in_channels=3, shortcut="B"), (3, 3, 10, 10)),
    "resnet18": (lambda: resnet18(num_classes=5), (2, 3, 32, 32)),
    "resnet50": (lambda: resnet50(num_classes=5), (2, 3, 32, 32)),
    "d2l_resnet18": (lambda: d2l_resnet18(), (2, 1, 32, 32)),
    "preact_resnet18": (lambda: preact_resnet18(num_classes=5), (2, 3, 16, 16)),
}


def node_names(t: mr.Tensor) -> dict[str, int]:
    """How many nodes of each Function class the graph of ``t`` holds."""
    return dict(Counter(type(node).__name__ for node in topological_order(t.grad_fn)))


def step(make: Callable[[], nn.Module], shape: tuple[int, ...], fused: bool, train: bool, dtype: Any) -> dict:
    """One forward and backward of a fresh model (seed 0); its output, every gradient (x's too), the
    state after it (running statistics, batch counts) and the graph's node counts."""
    mr.manual_seed(0)
    model = make().to(dtype=mr.float64 if dtype == np.float64 else mr.float32).train(train)
    x = mr.tensor(np.random.default_rng(1).standard_normal(shape).astype(dtype), requires_grad=True)
    with mr.fuse_norm_relu(fused):
        y = model(x)
        (y * y).sum().backward()
    arrays = {"y": y.detach().numpy(), "x.grad": x.grad.numpy()}
    arrays |= {f"{k}.grad": p.grad.numpy() for k, p in model.named_parameters()}
    arrays |= {k: np.array(v) for k, v in model.state_dict().items()}
    return {"arrays": arrays, "nodes": node_names(y)}


@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", list(MODELS))
def test_fused_models_are_bit_identical(name: str, dtype: Any, train: bool) -> None:
    make, shape = MODELS[name]
    fused, separate = (step(make, shape, f, train, dtype) for f in (True, False))
    assert fused["arrays"].keys() == separate["arrays"].keys()
    for key, a in fused["arrays"].items():
        assert a.dtype == separate["arrays"][key].dtype, key
        assert np.array_equal(a, separate["arrays"][key]), f"{name}: {key} differs"
    assert fused["nodes"].get("BatchNormReLU", 0) > 0 and "BatchNormReLU" not in separate["nodes"]
    assert fused["nodes"].get("ReLU", 0) < separate["nodes"]["ReLU"]


@pytest.mark.parametrize("layout", ["nchw", "nhwc", "winograd"])
def test_fused_blocks_in_every_layout(layout: str) -> None:
    """Channels-last convolution outputs (nhwc, Winograd) meet NCHW residuals and the other way round:
    the residual is read in the batch norm input's memory order, the bits unchanged."""
    make, shape = MODELS["cifar_resnet8_A"]
    with conv_layout(layout):
        fused, separate = (step(make, shape, f, True, np.float32) for f in (True, False))
    for key, a in fused["arrays"].items():
        assert np.array_equal(a, separate["arrays"][key]), f"{layout}: {key} differs"


def test_counts_of_fused_nodes_in_a_cifar_resnet() -> None:
    """cifar_resnet(8): the stem's bn1 + ReLU and each of 3 blocks' two, 7 fused nodes and no ReLU or
    BatchNorm left (the shortcuts are the parameter-free option A)."""
    nodes = step(*MODELS["cifar_resnet8_A"], True, True, np.float32)["nodes"]
    assert nodes["BatchNormReLU"] == 7
    assert "ReLU" not in nodes and "BatchNorm" not in nodes and "Add" not in nodes


def basic_block_nodes(block: BasicBlock, **kw: Any) -> dict[str, int]:
    x = mr.randn(2, 4, 6, 6, requires_grad=True)
    return node_names(block(x, **kw))


def test_a_hook_keeps_the_separate_ops() -> None:
    """A forward hook on bn1 (or a pre-hook on the ReLU) must see the tensor between the ops: that pair
    runs separately, the other stays fused; removing the hook fuses it again."""
    mr.manual_seed(0)
    block = BasicBlock(4, 4)
    assert basic_block_nodes(block) == {"BatchNormReLU": 2, "Conv2d": 2}
    seen: list[tuple[int, ...]] = []
    handle = block.bn1.register_forward_hook(lambda m, i, o: seen.append(o.shape))
    nodes = basic_block_nodes(block)
    assert seen == [(2, 4, 6, 6)]
    assert nodes == {"BatchNorm": 1, "ReLU": 1, "BatchNormReLU": 1, "Conv2d": 2}
    handle.remove()
    handle = block.relu.register_forward_pre_hook(lambda m, i: None)
    nodes = basic_block_nodes(block)  # the one ReLU module serves both pairs: both run separately
    assert nodes == {"BatchNorm": 2, "ReLU": 2, "Add": 1, "Conv2d": 2}
    handle.remove()
    assert basic_block_nodes(block) == {"BatchNormReLU": 2, "Conv2d": 2}


def test_other_modules_keep_the_separate_ops() -> None:
    """A BatchNorm2d subclass (its forward may differ), a ReLU subclass, SyncBatchNorm: not fused."""

    class MyBN(nn.BatchNorm2d):
        def forward(self, input: mr.Tensor) -> mr.Tensor:  # noqa: A002
            return super().forward(input) * 2.0

    class MyReLU(nn.ReLU):
        pass

    mr.manual_seed(0)
    block = BasicBlock(4, 4, norm_layer=MyBN)
    assert "BatchNormReLU" not in basic_block_nodes(block)
    block = BasicBlock(4, 4)
    block.relu = MyReLU(inplace=True)
    assert "BatchNormReLU" not in basic_block_nodes(block)
    block = nn.SyncBatchNorm.convert_sync_batchnorm(BasicBlock(4, 4))
    assert "BatchNormReLU" not in basic_block_nodes(block)


def test_the_helper_falls_back_on_a_residual_it_cannot_fuse() -> None:
    """A residual that broadcasts (or of another dtype) goes the modules' way, ``out += residual`` then
    the ReLU, as the block without fusion would: the same values, no fused node."""
    mr.manual_seed(0)
    bn, relu = nn.BatchNorm2d(3), nn.ReLU(inplace=True)
    x = mr.randn(2, 3, 4, 4, requires_grad=True)
    r = mr.randn(1, 3, 1, 4)
    y = batch_norm_relu(bn, relu, x, r)
    assert type(y.grad_fn).__name__ == "ReLU"
    with mr.fuse_norm_relu(False):
        expected = relu(bn(x) + r)
    np.testing.assert_array_equal(y.detach().numpy(), expected.detach().numpy())
    y64 = batch_norm_relu(bn, None, x, r.double().expand(2, 3, 4, 4))
    assert type(y64.grad_fn).__name__ == "ReLU" and y64.dtype == mr.float32


def test_only_the_residual_requires_grad() -> None:
    """The batch norm's input and parameters constant, the residual a leaf: its gradient is the masked g
    alone (no batch norm backward), as the separate ops give it; the same in eval."""
    rng = np.random.default_rng(0)
    z0, r0, g = (rng.standard_normal((3, 2, 4, 4)).astype(np.float32) for _ in range(3))
    for training in (True, False):
        grads = []
        for fused in (True, False):
            bn = nn.BatchNorm2d(2).train(training).requires_grad_(False)
            r = mr.tensor(r0, requires_grad=True)
            with mr.fuse_norm_relu(fused):
                y = batch_norm_relu(bn, None, mr.tensor(z0), r)
            y.backward(mr.tensor(g))
            grads.append(r.grad.numpy())
        np.testing.assert_array_equal(grads[0], grads[1])
        assert np.array_equal(grads[0], g * (y.detach().numpy() > 0))


def test_eval_with_frozen_statistics_and_trained_affine() -> None:
    """Eval-mode batch norm with gamma and beta learning (fine-tuning): the fused backward's eval branch
    gives the separate ops' gradients bit for bit, and the forward under no_grad keeps nothing."""
    rng = np.random.default_rng(2)
    z0, r0, g = (rng.standard_normal((4, 3, 5, 5)).astype(np.float32) for _ in range(3))
    results = []
    for fused in (True, False):
        mr.manual_seed(0)
        bn = nn.BatchNorm2d(3)
        bn.running_mean.data[:] = rng.standard_normal(3).astype(np.float32) if fused else results[0][3]
        bn.running_var.data[:] = rng.uniform(0.5, 2, 3).astype(np.float32) if fused else results[0][4]
        bn.eval()
        z, r = mr.tensor(z0, requires_grad=True), mr.tensor(r0, requires_grad=True)
        with mr.fuse_norm_relu(fused):
            y = batch_norm_relu(bn, None, z, r)
        y.backward(mr.tensor(g))
        results.append(
            (
                y.detach().numpy(),
                z.grad.numpy(),
                r.grad.numpy(),
                bn.running_mean.numpy(),
                bn.running_var.numpy(),
            )
            + (bn.weight.grad.numpy(), bn.bias.grad.numpy())
        )
    for a, b in zip(*results, strict=True):
        np.testing.assert_array_equal(a, b)
    with mr.no_grad():
        op = BatchNormReLU(bn.running_mean.data, bn.running_var.data, False, 0.1, 1e-5)
        op(mr.tensor(z0), bn.weight.detach(), bn.bias.detach(), None)
    assert not hasattr(op, "z")


def test_the_switch_is_per_thread_and_checked() -> None:
    assert mr.grad_mode.norm_relu_fused()
    with mr.fuse_norm_relu(False):
        assert not mr.grad_mode.norm_relu_fused()
        other: list[bool] = []
        thread = threading.Thread(target=lambda: other.append(mr.grad_mode.norm_relu_fused()))
        thread.start()
        thread.join()
        assert other == [True]
        with mr.fuse_norm_relu(True):
            assert mr.grad_mode.norm_relu_fused()
        assert not mr.grad_mode.norm_relu_fused()
    assert mr.grad_mode.norm_relu_fused()
    with pytest.raises(TypeError, match="fuse_norm_relu: expected a bool, got 0"):
        with mr.fuse_norm_relu(0):  # type: ignore[arg-type]
            pass


@pytest.mark.parametrize("name", ["basic", "bottleneck", "d2l"])
def test_hooks_see_the_modules_in_torchvisions_order(name: str) -> None:
    """With a forward hook on every module (as summary() and a learner's tracing put them), the blocks
    call their modules in the order of torchvision's (and d2l's) code: the last batch norm before the
    shortcut's modules."""
    from minires.models.blocks import Bottleneck, Residual, conv1x1

    mr.manual_seed(0)
    if name == "basic":
        block: nn.Module = BasicBlock(4, 8, 2, nn.Sequential(conv1x1(4, 8, 2), nn.BatchNorm2d(8)))
        expected = [
            "conv1",
            "bn1",
            "relu",
            "conv2",
            "bn2",
            "downsample.0",
            "downsample.1",
            "downsample",
            "relu",
        ]
    elif name == "bottleneck":
        block = Bottleneck(4, 2, 2, nn.Sequential(conv1x1(4, 8, 2), nn.BatchNorm2d(8)))
        expected = ["conv1", "bn1", "relu", "conv2", "bn2", "relu", "conv3", "bn3"]
        expected += ["downsample.0", "downsample.1", "downsample", "relu"]
    else:
        block = Residual(4, 8, use_1x1conv=True, strides=2)
        expected = ["conv1", "bn1", "conv2", "bn2", "conv3"]
    calls: list[str] = []
    for module_name, module in block.named_modules():
        if module_name:
            module.register_forward_hook(lambda m, i, o, n=module_name: calls.append(n))
    block(mr.randn(2, 4, 6, 6))
    assert calls == expected


@pytest.mark.parametrize("backend", ["standin", pytest.param("cupy", marks=pytest.mark.gpu)], indirect=True)
def test_fused_on_the_device_equals_the_separate_ops(backend: str) -> None:
    """On the GPU path (CuPy, or its stand-in here) the op is one pass over the whole batch: the same
    values and gradients as the separate ops, training and eval, and as on the CPU within float32 rounding."""
    from minires import backend as backend_mod

    rng = np.random.default_rng(3)
    x0 = rng.standard_normal((4, 1, 12, 12)).astype(np.float32)
    results = {}
    for device, fused, train in [
        (d, f, t) for d in (backend, "cpu") for f in (True, False) for t in (True, False)
    ]:
        mr.manual_seed(0)
        model = cifar_resnet(8, in_channels=1).to(device).train(train)
        x = mr.tensor(x0, device=device, requires_grad=True)
        with mr.fuse_norm_relu(fused):
            y = model(x)
            (y * y).sum().backward()
        grads = [x.grad] + [p.grad for p in model.parameters()]
        results[device, fused, train] = [backend_mod.to_numpy(t.data) for t in [y, *grads]]
        assert ("BatchNormReLU" in node_names(y)) == fused
    for train in (True, False):
        for a, b in zip(results[backend, True, train], results[backend, False, train], strict=True):
            np.testing.assert_array_equal(a, b)
        for a, b in zip(results[backend, True, train], results["cpu", True, train], strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * float(np.abs(b).max()))


def test_a_replaced_forward_keeps_the_separate_ops() -> None:
    """A forward replaced on the module or on the class (an ablation, an instrumentation) is what runs."""
    mr.manual_seed(0)
    x = mr.randn(2, 4, 6, 6)
    block = BasicBlock(4, 4)
    block.bn2.forward = lambda input: input * 0.0  # type: ignore[method-assign]
    nodes = node_names(block(x.requires_grad_()))
    assert nodes.get("BatchNormReLU") == 1 and nodes.get("Mul") == 1  # bn1 + relu still fused
    y = block(x)
    assert float(y.detach().numpy().min()) >= 0.0
    with mr.fuse_norm_relu(False):
        np.testing.assert_array_equal(y.detach().numpy(), block(x).detach().numpy())
    original = nn.ReLU.forward
    try:
        nn.ReLU.forward = lambda self, input: input  # type: ignore[method-assign]
        y = BasicBlock(4, 4)(x)
        assert "BatchNormReLU" not in node_names(y) and float(y.detach().numpy().min()) < 0.0
    finally:
        nn.ReLU.forward = original  # type: ignore[method-assign]


def test_the_blocks_errors_name_batch_norm_and_come_before_the_shortcut() -> None:
    """One value per channel in training: the error is batch_norm's, as the module's own call gives it, and
    bn2 has counted its batch before the shortcut runs, fused or not."""
    from minires.models.blocks import conv1x1

    for fused in (True, False):
        mr.manual_seed(0)
        block = BasicBlock(4, 8, 2, nn.Sequential(conv1x1(4, 8, 2), nn.BatchNorm2d(8)))
        seen: list[int] = []
        block.downsample.register_forward_pre_hook(
            lambda m, i, seen=seen, bn=block.bn2: seen.append(int(bn.num_batches_tracked))
        )
        with mr.fuse_norm_relu(fused):
            block(mr.randn(2, 4, 6, 6))
            assert seen == [1]
            with pytest.raises(ValueError, match="^batch_norm: Expected more than 1 value per channel"):
                block(mr.randn(1, 4, 2, 2))
