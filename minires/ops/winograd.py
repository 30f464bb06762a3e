r"""Winograd's minimal filtering F(m x m, 3x3): a stride-1 3x3 convolution computed tile by tile, an m x m
tile of output pixels from (m + 2)^2 products per pair of channels instead of 9 m^2, channels last. Three
sizes: F(2x2, 3x3), 16 products for 4 pixels (2.25 times fewer multiplications), F(3x3, 3x3), 25 for 9
(3.24 times fewer), and F(4x4, 3x3), 36 for 16 (4 times fewer); the larger the tile, the larger the
float32 rounding (below).

Notation as in conv.py: N, C, H, W (input; a chunk of n images), OC output channels, OH, OW (output),
padding ((pt, pb), (pl, pr)); m the output tile's side, a = m + 2 the input tile's; TH, TW =
ceil(OH / m), ceil(OW / m) tiles down and across, T = n*TH*TW tiles of a chunk; xi = (p, q) the a*a
points of a transform.

One axis first (Lavin and Gray, "Fast Algorithms for Convolutional Neural Networks", 2016). The m outputs
y_r = sum_k d_{r+k} w_k of a 3-tap filter w over a = m + 2 inputs d take a products instead of 3m:

    y = A^T [(G w) * (B^T d)]      (* elementwise; B^T (a, a), G (a, 3), A^T (m, a))

F(2, 3) (from the points 0, 1, -1 and infinity):

    B^T = [1  0 -1  0]      G = [ 1    0    0 ]      A^T = [1  1  1  0]
          [0  1  1  0]          [1/2  1/2  1/2]            [0  1 -1 -1]
          [0 -1  1  0]          [1/2 -1/2  1/2]
          [0  1  0 -1]          [ 0    0    1 ]

(with c = (G w) * (B^T d): c0 + c1 + c2 = y0 and c1 - c2 - c3 = y1, by multiplying out).
F(3, 3) (from 0, 1, -1, 2 and infinity):

    B^T = [2 -1 -2  1  0]      G = [ 1/2    0     0  ]      A^T = [1  1  1  1  0]
          [0 -2 -1  1  0]          [-1/2  -1/2  -1/2 ]            [0  1 -1  2  0]
          [0  2 -3  1  0]          [-1/6   1/6  -1/6 ]            [0  1  1  4  1]
          [0 -1  0  1  0]          [ 1/6   1/3   2/3 ]
          [0  2 -1 -2  1]          [  0     0     1  ]

F(4, 3) (from 0, 1, -1, 2, -2 and infinity):

    B^T = [4  0 -5  0  1  0]    G = [ 1/4     0     0 ]    A^T = [1  1  1  1  1  0]
          [0 -4 -4  1  1  0]        [-1/6  -1/6  -1/6 ]          [0  1 -1  2 -2  0]
          [0  4 -4 -1  1  0]        [-1/6   1/6  -1/6 ]          [0  1  1  4  4  0]
          [0 -2 -1  2  1  0]        [1/24  1/12   1/6 ]          [0  1 -1  8 -8  1]
          [0  2 -1 -2  1  0]        [1/24 -1/12   1/6 ]
          [0  4  0 -5  0  1]        [  0     0      1 ]

Nested over the two axes of an a x a input tile d (rows m i .. m i + a - 1 and columns m j .. m j + a - 1
of the padded input, overlapping its neighbours by 2) and the 3x3 kernel, the m x m output tile is

    Y = A^T [U * V] A,      U = G w G^T (a x a),      V = B^T d B (a x a)

and, the transforms being linear, the sum over the input channels moves inside: per point xi,

    M_xi = V_xi @ U_xi^T,   (T, OC) = (T, C) @ (C, OC),     then Y = A^T M A per tile,

with U kept as (a*a, OC, C), w's own order of the channels.

So a convolution is a*a matrix products (2.25, 3.24 or 4 times fewer multiply-adds than im2col's one product
with K = 9 C) between cheap transforms. Each transform is applied one axis at a time, as one small product:
the a slabs of the tiles' rows (or columns) stacked as an (a, everything else) array and multiplied by B^T (a,
a) from the left (one BLAS call over the whole chunk for the first axis, a for the second, one per row point),
about as fast as the handful of whole-array additions of F(2, 3) and 2-3 times faster than those of F(4, 3); G
w G^T is done once per call, as one product with G (x) G.

Rounding: the transforms add and subtract inputs before the products, scaled by up to 3 (B^T) and 4 (A^T) in
F(3, 3), 5 and 8 in F(4, 3), so their rounding errors are larger than the direct sum's. Measured in float32 on
random data (tests/test_winograd.py, y, dx and dw, relative to the largest value; the direct form about 2e-7
to 7e-7): F(2, 3) 0.5-1.9 times the direct form's, about 1e-6 or below; F(3, 3) 1.7-13 times, up to about
5e-6; F(4, 3) 1.5-27 times, up to about 1.1e-5 (the larger shares with 128 and 256 channels). A float32
training run absorbs this (it is far below the noise of its minibatch gradients); choose_layout takes the
larger tiles for the layers where they pay (conv_layouts.py), and ``conv_layout`` can force any one.

Backward (the transforms are linear maps, so each has its transpose as its adjoint):
    dM = A dY A^T per tile (dY's m x m tile, zero where a tile runs past the output),
    dU_xi = dM_xi^T @ V_xi     (OC, C),     dw = G^T dU G summed over the points,
and dx, for a stride-1 layer, is the convolution of g with the flipped kernel (conv.py), computed in the
layout chosen for that convolution: by this module again where Winograd is chosen. So the weight
gradient needs V (from x again) and dM; the input transform's adjoint is not needed.

Layout: V is (a*a, T, C), U (a*a, OC, C) and M (a*a, T, OC), channels innermost. The output is an NHWC
array (the caller views it as NCHW, as the channels-last unfold does).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..backend import get_array_module
from .args import Padding


@dataclass(frozen=True, eq=False)
class Minimal:
    """F(m x m, 3x3): the output tile's side m and the three matrices (see the module docstring)."""

    m: int
    B_T: np.ndarray  # (a, a), a = m + 2: the input tile's transform
    G: np.ndarray  # (a, 3): the kernel's
    A_T: np.ndarray  # (m, a): back to the output tile

    @property
    def a(self) -> int:
        """The input tile's side, m + 2 (a 3-tap filter reads 2 pixels past the tile)."""
        return self.m + 2


# The matrices come from the Toom-Cook construction on the points named above (Lavin and Gray's for F(2, 3)
# and F(4, 3)); tests/test_winograd.py checks each identity. 1/2 is exact in binary, so F(2, 3)'s G w G^T
# rounds only once per product and sum; the sixths of F(3, 3) and F(4, 3) are not.
F2 = Minimal(
    2,
    np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], dtype=np.float64),
    np.array([[1, 0, 0], [1 / 2, 1 / 2, 1 / 2], [1 / 2, -1 / 2, 1 / 2], [0, 0, 1]]),
    np.array([[1, 1, 1, 0], [0, 1, -1, -1]], dtype=np.float64),
)
F3 = Minimal(
    3,
    np.array(
        [[2, -1, -2, 1, 0], [0, -2, -1, 1, 0], [0, 2, -3, 1, 0], [0, -1, 0, 1, 0], [0, 2, -1, -2, 1]],
        dtype=np.float64,
    ),
    np.array(
        [[1 / 2, 0, 0], [-1 / 2, -1 / 2, -1 / 2], [-1 / 6, 1 / 6, -1 / 6], [1 / 6, 1 / 3, 2 / 3], [0, 0, 1]]
    ),
    np.array([[1, 1, 1, 1, 0], [0, 1, -1, 2, 0], [0, 1, 1, 4, 1]], dtype=np.float64),
)
F4 = Minimal(
    4,
    np.array(
        [
            [4, 0, -5, 0, 1, 0],
            [0, -4, -4, 1, 1, 0],
            [0, 4, -4, -1, 1, 0],
            [0, -2, -1, 2, 1, 0],
            [0, 2, -1, -2, 1, 0],
            [0, 4, 0, -5, 0, 1],
        ],
        dtype=np.float64,
    ),
    np.array(
        [
            [1 / 4, 0, 0],
            [-1 / 6, -1 / 6, -1 / 6],
            [-1 / 6, 1 / 6, -1 / 6],
            [1 / 24, 1 / 12, 1 / 6],
            [1 / 24, -1 / 12, 1 / 6],
            [0, 0, 1],
        ]
    ),
    np.array(
        [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]], dtype=np.float64
    ),
)


@functools.cache
def _matrix(xp: Any, dtype: Any, f: Minimal, which: str) -> Any:
    """One of f's matrices ("B_T", "A_T", "A" = A_T's transpose, "GG" = G (x) G, row (p, q), column (k, l)
    holding G[p, k] G[q, l]) as an array of ``xp`` in ``dtype``, made once per module, dtype and matrix (on
    a GPU: one copy to the device, not one per call)."""
    matrix = {"B_T": f.B_T, "A_T": f.A_T, "A": f.A_T.T, "GG": np.kron(f.G, f.G)}[which]
    return xp.asarray(matrix, dtype=dtype)


def tiles(out_size: tuple[int, int], f: Minimal) -> tuple[int, int]:
    """(TH, TW): m x m output tiles down and across, covering OH x OW (the last row or column of tiles runs
    past a size that m does not divide)."""
    return -(-out_size[0] // f.m), -(-out_size[1] // f.m)


def input_transform(x: Any, padding: Padding, n_tiles: tuple[int, int], f: Minimal) -> Any:
    """V[xi, t, c] = (B^T d B)[xi] for the a x a tile d of padded input under each output tile t = (n, i, j).
    Shapes: x (n, C, H, W), NCHW or a channels-last view -> V (a*a, n*TH*TW, C)."""
    xp = get_array_module(x)
    n, C, H, W = x.shape
    (pt, _), (pl, _) = padding
    (TH, TW), m, a = n_tiles, f.m, f.a
    B_T = _matrix(xp, x.dtype, f, "B_T")
    x_pad = xp.zeros((n, m * TH + 2, m * TW + 2, C), dtype=x.dtype)  # zeros past the input as padding
    x_pad[:, pt : pt + H, pl : pl + W] = x.transpose(0, 2, 3, 1)  # fits: m TH + 2 >= OH + 2 = H + pt + pb
    d = xp.empty((a, n, TH, m * TW + 2, C), dtype=x.dtype)  # d[k]: row m i + k of every tile
    for k in range(a):
        d[k] = x_pad[:, k : k + m * TH : m]
    rows = B_T @ d.reshape(a, -1)  # B^T d along the rows: (a, n*TH*(m TW + 2)*C)
    rows = rows.reshape(a, n, TH, m * TW + 2, C)
    d = xp.empty((a, a, n, TH, TW, C), dtype=x.dtype)  # d[p, k]: column m j + k of row point p
    for k in range(a):
        d[:, k] = rows[:, :, :, k : k + m * TW : m]
    V = xp.matmul(B_T, d.reshape(a, a, -1))  # then along the columns, for each row point p: (a, a, T*C)
    return V.reshape(a * a, n * TH * TW, C)


def output_transform(M: Any, n: int, out_size: tuple[int, int], f: Minimal, out: Any | None = None) -> Any:
    """y = A^T M A per tile: the m x m output tiles from the products M. Shapes: M (a*a, n*TH*TW, OC) ->
    y (n, OH, OW, OC), NHWC (a view cropping the tiles that run past the output); written into ``out``
    (a C-contiguous (n, OH, OW, OC) array) and ``out`` returned where the tiles cover the output exactly."""
    xp = get_array_module(M)
    OC = M.shape[2]
    (TH, TW), m, a = tiles(out_size, f), f.m, f.a
    A_T = _matrix(xp, M.dtype, f, "A_T")
    half = A_T @ M.reshape(a, -1)  # A^T M along the first axis: (m, a*T*OC)
    Y = xp.matmul(A_T, half.reshape(m, a, -1))  # then along the second: (m, m, T*OC), Y[r, s] pixel (r, s)
    exact = out is not None and tuple(out_size) == (m * TH, m * TW)
    y = out if exact else xp.empty((n, m * TH, m * TW, OC), dtype=M.dtype)
    # y[n, i, r, j, s]: pixel (m i + r, m j + s)
    y.reshape(n, TH, m, TW, m, OC).transpose(2, 4, 0, 1, 3, 5)[...] = Y.reshape(m, m, n, TH, TW, OC)
    return y if exact else y[:, : out_size[0], : out_size[1]]


def output_transform_grad(g: Any, n_tiles: tuple[int, int], f: Minimal) -> Any:
    """dM = A dY A^T per tile, the adjoint of ``output_transform``: dY is g's m x m tile, zero past the
    output. Shapes: g (n, OC, OH, OW), NCHW or a channels-last view -> dM (a*a, n*TH*TW, OC)."""
    xp = get_array_module(g)
    n, OC, OH, OW = g.shape
    (TH, TW), m, a = n_tiles, f.m, f.a
    A = _matrix(xp, g.dtype, f, "A")
    if (OH, OW) != (m * TH, m * TW):  # zeros where the last tiles run past the output
        padded = xp.zeros((n, m * TH, m * TW, OC), dtype=g.dtype).transpose(0, 3, 1, 2)
        padded[:, :, :OH, :OW] = g
        g = padded
    # dY[r, s, n, i, j, o] = g[n, o, m i + r, m j + s]: splitting OH and OW is a view in either layout of g
    dY = xp.ascontiguousarray(g.reshape(n, OC, TH, m, TW, m).transpose(3, 5, 0, 2, 4, 1))
    rows = A @ dY.reshape(m, -1)  # A dY along the rows: (a, m*T*OC)
    dM = xp.matmul(A, rows.reshape(a, m, -1))  # then along the columns: (a, a, T*OC)
    return dM.reshape(a * a, n * TH * TW, OC)


def weight_transform(w: Any, f: Minimal) -> Any:
    """U[xi, o, c] = (G w[o, c] G^T)[xi], as one product with G (x) G. Shapes: w (OC, C, 3, 3) ->
    U (a*a, OC, C) (the products read it transposed, as (a*a, C, OC), without a copy)."""
    xp = get_array_module(w)
    OC, C = w.shape[:2]
    GG = _matrix(xp, w.dtype, f, "GG")
    return (GG @ w.reshape(OC * C, 9).T).reshape(f.a * f.a, OC, C)  # (a*a, OC*C) = (a*a, 9) @ (9, OC*C)


def weight_transform_grad(dU: Any, f: Minimal) -> Any:
    """dw = G^T dU G summed over the points, the adjoint of ``weight_transform``. Shapes: dU (a*a, OC, C) ->
    dw (OC, C, 3, 3)."""
    xp = get_array_module(dU)
    _, OC, C = dU.shape
    GG = _matrix(xp, dU.dtype, f, "GG")
    return (dU.reshape(f.a * f.a, OC * C).T @ GG).reshape(OC, C, 3, 3)  # (OC*C, a*a) @ (a*a, 9)
