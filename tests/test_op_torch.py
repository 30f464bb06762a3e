"""Every op against PyTorch, driven by the op table (tests/op_table.py): forward values, output shape and
dtype, and the gradient of every input, in float32 and float64, on each backend.

The same sample goes to the minires op and to its torch twin (torch on the CPU), and both outputs are
pulled back with the same random upstream gradient. Tensors that an op updates in place (batch_norm's
running statistics) must match too. Dropout with 0 < p < 1 draws a random mask, which no two libraries
share: there the mask itself is checked (kept values and their gradients scaled by 1/(1-p), the same
mask again under the same seed, about a fraction p dropped).
"""

from __future__ import annotations

import operator
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from op_table import OPS, OPS_BY_NAME, OpInfo, Sample, to_minires, to_torch

import minires as mr
import minires.nn.functional as F

RTOL64 = 1e-10
# The table is the check of every op against torch: at least 100 examples, under the quick ci profile too.
EXAMPLES = settings(max_examples=max(100, settings.default.max_examples))


def assert_close(actual: np.ndarray, expected: np.ndarray, rtol: float, what: str) -> None:
    """|actual - expected| <= atol + rtol |expected| elementwise, atol = rtol * max(1, max |expected|):
    the absolute part scales with the values, so that a sum that cancels to near 0 is judged against
    the size of its terms. NaN equals NaN and inf equals inf of the same sign (as in PyTorch's results)."""
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape}, torch's {expected.shape}"
    finite = np.abs(expected[np.isfinite(expected)])
    atol = rtol * max(1.0, float(finite.max()) if finite.size else 1.0)
    ok = np.isclose(actual, expected, rtol=rtol, atol=atol, equal_nan=True)
    if not ok.all():
        bad = np.argwhere(~ok)
        worst = tuple(int(i) for i in bad[np.argmax(np.abs(actual - expected)[~ok])]) if actual.ndim else ()
        raise AssertionError(
            f"{what}: {len(bad)} of {actual.size} elements differ from torch's (rtol={rtol:g}, "
            f"atol={atol:.3g}); at {worst}: minires {actual[worst]!r}, torch {expected[worst]!r}"
        )


def _np_dtype(torch_dtype: Any) -> np.dtype:
    return np.dtype(str(torch_dtype).removeprefix("torch."))


def _upstream(shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    return np.asarray(np.random.default_rng(1).standard_normal(shape), dtype=dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", [row.name for row in OPS])  # by name: hypothesis replays reliably
@EXAMPLES
@given(data=st.data())
def test_matches_torch(name: str, dtype: str, backend: str, torch: ModuleType, data: st.DataObject) -> None:
    row = OPS_BY_NAME[name]
    sample = data.draw(row.sample, label="sample")
    if row.kinks is not None:
        assume(not row.kinks(sample))  # where the two may pick different one-sided derivatives
    # Some of the inputs that can take a gradient, not always all: backward must skip the others.
    grad = tuple(sorted(data.draw(st.sets(st.sampled_from(sample.grad), min_size=1), label="grad")))
    rtol = row.rtol32 if dtype == "float32" else RTOL64
    if row.stochastic is not None and row.stochastic(sample):
        _check_random_mask(row, sample, np.dtype(dtype), backend, rtol)
        return

    args, kwargs = to_minires(sample, dtype, backend, grad)
    t_args, t_kwargs = to_torch(torch, sample, dtype, grad)
    out = row.call(sample, *args, **kwargs)
    ref = row.call_ref(sample, *t_args, **t_kwargs)

    assert isinstance(out, mr.Tensor), f"{name} returned {type(out).__name__}, not a Tensor"
    assert out.shape == tuple(ref.shape), f"output shape {out.shape}, torch's {tuple(ref.shape)}"
    assert out.dtype == _np_dtype(ref.dtype), f"output dtype {out.dtype}, torch's {ref.dtype}"
    if not row.moves_device:
        assert out.device == backend, f"output on {out.device}, input on {backend}"
    assert_close(out.numpy(), ref.detach().numpy(), rtol, "output")

    g = _upstream(out.shape, dtype)
    out.backward(mr.tensor(g, device=out.device))
    ref.backward(torch.from_numpy(g))
    for i in grad:
        a, t = args[i], t_args[i]
        expected = t.grad.numpy() if t.grad is not None else np.zeros(t.shape, dtype)
        assert a.grad is not None, f"input {i} requires grad but got none"
        assert a.grad.dtype == a.dtype and a.grad.device == a.device, (
            f"input {i}: grad {a.grad.dtype} on {a.grad.device}"
        )
        assert_close(a.grad.numpy(), expected, rtol, f"gradient of input {i} (shape {a.shape})")
    for i, (a, t) in enumerate(zip(args, t_args, strict=True)):  # in-place updates: running statistics
        if isinstance(a, mr.Tensor) and i not in grad:
            assert_close(a.numpy(), t.detach().numpy(), rtol, f"input {i} (shape {a.shape}) after the call")


def _check_random_mask(row: OpInfo, sample: Sample, dtype: np.dtype, backend: str, rtol: float) -> None:
    """Dropout with 0 < p < 1: y = x * mask / (1 - p), and dx = g * mask / (1 - p), for the mask that
    the seed gives, the same mask on a second call with the same seed."""
    p = sample.kwargs["p"]
    (x,), kwargs = to_minires(sample, dtype, backend)
    y = row.call(sample, x, **kwargs)
    assert y.shape == x.shape and y.dtype == x.dtype and y.device == backend
    again = row.call(sample, x.detach(), **kwargs)
    np.testing.assert_array_equal(again.numpy(), y.numpy(), err_msg="the same seed gave another mask")
    x_np, y_np = x.numpy(), y.numpy()
    kept = y_np != 0  # x is never exactly 0
    assert_close(y_np, np.where(kept, x_np / (1 - p), 0).astype(dtype), rtol, "kept values times 1/(1-p)")
    g = _upstream(y.shape, dtype)
    y.backward(mr.tensor(g, device=backend))
    assert_close(x.grad.numpy(), np.where(kept, g / (1 - p), 0).astype(dtype), rtol, "gradient mask/(1-p)")


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_dropout_drops_a_fraction_p(p: float, backend: str) -> None:
    """Over n values the dropped fraction is within 5 standard deviations, sqrt(p (1-p) / n), of p;
    a seed gives the same mask again, another seed another mask."""
    n = 200_000
    x = mr.ones(n, device=backend)
    mr.manual_seed(0)
    first = F.dropout(x, p=p).numpy()
    mr.manual_seed(0)
    same = F.dropout(x, p=p).numpy()
    mr.manual_seed(1)
    other = F.dropout(x, p=p).numpy()
    dropped = float(np.mean(first == 0))
    assert abs(dropped - p) < 5 * np.sqrt(p * (1 - p) / n), f"dropped {dropped:.4f} of the values, p = {p}"
    np.testing.assert_array_equal(first, same)
    assert not np.array_equal(first, other)
    np.testing.assert_allclose(first[first != 0], 1 / (1 - p), rtol=1e-6)


@pytest.mark.parametrize("op", ["eq", "ne", "lt", "le", "gt", "ge"])
def test_comparisons_match_torch(op: str, backend: str, torch: ModuleType) -> None:
    """A comparison gives torch's bool tensor on the input's device, with a tensor or a number on the
    right; a NumPy array on the right is taken as a tensor of its values beside a CPU tensor, and refused
    on the GPU, as the arithmetic operators do (and torch, which cannot make a CUDA tensor a NumPy one)."""
    compare = getattr(operator, op)
    a, b = np.array([[1.0, 2.0, 3.0]]), np.array([[3.0], [2.0]])
    x, tx = mr.tensor(a, device=backend), torch.from_numpy(a)
    cases = [
        (mr.tensor(b, device=backend), compare(tx, torch.from_numpy(b))),
        (2.0, compare(tx, 2.0)),
        (np.float64(2.0), compare(tx, 2.0)),
    ]
    if backend == "cpu":
        cases.append((b, compare(tx, torch.from_numpy(b))))
    else:
        with pytest.raises(mr.errors.DeviceError, match="NumPy array of shape"):
            compare(x, b)
    for right, ref in cases:
        out = compare(x, right)
        assert out.device == backend and out.dtype == mr.bool_, type(right)
        np.testing.assert_array_equal(out.numpy(), ref.numpy(), err_msg=str(type(right)))
