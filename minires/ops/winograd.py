r"""Winograd's minimal filtering F(2x2, 3x3): a stride-1 3x3 convolution with 16 products per 2x2 tile of
output pixels instead of 36 (2.25 times fewer multiplications), channels last.

Notation as in conv.py: N, C, H, W (input; a chunk of n images), OC output channels, OH, OW (output),
padding ((pt, pb), (pl, pr)); TH, TW = ceil(OH / 2), ceil(OW / 2) tiles down and across, T = n*TH*TW tiles
of a chunk; xi = (a, b) the 16 points of a 4x4 transform.

One axis first (Lavin and Gray, "Fast Algorithms for Convolutional Neural Networks", 2016). The two
outputs y0 = d0 w0 + d1 w1 + d2 w2 and y1 = d1 w0 + d2 w1 + d3 w2 of a 3-tap filter w over 4 inputs d take
4 products instead of 6:

    y = A^T [(G w) * (B^T d)]      (* elementwise)

    B^T = [1  0 -1  0]      G = [ 1    0    0 ]      A^T = [1  1  1  0]
          [0  1  1  0]          [1/2  1/2  1/2]            [0  1 -1 -1]
          [0 -1  1  0]          [1/2 -1/2  1/2]
          [0  1  0 -1]          [ 0    0    1 ]

(with m = (G w) * (B^T d): m0 + m1 + m2 = y0 and m1 - m2 - m3 = y1, by multiplying out). Nested over the
two axes of a 4x4 input tile d (rows 2i..2i+3 and columns 2j..2j+3 of the padded input, overlapping its
neighbours by 2) and the 3x3 kernel, the 2x2 output tile is

    Y = A^T [U * V] A,      U = G w G^T (4x4),      V = B^T d B (4x4)

and, the transforms being linear, the sum over the input channels moves inside: per point xi,

    M_xi = V_xi @ U_xi^T,   (T, OC) = (T, C) @ (C, OC),     then Y = A^T M A per tile,

with U kept as (16, OC, C), w's own order of the channels.

So a convolution is 16 matrix products (2.25 times fewer multiply-adds than im2col's one product with
K = 9 C) between cheap transforms: B^T d B and A^T M A are additions only (each a few passes over the
tiles), G w G^T is done once per call. The rounding differs from the direct sum (the transforms add and
subtract inputs before the products): measured in float32 on random data (tests/test_winograd.py), the
largest error is within a few times the direct form's, both about 1e-6 of the largest output.

Backward (the transforms are linear maps, so each has its transpose as its adjoint):
    dM = A dY A^T per tile (dY's 2x2 tile, zero where a tile runs past the output),
    dU_xi = dM_xi^T @ V_xi     (OC, C),     dw = G^T dU G summed over the 16 points,
and dx, for a stride-1 layer, is the convolution of g with the flipped kernel (conv.py), computed in the
layout chosen for that convolution: by this module again where Winograd is chosen. So the weight
gradient needs V (from x again) and dM; the input transform's adjoint is not needed.

Layout: V is (16, T, C), U (16, OC, C) and M (16, T, OC), channels innermost: each transform step is a
handful of whole-array additions over slices two pixels apart along an outer axis, reading runs of C
values. The output is an NHWC array (the caller views it as NCHW, as the channels-last unfold does).
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from ..backend import get_array_module
from .args import Padding

# The F(2x2, 3x3) matrices (see the module docstring); 1/2 is exact in binary, so G w G^T rounds only once
# per product and sum.
B_T = np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]])
G = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]])
A_T = np.array([[1, 1, 1, 0], [0, 1, -1, -1]])


def tiles(out_size: tuple[int, int]) -> tuple[int, int]:
    """(TH, TW): 2x2 output tiles down and across, covering OH x OW (the last row or column of tiles runs
    one pixel past an odd size)."""
    return (out_size[0] + 1) // 2, (out_size[1] + 1) // 2


def _bt(d: list[Any], out: Any) -> None:
    """out[k] = sum_i B^T[k, i] d[i], for 4 equally shaped arrays d (one axis of B^T d B)."""
    xp = get_array_module(out)
    d0, d1, d2, d3 = d
    xp.subtract(d0, d2, out=out[0])
    xp.add(d1, d2, out=out[1])
    xp.subtract(d2, d1, out=out[2])
    xp.subtract(d1, d3, out=out[3])


def input_transform(x: Any, padding: Padding, n_tiles: tuple[int, int]) -> Any:
    """V[xi, t, c] = (B^T d B)[xi] for the 4x4 tile d of padded input under each output tile t = (n, i, j).
    Shapes: x (n, C, H, W), NCHW or a channels-last view -> V (16, n*TH*TW, C)."""
    xp = get_array_module(x)
    n, C, H, W = x.shape
    (pt, _), (pl, _) = padding
    TH, TW = n_tiles
    x_pad = xp.zeros((n, 2 * TH + 2, 2 * TW + 2, C), dtype=x.dtype)  # zeros past the input as padding
    x_pad[:, pt : pt + H, pl : pl + W] = x.transpose(0, 2, 3, 1)  # fits: 2 TH + 2 >= OH + 2 = H + pt + pb
    rows = xp.empty((4, n, TH, 2 * TW + 2, C), dtype=x.dtype)  # B^T d along the rows: rows 2i + (0..3)
    _bt([x_pad[:, k : k + 2 * TH : 2] for k in range(4)], rows)
    V = xp.empty((4, 4, n, TH, TW, C), dtype=x.dtype)  # then along the columns: columns 2j + (0..3)
    for a in range(4):
        _bt([rows[a][:, :, k : k + 2 * TW : 2] for k in range(4)], V[a])
    return V.reshape(16, n * TH * TW, C)


def output_transform(M: Any, n: int, out_size: tuple[int, int]) -> Any:
    """y = A^T M A per tile: the 2x2 output tiles from the products M. Shapes: M (16, n*TH*TW, OC) ->
    y (n, OH, OW, OC), NHWC (a view cropping the tiles that run past an odd size)."""
    xp = get_array_module(M)
    OC = M.shape[2]
    TH, TW = tiles(out_size)
    M = M.reshape(4, 4, n, TH, TW, OC)
    half = xp.empty((2, 4, n, TH, TW, OC), dtype=M.dtype)  # A^T M along the first axis
    xp.add(M[0], M[1], out=half[0])
    half[0] += M[2]
    xp.subtract(M[1], M[2], out=half[1])
    half[1] -= M[3]
    y = xp.empty((n, TH, 2, TW, 2, OC), dtype=M.dtype)  # then along the second: y[n, 2i + r, 2j + s, o]
    for r in range(2):
        h = half[r]
        y_r0, y_r1 = y[:, :, r, :, 0], y[:, :, r, :, 1]
        xp.add(h[0], h[1], out=y_r0)
        y_r0 += h[2]
        xp.subtract(h[1], h[2], out=y_r1)
        y_r1 -= h[3]
    return y.reshape(n, 2 * TH, 2 * TW, OC)[:, : out_size[0], : out_size[1]]


def _a(y0: Any, y1: Any, out: Any) -> None:
    """out[k] = sum_r A[k, r] y_r, A = (A^T)^T: y0, y0 + y1, y0 - y1, -y1 (one axis of A dY A^T)."""
    xp = get_array_module(out)
    out[0] = y0
    xp.add(y0, y1, out=out[1])
    xp.subtract(y0, y1, out=out[2])
    xp.negative(y1, out=out[3])


def output_transform_grad(g: Any, n_tiles: tuple[int, int]) -> Any:
    """dM = A dY A^T per tile, the adjoint of ``output_transform``: dY is g's 2x2 tile, zero past an odd
    size. Shapes: g (n, OC, OH, OW), NCHW or a channels-last view -> dM (16, n*TH*TW, OC)."""
    xp = get_array_module(g)
    n, OC, OH, OW = g.shape
    TH, TW = n_tiles
    if (OH, OW) == (2 * TH, 2 * TW):
        dY = xp.ascontiguousarray(g.transpose(0, 2, 3, 1))  # (n, OH, OW, OC): free for a channels-last g
    else:
        dY = xp.zeros((n, 2 * TH, 2 * TW, OC), dtype=g.dtype)
        dY[:, :OH, :OW] = g.transpose(0, 2, 3, 1)
    dY = dY.reshape(n, TH, 2, TW, 2, OC)
    rows = xp.empty((4, n, TH, TW, 2, OC), dtype=g.dtype)  # A dY along the rows
    _a(dY[:, :, 0], dY[:, :, 1], rows)
    dM = xp.empty((4, 4, n, TH, TW, OC), dtype=g.dtype)  # then along the columns
    for a in range(4):
        _a(rows[a][..., 0, :], rows[a][..., 1, :], dM[a])
    return dM.reshape(16, n * TH * TW, OC)


@functools.cache
def _gg(xp: Any, dtype: Any) -> Any:
    """G (x) G, (16, 9): row (a, b), column (k, l) holds G[a, k] G[b, l]: U = G w G^T as one product.
    Made once per array module and dtype (on a GPU: one copy to the device, not one per call)."""
    return xp.asarray(np.kron(G, G), dtype=dtype)


def weight_transform(w: Any) -> Any:
    """U[xi, o, c] = (G w[o, c] G^T)[xi], as one product with G (x) G. Shapes: w (OC, C, 3, 3) ->
    U (16, OC, C) (the products read it transposed, as (16, C, OC), without a copy)."""
    xp = get_array_module(w)
    OC, C = w.shape[:2]
    return (_gg(xp, w.dtype) @ w.reshape(OC * C, 9).T).reshape(16, OC, C)  # (16, OC*C) = (16, 9) @ (9, OC*C)


def weight_transform_grad(dU: Any) -> Any:
    """dw = G^T dU G summed over the points, the adjoint of ``weight_transform``. Shapes: dU (16, OC, C) ->
    dw (OC, C, 3, 3)."""
    xp = get_array_module(dU)
    _, OC, C = dU.shape
    return (dU.reshape(16, OC * C).T @ _gg(xp, dU.dtype)).reshape(OC, C, 3, 3)  # (OC*C, 16) @ (16, 9)
