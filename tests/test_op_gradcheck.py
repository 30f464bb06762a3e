"""Every op's backward against central differences in float64, driven by the op table (tests/op_table.py).

``mr.gradcheck`` perturbs every element of every input that requires grad; a few rows also draw large
samples for ``mr.directional_gradcheck``, whose cost does not grow with the size. The checker itself is
tested first: on backward passes that are deliberately wrong it must fail, and name where.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from op_table import OPS, OPS_BY_NAME, OpInfo, Sample, to_minires

import minires as mr
import minires.nn.functional as F
from minires.function import Function
from minires.ops import registry
from minires.ops.broadcast import sum_to

# The tests are parametrized by the row's name, not the row: hypothesis then replays its examples reliably.

# Tolerances for float64 central differences with eps = 1e-6: truncation error ~ eps^2 |f'''|, rounding
# ~ 1e-16 |L| / eps; both far below these. A wrong backward is off by far more (factors, whole terms).
GRADCHECK_TOL = {"eps": 1e-6, "atol": 1e-6, "rtol": 1e-4}
# The table is the check of every backward: at least 100 examples per op, under the quick ci profile too.
EXAMPLES = settings(max_examples=max(100, settings.default.max_examples))


def _draw(data: st.DataObject, row: OpInfo, strategy: st.SearchStrategy[Sample]) -> Sample:
    sample = data.draw(strategy, label="sample")
    if row.kinks is not None:
        assume(not row.kinks(sample))  # resample instead of differentiating across a kink
    return sample


@pytest.mark.parametrize("name", [row.name for row in OPS])
@EXAMPLES
@given(data=st.data())
def test_gradcheck(name: str, data: st.DataObject) -> None:
    row = OPS_BY_NAME[name]
    sample = _draw(data, row, row.sample)
    args, kwargs = to_minires(sample, mr.float64)

    def fn(*xs: Any) -> mr.Tensor:
        return row.call(sample, *xs, **kwargs)

    assert mr.gradcheck(fn, args, **GRADCHECK_TOL)


@pytest.mark.parametrize("backend", ["standin", pytest.param("cupy", marks=pytest.mark.gpu)], indirect=True)
@pytest.mark.parametrize("name", [row.name for row in OPS])
@settings(max_examples=8)
@given(data=st.data())
def test_gradcheck_on_the_device(name: str, backend: str, data: st.DataObject) -> None:
    """The same check with the inputs on the GPU (the CuPy stand-in where there is none): the backward
    formulas run through CuPy's code path, and gradcheck's own driver too. Fewer examples: the formulas
    are checked above; here, their device path."""
    row = OPS_BY_NAME[name]
    sample = _draw(data, row, row.sample)
    args, kwargs = to_minires(sample, mr.float64, backend)

    def fn(*xs: Any) -> mr.Tensor:
        return row.call(sample, *xs, **kwargs)

    assert mr.gradcheck(fn, args, **GRADCHECK_TOL)


@pytest.mark.parametrize("name", [row.name for row in OPS if row.big is not None])
@settings(max_examples=5)
@given(data=st.data())
def test_directional_gradcheck_on_large_inputs(name: str, data: st.DataObject) -> None:
    row = OPS_BY_NAME[name]
    sample = _draw(data, row, row.big)
    args, kwargs = to_minires(sample, mr.float64)

    def fn(*xs: Any) -> mr.Tensor:
        return row.call(sample, *xs, **kwargs)

    assert mr.directional_gradcheck(fn, args, n_directions=3, **GRADCHECK_TOL)


# ----- the table covers the API ---------------------------------------------------------------------------
# The public spellings of the ops with a gradient (API.md's Functional section, the Tensor methods and mr
# functions of "Tensors and autograd", and more) are the ``api`` of the registry's entries; the exported
# functions without a gradient are these.
NO_GRADIENT = {"mr.argmax", "mr.argmin"}


def test_every_op_has_a_row() -> None:
    """Every public spelling in the registry (``F.conv2d``, ``Tensor.view``, ``Tensor.__radd__``) is
    tested by the op-table row of its entry."""
    missing = {api: name for api, name in registry.api().items() if name not in OPS_BY_NAME}
    assert not missing, f"API ops without a row in tests/op_table.py: {missing}"


def test_every_exported_op_has_a_row() -> None:
    """Every op function minires exports (in ``mr`` and ``nn.functional``) is a public spelling of a
    registry entry, whose row tests it, or has no gradient."""
    exported = {
        f"{prefix}.{name}"
        for prefix, module in (("mr", mr), ("F", F))
        for name in dir(module)
        if callable(getattr(module, name))
        and getattr(getattr(module, name), "__module__", "").startswith("minires.ops")
    }
    spelled = registry.api()
    missing = sorted(s for s in exported - NO_GRADIENT if spelled.get(s) not in OPS_BY_NAME)
    assert not missing, (
        f"exported ops that no registry entry with a row in tests/op_table.py names: {missing}"
    )


# ----- the checker fails on wrong backward passes ---------------------------------------------------------
class _Mul(Function):
    """y = a * b, broadcast; the correct backward, the control."""

    scale = 1.0

    def forward(self, a: Any, b: Any) -> Any:
        self.a, self.b = a, b
        return a * b

    def backward(self, g: Any) -> tuple[Any, Any]:
        return self.scale * sum_to(g * self.b, self.a.shape), sum_to(g * self.a, self.b.shape)


class _ScaledMul(_Mul):
    """da off by a constant factor."""

    def __init__(self, scale: float) -> None:
        self.scale = scale


class _AddMeanNotSum(Function):
    """y = a + b with b broadcast; the backward averages b's gradient over the broadcast rows (instead
    of summing them): the right shape, the wrong values."""

    def forward(self, a: Any, b: Any) -> Any:
        self.a_shape, self.b_shape = a.shape, b.shape
        return a + b

    def backward(self, g: Any) -> tuple[Any, Any]:
        return sum_to(g, self.a_shape), g.mean(axis=0)


class _ExpWrongAt(Function):
    """y = e^x with a backward that is right everywhere but at one element."""

    def __init__(self, where: tuple[int, ...]) -> None:
        self.where = where

    def forward(self, x: Any) -> Any:
        self.y = np.exp(x)
        return self.y

    def backward(self, g: Any) -> Any:
        dx = g * self.y
        dx[self.where] += 0.01
        return dx


def _inputs(*shapes: tuple[int, ...]) -> list[mr.Tensor]:
    rng = np.random.default_rng(0)
    return [mr.tensor(rng.standard_normal(s), requires_grad=True) for s in shapes]


def test_gradcheck_passes_a_correct_backward() -> None:
    assert mr.gradcheck(lambda a, b: _Mul()(a, b), _inputs((3, 4), (4,)), **GRADCHECK_TOL)
    assert mr.directional_gradcheck(lambda a, b: _Mul()(a, b), _inputs((3, 4), (4,)), **GRADCHECK_TOL)


@pytest.mark.parametrize("scale", [2.0, 1.01])
def test_gradcheck_fails_a_scaled_gradient(scale: float) -> None:
    with pytest.raises(mr.GradcheckError, match=r"input 0 \(shape \(3, 4\)\) element \(\d, \d\)"):
        mr.gradcheck(lambda a, b: _ScaledMul(scale)(a, b), _inputs((3, 4), (3, 4)), **GRADCHECK_TOL)
    with pytest.raises(mr.GradcheckError, match="direction 0"):
        mr.directional_gradcheck(
            lambda a, b: _ScaledMul(scale)(a, b), _inputs((3, 4), (3, 4)), **GRADCHECK_TOL
        )


def test_gradcheck_fails_a_mean_in_place_of_sum_to() -> None:
    """Input 0's gradient is right; the message must name input 1, the broadcast one."""
    with pytest.raises(mr.GradcheckError, match=r"input 1 \(shape \(4,\)\)"):
        mr.gradcheck(lambda a, b: _AddMeanNotSum()(a, b), _inputs((3, 4), (4,)), **GRADCHECK_TOL)


@pytest.mark.parametrize("where", [(1, 2), (0, 0), (2, 3)])
def test_gradcheck_names_the_one_wrong_element(where: tuple[int, int]) -> None:
    with pytest.raises(mr.GradcheckError) as info:
        mr.gradcheck(lambda x: _ExpWrongAt(where)(x), _inputs((3, 4)), **GRADCHECK_TOL)
    message = str(info.value)
    assert re.search(rf"input 0 \(shape \(3, 4\)\) element \({where[0]}, {where[1]}\)", message), message
    assert "analytic" in message and "numerical" in message, message
