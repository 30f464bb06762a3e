"""2-d convolution as a matrix product: ``im2col`` unfolds the patches, one GEMM per group does the rest.

Notation: N, C, H, W         batch size, input channels, input height and width
          OC, G              output channels, groups
          Cg, OCg            input and output channels per group (C / G, OC / G)
          KH, KW             kernel height and width
          SH, SW, DH, DW     stride and dilation
          OH, OW             output height and width
          K, M               K = Cg*KH*KW values under one kernel position, M = N*OH*OW output pixels

Three layers, each on the one below:
- the kernels, on plain NumPy/CuPy arrays: ``conv2d_forward`` (y), ``conv2d_input_grad`` (dx),
  ``conv2d_weight_grad`` (dw) and ``conv2d_input_and_weight_grad`` (both, sharing the unfold of g where
  dx is a convolution), each a loop over batch chunks whose unfold and products a ``Layout``
  (conv_layouts.py: channels first, by shifted rows, channels last, or Winograd's F(2x2, 3x3); chosen
  per layer) supplies;
- ``Conv2d``, the ``Function``: it picks the layout in forward, keeps what backward needs and calls the
  kernels;
- ``conv2d``, the wrapper: the argument checks, as torch.nn.functional.conv2d.
The public shapes are NCHW throughout (a channels-last layout returns an NCHW view of an NHWC array).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..backend import get_array_module
from ..errors import DTypeError, ShapeError
from ..function import Function
from ..grad_mode import conv_layout  # noqa: F401 - also here: tests/op_table.py forces layouts through it
from ..memory_order import row_order
from ..tensor import Tensor
from ..threads import ordered_sum, parallel_map, sum_in_order
from .args import Padding, Pair, int_pair
from .conv_layouts import Layout, channels_last_empty, choose_layout
from .shape import squeeze, unsqueeze

# Where dx is a convolution, backward makes dx and dw from one unfold of g unless dx's weight matrix is
# larger than this many times x (``conv2d_input_and_weight_grad``: memory).
FUSED_WEIGHT_RATIO = 1.0


# ----- kernels on arrays ------------------------------------------------------------------------------
def conv2d_forward(
    x: Any, w: Any, b: Any | None, layout: Layout, W: Any | None = None, order: str | None = None
) -> Any:
    """y = conv2d(x, w, b) in ``layout`` (whose geometry is x's and w's): per batch chunk, the chunk's cols
    (``layout.unfold``) times W (``layout.product``); see Conv2d. ``W``: ``layout.weight_matrix(w)``, where
    the caller has made it already. Shapes: x (N, C, H, W), w (OC, Cg, KH, KW), b (OC,) or None ->
    y (N, OC, OH, OW), in the memory ``order`` given (``_empty``), else in the layout's own."""
    xp = get_array_module(x)
    N, OC = x.shape[0], w.shape[0]
    if W is None:
        W = layout.weight_matrix(w)  # (G, OCg, K) or (G, OCg, T*Cg)
    y = _empty(xp, layout, (N, OC, layout.OH, layout.OW), x.dtype, order)

    def one_chunk(chunk: slice) -> None:
        _product_into(layout, W, layout.unfold(x[chunk]), y[chunk])

    _map_chunks(xp, one_chunk, layout.chunks(x))
    if b is not None:
        y += b.reshape(OC, 1, 1)
    return y


def conv2d_weight_grad(g: Any, x: Any, layout: Layout) -> Any:
    """dw = sum over the batch chunks of dY @ cols^T (in the layout's form), cols unfolded again from x
    chunk by chunk rather than kept from forward. Shapes: g (N, OC, OH, OW), x (N, C, H, W) -> dw
    (OC, Cg, KH, KW)."""

    def one_chunk(chunk: slice) -> Any:
        return layout.weight_grad(layout.output_grad(g[chunk]), layout.unfold(x[chunk]))

    dW = _sum_chunks(get_array_module(x), one_chunk, layout.chunks(x))  # (G, OCg, K) or so, chunk by chunk
    if dW is None:  # an empty batch
        return get_array_module(g).zeros(layout.w_shape, dtype=g.dtype)
    return layout.weight_from_matrix(dW)


def conv2d_input_grad(g: Any, w: Any, layout: Layout, order: str | None = None) -> Any:
    r"""dx: by the flipped kernel where it is a convolution (stride 1) and the layout has no cheaper fold
    (``dx_by_fold``), else by folding dcols = W^T dY.

    Two routes to the same sum. dx[n, c, ih, iw] = sum over every (o, oh, ow, kh, kw) with
    oh*SH + kh*DH - pt = ih and ow*SW + kw*DW - pl = iw of w[o, c, kh, kw] g[n, o, oh, ow] (the forward's
    sum, read from the input's side). Fold: dcols = W^T dY, then col2im scatter-adds each column back to
    the pixels it was copied from (any stride). Flipped kernel (dx_is_convolution: stride 1 and each
    padding at most the dilated kernel's extent D (K-1)): with S = 1, oh = ih + pt - kh*DH, so, one axis
    shown, y[i] = sum_k w[k] x[i + k d - p_top] gives
        dx[j] = sum_k w[k] g[j + p_top - k d] = sum_k' w[K-1-k'] g_pad[j + k' d],
    with k' = K-1-k and g padded by d (K-1) - p_top before and d (K-1) - p_bottom after (both >= 0 by the
    condition; a g index outside g is a zero of g_pad). Over both axes and the channels:
        dx[n, c, i, j] = sum_{o, k', l'} w'[c, o, k', l'] g_pad[n, o, i + k' DH, j + l' DW],
        w'[c, o, k', l'] = w[o, c, KH-1-k', KW-1-l']
    a stride-1 correlation of g with the kernel flipped in space and with its channel axes swapped (within
    each group), whose output is H = OH + pt + pb - DH (KH-1) rows (likewise W): computed by
    ``conv2d_forward`` in the layout chosen for that convolution. It is a gather where col2im scatter-adds:
    measured 1.6-1.9x faster. The rows layout has no fold, and is only taken where this applies. Otherwise
    (a stride > 1, where g would need zeros between its pixels) dx = fold(W^T dY), chunk by chunk, in
    ``layout``; and so too in a layout whose fold is no scatter (``dx_by_fold``: the live taps, whose fold
    adds each tap's block dY_t W_t where the flipped convolution would first make its w' (C, T, OC), w with
    its channel axes swapped: a copy against the grain, about 1.5 ns a value, 3.6 ms for a 512x512 3x3
    kernel; measured, AVX-512: the backward of 512x512 3x3 layers on 2x2 and 3x3 images 10-20% faster).

    dx is made in x's memory ``order`` (memory_order.row_order of x, which Conv2d keeps from forward), as
    PyTorch gives a gradient its input's memory format: the op that made x saved its arrays in that order,
    and its backward reads dx against them (ReLU's and batch norm's copy a g of the other order over first:
    memory_order.in_order_of, a pass over the whole array). A layout that writes the other order puts each
    chunk into place instead, while the chunk is in the cache (``_product_into``). Measured with
    WINOGRAD_TILES_MIN_CHANNELS_DX (conv_layouts.py), whose 16-channel dx would otherwise come out channels
    last beside the NCHW arrays of the stacked rows' forward: a cifar_resnet(20) training step took 0.953
    of the time before with that rule alone and 0.928 with dx in x's order too (steps alternating in one
    process, 16 rounds, one run; 2 cores of an AMD EPYC Zen 4, OpenBLAS's SkylakeX kernels; this VM's
    noise is a few percent).
    Shapes: g (N, OC, OH, OW), w (OC, Cg, KH, KW) -> dx (N, C, H, W).
    """
    xp = get_array_module(g)
    if layout.dx_by_flipped_kernel():
        w_flipped, flipped = _flipped_convolution(g, w, layout)
        return conv2d_forward(g, w_flipped, None, flipped, order=order)
    W = layout.weight_matrix(w)  # (G, OCg, K) or (G, OCg, T*Cg)
    dx = _empty(xp, layout, layout.x_shape, g.dtype, order)

    def one_chunk(chunk: slice) -> None:
        dx[chunk] = layout.fold(W, layout.output_grad(g[chunk]), chunk.stop - chunk.start)

    _map_chunks(xp, one_chunk, layout.chunks(g))
    return dx


def conv2d_input_and_weight_grad(g: Any, x: Any, w: Any, layout: Layout) -> tuple[Any, Any]:
    r"""dx and dw of one layer: at once where dx is the flipped-kernel convolution (``dx_is_convolution``),
    one unfold of g per batch chunk serving both, where dw alone would unfold x; else (a stride above 1, a
    layout that takes dx by its fold: ``dx_by_fold``, or the memory rule below) apart, by
    ``conv2d_input_grad`` and ``conv2d_weight_grad``.

    Write the flipped convolution as dx = F(g; w'), w' = P w (P flips the kernel in space and swaps its
    channel axes within each group: ``conv2d_input_grad``). It is the adjoint of the forward,
    <F(g; P w), x> = <conv(x; w), g> for every x, g and w, so the gradients of the two sides with respect
    to w agree: dw (the right side's) is P^T applied to the gradient of <F(g; w'), x> with respect to w',
    and P^T = P^-1 is the same flip and swap. That gradient is the weight gradient of the flipped
    convolution with input g and output gradient x: its products dW' = X' cols_g^T (x put in the
    flipped convolution's layout by ``output_grad``) read the very cols_g that dx's product W' cols_g
    reads. Read off the sums (one axis shown, as in ``conv2d_input_grad``):
        dw[o, c, k] = sum_j x[j] g[j + p_top - k d] = sum_j x[j] g_pad[j + k' d] = dw'[c, o, k'],  k' = K-1-k.
    Saved: the unfold of x that dw alone makes (x is laid out once instead of g, a copy of the size of
    one activation): measured 6-19% off a layer's dx and dw together (2 cores AVX2; 16 to 256 channels,
    every layout). Both are computed in the flipped convolution's layout, the one dx takes anyway.

    The price is memory: W' (dx's weight matrix) stays alive beside every chunk's share of dW', where
    apart the one is freed before the others are made. Where W' is larger than x (the deep layers of many
    channels and few pixels: Winograd's (16, C, OC) of a 512-channel 3x3 layer on 3x3 images is 17 MB, x
    1 MB at batch 64) that raised a training step's peak (+27 MB, 7%, for d2l_resnet18 at 96x96), so there
    dx and dw are computed apart, as ``conv2d_input_grad`` and ``conv2d_weight_grad`` do.
    dx is made in x's memory order (``conv2d_input_grad``).
    Shapes: g (N, OC, OH, OW), x (N, C, H, W), w (OC, Cg, KH, KW) -> dx (N, C, H, W), dw (OC, Cg, KH, KW).
    """
    order = row_order(x)
    if not layout.dx_by_flipped_kernel():
        return conv2d_input_grad(g, w, layout, order), conv2d_weight_grad(g, x, layout)  # dx by the fold
    xp = get_array_module(g)
    w_flipped, flipped = _flipped_convolution(g, w, layout)
    W_flipped = flipped.weight_matrix(w_flipped)
    if W_flipped.nbytes > FUSED_WEIGHT_RATIO * x.nbytes:  # many channels, few pixels: apart (the docstring)
        dx = conv2d_forward(g, w_flipped, None, flipped, W_flipped, order)
        del W_flipped  # freed before dw's products are made
        return dx, conv2d_weight_grad(g, x, layout)
    dx = _empty(xp, flipped, layout.x_shape, g.dtype, order)

    def one_chunk(chunk: slice) -> Any:
        cols = flipped.unfold(g[chunk])  # the flipped convolution's cols of g, for both products
        _product_into(flipped, W_flipped, cols, dx[chunk])
        return flipped.weight_grad(flipped.output_grad(x[chunk]), cols)  # dW', in W_flipped's form

    dW_flipped = _sum_chunks(xp, one_chunk, flipped.chunks(g))  # the dW' of the chunks, summed
    if dW_flipped is None:  # an empty batch
        return dx, xp.zeros(w.shape, dtype=g.dtype)
    dw_flipped = flipped.weight_from_matrix(dW_flipped)  # (C, OCg, KH, KW), w_flipped's shape
    return dx, xp.ascontiguousarray(_flip_kernel(dw_flipped, layout.groups))  # (OC, Cg, KH, KW)


def _empty(xp: Any, layout: Layout, shape: tuple[int, ...], dtype: Any, order: str | None) -> Any:
    """An uninitialized (N, C, H, W) array for a kernel's result, in the memory ``order`` given ("first":
    NCHW, "last": channels last, as memory_order.row_order names them), else in ``layout``'s own."""
    if order == "first":
        return xp.empty(shape, dtype=dtype)
    if order == "last":
        return channels_last_empty(xp, shape, dtype)
    return layout.empty(xp, shape, dtype)


def _product_into(layout: Layout, W: Any, cols: Any, out: Any) -> None:
    """out[...] = ``layout.product`` of a chunk: written there by the product itself where the layout can
    (``Layout.product``'s ``out``: channels last, the live taps, Winograd's tiles where they cover the output
    exactly), else copied in. Measured (steps with and without, taking turns in one process, two runs; 2 cores
    of an AMD EPYC Zen 5, OpenBLAS's Haswell kernels): resnet50 inference 1.2% and 2.7% less time, training
    1.0% less and 0.4% more, d2l_resnet18 at 96x96 0.5-1.9% less, at 28x28 within 0.6%; cifar_resnet(20),
    whose one changed layer is a strided 32 -> 64 one, 0 and 2.9% more (inference) and 1.1% more (training),
    the noise."""
    part = layout.product(W, cols, out.shape[0], out)
    if part is not out:
        out[...] = part


def _flip_kernel(w: Any, G: int) -> Any:
    """w (A, B, KH, KW) of G groups flipped in space, its channel axes swapped within each group: a view
    (G*B, A/G, KH, KW). On a kernel (OC, Cg, ...) it makes dx's w' (C, OCg, ...); being its own inverse,
    on w' it gives back the kernel's layout."""
    A, B, KH, KW = w.shape
    w = w.reshape(G, A // G, B, KH, KW).transpose(0, 2, 1, 3, 4)[..., ::-1, ::-1]  # (G, B, A/G, KH, KW)
    return w.reshape(G * B, A // G, KH, KW)


def _flipped_convolution(g: Any, w: Any, layout: Layout) -> tuple[Any, Layout]:
    """The flipped kernel w' (C, OCg, KH, KW) of dx's convolution, and that convolution's layout (chosen for
    g, under the override that chose the forward's, if any); see ``conv2d_input_grad``."""
    (KH, KW), (DH, DW), ((pt, pb), (pl, pr)) = w.shape[2:], layout.dilation, layout.padding
    w_flipped = _flip_kernel(w, layout.groups)  # (C, OCg, KH, KW)
    padding = ((DH * (KH - 1) - pt, DH * (KH - 1) - pb), (DW * (KW - 1) - pl, DW * (KW - 1) - pr))
    flipped = choose_layout(
        g.shape, w_flipped.shape, (1, 1), padding, layout.dilation, layout.groups, get_array_module(g),
        forced=layout.forced, for_dx=True,
    )  # fmt: skip
    return w_flipped, flipped


def _map_chunks(xp: Any, fn: Any, chunks: list[slice]) -> list:
    """``[fn(chunk) for chunk in chunks]``: on the CPU spread over minires's threads (threads.py: the
    chunks write disjoint slices of the output), on the GPU in order on the calling thread."""
    if xp is np:
        return parallel_map(fn, chunks)
    return [fn(chunk) for chunk in chunks]


def _sum_chunks(xp: Any, fn: Any, chunks: list[slice]) -> Any | None:
    """The sum of ``fn(chunk)`` over the chunks, added in chunk order (the same bits on any thread count;
    None for no chunks): on the CPU spread over minires's threads, each chunk's part added as soon as those
    before it are (threads.ordered_sum: not a dozen dW-sized parts held at once), on the GPU in order on
    the calling thread."""
    if xp is np:
        return ordered_sum(fn, chunks)
    parts = [fn(chunk) for chunk in chunks]
    return sum_in_order(parts) if parts else None


# ----- the Function ------------------------------------------------------------------------------------
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
    pixel that sits in several patches collects the gradient of every copy. With stride 1 (and padding at
    most the dilated kernel's extent), dx is the same sum computed as a gather: a convolution of g with the
    flipped kernel (``conv2d_input_grad`` derives it), unless the layout's fold costs less (the live taps).

    Layouts. The same products, with cols laid out per layer in one of the ways of conv_layouts.py
    (channels first as above, by shifted rows, or channels last: the algebra transposed), chosen once in
    forward (``choose_layout``) and kept for backward. For most 3x3 stride-1 layers on the CPU, the same
    sum by Winograd's minimal filtering instead, F(2x2, 3x3), F(3x3, 3x3) or F(4x4, 3x3) (winograd.py:
    2.25 to 4 times fewer products, its backward derived there the same way, as the adjoints of its
    linear transforms).

    Batch chunks. Both products are done a few images at a time (``Layout.chunks``), so that a chunk's
    cols (about CHUNK_BYTES) stays in the cache between the unfold and the GEMM that reads it: measured
    1.3-1.7x faster than one unfold of the whole batch. Backward unfolds each chunk again instead of
    keeping cols of the whole batch from forward: a ResNet's cols are many times its activations. Where
    dx is the flipped-kernel convolution and both dx and dw are wanted, one unfold of g per chunk serves
    both products (``conv2d_input_and_weight_grad``: dw is then the flipped convolution's own weight
    gradient, flipped back, in that convolution's layout, which the rule chooses for g), which saves the
    unfold of x: measured 6-19% off a layer's backward; not where dx's weight matrix outweighs x (memory).
    dx is skipped when x needs no gradient (the first conv layer); forward saves w only for dx, x only for dw.
    Shapes: x (N, C, H, W), w (OC, Cg, KH, KW), b (OC,), y (N, OC, OH, OW).
    """

    # what forward keeps for backward: x and w only when a gradient needs them, x's memory order for dx
    saved = ("layout", "x", "w", "x_order")

    def __init__(self, stride: Pair, padding: Padding, dilation: Pair, groups: int) -> None:
        self.stride, self.padding, self.dilation, self.groups = stride, padding, dilation, groups

    def forward(self, x: Any, w: Any, b: Any | None) -> Any:
        xp = get_array_module(x)
        self.layout = choose_layout(
            x.shape, w.shape, self.stride, self.padding, self.dilation, self.groups, xp
        )
        need_dx, need_dw, _ = self.needs_input_grad
        if need_dx:
            self.w, self.x_order = w, row_order(x)  # dx goes into x's memory order
        if need_dw:
            self.x = x
        return conv2d_forward(x, w, b, self.layout)

    def backward(self, g: Any) -> tuple[Any, Any, Any]:
        need_dx, need_dw, need_db = self.needs_input_grad
        if need_dx and need_dw:  # one unfold of g for both, where dx is a convolution
            dx, dw = conv2d_input_and_weight_grad(g, self.x, self.w, self.layout)
        else:
            dx = conv2d_input_grad(g, self.w, self.layout, self.x_order) if need_dx else None
            dw = conv2d_weight_grad(g, self.x, self.layout) if need_dw else None
        db = g.sum(axis=(0, 2, 3)) if need_db else None  # (OC,)
        return dx, dw, db


# ----- wrapper ---------------------------------------------------------------------------------------
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
