"""Winograd's F(2x2, 3x3) (minires/ops/winograd.py): its identity, each transform against its definition and
its adjoint, and its float32 error against the direct (im2col) form.

The op table runs conv2d in the "winograd" layout through the float64 gradcheck and the torch comparison,
and tests/test_conv_layouts.py meets it with odd shapes; here are the pieces.
"""

from __future__ import annotations

import numpy as np
import pytest

import minires as mr
import minires.nn.functional as F
from minires.grad_mode import conv_layout
from minires.ops import winograd as wg


def test_one_axis_takes_four_products_for_two_outputs() -> None:
    """y = A^T [(G w) * (B^T d)] is the 3-tap correlation of 4 inputs: d0 w0 + d1 w1 + d2 w2, d1 w0 + ..."""
    rng = np.random.default_rng(0)
    for _ in range(20):
        d, w = rng.standard_normal(4), rng.standard_normal(3)
        y = wg.A_T @ ((wg.G @ w) * (wg.B_T @ d))
        np.testing.assert_allclose(y, [d[:3] @ w, d[1:] @ w], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("padding", [((1, 1), (1, 1)), ((0, 2), (2, 0)), ((0, 0), (1, 1))])
def test_input_transform_is_bt_d_b_of_each_tile(padding: tuple) -> None:
    """V[(a, b), (n, i, j), c] = (B^T d B)[a, b] for the 4x4 tile d at rows 2i, columns 2j of the padded
    input (zeros past it), tile by tile with loops; NCHW and channels-last inputs alike."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 5, 4))
    (pt, pb), (pl, pr) = padding
    OH, OW = 5 + pt + pb - 2, 4 + pl + pr - 2
    TH, TW = wg.tiles((OH, OW))
    x_pad = np.zeros((2, 3, 2 * TH + 2, 2 * TW + 2))
    x_pad[:, :, pt : pt + 5, pl : pl + 4] = x
    expected = np.empty((16, 2, TH, TW, 3))
    for n in range(2):
        for i in range(TH):
            for j in range(TW):
                for c in range(3):
                    d = x_pad[n, c, 2 * i : 2 * i + 4, 2 * j : 2 * j + 4]
                    expected[:, n, i, j, c] = (wg.B_T @ d @ wg.B_T.T).reshape(16)
    channels_last = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    for x_in in (x, channels_last):
        V = wg.input_transform(x_in, padding, (TH, TW))
        np.testing.assert_allclose(V, expected.reshape(16, -1, 3), rtol=1e-12, atol=1e-12)


def test_output_and_weight_transforms_against_their_definitions() -> None:
    """y's tile (i, j) is A^T M A; U[(a, b), o, c] = (G w[o, c] G^T)[a, b]."""
    rng = np.random.default_rng(2)
    n, OC, out = 2, 3, (5, 3)  # odd: the last tiles run past the output and are cropped
    TH, TW = wg.tiles(out)
    M = rng.standard_normal((16, n * TH * TW, OC))
    y = wg.output_transform(M, n, out)
    assert y.shape == (n, *out, OC)
    M6 = M.reshape(4, 4, n, TH, TW, OC)
    full = np.empty((n, 2 * TH, 2 * TW, OC))
    for i in range(TH):
        for j in range(TW):
            for o in range(OC):
                full[:, 2 * i : 2 * i + 2, 2 * j : 2 * j + 2, o] = (
                    wg.A_T @ M6[:, :, :, i, j, o].transpose(2, 0, 1) @ wg.A_T.T
                )
    np.testing.assert_allclose(y, full[:, : out[0], : out[1]], rtol=1e-12, atol=1e-12)
    w = rng.standard_normal((4, 3, 3, 3))
    U = wg.weight_transform(w)
    expected = np.einsum("ak,ockl,bl->aboc", wg.G, w, wg.G).reshape(16, 4, 3)
    np.testing.assert_allclose(U, expected, rtol=1e-12, atol=1e-12)


def test_the_backward_transforms_are_the_adjoints() -> None:
    """<T(a), b> = <a, T*(b)> for the output transform and the weight transform, odd sizes included:
    backward is right where each adjoint is."""
    rng = np.random.default_rng(3)
    for out in ((4, 6), (5, 3), (1, 1)):
        n, OC = 2, 3
        n_tiles = wg.tiles(out)
        M = rng.standard_normal((16, n * n_tiles[0] * n_tiles[1], OC))
        g = rng.standard_normal((n, OC, *out))
        lhs = np.vdot(wg.output_transform(M, n, out).transpose(0, 3, 1, 2), g)
        np.testing.assert_allclose(lhs, np.vdot(M, wg.output_transform_grad(g, n_tiles)), rtol=1e-12)
    w, dU = rng.standard_normal((5, 4, 3, 3)), rng.standard_normal((16, 5, 4))
    np.testing.assert_allclose(
        np.vdot(wg.weight_transform(w), dU), np.vdot(w, wg.weight_transform_grad(dU)), rtol=1e-12
    )


def _conv_step(x: np.ndarray, w: np.ndarray, g: np.ndarray, layout: str) -> list[np.ndarray]:
    with conv_layout(layout):
        xt, wt = mr.tensor(x, requires_grad=True), mr.tensor(w, requires_grad=True)
        y = F.conv2d(xt, wt, padding=1)
        y.backward(mr.tensor(g))
    return [y.numpy(), xt.grad.numpy(), wt.grad.numpy()]


@pytest.mark.parametrize("shape", [(4, 128, 12, 12), (8, 256, 6, 6), (16, 512, 2, 2), (4, 64, 9, 9)])
def test_float32_error_is_that_of_the_direct_form(shape: tuple) -> None:
    """Against float64, y, dx and dw in float32 by Winograd err by at most 3 times the worst of the direct
    layouts, and by under 2e-6 of the largest value. Measured when written (these shapes, random data):
    Winograd about 1.5e-7 to 8e-7, the direct layouts about 2e-7 to 7e-7 of the largest value."""
    rng = np.random.default_rng(4)
    N, C, H, W = shape
    x, g = rng.standard_normal(shape), rng.standard_normal(shape)
    w = rng.standard_normal((C, C, 3, 3)) / np.sqrt(9 * C)
    exact = _conv_step(x, w, g, "nchw")
    single = [a.astype(np.float32) for a in (x, w, g)]

    def errors(layout: str) -> np.ndarray:
        got = _conv_step(*single, layout)
        return np.array([np.abs(a - e).max() / np.abs(e).max() for a, e in zip(got, exact, strict=True)])

    winograd = errors("winograd")
    direct = np.maximum.reduce([errors(layout) for layout in ("nchw", "rows", "nhwc")])
    assert np.all(winograd <= 3 * direct) and np.all(winograd < 2e-6), (winograd, direct)
