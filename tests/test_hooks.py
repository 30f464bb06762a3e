"""Module hooks against PyTorch's: forward and forward-pre hooks (replacing inputs and outputs, order,
removal), and full backward hooks, whose grad_input and grad_output must equal torch's call for call, on
Conv2d, BatchNorm2d, ReLU, Linear and a Sequential with a hook on every module, including the first layer
whose input needs no gradient; then the per-layer gradient-norm printout that ResNet tutorials do.
"""

from __future__ import annotations

import warnings
from types import ModuleType
from typing import Any

import numpy as np
import pytest

import minires as mr
import minires.nn as nn


def _np(g: Any) -> np.ndarray | None:
    if g is None:
        return None
    return g.detach().numpy() if hasattr(g, "detach") else g.numpy()


def _record(store: list, name: str) -> Any:
    def hook(module: Any, grad_input: tuple, grad_output: tuple) -> None:
        assert isinstance(grad_input, tuple) and isinstance(grad_output, tuple)
        store.append((name, [_np(g) for g in grad_input], [_np(g) for g in grad_output]))

    return hook


def assert_same_calls(ours: list, theirs: list, rtol: float = 1e-10) -> None:
    """The same hooks were called in the same order with the same (grad_input, grad_output)."""
    assert [c[0] for c in ours] == [c[0] for c in theirs]
    for (name, gi, go), (_, tgi, tgo) in zip(ours, theirs, strict=True):
        for what, a_list, b_list in (("grad_input", gi, tgi), ("grad_output", go, tgo)):
            assert len(a_list) == len(b_list), (
                f"{name}: {what} has {len(a_list)} entries, torch's {len(b_list)}"
            )
            for i, (a, b) in enumerate(zip(a_list, b_list, strict=True)):
                assert (a is None) == (b is None), (
                    f"{name}: {what}[{i}] is {a is None and 'None'}, torch's {b}"
                )
                if a is not None:
                    np.testing.assert_allclose(a, b, rtol=rtol, atol=1e-12, err_msg=f"{name}: {what}[{i}]")


def twin(torch: ModuleType, make: Any) -> tuple[Any, Any]:
    t = make(torch.nn).double()
    m = make(nn).double()
    m.load_state_dict(t.state_dict())
    return m, t


def run_backward(model: Any, x: np.ndarray, lib: Any, requires_grad: bool, seed: int = 0) -> Any:
    xx = lib.tensor(x, requires_grad=requires_grad)
    y = model(xx)
    g = np.random.default_rng(seed).standard_normal(tuple(y.shape))
    with warnings.catch_warnings():  # torch warns when no input requires grad; that is the case tested
        warnings.simplefilter("ignore")
        y.backward(lib.tensor(g))
    return xx


LAYERS = {
    "conv": (lambda nn_: nn_.Conv2d(3, 4, 3, stride=2, padding=1), (2, 3, 7, 7)),
    "batchnorm_train": (lambda nn_: nn_.BatchNorm2d(3), (4, 3, 5, 5)),
    "relu": (lambda nn_: nn_.ReLU(), (2, 3, 4)),
    "linear": (lambda nn_: nn_.Linear(5, 3), (4, 5)),
    "sequential": (
        lambda nn_: nn_.Sequential(
            nn_.Conv2d(3, 4, 3, padding=1, bias=False),
            nn_.BatchNorm2d(4),
            nn_.ReLU(),
            nn_.MaxPool2d(2),
            nn_.Sequential(nn_.Conv2d(4, 4, 1), nn_.ReLU()),
            nn_.AdaptiveAvgPool2d(1),
            nn_.Flatten(),
            nn_.Linear(4, 3),
        ),
        (2, 3, 6, 6),
    ),
}


# every layer with an input that requires grad, and those with parameters also with one that does not
# (ReLU without either has nothing to differentiate)
HOOK_CASES = [(name, rg) for name in LAYERS for rg in (True, False) if rg or name != "relu"]


@pytest.mark.parametrize(("name", "requires_grad"), HOOK_CASES)
def test_backward_hooks_match_torch(name: str, requires_grad: bool, torch: ModuleType) -> None:
    """A hook on every module (the layer itself, or every layer of the Sequential and the Sequential):
    same calls, same order, same grad_input and grad_output as torch, and the same gradients in the end."""
    make, shape = LAYERS[name]
    m, t = twin(torch, make)
    assert requires_grad or list(m.parameters())
    calls_m: list = []
    calls_t: list = []
    for (path, mod), (_, tmod) in zip(m.named_modules(), t.named_modules(), strict=True):
        mod.register_full_backward_hook(_record(calls_m, path))
        tmod.register_full_backward_hook(_record(calls_t, path))
    x = np.random.default_rng(1).standard_normal(shape)
    xm = run_backward(m, x, mr, requires_grad)
    xt = run_backward(t, x, torch, requires_grad)
    assert len(calls_m) == len(list(m.modules()))
    assert_same_calls(calls_m, calls_t)
    if requires_grad:
        np.testing.assert_allclose(xm.grad.numpy(), xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    else:
        assert all(gi == [None] for path, gi, _ in calls_m if path in ("", "0"))  # the first layer
    t_params = dict(t.named_parameters())
    for k, p in m.named_parameters():
        np.testing.assert_allclose(
            p.grad.numpy(), t_params[k].grad.numpy(), rtol=1e-10, atol=1e-12, err_msg=k
        )


def test_gradient_norm_printout_per_layer(torch: ModuleType) -> None:
    """The tutorial use case: a backward hook on every layer of a Sequential prints the norm of the gradient
    flowing out of each layer; one line per layer, equal to torch's."""
    make, shape = LAYERS["sequential"]
    lines: dict[str, list[str]] = {"minires": [], "torch": []}
    for lib_name, model in zip(("minires", "torch"), twin(torch, make), strict=True):
        handles = []
        for name, layer in model.named_children():

            def print_norm(
                module: Any,
                grad_input: tuple,
                grad_output: tuple,
                name: str = name,
                out: list = lines[lib_name],
            ) -> None:
                norm = float((grad_output[0] ** 2).sum().item()) ** 0.5
                out.append(f"{name:>2} {type(module).__name__:<18} grad norm {norm:.6f}")

            handles.append(layer.register_full_backward_hook(print_norm))
        lib = mr if lib_name == "minires" else torch
        run_backward(model, np.random.default_rng(2).standard_normal(shape), lib, requires_grad=False)
        for h in handles:
            h.remove()
    assert len(lines["minires"]) == 8  # one per layer, last layer first
    assert lines["minires"][0].startswith(" 7 Linear") and lines["minires"][-1].startswith(" 0 Conv2d")
    assert lines["minires"] == lines["torch"]


def test_backward_hook_replaces_grad_input_as_torch(torch: ModuleType) -> None:
    """A hook that returns a new grad_input changes every gradient upstream of the module."""
    make = lambda nn_: nn_.Sequential(nn_.Linear(4, 5), nn_.Tanh(), nn_.Linear(5, 3), nn_.ReLU())  # noqa: E731
    m, t = twin(torch, make)
    m[2].register_full_backward_hook(lambda mod, gi, go: (gi[0] * 3.0,))
    t[2].register_full_backward_hook(lambda mod, gi, go: (gi[0] * 3.0,))
    x = np.random.default_rng(0).standard_normal((6, 4))
    xm, xt = run_backward(m, x, mr, True), run_backward(t, x, torch, True)
    np.testing.assert_allclose(xm.grad.numpy(), xt.grad.numpy(), rtol=1e-10)
    t_params = dict(t.named_parameters())
    for k, p in m.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), t_params[k].grad.numpy(), rtol=1e-10, err_msg=k)
    m2, _ = twin(torch, make)
    m2.load_state_dict(m.state_dict())
    x2 = run_backward(m2, x, mr, True)
    np.testing.assert_allclose(xm.grad.numpy(), 3 * x2.grad.numpy(), rtol=1e-10)  # the hook's factor
    np.testing.assert_allclose(m[2].weight.grad.numpy(), m2[2].weight.grad.numpy(), rtol=1e-10)  # not below


def _two_in_two_out(nn_: Any) -> Any:
    class TwoInTwoOut(nn_.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn_.Linear(3, 3)

        def forward(self, a: Any, scale: float, b: Any, c: Any) -> tuple[Any, Any]:
            return self.lin(a) * scale + b * c, self.lin(b)

    return TwoInTwoOut()


@pytest.mark.parametrize(
    "grads, use_second",
    [((True, True, False), True), ((True, False, False), False), ((False, True, True), True)],
    ids=["a_b", "a_only_first_output", "b_c"],
)
def test_backward_hook_several_inputs_and_outputs(grads: tuple, use_second: bool, torch: ModuleType) -> None:
    """grad_input has one entry per positional argument (None for the float; zeros for a Tensor that gets
    no gradient, as torch gives them), grad_output one per output (None for an output the loss ignores)."""
    m, t = twin(torch, _two_in_two_out)
    calls_m: list = []
    calls_t: list = []
    m.register_full_backward_hook(_record(calls_m, "m"))
    t.register_full_backward_hook(_record(calls_t, "m"))
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal((2, 3)) for _ in range(3)]
    for lib, model in ((mr, m), (torch, t)):
        a, b, c = (lib.tensor(v, requires_grad=rg) for v, rg in zip(arrays, grads, strict=True))
        y1, y2 = model(a, 2.0, b, c)
        loss = (y1 * y1).sum() + (y2.sum() if use_second else 0)
        loss.backward()
    assert_same_calls(calls_m, calls_t)


def test_backward_hook_on_a_module_called_twice(torch: ModuleType) -> None:
    """A layer used twice in one forward: one hook call per use, each with that use's gradients."""
    calls_m: list = []
    calls_t: list = []
    m, t = twin(torch, lambda nn_: nn_.Linear(3, 3))
    m.register_full_backward_hook(_record(calls_m, "lin"))
    t.register_full_backward_hook(_record(calls_t, "lin"))
    x = np.random.default_rng(0).standard_normal((2, 3))
    for lib, model in ((mr, m), (torch, t)):
        xx = lib.tensor(x, requires_grad=True)
        (model(model(xx)) ** 2).sum().backward()
    assert len(calls_m) == 2
    assert_same_calls(calls_m, calls_t)


def test_backward_hook_remove_no_grad_and_retain_graph() -> None:
    lin = nn.Linear(3, 2)
    calls: list = []
    handle = lin.register_full_backward_hook(_record(calls, "lin"))
    x = mr.randn(4, 3, requires_grad=True)
    y = lin(x)
    assert type(y.grad_fn).__name__ != "Linear"  # the output goes through the hook's identity op
    y.sum().backward(retain_graph=True)
    y.sum().backward()
    assert len(calls) == 2
    np.testing.assert_array_equal(calls[0][1][0], calls[1][1][0])
    with mr.no_grad():
        z = lin(x)
    assert not z.requires_grad and len(calls) == 2
    handle.remove()
    handle.remove()  # removing twice is harmless
    y = lin(x)
    assert type(y.grad_fn).__name__ == "Linear"  # no hooks: the layer's own op, nothing in between
    y.sum().backward()
    assert len(calls) == 2


def test_backward_hook_bad_return_is_a_clear_error() -> None:
    lin = nn.Linear(3, 2)
    lin.register_full_backward_hook(lambda mod, gi, go: (gi[0], gi[0]))
    y = lin(mr.randn(4, 3, requires_grad=True))
    with pytest.raises(mr.GraphError, match="invalid grad_input.*got 2, expected a tuple of 1"):
        y.sum().backward()
    first = nn.Linear(3, 2)
    first.register_full_backward_hook(lambda mod, gi, go: (mr.ones(4, 3),))
    with pytest.raises(mr.GraphError, match="no input of this module requires grad"):
        first(mr.randn(4, 3)).sum().backward()


# ----- forward hooks ---------------------------------------------------------------------------------
def _check_forward_hooks(lib: Any, lib_nn: Any) -> None:
    lin = lib_nn.Linear(2, 2)
    seen: list = []
    h1 = lin.register_forward_hook(lambda mod, args, out: seen.append(("f1", len(args))))
    lin.register_forward_hook(lambda mod, args, out: out * 0 + 5)  # replaces the output
    lin.register_forward_hook(lambda mod, args, out: seen.append(("f0", float(_np(out).sum()))), prepend=True)
    lin.register_forward_pre_hook(lambda mod, args: args[0] * 0)  # a single value: wrapped in a tuple
    lin.register_forward_pre_hook(lambda mod, args: seen.append(("pre", float(_np(args[0]).sum()))))
    y = lin(lib.ones(3, 2))
    assert y.shape == (3, 2) and float(_np(y).sum()) == 30.0
    assert seen[0] == ("pre", 0.0) and seen[1][0] == "f0" and seen[2] == ("f1", 1)
    h1.remove()
    seen.clear()
    lin(lib.ones(3, 2))
    assert [s[0] for s in seen] == ["pre", "f0"]


def test_forward_hooks_replace_and_order(torch: ModuleType) -> None:
    """Pre-hooks may replace the input, forward hooks the output; ``prepend`` runs first; as torch."""
    _check_forward_hooks(mr, nn)
    _check_forward_hooks(torch, torch.nn)


def test_forward_hooks_with_kwargs_and_context_manager() -> None:
    class Scale(nn.Module):
        def forward(self, x: mr.Tensor, factor: float = 1.0) -> mr.Tensor:
            return x * factor

    s = Scale()
    got: list = []
    s.register_forward_pre_hook(
        lambda mod, args, kwargs: (args, {"factor": kwargs["factor"] * 2}), with_kwargs=True
    )
    with s.register_forward_hook(
        lambda mod, args, kwargs, out: got.append(kwargs["factor"]), with_kwargs=True
    ):
        y = s(mr.ones(2), factor=3.0)
    assert y.numpy().tolist() == [6.0, 6.0] and got == [6.0]
    s(mr.ones(2), factor=1.0)
    assert got == [6.0]  # the context manager removed the hook


def test_forward_hook_collects_feature_maps_and_call_stays_lean() -> None:
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(2 * 4 * 4, 3))
    shapes: dict[str, tuple] = {}
    handles = [
        layer.register_forward_hook(lambda mod, args, out, name=name: shapes.__setitem__(name, out.shape))
        for name, layer in net.named_children()
    ]
    net(mr.randn(5, 1, 6, 6))
    assert shapes == {"0": (5, 2, 4, 4), "1": (5, 2, 4, 4), "2": (5, 32), "3": (5, 3)}
    for h in handles:
        h.remove()
    assert all(not (m._forward_hooks or m._forward_pre_hooks or m._backward_hooks) for m in net.modules())
