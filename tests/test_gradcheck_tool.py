"""``mr.gradcheck`` and ``mr.directional_gradcheck`` themselves: they pass correct backwards and catch
wrong ones (slightly scaled, wrong at one element, missing the sum over a broadcast axis), with a message
that says where; they check only the inputs that require grad, in float64.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest

import minires as mr
from minires.function import Function
from minires.ops.broadcast import sum_to

RNG = np.random.default_rng(99)
FLOAT = r"[-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|inf|nan)"


def numbers_in(message: str) -> list[float]:
    return [float(m) for m in re.findall(FLOAT, message)]


class ScaledSquare(Function):
    """y = x^2 with backward 2 x g scaled by ``scale`` (1.0 is right)."""

    def __init__(self, scale: float = 1.0) -> None:
        self.scale = scale

    def forward(self, x: Any) -> Any:
        self.x = x
        return x * x

    def backward(self, g: Any) -> Any:
        return self.scale * 2 * self.x * g


class MulWrongAt(Function):
    """y = a * b whose gradient for input ``which`` is off by ``delta`` at element ``index``.

    Records the upstream gradient g so that the test can compute both the right and the reported value.
    """

    last_g: Any = None  # the upstream gradient of the latest backward (on the class)

    def __init__(self, which: int, index: tuple[int, ...], delta: float) -> None:
        self.which, self.index, self.delta = which, index, delta

    def forward(self, a: Any, b: Any) -> Any:
        self.a, self.b = a, b
        return a * b

    def backward(self, g: Any) -> tuple[Any, Any]:
        type(self).last_g = g.copy()
        grads = [g * self.b, g * self.a]
        grads[self.which] = grads[self.which].copy()
        grads[self.which][self.index] += self.delta
        return grads[0], grads[1]


class AddForgetsSumTo(Function):
    """y = a + b with b broadcast along axis 0, whose backward forgets to sum over that axis for b.

    ``shape_preserving``: b's gradient is g's first row (the right shape, the wrong value); otherwise it
    is g itself (the wrong shape).
    """

    def __init__(self, shape_preserving: bool) -> None:
        self.shape_preserving = shape_preserving

    def forward(self, a: Any, b: Any) -> Any:
        self.a_shape = a.shape
        return a + b

    def backward(self, g: Any) -> tuple[Any, Any]:
        db = g[:1] if self.shape_preserving else g
        return sum_to(g, self.a_shape), db


class DtypeProbe(Function):
    """y = x^3, recording the dtypes that forward and backward see."""

    seen: list[Any] = []

    def forward(self, x: Any) -> Any:
        type(self).seen.append(("forward", x.dtype))
        self.x = x
        return x**3

    def backward(self, g: Any) -> Any:
        type(self).seen.append(("backward", g.dtype))
        return 3 * self.x**2 * g


def leaf(*shape: int, requires_grad: bool = True, dtype: Any = np.float64, low: float = -1.0) -> mr.Tensor:
    return mr.tensor(RNG.uniform(low, 1.0, shape).astype(dtype), requires_grad=requires_grad)


# ----- correct ops pass ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("fn", "shapes"),
    [
        (lambda x: ScaledSquare()(x), [(3, 2)]),
        (lambda a, b: a * b + a / (b * b + 1), [(2, 3), (3,)]),
        (lambda a, b: (a @ b).exp(), [(2, 3), (3, 4)]),
        (lambda x: x.softmax(1), [(3, 4)]),
        (lambda x: x.max(1).values * 2, [(3, 4)]),
        (lambda x: x.reshape(2, 6).permute(1, 0)[1:4], [(3, 4)]),
        (lambda x: x[[0, 0, 2]].sum(0), [(3, 2)]),
        (lambda x: x.mean(), [()]),
    ],
    ids=["custom_square", "broadcast_arith", "matmul_exp", "softmax", "max_dim", "shape", "getitem", "0-d"],
)
def test_gradcheck_passes_correct_ops(fn: Any, shapes: list[tuple[int, ...]]) -> None:
    inputs = [leaf(*s) for s in shapes]
    assert mr.gradcheck(fn, inputs) is True
    assert mr.directional_gradcheck(fn, inputs) is True


def test_gradcheck_accepts_a_single_tensor() -> None:
    assert mr.gradcheck(lambda x: x.exp(), leaf(2, 2)) is True


def test_gradcheck_leaves_the_callers_inputs_alone() -> None:
    x = leaf(2, 3, dtype=np.float32)
    before = x.numpy()
    mr.gradcheck(lambda t: ScaledSquare()(t), [x])
    assert x.dtype == mr.float32 and x.grad is None
    np.testing.assert_array_equal(x.numpy(), before)


# ----- wrong backwards fail -----------------------------------------------------------------------------
def test_gradcheck_catches_a_backward_scaled_by_1_01() -> None:
    x = leaf(3, 2, low=0.5)  # gradients of order 1: 1% is far beyond atol + rtol |g|
    with pytest.raises(mr.GradcheckError, match="input 0"):
        mr.gradcheck(lambda t: ScaledSquare(1.01)(t), [x])
    # within the tolerance it passes, and a looser tolerance accepts the 1% error
    assert mr.gradcheck(lambda t: ScaledSquare(1.0 + 1e-6)(t), [x])
    assert mr.gradcheck(lambda t: ScaledSquare(1.01)(t), [x], rtol=0.05)


def test_gradcheck_error_is_a_runtime_error() -> None:
    with pytest.raises(RuntimeError):
        mr.gradcheck(lambda t: ScaledSquare(1.5)(t), [leaf(2)])


@pytest.mark.parametrize(("which", "index"), [(0, (0, 0)), (1, (1, 2)), (1, (0, 1))])
def test_gradcheck_catches_one_wrong_element_and_names_it(which: int, index: tuple[int, int]) -> None:
    a, b = leaf(2, 3), leaf(2, 3)
    delta = 0.25
    with pytest.raises(mr.GradcheckError) as info:
        mr.gradcheck(lambda x, y: MulWrongAt(which, index, delta)(x, y), [a, b])
    message = str(info.value)
    assert re.search(rf"input\D{{0,10}}{which}\b", message), message
    assert f"({index[0]}, {index[1]})" in message or f"[{index[0]}, {index[1]}]" in message, message
    # both values: the numerical one is the true derivative g * (other input), the analytic one adds delta
    g = MulWrongAt.last_g[index]
    other = (b if which == 0 else a).numpy()[index]
    right, wrong = g * other, g * other + delta
    values = numbers_in(message)
    assert any(abs(v - wrong) < 1e-6 * max(1.0, abs(wrong)) for v in values), (message, wrong)
    assert any(abs(v - right) < 1e-5 * max(1.0, abs(right)) for v in values), (message, right)


def test_gradcheck_message_prints_plain_numbers() -> None:
    with pytest.raises(mr.GradcheckError) as info:
        mr.gradcheck(lambda t: ScaledSquare(1.5)(t), [leaf(2, low=0.5)])
    assert "np.float64" not in str(info.value) and "float64(" not in str(info.value), info.value


def test_gradcheck_names_the_position_among_all_arguments() -> None:
    # input positions count the non-Tensor arguments too, as the caller wrote them
    a, b = leaf(2, 3), leaf(2, 3)
    with pytest.raises(mr.GradcheckError, match=r"input\D{0,10}2\b"):
        mr.gradcheck(lambda x, k, y: MulWrongAt(1, (0, 0), 0.5)(x * k, y), [a, 2.0, b])


def test_gradcheck_catches_a_missing_sum_over_a_broadcast_axis() -> None:
    a, b = leaf(3, 4), leaf(1, 4)
    with pytest.raises(mr.GradcheckError, match=r"input\D{0,10}1\b"):
        mr.gradcheck(lambda x, y: AddForgetsSumTo(shape_preserving=True)(x, y), [a, b])
    assert mr.gradcheck(lambda x, y: x + y, [a, b])  # the real add is right


def test_gradcheck_reports_a_gradient_of_the_wrong_shape() -> None:
    a, b = leaf(3, 4), leaf(1, 4)
    with pytest.raises((mr.GradcheckError, mr.GraphError)) as info:
        mr.gradcheck(lambda x, y: AddForgetsSumTo(shape_preserving=False)(x, y), [a, b])
    message = str(info.value)
    assert "(3, 4)" in message and "(1, 4)" in message, message


def test_gradcheck_catches_an_error_in_a_0d_input() -> None:
    with pytest.raises(mr.GradcheckError, match="input 0"):
        mr.gradcheck(lambda t: ScaledSquare(1.1)(t), [mr.tensor(np.array(0.7), requires_grad=True)])


# ----- what is checked ----------------------------------------------------------------------------------
def test_inputs_not_requiring_grad_are_not_checked() -> None:
    a = leaf(2, 3)
    b = leaf(2, 3, requires_grad=False)
    # b's gradient is wrong, but nobody asked for it
    assert mr.gradcheck(lambda x, y: MulWrongAt(1, (0, 0), 5.0)(x, y), [a, b]) is True
    assert mr.directional_gradcheck(lambda x, y: MulWrongAt(1, (0, 0), 5.0)(x, y), [a, b]) is True
    with pytest.raises(mr.GradcheckError):
        mr.gradcheck(lambda x, y: MulWrongAt(0, (0, 0), 5.0)(x, y), [a, b])


def test_non_tensor_arguments_are_passed_through() -> None:
    seen = []

    def fn(x: mr.Tensor, k: float, dim: int, name: str, labels: mr.Tensor) -> mr.Tensor:
        seen.append((k, dim, name, labels.dtype))
        return (x * k).softmax(dim)[mr.tensor([0, 1]), labels]

    x = leaf(2, 3)
    labels = mr.tensor([2, 0])
    assert mr.gradcheck(fn, [x, 1.5, 1, "tag", labels]) is True
    assert mr.directional_gradcheck(fn, [x, 1.5, 1, "tag", labels]) is True
    assert seen and all(s == (1.5, 1, "tag", mr.int64) for s in seen)


def test_float32_inputs_are_checked_in_float64() -> None:
    DtypeProbe.seen = []
    x = leaf(2, 2, dtype=np.float32)
    assert mr.gradcheck(lambda t: DtypeProbe()(t), [x]) is True
    assert DtypeProbe.seen, "the function was not called"
    assert {dtype for _, dtype in DtypeProbe.seen} == {np.dtype(np.float64)}
    assert ("backward", np.dtype(np.float64)) in DtypeProbe.seen
    DtypeProbe.seen = []
    assert mr.directional_gradcheck(lambda t: DtypeProbe()(t), [x]) is True
    assert {dtype for _, dtype in DtypeProbe.seen} == {np.dtype(np.float64)}


def test_float32_precision_would_not_pass_but_float64_checking_does() -> None:
    # x^3 near 10 has large values: in float32 a central difference with eps=1e-6 would be noise.
    x = mr.tensor(np.full((2,), 10.0, dtype=np.float32), requires_grad=True)
    assert mr.gradcheck(lambda t: DtypeProbe()(t), [x]) is True


@pytest.mark.parametrize("check", [mr.gradcheck, mr.directional_gradcheck])
def test_no_input_requiring_grad_raises_value_error(check: Any) -> None:
    with pytest.raises(ValueError, match="requires_grad"):
        check(lambda x, y: x * y, [leaf(2, requires_grad=False), leaf(2, requires_grad=False)])
    with pytest.raises(ValueError):
        check(lambda x, k: x * k, [leaf(2, requires_grad=False), 3.0])


# ----- directional_gradcheck ----------------------------------------------------------------------------
def test_directional_gradcheck_catches_wrong_backwards() -> None:
    x = leaf(3, 2, low=0.5)
    with pytest.raises(mr.GradcheckError):
        mr.directional_gradcheck(lambda t: ScaledSquare(1.01)(t), [x])
    a, b = leaf(2, 3), leaf(2, 3)
    with pytest.raises(mr.GradcheckError):
        mr.directional_gradcheck(lambda p, q: MulWrongAt(1, (1, 2), 1.0)(p, q), [a, b])
    a, b = leaf(3, 4), leaf(1, 4)
    with pytest.raises(mr.GradcheckError):
        mr.directional_gradcheck(lambda p, q: AddForgetsSumTo(shape_preserving=True)(p, q), [a, b])


def test_directional_gradcheck_message_gives_both_values() -> None:
    x = leaf(3, 2, low=0.5)
    with pytest.raises(mr.GradcheckError) as info:
        mr.directional_gradcheck(lambda t: ScaledSquare(2.0)(t), [x])
    values = numbers_in(str(info.value))
    # with the backward doubled, the analytic directional derivative is twice the numerical one
    assert any(abs(p - 2 * q) < 1e-6 * max(1.0, abs(p)) for p in values for q in values if q != 0), info.value


@pytest.mark.parametrize("n_directions", [1, 5])
def test_directional_gradcheck_passes_a_deeper_correct_function(n_directions: int) -> None:
    w1, w2 = leaf(4, 8), leaf(8, 3)
    x = leaf(5, 4, requires_grad=False)

    def net(a: mr.Tensor, w_1: mr.Tensor, w_2: mr.Tensor) -> mr.Tensor:
        return ((a @ w_1).tanh() @ w_2).log_softmax(1)

    assert mr.directional_gradcheck(net, [x, w1, w2], n_directions=n_directions) is True
