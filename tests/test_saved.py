"""Each Function states what its forward keeps for backward (``saved``), and nothing else is kept: every op
of the registry runs its example with ``Function.__call__`` watched, and the attributes forward set are
compared with the class's ``saved``; after backward the arrays among them are freed (shapes and flags stay,
as PyTorch keeps them)."""

from __future__ import annotations

import numpy as np
import pytest

import minires as mr
from minires.autograd import topological_order
from minires.function import Function, _holds_array
from minires.ops import registry

# Set by Function.__call__ itself when it records the node, not by forward.
ENGINE = {"needs_input_grad", "next_nodes", "input_shapes", "_output_ref"}


@pytest.mark.parametrize("name", registry.names())
def test_forward_keeps_only_what_saved_names(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[type, set[str]] = {}
    call = Function.__call__

    def watched(self: Function, *inputs):
        before = set(vars(self))
        out = call(self, *inputs)
        seen.setdefault(type(self), set()).update(set(vars(self)) - before - ENGINE)
        return out

    monkeypatch.setattr(Function, "__call__", watched)
    fn, inputs = registry.get(name).sample(np.random.default_rng(0))
    out = fn(*inputs)
    assert seen, f"{name}: no Function ran"
    for cls, kept in seen.items():
        undeclared = kept - set(cls.saved)
        assert not undeclared, f"{cls.__name__}.forward keeps {sorted(undeclared)}, not named in saved"
    out.sum().backward() if out.ndim else out.backward()
    for node in topological_order(out.grad_fn) if out.grad_fn is not None else []:
        left = [k for k in node.saved if k in vars(node) and _holds_array(vars(node)[k])]
        assert not left, f"{type(node).__name__}: {left} still held after backward"
    assert any(isinstance(t, mr.Tensor) and t.grad is not None for t in inputs)
