"""Winograd's F(2x2, 3x3), F(3x3, 3x3) and F(4x4, 3x3) (minires/ops/winograd.py): each one's identity, each
transform against its definition and its adjoint, and the float32 error against the direct (im2col) form.

The op table runs conv2d in the "winograd", "winograd3" and "winograd4" layouts through the float64 gradcheck
and the torch comparison, and tests/test_conv_layouts.py meets them with odd shapes; here are the pieces.
"""

from __future__ import annotations

import numpy as np
import pytest

import minires as mr
import minires.nn.functional as F
from minires.grad_mode import conv_layout
from minires.ops import winograd as wg

MINIMALS = pytest.mark.parametrize("f", [wg.F2, wg.F3, wg.F4], ids=["F2x2", "F3x3", "F4x4"])


@MINIMALS
def test_one_axis_takes_a_products_for_m_outputs(f: wg.Minimal) -> None:
    """y = A^T [(G w) * (B^T d)] is the 3-tap correlation of a = m + 2 inputs: y_r = d_r w0 + d_r+1 w1 +
    d_r+2 w2 for r < m."""
    rng = np.random.default_rng(0)
    assert f.B_T.shape == (f.a, f.a) and f.G.shape == (f.a, 3) and f.A_T.shape == (f.m, f.a)
    for _ in range(20):
        d, w = rng.standard_normal(f.a), rng.standard_normal(3)
        y = f.A_T @ ((f.G @ w) * (f.B_T @ d))
        np.testing.assert_allclose(y, [d[r : r + 3] @ w for r in range(f.m)], rtol=1e-12, atol=1e-12)


@MINIMALS
@pytest.mark.parametrize("padding", [((1, 1), (1, 1)), ((0, 2), (2, 0)), ((0, 0), (1, 1))])
def test_input_transform_is_bt_d_b_of_each_tile(f: wg.Minimal, padding: tuple) -> None:
    """V[(p, q), (n, i, j), c] = (B^T d B)[p, q] for the a x a tile d at rows m i, columns m j of the padded
    input (zeros past it), tile by tile with loops; NCHW and channels-last inputs alike."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 7, 6))
    (pt, pb), (pl, pr) = padding
    OH, OW = 7 + pt + pb - 2, 6 + pl + pr - 2
    TH, TW = wg.tiles((OH, OW), f)
    m, a = f.m, f.a
    x_pad = np.zeros((2, 3, m * TH + 2, m * TW + 2))
    x_pad[:, :, pt : pt + 7, pl : pl + 6] = x
    expected = np.empty((a * a, 2, TH, TW, 3))
    for n in range(2):
        for i in range(TH):
            for j in range(TW):
                for c in range(3):
                    d = x_pad[n, c, m * i : m * i + a, m * j : m * j + a]
                    expected[:, n, i, j, c] = (f.B_T @ d @ f.B_T.T).reshape(a * a)
    channels_last = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    for x_in in (x, channels_last):
        V = wg.input_transform(x_in, padding, (TH, TW), f)
        np.testing.assert_allclose(V, expected.reshape(a * a, -1, 3), rtol=1e-12, atol=1e-12)


@MINIMALS
@pytest.mark.parametrize("out", [(5, 3), (8, 4), (1, 2)])
def test_output_and_weight_transforms_against_their_definitions(f: wg.Minimal, out: tuple) -> None:
    """y's tile (i, j) is A^T M A; U[(p, q), o, c] = (G w[o, c] G^T)[p, q]."""
    rng = np.random.default_rng(2)
    n, OC, m, a = 2, 3, f.m, f.a  # sizes that m does not divide: the last tiles run past and are cropped
    TH, TW = wg.tiles(out, f)
    M = rng.standard_normal((a * a, n * TH * TW, OC))
    y = wg.output_transform(M, n, out, f)
    assert y.shape == (n, *out, OC)
    M6 = M.reshape(a, a, n, TH, TW, OC)
    full = np.empty((n, m * TH, m * TW, OC))
    for i in range(TH):
        for j in range(TW):
            for o in range(OC):
                full[:, m * i : m * i + m, m * j : m * j + m, o] = (
                    f.A_T @ M6[:, :, :, i, j, o].transpose(2, 0, 1) @ f.A_T.T
                )
    np.testing.assert_allclose(y, full[:, : out[0], : out[1]], rtol=1e-12, atol=1e-12)
    w = rng.standard_normal((4, 3, 3, 3))
    U = wg.weight_transform(w, f)
    expected = np.einsum("ak,ockl,bl->aboc", f.G, w, f.G).reshape(a * a, 4, 3)
    np.testing.assert_allclose(U, expected, rtol=1e-12, atol=1e-12)


@MINIMALS
def test_the_backward_transforms_are_the_adjoints(f: wg.Minimal) -> None:
    """<T(a), b> = <a, T*(b)> for the output transform and the weight transform, odd sizes and both layouts
    of g included: backward is right where each adjoint is."""
    rng = np.random.default_rng(3)
    a = f.a
    for out in ((4, 6), (5, 3), (1, 1), (8, 9)):
        n, OC = 2, 3
        n_tiles = wg.tiles(out, f)
        M = rng.standard_normal((a * a, n * n_tiles[0] * n_tiles[1], OC))
        g = rng.standard_normal((n, OC, *out))
        lhs = np.vdot(wg.output_transform(M, n, out, f).transpose(0, 3, 1, 2), g)
        for g_in in (g, np.ascontiguousarray(g.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)):
            np.testing.assert_allclose(
                lhs, np.vdot(M, wg.output_transform_grad(g_in, n_tiles, f)), rtol=1e-12
            )
    w, dU = rng.standard_normal((5, 4, 3, 3)), rng.standard_normal((a * a, 5, 4))
    np.testing.assert_allclose(
        np.vdot(wg.weight_transform(w, f), dU), np.vdot(w, wg.weight_transform_grad(dU, f)), rtol=1e-12
    )


def _conv_step(x: np.ndarray, w: np.ndarray, g: np.ndarray, layout: str) -> list[np.ndarray]:
    with conv_layout(layout):
        xt, wt = mr.tensor(x, requires_grad=True), mr.tensor(w, requires_grad=True)
        y = F.conv2d(xt, wt, padding=1)
        y.backward(mr.tensor(g))
    return [y.numpy(), xt.grad.numpy(), wt.grad.numpy()]


# The worst error of each size measured when written, as a multiple of the direct layouts' worst and as a
# share of the largest value (float32 y, dx and dw against float64, the shapes below, random data).
BOUNDS = {"winograd": (3, 2e-6), "winograd3": (20, 1e-5), "winograd4": (40, 2e-5)}


@pytest.mark.parametrize("layout", list(BOUNDS))
@pytest.mark.parametrize(
    "shape", [(4, 128, 12, 12), (8, 256, 6, 6), (16, 512, 2, 2), (4, 64, 9, 9), (2, 64, 24, 24)]
)
def test_float32_error_against_the_direct_form(layout: str, shape: tuple) -> None:
    """Against float64, y, dx and dw in float32 by Winograd err by at most a few times the worst of the
    direct layouts (BOUNDS). Measured when written (these shapes, random data, relative to the largest
    value): the direct layouts about 2e-7 to 7e-7; F(2x2, 3x3) 0.5 to 1.9 times theirs, at most about
    1e-6; F(3x3, 3x3) 1.7 to 13 times theirs, at most about 5e-6; F(4x4, 3x3) 1.5 to 27 times theirs, at most
    about 1.1e-5 (its transforms scale by up to 8 before rounding; the larger shares with 128 and 256
    channels)."""
    rng = np.random.default_rng(4)
    N, C, H, W = shape
    x, g = rng.standard_normal(shape), rng.standard_normal(shape)
    w = rng.standard_normal((C, C, 3, 3)) / np.sqrt(9 * C)
    exact = _conv_step(x, w, g, "nchw")
    single = [a.astype(np.float32) for a in (x, w, g)]

    def errors(layout: str) -> np.ndarray:
        got = _conv_step(*single, layout)
        return np.array([np.abs(a - e).max() / np.abs(e).max() for a, e in zip(got, exact, strict=True)])

    winograd = errors(layout)
    direct = np.maximum.reduce([errors(layout) for layout in ("nchw", "rows", "nhwc")])
    times, share = BOUNDS[layout]
    assert np.all(winograd <= times * direct) and np.all(winograd < share), (winograd, direct)
