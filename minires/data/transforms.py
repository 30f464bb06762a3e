"""torchvision's transforms: ``ToTensor``, ``Normalize``, ``Resize``, ``RandomCrop``, ``RandomHorizontalFlip``
and ``Compose``, for a whole batch at once or for one image.

As batch transforms (``DataLoader(..., transform=...)``), each is a callable ``t(x, rng)`` on a float
batch ``x`` of shape (B, C, H, W), a NumPy or CuPy array, returning the transformed batch; ``rng`` is a
``numpy.random.Generator`` (the DataLoader's) from which the random transforms draw one choice per image,
so a seeded loader replays exactly. torchvision applies its transforms image by image; here the same
per-image semantics run vectorized: no Python loop over the images of a batch. A callable of one's own,
in a ``Compose`` or as the loader's ``transform``, gets the generator only if it declares it: a second
positional parameter named ``rng`` or ``generator``, or one without a default (``takes_generator``);
any other is called ``t(x)``, so ``lambda x, scale=2.0: x * scale`` keeps its default.

As per-item transforms (torchvision's way: ``FashionMNIST(transform=Compose([ToTensor(),
Normalize((0.2860,), (0.3530,))]))``), each also takes one image ``t(x)``. minires's datasets give a
uint8 NumPy array where torchvision gives a PIL image (H x W, or H x W x C for CIFAR-10); ``ToTensor``
turns it into a float32 (C, H, W) array in [0, 1] as torchvision's does, and the others take a (C, H, W)
array. Without ``rng`` the random transforms draw from the generator the ``DataLoader`` sets for the batch
being loaded (so worker threads or not, a seeded loader gives the same batches), and outside a loader
from minires's generator (``mr.manual_seed``).
"""

from __future__ import annotations

import inspect
import numbers
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from .. import rng as _rng
from ..backend import get_array_module

Array = Any
_local = threading.local()


@contextmanager
def item_generator(generator: np.random.Generator) -> Iterator[None]:
    """Within the block, random transforms called without ``rng`` in this thread draw from ``generator``
    (the ``DataLoader`` sets one per batch while it loads that batch's items)."""
    previous = getattr(_local, "generator", None)
    _local.generator = generator
    try:
        yield
    finally:
        _local.generator = previous


def _draws(rng: np.random.Generator | None) -> np.random.Generator:
    """``rng``, or the loader's generator for this batch, or minires's generator."""
    if rng is not None:
        return rng
    current = getattr(_local, "generator", None)
    return current if current is not None else _rng.generator("cpu")


GENERATOR_NAMES = ("rng", "generator")


def takes_generator(fn: Any) -> bool:
    """Whether ``fn`` is called ``fn(x, rng)`` rather than ``fn(x)``: only when it declares the generator,
    by a second positional parameter named ``rng`` or ``generator`` (the transforms here, and a user's
    ``def t(x, rng): ...``), or one it must be given (no default). A second parameter with a default and
    another name (``lambda x, scale=2.0: x * scale``) keeps its default; a callable whose signature cannot
    be read (a builtin, a ufunc) is called with ``x`` alone."""
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return False
    positional = [
        p
        for p in signature.parameters.values()
        if p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    ]
    if len(positional) < 2:
        return False
    second = positional[1]
    return second.name in GENERATOR_NAMES or second.default is inspect.Parameter.empty


def _pair(value: int | Sequence[int], what: str) -> tuple[int, int]:
    if isinstance(value, numbers.Integral):
        return int(value), int(value)
    pair = tuple(int(v) for v in value)
    if len(pair) != 2:
        raise ValueError(f"{what}: expected an int or a pair (h, w), got {value!r}")
    return pair  # type: ignore[return-value]


def _as_batch(x: Array, what: str) -> tuple[Array, bool]:
    """``x`` as a batch, and whether it was one image (C, H, W) made a batch of one."""
    if x.ndim == 3:
        return x[None], True
    if x.ndim != 4:
        raise ValueError(
            f"{what}: expected an image of shape (C, H, W) or a batch of shape (B, C, H, W), "
            f"got shape {tuple(x.shape)}"
        )
    return x, False


class Compose:
    """Apply ``transforms`` in order: ``Compose([RandomCrop(28, 2), Normalize(mean, std)])``. Each is given
    the generator only if it declares it (``takes_generator``): ``lambda x: ...`` and
    ``lambda x, scale=2.0: ...`` are called ``t(x)``."""

    def __init__(self, transforms: Sequence[Any]) -> None:
        self.transforms = list(transforms)
        self._with_rng = [takes_generator(t) for t in self.transforms]

    def __call__(self, x: Array, rng: np.random.Generator | None = None) -> Array:
        for t, with_rng in zip(self.transforms, self._with_rng, strict=True):
            x = t(x, rng) if with_rng else t(x)
        return x

    def __repr__(self) -> str:
        return "Compose(" + ", ".join(repr(t) for t in self.transforms) + ")"


class ToTensor:
    """torchvision's ``ToTensor`` for one image as minires's datasets give it: a NumPy array (H, W) or
    (H, W, C) becomes (C, H, W); uint8 values become float32 in [0, 1] (``x / 255``, torchvision's
    division), any other dtype keeps its values and dtype, as torchvision does for such arrays. The
    ``DataLoader`` does the same to a whole uint8 batch by itself, so a batch pipeline needs no ToTensor."""

    def __call__(self, pic: Array, rng: np.random.Generator | None = None) -> np.ndarray:
        array = np.asarray(pic)
        if array.ndim == 2:
            array = array[:, :, None]  # (H, W, 1)
        elif array.ndim != 3:
            raise ValueError(
                f"ToTensor: expected an image of shape (H, W) or (H, W, C), got shape {array.shape}"
            )
        chw = array.transpose(2, 0, 1)  # (C, H, W), a view
        if array.dtype == np.uint8:
            return np.ascontiguousarray(chw, dtype=np.float32) / np.float32(255)
        return np.ascontiguousarray(chw)

    def __repr__(self) -> str:
        return "ToTensor()"


class Normalize:
    """``(x - mean[c]) / std[c]`` for each channel c, in the batch's dtype."""

    def __init__(self, mean: float | Sequence[float], std: float | Sequence[float]) -> None:
        self.mean = np.atleast_1d(np.asarray(mean, dtype=np.float64))
        self.std = np.atleast_1d(np.asarray(std, dtype=np.float64))
        if np.any(self.std == 0):
            raise ValueError(f"Normalize: std must be non-zero, got {self.std.tolist()}")

    def __call__(self, x: Array, rng: np.random.Generator | None = None) -> Array:
        x, single = _as_batch(x, "Normalize")
        xp = get_array_module(x)
        channels = x.shape[1]
        if len(self.mean) not in (1, channels) or len(self.std) not in (1, channels):
            raise ValueError(
                f"Normalize: mean and std need 1 or {channels} values for a batch of {channels} channels, "
                f"got {len(self.mean)} and {len(self.std)}"
            )
        mean = xp.asarray(self.mean.astype(x.dtype)).reshape(1, -1, 1, 1)  # (1, C, 1, 1)
        inv_std = xp.asarray((1.0 / self.std).astype(x.dtype)).reshape(1, -1, 1, 1)
        out = (x - mean) * inv_std
        return out[0] if single else out

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean.tolist()}, std={self.std.tolist()})"


def bilinear_matrix(in_size: int, out_size: int) -> np.ndarray:
    """The (out_size, in_size) matrix of bilinear interpolation along one axis, PyTorch's
    ``align_corners=False`` rule: output pixel o samples the input at ``src = (o + 0.5) * in/out - 0.5``
    (clamped at 0), weighting its two neighbours ``floor(src)`` and ``floor(src) + 1`` (clamped at the
    last pixel) by ``1 - frac`` and ``frac``."""
    scale = in_size / out_size
    src = np.maximum((np.arange(out_size) + 0.5) * scale - 0.5, 0.0)  # (out,)
    i0 = np.minimum(np.floor(src).astype(np.int64), in_size - 1)
    i1 = np.minimum(i0 + 1, in_size - 1)
    frac = src - i0
    matrix = np.zeros((out_size, in_size))
    np.add.at(matrix, (np.arange(out_size), i0), 1.0 - frac)
    np.add.at(matrix, (np.arange(out_size), i1), frac)
    return matrix


class Resize:
    """Bilinear resize, as ``torch.nn.functional.interpolate(x, size, mode="bilinear", align_corners=False)``
    (no antialiasing, so equal to torchvision's ``Resize`` when enlarging, as the d2l recipe's 28 -> 96).

    ``size`` a pair (h, w), or an int: the smaller edge becomes ``size`` and the aspect ratio is kept, as
    torchvision does. Separable, so the whole batch is two matrix products: ``A_h @ x @ A_w.T``.
    """

    def __init__(self, size: int | Sequence[int]) -> None:
        self.size = size if isinstance(size, numbers.Integral) else _pair(size, "Resize")
        self._matrices: dict[tuple[int, int, str, Any], tuple[Array, Array]] = {}

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        if not isinstance(self.size, numbers.Integral):
            return self.size
        short, long = min(height, width), max(height, width)
        other = int(self.size * long / short)
        return (self.size, other) if height <= width else (other, self.size)

    def __call__(self, x: Array, rng: np.random.Generator | None = None) -> Array:
        x, single = _as_batch(x, "Resize")
        xp = get_array_module(x)
        height, width = x.shape[2:]
        out_h, out_w = self.output_size(height, width)
        key = (height, width, x.dtype.str, xp)
        if key not in self._matrices:
            a_h = xp.asarray(bilinear_matrix(height, out_h).astype(x.dtype))  # (OH, H)
            a_w_t = xp.asarray(bilinear_matrix(width, out_w).T.astype(x.dtype))  # (W, OW)
            self._matrices[key] = (a_h, a_w_t)
        a_h, a_w_t = self._matrices[key]
        out = xp.matmul(xp.matmul(a_h, x), a_w_t)  # (B, C, OH, W) -> (B, C, OH, OW)
        return out[0] if single else out

    def __repr__(self) -> str:
        return f"Resize({self.size})"


class RandomCrop:
    """torchvision's ``RandomCrop(size, padding)``: zero-pad each side by ``padding``, then cut a
    ``size`` window at a uniformly drawn offset, a different one for each image."""

    def __init__(self, size: int | Sequence[int], padding: int = 0) -> None:
        self.size = _pair(size, "RandomCrop")
        if padding < 0:
            raise ValueError(f"RandomCrop: padding must be >= 0, got {padding}")
        self.padding = int(padding)

    def __call__(self, x: Array, rng: np.random.Generator | None = None) -> Array:
        x, single = _as_batch(x, "RandomCrop")
        rng = _draws(rng)
        xp = get_array_module(x)
        p = self.padding
        batch, channels, height, width = x.shape
        crop_h, crop_w = self.size
        if crop_h > height + 2 * p or crop_w > width + 2 * p:
            raise ValueError(
                f"RandomCrop: crop {self.size} is larger than the padded image "
                f"({height + 2 * p}, {width + 2 * p})"
            )
        padded = xp.pad(x, ((0, 0), (0, 0), (p, p), (p, p))) if p else x  # (B, C, H+2p, W+2p)
        top = xp.asarray(rng.integers(0, height + 2 * p - crop_h + 1, size=batch))  # (B,)
        left = xp.asarray(rng.integers(0, width + 2 * p - crop_w + 1, size=batch))
        rows = top[:, None] + xp.arange(crop_h)  # (B, crop_h)
        cols = left[:, None] + xp.arange(crop_w)  # (B, crop_w)
        b = xp.arange(batch)[:, None, None, None]
        c = xp.arange(channels)[None, :, None, None]
        out = padded[b, c, rows[:, None, :, None], cols[:, None, None, :]]  # (B, C, crop_h, crop_w)
        return out[0] if single else out

    def __repr__(self) -> str:
        return f"RandomCrop({self.size}, padding={self.padding})"


class RandomHorizontalFlip:
    """Mirror each image left to right with probability ``p``, drawn independently per image."""

    def __init__(self, p: float = 0.5) -> None:
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"RandomHorizontalFlip: p must lie in [0, 1], got {p}")
        self.p = float(p)

    def __call__(self, x: Array, rng: np.random.Generator | None = None) -> Array:
        x, single = _as_batch(x, "RandomHorizontalFlip")
        xp = get_array_module(x)
        flip = xp.asarray(_draws(rng).random(x.shape[0]) < self.p)[:, None, None, None]  # (B, 1, 1, 1)
        out = xp.where(flip, x[..., ::-1], x)
        return out[0] if single else out

    def __repr__(self) -> str:
        return f"RandomHorizontalFlip(p={self.p})"
