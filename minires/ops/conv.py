"""2-d convolution as a matrix product: ``im2col`` unfolds the patches, one GEMM per group does the rest.

Notation: N, C, H, W         batch size, input channels, input height and width
          OC, G              output channels, groups
          Cg, OCg            input and output channels per group (C / G, OC / G)
          KH, KW             kernel height and width
          SH, SW, DH, DW     stride and dilation
          OH, OW             output height and width
          K, M               K = Cg*KH*KW values under one kernel position, M = N*OH*OW output pixels

Layout. The patch matrix is the textbook one, channels first: one row per (c, kh, kw), one column per
output pixel (n, oh, ow), the whole batch side by side. The weights need no reordering (w.reshape(OC, K)),
and the forward is one GEMM (OCg, K) @ (K, M) per group. Against a channels-last patch matrix
(M, KH*KW*C), measured forward + backward (float32, 2 threads): as fast on a (128, 64, 28, 28) 3x3 layer,
twice as fast on a 3-channel stem, 20% slower on (128, 256, 7, 7). The public shapes stay NCHW.
"""

from __future__ import annotations

from typing import Any

from ..backend import get_array_module
from ..errors import DTypeError, ShapeError
from ..function import Function
from ..tensor import Tensor
from .shape import squeeze, unsqueeze

Pair = tuple[int, int]
Padding = tuple[Pair, Pair]  # ((top, bottom), (left, right))


def _pair(value: int | tuple[int, ...]) -> Pair:
    """3 -> (3, 3); (3,) -> (3, 3); (3, 5) -> (3, 5)."""
    if isinstance(value, (tuple, list)):
        return (int(value[0]), int(value[-1]))
    return (int(value), int(value))


def _padding4(padding: int | tuple) -> Padding:
    """int, (ph, pw) or ((top, bottom), (left, right)) -> ((top, bottom), (left, right))."""
    if isinstance(padding, (tuple, list)) and len(padding) == 2 and isinstance(padding[0], (tuple, list)):
        return (int(padding[0][0]), int(padding[0][1])), (int(padding[1][0]), int(padding[1][1]))
    ph, pw = _pair(padding)
    return (ph, ph), (pw, pw)


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
    The loop runs over the KH*KW kernel offsets: for offset (kh, kw) the pixels under it, for every output
    position at once, are one strided slice of x_pad (rows kh*DH, kh*DH + SH, ...; likewise columns).

    Shapes: x (N, C, H, W) -> cols (G, Cg*KH*KW, N*OH*OW).
    """
    xp = get_array_module(x)
    N, C, H, W = x.shape
    KH, KW = _pair(kernel_size)
    (SH, SW), (DH, DW) = _pair(stride), _pair(dilation)
    (pt, pb), (pl, pr) = _padding4(padding)
    G, Cg = groups, C // groups
    OH = conv_output_size(H, KH, SH, (pt, pb), DH)
    OW = conv_output_size(W, KW, SW, (pl, pr), DW)
    # Padded input with the batch axis second, (C, N, H, W): each channel's images form one block, and so
    # does each row of cols below (measured 1.4x faster than NCHW for im2col and 1.8x for col2im).
    x_pad = xp.zeros((C, N, H + pt + pb, W + pl + pr), dtype=x.dtype)
    x_pad[:, :, pt : pt + H, pl : pl + W] = x.transpose(1, 0, 2, 3)
    cols = xp.empty((C, KH, KW, N, OH, OW), dtype=x.dtype)
    for kh in range(KH):
        rows = slice(kh * DH, kh * DH + SH * (OH - 1) + 1, SH)  # x_pad rows oh*SH + kh*DH, all oh
        for kw in range(KW):
            columns = slice(kw * DW, kw * DW + SW * (OW - 1) + 1, SW)
            cols[:, kh, kw] = x_pad[:, :, rows, columns]  # (C, N, OH, OW)
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
    copies. The same loop over the KH*KW kernel offsets as im2col, with += in place of =: patches overlap
    (stride < kernel), so the slices of different offsets land on shared pixels and must add up.

    Shapes: cols (G, Cg*KH*KW, N*OH*OW), as im2col returns it for any G -> x (N, C, H, W) = x_shape.
    """
    xp = get_array_module(cols)
    N, C, H, W = x_shape
    KH, KW = _pair(kernel_size)
    (SH, SW), (DH, DW) = _pair(stride), _pair(dilation)
    (pt, pb), (pl, pr) = _padding4(padding)
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
    dx is skipped when x needs no gradient (the first conv layer), and cols is kept only when dW is needed.
    Shapes: x (N, C, H, W), w (OC, Cg, KH, KW), b (OC,), y (N, OC, OH, OW).
    """

    def __init__(self, stride: Pair, padding: Padding, dilation: Pair, groups: int) -> None:
        self.stride, self.padding, self.dilation, self.groups = stride, padding, dilation, groups

    def forward(self, x: Any, w: Any, b: Any | None) -> Any:
        xp = get_array_module(x)
        N, C, H, W = x.shape
        OC, Cg, KH, KW = w.shape
        G, OCg = self.groups, OC // self.groups
        OH = conv_output_size(H, KH, self.stride[0], self.padding[0], self.dilation[0])
        OW = conv_output_size(W, KW, self.stride[1], self.padding[1], self.dilation[1])
        cols = im2col(x, (KH, KW), self.stride, self.padding, self.dilation, G)  # (G, K, M)
        W_mat = w.reshape(G, OCg, Cg * KH * KW)  # (G, OCg, K)
        Y = W_mat @ cols  # (G, OCg, M)
        if b is not None:
            Y += b.reshape(G, OCg, 1)
        if self.needs_input_grad[0]:
            self.W_mat = W_mat
        if self.needs_input_grad[1]:
            self.cols = cols
        self.x_shape, self.w_shape = x.shape, w.shape
        y = Y.reshape(OC, N, OH, OW).transpose(1, 0, 2, 3)  # (N, OC, OH, OW)
        return xp.ascontiguousarray(y)

    def backward(self, g: Any) -> tuple[Any, Any, Any]:
        xp = get_array_module(g)
        N, OC, OH, OW = g.shape
        G, OCg = self.groups, OC // self.groups
        dY = xp.ascontiguousarray(g.transpose(1, 0, 2, 3)).reshape(G, OCg, N * OH * OW)  # (G, OCg, M)
        dx = dw = db = None
        if self.needs_input_grad[0]:
            dcols = self.W_mat.transpose(0, 2, 1) @ dY  # (G, K, M)
            dx = col2im(dcols, self.x_shape, self.w_shape[2:], self.stride, self.padding, self.dilation)
        if self.needs_input_grad[1]:
            dw = (dY @ self.cols.transpose(0, 2, 1)).reshape(self.w_shape)  # (G, OCg, K) -> (OC, Cg, KH, KW)
        if self.needs_input_grad[2]:
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
