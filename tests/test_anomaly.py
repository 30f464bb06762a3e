"""Anomaly mode: off by default; on, a backward that computes NaN raises at the first op that does, naming
it and showing the forward line that created it, as torch.autograd.detect_anomaly does."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

import minires as mr
from minires.function import Function


@pytest.fixture(autouse=True)
def _anomaly_off() -> Iterator[None]:
    """Every test starts and ends with anomaly mode off, even when it fails half-way. NumPy's warnings for
    sqrt(-1) and log(-2) are silenced: the NaN itself is what these tests are about."""
    mr.autograd.set_detect_anomaly(False)
    with np.errstate(invalid="ignore", divide="ignore"):
        yield
    mr.autograd.set_detect_anomaly(False)


def sqrt_of_negative() -> mr.Tensor:
    x = mr.tensor([-1.0, 4.0], requires_grad=True)
    y = mr.sqrt(x)  # the line the error must show
    return (y * 0.5).sum()


def test_off_by_default_nan_passes_silently() -> None:
    assert not mr.autograd.is_anomaly_enabled()
    x = mr.tensor([-1.0, 4.0], requires_grad=True)
    y = mr.sqrt(x)
    assert y.grad_fn.creation_stack is None  # nothing recorded when off
    y.sum().backward()
    assert np.isnan(x.grad.numpy()[0])


def test_the_first_nan_op_is_named_with_its_forward_line(torch: Any) -> None:
    with mr.autograd.detect_anomaly():
        assert mr.autograd.is_anomaly_enabled()
        loss = sqrt_of_negative()
        with pytest.raises(RuntimeError) as info:
            loss.backward()
    assert not mr.autograd.is_anomaly_enabled()
    message = str(info.value)
    assert message.startswith("Function 'SqrtBackward' returned nan values in its 0th output.")
    assert "Traceback of forward call that caused the error" in message
    assert "in sqrt_of_negative" in message and "y = mr.sqrt(x)  # the line the error must show" in message
    assert "function.py" not in message  # the engine's own frames are left out
    # torch names the same op (SqrtBackward0) in the same words
    tx = torch.tensor([-1.0, 4.0], requires_grad=True)
    with pytest.warns(UserWarning), torch.autograd.detect_anomaly():
        with pytest.raises(
            RuntimeError, match=r"Function 'SqrtBackward0' returned nan values in its 0th output"
        ):
            (torch.sqrt(tx) * 0.5).sum().backward()


def test_names_the_first_op_in_backward_order_and_the_input_position() -> None:
    """log(x) gives -inf/NaN only in backward of a later op; the error must point at the op whose
    backward first produced NaN, and at which of its inputs (the 1st: the exponent of pow)."""
    with mr.autograd.detect_anomaly():
        a = mr.tensor([2.0, 3.0], requires_grad=True)
        b = mr.tensor([-1.0, 0.5], requires_grad=True)  # a ** b with a > 0: fine for a
        base = mr.tensor([-2.0, 3.0], requires_grad=True)  # (-2) ** b: NaN in d/db (log of -2)
        y = (a**b).sum() + (base**b).sum()
        with pytest.raises(
            RuntimeError, match=r"'PowBackward' returned nan values in its 1th output"
        ) as info:
            y.backward()
    assert "base**b" in str(info.value)


def test_a_node_created_outside_anomaly_mode_still_raises_without_a_stack() -> None:
    loss = sqrt_of_negative()
    mr.autograd.set_detect_anomaly(True)
    with pytest.raises(RuntimeError, match=r"SqrtBackward.*\n.*No forward pass information") as info:
        loss.backward()
    assert "Traceback" not in str(info.value)


def test_grad_checks_too_and_finite_runs_pass() -> None:
    with mr.autograd.detect_anomaly():
        x = mr.tensor([1.0, 4.0], requires_grad=True)
        (g,) = mr.autograd.grad(mr.sqrt(x).sum(), x)  # finite: no error
        np.testing.assert_allclose(g.numpy(), [0.5, 0.25])
        negative = mr.tensor([-1.0, 4.0], requires_grad=True)
        with pytest.raises(RuntimeError, match="SqrtBackward"):
            mr.autograd.grad(mr.sqrt(negative).sum(), [negative])


def test_set_detect_anomaly_as_a_call_and_as_a_block_and_the_decorator() -> None:
    mr.autograd.set_detect_anomaly(True)
    assert mr.autograd.is_anomaly_enabled()
    with mr.autograd.set_detect_anomaly(False):
        assert not mr.autograd.is_anomaly_enabled()
    assert mr.autograd.is_anomaly_enabled()  # the block put back what was there
    mr.autograd.set_detect_anomaly(False)

    @mr.autograd.detect_anomaly()
    def step() -> bool:
        return mr.autograd.is_anomaly_enabled()

    assert step() and not mr.autograd.is_anomaly_enabled()


def test_off_costs_no_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    """When off, creating a node never builds a stack (the recording function is not even called)."""
    import minires.function as function

    calls = []
    monkeypatch.setattr(function, "_forward_stack", lambda: calls.append(1))
    mr.sqrt(mr.tensor([1.0], requires_grad=True)).sum().backward()
    assert calls == []
    with mr.autograd.detect_anomaly():
        mr.sqrt(mr.tensor([1.0], requires_grad=True))
    assert calls == [1]


def test_a_custom_function_is_named_by_its_class() -> None:
    class Halve(Function):
        def forward(self, x: Any) -> Any:
            return x / 2

        def backward(self, g: Any) -> Any:
            return g * np.nan

    with mr.autograd.detect_anomaly():
        x = mr.tensor([1.0], requires_grad=True)
        with pytest.raises(RuntimeError, match=re.escape("Function 'HalveBackward' returned nan values")):
            Halve()(x).sum().backward()


def test_on_every_backend(backend: str) -> None:
    """The NaN check runs on the device's arrays (on CuPy a sync, paid only in anomaly mode)."""
    with mr.autograd.detect_anomaly():
        x = mr.tensor([-1.0, 4.0], device=backend, requires_grad=True)
        loss = (mr.sqrt(x) * 2).sum()
        with pytest.raises(RuntimeError, match="'SqrtBackward' returned nan values in its 0th output"):
            loss.backward()
        y = mr.tensor([1.0, 4.0], device=backend, requires_grad=True)
        (mr.sqrt(y) * 2).sum().backward()
    np.testing.assert_allclose(y.grad.numpy(), [1.0, 0.5])
