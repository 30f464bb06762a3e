"""Pooling: max_pool2d, avg_pool2d and adaptive_avg_pool2d, with PyTorch's output sizes and edge rules.

Notation: N, C, H, W (input), KH, KW (window), SH, SW (stride), PH, PW (padding), DH, DW (dilation),
OH, OW (output). Window (oh, ow) covers the padded-input pixels (oh*SH + kh*DH, ow*SW + kw*DW),
0 <= kh < KH, 0 <= kw < KW. Max and average pooling loop over the KH*KW window offsets: offset (kh, kw)
is one strided slice of the padded input, holding that element of every window at once (max pooling
reads it as one contiguous run of the input split by stride phase instead: ``_phases``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..backend import get_array_module
from ..errors import DTypeError, ShapeError
from ..function import Function
from ..tensor import Tensor
from ..threads import each_chunk
from .args import int_pair
from .im2col import live_run
from .shape import squeeze, unsqueeze

Pair = tuple[int, int]


def pool_output_size(size: int, kernel: int, stride: int, pad: int, dilation: int, ceil_mode: bool) -> int:
    """PyTorch's rule: floor (or ceil) of (size + 2 pad - dilation (kernel - 1) - 1) / stride, plus 1;
    in ceil mode a last window that would start in the right padding (or past it) is dropped."""
    span = size + 2 * pad - dilation * (kernel - 1) - 1
    out = (span + (stride - 1 if ceil_mode else 0)) // stride + 1
    if ceil_mode and (out - 1) * stride >= size + pad:
        out -= 1
    return out


def _window(kh: int, kw: int, geometry: tuple) -> tuple[slice, slice]:
    """The strided slices of the padded input that hold element (kh, kw) of every window."""
    (SH, SW), (DH, DW), (OH, OW) = geometry
    return slice(kh * DH, kh * DH + SH * (OH - 1) + 1, SH), slice(kw * DW, kw * DW + SW * (OW - 1) + 1, SW)


def _padded(xp: Any, x: Any, fill: Any, pad: Pair, need: Pair) -> Any:
    """x inside a border of ``fill``: ``pad`` on the top/left, and on the bottom/right enough for every
    window, at least ``pad`` (ceil_mode's last window can run past the padding)."""
    N, C, H, W = x.shape
    Hp, Wp = max(H + 2 * pad[0], need[0]), max(W + 2 * pad[1], need[1])
    x_pad = xp.full((N, C, Hp, Wp), fill, dtype=x.dtype)
    x_pad[:, :, pad[0] : pad[0] + H, pad[1] : pad[1] + W] = x
    return x_pad


def _phases(xp: Any, x: Any, fill: Any, pad: Pair, stride: Pair, size: Pair) -> Any:
    """The padded input split by stride phase: planes[p, q][n, c, i, j] = x_pad[n, c, SH*i + p, SW*j + q],
    x_pad being x inside a border of ``fill`` (``pad`` on the top/left, as much as needed on the
    bottom/right), each plane ``size`` = (Hq, Wq). A strided window element of every output pixel is then
    a shifted block of one plane, and, the planes flattened, one contiguous run. Shapes: x (n, C, H, W) ->
    (SH, SW, n, C, Hq, Wq)."""
    (n, C, H, W), (PH, PW), (SH, SW), (Hq, Wq) = x.shape, pad, stride, size
    planes = xp.full((SH, SW, n, C, Hq, Wq), fill, dtype=x.dtype)
    for p in range(SH):
        # plane rows i reading x's row SH*i + p - PH inside x, and those rows: a kernel offset p's live run
        plane_rows, x_rows = live_run(H, Hq, p, SH, 1, PH)
        for q in range(SW):
            plane_cols, x_cols = live_run(W, Wq, q, SW, 1, PW)
            planes[p, q, :, :, plane_rows, plane_cols] = x[:, :, x_rows, x_cols]
    return planes


class MaxPool2d(Function):
    r"""y[n, c, oh, ow] = max over the window of x_pad, x padded with -inf (padding never wins).

    Backward: y is one element of its window, the argmax a* (the first maximal element in row-major
    window order, as PyTorch; a NaN wins, the last NaN if several). Locally y = x[a*], so
    dy/dx = 1 at a* and 0 elsewhere, and windows that overlap (stride < kernel) add their gradients:
        dx[p] = sum of g[window] over the windows whose argmax is p,
    a scatter-add of g to the argmax positions (a ``bincount`` weighted by g, over the planes of a batch
    chunk; on the CPU both passes run a chunk at a time on minires's threads).
    The argmax is tracked as a flat index ih*W + iw into its (H, W) plane, which is also what
    return_indices gives, as PyTorch's indices; only when backward or return_indices needs it (without
    a gradient the max alone is taken).
    Shapes: x (N, C, H, W), y and indices (N, C, OH, OW).
    """

    saved = ("indices", "x_shape")

    def __init__(
        self,
        kernel_size: Pair,
        stride: Pair,
        padding: Pair,
        dilation: Pair,
        ceil_mode: bool,
        return_indices: bool = False,
    ) -> None:
        self.kernel_size, self.stride, self.padding, self.dilation = kernel_size, stride, padding, dilation
        self.ceil_mode, self.return_indices = ceil_mode, return_indices

    def forward(self, x: Any) -> Any:
        xp = get_array_module(x)
        N, C, H, W = x.shape
        (KH, KW), (SH, SW), (PH, PW), (DH, DW) = self.kernel_size, self.stride, self.padding, self.dilation
        OH = pool_output_size(H, KH, SH, PH, DH, self.ceil_mode)
        OW = pool_output_size(W, KW, SW, PW, DW, self.ceil_mode)
        lowest = -float("inf") if x.dtype.kind == "f" else xp.iinfo(x.dtype).min
        # The running argmax, as the window offset k = kh*KW + kw. It starts, as in PyTorch, at the window's
        # first element inside the input (this shows only when all of a window's values are -inf): the
        # first kh with oh*SH + kh*DH >= PH, and likewise for kw.
        kh0 = (xp.maximum(PH - SH * xp.arange(OH), 0) + DH - 1) // DH  # (OH,)
        kw0 = (xp.maximum(PW - SW * xp.arange(OW), 0) + DW - 1) // DW  # (OW,)
        # Flat index ih*W + iw into the (H, W) plane: the window's corner plus the offset's displacement.
        corner = (SH * xp.arange(OH) - PH)[:, None] * W + (SW * xp.arange(OW) - PW)[None, :]  # (OH, OW)
        displacement = ((DH * xp.arange(KH))[:, None] * W + DW * xp.arange(KW)[None, :]).ravel()  # (KH*KW,)
        y = xp.empty((N, C, OH, OW), dtype=x.dtype)
        # The argmax only where backward or return_indices needs it: the max alone is 7x faster (measured,
        # a 64-channel 48x48 image, AVX2).
        track = self.return_indices or self.needs_input_grad[0]
        # The window offset in the narrowest integer that holds it: int8 for kernels up to 127 taps, where
        # the argmax's three integer passes per offset move 4 times fewer bytes than in int32 (measured:
        # d2l_resnet18's pool at 96x96, 64 images of 64x48x48, forward 28 -> 21 ms on 2 cores).
        offset_type = xp.int8 if KH * KW <= 127 else xp.int32
        self.indices = xp.empty((N, C, OH, OW), dtype=xp.int64) if track else None

        # The windows' elements from the input split by stride phase (``_phases``): element (kh, kw) of the
        # window of output pixel (i, j) is plane [(DH kh) % SH, (DW kw) % SW] at (i + (DH kh) // SH,
        # j + (DW kw) // SW). The running max and argmax then go over an extended (Hq, Wq) grid of each
        # plane's shape, flattened: each window element is one contiguous run of a plane, so that every
        # pass reads and writes whole arrays, where strided windows of the padded input make NumPy's inner
        # loops one output row long (measured: d2l_resnet18's pool at 96x96, forward 21 -> 13 ms; at
        # 28x28, 256 images, 6.7 -> 4.5 ms). The grid's extra rows and columns, past the output, hold
        # values that are cropped away.
        Hq, Wq = OH + DH * (KH - 1) // SH, OW + DW * (KW - 1) // SW
        reach = (DH * (KH - 1) // SH) * Wq + DW * (KW - 1) // SW  # the largest shift
        init = xp.zeros((Hq, Wq), dtype=offset_type)
        init[:OH, :OW] = kh0[:, None] * KW + kw0[None, :]

        def pool(c: Any) -> None:  # a batch chunk: y[c] and indices[c] from x[c]
            n = x[c].shape[0]
            if n == 0:  # an empty batch: nothing to pool (the runs below would have negative lengths)
                return
            planes = _phases(xp, x[c], lowest, (PH, PW), (SH, SW), (Hq, Wq))
            L = n * C * Hq * Wq - reach  # the grid positions every window element reaches
            flat = planes.reshape(SH, SW, -1)
            # On the CPU one check of the chunk spares the per-offset NaN test below; on the GPU that
            # check would stop the host until the device is done, so there every offset is tested instead.
            nan_wins = track and x.dtype.kind == "f" and (xp is not np or bool(np.isnan(x[c]).any()))
            grid = xp.full((n, C, Hq, Wq), lowest, dtype=x.dtype)
            y_g = grid.reshape(-1)[:L]
            if track:
                arg = xp.empty((n, C, Hq, Wq), dtype=offset_type)
                arg[...] = init
                arg_g = arg.reshape(-1)[:L]
                better, step = xp.empty(L, dtype=bool), xp.empty(L, dtype=offset_type)
            for kh in range(KH):
                for kw in range(KW):
                    shift = (DH * kh // SH) * Wq + DW * kw // SW
                    window = flat[DH * kh % SH, DW * kw % SW, shift : shift + L]  # element (kh, kw) of each
                    if track:
                        xp.greater(window, y_g, out=better)  # strict: on ties the earlier offset keeps it
                        if nan_wins:
                            better |= xp.isnan(window)
                        # arg = k where better: as arithmetic, 7x faster than copyto(where=) in NumPy
                        xp.subtract(kh * KW + kw, arg_g, out=step)
                        step *= better
                        arg_g += step
                    xp.maximum(y_g, window, out=y_g)  # NaN-propagating, as the NaN rule above
            y[c] = grid[:, :, :OH, :OW]
            if track:
                xp.add(
                    corner, xp.take(displacement, arg[:, :, :OH, :OW]), out=self.indices[c]
                )  # (n, C, OH, OW)

        each_chunk(xp, pool, x)  # on the CPU a chunk at a time on minires's threads
        self.x_shape = x.shape
        return y

    def backward(self, g: Any) -> Any:
        xp = get_array_module(g)
        N, C, H, W = self.x_shape
        if xp is not np:  # CuPy's bincount reads the largest position on the host (a sync); add.at does not
            position = (xp.arange(N * C).reshape(N, C, 1, 1) * (H * W) + self.indices).ravel()
            dx = xp.zeros(self._scatter_size(), dtype=g.dtype)
            xp.add.at(dx, position, g.ravel())
            return dx[: N * C * H * W].reshape(N, C, H, W)
        # (A window with no input element at all, possible only with dilation on a tiny input, keeps
        # PyTorch's index of its first tap past the edge: its g lands where PyTorch's lands, in the next
        # plane or past the end. Only then is the batch scattered at once rather than chunk by chunk.)
        dx = np.empty(self.x_shape, dtype=g.dtype)

        def scatter(c: Any) -> None:  # the sum of g per argmax position, for the planes of a chunk
            indices = self.indices[c]
            n = indices.shape[0]
            position = (np.arange(n * C).reshape(n, C, 1, 1) * (H * W) + indices).ravel()
            dx_c = np.bincount(position, weights=g[c].ravel(), minlength=n * C * H * W)  # float64
            dx[c] = dx_c[: n * C * H * W].reshape(n, C, H, W)

        if self._scatter_size() > N * C * H * W:
            scatter(...)
        else:
            each_chunk(np, scatter, g)
        return dx

    def _scatter_size(self) -> int:
        """The length of the scatter-add target: every x position, and the largest position an empty
        window's index can point to (one past the edge), computed from the geometry on the host."""
        N, C, H, W = self.x_shape
        (KH, KW), (SH, SW), (PH, PW), (DH, DW) = self.kernel_size, self.stride, self.padding, self.dilation
        OH, OW = self.indices.shape[2:]
        largest = (SH * (OH - 1) - PH + DH * (KH - 1)) * W + SW * (OW - 1) - PW + DW * (KW - 1)
        return max(N * C * H * W, (N * C - 1) * H * W + largest + 1)


class AvgPool2d(Function):
    r"""y[n, c, oh, ow] = (sum of the window's elements inside the input) / divisor[oh, ow].

    PyTorch's divisor: with count_include_pad, the window's size clipped to the padded input
    (ceil_mode's last window can run past the padding, and that part does not count); without it, the
    number of the window's elements inside the input; ``divisor_override`` replaces both.
    Backward: y is linear in x with dy/dx[p] = 1 / divisor for every p in the window, so
        dx[p] = sum over windows containing p of g[window] / divisor[window],
    a scatter-add of g / divisor through the same strided slices (the adjoint of the forward's sum).
    Shapes: x (N, C, H, W), y (N, C, OH, OW), divisor (OH, OW).
    """

    saved = ("divisor", "x_shape", "geometry", "padded_hw")

    def __init__(
        self,
        kernel_size: Pair,
        stride: Pair,
        padding: Pair,
        ceil_mode: bool,
        count_include_pad: bool,
        divisor_override: int | None,
    ) -> None:
        self.kernel_size, self.stride, self.padding, self.ceil_mode = kernel_size, stride, padding, ceil_mode
        self.count_include_pad, self.divisor_override = count_include_pad, divisor_override

    def _divisor(self, xp: Any, size: int, kernel: int, stride: int, pad: int, out: int) -> tuple[Any, Any]:
        """Along one axis, per output position: (window length clipped to the padded input, count inside)."""
        start = stride * xp.arange(out) - pad  # in input coordinates, may be negative
        end = xp.minimum(start + kernel, size + pad)
        return end - start, xp.minimum(end, size) - xp.maximum(start, 0)

    def forward(self, x: Any) -> Any:
        xp = get_array_module(x)
        N, C, H, W = x.shape
        (KH, KW), (SH, SW), (PH, PW) = self.kernel_size, self.stride, self.padding
        OH = pool_output_size(H, KH, SH, PH, 1, self.ceil_mode)
        OW = pool_output_size(W, KW, SW, PW, 1, self.ceil_mode)
        geometry = ((SH, SW), (1, 1), (OH, OW))
        x_pad = _padded(xp, x, 0, (PH, PW), (SH * (OH - 1) + KH, SW * (OW - 1) + KW))
        total = xp.zeros((N, C, OH, OW), dtype=x.dtype)
        for kh in range(KH):
            for kw in range(KW):
                rows, cols = _window(kh, kw, geometry)
                total += x_pad[:, :, rows, cols]
        if self.divisor_override is not None:
            divisor = xp.full((OH, OW), self.divisor_override, dtype=x.dtype)
        else:
            size_h, count_h = self._divisor(xp, H, KH, SH, PH, OH)
            size_w, count_w = self._divisor(xp, W, KW, SW, PW, OW)
            h, w = (size_h, size_w) if self.count_include_pad else (count_h, count_w)
            divisor = (h[:, None] * w[None, :]).astype(x.dtype)  # (OH, OW)
        self.divisor, self.x_shape = divisor, x.shape
        self.geometry, self.padded_hw = geometry, x_pad.shape[2:]
        return total / divisor

    def backward(self, g: Any) -> Any:
        xp = get_array_module(g)
        N, C, H, W = self.x_shape
        (KH, KW), (PH, PW) = self.kernel_size, self.padding
        g_per_element = g / self.divisor  # (N, C, OH, OW)
        dx_pad = xp.zeros((N, C, *self.padded_hw), dtype=g.dtype)
        for kh in range(KH):
            for kw in range(KW):
                rows, cols = _window(kh, kw, self.geometry)
                dx_pad[:, :, rows, cols] += g_per_element
        return xp.ascontiguousarray(dx_pad[:, :, PH : PH + H, PW : PW + W])


def adaptive_bins(xp: Any, size: int, out: int, dtype: Any) -> Any:
    """P (out, size): row i averages PyTorch's bin [floor(i size/out), ceil((i+1) size/out))."""
    i = xp.arange(out)
    start = (i * size) // out
    end = -((-(i + 1) * size) // out)  # ceil
    p = xp.arange(size)
    inside = (p[None, :] >= start[:, None]) & (p[None, :] < end[:, None])
    return inside.astype(dtype) / (end - start)[:, None].astype(dtype)


class AdaptiveAvgPool2d(Function):
    r"""y[n, c, i, j] = mean of x[n, c, h, w] over the bins h in [h0_i, h1_i), w in [w0_j, w1_j), with
    PyTorch's edges h0_i = floor(i H / OH), h1_i = ceil((i+1) H / OH) (bins may overlap or differ in size).

    The mean over a rectangle is separable, so with the averaging matrices
        P_h[i, h] = 1 / (h1_i - h0_i) for h0_i <= h < h1_i, else 0        (OH, H)
        P_w[j, w] = 1 / (w1_j - w0_j) for w0_j <= w < w1_j, else 0        (OW, W)
    the forward is, for each (n, c), y = P_h x P_w^T: no loop over the bins.
    Backward: y_ij = sum_{h,w} P_h[i,h] x_hw P_w[j,w] gives dy_ij/dx_hw = P_h[i,h] P_w[j,w], so
        dx_hw = sum_{i,j} P_h[i,h] g_ij P_w[j,w],   i.e.  dx = P_h^T g P_w.
    The same with the images flattened: vec(y) = P vec(x) and vec(dx) = P^T vec(g), P = P_h (x) P_w
    (OH*OW, H*W), the Kronecker product (row (i, j), column (h, w) holding P_h[i, h] P_w[j, w]). Where P
    is small (at most KRON_MAX_VALUES: a ResNet's global pooling, P a row of 1/(H W)), one product over all
    (n, c) at once, (N*C, H*W) @ P^T, or per image P @ (H*W, C) for channels-last x, in x's memory order;
    the two products per (n, c) of 2x2 matrices took 1.7 ms on resnet50's (32, 2048, 2, 2), the one product
    0.1 ms. Shapes: x (N, C, H, W), y (N, C, OH, OW).
    """

    saved = ("P_h", "P_w", "P")

    def __init__(self, output_size: Pair) -> None:
        self.output_size = output_size

    def forward(self, x: Any) -> Any:
        xp = get_array_module(x)
        H, W = x.shape[2:]
        OH, OW = self.output_size
        self.P_h = adaptive_bins(xp, H, OH, x.dtype)  # (OH, H)
        self.P_w = adaptive_bins(xp, W, OW, x.dtype)  # (OW, W)
        self.P = xp.kron(self.P_h, self.P_w) if OH * OW * H * W <= KRON_MAX_VALUES else None
        if self.P is None:
            return self.P_h @ x @ self.P_w.T  # (N, C, OH, OW), matmul broadcasting over (N, C)
        return _flat_product(x, self.P, (OH, OW))

    def backward(self, g: Any) -> Any:
        if self.P is None:
            return self.P_h.T @ g @ self.P_w  # (N, C, H, W)
        return _flat_product(g, self.P.T, (self.P_h.shape[1], self.P_w.shape[1]))


# P = P_h (x) P_w of at most this many values: AdaptiveAvgPool2d's one product over the flattened images.
KRON_MAX_VALUES = 1 << 16


def _flat_product(a: Any, P: Any, out_hw: Pair) -> Any:
    """vec(b) = P vec(a) for each (n, c) image of a (N, C, H, W): P (OH*OW, H*W) -> b (N, C, OH, OW), in a's
    memory order (channels last stays so)."""
    xp = get_array_module(a)
    N, C, H, W = a.shape
    last = a.transpose(0, 2, 3, 1)  # (N, H, W, C)
    if not a.flags.c_contiguous and last.flags.c_contiguous:  # channels last: per image
        b = P @ last.reshape(N, H * W, C)  # (N, OH*OW, C)
        return b.reshape(N, *out_hw, C).transpose(0, 3, 1, 2)
    b = xp.ascontiguousarray(a).reshape(N * C, H * W) @ P.T  # (N*C, OH*OW)
    return b.reshape(N, C, *out_hw)


# ----- wrappers --------------------------------------------------------------------------------------
def _check_input(op: str, x: Tensor) -> None:
    """3-d (C, H, W) or 4-d (N, C, H, W) with non-empty C, H, W (an empty batch is allowed)."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}: expected a Tensor input, got {type(x).__name__}")
    if x.ndim not in (3, 4) or 0 in x.shape[-3:]:
        raise ShapeError(
            f"{op}: expected a 3-d (C, H, W) or 4-d (N, C, H, W) input with non-zero C, H, W, "
            f"got input of shape {x.shape}"
        )


def _pool_args(
    op: str, x: Tensor, kernel_size: Any, stride: Any, padding: Any, dilation: Any, ceil_mode: bool
) -> tuple[Pair, Pair, Pair, Pair]:
    """Checked (kernel, stride, padding, dilation) pairs; raises ShapeError as PyTorch raises RuntimeError."""
    _check_input(op, x)
    kernel = int_pair(op, "kernel_size", kernel_size)
    stride = kernel if stride is None or (isinstance(stride, (tuple, list)) and len(stride) == 0) else stride
    stride = int_pair(op, "stride", stride)
    padding, dilation = int_pair(op, "padding", padding), int_pair(op, "dilation", dilation)
    if min(kernel) <= 0:
        raise ShapeError(f"{op}: kernel_size must be positive, got kernel_size={kernel}")
    if min(stride) <= 0:
        raise ShapeError(f"{op}: stride must be positive, got stride={stride}")
    if min(dilation) <= 0:
        raise ShapeError(f"{op}: dilation must be positive, got dilation={dilation}")
    if min(padding) < 0:
        raise ShapeError(f"{op}: padding must be non-negative, got padding={padding}")
    if padding[0] > kernel[0] // 2 or padding[1] > kernel[1] // 2:
        raise ShapeError(
            f"{op}: padding should be at most half of kernel size, got padding={padding}, kernel={kernel}"
        )
    H, W = x.shape[-2:]
    OH = pool_output_size(H, kernel[0], stride[0], padding[0], dilation[0], ceil_mode)
    OW = pool_output_size(W, kernel[1], stride[1], padding[1], dilation[1], ceil_mode)
    if OH < 1 or OW < 1:
        raise ShapeError(
            f"{op}: output size ({OH} x {OW}) is too small: input of shape {x.shape}, kernel_size={kernel}, "
            f"stride={stride}, padding={padding}, dilation={dilation}"
        )
    return kernel, stride, padding, dilation


def _batched(fn: Function, x: Tensor) -> Tensor:
    """Run a 4-d op on a 3-d (unbatched) input by adding and then removing the batch dim."""
    return squeeze(fn(unsqueeze(x, 0)), 0) if x.ndim == 3 else fn(x)


def max_pool2d(
    input: Tensor,  # noqa: A002 - PyTorch's name
    kernel_size: int | Pair,
    stride: int | Pair | None = None,
    padding: int | Pair = 0,
    dilation: int | Pair = 1,
    ceil_mode: bool = False,
    return_indices: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    """Max over each window, as torch.nn.functional.max_pool2d (stride None means kernel_size); with
    return_indices also the argmax as a flat index into each H x W plane (int64)."""
    args = _pool_args("max_pool2d", input, kernel_size, stride, padding, dilation, ceil_mode)
    fn = MaxPool2d(*args, ceil_mode=bool(ceil_mode), return_indices=bool(return_indices))
    y = _batched(fn, input)
    if not return_indices:
        return y
    return y, Tensor._wrap(fn.indices[0] if input.ndim == 3 else fn.indices)


def avg_pool2d(
    input: Tensor,  # noqa: A002 - PyTorch's name
    kernel_size: int | Pair,
    stride: int | Pair | None = None,
    padding: int | Pair = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
) -> Tensor:
    """Mean over each window, as torch.nn.functional.avg_pool2d (stride None means kernel_size)."""
    kernel, stride, padding, _ = _pool_args("avg_pool2d", input, kernel_size, stride, padding, 1, ceil_mode)
    if input.dtype.kind != "f":
        raise DTypeError(f"avg_pool2d: expected a floating-point input, got dtype {input.dtype}")
    if divisor_override is not None and divisor_override == 0:
        raise ShapeError("avg_pool2d: divisor_override must be non-zero, got 0")
    fn = AvgPool2d(kernel, stride, padding, bool(ceil_mode), bool(count_include_pad), divisor_override)
    return _batched(fn, input)


def adaptive_avg_pool2d(input: Tensor, output_size: int | tuple[int | None, int | None]) -> Tensor:  # noqa: A002
    """Average over PyTorch's adaptive bins to (OH, OW); an int n means (n, n), None keeps that size."""
    _check_input("adaptive_avg_pool2d", input)
    if input.dtype.kind != "f":
        raise DTypeError(f"adaptive_avg_pool2d: expected a floating-point input, got dtype {input.dtype}")
    sizes = tuple(output_size) if isinstance(output_size, (tuple, list)) else (output_size, output_size)
    if len(sizes) != 2:
        raise ShapeError(f"adaptive_avg_pool2d: output_size must have 2 elements, got {output_size!r}")
    OH, OW = (input.shape[-2 + i] if s is None else s for i, s in enumerate(sizes))
    if not all(hasattr(s, "__index__") and not isinstance(s, bool) and s >= 0 for s in (OH, OW)):
        raise ShapeError(
            f"adaptive_avg_pool2d: output_size must be non-negative ints (or None), got {output_size!r}"
        )
    return _batched(AdaptiveAvgPool2d((int(OH), int(OW))), input)
