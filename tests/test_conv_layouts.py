"""The unfold layouts of conv2d (minires/ops/conv_layouts.py, on minires/ops/im2col.py): each against torch,
the per-layer choice and its per-thread override, and the live-tap pruning.

The op table (tests/op_table.py) already runs conv2d through gradcheck and the torch comparison in each
layout; here the layouts meet shapes the table's small strategies rarely draw (a kernel larger than the
image with padding, 1x1 images, channels-last inputs), and the helpers are checked on their own.
"""

from __future__ import annotations

import math
import threading
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minires as mr
import minires.nn.functional as F
from minires.grad_mode import CONV_LAYOUTS, conv_layout, forced_conv_layout
from minires.ops.conv import (
    conv2d_forward,
    conv2d_input_and_weight_grad,
    conv2d_input_grad,
    conv2d_weight_grad,
)
from minires.ops.conv_layouts import (
    LAYOUTS,
    ChannelsFirst,
    ChannelsLast,
    LiveTaps,
    ShiftedRows,
    StackedRows,
    Winograd,
    Winograd3,
    Winograd4,
    choose_layout,
    dx_is_convolution,
)
from minires.ops.im2col import col2im_nhwc, im2col, im2col_nhwc, im2col_rows, live_taps, rows_view


def _brute_force_live_taps(h: int, w: int, k: tuple, s: tuple, p: tuple, d: tuple) -> list:
    """Every (kh, kw) for which some output pixel reads a real input pixel, by trying them all."""
    oh = (h + 2 * p[0] - d[0] * (k[0] - 1) - 1) // s[0] + 1
    ow = (w + 2 * p[1] - d[1] * (k[1] - 1) - 1) // s[1] + 1
    rows = {kh for kh in range(k[0]) for o in range(oh) if 0 <= o * s[0] + kh * d[0] - p[0] < h}
    cols = {kw for kw in range(k[1]) for o in range(ow) if 0 <= o * s[1] + kw * d[1] - p[1] < w}
    return sorted((kh, kw) for kh in rows for kw in cols)


@settings(max_examples=200, deadline=None)
@given(
    hw=st.tuples(st.integers(1, 6), st.integers(1, 6)),
    k=st.tuples(st.integers(1, 5), st.integers(1, 5)),
    s=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    p=st.tuples(st.integers(0, 3), st.integers(0, 3)),
    d=st.tuples(st.integers(1, 3), st.integers(1, 3)),
)
def test_live_taps_are_exactly_those_that_touch_the_input(
    hw: tuple, k: tuple, s: tuple, p: tuple, d: tuple
) -> None:
    h, w = hw
    if d[0] * (k[0] - 1) + 1 > h + 2 * p[0] or d[1] * (k[1] - 1) + 1 > w + 2 * p[1]:
        return  # no output at all: conv2d refuses these
    taps = live_taps((h, w), k, s, ((p[0], p[0]), (p[1], p[1])), d)
    assert taps == _brute_force_live_taps(h, w, k, s, p, d)


def test_live_taps_examples() -> None:
    assert live_taps((1, 1), (3, 3), (1, 1), ((1, 1), (1, 1)), (1, 1)) == [(1, 1)]  # 1x1 image: the centre
    assert len(live_taps((2, 2), (3, 3), (1, 1), ((1, 1), (1, 1)), (1, 1))) == 9
    # stride 2 on a 1-row image with padding 1: output row 0 reads row kh - 1, so only kh = 1 is live
    assert live_taps((1, 4), (3, 1), (2, 1), ((1, 1), (0, 0)), (1, 1)) == [(1, 0)]


def test_im2col_nhwc_and_col2im_nhwc_are_adjoint() -> None:
    """<im2col(x), c> = <x, col2im(c)> for random x and c, with groups, stride, padding and dilation."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 6, 7, 5))
    stride, padding, dilation, groups = (2, 1), ((1, 2), (0, 1)), (1, 2), 3
    out = (4, 2)  # (7 + 3 - 2 - 1) // 2 + 1, (5 + 1 - 4 - 1) // 1 + 1
    taps = live_taps((7, 5), (3, 3), stride, padding, dilation)
    cols = im2col_nhwc(x, taps, stride, padding, dilation, groups, out)
    assert cols.shape == (3, 2 * 4 * 2, len(taps) * 2)
    c = rng.standard_normal(cols.shape)
    back = col2im_nhwc(c, x.shape, taps, stride, padding, dilation, out)
    assert back.shape == x.shape
    np.testing.assert_allclose(np.vdot(cols, c), np.vdot(x, back), rtol=1e-12)


def test_a_1x1_conv_unfolds_channels_last_without_a_copy() -> None:
    """One tap reading every pixel once: cols is a view of a channels-last x (and its fold gives x back)."""
    rng = np.random.default_rng(3)
    x = np.ascontiguousarray(rng.standard_normal((2, 5, 3, 4)).transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    no_padding = ((0, 0), (0, 0))
    for taps, kernel_pad in (([(0, 0)], no_padding), ([(1, 1)], ((1, 1), (1, 1)))):
        if kernel_pad != no_padding:  # a 3x3 kernel, padding 1, on a 1x1 image: only the centre tap
            x = x[:, :, :1, :1]
        size = x.shape[2:]
        cols = im2col_nhwc(x, taps, (1, 1), kernel_pad, (1, 1), 1, size)
        assert cols.shape == (1, x.shape[0] * size[0] * size[1], 5) and np.shares_memory(cols, x)
        np.testing.assert_array_equal(cols.reshape(-1, 5), x.transpose(0, 2, 3, 1).reshape(-1, 5))
        back = col2im_nhwc(cols, x.shape, taps, (1, 1), kernel_pad, (1, 1), size)
        assert not np.shares_memory(back, cols)
        np.testing.assert_array_equal(back, x)


CASES = [
    # (N, C, H, W), (OC, KH, KW), stride, padding, dilation, groups
    ((2, 8, 1, 1), (6, 3, 3), 1, 1, 1, 1),  # 1x1 image: one live tap
    ((2, 8, 2, 2), (6, 3, 3), 2, 1, 1, 2),  # stride 2 on a 2x2 image
    ((3, 6, 3, 5), (9, 5, 5), 1, 2, 1, 3),  # kernel larger than the image, padded
    ((1, 4, 6, 6), (4, 3, 3), 1, 2, 2, 4),  # depthwise, dilated
    ((2, 3, 9, 7), (5, 7, 7), 2, 3, 1, 1),  # a stem
    ((2, 4, 5, 5), (8, 1, 1), 2, 0, 1, 1),  # a 1x1 downsample
    ((2, 6, 4, 5), (7, 1, 1), 1, 0, 1, 1),  # a 1x1 bottleneck conv: channels-last cols is x itself
    ((2, 6, 4, 5), (4, 1, 1), 1, 0, 1, 2),  # the same, grouped (a copy per group)
    ((2, 6, 4, 5), (7, 1, 1), 1, 0, 3, 1),  # dilation is no matter for a 1x1 kernel
    ((2, 5, 7, 6), (4, 3, 3), 1, 1, 1, 1),  # 3x3, stride 1 (Winograd's): an odd height, tiles past it
    ((1, 3, 2, 3), (2, 3, 3), 1, 2, 1, 1),  # padding 2: 4x5 outputs from a 2x3 image
    ((3, 4, 5, 4), (3, 3, 3), 1, 0, 1, 1),  # no padding: a 3x2 output
    ((2, 4, 1, 1), (5, 3, 3), 1, 1, 1, 1),  # a 1x1 image: one 2x2 tile for one pixel
    # More than 64 output channels a group (dw's product in its plain order, DW_TRANSPOSED_MAX_CHANNELS),
    # in dx's flipped convolution too (72 input channels); weights 40 times the input: channels first
    ((2, 72, 3, 3), (80, 3, 3), 1, 1, 1, 1),
    ((2, 130, 3, 2), (132, 3, 3), 1, 1, 1, 2),  # 66 output and 65 input channels a group
]


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("case", CASES, ids=[str(c[0]) + str(c[1]) for c in CASES])
def test_values_per_image_counts_every_group(case: tuple, layout: str) -> None:
    """A chunk's size comes from values_per_image: it must count at least what one image unfolds to, every
    group's share (a depthwise layer counted as one group's once took its whole batch as one chunk: 296 MiB
    of cols for a (32, 64, 56, 56) input)."""
    (n, c, h, w), (oc, kh, kw), stride, padding, dilation, groups = case
    x = np.zeros((1, c, h, w), dtype=np.float32)
    args = (
        (n, c, h, w),
        (oc, c // groups, kh, kw),
        (stride,) * 2,
        ((padding,) * 2,) * 2,
        (dilation,) * 2,
        groups,
    )
    chosen = choose_layout(*args, forced=layout)
    assert chosen.unfold(x).size <= chosen.values_per_image()


@pytest.mark.parametrize("channels_last_input", [False, True], ids=["nchw_input", "nhwc_input"])
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("case", CASES, ids=[str(c[0]) + str(c[1]) for c in CASES])
def test_layouts_match_torch(torch: Any, case: tuple, layout: str, channels_last_input: bool) -> None:
    (n, c, h, w), (oc, kh, kw), stride, padding, dilation, groups = case
    rng = np.random.default_rng(1)
    x_np = rng.standard_normal((n, c, h, w))
    if channels_last_input:  # the same values, stored NHWC
        x_np = np.ascontiguousarray(x_np.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    w_np, b_np = rng.standard_normal((oc, c // groups, kh, kw)), rng.standard_normal(oc)
    x, wt, b = (mr.tensor(a, requires_grad=True) for a in (x_np, w_np, b_np))
    tx, tw, tb = (torch.tensor(np.ascontiguousarray(a), requires_grad=True) for a in (x_np, w_np, b_np))
    with conv_layout(layout):
        y = F.conv2d(x, wt, b, stride=stride, padding=padding, dilation=dilation, groups=groups)
    ty = torch.nn.functional.conv2d(
        tx, tw, tb, stride=stride, padding=padding, dilation=dilation, groups=groups
    )
    g = rng.standard_normal(tuple(ty.shape))
    y.backward(mr.tensor(g))
    ty.backward(torch.tensor(g))
    for mine, ref in ((y, ty), (x.grad, tx.grad), (wt.grad, tw.grad), (b.grad, tb.grad)):
        np.testing.assert_allclose(mine.numpy(), ref.detach().numpy(), rtol=1e-10, atol=1e-10)


def test_channels_last_output_keeps_its_memory_format_through_elementwise_ops() -> None:
    """A channels-last conv returns an NCHW view of an NHWC array, and ReLU and + keep that layout, so
    the next conv reads its input without reordering."""
    x = mr.randn(2, 16, 3, 3)
    with conv_layout("nhwc"):
        y = F.conv2d(x, mr.randn(16, 16, 3, 3), padding=1)
    assert y.shape == (2, 16, 3, 3)
    for t in (y, F.relu(y), y + y):
        assert t.data.transpose(0, 2, 3, 1).flags.c_contiguous


@pytest.mark.parametrize("layout", [None, *CONV_LAYOUTS])
@pytest.mark.parametrize("x_last", [False, True], ids=["nchw_x", "nhwc_x"])
@pytest.mark.parametrize("need_dw", [True, False], ids=["dx_dw", "dx_only"])
@pytest.mark.parametrize("stride", [1, 2])
def test_dx_comes_in_the_memory_order_of_x(
    layout: str | None, x_last: bool, need_dw: bool, stride: int
) -> None:
    """x.grad lies in memory as x does (PyTorch gives a gradient its input's memory format), whatever the
    layout writes, with dw or without (the first conv of a network has no dx; a frozen one no dw); and
    its values are those of an NCHW x in the reference layout. 16 channels on 8x8 images at batch 4 (as
    many tiles as channels): the rule's dx convolution is Winograd's F(4x4, 3x3) there, the forward's the
    stacked rows."""
    rng = np.random.default_rng(stride + 2 * x_last)
    x0 = rng.standard_normal((4, 16, 8, 8)).astype(np.float32)
    w0 = rng.standard_normal((16, 16, 3, 3)).astype(np.float32) * 0.1
    g0 = rng.standard_normal((4, 16, 8 // stride, 8 // stride)).astype(np.float32)
    grads = []
    for forced, last in ((layout, x_last), ("nchw", False)):
        x = mr.tensor(_channels_last(x0) if last else x0, requires_grad=True)
        w = mr.tensor(w0, requires_grad=need_dw)
        with conv_layout(forced):
            F.conv2d(x, w, stride=stride, padding=1).backward(mr.tensor(g0))
        grads.append(x.grad.data)
    dx, reference = grads
    assert (dx.flags.c_contiguous, dx.transpose(0, 2, 3, 1).flags.c_contiguous) == (not x_last, x_last)
    np.testing.assert_allclose(dx, reference, rtol=1e-4, atol=1e-4)


def test_im2col_rows_holds_im2col_at_the_output_pixels() -> None:
    """The shifted-rows unfold's columns at the output pixels are im2col's columns, in the same order."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 4, 5, 6))
    padding, dilation = ((1, 2), (0, 1)), (2, 1)
    cols, (Hz, Wz, L) = im2col_rows(x, (2, 3), padding, dilation, groups=2)
    OH, OW = 5 + 3 - 2, 6 + 1 - 2  # H + pt + pb - dilated extent + 1, likewise W
    assert (Hz, Wz) == (7, 7)  # each image's rows and zeros between: H + max(pt, pb), W + max(pl, pr)
    assert L == 2 * Hz * Wz + (OH - 1) * Wz + OW and cols.shape == (2, 2 * 6, L)
    reference = im2col(x, (2, 3), 1, padding, dilation, groups=2)  # (G, K, N*OH*OW)
    picked = rows_view(cols.reshape(-1, L), 3, (OH, OW), (Hz, Wz))  # (G*K, N, OH, OW)
    np.testing.assert_array_equal(picked.reshape(reference.shape), reference)


def test_im2col_rows_on_random_geometries() -> None:
    """Kernels, dilations and paddings (each side on its own, up to the dilated kernel's extent: the
    layers the rows layout takes), odd sizes, a batch of one: always im2col at the output pixels."""
    rng = np.random.default_rng(7)
    for _ in range(60):
        KH, KW, DH, DW = (int(v) for v in rng.integers(1, 4, size=4))
        pads = [int(rng.integers(0, D * (K - 1) + 1)) for K, D in ((KH, DH), (KH, DH), (KW, DW), (KW, DW))]
        padding = ((pads[0], pads[1]), (pads[2], pads[3]))
        H = int(rng.integers(DH * (KH - 1) + 1, 9))
        W = int(rng.integers(DW * (KW - 1) + 1, 9))
        N, G = int(rng.integers(1, 4)), int(rng.choice([1, 2]))
        x = rng.standard_normal((N, 2 * G, H, W))
        cols, (Hz, Wz, L) = im2col_rows(x, (KH, KW), padding, (DH, DW), groups=G)
        OH, OW = H + sum(padding[0]) - DH * (KH - 1), W + sum(padding[1]) - DW * (KW - 1)
        reference = im2col(x, (KH, KW), 1, padding, (DH, DW), groups=G)
        picked = rows_view(cols.reshape(-1, L), N, (OH, OW), (Hz, Wz))
        case = f"x {x.shape}, kernel {(KH, KW)}, dilation {(DH, DW)}, padding {padding}, groups {G}"
        np.testing.assert_array_equal(picked.reshape(reference.shape), reference, err_msg=case)


def test_im2col_rows_stacked_holds_every_kernel_row_at_its_shift() -> None:
    """Stacked, the unfold keeps the first kernel row's taps over a longer span; kernel row kh's taps are
    its columns shifted by kh*DH*Wz: cols[(c, kw), p + kh*DH*Wz] = unstacked cols[(c, kh, kw), p]."""
    rng = np.random.default_rng(11)
    for _ in range(40):
        KH, KW, DH, DW = (int(v) for v in rng.integers(1, 4, size=4))
        pads = [int(rng.integers(0, D * (K - 1) + 1)) for K, D in ((KH, DH), (KH, DH), (KW, DW), (KW, DW))]
        padding = ((pads[0], pads[1]), (pads[2], pads[3]))
        H, W = int(rng.integers(DH * (KH - 1) + 1, 9)), int(rng.integers(DW * (KW - 1) + 1, 9))
        N, G = int(rng.integers(1, 4)), int(rng.choice([1, 2]))
        x = rng.standard_normal((N, 3 * G, H, W))
        full, (Hz, Wz, L) = im2col_rows(x, (KH, KW), padding, (DH, DW), G)
        stacked, sizes = im2col_rows(x, (KH, KW), padding, (DH, DW), G, stacked=True)
        assert sizes == (Hz, Wz, L) and stacked.shape == (G, 3 * KW, L + (KH - 1) * DH * Wz)
        full = full.reshape(G, 3, KH, KW, L)
        stacked = stacked.reshape(G, 3, KW, -1)
        for kh in range(KH):
            shift = kh * DH * Wz
            np.testing.assert_array_equal(stacked[..., shift : shift + L], full[:, :, kh])


@pytest.mark.parametrize("layout_type", [ShiftedRows, StackedRows])
def test_rows_layout_stacked_or_not_on_random_geometries(torch: Any, layout_type: type) -> None:
    """The shifted rows with their kernel rows unfolded or stacked in the product, on every layer: y, dx and
    dw against torch's, float64, on stride-1 layers of random kernels, dilations, paddings (each side up to
    the dilated kernel's extent), groups and odd sizes, NCHW and channels-last inputs."""
    rng = np.random.default_rng(5)
    for i in range(30):
        KH, KW, DH, DW = (int(v) for v in rng.integers(1, 4, size=4))
        pads = [int(rng.integers(0, D * (K - 1) + 1)) for K, D in ((KH, DH), (KH, DH), (KW, DW), (KW, DW))]
        H, W = int(rng.integers(DH * (KH - 1) + 1, 9)), int(rng.integers(DW * (KW - 1) + 1, 9))
        N, G = int(rng.integers(1, 4)), int(rng.choice([1, 2, 3]))
        C, OC = G * int(rng.integers(1, 5)), G * int(rng.integers(1, 5))
        x_np = rng.standard_normal((N, C, H, W))
        if i % 2:
            x_np = np.ascontiguousarray(x_np.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
        w_np, b_np = rng.standard_normal((OC, C // G, KH, KW)), rng.standard_normal(OC)
        tx, tw, tb = (torch.tensor(np.ascontiguousarray(a), requires_grad=True) for a in (x_np, w_np, b_np))
        padded = torch.nn.functional.pad(tx, (pads[2], pads[3], pads[0], pads[1]))
        ty = torch.nn.functional.conv2d(padded, tw, tb, dilation=(DH, DW), groups=G)
        g = rng.standard_normal(tuple(ty.shape))
        ty.backward(torch.tensor(g))
        layout = layout_type(
            (N, C, H, W), w_np.shape, (1, 1), ((pads[0], pads[1]), (pads[2], pads[3])), (DH, DW), G
        )
        assert layout.stacked == (layout_type is StackedRows and KH > 1)
        layout.forced = layout.name  # dx's flipped convolution in the same layout (as under conv_layout)
        y = conv2d_forward(x_np, w_np, b_np, layout)
        dx, dw = conv2d_input_and_weight_grad(g, x_np, w_np, layout)
        case = f"x {x_np.shape}, w {w_np.shape}, dilation {(DH, DW)}, padding {pads}, groups {G}"
        for mine, ref in ((y, ty), (dx, tx.grad), (dw, tw.grad)):
            np.testing.assert_allclose(mine, ref.detach().numpy(), rtol=1e-10, atol=1e-10, err_msg=case)
        dw_alone = conv2d_weight_grad(g, x_np, layout)
        np.testing.assert_allclose(dw_alone, tw.grad.numpy(), rtol=1e-10, atol=1e-10, err_msg=case)


def _layer(cg: int, width: int, stride: int, n: int = 2) -> tuple:
    """choose_layout's arguments for a 3x3 layer with padding 1 on (n, cg, width, width) images."""
    s = (stride, stride)
    return (n, cg, width, width), (8, cg, 3, 3), s, ((1, 1), (1, 1)), (1, 1), 1


def test_per_layer_choice() -> None:
    def name(cg: int, width: int, stride: int) -> str:
        return choose_layout(*_layer(cg, width, stride)).name

    assert name(64, 8, 1) == "nhwc" and name(512, 1, 2) == "nhwc"
    assert name(16, 28, 1) == "rows_stacked" and name(16, 28, 2) == "nchw"

    def square(c: int, width: int, stride: int = 1, oc: int | None = None, n: int = 2) -> str:  # c -> oc
        x_shape, w_shape, *rest = _layer(c, width, stride, n)
        return choose_layout(x_shape, (oc or c, *w_shape[1:]), *rest).name

    # The larger Winograd tiles first (32 to 128 channels for 4x4 tiles, to 256 for 3x3 tiles), the fewer
    # products per output pixel of the two, where the batch has as many tiles as channels
    assert square(128, 12, n=16) == square(64, 24) == square(32, 7, n=16) == "winograd4"
    assert square(128, 4, n=256) == "winograd4" and square(128, 12, oc=64, n=16) == "winograd4"
    assert square(64, 6, n=16) == square(256, 6, n=64) == "winograd3"  # 4x4 tiles would waste 28 of 64
    assert square(128, 9, n=16) == square(256, 12, n=16) == "winograd3"  # 4x4 tiles: not on 256 channels
    assert square(128, 12) == "winograd" and square(256, 6, n=16) == "winograd"  # too few tiles: F(2x2, 3x3)
    assert square(64, 3, n=64) == "winograd3" and square(64, 6) == "taps" and square(16, 28) == "rows_stacked"
    assert square(512, 6, n=256) == "winograd"  # more than 256 channels
    # The live taps: one group, a kernel of more than one tap; stride 1 with outputs up to 7x7, up to 4x4
    # where Winograd would take the layer; strided with outputs of 2x2 to 4x4; before the weight rule
    # (d2l_resnet18's 512 channels on 3x3 images are 8 times their input at batch 64)
    assert name(64, 7, 1) == "taps" and name(16, 7, 1) == "taps" and square(256, 4) == "taps"
    assert square(512, 3, n=64) == "taps" and square(512, 2, n=256) == "taps" and square(512, 1) == "taps"
    assert square(512, 5, n=64) == "winograd"
    assert square(64, 7, 2, n=64) == square(512, 3, 2, n=64) == square(128, 8, 2) == "taps"  # 4x4, 2x2
    assert square(64, 9, 2) == square(32, 14, 2) == "nhwc" and square(256, 2, 2) == "nhwc"  # 5x5, 7x7, 1x1
    assert square(32, 8, 2) == square(16, 4, 2) == "nhwc"  # fewer than 64 channels: not the taps
    stem = choose_layout((32, 3, 8, 8), (64, 3, 7, 7), (2, 2), ((3, 3), (3, 3)), (1, 1), 1)
    assert stem.name == "nchw"  # a 7x7 stem on a small image: 3 channels
    x_shape, w_shape, *rest = _layer(8, 4, 1)
    one_by_one = choose_layout((2, 64, 4, 4), (64, 64, 1, 1), (1, 1), ((0, 0), (0, 0)), (1, 1), 1)
    assert one_by_one.name == "nhwc"  # one tap: its unfold is x itself
    assert choose_layout(x_shape, (8, 4, 3, 3), *rest[:-1], 2).name == "rows_stacked"  # two groups
    # Weights more than 6 times the input (every tap live), where the live taps do not take the layer:
    # channels first. A strided 1x1 layer of 2048 channels on 4x4 images at batch 2 (32 times); not a
    # strided one of 256 channels on 12x12 images at batch 32 (0.5 times).
    one_tap = (2048, 2048, 1, 1), (2, 2), ((0, 0), (0, 0)), (1, 1), 1
    assert choose_layout((2, 2048, 4, 4), *one_tap).name == "nchw" and square(256, 12, 2, n=32) == "nhwc"
    assert square(256, 12, oc=64) == "nhwc" and square(128, 12, 2) == "nhwc"
    assert square(16, 24) == "rows_stacked"
    # dx's flipped convolution takes the larger tiles from 16 channels (the forward from 32); not below

    def dx_square(c: int, width: int, stride: int = 1) -> str:
        x_shape, w_shape, *rest = _layer(c, width, stride)
        return choose_layout(x_shape, (c, *w_shape[1:]), *rest, for_dx=True).name

    assert dx_square(16, 28) == "winograd4" and dx_square(32, 14) == square(32, 14) == "winograd4"
    assert dx_square(16, 28, 2) == "nchw" and dx_square(8, 28) == square(8, 28) == "rows_stacked"
    # The shifted rows stack their kernel rows where a row of the kernel holds at least 6 values and twice
    # the output channels (per group): 3 -> 16 channels (9 values) and a kernel of one row stay unfolded
    assert (
        square(3, 28, oc=16) == "rows" and square(8, 28) == "rows_stacked" and square(4, 28, oc=8) == "rows"
    )
    one_row = choose_layout((2, 16, 28, 28), (16, 16, 1, 3), (1, 1), ((0, 0), (1, 1)), (1, 1), 1)
    assert one_row.name == "rows"
    x_shape, _, *rest = _layer(128, 12, 1)
    on_gpu = choose_layout(x_shape, (128, 128, 3, 3), *rest, xp=object())  # not measured on a GPU
    assert on_gpu.name == "nhwc"
    with conv_layout("nchw"):
        assert name(512, 1, 1) == "nchw"
    with conv_layout("rows"):  # rows has no fold: only where dx is a convolution
        assert name(3, 112, 1) == "rows" and name(3, 112, 2) == "nchw" and name(16, 28, 1) == "rows"
    with conv_layout("rows_stacked"):
        assert name(3, 112, 1) == "rows_stacked" and name(3, 112, 2) == "nchw"
    with conv_layout("winograd"):  # only 3x3, stride 1, one group; elsewhere the rule decides
        assert name(3, 112, 1) == "winograd" and name(3, 112, 2) == "nchw" and name(512, 1, 2) == "nhwc"
        args = list(_layer(8, 6, 1))
        args[5] = 2
        assert choose_layout(*args).name == "rows_stacked"  # grouped
    with conv_layout("winograd4"):  # the same layers as winograd
        assert name(3, 112, 1) == "winograd4" and name(3, 112, 2) == "nchw" and name(512, 1, 2) == "nhwc"
    with conv_layout("taps"):  # any layer
        assert name(3, 112, 2) == "taps" and name(64, 24, 1) == "taps"
    assert name(512, 1, 1) == "taps"  # restored
    with pytest.raises(ValueError, match="conv_layout: expected one of"):
        with conv_layout("channels_last"):
            pass


def test_a_geometry_gets_its_layout_once() -> None:
    """choose_layout makes a layer's Layout once and hands the same object to every later call with the
    same geometry, array module, override and purpose; each of those four changes it."""
    args = _layer(64, 7, 1, n=1)  # the live taps, whose blocks cost the most to work out
    first = choose_layout(*args)
    assert first.name == "taps" and choose_layout(*args) is first
    assert choose_layout(*[list(a) if isinstance(a, tuple) else a for a in args]) is first  # lists too
    other_batch = choose_layout((2, *args[0][1:]), *args[1:])
    assert other_batch is not first and other_batch.x_shape == (2, 64, 7, 7)
    with conv_layout("nchw"):
        forced = choose_layout(*args)
    assert forced.name == "nchw" and forced.forced == "nchw" and first.forced is None
    assert choose_layout(*args, xp=object()).name == "nhwc"  # the GPU's rule
    assert choose_layout(*args, for_dx=True) is not first
    assert choose_layout(*args) is first  # none of them changed the first


def test_layout_names_are_the_override_names() -> None:
    assert tuple(LAYOUTS) == CONV_LAYOUTS
    layouts = (
        ChannelsFirst,
        ShiftedRows,
        StackedRows,
        ChannelsLast,
        Winograd,
        Winograd3,
        Winograd4,
        LiveTaps,
    )
    assert [cls.name for cls in layouts] == list(CONV_LAYOUTS)


@pytest.mark.parametrize("layout", [ShiftedRows, StackedRows, Winograd, Winograd3, Winograd4])
def test_rows_and_winograd_have_no_fold(layout: type) -> None:
    """The rows and Winograd layouts state that they cannot fold; their dx is the flipped-kernel
    convolution."""
    assert layout.has_fold is False and ChannelsFirst.has_fold and ChannelsLast.has_fold
    with pytest.raises(NotImplementedError, match="no fold"):
        layout(*_layer(4, 6, 1)).fold(None, None, 2)


def test_the_override_is_per_thread() -> None:
    """A conv_layout block in one thread leaves another thread's convolutions to the per-layer choice."""
    entered, release, seen = threading.Event(), threading.Event(), []

    def other() -> None:
        entered.wait()
        seen.append((forced_conv_layout(), choose_layout(*_layer(64, 7, 1)).name))
        release.set()

    thread = threading.Thread(target=other)
    thread.start()
    with conv_layout("nchw"):
        entered.set()
        release.wait()
        assert forced_conv_layout() == "nchw"
    thread.join()
    assert seen == [(None, "taps")] and forced_conv_layout() is None


@pytest.mark.parametrize(
    "layout, image, lands",
    [
        (ChannelsLast, 5, True),
        (LiveTaps, 5, True),
        (Winograd4, 8, True),  # 4x4 tiles cover an 8x8 output exactly
        (Winograd4, 7, False),  # past a 7x7 one: made apart, then copied
        (ChannelsFirst, 5, False),
        (ShiftedRows, 5, False),
        (StackedRows, 5, False),
    ],
)
def test_a_product_lands_in_its_out_where_the_layout_can(layout: type, image: int, lands: bool) -> None:
    """conv2d_forward hands each chunk's slice of y to the product: the channels-last products (one group)
    and Winograd's exact tiles write it there and return it, the others return their own array; y is the
    reference's either way, and an NCHW out is never written into by a channels-last product."""
    rng = np.random.default_rng(4)
    x, w = rng.standard_normal((3, 6, image, image)), rng.standard_normal((5, 6, 3, 3))
    args = (x.shape, w.shape, (1, 1), ((1, 1), (1, 1)), (1, 1), 1)
    by_layout = layout(*args)
    cols = by_layout.unfold(x)
    out = by_layout.empty(np, (3, 5, image, image), x.dtype)
    part = by_layout.product(by_layout.weight_matrix(w), cols, 3, out)
    assert (part is out) == lands
    reference = conv2d_forward(x, w, None, ChannelsFirst(*args))
    np.testing.assert_allclose(part, reference, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(conv2d_forward(x, w, None, by_layout), reference, rtol=1e-10, atol=1e-10)
    if lands:  # an out of the other memory order: not taken
        nchw = np.full((3, 5, image, image), np.nan)
        part = by_layout.product(by_layout.weight_matrix(w), cols, 3, nchw)
        assert part is not nchw and np.isnan(nchw).all()
        np.testing.assert_allclose(part, reference, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("layout", [ChannelsFirst, ChannelsLast, LiveTaps])
def test_fold_and_flipped_kernel_give_the_same_dx(layout: type) -> None:
    """For a stride-1 layer conv2d_input_grad takes the flipped-kernel convolution; the layouts' fold
    (dx = col2im(W^T dY), chunk by chunk) gives the same dx, and the forward kernel the same y."""
    rng = np.random.default_rng(3)
    x, w = rng.standard_normal((3, 6, 5, 4)), rng.standard_normal((4, 3, 3, 2))
    args = (x.shape, w.shape, (1, 1), ((1, 2), (0, 1)), (1, 2), 2)
    g = rng.standard_normal((3, 4, 6, 3))  # OH = 5 + 3 - 2, OW = 4 + 1 - 2
    by_layout = layout(*args)
    dx_flipped = conv2d_input_grad(g, w, by_layout)
    dx_folded = by_layout.fold(by_layout.weight_matrix(w), by_layout.output_grad(g), 3)
    np.testing.assert_allclose(dx_folded, dx_flipped, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(
        conv2d_forward(x, w, None, by_layout), conv2d_forward(x, w, None, ChannelsFirst(*args))
    )


@pytest.mark.parametrize("layout", list(CONV_LAYOUTS))
def test_dx_is_computed_in_the_forced_layout_after_the_block(
    layout: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The override in force at forward also picks the layout of dx's flipped-kernel convolution, when
    backward runs outside the block (and a block at backward time does not change it); the live taps take
    dx by their fold, with no second layout to choose."""
    from minires.ops import conv

    chosen: list[str] = []

    def recording(*args: Any, **kwargs: Any) -> Any:
        result = choose_layout(*args, **kwargs)
        chosen.append(result.name)
        return result

    monkeypatch.setattr(conv, "choose_layout", recording)
    x, w = mr.randn(2, 4, 6, 5, requires_grad=True), mr.randn(3, 4, 3, 3, requires_grad=True)
    with conv_layout(layout):
        y = F.conv2d(x, w, padding=1)
    with conv_layout("nchw" if layout != "nchw" else "nhwc"):
        y.sum().backward()
    assert chosen == ([layout] if LAYOUTS[layout].dx_by_fold else [layout, layout])


@settings(max_examples=60, deadline=None)
@given(
    layout=st.sampled_from(list(CONV_LAYOUTS)),
    n=st.integers(0, 3),
    channels=st.tuples(st.integers(1, 3), st.integers(1, 4), st.integers(1, 4)),  # groups, Cg, OCg
    hw=st.tuples(st.integers(1, 9), st.integers(1, 9)),
    k=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    p=st.tuples(*[st.floats(0, 1)] * 4),  # each padding as a share of the dilated kernel's extent
    d=st.tuples(st.integers(1, 2), st.integers(1, 2)),
    dtype=st.sampled_from([np.float64, np.float32]),
    channels_last=st.tuples(st.booleans(), st.booleans()),  # x, g
    seed=st.integers(0, 2**16),
)
def test_dx_and_dw_together_match_them_apart(
    layout: str,
    n: int,
    channels: tuple,
    hw: tuple,
    k: tuple,
    p: tuple,
    d: tuple,
    dtype: type,
    channels_last: tuple,
    seed: int,
) -> None:
    """conv2d_input_and_weight_grad's shared unfold (made to take every case here: the memory rule would
    send many of these small ones apart) gives the dx and dw of conv2d_input_grad and conv2d_weight_grad,
    in every layout, with groups, dilation, uneven padding (at most the dilated kernel's extent: dx is a
    convolution), empty batches, float32 and channels-last x and g. The live taps take dx by their fold
    (``dx_by_fold``), always apart from dw: the same dx as the flipped-kernel convolution in that layout."""
    from minires.ops import conv

    (G, Cg, OCg), (H, W) = channels, hw
    extent = (d[0] * (k[0] - 1), d[1] * (k[1] - 1))
    padding = tuple(
        tuple(round(share * extent[axis]) for share in p[2 * axis : 2 * axis + 2]) for axis in (0, 1)
    )
    OH, OW = H + sum(padding[0]) - extent[0], W + sum(padding[1]) - extent[1]
    if OH < 1 or OW < 1:
        return  # conv2d refuses a kernel larger than the padded input
    assert dx_is_convolution(k, (1, 1), padding, d)
    rng = np.random.default_rng(seed)
    x, w = (
        rng.standard_normal((n, G * Cg, H, W)).astype(dtype),
        rng.standard_normal((G * OCg, Cg, *k)).astype(dtype),
    )
    g = rng.standard_normal((n, G * OCg, OH, OW)).astype(dtype)
    x, g = (_channels_last(a) if last else a for a, last in zip((x, g), channels_last, strict=True))
    with conv_layout(layout):
        by_layout = choose_layout(x.shape, w.shape, (1, 1), padding, d, G)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(conv, "FUSED_WEIGHT_RATIO", math.inf)
        calls: list = []
        apart = conv.conv2d_weight_grad
        patch.setattr(conv, "conv2d_weight_grad", lambda *a: calls.append(a) or apart(*a))
        dx, dw = conv2d_input_and_weight_grad(g, x, w, by_layout)
        assert len(calls) == by_layout.dx_by_fold  # the shared unfold, not the fallback (but for the taps)
    tol = 1e-10 if dtype == np.float64 else 2e-4
    if by_layout.dx_by_fold:  # the fold's dx is the flipped-kernel convolution's
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(type(by_layout), "dx_by_fold", False)
            flipped_dx = conv2d_input_grad(g, w, by_layout)
        np.testing.assert_allclose(dx, flipped_dx, rtol=tol, atol=tol)
    np.testing.assert_allclose(dx, conv2d_input_grad(g, w, by_layout), rtol=tol, atol=tol)
    np.testing.assert_allclose(
        dw, conv2d_weight_grad(g, x, by_layout), rtol=tol, atol=tol * max(1, n * H * W)
    )
    assert dx.dtype == dw.dtype == dtype


def _channels_last(a: np.ndarray) -> np.ndarray:
    """a (N, C, H, W) as an NCHW view of an NHWC copy."""
    return np.ascontiguousarray(a.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)


@pytest.mark.parametrize("layout", list(CONV_LAYOUTS))
def test_dx_and_dw_go_apart_where_the_weights_outweigh_x(
    layout: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where dx's weight matrix is larger than x (many channels, few pixels), conv2d_input_and_weight_grad
    computes dx and dw apart (memory), and where it is smaller, together; the same values either way. A
    strided layer (dx by the fold, not a convolution) goes apart whatever its size, and so do the live
    taps (dx by their fold)."""
    from minires.ops import conv

    calls: list[str] = []
    apart = conv.conv2d_weight_grad
    monkeypatch.setattr(conv, "conv2d_weight_grad", lambda *a: calls.append("apart") or apart(*a))
    rng = np.random.default_rng(5)
    for n, C, HW, S, expected in ((1, 32, 2, 1, ["apart"]), (8, 4, 12, 1, []), (8, 4, 12, 2, ["apart"])):
        x, w = rng.standard_normal((n, C, HW, HW)), rng.standard_normal((C, C, 3, 3))
        g = rng.standard_normal((n, C, (HW - 1) // S + 1, (HW - 1) // S + 1))
        with conv_layout(layout):
            by_layout = choose_layout(x.shape, w.shape, (S, S), ((1, 1), (1, 1)), (1, 1), 1)
        calls.clear()
        dx, dw = conv2d_input_and_weight_grad(g, x, w, by_layout)
        assert calls == (["apart"] if by_layout.dx_by_fold else expected)
        np.testing.assert_allclose(dx, conv2d_input_grad(g, w, by_layout), rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(dw, apart(g, x, by_layout), rtol=1e-10, atol=1e-10)


def test_winograd_chunks_hold_less_than_the_unfolds() -> None:
    """A Winograd layout's batch chunks hold about WINOGRAD_CHUNK_BYTES of V (its transforms keep more
    arrays of V's size beside it); the other layouts' about CHUNK_BYTES of cols."""
    from minires import threads
    from minires.ops import conv_layouts

    x = np.zeros((64, 64, 24, 24), dtype=np.float32)
    args = (x.shape, (64, 64, 3, 3), (1, 1), ((1, 1), (1, 1)), (1, 1), 1)
    for layout, limit in (
        (Winograd4, conv_layouts.WINOGRAD_CHUNK_BYTES),
        (ChannelsLast, conv_layouts.CHUNK_BYTES),
    ):
        by_layout = layout(*args)
        per_image = by_layout.values_per_image() * 4
        assert by_layout.chunks(x) == threads.balanced_chunks(64, max(1, limit // per_image))
    assert conv_layouts.WINOGRAD_CHUNK_BYTES < conv_layouts.CHUNK_BYTES


@pytest.mark.parametrize("layout", [ChannelsLast, LiveTaps])
@pytest.mark.parametrize(
    ("w_shape", "hw", "groups"),
    [
        ((6, 4, 3, 3), (5, 5), 1),
        ((6, 2, 3, 3), (4, 6), 2),
        ((8, 4, 1, 1), (3, 3), 1),
        ((6, 4, 3, 3), (1, 1), 1),
    ],
)
@pytest.mark.parametrize("flipped", [False, True])
def test_the_channels_last_weight_matrix_puts_the_taps_first_and_back(
    layout: type, w_shape: tuple, hw: tuple, groups: int, flipped: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """W (G, OCg, T*Cg) holds w[o, c, tap t] at column t*Cg + c, for the live taps only (a 1x1 kernel: a view
    of w, also of dx's flipped kernel, a view with its channel axes swapped), and weight_from_matrix puts a
    matrix of that form back as (OC, Cg, KH, KW), zeros at the dead taps: on one thread and on two, with
    chunks of one row (copy_into)."""
    from minires import threads
    from minires.ops.conv import _flip_kernel

    rng = np.random.default_rng(1)
    base = rng.standard_normal(w_shape).astype(np.float32)
    w = _flip_kernel(base, groups) if flipped else base  # the flipped kernel: a view against w's grain
    x_shape = (2, w.shape[1] * groups, *hw)
    by_layout = layout(
        x_shape, w.shape, (1, 1), ((1, 1), (1, 1)) if w.shape[2] == 3 else ((0, 0), (0, 0)), (1, 1), groups
    )
    G, OCg, Cg = groups, w.shape[0] // groups, w.shape[1]
    live = [kh * w.shape[3] + kw for kh, kw in by_layout.taps]
    expected = w.reshape(G, OCg, Cg, -1)[..., live].transpose(0, 1, 3, 2).reshape(G, OCg, -1)
    monkeypatch.setattr(threads, "BATCH_CHUNK_BYTES", 1)
    before = mr.get_num_threads()
    try:
        for n in (1, 2):
            mr.set_num_threads(n)
            W = by_layout.weight_matrix(w)
            np.testing.assert_array_equal(W, expected)
            back = by_layout.weight_from_matrix(np.ascontiguousarray(W))
            dead = np.ones(w.shape[2] * w.shape[3], bool)
            dead[live] = False
            want = w.reshape(G * OCg, Cg, -1).copy()
            want[..., dead] = 0
            np.testing.assert_array_equal(back, want.reshape(w.shape))
    finally:
        mr.set_num_threads(before)
