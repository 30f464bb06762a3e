"""minires's CuPy path beyond the op table and the models: what a GPU user meets, run on the CuPy stand-in
(tests/cupy_standin.py) on every machine, and on the real GPU where there is one.

Deferred checks of device values, kernel launches per convolution, the GPU's random state in
checkpoints, save/load of a model on the device, the DataLoader's device move and transforms, hooks,
forced conv layouts, and the training example with ``--device cuda`` and ``--resume``.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scripts import load_script

import minires as mr
import minires.nn as nn
import minires.nn.functional as F
from minires import backend as backend_mod
from minires import models, rng
from minires.data import DataLoader, idx_bytes
from minires.data.transforms import Compose, Normalize, RandomCrop, RandomHorizontalFlip, Resize
from minires.errors import TargetIndexError
from minires.grad_mode import CONV_LAYOUTS, conv_layout
from minires.ops import conv_layouts

DEVICE = ["standin", pytest.param("cupy", marks=pytest.mark.gpu)]
STANDIN = ["standin"]  # the tests that read the stand-in's counters


def _standin() -> Any:
    from cupy_standin import standin

    return standin


# ----- a class index out of range: refused, without a wait for the device per call ----------------------
@pytest.mark.parametrize("backend", STANDIN, indirect=True)
def test_a_target_out_of_range_is_refused_at_the_next_read_not_before(backend: str) -> None:
    """CuPy would gather logits[i, 10] of a 10-class row from the next row, silently. The check is queued
    on the device, and the next read (here the loss) raises it, in the same copy: one sync in all."""
    logits = mr.randn(4, 10, device=backend, requires_grad=True)
    bad = mr.tensor([1, 10, 2, 3], device=backend)
    syncs = _standin().syncs
    with syncs.counting() as block:
        loss = F.cross_entropy(logits, bad)
        loss.backward()
    assert block.count == 0  # queued, not read
    with pytest.raises(TargetIndexError, match=r"target 10 is out of bounds.*\[0, 10\).*checked on the GPU"):
        loss.item()

    good = mr.tensor([1, 9, 2, 3], device=backend)
    loss = F.cross_entropy(logits, good)
    with syncs.counting() as block:
        value = loss.item()
    assert block.count == 1 and np.isfinite(value)  # the value and the queued check: one copy


@pytest.mark.parametrize("backend", STANDIN, indirect=True)
def test_deferred_checks_are_read_by_synchronize_and_never_pile_up(backend: str) -> None:
    logits = mr.randn(2, 3, device=backend)
    F.cross_entropy(logits, mr.tensor([0, 3], device=backend))
    with pytest.raises(TargetIndexError, match="target 3 is out of bounds"):
        mr.cuda.synchronize()
    assert backend_mod._deferred == []
    good = mr.tensor([0, 2], device=backend)
    syncs = _standin().syncs
    with syncs.counting() as block:
        for _ in range(backend_mod.MAX_DEFERRED * 3):
            F.nll_loss(logits, good)
    assert block.count == 3  # one read per MAX_DEFERRED queued checks
    assert len(backend_mod._deferred) < backend_mod.MAX_DEFERRED
    # numpy() and printing read the queue too
    F.nll_loss(logits, mr.tensor([-1, 0], device=backend))
    with pytest.raises(TargetIndexError, match="target -1"):
        logits.numpy()


def test_on_the_cpu_the_target_check_raises_at_once() -> None:
    with pytest.raises(TargetIndexError, match="target 10 is out of bounds"):
        F.cross_entropy(mr.randn(2, 10), mr.tensor([0, 10]))


# ----- kernel launches of a convolution -------------------------------------------------------------------
def _conv_launches(backend: str, n: int, chunk_bytes: int | None, monkeypatch: pytest.MonkeyPatch) -> dict:
    """Launches of one forward and one backward of a 64->64 3x3 conv at 14x14 (layer2 of d2l_resnet18's
    default run), batch n, counted by the stand-in."""
    if chunk_bytes is not None:
        monkeypatch.setattr(conv_layouts, "DEVICE_CHUNK_BYTES", chunk_bytes)
    conv = nn.Conv2d(64, 64, 3, padding=1, bias=False).to(backend)
    x = mr.randn(n, 64, 14, 14, device=backend, requires_grad=True)
    launches = _standin().launches
    with launches.counting() as forward:
        y = conv(x)
    g = mr.ones(y.shape, device=backend)
    with launches.counting() as backward:
        y.backward(g)
    return {"forward": forward.count, "backward": backward.count}


@pytest.mark.parametrize("backend", STANDIN, indirect=True)
def test_a_conv_on_the_device_is_not_a_loop_over_cpu_sized_chunks(
    backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On the GPU the whole batch is unfolded at once: the launches of a conv do not grow with the batch.
    With the CPU's cache-sized chunks (the code before) they grew with it, about 9 copies and a GEMM per
    chunk. The small batch is 8, not 2: at 8 images x (400 KB) outweighs dx's weight matrix (147 KB), so
    backward makes dx and dw from one unfold of g, as at 256 (conv.py ``conv2d_input_and_weight_grad``;
    at 2 images x is 100 KB, and dx and dw go apart, for memory, in more launches)."""
    small = _conv_launches(backend, 8, None, monkeypatch)
    large = _conv_launches(backend, 256, None, monkeypatch)
    assert large == small, f"launches grew with the batch: {small} at 8 images, {large} at 256"
    # one copy per kernel offset; the padded input (a fill, a copy); the weight matrix (a gather, a copy);
    # one GEMM; the store into y
    assert large["forward"] <= 9 + 6
    cpu_sized = _conv_launches(backend, 256, conv_layouts.CHUNK_BYTES, monkeypatch)
    assert cpu_sized["forward"] > 5 * large["forward"], (cpu_sized, large)
    print(f"launches of a 64->64 3x3 conv at 14x14, batch 256: {cpu_sized} with CPU chunks, {large} now")


# ----- the GPU's random state: saved, restored, replayed --------------------------------------------------
@pytest.mark.parametrize("backend", DEVICE, indirect=True)
def test_the_device_generator_state_replays_through_a_checkpoint(backend: str, tmp_path: Path) -> None:
    mr.manual_seed(3)
    mr.randn(5, device=backend)
    mr.save({"rng": rng.get_state()}, tmp_path / "state.npz")
    expected = [mr.randn(4, device=backend).numpy(), F.dropout(mr.ones(64, device=backend), 0.5).numpy()]
    mr.manual_seed(99)  # anything in between
    mr.randn(7, device=backend)
    rng.set_state(mr.load(tmp_path / "state.npz")["rng"])
    replay = [mr.randn(4, device=backend).numpy(), F.dropout(mr.ones(64, device=backend), 0.5).numpy()]
    for a, b in zip(expected, replay, strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(expected[0], mr.randn(4, device=backend).numpy())  # the stream moves on


def test_a_checkpoint_holding_only_the_cpu_state_still_loads() -> None:
    mr.manual_seed(0)
    old_form = rng.get_state()["cpu"]  # what checkpoints held before the GPU's state was kept
    a = mr.randn(3).numpy()
    rng.set_state(old_form)
    np.testing.assert_array_equal(a, mr.randn(3).numpy())


# ----- a model on the device: save and load, hooks, conv layouts -----------------------------------------
@pytest.mark.parametrize("backend", DEVICE, indirect=True)
def test_save_and_load_a_model_and_its_optimizer_on_the_device(backend: str, tmp_path: Path) -> None:
    """A checkpoint written from the GPU loads into a model on the GPU, and training continues as if it had
    never stopped: the momentum buffers come back too."""
    mr.manual_seed(0)
    x, y = mr.randn(4, 1, 28, 28, device=backend), mr.tensor([0, 1, 2, 3], device=backend)

    def make() -> tuple[nn.Module, mr.optim.Optimizer]:
        model = models.cifar_resnet(20, in_channels=1).to(backend)
        return model, mr.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)

    def step(model: nn.Module, opt: mr.optim.Optimizer) -> None:
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()

    model, opt = make()
    step(model, opt)
    mr.save({"model": model.state_dict(), "opt": opt.state_dict()}, tmp_path / "ckpt.npz")
    step(model, opt)

    mr.manual_seed(1)
    other, other_opt = make()
    state = mr.load(tmp_path / "ckpt.npz")
    other.load_state_dict(state["model"])
    other_opt.load_state_dict(state["opt"])
    assert all(p.device == backend for p in other.parameters())
    buffers = [t for s in other_opt.state.values() for t in s.values() if hasattr(t, "shape")]
    assert buffers and all(
        backend_mod.device_of(t.data if isinstance(t, mr.Tensor) else t) == backend for t in buffers
    )
    step(other, other_opt)
    for (name, a), b in zip(model.state_dict().items(), other.state_dict().values(), strict=True):
        np.testing.assert_array_equal(backend_mod.to_numpy(a), backend_mod.to_numpy(b), err_msg=name)


@pytest.mark.parametrize("backend", DEVICE, indirect=True)
def test_hooks_see_the_same_values_on_the_device(backend: str) -> None:
    """Forward hooks, full backward hooks and tensor hooks on a BasicBlock: the same values as on the CPU,
    as device tensors."""

    def run(device: str) -> dict[str, np.ndarray]:
        mr.manual_seed(0)
        shortcut = nn.Sequential(nn.Conv2d(3, 4, 1, stride=2, bias=False), nn.BatchNorm2d(4))
        block = models.BasicBlock(3, 4, stride=2, downsample=shortcut).to(device)
        seen: dict[str, np.ndarray] = {}

        def forward_hook(module: nn.Module, args: tuple, output: mr.Tensor) -> None:
            assert output.device == device
            seen["bn1 out"] = output.numpy()

        def backward_hook(module: nn.Module, grad_input: tuple, grad_output: tuple) -> tuple:
            assert grad_input[0].device == device
            seen["conv1 grad_input"] = grad_input[0].numpy()
            return (grad_input[0] * 2,)  # replaces the gradient that flows on

        block.bn1.register_forward_hook(forward_hook)
        block.conv1.register_full_backward_hook(backward_hook)
        x = mr.tensor(np.random.default_rng(2).standard_normal((2, 3, 6, 6)), dtype=mr.float32, device=device)
        x.requires_grad_()
        out = block(x)
        out.register_hook(lambda g: g * 3)
        out.sum().backward()
        seen["x.grad"] = x.grad.numpy()
        return seen

    cpu, device = run("cpu"), run(backend)
    assert cpu.keys() == device.keys()
    for key in cpu:
        np.testing.assert_allclose(device[key], cpu[key], rtol=1e-5, atol=1e-6, err_msg=key)


@pytest.mark.parametrize("backend", DEVICE, indirect=True)
@pytest.mark.parametrize("layout", CONV_LAYOUTS)
@pytest.mark.parametrize("geometry", [(1, 1, 1, 1), (2, 1, 1, 1), (1, 2, 2, 1), (1, 1, 1, 3)])
def test_every_forced_conv_layout_runs_on_the_device(backend: str, layout: str, geometry: tuple) -> None:
    """y, dx and dw of a conv forced to each unfold layout, on the device, equal the CPU's (stride,
    padding, dilation, groups as given)."""
    stride, padding, dilation, groups = geometry
    rs = np.random.default_rng(0)
    x, w = rs.standard_normal((3, 6, 9, 8)), rs.standard_normal((6, 6 // groups, 3, 3))

    def run(device: str) -> list[np.ndarray]:
        xt = mr.tensor(x, device=device, requires_grad=True)
        wt = mr.tensor(w, device=device, requires_grad=True)
        with conv_layout(layout):
            y = F.conv2d(xt, wt, None, stride, padding, dilation, groups)
            (y * y).sum().backward()
        return [y.numpy(), xt.grad.numpy(), wt.grad.numpy()]

    for name, a, b in zip(("y", "dx", "dw"), run(backend), run("cpu"), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10, err_msg=name)


# ----- the DataLoader moves uint8 batches and transforms them there --------------------------------------
class _Images:
    """An array dataset as FashionMNIST and CIFAR10 are: uint8 ``images`` and int ``labels``."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        rs = np.random.default_rng(1)
        self.images = rs.integers(0, 256, size=(20, *shape), dtype=np.uint8)
        self.labels = rs.integers(0, 10, size=20)

    def __len__(self) -> int:
        return len(self.labels)


@pytest.mark.parametrize("backend", DEVICE, indirect=True)
@pytest.mark.parametrize("shape", [(28, 28), (32, 32, 3)], ids=["gray", "rgb-hwc"])
def test_the_loader_gives_the_same_batches_on_the_device(backend: str, shape: tuple) -> None:
    channels = 1 if len(shape) == 2 else 3
    transform = Compose(
        [
            RandomCrop(shape[0], padding=4),
            RandomHorizontalFlip(),
            Resize(20),
            Normalize([0.5] * channels, [0.25] * channels),
        ]
    )

    def batches(device: str) -> list[tuple[np.ndarray, np.ndarray]]:
        loader = DataLoader(
            _Images(shape), batch_size=8, shuffle=True, seed=5, transform=transform, device=device
        )
        out = []
        for x, y in loader:
            assert x.device == device and y.device == device and x.dtype == mr.float32
            out.append((x.numpy(), y.numpy()))
        return out

    cpu, device = batches("cpu"), batches(backend)
    assert len(cpu) == len(device) == 3
    for (xc, yc), (xd, yd) in zip(cpu, device, strict=True):
        assert xd.shape == (len(yc), channels, 20, 20)
        np.testing.assert_array_equal(yd, yc)
        np.testing.assert_allclose(xd, xc, rtol=1e-6, atol=1e-6)


# ----- the training example on the device, and its resume -------------------------------------------------
example = load_script("examples/train_fashion_mnist.py")


@pytest.fixture(scope="module")
def tiny_idx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("idx")
    rs = np.random.default_rng(0)
    for prefix, n in (("train", 96), ("t10k", 32)):
        labels = rs.integers(0, 10, size=n).astype(np.uint8)
        images = (labels[:, None, None] * 20 + rs.integers(0, 40, size=(n, 28, 28))).astype(np.uint8)
        (root / f"{prefix}-images-idx3-ubyte").write_bytes(idx_bytes(images))
        (root / f"{prefix}-labels-idx1-ubyte").write_bytes(idx_bytes(labels))
    return root


def _args(root: Path, out: Path, *extra: str) -> list[str]:
    return [
        "--dataset=idx", f"--data-root={root}", "--model=cifar_resnet20", "--batch-size=16", "--lr=0.1",
        "--warmup-epochs=0.5", "--augment=crop", "--device=cuda", f"--out={out}", "--no-progress", *extra,
    ]  # fmt: skip


def _metrics(run: Path) -> list[dict[str, str]]:
    with open(run / "metrics.csv", newline="") as f:
        return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(f)]


@pytest.mark.parametrize("backend", STANDIN, indirect=True)
def test_the_example_trains_on_the_device_and_resumes(backend: str, tiny_idx: Path, tmp_path: Path) -> None:
    """Two epochs with --device cuda; then one epoch, stopped, and --resume for the second: the same
    numbers. The steps read the device at most once each (the example reads its sums every
    READ_EVERY_ON_GPU steps, and at the end of an epoch)."""
    syncs = _standin().syncs
    with syncs.counting() as block:
        assert example.main(_args(tiny_idx, tmp_path / "full", "--epochs=2")) == 0
    steps = 2 * (96 // 16)
    training_reads = block.reasons.count("ndarray.get")
    print(f"device reads in a 2-epoch run of {steps} steps: {block.count} ({training_reads} copies)")
    full = _metrics(tmp_path / "full")
    assert [r["epoch"] for r in full] == ["1", "2"]

    assert example.main(_args(tiny_idx, tmp_path / "part", "--epochs=2", "--stop-after=1")) == 0
    assert example.main(["--resume", str(tmp_path / "part"), "--no-progress"]) == 0
    assert _metrics(tmp_path / "part") == full


@pytest.mark.parametrize("backend", STANDIN, indirect=True)
def test_a_training_step_of_the_example_reads_the_device_at_most_once(
    backend: str, tiny_idx: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """train_epoch alone, 6 steps: with READ_EVERY_ON_GPU = 1 (the most reads) exactly one sync a step."""
    monkeypatch.setattr(example, "READ_EVERY_ON_GPU", 1)
    mr.manual_seed(0)
    model = models.cifar_resnet(20, in_channels=1).to(backend)
    opt = mr.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    sched = mr.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0)
    data = example.IDXDataset(tiny_idx, train=True)
    loader = DataLoader(data, batch_size=16, seed=0, device=backend)
    syncs = _standin().syncs
    with syncs.counting() as block:
        loss, acc = example.train_epoch(
            model, loader, opt, sched, {"label_smoothing": 0.1, "epochs": 1}, 1, False
        )
    assert np.isfinite(loss) and 0 <= acc <= 1
    assert block.count == len(loader), block.reasons


# ----- optimizers: one fused kernel per parameter per step on the device ----------------------------------
OPTIMIZERS = {
    "sgd": lambda ps: mr.optim.SGD(ps, lr=0.1),
    "sgd-decay-maximize": lambda ps: mr.optim.SGD(ps, lr=0.1, weight_decay=0.01, maximize=True),
    "momentum-dampening": lambda ps: mr.optim.SGD(ps, lr=0.1, momentum=0.9, dampening=0.3, weight_decay=5e-4),
    "nesterov": lambda ps: mr.optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4),
    "adam": lambda ps: mr.optim.Adam(ps, lr=1e-2, weight_decay=1e-3),
    "adam-maximize": lambda ps: mr.optim.Adam(ps, lr=1e-2, maximize=True),
    "adamw": lambda ps: mr.optim.AdamW(ps, lr=1e-2, weight_decay=0.1),
    "adam-amsgrad": lambda ps: mr.optim.Adam(ps, lr=1e-2, amsgrad=True),  # the unfused path on the device
}


@pytest.mark.parametrize("backend", STANDIN, indirect=True)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_optimizer_steps_on_the_device_equal_the_reference(backend: str, name: str, dtype: str) -> None:
    """Four steps with the same gradients on the CPU (the reference code) and on the device (one fused
    kernel per parameter once the state exists): the same parameters and state, to the last bit here (the
    stand-in computes in NumPy; a GPU may contract a * b + c into one rounding: see the note)."""
    rs = np.random.default_rng(0)
    shapes = [(3, 4), (5,), (2, 1, 3, 3)]
    start = [rs.standard_normal(s).astype(dtype) for s in shapes]
    grads = [[rs.standard_normal(s).astype(dtype) for s in shapes] for _ in range(4)]

    def run(device: str) -> tuple[list[np.ndarray], list[int]]:
        params = [mr.tensor(a, device=device, requires_grad=True) for a in start]
        opt = OPTIMIZERS[name](params)
        launches = []
        for step_grads in grads:
            for p, g in zip(params, step_grads, strict=True):
                p.grad = mr.tensor(g, device=device)
            if device == "cpu":
                opt.step()
            else:
                with _standin().launches.counting() as block:
                    opt.step()
                launches.append(block.count)
        state = [
            backend_mod.to_numpy(v) for s in opt.state.values() for v in s.values() if hasattr(v, "shape")
        ]
        return [p.numpy() for p in params] + state, launches

    (reference, _), (device, launches) = run("cpu"), run(backend)
    for i, (a, b) in enumerate(zip(device, reference, strict=True)):
        np.testing.assert_array_equal(a, b, err_msg=f"array {i}")
    if name != "adam-amsgrad":
        assert launches[1:] == [len(shapes)] * 3, launches  # after the first step: one launch per parameter


@pytest.mark.parametrize("backend", STANDIN, indirect=True)
def test_batch_norm_on_the_device_copies_no_input_for_its_sums(
    backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CuPy's einsum("nchw,nchw->c") copies both inputs into a GEMM layout; on the device batch norm's
    channel sums are a product and a reduction instead (same values as the CPU's einsum)."""

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("einsum called on the device")

    monkeypatch.setattr(_standin(), "einsum", refuse)
    x = np.random.default_rng(0).standard_normal((4, 3, 5, 5))

    def run(device: str) -> list[np.ndarray]:
        bn = nn.BatchNorm2d(3).to(device).double()
        xt = mr.tensor(x, device=device, requires_grad=True)
        y = bn(xt)
        (y * y).sum().backward()
        return [y.numpy(), xt.grad.numpy(), bn.weight.grad.numpy(), bn.running_var.numpy()]

    for a, b in zip(run(backend), run("cpu"), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
