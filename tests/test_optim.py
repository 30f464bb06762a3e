"""minires.optim (SGD, Adam, AdamW) and nn.utils.clip_grad_norm_ against torch, step for step.

Each parity test builds the same parameters in minires and torch, feeds both the same random gradients
for a number of steps (one parameter never has a gradient, one gets its first only at step 3, the groups
have different lrs) and compares every parameter after every step: float64 to 1e-12 relative, float32 to
about 1e-6 (torch's CPU kernels fuse multiply-adds, so the two differ by rounding, not by rule).
"""

from __future__ import annotations

import math
import tracemalloc
from collections.abc import Callable
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minires as mr
from minires import backend as backend_mod
from minires.nn import Parameter

# dtype -> (rtol, atol) for minires against torch
TOLERANCE = {"float64": (1e-12, 1e-13), "float32": (2e-6, 2e-6)}

# name -> (minires class, option sets); the torch twin is torch.optim.<name>
OPTION_SETS: dict[str, list[dict[str, Any]]] = {
    "SGD": [
        {},
        {"momentum": 0.9},
        {"momentum": 0.9, "dampening": 0.3},
        {"momentum": 0.9, "nesterov": True},
        {"weight_decay": 0.1},
        {"maximize": True},
        {"momentum": 0.9, "weight_decay": 0.1, "maximize": True},
        {"momentum": 0.5, "dampening": 0.5, "weight_decay": 0.05},
        {"momentum": 0.8, "nesterov": True, "weight_decay": 0.2, "maximize": True},
    ],
    "Adam": [
        {},
        {"amsgrad": True},
        {"weight_decay": 0.1},
        {"maximize": True},
        {"betas": (0.3, 0.5), "eps": 1e-3},  # 1 - beta1 >= 0.5: torch's lerp takes its other branch
        {"weight_decay": 0.1, "amsgrad": True, "maximize": True},
        {"weight_decay": 0.1, "decoupled_weight_decay": True},
        {"betas": (0.9, 0.0)},  # v_t = g_t^2: the step divides m_t by |g_t|
    ],
    "AdamW": [
        {},
        {"weight_decay": 0.1, "amsgrad": True},
        {"maximize": True, "betas": (0.2, 0.9)},
        {"weight_decay": 0.0},
    ],
}
CASES = [(name, opts) for name, sets in OPTION_SETS.items() for opts in sets]
CASE_IDS = [f"{name}-{'-'.join(f'{k}={v}' for k, v in opts.items()) or 'defaults'}" for name, opts in CASES]

SHAPES = [(3, 4), (5,), (2, 3, 2), (4,)]  # p0, p1 (first grad at step 3), p2 (group 1), p3 (never a grad)


# ----- helpers ------------------------------------------------------------------------------------------
def mr_class(name: str) -> type:
    return getattr(mr.optim, name)


def to_np(a: Any) -> np.ndarray:
    return backend_mod.to_numpy(a.data if isinstance(a, mr.Tensor) else a)


def make_params(
    torch: ModuleType | None, shapes: list[tuple[int, ...]], dtype: str, device: str, seed: int
) -> tuple[list[Parameter], list[Any]]:
    """The same random values as minires Parameters (on ``device``) and torch Parameters (none without
    ``torch``)."""
    rng = np.random.default_rng(seed)
    values = [rng.standard_normal(s).astype(dtype) for s in shapes]
    ours = [Parameter(mr.tensor(v, device=device)) for v in values]
    theirs = [] if torch is None else [torch.nn.Parameter(torch.tensor(v)) for v in values]
    return ours, theirs


def grouped(params: list[Any], lr: float) -> list[dict[str, Any]]:
    """Two groups: [p0, p1, p3] at the optimizer's lr, [p2] at lr / 7."""
    return [{"params": [params[0], params[1], params[3]]}, {"params": [params[2]], "lr": lr / 7}]


def set_grads(
    ours: list[Parameter], theirs: list[Any], rng: np.random.Generator, step: int, device: str
) -> None:
    """Random gradients; p3 never gets one, p1 only from step 3 on."""
    for i, (p, q) in enumerate(zip(ours, theirs, strict=True)):
        if i == 3 or (i == 1 and step < 3):
            p.grad, q.grad = None, None
            continue
        g = rng.standard_normal(p.shape).astype(p.dtype)
        p.grad = mr.tensor(g, device=device)
        q.grad = q.new_tensor(g)


def assert_params_close(ours: list[Parameter], theirs: list[Any], dtype: str, where: str) -> None:
    rtol, atol = TOLERANCE[dtype]
    for i, (p, q) in enumerate(zip(ours, theirs, strict=True)):
        assert p.dtype == np.dtype(dtype), f"{where}: p{i} is {p.dtype}, expected {dtype}"
        np.testing.assert_allclose(
            to_np(p), q.detach().numpy(), rtol=rtol, atol=atol, err_msg=f"{where}: p{i}"
        )


def run_parity(
    torch: ModuleType, name: str, opts: dict[str, Any], dtype: str, device: str, shapes: list, lr: float
) -> tuple[Any, Any]:
    ours, theirs = make_params(torch, shapes, dtype, device, seed=0)
    opt = mr_class(name)(grouped(ours, lr), lr=lr, **opts)
    topt = getattr(torch.optim, name)(grouped(theirs, lr), lr=lr, **opts)
    rng = np.random.default_rng(1)
    for step in range(10):
        set_grads(ours, theirs, rng, step, device)
        opt.step()
        topt.step()
        assert_params_close(ours, theirs, dtype, f"{name}{opts} step {step}")
    # the state too: every buffer, the step counts, and no state for the parameter that never had a grad
    ours_sd, theirs_sd = opt.state_dict(), topt.state_dict()
    assert set(ours_sd["state"]) == set(theirs_sd["state"])
    rtol, atol = TOLERANCE[dtype]
    for index, state in theirs_sd["state"].items():
        assert set(ours_sd["state"][index]) == set(state)
        for key, value in state.items():
            mine = ours_sd["state"][index][key]
            if key == "step":
                assert mine == float(value)
            else:
                assert mine.dtype == np.dtype(dtype)
                np.testing.assert_allclose(to_np(mine), value.numpy(), rtol=rtol, atol=atol)
    return opt, topt


# ----- parity with torch.optim ----------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize(("name", "opts"), CASES, ids=CASE_IDS)
def test_steps_equal_torch(torch: ModuleType, backend: str, name: str, opts: dict, dtype: str) -> None:
    run_parity(torch, name, opts, dtype, backend, SHAPES, lr=0.05)


@settings(max_examples=12)
@given(
    shapes=st.lists(st.lists(st.integers(1, 4), min_size=0, max_size=3).map(tuple), min_size=4, max_size=4),
    lr=st.floats(1e-4, 1.0),
    momentum=st.sampled_from([0.0, 0.5, 0.99]),
    dampening=st.floats(0.0, 1.0),
    weight_decay=st.sampled_from([0.0, 1e-3, 0.3]),
    nesterov=st.booleans(),
    maximize=st.booleans(),
    dtype=st.sampled_from(["float64", "float32"]),
)
def test_sgd_random_equals_torch(
    torch: ModuleType,
    shapes: list,
    lr: float,
    momentum: float,
    dampening: float,
    weight_decay: float,
    nesterov: bool,
    maximize: bool,
    dtype: str,
) -> None:
    if nesterov:  # Nesterov needs momentum and no dampening
        momentum, dampening = max(momentum, 0.5), 0.0
    opts = {
        "momentum": momentum,
        "dampening": dampening,
        "weight_decay": weight_decay,
        "nesterov": nesterov,
        "maximize": maximize,
    }
    run_parity(torch, "SGD", opts, dtype, "cpu", shapes, lr)


@settings(max_examples=12)
@given(
    shapes=st.lists(st.lists(st.integers(1, 4), min_size=0, max_size=3).map(tuple), min_size=4, max_size=4),
    name=st.sampled_from(["Adam", "AdamW"]),
    lr=st.floats(1e-4, 0.5),
    beta1=st.floats(0.0, 0.99),
    beta2=st.floats(0.5, 0.9999),  # beta2 = 0: a case of OPTION_SETS (see the docstring)
    eps=st.sampled_from([1e-8, 1e-6, 0.1]),
    weight_decay=st.sampled_from([0.0, 1e-2, 0.5]),
    amsgrad=st.booleans(),
    maximize=st.booleans(),
    dtype=st.sampled_from(["float64", "float32"]),
)
def test_adam_random_equals_torch(
    torch: ModuleType,
    shapes: list,
    name: str,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
    amsgrad: bool,
    maximize: bool,
    dtype: str,
) -> None:
    """Random Adam and AdamW settings against torch. beta2 from 0.5: with beta2 near 0 the step divides m_t by
    about |g_t|, and with L2 decay g_t = +-grad + lambda theta can cancel to a few ulps of its terms; torch
    forms it with one fused multiply-add (its CPU add with alpha: checked bit for bit), minires (NumPy) with a
    multiply and an add, and the extra rounding, so amplified, moved a float32 parameter by 46 ulps in 6 steps
    (lr 0.5, beta2 0, lambda 0.01; the float64 result lies 16 times closer to torch's). beta2 = 0 without
    decay is a case of OPTION_SETS."""
    opts = {
        "betas": (beta1, beta2),
        "eps": eps,
        "weight_decay": weight_decay,
        "amsgrad": amsgrad,
        "maximize": maximize,
    }
    run_parity(torch, name, opts, dtype, "cpu", shapes, lr)


def test_first_momentum_step_uses_the_raw_gradient() -> None:
    """b_1 = g_1 (not (1 - dampening) g_1), then b_2 = mu b_1 + (1 - dampening) g_2: by hand."""
    p = Parameter(mr.tensor(np.zeros(3)))
    opt = mr.optim.SGD([p], lr=1.0, momentum=0.5, dampening=0.5)
    p.grad = mr.tensor(np.array([1.0, 2.0, 4.0]))
    opt.step()
    np.testing.assert_array_equal(p.data, [-1.0, -2.0, -4.0])
    opt.step()  # b_2 = 0.5 b_1 + 0.5 g = g
    np.testing.assert_array_equal(p.data, [-2.0, -4.0, -8.0])


def test_adam_first_step_moves_each_weight_by_lr() -> None:
    """With bias correction, m_hat_1 = g and v_hat_1 = g^2, so the first step is -lr * sign(g) (eps aside)."""
    p = Parameter(mr.tensor(np.zeros(4)))
    opt = mr.optim.Adam([p], lr=0.01, eps=0.0)
    p.grad = mr.tensor(np.array([3.0, -0.5, 1e-3, -200.0]))
    opt.step()
    np.testing.assert_allclose(p.data, [-0.01, 0.01, -0.01, 0.01], rtol=1e-15)


def test_adamw_decay_is_decoupled() -> None:
    """A zero gradient: Adam's L2 decay goes through the moments (a step of lr); AdamW's shrinks by lr*wd."""
    for cls, expected in [(mr.optim.AdamW, 4.0 * (1 - 0.1 * 0.5)), (mr.optim.Adam, 4.0 - 0.1)]:
        p = Parameter(mr.tensor(np.array([4.0])))
        opt = cls([p], lr=0.1, weight_decay=0.5)
        p.grad = mr.tensor(np.array([0.0]))
        opt.step()
        np.testing.assert_allclose(p.data, [expected], rtol=1e-8, err_msg=cls.__name__)


# ----- in place, float32, no per-step allocations ------------------------------------------------------
@pytest.mark.parametrize(
    "make",
    [
        lambda ps: mr.optim.SGD(ps, lr=0.1, momentum=0.9, dampening=0.1, weight_decay=0.1, maximize=True),
        lambda ps: mr.optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.1),
        lambda ps: mr.optim.Adam(ps, weight_decay=0.1, amsgrad=True, maximize=True),
        lambda ps: mr.optim.AdamW(ps, amsgrad=True),
    ],
    ids=["sgd-dampening", "sgd-nesterov", "adam-amsgrad-l2", "adamw-amsgrad"],
)
def test_updates_in_place_in_float32_without_allocating(make: Callable) -> None:
    rng = np.random.default_rng(0)
    big = Parameter(mr.tensor(rng.standard_normal((500, 400)).astype(np.float32)))  # 800 kB
    small = Parameter(mr.tensor(rng.standard_normal(7).astype(np.float32)))
    opt = make([big, small])
    arrays = (big.data, small.data)
    for p in (big, small):
        p.grad = mr.tensor(rng.standard_normal(p.shape).astype(np.float32))
    grad_before = big.grad.data.copy()
    opt.step()  # allocates the state and the scratch buffers
    tracemalloc.start()
    try:
        for _ in range(3):
            opt.step()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 100_000, f"{peak} bytes allocated during steps of an 800 kB parameter"
    assert (big.data, small.data) == arrays, "the parameter arrays must be updated in place"
    np.testing.assert_array_equal(big.grad.data, grad_before)  # .grad is read, never written
    for p in (big, small):
        assert p.dtype == np.float32
        assert all(v.dtype == np.float32 for v in opt.state[p].values() if isinstance(v, np.ndarray))


def test_grad_none_parameters_are_left_alone() -> None:
    p = Parameter(mr.tensor(np.ones(3)))
    before = p.data.copy()
    for opt in (mr.optim.SGD([p], lr=0.1, momentum=0.9, weight_decay=0.1), mr.optim.AdamW([p])):
        opt.step()
        np.testing.assert_array_equal(p.data, before)
        assert len(opt.state) == 0


def test_step_calls_the_closure_with_grad_enabled() -> None:
    p = Parameter(mr.tensor(np.array([3.0])))
    opt = mr.optim.SGD([p], lr=0.25)

    def closure() -> mr.Tensor:
        assert mr.is_grad_enabled()
        opt.zero_grad()
        loss = (p * p).sum()
        loss.backward()
        return loss

    with mr.no_grad():
        loss = opt.step(closure)
    assert float(loss) == 9.0
    np.testing.assert_array_equal(p.data, [1.5])  # 3 - 0.25 * 6


def test_zero_grad() -> None:
    a, b = Parameter(mr.tensor(np.ones(2))), Parameter(mr.tensor(np.ones(3)))
    opt = mr.optim.SGD([a, b], lr=0.1)
    a.grad = mr.tensor(np.full(2, 5.0))
    grad_array = a.grad.data
    opt.zero_grad(set_to_none=False)
    assert a.grad.data is grad_array and not grad_array.any() and b.grad is None
    opt.zero_grad()
    assert a.grad is None and b.grad is None


def test_training_a_linear_model_lowers_the_loss() -> None:
    """Linear regression with a little noise: Adam brings the mean squared error down 50-fold in 100 steps."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 5)).astype(np.float32)
    y = x @ rng.standard_normal((5, 2)).astype(np.float32) + 0.01 * rng.standard_normal((64, 2)).astype(
        np.float32
    )
    mr.manual_seed(0)
    model = mr.nn.Linear(5, 2)
    opt = mr.optim.Adam(model.parameters(), lr=0.05)
    losses = []
    for _ in range(100):
        opt.zero_grad()
        loss = ((model(mr.tensor(x)) - mr.tensor(y)) ** 2).mean()
        loss.backward()
        mr.nn.utils.clip_grad_norm_(model.parameters(), max_norm=10.0)
        opt.step()
        losses.append(float(loss))
    assert losses[-1] < losses[0] / 50, losses[::10]


# ----- param groups -------------------------------------------------------------------------------------
def test_groups_take_the_defaults_and_their_own_values() -> None:
    a, b = Parameter(mr.tensor(np.ones(2))), Parameter(mr.tensor(np.ones(2)))
    opt = mr.optim.SGD([{"params": [a]}, {"params": b, "lr": 0.5, "momentum": 0.1}], lr=0.1, momentum=0.9)
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.5]
    assert [g["momentum"] for g in opt.param_groups] == [0.9, 0.1]
    assert opt.param_groups[1]["params"] == [b] and opt.param_groups[1]["nesterov"] is False
    c = Parameter(mr.tensor(np.ones(2)))
    opt.add_param_group({"params": [c], "weight_decay": 0.3})
    assert opt.param_groups[2]["lr"] == 0.1 and opt.param_groups[2]["weight_decay"] == 0.3


def test_named_parameters_become_param_names() -> None:
    model = mr.nn.Linear(3, 2)
    opt = mr.optim.SGD(model.named_parameters(), lr=0.1)
    assert opt.param_groups[0]["param_names"] == ["weight", "bias"]
    assert opt.state_dict()["param_groups"][0]["param_names"] == ["weight", "bias"]


def _param() -> Parameter:
    return Parameter(mr.tensor(np.ones(2)))


def _same_param_in_two_groups() -> None:
    p = _param()
    mr.optim.SGD([{"params": [p]}, {"params": [p]}], lr=0.1)


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda: mr.optim.SGD([], lr=0.1), ValueError, "SGD: optimizer got an empty parameter list"),
        (lambda: mr.optim.Adam(_param()), TypeError, "Adam: params should be an iterable.*single Tensor"),
        (
            lambda: mr.optim.SGD([np.ones(2)], lr=0.1),
            TypeError,
            "SGD: optimizer can only optimize Tensors.*ndarray",
        ),
        (lambda: mr.optim.SGD([{"params": {_param()}}], lr=0.1), TypeError, "ordered collections"),
        (lambda: mr.optim.SGD([_param() * 2], lr=0.1), ValueError, "SGD: can't optimize a non-leaf Tensor"),
        (_same_param_in_two_groups, ValueError, "more than one parameter group"),
        (
            lambda: mr.optim.SGD([{"params": [_param()]}, "x"], lr=0.1),
            TypeError,
            "param_group must be a dict",
        ),
    ],
    ids=["empty", "single-tensor", "ndarray", "set", "non-leaf", "param-in-two-groups", "group-not-dict"],
)
def test_bad_params_raise(make: Callable, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        make()


def test_a_duplicate_in_one_group_warns_as_torch(torch: ModuleType) -> None:
    q = _param()
    with pytest.warns(
        UserWarning, match="SGD: optimizer contains a parameter group with duplicate parameters"
    ):
        mr.optim.SGD([q, q], lr=0.1)
    t = torch.nn.Parameter(torch.ones(2))
    with pytest.warns(UserWarning, match="duplicate parameters"):
        torch.optim.SGD([t, t], lr=0.1)


BAD_HYPERPARAMETERS = [
    ("SGD", {"lr": -0.1}, r"SGD: invalid learning rate lr=-0\.1"),
    ("SGD", {"lr": 0.1, "momentum": -0.5}, r"SGD: invalid momentum=-0\.5"),
    ("SGD", {"lr": 0.1, "weight_decay": -1.0}, r"SGD: invalid weight_decay=-1\.0"),
    ("SGD", {"lr": 0.1, "nesterov": True}, r"SGD: Nesterov momentum requires a momentum.*momentum=0"),
    ("SGD", {"lr": 0.1, "momentum": 0.9, "dampening": 0.1, "nesterov": True}, r"dampening=0\.1"),
    ("Adam", {"lr": -1e-3}, r"Adam: invalid learning rate lr=-0\.001"),
    ("Adam", {"betas": (1.0, 0.999)}, r"Adam: invalid beta parameter at index 0: betas=\(1\.0, 0\.999\)"),
    ("Adam", {"betas": (-0.1, 0.999)}, r"Adam: invalid beta parameter at index 0"),
    ("Adam", {"betas": (0.9, 1.0)}, r"Adam: invalid beta parameter at index 1"),
    ("Adam", {"eps": -1e-8}, r"Adam: invalid eps=-1e-08"),
    ("Adam", {"weight_decay": -0.1}, r"Adam: invalid weight_decay=-0\.1"),
    ("AdamW", {"lr": float("nan")}, r"AdamW: invalid learning rate lr=nan"),
    ("AdamW", {"betas": (0.9, 1.5)}, r"AdamW: invalid beta parameter at index 1"),
]


@pytest.mark.parametrize(("name", "kwargs", "match"), BAD_HYPERPARAMETERS)
def test_bad_hyperparameters_raise_as_torch(torch: ModuleType, name: str, kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        mr_class(name)([_param()], **kwargs)
    if not any(isinstance(v, float) and math.isnan(v) for v in kwargs.values()):  # torch accepts lr=nan
        with pytest.raises(ValueError):
            getattr(torch.optim, name)([torch.nn.Parameter(torch.ones(2))], **kwargs)


# ----- state_dict -------------------------------------------------------------------------------------------
RESUME_CASES = [
    ("SGD", {"lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01}),
    ("SGD", {"lr": 0.1, "momentum": 0.5, "dampening": 0.2, "maximize": True}),
    ("Adam", {"lr": 0.01, "amsgrad": True, "weight_decay": 0.01}),
    ("AdamW", {"lr": 0.01, "betas": (0.8, 0.99)}),
]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize(("name", "kwargs"), RESUME_CASES, ids=[c[0] for c in RESUME_CASES])
def test_resume_from_a_saved_state_dict_is_bit_for_bit(
    tmp_path: Any, backend: str, name: str, kwargs: dict, dtype: str
) -> None:
    """Save mid-run with mr.save, load into a fresh optimizer (built with another lr), continue: the same
    trajectory, bit for bit, as a run never interrupted."""
    ours, _ = make_params(None, SHAPES, dtype, backend, seed=0)
    opt = mr_class(name)(grouped(ours, kwargs["lr"]), **kwargs)
    resumed_params: list[Parameter] = []
    resumed = None
    rng = np.random.default_rng(1)
    for step in range(10):
        grads = [
            None if i == 3 or (i == 1 and step < 3) else rng.standard_normal(s).astype(dtype)
            for i, s in enumerate(SHAPES)
        ]
        runs = [(ours, opt)] + ([(resumed_params, resumed)] if resumed is not None else [])
        for params, optimizer in runs:
            for param, g in zip(params, grads, strict=True):
                param.grad = None if g is None else mr.tensor(g, device=backend)
            optimizer.step()
        if step == 4:  # checkpoint: the parameters and the optimizer
            mr.save(
                {"params": [to_np(q) for q in ours], "optimizer": opt.state_dict()}, tmp_path / "ckpt.npz"
            )
            ckpt = mr.load(tmp_path / "ckpt.npz")
            resumed_params = [Parameter(mr.tensor(v, device=backend)) for v in ckpt["params"]]
            resumed = mr_class(name)(grouped(resumed_params, 123.0), **{**kwargs, "lr": 123.0})
            resumed.load_state_dict(ckpt["optimizer"])
            assert [g["lr"] for g in resumed.param_groups] == [g["lr"] for g in opt.param_groups]
    for a, b in zip(ours, resumed_params, strict=True):
        assert to_np(a).tobytes() == to_np(b).tobytes()
    assert resumed.param_groups[0]["params"] == resumed_params[:2] + resumed_params[3:]


def test_state_dict_layout_is_torchs(torch: ModuleType) -> None:
    ours, theirs = run_parity(torch, "Adam", {"amsgrad": True}, "float64", "cpu", SHAPES, lr=0.01)
    mine, ref = ours.state_dict(), theirs.state_dict()
    assert list(mine) == ["state", "param_groups"]
    assert (
        [g["params"] for g in mine["param_groups"]]
        == [g["params"] for g in ref["param_groups"]]
        == [[0, 1, 2], [3]]
    )
    for group, ref_group in zip(mine["param_groups"], ref["param_groups"], strict=True):
        assert set(group) <= set(ref_group)  # torch has foreach, fused, capturable, differentiable more
        assert all(group[k] == ref_group[k] for k in group)
    assert sorted(mine["state"]) == [0, 1, 3]  # p3 (index 2) never had a gradient
    for state in mine["state"].values():
        assert type(state["step"]) is float
        assert all(type(v) is np.ndarray for k, v in state.items() if k != "step")


def _torch_state_dict_as_numpy(sd: Any) -> Any:
    if isinstance(sd, dict):
        return {k: _torch_state_dict_as_numpy(v) for k, v in sd.items()}
    if isinstance(sd, list):
        return [_torch_state_dict_as_numpy(v) for v in sd]
    return sd.numpy() if hasattr(sd, "numpy") else sd


@pytest.mark.parametrize("via", ["numpy", "mr.save", "str-keys", "torch-tensors"])
@pytest.mark.parametrize(
    ("name", "opts"), [("SGD", {"momentum": 0.9}), ("Adam", {"amsgrad": True}), ("AdamW", {})]
)
def test_load_a_torch_state_dict_and_continue_as_torch(
    torch: ModuleType, tmp_path: Any, name: str, opts: dict, via: str
) -> None:
    dtype = "float64"
    ours, theirs = make_params(torch, SHAPES, dtype, "cpu", seed=0)
    topt = getattr(torch.optim, name)(grouped(theirs, 0.05), lr=0.05, **opts)
    rng = np.random.default_rng(1)
    for step in range(5):
        set_grads(ours, theirs, rng, step, "cpu")
        topt.step()
    if via == "mr.save":  # mr.save takes torch tensors and gives NumPy arrays back
        mr.save(topt.state_dict(), tmp_path / "torch_opt.npz")
        sd = mr.load(tmp_path / "torch_opt.npz")
    elif via == "torch-tensors":  # torch's own state dict, its tensors as they are (copied: torch steps on)
        sd = {
            "state": {k: {n: v.clone() for n, v in s.items()} for k, s in topt.state_dict()["state"].items()}
        }
        sd["param_groups"] = topt.state_dict()["param_groups"]
    else:
        sd = _torch_state_dict_as_numpy(topt.state_dict())
        if via == "str-keys":  # as a JSON round trip would leave it
            sd["state"] = {str(k): v for k, v in sd["state"].items()}
            for group in sd["param_groups"]:
                group["params"] = [str(i) for i in group["params"]]
    for p, q in zip(ours, theirs, strict=True):
        p.data[...] = q.detach().numpy()
    opt = mr_class(name)(grouped(ours, 1.0), lr=1.0)
    opt.load_state_dict(sd)
    assert [g["lr"] for g in opt.param_groups] == [0.05, 0.05 / 7]
    for step in range(5, 10):
        set_grads(ours, theirs, rng, step, "cpu")
        opt.step()
        topt.step()
        assert_params_close(ours, theirs, dtype, f"{name} via {via}, step {step}")


def test_load_casts_the_state_to_each_parameters_dtype(backend: str) -> None:
    ours64, _ = make_params(None, SHAPES, "float64", "cpu", seed=0)
    opt64 = mr.optim.Adam(grouped(ours64, 0.1), lr=0.1)
    rng = np.random.default_rng(1)
    for _ in range(4):
        for i, p in enumerate(ours64):
            p.grad = None if i == 3 else mr.tensor(rng.standard_normal(p.shape))
        opt64.step()
    sd = opt64.state_dict()
    ours32, _ = make_params(None, SHAPES, "float32", backend, seed=0)
    opt32 = mr.optim.Adam(grouped(ours32, 0.1), lr=0.1)
    opt32.load_state_dict(sd)
    for index, p in [(0, ours32[0]), (1, ours32[1]), (3, ours32[2])]:  # state_dict numbers in group order
        state = opt32.state[p]
        assert state["step"] == 4.0
        for key in ("exp_avg", "exp_avg_sq"):
            assert state[key].dtype == np.float32
            assert backend_mod.device_of(state[key]) == backend
        np.testing.assert_allclose(to_np(state["exp_avg"]), sd["state"][index]["exp_avg"], rtol=1e-6)
    sd["state"][0]["exp_avg"][...] = 7.0  # a copy was loaded, not the caller's array
    assert not (to_np(opt32.state[ours32[0]]["exp_avg"]) == 7.0).any()


def test_load_rejects_mismatched_groups() -> None:
    a, b, c = _param(), _param(), _param()
    sd = mr.optim.SGD([{"params": [a, b]}, {"params": [c]}], lr=0.1).state_dict()
    with pytest.raises(
        ValueError,
        match=r"SGD.load_state_dict: loaded state dict has 2 parameter groups, but the optimizer has 1",
    ):
        mr.optim.SGD([a, b, c], lr=0.1).load_state_dict(sd)
    with pytest.raises(
        ValueError, match=r"SGD.load_state_dict: .*group \(0\) of 2 parameters .*\(1 parameters\)"
    ):
        mr.optim.SGD([{"params": [a]}, {"params": [b, c]}], lr=0.1).load_state_dict(sd)


# ----- clip_grad_norm_ --------------------------------------------------------------------------------------
@pytest.mark.parametrize("norm_type", [2.0, 1.0, math.inf, 3.0])
@pytest.mark.parametrize("max_norm", [0.5, 1e3])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_clip_grad_norm_equals_torch(
    torch: ModuleType, backend: str, norm_type: float, max_norm: float, dtype: str
) -> None:
    ours, theirs = make_params(torch, SHAPES, dtype, backend, seed=0)
    set_grads(ours, theirs, np.random.default_rng(2), step=5, device=backend)
    foreach = {0.5: None, 1e3: False}[max_norm]  # torch's keyword, accepted (its kernels' choice)
    total = mr.nn.utils.clip_grad_norm_(ours, max_norm, norm_type=norm_type, foreach=foreach)
    ref = torch.nn.utils.clip_grad_norm_(theirs, max_norm, norm_type=norm_type, foreach=foreach)
    rtol = 1e-12 if dtype == "float64" else 1e-6
    assert isinstance(total, mr.Tensor) and total.shape == () and total.dtype == np.dtype(dtype)
    np.testing.assert_allclose(to_np(total), ref.numpy(), rtol=rtol)
    for p, q in zip(ours, theirs, strict=True):
        assert (p.grad is None) == (q.grad is None)
        if p.grad is not None:
            assert p.grad.dtype == np.dtype(dtype)
            np.testing.assert_allclose(to_np(p.grad), q.grad.numpy(), rtol=rtol, atol=rtol)
    if max_norm < 1:  # it did clip: the new norm is max_norm
        new = mr.nn.utils.clip_grad_norm_(ours, 1e9, norm_type=norm_type)
        np.testing.assert_allclose(to_np(new), max_norm, rtol=1e-5)


def test_clip_grad_norm_nonfinite_and_edge_cases(torch: ModuleType) -> None:
    p = Parameter(mr.tensor(np.ones(3)))
    p.grad = mr.tensor(np.array([1.0, np.inf, 2.0]))
    with pytest.raises(RuntimeError, match="clip_grad_norm_: the total norm of order 2.0 .* non-finite"):
        mr.nn.utils.clip_grad_norm_(p, 1.0, error_if_nonfinite=True)
    np.testing.assert_array_equal(p.grad.data, [1.0, np.inf, 2.0])  # untouched
    q = torch.nn.Parameter(torch.ones(3, dtype=torch.float64))
    q.grad = torch.tensor([1.0, math.inf, 2.0], dtype=torch.float64)
    ref = torch.nn.utils.clip_grad_norm_([q], 1.0)
    total = mr.nn.utils.clip_grad_norm_(p, 1.0)  # inf * 0: nan, silently, as torch
    np.testing.assert_array_equal(to_np(total), ref.numpy())
    np.testing.assert_array_equal(p.grad.data, q.grad.numpy())  # [0, nan, 0] in both
    no_grad = Parameter(mr.tensor(np.ones(2)))
    empty = mr.nn.utils.clip_grad_norm_([no_grad], 1.0)
    assert float(empty) == 0.0 and empty.dtype == np.float32
    with pytest.warns(UserWarning, match="empty generator"):
        mr.nn.utils.clip_grad_norm_((x for x in []), 1.0)


@pytest.mark.parametrize(("name", "opts"), CASES, ids=CASE_IDS)
def test_pieces_on_two_threads_give_the_bits_of_whole_arrays(
    name: str, opts: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every rule is elementwise, so an update shared out among the threads in pieces (``_in_pieces``: here
    of 64 bytes, on two threads) gives the same bits as whole parameters on one thread; a parameter that
    is not contiguous (a transposed view) is updated whole."""
    from minires import threads

    def run(piece_bytes: int, n_threads: int) -> list[np.ndarray]:
        rng = np.random.default_rng(11)
        shapes = [(37, 23), (5,), (16, 9)]
        params = [Parameter(mr.tensor(rng.standard_normal(s).astype(np.float32))) for s in shapes]
        params[2].data = np.ascontiguousarray(params[2].data.T).T  # stored transposed
        opt = getattr(mr.optim, name)(params, lr=0.05, **opts)
        monkeypatch.setattr(threads, "BATCH_CHUNK_BYTES", piece_bytes)
        mr.set_num_threads(n_threads)
        for _ in range(4):
            for p in params:
                p.grad = mr.tensor(rng.standard_normal(p.shape).astype(np.float32))
            opt.step()
        return [p.data.copy() for p in params]

    before = mr.get_num_threads()
    try:
        whole, pieces = run(1 << 30, 1), run(64, 2)
    finally:
        mr.set_num_threads(before)
    for a, b in zip(pieces, whole, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    ("name", "opts"),
    [
        ("SGD", {"momentum": 0.9}),
        ("SGD", {"momentum": 0.9, "nesterov": True}),
        ("Adam", {"weight_decay": 0.1}),
    ]
    + [("AdamW", {"amsgrad": True})],
)
def test_a_duplicated_parameter_is_updated_twice_in_turn_as_torch(
    torch: ModuleType, name: str, opts: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A parameter listed twice (torch warns, then updates it twice, one update after the other): its two
    updates never run at once, though each is shared out among the threads in pieces (here of 4 KiB)."""
    from minires import threads

    rng = np.random.default_rng(3)
    p0 = rng.standard_normal((64, 100))
    monkeypatch.setattr(threads, "BATCH_CHUNK_BYTES", 4096)
    before = mr.get_num_threads()
    mr.set_num_threads(2)
    try:
        p, tp = Parameter(mr.tensor(p0.copy())), torch.nn.Parameter(torch.tensor(p0.copy()))
        with pytest.warns(UserWarning, match="duplicate parameters"):
            opt = getattr(mr.optim, name)([p, p], lr=0.1, **opts)
        with pytest.warns(UserWarning, match="duplicate parameters"):
            topt = getattr(torch.optim, name)([tp, tp], lr=0.1, **opts)
        for _ in range(3):
            g = rng.standard_normal(p0.shape)
            p.grad, tp.grad = mr.tensor(g), torch.tensor(g)
            opt.step()
            topt.step()
            np.testing.assert_allclose(p.numpy(), tp.detach().numpy(), rtol=1e-12, atol=1e-12)
    finally:
        mr.set_num_threads(before)
