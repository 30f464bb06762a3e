"""Memory order (minires/memory_order.py): operands of two layouts meet in ReLU's, batch norm's and the
residual sum's passes; the one of the other layout is copied over first, and the values are those of the
same op on NCHW arrays."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import minires as mr
import minires.nn.functional as F
from minires import threads
from minires.memory_order import channel_rows, in_order_of, row_order, same_order


def channels_last(v: np.ndarray) -> np.ndarray:
    """v (N, C, H, W) laid out as (N, H, W, C) in memory, viewed as NCHW."""
    return np.ascontiguousarray(v.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)


def test_same_order_compares_the_order_of_the_axes_longer_than_one() -> None:
    a = np.zeros((2, 3, 4, 5), np.float32)
    assert same_order(a, np.zeros((2, 3, 4, 5), np.float64))  # the itemsize does not matter
    assert not same_order(a, channels_last(a))
    assert same_order(channels_last(a), channels_last(a + 1))
    assert not same_order(a, np.zeros((2, 3, 5, 4), np.float32))  # another shape
    one = np.zeros((2, 1, 4, 5), np.float32)  # one channel: NCHW and NHWC are the same memory
    assert same_order(one, channels_last(one))
    assert same_order(a[:, :, ::2], a[:, :, 1::2])  # strided views in one order
    assert same_order(a[:, :, ::-1], a) and same_order(
        channels_last(a)[:, ::-1], channels_last(a)
    )  # reversed


@pytest.mark.parametrize("n", [1, 3, 40])  # 40 images of 8 KiB: several batch chunks
def test_in_order_of_copies_into_the_memory_order_of_like(n: int) -> None:
    rs = np.random.default_rng(n)
    a = rs.standard_normal((n, 16, 8, 16)).astype(np.float32)
    like = channels_last(np.zeros_like(a))
    out = in_order_of(a, like)
    assert out.strides == like.strides
    np.testing.assert_array_equal(out, a)
    back = in_order_of(out, a)
    assert back.strides == a.strides
    np.testing.assert_array_equal(back, a)
    assert in_order_of(a, a + 1) is a  # the same order: no copy
    assert in_order_of(out, like) is out
    broadcast = np.broadcast_to(np.float32(2), a.shape)  # a stride-0 view is read as it is, in any order
    assert in_order_of(broadcast, like) is broadcast and in_order_of(a, broadcast) is a


def _mixed(op: str, dtype: Any, x_last: bool, g_last: bool) -> list[np.ndarray]:
    """The op's forward and backward with x (and the residual's second operand) and g in the given
    layouts; the arrays that come out (y, dx, and dgamma, dbeta or db)."""
    rs = np.random.default_rng(7)
    x0, other, g0 = (rs.standard_normal((6, 5, 7, 3)).astype(dtype) for _ in range(3))
    x = mr.tensor(channels_last(x0) if x_last else x0, requires_grad=True)
    g = mr.tensor(channels_last(g0) if g_last else g0)
    if op == "relu":
        y = F.relu(x)
        y.backward(g)
        return [y.numpy(), x.grad.numpy()]
    if op == "add":
        b = mr.tensor(other if x_last else channels_last(other), requires_grad=True)  # the other layout
        y = x + b
        y.backward(g)
        return [y.numpy(), x.grad.numpy(), b.grad.numpy()]
    w = mr.tensor(np.linspace(0.5, 2, 5).astype(dtype), requires_grad=True)
    b = mr.tensor(np.linspace(-1, 1, 5).astype(dtype), requires_grad=True)
    y = F.batch_norm(x, mr.zeros(5, dtype=dtype), mr.ones(5, dtype=dtype), w, b, training=True)
    y.backward(g)
    return [y.numpy(), x.grad.numpy(), w.grad.numpy(), b.grad.numpy()]


@pytest.mark.parametrize("op", ["relu", "add", "batch_norm"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("x_last", "g_last"), [(False, True), (True, False), (True, True)])
def test_an_op_on_two_layouts_gives_what_it_gives_on_nchw(
    op: str, dtype: Any, x_last: bool, g_last: bool
) -> None:
    reference = _mixed(op, dtype, False, False)
    got = _mixed(op, dtype, x_last, g_last)
    tol = 1e-12 if dtype == np.float64 else 2e-6
    for i, (a, b) in enumerate(zip(got, reference, strict=True)):
        if op == "batch_norm":  # its channel sums go by rows or by broadcast: equal to rounding
            np.testing.assert_allclose(a, b, rtol=tol, atol=tol * np.abs(b).max(), err_msg=f"{op} [{i}]")
        else:
            np.testing.assert_array_equal(a, b, err_msg=f"{op} [{i}]")


@pytest.mark.parametrize("last", [False, True])
@pytest.mark.parametrize("training", [False, True])
def test_batch_norm_of_one_image_broadcasts_and_gives_what_rows_give(
    last: bool, training: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """channel_rows: a batch of one image takes the broadcast (no (C*S,) row vectors), more take rows;
    batch norm with the ReLU and a residual gives the same values and gradients either way."""
    from minires.ops import norm

    rng = np.random.default_rng(3)

    def lay(a: np.ndarray) -> np.ndarray:
        return channels_last(a) if last else a

    one, two = lay(rng.standard_normal((1, 6, 5, 4))), lay(rng.standard_normal((2, 6, 5, 4)))
    assert channel_rows(one) is None and row_order(one) == ("last" if last else "first")
    assert channel_rows(two) == row_order(two) == ("last" if last else "first")
    assert channel_rows(one[:, :0]) is None and channel_rows(np.zeros((0, 6, 5, 4))) is None

    def run() -> list[np.ndarray]:
        x = mr.tensor(one, requires_grad=True)
        r = mr.tensor(lay(rng.standard_normal(one.shape)), requires_grad=True)
        w = mr.tensor(np.linspace(0.5, 2, 6), requires_grad=True)
        b = mr.tensor(np.linspace(-1, 1, 6), requires_grad=True)
        rm, rv = mr.zeros(6, dtype=np.float64), mr.ones(6, dtype=np.float64)
        z = norm.batch_norm_relu(x, rm, rv, w, b, training, 0.1, 1e-5, residual=r)
        z.backward(mr.tensor(lay(rng.standard_normal(one.shape))))
        return [z.numpy(), x.grad.numpy(), r.grad.numpy(), w.grad.numpy(), b.grad.numpy(), rv.numpy()]

    rng = np.random.default_rng(4)
    broadcast = run()
    monkeypatch.setattr(norm, "channel_rows", row_order)  # rows for one image too
    rng = np.random.default_rng(4)
    for i, (a, b) in enumerate(zip(broadcast, run(), strict=True)):
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-13, err_msg=f"[{i}]")


@pytest.mark.parametrize("other_last", [False, True])
@pytest.mark.parametrize("name", ["add", "sub", "mul", "div"])
def test_an_in_place_update_outside_the_graph_takes_either_layout(name: str, other_last: bool) -> None:
    """``out += identity`` under no_grad (a residual block in inference) runs chunk by chunk on the
    threads, with an other of the other layout copied over: the bits of NumPy's one in-place call."""
    rs = np.random.default_rng(5)
    a0, b0 = (rs.standard_normal((40, 16, 8, 16)).astype(np.float32) + 3 for _ in range(2))
    expected = {"add": a0 + b0, "sub": a0 - b0, "mul": a0 * b0, "div": a0 / b0}[name]
    a, b = mr.tensor(channels_last(a0)), mr.tensor(channels_last(b0) if other_last else b0)
    strides = a.data.strides
    with mr.no_grad():
        getattr(a, f"__i{'truediv' if name == 'div' else name}__")(b)
    assert a.data.strides == strides
    np.testing.assert_array_equal(a.numpy(), expected)


def test_an_in_place_update_from_an_overlapping_view_reads_the_values_before_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An other that overlaps the data (a shifted view of one array) is read as it was before the update,
    as NumPy's one call does it (chunks of one image would otherwise read rows already written)."""
    monkeypatch.setattr(threads, "BATCH_CHUNK_BYTES", 1)
    base = np.random.default_rng(6).standard_normal((40, 4, 8, 8)).astype(np.float32)
    t = mr.tensor(base.copy())
    with mr.no_grad():
        head, tail = t[1:], t[:-1]
        head += tail
    expected = base.copy()
    expected[1:] += base[:-1].copy()
    np.testing.assert_array_equal(head.numpy(), expected[1:])


@pytest.mark.parametrize("kron_max", [0, 1 << 16])  # the separable products, or P = P_h (x) P_w
@pytest.mark.parametrize(
    ("hw", "out"), [((2, 2), (1, 1)), ((7, 5), (3, 2)), ((6, 6), (4, 8)), ((0, 0), (1, 1))]
)
@pytest.mark.parametrize("last", [False, True])
def test_adaptive_avg_pool_gives_the_same_on_either_layout_and_either_path(
    hw: tuple, out: tuple, last: bool, kron_max: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """AdaptiveAvgPool2d's one product over the flattened images (a channels-last x per image, in its own
    memory order) and its two products per image agree with the mean over each bin, forward and backward;
    (0, 0) stands for an empty batch."""
    from minires.ops import pool

    monkeypatch.setattr(pool, "KRON_MAX_VALUES", kron_max)
    rs = np.random.default_rng(9)
    n = 0 if hw == (0, 0) else 3
    H, W = (3, 3) if hw == (0, 0) else hw
    x0, g0 = rs.standard_normal((n, 5, H, W)), rs.standard_normal((n, 5, *out))
    x = mr.tensor(channels_last(x0) if last else x0, requires_grad=True)
    y = F.adaptive_avg_pool2d(x, out)
    y.backward(mr.tensor(channels_last(g0) if last else g0))
    if last and n and kron_max:
        assert same_order(y.data, channels_last(np.zeros(y.shape)))  # channels last stays so
    ref = mr.tensor(x0, requires_grad=True)
    y_ref = F.adaptive_avg_pool2d(ref, out)
    y_ref.backward(mr.tensor(g0))
    np.testing.assert_allclose(y.numpy(), y_ref.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(x.grad.numpy(), ref.grad.numpy(), rtol=1e-12, atol=1e-12)
    if n:  # the mean over each bin (PyTorch's edges), by a loop
        for i in range(out[0]):
            for j in range(out[1]):
                h0, h1 = i * H // out[0], -(-(i + 1) * H // out[0])
                w0, w1 = j * W // out[1], -(-(j + 1) * W // out[1])
                np.testing.assert_allclose(
                    y.numpy()[:, :, i, j], x0[:, :, h0:h1, w0:w1].mean(axis=(2, 3)), rtol=1e-12
                )


def test_a_sum_whose_first_operand_is_broadcast_is_laid_out_as_numpy_lays_it() -> None:
    """An expanded first operand has no memory order of its own (PyTorch skips its repeated axes): the
    sum is NumPy's, C order here, not one with the batch axis innermost (what empty_like would make)."""
    x = mr.tensor(np.arange(60, dtype=np.float32).reshape(1, 3, 4, 5))
    y = x.expand(2, 3, 4, 5) + mr.ones(2, 3, 4, 5)
    assert y.data.flags.c_contiguous
    np.testing.assert_array_equal(y.numpy(), np.broadcast_to(x.numpy(), (2, 3, 4, 5)) + 1)


def test_an_in_place_update_that_raises_writes_every_value_as_numpy_does(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Under np.errstate(divide="raise") an in-place division by an array holding a zero raises, after
    writing every value (NumPy's one call), not after the chunk that met the zero."""
    from minires import threads

    monkeypatch.setattr(threads, "BATCH_CHUNK_BYTES", 1)  # one row a chunk
    t = mr.ones(8, 16)
    d = np.full((8, 16), 2.0, np.float32)
    d[0, 0] = 0.0
    with mr.no_grad(), np.errstate(divide="raise"), pytest.raises(FloatingPointError):
        t /= mr.tensor(d)
    np.testing.assert_array_equal(t.numpy()[1:], 0.5)
