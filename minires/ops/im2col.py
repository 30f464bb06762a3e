"""Unfolding image patches into a matrix (``im2col``) and folding them back (``col2im``), three ways.

Notation: N, C, H, W         batch size, input channels, input height and width
          G, Cg              groups, input channels per group (C / G)
          KH, KW             kernel height and width
          SH, SW, DH, DW     stride and dilation
          OH, OW             output height and width
          T                  kernel taps (kh, kw) kept: KH*KW, or fewer when some see only padding
          K, M               K = Cg*KH*KW values under one kernel position, M = N*OH*OW output pixels

Each way copies, for each kernel offset (kh, kw), the pixels under it for every output position at once: one
strided slice of the zero-padded input. They differ in which axis is innermost, and so in how long the
contiguous runs of each copy are. (conv_layouts.py wraps each in a layout class, and measures which layers
each one is the fastest for.)

- channels first (``im2col``, ``col2im``): the textbook matrix, one row per (c, kh, kw) and one column per
  output pixel (n, oh, ow); the runs are image rows, OW values long. The reference layout, and the faster
  one for large images with few channels (the 16- and 32-channel stages of a CIFAR ResNet).
- channels last (``im2col_nhwc``, ``col2im_nhwc``): one row per output pixel (n, oh, ow), one column per
  (kh, kw, c); the runs are the Cg channels of a pixel. Faster where the images are small and the channels
  many (the late stages of every ResNet, where a row of a 7x7 or 2x2 image is too short a run).
- channels first by shifted rows (``im2col_rows``, stride 1 only): the images laid end to end, with zeros
  between rows and between images that pad both neighbours, so that a tap is one shift of the whole flat
  array and each (channel, tap) one contiguous copy; the columns that land on those zeros are computed
  and dropped (``rows_view`` picks the output pixels). Stacked, it copies the taps of the first kernel row
  only, over a span longer by the other rows' shifts (conv_layouts.py ``ShiftedRows``). No fold back: the
  stride-1 convolutions it serves get dx as a convolution with the flipped kernel (conv.py).

Channels last also drops the taps that see only padding (a 3x3 kernel with padding 1 on a 1x1 image has
one live tap out of nine): their columns would be all zeros, and so their products. Where the one tap
left reads every pixel once (a 1x1 kernel with stride 1, no padding), cols is x itself: no copy for a
channels-last x (cols is then a view of x, which the products only read).
"""

from __future__ import annotations

from typing import Any

from ..backend import get_array_module
from .args import Padding, Pair, padding4, pair


def conv_output_size(size: int, kernel: int, stride: int, pad: tuple[int, int], dilation: int) -> int:
    """floor((size + pad_before + pad_after - dilation*(kernel - 1) - 1) / stride) + 1."""
    return (size + pad[0] + pad[1] - dilation * (kernel - 1) - 1) // stride + 1


def im2col(
    x: Any,
    kernel_size: int | Pair,
    stride: int | Pair = 1,
    padding: int | Pair | Padding = 0,
    dilation: int | Pair = 1,
    groups: int = 1,
) -> Any:
    r"""Unfold every kernel-sized patch of ``x`` into one column of a matrix (one matrix per group).

    Notation: N, C, H, W (input), KH, KW (kernel), OH, OW (output), G groups of Cg = C/G channels,
    SH, SW the stride, DH, DW the dilation.

        cols[g, (c, kh, kw), (n, oh, ow)] = x_pad[n, g*Cg + c, oh*SH + kh*DH, ow*SW + kw*DW]

    x_pad is x with zeros around it (``padding`` is an int, (PH, PW), or ((top, bottom), (left, right))).
    For kernel offset (kh, kw) the pixels under it, for every output position at once, are one strided
    slice of x_pad (rows kh*DH, kh*DH + SH, ...; likewise columns), and the slices of all the offsets are
    one strided view of x_pad: cols is one copy of it.

    Shapes: x (N, C, H, W) -> cols (G, Cg*KH*KW, N*OH*OW).
    """
    xp = get_array_module(x)
    N, C, H, W = x.shape
    KH, KW = pair(kernel_size)
    (SH, SW), (DH, DW) = pair(stride), pair(dilation)
    (pt, pb), (pl, pr) = padding4(padding)
    G, Cg = groups, C // groups
    OH = conv_output_size(H, KH, SH, (pt, pb), DH)
    OW = conv_output_size(W, KW, SW, (pl, pr), DW)
    # Padded input with the batch axis second, (C, N, H, W): each channel's images form one block, and so
    # does each row of cols below (measured 1.4x faster than NCHW for im2col and 1.8x for col2im).
    x_pad = xp.zeros((C, N, H + pt + pb, W + pl + pr), dtype=x.dtype)
    x_pad[:, :, pt : pt + H, pl : pl + W] = x.transpose(1, 0, 2, 3)
    # Offset (kh, kw) reads x_pad rows oh*SH + kh*DH and columns ow*SW + kw*DW: strides along kh, kw, oh and
    # ow in one view of x_pad, so that one copy fills cols (a loop over the offsets, one strided slice each,
    # does the same in KH*KW copies).
    sc, sn, sh, sw = x_pad.strides
    patches = xp.lib.stride_tricks.as_strided(
        x_pad, (C, KH, KW, N, OH, OW), (sc, DH * sh, DW * sw, sn, SH * sh, SW * sw)
    )
    cols = xp.empty((C, KH, KW, N, OH, OW), dtype=x.dtype)
    cols[...] = patches  # cols[c, kh, kw] = x_pad[:, :, rows of kh, columns of kw], (C, N, OH, OW) each
    return cols.reshape(G, Cg * KH * KW, N * OH * OW)  # (G, K, M)


def col2im(
    cols: Any,
    x_shape: tuple[int, int, int, int],
    kernel_size: int | Pair,
    stride: int | Pair = 1,
    padding: int | Pair | Padding = 0,
    dilation: int | Pair = 1,
) -> Any:
    r"""Fold patch columns back onto the image, adding where patches overlap: the adjoint of ``im2col``.

    Notation: N, C, H, W (input), KH, KW (kernel), OH, OW (output), G groups of Cg = C/G channels,
    SH, SW the stride, DH, DW the dilation.

        x_pad[n, g*Cg + c, oh*SH + kh*DH, ow*SW + kw*DW] += cols[g, (c, kh, kw), (n, oh, ow)]

    then the padding is cropped off. im2col copies each pixel into every patch that covers it, so
    <im2col(x), cols> = <x, col2im(cols)>: the gradient of a pixel is the sum of the gradients of its
    copies. A loop over the KH*KW kernel offsets, adding each one's slice of cols to its strided slice of
    x_pad (im2col's view, read backwards): one copy would not do, since where patches overlap, the slices
    of different offsets land on shared pixels and must add up. Along an axis with stride S, dilation D
    and kernel K they overlap exactly when S / gcd(S, D) <= K - 1 (S = K = D = 2 overlaps); pixels that no
    window covers get nothing (dx = 0 there).

    Shapes: cols (G, Cg*KH*KW, N*OH*OW), as im2col returns it for any G -> x (N, C, H, W) = x_shape.
    """
    xp = get_array_module(cols)
    N, C, H, W = x_shape
    KH, KW = pair(kernel_size)
    (SH, SW), (DH, DW) = pair(stride), pair(dilation)
    (pt, pb), (pl, pr) = padding4(padding)
    OH = conv_output_size(H, KH, SH, (pt, pb), DH)
    OW = conv_output_size(W, KW, SW, (pl, pr), DW)
    cols = cols.reshape(C, KH, KW, N, OH, OW)  # channel c of group g is row block g*Cg + c
    x_pad = xp.zeros((C, N, H + pt + pb, W + pl + pr), dtype=cols.dtype)  # batch axis second, as in im2col
    for kh in range(KH):
        rows = slice(kh * DH, kh * DH + SH * (OH - 1) + 1, SH)
        for kw in range(KW):
            columns = slice(kw * DW, kw * DW + SW * (OW - 1) + 1, SW)
            x_pad[:, :, rows, columns] += cols[:, kh, kw]  # (C, N, OH, OW)
    return xp.ascontiguousarray(x_pad[:, :, pt : pt + H, pl : pl + W].transpose(1, 0, 2, 3))  # (N, C, H, W)


def live_run(size: int, out: int, k: int, stride: int, dilation: int, pad: int) -> tuple[slice, slice]:
    """Along one axis, the outputs o for which kernel offset k reads inside the input, o*stride + k*dilation
    - pad in [0, size), and the input indices they read, as slices: o is a run (the condition is an
    interval), empty where the offset only ever sees padding. pad is the padding before the input."""
    first = pad - k * dilation  # o*stride >= first and o*stride <= first + size - 1
    lo = max(0, -(-first // stride))  # ceil(first / stride), at least 0
    hi = max(lo, min(out, (first + size - 1) // stride + 1))
    start = lo * stride - first
    return slice(lo, hi), slice(start, start + (hi - lo - 1) * stride + 1, stride)


def live_taps(
    size: tuple[int, int],
    kernel_size: Pair,
    stride: Pair,
    padding: Padding,
    dilation: Pair,
) -> list[tuple[int, int]]:
    """The kernel offsets (kh, kw) that fall on the input (not in the padding) for some output pixel: those
    whose ``live_run`` is not empty along both axes."""
    live = []
    for axis in (0, 1):
        n, k, s, pad, d = size[axis], kernel_size[axis], stride[axis], padding[axis], dilation[axis]
        out = conv_output_size(n, k, s, pad, d)
        runs = [live_run(n, out, i, s, d, pad[0])[0] for i in range(k)]
        live.append([i for i, run in enumerate(runs) if run.stop > run.start])
    return [(kh, kw) for kh in live[0] for kw in live[1]]


def _tap_slices(tap: tuple[int, int], stride: Pair, dilation: Pair, OH: int, OW: int) -> tuple[slice, slice]:
    """The rows and columns of the padded input under kernel offset ``tap`` for all output pixels."""
    (kh, kw), (SH, SW), (DH, DW) = tap, stride, dilation
    return (
        slice(kh * DH, kh * DH + SH * (OH - 1) + 1, SH),  # rows oh*SH + kh*DH, all oh
        slice(kw * DW, kw * DW + SW * (OW - 1) + 1, SW),  # columns ow*SW + kw*DW, all ow
    )


def _tap_is_the_image(
    taps: list[tuple[int, int]], stride: Pair, dilation: Pair, padding: Padding, size: Pair, out_size: Pair
) -> bool:
    """Whether the one live tap reads every input pixel once, in order (a 1x1 kernel with stride 1 and no
    padding, or a larger kernel of which one tap is live): then channels-last cols is x itself."""
    if len(taps) != 1:
        return False
    (kh, kw), (DH, DW), ((pt, _), (pl, _)) = taps[0], dilation, padding
    return stride == (1, 1) and out_size == size and kh * DH == pt and kw * DW == pl


def im2col_nhwc(
    x: Any,
    taps: list[tuple[int, int]],
    stride: Pair,
    padding: Padding,
    dilation: Pair,
    groups: int,
    out_size: tuple[int, int],
) -> Any:
    r"""Channels-last ``im2col``: one row per output pixel, the kept taps and the channels along it.

        cols[g, (n, oh, ow), (t, c)] = x_pad[n, g*Cg + c, oh*SH + kh_t*DH, ow*SW + kw_t*DW]

    for the taps t = (kh_t, kw_t) in ``taps``. ``x`` is (N, C, H, W) in any memory layout; a channels-last
    one (x.transpose(0, 2, 3, 1) contiguous, as the convolutions here return) is read without reordering.

    With one tap that reads every pixel once (``_tap_is_the_image``) cols is x itself, a view of it when x
    is channels last: read it, never write into it.
    Shapes: x (N, C, H, W) -> cols (G, N*OH*OW, T*Cg).
    """
    xp = get_array_module(x)
    N, C, H, W = x.shape
    (pt, pb), (pl, pr) = padding
    OH, OW = out_size
    G, Cg = groups, C // groups
    x_nhwc = x.transpose(0, 2, 3, 1)  # (N, H, W, C): a view
    if G == 1 and _tap_is_the_image(taps, stride, dilation, padding, (H, W), out_size):
        return x_nhwc.reshape(1, N * H * W, C)  # cols is x itself: a view of channels-last x, else a copy
    if pt or pb or pl or pr:
        x_pad = xp.zeros((N, H + pt + pb, W + pl + pr, C), dtype=x.dtype)
        x_pad[:, pt : pt + H, pl : pl + W] = x_nhwc
    else:
        x_pad = x_nhwc
    x_groups = x_pad.reshape(*x_pad.shape[:3], G, Cg).transpose(3, 0, 1, 2, 4)  # (G, N, Hp, Wp, Cg)
    cols = xp.empty((G, N, OH, OW, len(taps), Cg), dtype=x.dtype)
    for t, tap in enumerate(taps):
        rows, columns = _tap_slices(tap, stride, dilation, OH, OW)
        cols[:, :, :, :, t] = x_groups[:, :, rows, columns]  # (G, N, OH, OW, Cg)
    return cols.reshape(G, N * OH * OW, len(taps) * Cg)  # (G, M, T*Cg)


def col2im_nhwc(
    cols: Any,
    x_shape: tuple[int, int, int, int],
    taps: list[tuple[int, int]],
    stride: Pair,
    padding: Padding,
    dilation: Pair,
    out_size: tuple[int, int],
) -> Any:
    r"""The adjoint of ``im2col_nhwc``: each column block added back onto the pixels it was copied from.

        x_pad[n, g*Cg + c, oh*SH + kh_t*DH, ow*SW + kw_t*DW] += cols[g, (n, oh, ow), (t, c)]

    then the padding is cropped off (as ``col2im``, with the channels innermost).
    Shapes: cols (G, N*OH*OW, T*Cg) -> x (N, C, H, W), returned as a view of a channels-last array.
    """
    xp = get_array_module(cols)
    N, C, H, W = x_shape
    (pt, pb), (pl, pr) = padding
    OH, OW = out_size
    G = cols.shape[0]
    Cg = C // G
    cols = cols.reshape(G, N, OH, OW, len(taps), Cg)
    x_pad = xp.zeros((N, H + pt + pb, W + pl + pr, C), dtype=cols.dtype)
    x_groups = x_pad.reshape(*x_pad.shape[:3], G, Cg).transpose(3, 0, 1, 2, 4)  # (G, N, Hp, Wp, Cg), a view
    for t, tap in enumerate(taps):
        rows, columns = _tap_slices(tap, stride, dilation, OH, OW)
        x_groups[:, :, rows, columns] += cols[:, :, :, :, t]  # (G, N, OH, OW, Cg)
    return x_pad[:, pt : pt + H, pl : pl + W].transpose(0, 3, 1, 2)  # (N, C, H, W)


def im2col_rows(
    x: Any, kernel_size: Pair, padding: Padding, dilation: Pair, groups: int, stacked: bool = False
) -> tuple[Any, tuple[int, int, int]]:
    r"""Stride-1 channels-first ``im2col`` on the images laid end to end: each tap is one shift.

    The images go into a flat array, each as Hz = H + max(pt, pb) rows of Wz = W + max(pl, pr) values:
    its own rows, each followed by max(pl, pr) zeros, then max(pt, pb) rows of zeros, after a head of
    P = pt*Wz + pl zeros. So x_flat[c, P + n*Hz*Wz + i*Wz + j] = x[n, c, i, j], and the zeros after a row
    are both its right padding and the next row's left padding (likewise the zero rows between two images:
    the bottom padding of one and the top padding of the next). The value under tap (kh, kw) for the
    output pixel at flat position p = n*Hz*Wz + oh*Wz + ow is x_flat[c, p + s], with the shift
    s = kh*DH*Wz + kw*DW, the same for every pixel (a read off the image's edge lands on a zero: the
    reads reach pl columns to the left, pr to the right, pt rows up and pb down). So

        cols[g, (c, kh, kw), p] = x_flat[g*Cg + c, p + kh*DH*Wz + kw*DW]

    is one contiguous copy per (channel, tap), where ``im2col`` copies one image row at a time. The price:
    columns p whose ow >= OW or oh >= OH (the zeros between rows and images) are unfolded and multiplied
    too, and thrown away: Hz*Wz / (OH*OW) - 1 more GEMM work (7% on 28x28 images with padding 1; padding
    each image on its own, as a first version did, costs twice as much: 15%).
    Needs OH <= Hz and OW <= Wz: the padding on each side at most the dilated kernel's extent, as
    ``dx_is_convolution`` (the layers this layout takes) asks.

    ``stacked``: the taps of the first kernel row only, over a span longer by the other rows' shifts,

        cols[g, (c, kw), q] = x_flat[g*Cg + c, q + kw*DW],   q < L + (KH-1)*DH*Wz,

    since tap (kh, kw) at p is column p + kh*DH*Wz of tap (0, kw): KH times fewer values to copy, and the
    kernel rows are applied by shifting the products instead (conv_layouts.py ``ShiftedRows``).
    Returns cols and (Hz, Wz, L). Shapes: x (N, C, H, W) -> cols (G, Cg*KH*KW, L), or (G, Cg*KW,
    L + (KH-1)*DH*Wz) stacked; L = (N-1)*Hz*Wz + (OH-1)*Wz + OW, the span of flat positions that hold an
    output pixel.
    """
    xp = get_array_module(x)
    N, C, H, W = x.shape
    (KH, KW), (DH, DW) = kernel_size, dilation
    (pt, pb), (pl, pr) = padding
    Hz, Wz = H + max(pt, pb), W + max(pl, pr)
    OH, OW = H + pt + pb - DH * (KH - 1), W + pl + pr - DW * (KW - 1)
    L = (N - 1) * Hz * Wz + (OH - 1) * Wz + OW
    head = pt * Wz + pl
    reach = DH * (KH - 1) * Wz + DW * (KW - 1)  # the largest shift
    x_flat = xp.zeros((C, max(head + N * Hz * Wz, L + reach)), dtype=x.dtype)
    images = x_flat[:, head : head + N * Hz * Wz].reshape(C, N, Hz, Wz)
    images[:, :, :H, :W] = x.transpose(1, 0, 2, 3)  # (C, N, H, W)
    rows, span = (1, L + DH * (KH - 1) * Wz) if stacked else (KH, L)  # kernel rows unfolded, columns
    row, step = x_flat.strides  # tap (kh, kw) starts kh*DH*Wz + kw*DW values in: one view holds every tap
    taps = xp.lib.stride_tricks.as_strided(
        x_flat, (C, rows, KW, span), (row, DH * Wz * step, DW * step, step)
    )
    cols = xp.empty((C, rows, KW, span), dtype=x.dtype)
    cols[...] = taps  # cols[c, kh, kw] = x_flat[c, shift : shift + span], all taps in one copy
    return cols.reshape(groups, (C // groups) * rows * KW, span), (Hz, Wz, L)


def rows_view(flat: Any, n: int, out_size: tuple[int, int], padded: tuple[int, int]) -> Any:
    """The output pixels of ``flat`` (R, L), laid out as im2col_rows's columns, as a view (R, n, OH, OW)."""
    xp = get_array_module(flat)
    (OH, OW), (Hp, Wp), step = out_size, padded, flat.strides[-1]
    R = flat.shape[0]
    strides = (flat.strides[0], Hp * Wp * step, Wp * step, step)
    return xp.lib.stride_tricks.as_strided(flat, shape=(R, n, OH, OW), strides=strides)
