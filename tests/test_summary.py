"""mr.utils.summary (minires/utils/summary.py): rows, shapes, counts, input conventions, and a clean model.

The row tables of whole ResNets are checked against their PyTorch twins (tests/torch_twins.py), walked
with torch's own forward pre-hooks and hooks: same modules, same call order, same output shapes, same
parameter counts.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

import numpy as np
import pytest

import minires as mr
import minires.models as models
import minires.nn.functional as F
from minires import nn
from minires.utils import LayerRow, Summary, summary


def small_net() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(3, 8, kernel_size=3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(8 * 4 * 4, 10),
    )


def as_tuples(rows: list[LayerRow]) -> list[tuple]:
    return [(r.name, r.type, r.depth, r.output_shape, r.params, r.repeated) for r in rows]


def hook_counts(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


# ----- the table ----------------------------------------------------------------------------------------
def test_small_sequential_rows_are_exact() -> None:
    model = small_net()
    s = summary(model, (3, 8, 8))
    assert isinstance(s, Summary)
    assert as_tuples(s.rows) == [
        ("", "Sequential", 0, (1, 10), 0, False),
        ("0", "Conv2d", 1, (1, 8, 8, 8), 8 * 3 * 3 * 3 + 8, False),
        ("1", "BatchNorm2d", 1, (1, 8, 8, 8), 16, False),
        ("2", "ReLU", 1, (1, 8, 8, 8), 0, False),
        ("3", "MaxPool2d", 1, (1, 8, 4, 4), 0, False),
        ("4", "Flatten", 1, (1, 128), 0, False),
        ("5", "Linear", 1, (1, 10), 128 * 10 + 10, False),
    ]
    assert s.total_params == sum(p.numel() for p in model.parameters()) == 224 + 16 + 1290
    assert s.trainable_params == s.total_params and s.non_trainable_params == 0
    assert s.input_shape == (1, 3, 8, 8) and s.output_shape == (1, 10)
    assert s.params_bytes == 4 * s.total_params


def test_table_text(capsys: pytest.CaptureFixture[str]) -> None:
    s = summary(small_net(), (3, 8, 8))
    text = str(s)
    assert repr(s) == text
    assert capsys.readouterr().out == text + "\n"  # printed, as torchsummary and torchinfo do
    summary(small_net(), (3, 8, 8), verbose=False)
    assert capsys.readouterr().out == ""
    lines = text.splitlines()
    assert lines[1].split() == ["Layer", "(type)", "Output", "Shape", "Param", "#"]
    assert lines[3].split() == ["(Sequential)", "(1,", "10)", "0"]
    assert lines[4].split() == ["0", "(Conv2d)", "(1,", "8,", "8,", "8)", "224"]
    assert lines[4].startswith("  0 (Conv2d)")  # children indented under the model
    assert lines[9].split() == ["5", "(Linear)", "(1,", "10)", "1,290"]
    assert "Total params: 1,530" in lines
    assert "Trainable params: 1,530" in lines
    assert "Non-trainable params: 0" in lines
    assert "Input shape: (1, 3, 8, 8)" in lines and "Output shape: (1, 10)" in lines
    assert len({len(line) for line in lines[:10]} - {len(lines[0])}) == 0  # the columns line up


def test_thousands_separators_and_non_trainable() -> None:
    model = nn.Sequential(nn.Linear(1000, 1000), nn.Linear(1000, 10))
    model[0].weight.requires_grad = False
    s = summary(model, (1000,))
    assert s.total_params == 1_011_010
    assert s.trainable_params == 1_000 + 10_010 and s.non_trainable_params == 1_000_000
    text = str(s)
    assert "1,001,000" in text and "Total params: 1,011,010" in text
    assert "Trainable params: 11,010" in text and "Non-trainable params: 1,000,000" in text


def test_parameters_owned_by_a_container_are_on_its_row() -> None:
    class Scaled(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 3)
            self.scale = nn.Parameter(mr.ones(3))

        def forward(self, x: mr.Tensor) -> mr.Tensor:
            return self.fc(x) * self.scale

    s = summary(Scaled(), (4,))
    assert as_tuples(s.rows) == [("", "Scaled", 0, (1, 3), 3, False), ("fc", "Linear", 1, (1, 3), 15, False)]
    assert s.total_params == 18 == sum(r.params for r in s.rows)


def test_a_module_without_children_has_its_own_row() -> None:
    s = summary(nn.Linear(2, 3), (2,))
    assert as_tuples(s.rows) == [("", "Linear", 0, (1, 3), 9, False)]
    assert str(s).splitlines()[3].split() == ["(Linear)", "(1,", "3)", "9"]


def test_shared_modules_and_call_order() -> None:
    """Rows follow calls, not registration; a module called twice has two rows, parameters on the first."""

    class Twice(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.act = nn.ReLU()
            self.fc = nn.Linear(4, 4)
            self.head = nn.Linear(4, 2)

        def forward(self, x: mr.Tensor) -> mr.Tensor:
            x = self.act(self.fc(x))
            x = self.act(self.fc(x))
            return self.head(x)

    s = summary(Twice(), (4,), batch_size=3)
    assert as_tuples(s.rows) == [
        ("", "Twice", 0, (3, 2), 0, False),
        ("fc", "Linear", 1, (3, 4), 20, False),
        ("act", "ReLU", 1, (3, 4), 0, False),
        ("fc", "Linear", 1, (3, 4), 20, True),
        ("act", "ReLU", 1, (3, 4), 0, True),
        ("head", "Linear", 1, (3, 2), 10, False),
    ]
    assert s.total_params == 30
    lines = str(s).splitlines()
    assert lines[6].split()[-1] == "(recursive)" and lines[7].split()[-1] == "0"


def test_tuple_outputs_and_modules_that_return_no_tensor() -> None:
    class Split(nn.Module):
        def forward(self, x: mr.Tensor) -> tuple[mr.Tensor, mr.Tensor]:
            return x[:, :2], x[:, 2:]

    class Note(nn.Module):
        def forward(self, x: mr.Tensor) -> None:
            return None

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.split, self.note = Split(), Note()

        def forward(self, x: mr.Tensor) -> tuple[mr.Tensor, mr.Tensor]:
            self.note(x)
            return self.split(x)

    s = summary(Net(), (5,))
    assert [r.output_shape for r in s.rows] == [[(1, 2), (1, 3)], None, [(1, 2), (1, 3)]]
    text = str(s)
    assert "(1, 2), (1, 3)" in text and " -- " in text


# ----- input conventions --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "input_shape, batch_size, expected",
    [
        ((3, 8, 8), None, (1, 3, 8, 8)),  # one sample: batch 1 in front (torchsummary)
        ((3, 8, 8), 4, (4, 3, 8, 8)),
        ([3, 8, 8], 2, (2, 3, 8, 8)),
        ((2, 3, 8, 8), None, (2, 3, 8, 8)),  # four entries: the whole batch (torchinfo)
        ((2, 3, 8, 8), 2, (2, 3, 8, 8)),
        (np.array([3, 8, 8]), None, (1, 3, 8, 8)),
    ],
)
def test_input_shape_with_or_without_batch(input_shape: Any, batch_size: int | None, expected: tuple) -> None:
    s = summary(small_net(), input_shape, batch_size=batch_size)
    assert s.input_shape == expected
    assert s.rows[1].output_shape == (expected[0], 8, 8, 8) and s.output_shape == (expected[0], 10)


@pytest.mark.parametrize(
    "input_shape, batch_size, message",
    [
        ((2, 3, 8, 8), 3, "already holds the batch"),
        ((3, 0, 8), None, "positive ints"),
        ((), None, "non-empty"),
        ((3, 8.5, 8), None, "positive ints"),
        ("abc", None, "positive ints"),
        ((3, 8, 8), 0, "batch_size must be a positive int"),
    ],
)
def test_bad_input_shapes(input_shape: Any, batch_size: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        summary(small_net(), input_shape, batch_size=batch_size)


def test_dtype_and_device_follow_the_model() -> None:
    seen: list[tuple] = []

    class Probe(nn.Module):
        def forward(self, x: mr.Tensor) -> mr.Tensor:
            seen.append((x.dtype, x.device, bool(np.all(x.numpy() == 0))))
            return x

    model = nn.Sequential(Probe(), nn.Linear(3, 2)).double()
    summary(model, (3,))
    summary(model, (3,), dtype=mr.float64, device="cpu")
    summary(nn.Sequential(Probe()), (3,))  # no parameters: float32 on the CPU
    assert seen == [(mr.float64, "cpu", True), (mr.float64, "cpu", True), (mr.float32, "cpu", True)]


def test_runs_on_the_models_device(backend: str) -> None:
    seen = []
    model = small_net().to(backend)
    model[0].register_forward_hook(lambda mod, args, out: seen.append(args[0].device))
    s = summary(model, (3, 8, 8))
    assert seen == [backend] and s.total_params == 1530 and s.output_shape == (1, 10)


# ----- the model is left as it was ----------------------------------------------------------------------
def test_runs_in_eval_mode_without_grad_and_restores_every_flag() -> None:
    modes: list[tuple[bool, bool]] = []

    class Probe(nn.Module):
        def forward(self, x: mr.Tensor) -> mr.Tensor:
            modes.append((self.training, mr.is_grad_enabled()))
            return x

    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.Dropout(0.5), Probe(), nn.BatchNorm2d(8))
    model.train()
    model[4].eval()  # a frozen BatchNorm inside a training model stays frozen
    flags = [m.training for m in model.modules()]
    bn = model[1]
    before = (
        bn.running_mean.numpy().copy(),
        bn.running_var.numpy().copy(),
        int(bn.num_batches_tracked.item()),
    )
    summary(model, (3, 8, 8))
    assert [m.training for m in model.modules()] == flags
    after = (bn.running_mean.numpy(), bn.running_var.numpy(), int(bn.num_batches_tracked.item()))
    np.testing.assert_array_equal(before[0], after[0])
    np.testing.assert_array_equal(before[1], after[1])
    assert before[2] == after[2]
    assert mr.is_grad_enabled()
    assert modes == [(False, False)]
    model.eval()
    summary(model, (3, 8, 8))
    assert not any(m.training for m in model.modules())


def test_hooks_are_removed_and_user_hooks_kept() -> None:
    model = small_net()
    calls = []
    handle = model[0].register_forward_hook(lambda mod, args, out: calls.append(out.shape))
    s = summary(model, (3, 8, 8))
    assert hook_counts(model) == 1 and calls == [(1, 8, 8, 8)]
    n_rows = len(s.rows)
    model(mr.zeros(2, 3, 8, 8))
    assert len(s.rows) == n_rows  # the summary's hooks no longer record anything
    handle.remove()
    assert hook_counts(model) == 0


def test_hooks_removed_and_modes_restored_when_the_forward_fails() -> None:
    model = small_net().train()
    with pytest.raises(ValueError, match="conv2d") as info:
        summary(model, (4, 8, 8))  # the first conv wants 3 channels
    assert hook_counts(model) == 0
    assert all(m.training for m in model.modules())
    assert mr.is_grad_enabled()
    notes = getattr(info.value, "__notes__", None)
    if notes is not None:  # Python 3.11+: the failing layer is named
        assert any("0 (Conv2d)" in note and "(1, 4, 8, 8)" in note for note in notes)


# ----- whole models against their PyTorch twins ---------------------------------------------------------
@pytest.fixture(scope="module")
def twins(torch: ModuleType) -> ModuleType:
    return importlib.import_module("torch_twins")


def torch_rows(torch: ModuleType, twin: Any, shape: tuple) -> list[tuple]:
    """The rows ``summary`` should give, from torch's own pre-hooks and hooks on the twin."""
    rows: list[list] = []
    stack: list[list] = []
    seen: set[int] = set()
    handles = []
    for name, module in twin.named_modules():

        def pre(mod: Any, args: Any, name: str = name) -> None:
            own = sum(p.numel() for p in mod.parameters(recurse=False))
            rows.append([name, type(mod).__name__, len(stack), None, own, id(mod) in seen])
            seen.add(id(mod))
            stack.append(rows[-1])

        def post(mod: Any, args: Any, out: Any) -> None:
            stack.pop()[3] = tuple(out.shape)

        handles += [module.register_forward_pre_hook(pre), module.register_forward_hook(post)]
    twin.eval()
    with torch.no_grad():
        twin(torch.zeros(shape))
    for h in handles:
        h.remove()
    return [tuple(r) for r in rows]


def test_d2l_resnet18_matches_its_twin_and_the_seed_walk_through(
    torch: ModuleType, twins: ModuleType
) -> None:
    model, twin = models.d2l_resnet18(in_channels=1, num_classes=10), twins.d2l_resnet18(1, 10)
    s = summary(model, (1, 224, 224))
    assert as_tuples(s.rows) == torch_rows(torch, twin, (1, 1, 224, 224))
    assert s.total_params == sum(p.numel() for p in twin.parameters())
    assert s.total_params == 11_178_378
    # The stage by stage walk of the seed (d2l's "for layer in net: X = layer(X)").
    assert [r.output_shape for r in s.rows if r.depth == 1] == [
        (1, 64, 56, 56),
        (1, 64, 56, 56),
        (1, 128, 28, 28),
        (1, 256, 14, 14),
        (1, 512, 7, 7),
        (1, 512, 1, 1),
        (1, 512),
        (1, 10),
    ]
    assert "Total params: 11,178,378" in str(s)


def test_resnet18_matches_its_twin(torch: ModuleType, twins: ModuleType) -> None:
    """torchvision's BasicBlock calls its one ReLU twice: repeated rows, counted once."""
    model, twin = models.resnet18(), twins.resnet18()
    s = summary(model, (2, 3, 32, 32))
    assert as_tuples(s.rows) == torch_rows(torch, twin, (2, 3, 32, 32))
    assert s.total_params == sum(p.numel() for p in twin.parameters()) == 11_689_512
    assert any(r.repeated and r.type == "ReLU" for r in s.rows)
    assert sum(r.params for r in s.rows if not r.repeated) == s.total_params


def test_functional_relu_in_a_block_is_not_a_row() -> None:
    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(2, 2, 3, padding=1)

        def forward(self, x: mr.Tensor) -> mr.Tensor:
            return F.relu(self.conv(x)) + x

    s = summary(nn.Sequential(Block(), Block()), (2, 5, 5))
    assert [(r.name, r.depth) for r in s.rows] == [("", 0), ("0", 1), ("0.conv", 2), ("1", 1), ("1.conv", 2)]
    assert str(s).splitlines()[5].startswith("    0.conv (Conv2d)")
