"""The autograd engine: accumulation, shared subexpressions, backward's arguments and errors, freeing
the graph, deep graphs, grad mode, leaves and hooks, broadcasting gradients, devices.

Where the behaviour is PyTorch's, the test runs the same computation in torch and compares.
"""

from __future__ import annotations

import gc
import sys
import threading
import weakref
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from hypothesis.extra.numpy import mutually_broadcastable_shapes

import minires as mr
from minires.autograd import topological_order
from minires.function import Function

RNG = np.random.default_rng(4321)


def pair(torch: Any, array: np.ndarray, backend: str = "cpu", requires_grad: bool = True) -> tuple[Any, Any]:
    """The same data as a minires Tensor (on ``backend``) and a torch tensor."""
    return (
        mr.tensor(array, device=backend, requires_grad=requires_grad),
        torch.tensor(array, requires_grad=requires_grad),
    )


def assert_close(mine: mr.Tensor | None, ref: Any, rtol: float = 1e-10, atol: float = 1e-12) -> None:
    """Same shape, dtype and values as the torch tensor ``ref`` (both None also counts as the same)."""
    if ref is None:
        assert mine is None
        return
    assert isinstance(mine, mr.Tensor)
    assert mine.shape == tuple(ref.shape)
    assert str(mine.dtype) == str(ref.dtype).removeprefix("torch.")
    np.testing.assert_allclose(mine.numpy(), ref.detach().numpy(), rtol=rtol, atol=atol)


class Double(Function):
    """y = 2x, counting its backward calls (to check that the engine runs each node once)."""

    def __init__(self) -> None:
        self.calls = 0

    def forward(self, x: Any) -> Any:
        return 2 * x

    def backward(self, g: Any) -> Any:
        self.calls += 1
        return 2 * g


# ----- accumulation and shared values -------------------------------------------------------------------
def test_leaf_gradients_accumulate_until_zeroed(torch: Any, backend: str) -> None:
    data = RNG.standard_normal((2, 3))
    x, tx = pair(torch, data, backend)
    for t in (x, tx):
        (t * t).sum().backward()
        (t.exp() * 3).sum().backward()
    assert_close(x.grad, tx.grad)
    # zeroed in place, as optimizers do: the next backward starts from zero
    with mr.no_grad():
        x.grad.zero_()
    tx.grad.zero_()
    (x.exp() / (x * x + 1)).sum().backward()
    (tx.exp() / (tx * tx + 1)).sum().backward()
    assert_close(x.grad, tx.grad)
    # set to None: the next backward creates a fresh gradient
    x.grad, tx.grad = None, None
    (x**3).sum().backward()
    (tx**3).sum().backward()
    assert_close(x.grad, tx.grad)


def test_grad_of_each_leaf_is_its_own_buffer() -> None:
    x = mr.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = mr.tensor([4.0, 5.0, 6.0], requires_grad=True)
    g = mr.tensor([1.0, 1.0, 1.0])
    (x + y).backward(g)  # Add passes the same upstream array to both inputs
    assert not np.shares_memory(x.grad.data, y.grad.data)
    assert not np.shares_memory(x.grad.data, g.data)
    x.grad.data[0] = 100.0
    assert y.grad.numpy()[0] == 1.0 and g.numpy()[0] == 1.0


@pytest.mark.parametrize(
    "fn",
    [
        lambda x: x * x + x,
        lambda x: (x * x).exp() * x - x / (x * x + 1),
        lambda x: (lambda h: h * h + h.exp() * h)(x * 3 + 1),  # a non-leaf used three times
        lambda x: (lambda h: (h + h) * (h - x))(x.exp()),
    ],
    ids=["x*x+x", "leaf_many_uses", "nonleaf_diamond", "nested_diamond"],
)
def test_values_used_several_times_get_the_summed_gradient(torch: Any, backend: str, fn: Callable) -> None:
    data = RNG.uniform(-1, 1, (3, 2))
    x, tx = pair(torch, data, backend)
    y, ty = fn(x), fn(tx)
    assert_close(y, ty)
    g = RNG.standard_normal((3, 2))
    y.backward(mr.tensor(g, device=backend))
    ty.backward(torch.tensor(g))
    assert_close(x.grad, tx.grad)


def test_engine_runs_each_node_once() -> None:
    x = mr.tensor(RNG.standard_normal((2, 2)), requires_grad=True)
    f1, f2, f3 = Double(), Double(), Double()
    a = f1(x)  # 2x, used by b, c and the output
    b = f2(a)  # 4x, used twice
    c = f3(a * b + b)  # 2 (8x^2 + 4x)
    y = (c + a + b * b).sum()
    nodes = topological_order(y.grad_fn)
    assert len(nodes) == len(set(nodes))
    y.backward()
    assert (f1.calls, f2.calls, f3.calls) == (1, 1, 1)
    # a = 2x, b = 4x, c = 2 (8x^2 + 4x), so y = sum(16x^2 + 8x + 2x + 16x^2) and dy/dx = 64x + 10
    np.testing.assert_allclose(x.grad.numpy(), 64 * x.numpy() + 10, rtol=1e-12)


def test_engine_runs_each_node_once_in_a_wide_shared_graph() -> None:
    x = mr.tensor([0.5, -1.5], requires_grad=True)
    shared = Double()
    h = shared(x)
    counters = [Double() for _ in range(20)]
    y = sum((c(h) for c in counters), start=mr.zeros(2)).sum()
    y.backward()
    assert shared.calls == 1 and all(c.calls == 1 for c in counters)
    np.testing.assert_allclose(x.grad.numpy(), [80.0, 80.0])


# ----- backward's arguments and errors ------------------------------------------------------------------
def test_backward_with_gradient_for_non_scalar_output(torch: Any, backend: str) -> None:
    data = RNG.standard_normal((2, 3))
    g = RNG.standard_normal((2, 3))
    x, tx = pair(torch, data, backend)
    (x * x).backward(gradient=mr.tensor(g, device=backend))
    (tx * tx).backward(gradient=torch.tensor(g))
    assert_close(x.grad, tx.grad)
    x2 = mr.tensor(data, device=backend, requires_grad=True)
    (x2 * x2).backward(g if backend == "cpu" else mr.tensor(g, device=backend).data)  # a raw array works too
    assert_close(x2.grad, tx.grad)


def test_backward_gradient_is_cast_to_the_output_dtype(torch: Any) -> None:
    x, tx = pair(torch, RNG.standard_normal(3).astype(np.float32))
    (x * 2).backward(mr.tensor(np.ones(3)))  # a float64 gradient for a float32 output
    (tx * 2).backward(torch.ones(3, dtype=torch.float64))
    assert_close(x.grad, tx.grad)


def test_backward_on_non_scalar_without_gradient_raises_shape_error(torch: Any) -> None:
    x = mr.tensor(RNG.standard_normal((2, 3)), requires_grad=True)
    with pytest.raises(mr.ShapeError, match=r"\(2, 3\)"):
        (x * 2).backward()
    with pytest.raises(RuntimeError, match="scalar"):
        (x * 2).backward()
    with pytest.raises(RuntimeError, match="scalar"):
        (torch.ones(2, 3, requires_grad=True) * 2).backward()
    assert x.grad is None


def test_backward_with_gradient_of_the_wrong_shape_raises() -> None:
    x = mr.tensor(RNG.standard_normal((2, 3)), requires_grad=True)
    with pytest.raises(mr.ShapeError, match=r"\(3, 2\).*\(2, 3\)|\(2, 3\).*\(3, 2\)"):
        (x * 2).backward(mr.ones(3, 2))
    assert x.grad is None


def test_backward_of_a_tensor_not_requiring_grad_raises(torch: Any) -> None:
    x = mr.tensor([1.0, 2.0])
    with pytest.raises(RuntimeError, match="grad"):
        (x * 2).sum().backward()
    with pytest.raises(mr.GraphError):
        x.sum().backward()
    with pytest.raises(RuntimeError):
        (torch.tensor([1.0, 2.0]) * 2).sum().backward()


def test_backward_of_a_scalar_leaf(torch: Any) -> None:
    x, tx = pair(torch, np.array(2.5))
    x.backward()
    tx.backward()
    assert_close(x.grad, tx.grad)


# ----- freeing the graph --------------------------------------------------------------------------------
def test_second_backward_through_freed_graph_raises_graph_error(torch: Any) -> None:
    x = mr.tensor(RNG.standard_normal(4), requires_grad=True)
    loss = (x.exp() * x).sum()
    loss.backward()
    first = x.grad.numpy()
    with pytest.raises(mr.GraphError, match=r"(?s)second time.*retain_graph"):
        loss.backward()
    np.testing.assert_array_equal(x.grad.numpy(), first)  # the failed call changed nothing
    tx = torch.tensor(x.numpy(), requires_grad=True)
    tloss = (tx.exp() * tx).sum()
    tloss.backward()
    with pytest.raises(RuntimeError, match="second time"):
        tloss.backward()


def test_retain_graph_allows_a_second_backward_and_doubles_grads(torch: Any, backend: str) -> None:
    data = RNG.standard_normal((3, 2))
    x, tx = pair(torch, data, backend)
    w, tw = pair(torch, RNG.standard_normal((2, 2)), backend)
    loss = ((x @ w).exp() * x.sum(1, keepdim=True)).mean()
    tloss = ((tx @ tw).exp() * tx.sum(1, keepdim=True)).mean()
    loss.backward(retain_graph=True)
    tloss.backward(retain_graph=True)
    once = x.grad.numpy().copy()
    loss.backward()
    tloss.backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * once, rtol=1e-12)
    assert_close(x.grad, tx.grad)
    assert_close(w.grad, tw.grad)
    with pytest.raises(mr.GraphError):  # the second call did not retain the graph
        loss.backward()


def _saved_attributes(node: Function) -> list[str]:
    return [k for k in node.saved if k in vars(node)]


def _saved_arrays(node: Function) -> list[str]:
    return [k for k in _saved_attributes(node) if isinstance(vars(node)[k], np.ndarray)]


def test_backward_frees_every_nodes_saved_buffers() -> None:
    """Every saved array goes with backward; a node that saved only shapes keeps them and is not freed
    (PyTorch frees saved tensors only)."""
    x = mr.tensor(RNG.standard_normal((4, 3)), requires_grad=True)
    w = mr.tensor(RNG.standard_normal((3, 2)), requires_grad=True)
    loss = ((x @ w).relu().exp() * x.sum(1, keepdim=True) / (w * w).sum()).log_softmax(1).mean()
    nodes = topological_order(loss.grad_fn)
    assert len(nodes) >= 8
    with_arrays = [n for n in nodes if _saved_arrays(n)]
    assert len(with_arrays) >= 5  # forward did save arrays
    assert not any(n._freed for n in nodes)
    loss.backward()
    for node in nodes:
        assert _saved_arrays(node) == [], node
        assert node._freed == (node in with_arrays), node
    shapes_only = [n for n in nodes if n not in with_arrays]
    assert shapes_only and all(_saved_attributes(n) == list(n.saved) for n in shapes_only)


def test_a_graph_that_saved_no_array_runs_backward_again(torch: Any) -> None:
    """As in PyTorch: (x + x).sum() saved no tensor, so a second backward accumulates again; x * x saved
    x, so its second backward raises, naming the op that lost its buffers."""
    x, tx = mr.tensor([1.0, 2.0], requires_grad=True), torch.tensor([1.0, 2.0], requires_grad=True)
    y, ty = (x + x).sum(), (tx + tx).sum()
    for _ in range(2):
        y.backward()
        ty.backward()
    np.testing.assert_array_equal(x.grad.numpy(), tx.grad.numpy())  # [4, 4]
    y = (x * x).sum()
    y.backward()
    with pytest.raises(mr.GraphError, match=r"(?s)mul.*second time.*retain_graph"):
        y.backward()


def test_retain_graph_keeps_saved_buffers() -> None:
    x = mr.tensor(RNG.standard_normal(5), requires_grad=True)
    loss = (x.exp() * x).sum()
    nodes = topological_order(loss.grad_fn)
    saved = {n: _saved_attributes(n) for n in nodes}
    loss.backward(retain_graph=True)
    for node in nodes:
        assert not node._freed and _saved_attributes(node) == saved[node]


def test_big_intermediate_is_garbage_collected_after_backward() -> None:
    x = mr.randn(512, 512, dtype=mr.float64, requires_grad=True)
    w = mr.randn(512, 512, dtype=mr.float64)
    loss = (x.exp() * w).sum()  # exp(x) is held only by the graph (Exp saves it, Mul saves it)
    mul = loss.grad_fn.next_nodes[0]
    intermediate = weakref.ref(mul.a)
    assert intermediate() is not None and intermediate().nbytes == 512 * 512 * 8
    del mul
    loss.backward()
    gc.collect()
    assert intermediate() is None  # freed although `loss` (and so the graph's nodes) is still alive
    assert loss.grad_fn is not None


def test_no_memory_is_kept_for_a_graph_without_grad() -> None:
    x = mr.randn(256, 256, dtype=mr.float64)
    y = x.exp() * x  # nothing requires grad: no node, nothing saved
    assert y.grad_fn is None


def test_deep_chain_deeper_than_the_recursion_limit(torch: Any) -> None:
    depth = max(5000, sys.getrecursionlimit() + 1000)
    x = mr.tensor(np.array([0.5, -1.0, 2.0]), requires_grad=True)
    y = x
    for i in range(depth):
        y = y * 1.0001 if i % 2 else y + 0.001
    loss = y.sum()
    assert len(topological_order(loss.grad_fn)) == depth + 1
    loss.backward()
    np.testing.assert_allclose(x.grad.numpy(), np.full(3, 1.0001 ** (depth // 2)), rtol=1e-10)
    del loss, y  # tearing the deep graph down must not overflow the stack either
    gc.collect()


# ----- grad mode ----------------------------------------------------------------------------------------
def test_no_grad_context_manager() -> None:
    x = mr.tensor([1.0, 2.0], requires_grad=True)
    assert mr.is_grad_enabled()
    with mr.no_grad():
        assert not mr.is_grad_enabled()
        y = x * 2 + 1
        z = (x @ x).exp()
    assert mr.is_grad_enabled()
    for t in (y, z):
        assert not t.requires_grad and t.grad_fn is None and t.is_leaf
    assert x.requires_grad  # the leaf itself is unchanged


def test_no_grad_decorator() -> None:
    x = mr.tensor([1.0, 2.0], requires_grad=True)

    @mr.no_grad()
    def f(t: mr.Tensor) -> tuple[mr.Tensor, bool]:
        return t * 3, mr.is_grad_enabled()

    y, enabled = f(x)
    assert not enabled and not y.requires_grad and y.grad_fn is None
    assert mr.is_grad_enabled()
    assert f.__name__ == "f"  # functools.wraps
    assert (x * 3).requires_grad


def test_no_grad_as_a_bare_decorator_like_torch(torch: Any) -> None:
    @torch.no_grad
    def g(t: Any) -> Any:
        return t * 3

    assert not g(torch.ones(2, requires_grad=True)).requires_grad

    @mr.no_grad
    def f(t: mr.Tensor) -> mr.Tensor:
        return t * 3

    assert not f(mr.ones(2, requires_grad=True)).requires_grad
    assert mr.is_grad_enabled()


def test_grad_mode_is_restored_after_an_exception() -> None:
    with pytest.raises(KeyError):
        with mr.no_grad():
            raise KeyError("boom")
    assert mr.is_grad_enabled()

    @mr.no_grad()
    def fails() -> None:
        raise KeyError("boom")

    with pytest.raises(KeyError):
        fails()
    assert mr.is_grad_enabled()


def test_enable_grad_inside_no_grad() -> None:
    x = mr.tensor([1.0, 2.0], requires_grad=True)
    with mr.no_grad():
        with mr.enable_grad():
            assert mr.is_grad_enabled()
            y = x * 2
        assert not mr.is_grad_enabled()
        z = x * 2

        @mr.enable_grad()
        def f(t: mr.Tensor) -> mr.Tensor:
            return t * 2

        w = f(x)
        assert not mr.is_grad_enabled()
    assert y.requires_grad and y.grad_fn is not None
    assert not z.requires_grad
    assert w.requires_grad
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 2.0])


def test_nested_no_grad_restores_the_outer_mode() -> None:
    with mr.no_grad():
        with mr.no_grad():
            pass
        assert not mr.is_grad_enabled()
    assert mr.is_grad_enabled()


def test_set_grad_enabled_as_function_and_context_manager() -> None:
    x = mr.tensor([1.0], requires_grad=True)
    try:
        mr.set_grad_enabled(False)
        assert not mr.is_grad_enabled() and not (x * 2).requires_grad
        mr.set_grad_enabled(True)
        assert mr.is_grad_enabled() and (x * 2).requires_grad
        with mr.set_grad_enabled(False):
            assert not mr.is_grad_enabled()
            assert (x * 2).grad_fn is None
            with mr.set_grad_enabled(True):
                assert (x * 2).grad_fn is not None
            assert not mr.is_grad_enabled()
        assert mr.is_grad_enabled()
        with mr.no_grad():
            with mr.set_grad_enabled(True):
                assert mr.is_grad_enabled()
            assert not mr.is_grad_enabled()
    finally:
        mr.set_grad_enabled(True)


def test_set_grad_enabled_as_decorator_like_torch(torch: Any) -> None:
    @torch.set_grad_enabled(False)
    def g(t: Any) -> Any:
        return t * 2

    assert not g(torch.ones(1, requires_grad=True)).requires_grad and torch.is_grad_enabled()
    try:

        @mr.set_grad_enabled(False)
        def f(t: mr.Tensor) -> mr.Tensor:
            return t * 2

        assert mr.is_grad_enabled()  # decorating does not switch the mode
        assert not f(mr.ones(1, requires_grad=True)).requires_grad
        assert mr.is_grad_enabled()
    finally:
        mr.set_grad_enabled(True)


def test_grad_mode_is_thread_local_like_torch(torch: Any) -> None:
    def seen_from_another_thread(lib: Any) -> bool:
        out: list[bool] = []
        with lib.no_grad():
            thread = threading.Thread(target=lambda: out.append(lib.is_grad_enabled()))
            thread.start()
            thread.join()
        return out[0]

    assert seen_from_another_thread(torch) is True
    assert seen_from_another_thread(mr) is True


# ----- leaves, non-leaves, detach -----------------------------------------------------------------------
def test_leaf_and_non_leaf_grads(torch: Any) -> None:
    data = RNG.standard_normal(3)
    x, tx = pair(torch, data)
    y, ty = x * 2, tx * 2
    z, tz = (y * y).sum(), (ty * ty).sum()
    assert x.is_leaf and not y.is_leaf and not z.is_leaf
    assert x.is_leaf == tx.is_leaf and y.is_leaf == ty.is_leaf
    z.backward()
    tz.backward()
    assert y.grad is None  # not kept on a non-leaf
    assert_close(x.grad, tx.grad)


def test_retain_grad_keeps_the_grad_of_a_non_leaf(torch: Any) -> None:
    data = RNG.standard_normal(3)
    x, tx = pair(torch, data)
    y, ty = x * 3, tx * 3
    y.retain_grad()
    ty.retain_grad()
    z, tz = (y * y + y).sum(), (ty * ty + ty).sum()
    z.backward(retain_graph=True)
    tz.backward(retain_graph=True)
    assert_close(y.grad, ty.grad)
    z.backward()
    tz.backward()
    assert_close(y.grad, ty.grad)  # accumulated across the two calls, as torch does
    assert_close(x.grad, tx.grad)


def test_detach_cuts_the_graph(torch: Any) -> None:
    data = RNG.standard_normal(3)
    x, tx = pair(torch, data)
    y, ty = x.exp(), tx.exp()
    z, tz = (y.detach() * y + x).sum(), (ty.detach() * ty + tx).sum()
    z.backward()
    tz.backward()
    assert_close(x.grad, tx.grad)


def test_graph_is_built_only_when_an_input_requires_grad() -> None:
    a = mr.tensor([1.0, 2.0])
    b = mr.tensor([3.0, 4.0])
    c = (a * b + a).exp()
    assert c.grad_fn is None and not c.requires_grad and c.is_leaf
    w = mr.tensor([0.5, 0.5], requires_grad=True)
    d = a * w + b
    assert d.grad_fn is not None and d.requires_grad
    d.sum().backward()
    assert a.grad is None and b.grad is None
    np.testing.assert_array_equal(w.grad.numpy(), [1.0, 2.0])


def test_needs_input_grad_tells_the_function_which_inputs_need_a_gradient() -> None:
    seen = {}

    class Probe(Function):
        def forward(self, a: Any, b: Any) -> Any:
            seen["forward"] = self.needs_input_grad
            return a * b

        def backward(self, g: Any) -> tuple[Any, Any]:
            seen["backward"] = self.needs_input_grad
            return (g * 2 if self.needs_input_grad[0] else None), (
                g * 3 if self.needs_input_grad[1] else None
            )

    a = mr.tensor([1.0], requires_grad=True)
    b = mr.tensor([1.0])
    Probe()(a, b).sum().backward()
    assert seen == {"forward": (True, False), "backward": (True, False)}
    assert b.grad is None and a.grad.numpy().tolist() == [2.0]


@pytest.mark.parametrize(
    "to_int",
    [lambda t: t.long(), lambda t: t.int(), lambda t: t.to(mr.int64), lambda t: t.argmax(0), lambda t: t > 0],
    ids=["long", "int", "to_int64", "argmax", "gt"],
)
def test_integer_and_bool_results_carry_no_grad(torch: Any, to_int: Callable) -> None:
    x = mr.tensor([1.5, -2.5, 3.0], requires_grad=True)
    y = to_int(x)
    assert y.dtype.kind in "iub"
    assert not y.requires_grad and y.grad_fn is None and y.is_leaf
    tx = torch.tensor([1.5, -2.5, 3.0], requires_grad=True)
    assert not any(t.requires_grad for t in (tx.long(), tx.int(), tx.argmax(0), tx > 0))  # as in torch
    back = y.to(mr.float32) * x  # a float result from the int: the gradient reaches x only directly
    back.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), y.numpy().astype(np.float32))


def test_int_roundtrip_blocks_the_gradient() -> None:
    x = mr.tensor([1.5, 2.5], requires_grad=True)
    y = x.long().float()
    assert not y.requires_grad
    with pytest.raises(mr.GraphError):
        y.sum().backward()


# ----- hooks --------------------------------------------------------------------------------------------
def test_hook_on_a_leaf_sees_and_can_replace_the_grad(torch: Any) -> None:
    data = RNG.standard_normal(3)
    results = []
    for lib in (mr, torch):
        x = lib.tensor(data, requires_grad=True)
        seen: list[np.ndarray] = []
        x.register_hook(lambda g, seen=seen: seen.append(g.detach().numpy().copy()))
        x.register_hook(lambda g: g * 10)
        (x.exp() * 2).sum().backward()
        results.append((seen, x.grad.detach().numpy()))
    (seen, grad), (tseen, tgrad) = results
    assert len(seen) == len(tseen) == 1
    np.testing.assert_allclose(seen[0], tseen[0], rtol=1e-12)
    np.testing.assert_allclose(grad, tgrad, rtol=1e-12)
    np.testing.assert_allclose(grad, 20 * np.exp(data), rtol=1e-12)


def test_hook_on_a_leaf_used_twice_runs_once_with_the_summed_grad(torch: Any) -> None:
    data = np.array([1.0, 2.0])
    calls = {}
    for lib in (mr, torch):
        x = lib.tensor(data, requires_grad=True)
        seen: list[list[float]] = []
        x.register_hook(lambda g, seen=seen: seen.append(g.tolist()))
        (x * x + x).sum().backward()
        calls[lib.__name__] = seen
    assert calls["torch"] == [[3.0, 5.0]]
    assert calls["minires"] == calls["torch"]


def test_hook_on_a_non_leaf_sees_and_can_replace_the_grad(torch: Any) -> None:
    data = RNG.standard_normal(3)
    out = {}
    for lib in (mr, torch):
        x = lib.tensor(data, requires_grad=True)
        y = x * 3
        seen: list[np.ndarray] = []
        y.register_hook(lambda g, seen=seen: seen.append(g.detach().numpy().copy()))
        y.register_hook(lambda g: g * 2)
        (y * y + y).sum().backward()
        out[lib.__name__] = (seen, x.grad.detach().numpy())
    (seen, grad), (tseen, tgrad) = out["minires"], out["torch"]
    assert len(seen) == len(tseen) == 1  # once, with the sum over y's two uses
    np.testing.assert_allclose(seen[0], tseen[0], rtol=1e-12)
    np.testing.assert_allclose(grad, tgrad, rtol=1e-12)


def test_retain_grad_sees_the_grad_after_hooks_whatever_the_order(torch: Any) -> None:
    data = np.array([1.0, 2.0])
    for hook_first in (False, True):
        grads = {}
        for lib in (mr, torch):
            x = lib.tensor(data, requires_grad=True)
            y = x * 3
            if hook_first:
                y.register_hook(lambda g: g * 2)
                y.retain_grad()
            else:
                y.retain_grad()
                y.register_hook(lambda g: g * 2)
            y.sum().backward()
            grads[lib.__name__] = (y.grad.detach().numpy(), x.grad.detach().numpy())
        np.testing.assert_array_equal(grads["torch"][0], [2.0, 2.0])
        np.testing.assert_array_equal(
            grads["minires"][0], grads["torch"][0], err_msg=f"hook_first={hook_first}"
        )
        np.testing.assert_array_equal(grads["minires"][1], grads["torch"][1])


def test_hook_handle_remove(torch: Any) -> None:
    for on_leaf in (True, False):
        x = mr.tensor([1.0, 2.0], requires_grad=True)
        target = x if on_leaf else x * 1.0
        calls: list[int] = []

        def hook(g: mr.Tensor, calls: list[int] = calls) -> mr.Tensor:
            calls.append(1)
            return g * 10

        handle = target.register_hook(hook)
        (target * 2).sum().backward(retain_graph=True)
        handle.remove()
        (target * 2).sum().backward()
        assert len(calls) == 1
        np.testing.assert_array_equal(x.grad.numpy(), [22.0, 22.0])
        handle.remove()  # a second remove is harmless


def test_register_hook_on_a_tensor_not_requiring_grad_raises(torch: Any) -> None:
    with pytest.raises(RuntimeError):
        torch.ones(2).register_hook(lambda g: g)
    with pytest.raises(RuntimeError, match="grad"):
        mr.ones(2).register_hook(lambda g: g)


# ----- broadcasting gradients ---------------------------------------------------------------------------
BROADCAST_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b,
    "pow": lambda a, b: a**b,
    "mixed": lambda a, b: (a * b - b) / (a + 3),
}


@given(
    shapes=mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=4, min_side=1, max_side=4),
    op=st.sampled_from(sorted(BROADCAST_OPS)),
    seed=st.integers(0, 2**32 - 1),
)
@example(shapes=((3, 1), (1, 4)), op="mul", seed=0).via("the classic outer broadcast")
@example(shapes=((), (2, 3)), op="mul", seed=0).via("0-d with 2-d")
@example(shapes=((2, 3), ()), op="div", seed=0).via("2-d with 0-d")
@example(shapes=((4, 1, 3), (2, 1)), op="mixed", seed=0).via("both sides broadcast")
def test_broadcasting_gradients_sum_back_to_each_input_shape(
    torch: Any, backend: str, shapes: Any, op: str, seed: int
) -> None:
    a_shape, b_shape = shapes.input_shapes if hasattr(shapes, "input_shapes") else shapes
    rng = np.random.default_rng(seed)
    a_data = rng.uniform(0.5, 2.0, a_shape)  # positive: safe for div and for the base of pow
    b_data = rng.uniform(0.5, 2.0, b_shape)
    a, ta = pair(torch, a_data, backend)
    b, tb = pair(torch, b_data, backend)
    fn = BROADCAST_OPS[op]
    y, ty = fn(a, b), fn(ta, tb)
    assert_close(y, ty, rtol=1e-12)
    g = rng.standard_normal(tuple(ty.shape))
    y.backward(mr.tensor(g, device=backend))
    ty.backward(torch.tensor(g))
    assert a.grad.shape == a_shape and b.grad.shape == b_shape
    assert_close(a.grad, ta.grad, rtol=1e-10)
    assert_close(b.grad, tb.grad, rtol=1e-10)


def test_broadcasting_against_a_tensor_without_grad(torch: Any) -> None:
    a, ta = pair(torch, RNG.standard_normal((3, 1)))
    b, tb = pair(torch, RNG.standard_normal((2, 1, 4)), requires_grad=False)
    (a * b).sum().backward()
    (ta * tb).sum().backward()
    assert_close(a.grad, ta.grad)
    assert b.grad is None


# ----- devices ------------------------------------------------------------------------------------------
# The device tests run on the CuPy stand-in, and on real CuPy where a GPU is there (the `backend` fixture).
ON_THE_GPU = pytest.mark.parametrize(
    "backend", ["standin", pytest.param("cupy", marks=pytest.mark.gpu)], indirect=True
)


@ON_THE_GPU
def test_mixing_cpu_and_gpu_tensors_raises_device_error(backend: str) -> None:
    cpu = mr.ones(2, 3, requires_grad=True)
    gpu = mr.ones(2, 3, device=backend, requires_grad=True)
    for combine in (lambda a, b: a + b, lambda a, b: a * b, lambda a, b: a @ b.T):
        for a, b in ((cpu, gpu), (gpu, cpu)):
            with pytest.raises(mr.DeviceError, match=r"(?s)(cpu.*cuda|cuda.*cpu)"):
                combine(a, b)
    with pytest.raises(RuntimeError):  # also catchable as torch's error is
        cpu + gpu


@ON_THE_GPU
def test_gradients_flow_across_a_device_move(torch: Any, backend: str) -> None:
    data = RNG.standard_normal((2, 3))
    x, tx = pair(torch, data)
    y = x.to(backend)
    assert y.device == "cuda" and y.grad_fn is not None
    (y.exp() * 2).sum().backward()
    (tx.exp() * 2).sum().backward()
    assert x.grad.device == "cpu"
    assert_close(x.grad, tx.grad)


@ON_THE_GPU
def test_host_values_into_a_device_tensor(torch: Any, backend: str) -> None:
    """As torch: ``x[idx] = value`` copies a host array or a CPU tensor over (copy_'s rule); the in-place
    operators take scalars (NumPy's too) and refuse a host array on the GPU as the out-of-place ones do."""
    data = RNG.standard_normal((3, 4))
    x, tx = mr.tensor(data, device=backend), torch.tensor(data)
    row = RNG.standard_normal(4)
    x[1] = row
    tx[1] = torch.from_numpy(row)
    x[0] = mr.tensor(row)  # a CPU tensor into a device one
    tx[0] = torch.from_numpy(row)
    x[2, 1:3] = np.array([7.0, 8.0])
    tx[2, 1:3] = torch.tensor([7.0, 8.0], dtype=torch.float64)
    np.testing.assert_array_equal(x.numpy(), tx.numpy())
    other = RNG.standard_normal((3, 4))
    if backend != "cpu":
        with pytest.raises(mr.DeviceError, match=r"NumPy array of shape \(3, 4\)"):
            x += other
    x += mr.tensor(other, device=backend)
    x *= np.float64(2.0)
    tx += torch.from_numpy(other)
    tx *= 2.0
    np.testing.assert_array_equal(x.numpy(), tx.numpy())
    assert x.device == "cuda"
    with pytest.raises(mr.DeviceError, match="cuda and cpu"):
        x.add_(mr.tensor(other))  # a CPU tensor operand is refused, as torch refuses it


def test_an_assigned_grad_is_checked_as_torch_checks_it(torch: Any) -> None:
    """p.grad = g takes None or a Tensor of p's shape, dtype and device (torch raises otherwise)."""
    p, tp = mr.zeros(2, requires_grad=True), torch.zeros(2, requires_grad=True)
    for mine, theirs, error in (
        (mr.ones(3), torch.ones(3), mr.ShapeError),
        (mr.ones(2, dtype="float64"), torch.ones(2, dtype=torch.float64), mr.DTypeError),
        ([1.0, 2.0], [1.0, 2.0], TypeError),
    ):
        with pytest.raises((RuntimeError, TypeError)):
            tp.grad = theirs
        with pytest.raises(error):
            p.grad = mine
        assert p.grad is None
    p.grad = mr.ones(2)
    np.testing.assert_array_equal(p.grad.numpy(), [1.0, 1.0])
    p.grad = None
    assert p.grad is None


def test_a_hook_that_changes_the_size_or_type_of_the_grad_is_refused(torch: Any) -> None:
    for change, what in ((lambda g: mr.ones(3), "size"), (lambda g: g.to("float64"), "type")):
        x = mr.ones(2, requires_grad=True)
        x.register_hook(change)
        with pytest.raises(mr.GraphError, match=f"hook .* has changed the {what} of value"):
            (x * 2).sum().backward()
    tx = torch.ones(2, requires_grad=True)
    tx.register_hook(lambda g: torch.ones(3))
    with pytest.raises(RuntimeError, match="has changed the size of value"):
        (tx * 2).sum().backward()
