"""2-d convolution as a matrix product: ``im2col`` unfolds the patches, one GEMM per group does the rest.

Notation: N, C, H, W         batch size, input channels, input height and width
          OC, G              output channels, groups
          Cg, OCg            input and output channels per group (C / G, OC / G)
          KH, KW             kernel height and width
          SH, SW, DH, DW     stride and dilation
          OH, OW             output height and width
          K, M               K = Cg*KH*KW values under one kernel position, M = N*OH*OW output pixels

Layout. ``im2col.py`` unfolds the patches in one of three ways, and the convolution picks one per layer
(``choose_layout``): channels last ("nhwc") when a pixel's channels make a longer run than an output row
(the small images of the late stages: 1.5-2.5x faster there than channels first); otherwise channels
first, by shifted rows ("rows", stride 1: one contiguous copy per channel and tap, 1.5-2x faster to unfold
than row by row, for 15-30% more GEMM columns) or row by row ("nchw", the textbook im2col, the reference,
and the unfold of strided layers). A channels-last convolution returns its output as an NCHW view of an
NHWC array (PyTorch's channels_last memory format): the elementwise ops after it keep that layout, and the
next convolution reads it without reordering. The public shapes are NCHW throughout.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from ..backend import get_array_module
from ..errors import DTypeError, ShapeError
from ..function import Function
from ..tensor import Tensor
from .im2col import (
    Padding,
    Pair,
    _pair,
    col2im,
    col2im_nhwc,
    conv_output_size,
    im2col,
    im2col_nhwc,
    im2col_rows,
    live_taps,
    rows_view,
)
from .shape import squeeze, unsqueeze

CHUNK_BYTES = 4 << 20  # the cols of one batch chunk: about 4 MiB, to stay in the cache (L3 here: 32 MiB)
LAYOUTS = ("nchw", "rows", "nhwc")  # im2col, im2col_rows, im2col_nhwc
_forced_layout: list[str | None] = [None]  # set by conv_layout; None: choose_layout decides per layer


def choose_layout(channels_per_group: int, out_width: int, stride_one: bool) -> str:
    """The unfold of one layer (see the module docstring): channels last when a pixel's Cg channels make a
    longer run than an output row of OW values; otherwise channels first, by shifted rows when the
    convolution has stride 1 (and padding at most the dilated kernel's extent), else row by row."""
    forced = _forced_layout[0]
    if forced is not None:
        return "nchw" if forced == "rows" and not stride_one else forced
    if channels_per_group >= 4 * out_width:
        return "nhwc"
    return "rows" if stride_one else "nchw"


@contextlib.contextmanager
def conv_layout(layout: str | None) -> Iterator[None]:
    """Within the block every conv2d unfolds in ``layout`` ("nchw", "rows" (stride-1 layers only; the
    others fall back to "nchw") or "nhwc"); None is the per-layer choice. For tests (every layout
    against the same references) and benchmarks."""
    if layout is not None and layout not in LAYOUTS:
        raise ValueError(f"conv_layout: expected one of {LAYOUTS} or None, got {layout!r}")
    saved = _forced_layout[0]
    _forced_layout[0] = layout
    try:
        yield
    finally:
        _forced_layout[0] = saved


class Conv2d(Function):
    r"""y[n, o, oh, ow] = b[o] + sum_{c, kh, kw} w[o, c, kh, kw] x_pad[n, c, oh*SH + kh*DH, ow*SW + kw*DW],
    c running over the Cg input channels of output channel o's group.

    Forward as a matrix product. im2col unfolds the patches into cols (K rows (c, kh, kw); M columns,
    one per output pixel (n, oh, ow)). w reshaped to W (OC, K) has its columns in the same order, so the
    convolution is one product per group g (W_g, b_g: the group's OCg = OC/G output channels):
        Y_g = W_g @ cols_g + b_g                    (OCg, M) = (OCg, K) @ (K, M)
    and y is Y with its axes (o, (n, oh, ow)) put back in NCHW order.

    Backward, with dY = dL/dY in the same (OC, M) layout. Y_om = sum_k W_ok cols_km + b_o is linear in
    W, cols and b, with dY_om/dW_ok = cols_km, dY_om/dcols_km = W_ok and dY_om/db_o = 1, so
        dW_g    = dY_g @ cols_g^T                   (OCg, K) = (OCg, M) @ (M, K)
        db      = sum of dY over the columns m       (OC,)
        dcols_g = W_g^T @ dY_g                      (K, M)   = (K, OCg) @ (OCg, M)
        dx      = col2im(dcols)                     (N, C, H, W)
    col2im scatter-adds each patch column back to the pixels it came from: it is the adjoint of im2col, so a
    pixel that sits in several patches collects the gradient of every copy.

    Channels last is the same algebra transposed: cols (M, T*Cg) with one row per output pixel, and
        Y_g = cols_g @ W_g^T,   dW_g = dY_g^T @ cols_g,   dcols_g = dY_g @ W_g      (Y, dY: (M, OCg))
    where W_g keeps only the T live taps (the others multiply zeros: their dW is 0). By rows, the same
    products as channels first, over L >= M columns of which the output pixels are a strided subset: Y is
    read there, and dY is put there with zeros in the other columns (so they add nothing to dW).

    Batch chunks. Both products are done a few images at a time (``_chunks``), so that a chunk's
    cols (about CHUNK_BYTES) stays in the cache between the unfold and the GEMM that reads it: measured
    1.3-1.7x faster than one unfold of the whole batch. Backward unfolds each chunk again instead of
    keeping cols of the whole batch from forward: a ResNet's cols are many times its activations.
    dx is skipped when x needs no gradient (the first conv layer), x is kept only when dW is needed.
    Shapes: x (N, C, H, W), w (OC, Cg, KH, KW), b (OC,), y (N, OC, OH, OW).
    """

    def __init__(
        self, stride: Pair, padding: Padding, dilation: Pair, groups: int, layout: str | None = None
    ) -> None:
        self.stride, self.padding, self.dilation, self.groups = stride, padding, dilation, groups
        self.layout = layout  # one of LAYOUTS; None: chosen per call by choose_layout

    def _chunks(self, N: int, K: int, pixels: int, itemsize: int) -> list[slice]:
        """Slices of the batch axis whose cols (K values for each of ``pixels`` output pixels per image)
        take about CHUNK_BYTES."""
        B = max(1, CHUNK_BYTES // max(1, K * pixels * itemsize))
        return [slice(i, min(i + B, N)) for i in range(0, N, B)]

    def _unfold(self, x: Any) -> Any:
        """cols of the images ``x``: (G, K, M) nchw, (G, K, L) rows, (G, M, T*Cg) nhwc."""
        if self.layout == "rows":
            return im2col_rows(x, self.w_shape[2:], self.padding, self.dilation, self.groups)[0]
        if self.layout == "nhwc":
            return im2col_nhwc(
                x, self.taps, self.stride, self.padding, self.dilation, self.groups, self.out_size
            )
        return im2col(x, self.w_shape[2:], self.stride, self.padding, self.dilation, self.groups)

    def _fold(self, dcols: Any, n: int) -> Any:
        """The adjoint of _unfold, for a chunk of n images: (n, C, H, W)."""
        x_shape = (n, *self.x_shape[1:])
        if self.layout == "nhwc":
            return col2im_nhwc(
                dcols, x_shape, self.taps, self.stride, self.padding, self.dilation, self.out_size
            )
        return col2im(dcols, x_shape, self.w_shape[2:], self.stride, self.padding, self.dilation)

    def forward(self, x: Any, w: Any, b: Any | None) -> Any:
        xp = get_array_module(x)
        N, C, H, W = x.shape
        OC, Cg, KH, KW = w.shape
        G, OCg = self.groups, OC // self.groups
        OH = conv_output_size(H, KH, self.stride[0], self.padding[0], self.dilation[0])
        OW = conv_output_size(W, KW, self.stride[1], self.padding[1], self.dilation[1])
        self.x_shape, self.w_shape, self.out_size = x.shape, w.shape, (OH, OW)
        if self.layout is None:
            self.layout = choose_layout(Cg, OW, self._dx_as_convolution())
        elif self.layout == "rows" and not self._dx_as_convolution():
            self.layout = "nchw"
        nhwc = self.layout == "nhwc"
        pixels = OH * OW  # columns of cols per image
        if self.layout == "rows":
            (pt, pb), (pl, pr) = self.padding
            self.padded = (H + pt + pb, W + pl + pr)
            pixels = self.padded[0] * self.padded[1]
        if nhwc:  # only the live taps: W_mat (G, OCg, T*Cg), columns in (t, c) order
            self.taps = live_taps((H, W), (KH, KW), self.stride, self.padding, self.dilation)
            self.tap_index = [kh * KW + kw for kh, kw in self.taps]
            W_taps = w.reshape(G, OCg, Cg, KH * KW)[..., self.tap_index]  # (G, OCg, Cg, T)
            W_mat = xp.ascontiguousarray(W_taps.transpose(0, 1, 3, 2)).reshape(G, OCg, -1)
            y = xp.empty((N, OH, OW, OC), dtype=x.dtype)  # channels last
        else:
            W_mat = w.reshape(G, OCg, Cg * KH * KW)  # (G, OCg, K)
            y = xp.empty((N, OC, OH, OW), dtype=x.dtype)
        self.chunks = self._chunks(N, W_mat.shape[2], pixels, x.dtype.itemsize)
        for chunk in self.chunks:
            n, cols = chunk.stop - chunk.start, self._unfold(x[chunk])
            if nhwc:
                Y = cols @ W_mat.transpose(0, 2, 1)  # (G, m, OCg), m = n*OH*OW
                y[chunk] = (Y.transpose(1, 0, 2) if G > 1 else Y).reshape(n, OH, OW, OC)
            elif self.layout == "rows":
                Y = (W_mat @ cols).reshape(OC, -1)  # (OC, L): the output pixels among its columns
                y[chunk] = rows_view(Y, n, (OH, OW), self.padded).transpose(1, 0, 2, 3)
            else:
                Y = W_mat @ cols  # (G, OCg, m)
                y[chunk] = Y.reshape(OC, n, OH, OW).transpose(1, 0, 2, 3)
        if nhwc:
            y = y.transpose(0, 3, 1, 2)  # (N, OC, OH, OW), a view of the channels-last array
        if b is not None:
            y += b.reshape(OC, 1, 1)
        if self.needs_input_grad[0]:  # dx from w itself when it is a convolution, else from W_mat
            self.flipped = self._dx_as_convolution()
            self.w_for_dx = w if self.flipped else W_mat
        if self.needs_input_grad[1]:
            self.x = x
        return y

    def _dx_as_convolution(self) -> bool:
        """Whether dx can be computed as a stride-1 convolution of g (see _dx_by_flipped_kernel)."""
        KH, KW = self.w_shape[2:]
        (DH, DW), (pt, pb), (pl, pr) = self.dilation, *self.padding
        return self.stride == (1, 1) and max(pt, pb) <= DH * (KH - 1) and max(pl, pr) <= DW * (KW - 1)

    def _dx_by_flipped_kernel(self, g: Any) -> Any:
        r"""dx for stride 1, as a gather instead of col2im's scatter-add (measured 1.6-1.9x faster).

        With stride 1, y[i] = sum_k w[k] x[i + k d - p_top] (one axis shown), so
            dx[j] = sum_k w[k] g[j + p_top - k d] = sum_k' w[K-1-k'] g_pad[j + k' d],
        with k' = K-1-k and g padded by d (K-1) - p_top before and d (K-1) - p_bottom after: a
        stride-1 correlation of g with the kernel flipped in space and with its channel axes swapped
        (w'[c, o] = w[o, c] within each group).
        """
        G, (OC, Cg, KH, KW) = self.groups, self.w_shape
        (DH, DW), (pt, pb), (pl, pr) = self.dilation, *self.padding
        w = self.w_for_dx.reshape(G, OC // G, Cg, KH, KW).transpose(0, 2, 1, 3, 4)[..., ::-1, ::-1]
        w = w.reshape(G * Cg, OC // G, KH, KW)  # (C, OCg, KH, KW)
        padding = ((DH * (KH - 1) - pt, DH * (KH - 1) - pb), (DW * (KW - 1) - pl, DW * (KW - 1) - pr))
        transposed = Conv2d((1, 1), padding, self.dilation, G)
        transposed.needs_input_grad = (False, False, False)
        return transposed.forward(g, w, None)

    def backward(self, g: Any) -> tuple[Any, Any, Any]:
        xp = get_array_module(g)
        N, OC, OH, OW = g.shape
        G, OCg = self.groups, OC // self.groups
        nhwc = self.layout == "nhwc"
        need_dx, need_dw, need_db = self.needs_input_grad
        dx = dw = db = None
        fold_dx = need_dx and not self.flipped  # dx by col2im, chunk by chunk in the loop below
        if need_dx and self.flipped:
            dx = self._dx_by_flipped_kernel(g)
        elif need_dx:
            dx = xp.empty(self.x_shape, dtype=g.dtype)
            if nhwc:
                dx = xp.empty((N, *self.x_shape[2:], self.x_shape[1]), dtype=g.dtype).transpose(0, 3, 1, 2)
        dW = None  # (G, OCg, K), (G, OCg, T*Cg) or by rows (G, OCg, K), summed over the chunks
        for chunk in self.chunks if fold_dx or need_dw else ():
            n = chunk.stop - chunk.start
            cols = self._unfold(self.x[chunk]) if need_dw else None
            if nhwc:  # dY (G, m, OCg)
                dY = xp.ascontiguousarray(g[chunk].transpose(0, 2, 3, 1)).reshape(1, -1, OC)
                if G > 1:  # contiguous per group: matmul loops slowly over strides BLAS cannot take
                    dY = xp.ascontiguousarray(dY.reshape(-1, G, OCg).transpose(1, 0, 2))
            elif self.layout == "rows":  # dY (G, OCg, L), 0 at the columns that are no output pixel
                dY = xp.zeros((OC, cols.shape[2]), dtype=g.dtype)  # cols is there: rows loops only for dW
                rows_view(dY, n, (OH, OW), self.padded)[...] = g[chunk].transpose(1, 0, 2, 3)
                dY = dY.reshape(G, OCg, -1)
            else:  # dY (G, OCg, m)
                dY = xp.ascontiguousarray(g[chunk].transpose(1, 0, 2, 3)).reshape(G, OCg, -1)
            if need_dw:
                part = dY.transpose(0, 2, 1) @ cols if nhwc else dY @ cols.transpose(0, 2, 1)
                if dW is None:
                    dW = part
                else:
                    dW += part
            if fold_dx:
                W_mat = self.w_for_dx
                dcols = dY @ W_mat if nhwc else W_mat.transpose(0, 2, 1) @ dY  # (G, m, T*Cg) / (G, K, m)
                dx[chunk] = self._fold(dcols, n)
        if need_dw:
            if dW is None:  # an empty batch
                dw = xp.zeros(self.w_shape, dtype=g.dtype)
            elif nhwc:  # columns (t, c) back to (c, kh, kw); the dead taps stay 0
                Cg, KH, KW = self.w_shape[1:]
                dw = xp.zeros((G, OCg, Cg, KH * KW), dtype=g.dtype)
                dw[..., self.tap_index] = dW.reshape(G, OCg, len(self.taps), Cg).transpose(0, 1, 3, 2)
                dw = dw.reshape(self.w_shape)
            else:
                dw = dW.reshape(self.w_shape)  # (OC, Cg, KH, KW)
        if need_db:
            db = g.sum(axis=(0, 2, 3))  # (OC,)
        return dx, dw, db


# ----- wrapper ---------------------------------------------------------------------------------------
def int_pair(op: str, name: str, value: Any) -> Pair:
    """An int or a sequence of 1 or 2 ints as a pair, else a ShapeError naming ``op`` and ``name``."""
    seq = tuple(value) if isinstance(value, (tuple, list)) else (value,)
    if len(seq) not in (1, 2) or not all(hasattr(v, "__index__") and not isinstance(v, bool) for v in seq):
        raise ShapeError(f"{op}: expected {name} to be an int or a pair of ints, got {value!r}")
    return _pair(seq)


def _conv_padding(padding: Any, kernel_hw: Pair, stride: Pair, dilation: Pair) -> Padding:
    """``padding`` as ((top, bottom), (left, right)); "valid" is none, "same" keeps the size (stride 1),
    with the odd extra row/column at the bottom/right as PyTorch puts it."""
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0), (0, 0)
        if padding != "same":
            raise ShapeError(f"conv2d: invalid padding string {padding!r}, expected 'valid' or 'same'")
        if stride != (1, 1):
            raise ShapeError(
                f"conv2d: padding='same' is not supported for strided convolutions, got stride={stride}"
            )
        th, tw = dilation[0] * (kernel_hw[0] - 1), dilation[1] * (kernel_hw[1] - 1)  # total padding per axis
        return (th // 2, th - th // 2), (tw // 2, tw - tw // 2)
    ph, pw = int_pair("conv2d", "padding", padding)
    if ph < 0 or pw < 0:
        raise ShapeError(f"conv2d: negative padding is not supported, got padding={padding!r}")
    return (ph, ph), (pw, pw)


def conv2d(
    input: Tensor,  # noqa: A002 - PyTorch's name
    weight: Tensor,
    bias: Tensor | None = None,
    stride: int | tuple[int, int] = 1,
    padding: int | tuple[int, int] | str = 0,
    dilation: int | tuple[int, int] = 1,
    groups: int = 1,
) -> Tensor:
    """2-d convolution (cross-correlation) as torch.nn.functional.conv2d; input (N, C, H, W) or (C, H, W),
    weight (OC, C/groups, KH, KW), bias (OC,) or None; padding an int, a pair, "valid" or "same"."""
    for name, t in (("input", input), ("weight", weight), ("bias", bias)):
        if not isinstance(t, Tensor) and not (name == "bias" and t is None):
            raise TypeError(f"conv2d: expected {name} to be a Tensor, got {type(t).__name__}")
    if input.ndim not in (3, 4):
        raise ShapeError(
            f"conv2d: expected a 3-d (unbatched) or 4-d (batched) input, got input of shape {input.shape}"
        )
    if weight.ndim != 4:
        raise ShapeError(
            f"conv2d: expected a 4-d weight (OC, C/groups, KH, KW), got weight of shape {weight.shape}"
        )
    stride, dilation = int_pair("conv2d", "stride", stride), int_pair("conv2d", "dilation", dilation)
    if min(stride) <= 0:
        raise ShapeError(f"conv2d: non-positive stride is not supported, got stride={stride}")
    if min(dilation) <= 0:
        raise ShapeError(f"conv2d: non-positive dilation is not supported, got dilation={dilation}")
    if not isinstance(groups, int) or groups <= 0:
        raise ShapeError(f"conv2d: groups must be a positive int, got groups={groups!r}")
    OC, Cg, KH, KW = weight.shape
    pad = _conv_padding(padding, (KH, KW), stride, dilation)
    C, H, W = input.shape[-3:]
    if OC == 0 or OC % groups:
        raise ShapeError(
            f"conv2d: expected weight's out_channels to be a positive multiple of groups={groups}, "
            f"got weight of shape {weight.shape}"
        )
    if C != Cg * groups:
        raise ShapeError(
            f"conv2d: expected input with {Cg * groups} channels (weight {weight.shape}, groups={groups}), "
            f"got input of shape {input.shape}"
        )
    Hp, Wp = H + pad[0][0] + pad[0][1], W + pad[1][0] + pad[1][1]
    KHd, KWd = dilation[0] * (KH - 1) + 1, dilation[1] * (KW - 1) + 1
    if KHd > Hp or KWd > Wp:
        raise ShapeError(
            f"conv2d: the (dilated) kernel ({KHd} x {KWd}) is larger than the padded input ({Hp} x {Wp}), "
            f"input of shape {input.shape}, weight {weight.shape}, padding={padding!r}, dilation={dilation}"
        )
    if bias is not None and bias.shape != (OC,):
        raise ShapeError(
            f"conv2d: expected bias of shape ({OC},) for weight {weight.shape}, got {bias.shape}"
        )
    if input.dtype != weight.dtype:
        raise DTypeError(f"conv2d: input dtype {input.dtype} does not match weight dtype {weight.dtype}")
    if bias is not None and bias.dtype != weight.dtype:
        raise DTypeError(f"conv2d: bias dtype {bias.dtype} does not match weight dtype {weight.dtype}")
    if input.ndim == 3:
        return squeeze(Conv2d(stride, pad, dilation, groups)(unsqueeze(input, 0), weight, bias), 0)
    return Conv2d(stride, pad, dilation, groups)(input, weight, bias)
