"""minires.optim.lr_scheduler against torch.optim.lr_scheduler: the same lrs, bit for bit, step for step.

Each case builds a scheduler (or several on one optimizer) over an SGD with two param groups of different
lrs, in both libraries, and compares ``get_last_lr()`` and the groups' lrs with ``==`` after construction
and after each of 30 steps (well past T_max, total_iters and the milestones).
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minires as mr
from minires.nn import Parameter

STEPS = 30


def make_optimizer(lib: Any, lrs: tuple[float, ...] = (0.1, 0.03)) -> Any:
    """An SGD over one parameter per lr, one group each; ``lib`` is torch or minires."""
    if lib is mr:
        groups = [{"params": [Parameter(mr.tensor(np.ones(2)))], "lr": lr} for lr in lrs]
        return mr.optim.SGD(groups, lr=lrs[0], momentum=0.9)
    groups = [{"params": [lib.nn.Parameter(lib.ones(2))], "lr": lr} for lr in lrs]
    return lib.optim.SGD(groups, lr=lrs[0], momentum=0.9)


# Each case: (optimizer, scheduler module) -> the list of schedulers to step (usually one).
CASES: dict[str, Callable[[Any, Any], list[Any]]] = {
    "StepLR": lambda opt, S: [S.StepLR(opt, step_size=7, gamma=0.5)],
    "StepLR-default-gamma": lambda opt, S: [S.StepLR(opt, step_size=3)],
    "MultiStepLR": lambda opt, S: [S.MultiStepLR(opt, milestones=[3, 8, 8, 20], gamma=0.3)],
    "CosineAnnealingLR": lambda opt, S: [S.CosineAnnealingLR(opt, T_max=10, eta_min=1e-3)],
    "CosineAnnealingLR-odd": lambda opt, S: [S.CosineAnnealingLR(opt, T_max=7)],
    "CosineAnnealingLR-T1": lambda opt, S: [S.CosineAnnealingLR(opt, T_max=1, eta_min=0.01)],
    "LinearLR-warmup": lambda opt, S: [S.LinearLR(opt, start_factor=0.25, total_iters=6)],
    "LinearLR-decay": lambda opt, S: [S.LinearLR(opt, start_factor=1.0, end_factor=0.1, total_iters=10)],
    "LinearLR-default": lambda opt, S: [S.LinearLR(opt)],
    "SequentialLR-warmup-cosine": lambda opt, S: [
        S.SequentialLR(
            opt,
            [
                S.LinearLR(opt, start_factor=0.1, total_iters=5),
                S.CosineAnnealingLR(opt, T_max=20, eta_min=1e-4),
            ],
            milestones=[5],
        )
    ],
    "SequentialLR-three": lambda opt, S: [
        S.SequentialLR(
            opt,
            [
                S.LinearLR(opt, start_factor=0.5, total_iters=4),
                S.StepLR(opt, step_size=3, gamma=0.5),
                S.CosineAnnealingLR(opt, T_max=6),
            ],
            milestones=[4, 12],
        )
    ],
    "SequentialLR-multistep-linear": lambda opt, S: [
        S.SequentialLR(
            opt,
            [S.MultiStepLR(opt, milestones=[2, 4]), S.LinearLR(opt, start_factor=0.3, total_iters=8)],
            milestones=[6],
        )
    ],
    "chained-StepLR-CosineAnnealingLR": lambda opt, S: [
        S.StepLR(opt, step_size=4, gamma=0.7),
        S.CosineAnnealingLR(opt, T_max=9),
    ],
}


def lr_trajectories(lib: Any, make: Callable[[Any, Any], list[Any]], steps: int = STEPS) -> list[list[float]]:
    """get_last_lr() of the last scheduler and the groups' lrs, after construction and after each step."""
    opt = make_optimizer(lib)
    schedulers = make(opt, lib.optim.lr_scheduler)
    out = [schedulers[-1].get_last_lr() + [g["lr"] for g in opt.param_groups]]
    for _ in range(steps):
        opt.step()  # no gradients: a no-op, but torch wants it before the scheduler's step
        for s in schedulers:
            s.step()
        out.append(schedulers[-1].get_last_lr() + [g["lr"] for g in opt.param_groups])
    return out


@pytest.mark.parametrize("case", list(CASES))
def test_lrs_equal_torch_bit_for_bit(torch: ModuleType, case: str) -> None:
    ours = lr_trajectories(mr, CASES[case])
    theirs = lr_trajectories(torch, CASES[case])
    for step, (a, b) in enumerate(zip(ours, theirs, strict=True)):
        assert a == b, f"{case}, step {step}: {a} != {b}"
    assert all(type(v) is float for v in ours[-1])


@settings(max_examples=15)
@given(
    t_max=st.integers(1, 12),
    eta_min=st.sampled_from([0.0, 1e-4, 0.02]),
    warmup=st.integers(1, 6),
    start_factor=st.floats(0.01, 1.0),
    milestone=st.integers(0, 10),
)
def test_random_warmup_cosine_equals_torch(
    torch: ModuleType, t_max: int, eta_min: float, warmup: int, start_factor: float, milestone: int
) -> None:
    def make(opt: Any, S: Any) -> list[Any]:
        warm = S.LinearLR(opt, start_factor=start_factor, total_iters=warmup)
        cosine = S.CosineAnnealingLR(opt, T_max=t_max, eta_min=eta_min)
        return [S.SequentialLR(opt, [warm, cosine], milestones=[milestone])]

    assert lr_trajectories(mr, make, steps=25) == lr_trajectories(torch, make, steps=25)


def test_initial_lr_and_base_lrs_as_torch() -> None:
    opt = make_optimizer(mr)
    scheduler = mr.optim.lr_scheduler.LinearLR(opt, start_factor=0.5, total_iters=4)
    assert [g["initial_lr"] for g in opt.param_groups] == [0.1, 0.03]
    assert scheduler.base_lrs == [0.1, 0.03]
    assert scheduler.get_last_lr() == [0.05, 0.015] and scheduler.last_epoch == 0
    with pytest.raises(KeyError, match=r"StepLR: param 'initial_lr' is not specified in param_groups\[0\]"):
        mr.optim.lr_scheduler.StepLR(make_optimizer(mr), step_size=2, last_epoch=3)


@pytest.mark.parametrize("case", list(CASES))
def test_state_dict_round_trip_through_mr_save(tmp_path: Any, case: str) -> None:
    """Stop after 12 steps, save optimizer and scheduler, rebuild both, load, go on: the same lrs as a run
    never stopped."""
    make = CASES[case]
    full = lr_trajectories(mr, make)
    opt = make_optimizer(mr)
    schedulers = make(opt, mr.optim.lr_scheduler)
    for _ in range(12):
        for s in schedulers:
            s.step()
    mr.save(
        {"optimizer": opt.state_dict(), "schedulers": [s.state_dict() for s in schedulers]}, tmp_path / "c"
    )
    ckpt = mr.load(tmp_path / "c")
    opt2 = make_optimizer(mr, lrs=(5.0, 6.0))  # other lrs: they must come from the checkpoint
    schedulers2 = make(opt2, mr.optim.lr_scheduler)
    opt2.load_state_dict(ckpt["optimizer"])
    for s, state in zip(schedulers2, ckpt["schedulers"], strict=True):
        s.load_state_dict(state)
    resumed = []
    for _ in range(12, STEPS):
        for s in schedulers2:
            s.step()
        resumed.append(schedulers2[-1].get_last_lr() + [g["lr"] for g in opt2.param_groups])
    assert resumed == full[13:]


def test_scheduler_state_dict_holds_plain_values() -> None:
    opt = make_optimizer(mr)
    scheduler = mr.optim.lr_scheduler.MultiStepLR(opt, milestones=[2, 2, 5])
    state = scheduler.state_dict()
    assert "optimizer" not in state
    assert state["milestones"] == {2: 2, 5: 1} and type(state["milestones"]) is dict
    assert state["last_epoch"] == 0 and state["base_lrs"] == [0.1, 0.03]


BAD = [
    (lambda opt, S: S.StepLR("not an optimizer", step_size=2), TypeError, "StepLR: str is not an Optimizer"),
    (lambda opt, S: S.StepLR(opt, step_size=0), ValueError, "StepLR: step_size must be a positive int.*=0"),
    (lambda opt, S: S.LinearLR(opt, start_factor=0.0), ValueError, r"LinearLR: start_factor=0\.0"),
    (lambda opt, S: S.LinearLR(opt, start_factor=1.5), ValueError, r"LinearLR: start_factor=1\.5"),
    (lambda opt, S: S.LinearLR(opt, end_factor=-0.1), ValueError, r"LinearLR: end_factor=-0\.1"),
    (
        lambda opt, S: S.CosineAnnealingLR(opt, T_max=0),
        ValueError,
        "CosineAnnealingLR: T_max must be positive",
    ),
    (lambda opt, S: S.SequentialLR(opt, [], milestones=[]), ValueError, "at least one scheduler"),
    (
        lambda opt, S: S.SequentialLR(opt, [S.StepLR(opt, 2), S.StepLR(opt, 3)], milestones=[]),
        ValueError,
        "SequentialLR expects one more scheduler than milestones.*2 schedulers and 0 milestones",
    ),
    (
        lambda opt, S: S.SequentialLR(opt, [S.StepLR(make_optimizer(mr), 2)], milestones=[]),
        ValueError,
        "same optimizer.*StepLR at index 0",
    ),
]


@pytest.mark.parametrize(("make", "error", "match"), BAD)
def test_bad_input_raises(make: Callable, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        make(make_optimizer(mr), mr.optim.lr_scheduler)
