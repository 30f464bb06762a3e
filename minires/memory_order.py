"""How an (N, C, *spatial) array lies in memory, and elementwise work that follows it: NCHW (C-contiguous)
or channels-last (NHWC memory viewed as NCHW: PyTorch's channels_last format, which the channels-last and
Winograd convolutions give). A ufunc over operands in two different orders walks one of them against its
grain: NumPy's inner loop runs along the output's fastest axis, reading the other operand with a stride
of C or H*W values, and it cannot vectorize. ``in_order_of`` copies one operand over first (``copy_into``:
on the threads);
``row_order``, ``per_row``, ``as_rows`` and ``from_rows`` let per-channel work run over whole rows."""

from __future__ import annotations

from typing import Any

from .backend import get_array_module
from .threads import each_chunk


def same_order(a: Any, b: Any) -> bool:
    """a and b, of one shape, lie in memory in the same order of axes: by the size of their steps, whatever
    their sign, over the axes longer than 1 (a channel axis of 1 makes NCHW and NHWC the same memory) that
    step at all (a broadcast axis, of step 0, has no place in the order)."""
    if a.shape != b.shape:
        return False

    def order(x: Any) -> list[int]:
        axes = (i for i in range(x.ndim) if x.shape[i] > 1 and x.strides[i] != 0)
        return sorted(axes, key=lambda i: (-abs(x.strides[i]), i))

    return order(a) == order(b)


def broadcast(a: Any) -> bool:
    """a repeats its values along some axis (a step of 0: ``broadcast_to``, ``expand``)."""
    return any(step == 0 and n > 1 for step, n in zip(a.strides, a.shape, strict=True))


def in_order_of(a: Any, like: Any) -> Any:
    """a itself when it lies in memory as ``like`` (of a's shape) does, else a copy of it in like's memory
    order, a batch chunk at a time on minires's threads. A ReLU's backward, g (NCHW, from a strided conv's
    dx) times the mask of y (channels-last), took 393 us on (16, 32, 14, 14) float32 at once and 49 with
    g copied over first (AVX-512): NumPy buffers the bool mask's cast against the grain. Where the
    layouts match, or where either repeats its values (a broadcast view, read cheaply in any order), it
    changes nothing."""
    if a.ndim < 2 or a.size == 0 or broadcast(a) or broadcast(like) or same_order(a, like):
        return a
    return copy_into(get_array_module(a).empty_like(like, dtype=a.dtype), a)


def ufunc_in_order(ufunc: Any, a: Any, b: Any, out: Any, **kwargs: Any) -> Any:
    """out = ufunc(a, b) for a, b and out of one shape (out laid out as a, or a itself), a batch chunk at a
    time on minires's threads, b of the other memory order copied into a's first (``in_order_of``); returns
    out. The residual sum (ops/elementwise.py ``Add``) and an in-place update outside the graph
    (tensor.py) go through it."""
    b = in_order_of(b, a)
    each_chunk(get_array_module(out), lambda c: ufunc(a[c], b[c], out=out[c], **kwargs), out)
    return out


def copy_into(out: Any, a: Any) -> Any:
    """out[...] = a (one shape), a chunk of the first axis at a time on minires's threads; returns out.
    A copy from one memory order into another (a transpose) runs NumPy's strided loop, about 1 ns a value
    (a 512x512 3x3 kernel's taps put channels last: 2.4 ms): on the threads, half that on two cores."""
    xp = get_array_module(out)

    def copy(c: Any) -> None:
        out[c] = a[c]

    each_chunk(xp, copy, out)
    return out


def _last(a: Any) -> Any:
    """a (N, C, *spatial) with its channel axis moved last, (N, *spatial, C): a view."""
    return a.transpose(0, *range(2, a.ndim), 1)


def row_order(*arrays: Any) -> str | None:
    """How per-channel elementwise work on these (N, C, *spatial) arrays goes row by row: "first" when
    all of them are C-contiguous (NCHW), "last" when all are channels-last views (NHWC memory, as the
    channels-last and Winograd convolutions give), None otherwise (or without a spatial part or values).
    Broadcasting a (1, C, 1, 1) array against NCHW makes NumPy's inner loop one channel's S spatial
    values, restarted N*C times, and against NHWC one pixel's C channels, restarted N*S times; as (N, C*S)
    rows against a (C*S,) row (``per_row``) the loop runs over whole rows: measured 1.7-2.2x faster for
    NCHW (float32, 1 MiB chunks, 7x7 to 28x28 images, AVX2), and for NHWC 1.3-2x with 16 to 64 channels
    (a batch norm's forward and backward, AVX-512)."""
    if not all(a.ndim > 2 and a.size > 0 for a in arrays):
        return None
    if all(a.flags.c_contiguous for a in arrays):
        return "first"
    if all(_last(a).flags.c_contiguous for a in arrays):
        return "last"
    return None


def channel_rows(*arrays: Any) -> str | None:
    """``row_order`` for per-channel elementwise work on these arrays (batch norm's passes): None, the
    broadcast, for a batch of one image, where the (C*S,) row vectors (``per_row``) cost as much to make
    as the pass over the image itself. Measured (batch norm's forward with a residual and the ReLU, one
    image, float32, 7x7 to 96x96, 16 to 512 channels, AVX-512): the broadcast took 0.48-0.84 of the time
    by rows in every shape and layout but one (64 channels of 96x96 channels last, 1.06); with 2 images
    0.58-1.56, from 4 images the rows mostly win."""
    if arrays and arrays[0].ndim > 0 and arrays[0].shape[0] == 1:
        return None
    return row_order(*arrays)


def per_row(v: Any, x: Any, order: str | None) -> Any:
    """A per-channel (1, C, 1, ..., 1) array as it meets a row of x: (C*S,), each channel's value repeated
    over its S spatial positions ("first") or the C values repeated S times ("last"); else v itself
    (broadcast)."""
    xp = get_array_module(v)
    if order == "first":
        return xp.repeat(v.reshape(-1), x[0].size // x.shape[1])  # (C*S,)
    if order == "last":
        return xp.tile(v.reshape(-1), x[0].size // x.shape[1])  # (S*C,)
    return v


def as_rows(a: Any, order: str | None) -> Any:
    """A chunk of an (N, C, *spatial) array as (n, C*S) rows in its memory order (a view: the chunk is
    contiguous in that order) when ``order``; else the chunk itself."""
    if order == "first":
        return a.reshape(a.shape[0], -1)
    if order == "last":
        return _last(a).reshape(a.shape[0], -1)
    return a


def from_rows(r: Any, like: Any, order: str | None) -> Any:
    """Rows made by ``as_rows`` (or shaped like them) back as an array shaped like ``like`` (a view)."""
    if order == "last":
        return r.reshape(_last(like).shape).transpose(0, like.ndim - 1, *range(1, like.ndim - 1))
    return r.reshape(like.shape)
