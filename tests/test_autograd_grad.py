"""``mr.autograd.grad``: gradients returned, not accumulated, with torch.autograd.grad's arguments and errors.
Each case runs the same computation in torch and compares values (and Nones)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import minires as mr
import minires.nn.functional as F
from minires.errors import GraphError, ShapeError

RNG = np.random.default_rng(2024)


def both(torch: Any, *shapes: tuple[int, ...]) -> tuple[list[mr.Tensor], list[Any]]:
    arrays = [RNG.standard_normal(s) for s in shapes]
    return (
        [mr.tensor(a, requires_grad=True) for a in arrays],
        [torch.tensor(a, requires_grad=True) for a in arrays],
    )


def assert_same(mine: tuple, ref: tuple) -> None:
    assert len(mine) == len(ref)
    for i, (m, r) in enumerate(zip(mine, ref, strict=True)):
        if r is None:
            assert m is None, f"gradient {i}: expected None, got {m}"
            continue
        assert isinstance(m, mr.Tensor), f"gradient {i}: expected a Tensor, got {type(m).__name__}"
        assert m.shape == tuple(r.shape) and not m.requires_grad
        np.testing.assert_allclose(
            m.numpy(), r.detach().numpy(), rtol=1e-12, atol=1e-12, err_msg=f"gradient {i}"
        )


def test_returns_the_gradients_and_leaves_grad_alone(torch: Any) -> None:
    (x, w), (tx, tw) = both(torch, (4, 3), (3, 2))
    w.grad = mr.tensor(np.full((3, 2), 7.0))  # an earlier backward's gradient: must stay as it is
    mine = mr.autograd.grad((mr.tanh(x @ w) ** 2).sum(), [x, w])
    ref = torch.autograd.grad((torch.tanh(tx @ tw) ** 2).sum(), [tx, tw])
    assert_same(mine, ref)
    assert x.grad is None
    np.testing.assert_array_equal(w.grad.numpy(), 7.0)


def test_a_single_tensor_input_gives_a_one_tuple(torch: Any) -> None:
    (x,), (tx,) = both(torch, (5,))
    mine = mr.autograd.grad((x * x).sum(), x)
    assert isinstance(mine, tuple) and len(mine) == 1
    assert_same(mine, torch.autograd.grad((tx * tx).sum(), tx))


def test_fan_out_sums_and_several_outputs_add(torch: Any) -> None:
    (x,), (tx,) = both(torch, (3, 4))

    def f(lib: Any, x: Any) -> tuple[Any, Any]:
        h = lib.exp(x) * x  # x used twice
        return (h * h).sum(), (h + x).sum()

    mine = mr.autograd.grad(list(f(mr, x)), [x])
    assert_same(mine, torch.autograd.grad(list(f(torch, tx)), [tx]))


def test_grad_outputs_weight_a_non_scalar_output(torch: Any) -> None:
    (x,), (tx,) = both(torch, (2, 3))
    v = RNG.standard_normal((2, 3))
    mine = mr.autograd.grad(mr.sigmoid(x), x, grad_outputs=mr.tensor(v))
    assert_same(mine, torch.autograd.grad(torch.sigmoid(tx), tx, grad_outputs=torch.tensor(v)))
    mine = mr.autograd.grad([mr.sigmoid(x), x.sum()], [x], grad_outputs=[v, None])  # None: ones
    assert_same(mine, torch.autograd.grad([torch.sigmoid(tx), tx.sum()], [tx], [torch.tensor(v), None]))


def test_a_non_scalar_output_needs_grad_outputs() -> None:
    x = mr.randn(2, 3, requires_grad=True)
    with pytest.raises(ShapeError, match=r"only for a scalar output, got shape \(2, 3\).*grad_outputs\[0\]"):
        mr.autograd.grad(x * 2, x)
    with pytest.raises(
        ShapeError, match=r"grad_outputs\[0\] has shape \(3,\), expected the output's \(2, 3\)"
    ):
        mr.autograd.grad(x * 2, x, grad_outputs=mr.ones(3))


def test_an_unused_input_is_an_error_or_none(torch: Any) -> None:
    (x, unused), (tx, tunused) = both(torch, (3,), (2,))
    y = (x * 3).sum()
    with pytest.raises(GraphError, match=r"inputs\[1\] \(shape \(2,\)\) was not used.*allow_unused=True"):
        mr.autograd.grad(y, [x, unused], retain_graph=True)
    mine = mr.autograd.grad(y, [x, unused], allow_unused=True)
    assert_same(mine, torch.autograd.grad((tx * 3).sum(), [tx, tunused], allow_unused=True))
    (zeros,) = mr.autograd.grad((x * 3).sum(), [unused], materialize_grads=True)
    np.testing.assert_array_equal(zeros.numpy(), np.zeros(2))


def test_inputs_and_outputs_must_require_grad() -> None:
    x = mr.randn(3, requires_grad=True)
    with pytest.raises(GraphError, match=r"inputs\[1\] .* does not require grad"):
        mr.autograd.grad((x * 2).sum(), [x, mr.randn(3)])
    with pytest.raises(GraphError, match=r"outputs\[0\] .* does not require grad"):
        mr.autograd.grad(mr.randn(3).sum(), [x])
    with pytest.raises(ValueError, match="2 outputs but 1 grad_outputs"):
        mr.autograd.grad([x.sum(), x.sum()], [x], grad_outputs=[None])


def test_a_non_leaf_input_gets_its_own_gradient(torch: Any) -> None:
    """The gradient at an intermediate tensor, as torch gives it; the nodes below it are not run."""
    (x,), (tx,) = both(torch, (4,))
    h, th = x * 3, tx * 3
    mine = mr.autograd.grad((h * h).sum(), [h, x])
    assert_same(mine, torch.autograd.grad((th * th).sum(), [th, tx]))
    h2 = mr.exp(x)
    (g,) = mr.autograd.grad((h2 * 2).sum(), [h2])  # exp's backward is not needed and must not run: its
    h2.sum().backward()  # saved output is still there for a later backward
    np.testing.assert_allclose(g.numpy(), 2.0)
    np.testing.assert_allclose(x.grad.numpy(), np.exp(x.numpy()))


def test_hooks_and_retain_grad_run_as_in_torch(torch: Any) -> None:
    (x,), (tx,) = both(torch, (2,))
    for t in (x, tx):
        t.register_hook(lambda g: g * 10)
    h, th = x * 3, tx * 3
    h.retain_grad()
    th.retain_grad()
    assert_same(mr.autograd.grad((h * h).sum(), [x]), torch.autograd.grad((th * th).sum(), [tx]))
    np.testing.assert_allclose(h.grad.numpy(), th.grad.numpy())
    assert x.grad is None and tx.grad is None


def test_retain_graph_frees_the_graph_as_backward_does() -> None:
    x = mr.randn(3, requires_grad=True)
    y = (mr.exp(x) * x).sum()
    first = mr.autograd.grad(y, x, retain_graph=True)
    second = mr.autograd.grad(y, x)  # retain_graph defaults to create_graph, False: frees the graph
    np.testing.assert_array_equal(first[0].numpy(), second[0].numpy())
    with pytest.raises(GraphError, match="second time"):
        mr.autograd.grad(y, x)
    with pytest.raises(GraphError, match="second time"):
        y.backward()


def test_grad_of_a_leaf_with_respect_to_itself(torch: Any) -> None:
    (x,), (tx,) = both(torch, (3,))
    v = RNG.standard_normal(3)
    assert_same(mr.autograd.grad(x, x, mr.tensor(v)), torch.autograd.grad(tx, tx, torch.tensor(v)))


def test_a_resnet_block_matches_backward() -> None:
    """On a model: grad() returns what backward() accumulates, parameter by parameter."""
    mr.manual_seed(0)
    block = mr.models.BasicBlock(4, 4).double()
    x = mr.randn(2, 4, 5, 5, dtype=mr.float64, requires_grad=True)
    params = [x, *block.parameters()]
    grads = mr.autograd.grad(F.relu(block(x)).mean(), params)
    assert all(p.grad is None for p in params)
    F.relu(block(x)).mean().backward()
    for p, g in zip(params, grads, strict=True):
        np.testing.assert_allclose(g.numpy(), p.grad.numpy(), rtol=1e-12, atol=1e-15)


def test_create_graph_is_not_available() -> None:
    x = mr.randn(3, requires_grad=True)
    with pytest.raises(NotImplementedError, match="create_graph=True needs double backward"):
        mr.autograd.grad((x * x).sum(), x, create_graph=True)


def test_on_every_backend(backend: str) -> None:
    x = mr.tensor(RNG.standard_normal((3, 4)), device=backend, requires_grad=True)
    w = mr.tensor(RNG.standard_normal((4, 2)), device=backend, requires_grad=True)
    gx, gw = mr.autograd.grad(mr.tanh(x @ w).sum(), [x, w])
    assert gx.device == x.device and gw.device == w.device and x.grad is None
    mr.tanh(x @ w).sum().backward()
    np.testing.assert_allclose(gx.numpy(), x.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(gw.numpy(), w.grad.numpy(), rtol=1e-12)


def test_post_accumulate_grad_hooks_run_after_backward_not_under_grad(torch: Any) -> None:
    """register_post_accumulate_grad_hook, as torch's: the hook sees the leaf with its .grad already
    summed (earlier gradient included), once per backward; autograd.grad, which accumulates nothing, never
    calls it; a handle removes it; only leaves that require grad take one."""
    a = np.array([1.0, -2.0, 3.0])
    seen, torch_seen = [], []
    x, tx = mr.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)
    x.grad, tx.grad = mr.tensor(np.full(3, 10.0)), torch.full((3,), 10.0, dtype=torch.float64)
    handle = x.register_post_accumulate_grad_hook(lambda t: seen.append(t.grad.numpy().copy()))
    tx.register_post_accumulate_grad_hook(lambda t: torch_seen.append(t.grad.numpy().copy()))
    (x * x).sum().backward()
    (tx * tx).sum().backward()
    mr.autograd.grad((x * x).sum(), [x])
    torch.autograd.grad((tx * tx).sum(), [tx])
    assert len(seen) == len(torch_seen) == 1
    np.testing.assert_array_equal(seen[0], torch_seen[0])  # 10 + 2x
    handle.remove()
    (x * x).sum().backward()
    assert len(seen) == 1
    with pytest.raises(GraphError, match="only leaf tensors"):
        (x * 2).register_post_accumulate_grad_hook(lambda t: None)
    with pytest.raises(GraphError, match="does not require grad"):
        mr.tensor(a).register_post_accumulate_grad_hook(lambda t: None)
