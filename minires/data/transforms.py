"""Batch transforms: torchvision's ``Normalize``, ``Resize``, ``RandomCrop`` and ``RandomHorizontalFlip``,
applied to a whole batch at once.

Each transform is a callable ``t(x, rng)`` on a float batch ``x`` of shape (B, C, H, W), a NumPy or
CuPy array, returning the transformed batch; ``rng`` is a ``numpy.random.Generator`` (the DataLoader's)
from which the random transforms draw one choice per image, so a seeded loader replays exactly.
torchvision applies its transforms image by image; here the same per-image semantics run vectorized:
no Python loop over the images of a batch.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..backend import get_array_module

Array = Any


def _pair(value: int | Sequence[int], what: str) -> tuple[int, int]:
    if isinstance(value, numbers.Integral):
        return int(value), int(value)
    pair = tuple(int(v) for v in value)
    if len(pair) != 2:
        raise ValueError(f"{what}: expected an int or a pair (h, w), got {value!r}")
    return pair  # type: ignore[return-value]


def _check_batch(x: Array, what: str) -> None:
    if x.ndim != 4:
        raise ValueError(f"{what}: expected a batch of shape (B, C, H, W), got shape {tuple(x.shape)}")


class Compose:
    """Apply ``transforms`` in order: ``Compose([RandomCrop(28, 2), Normalize(mean, std)])``."""

    def __init__(self, transforms: Sequence[Any]) -> None:
        self.transforms = list(transforms)

    def __call__(self, x: Array, rng: np.random.Generator) -> Array:
        for t in self.transforms:
            x = t(x, rng)
        return x

    def __repr__(self) -> str:
        return "Compose(" + ", ".join(repr(t) for t in self.transforms) + ")"


class Normalize:
    """``(x - mean[c]) / std[c]`` for each channel c, in the batch's dtype."""

    def __init__(self, mean: float | Sequence[float], std: float | Sequence[float]) -> None:
        self.mean = np.atleast_1d(np.asarray(mean, dtype=np.float64))
        self.std = np.atleast_1d(np.asarray(std, dtype=np.float64))
        if np.any(self.std == 0):
            raise ValueError(f"Normalize: std must be non-zero, got {self.std.tolist()}")

    def __call__(self, x: Array, rng: np.random.Generator | None = None) -> Array:
        _check_batch(x, "Normalize")
        xp = get_array_module(x)
        channels = x.shape[1]
        if len(self.mean) not in (1, channels) or len(self.std) not in (1, channels):
            raise ValueError(
                f"Normalize: mean and std need 1 or {channels} values for a batch of {channels} channels, "
                f"got {len(self.mean)} and {len(self.std)}"
            )
        mean = xp.asarray(self.mean.astype(x.dtype)).reshape(1, -1, 1, 1)  # (1, C, 1, 1)
        inv_std = xp.asarray((1.0 / self.std).astype(x.dtype)).reshape(1, -1, 1, 1)
        return (x - mean) * inv_std

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
        _check_batch(x, "Resize")
        xp = get_array_module(x)
        height, width = x.shape[2:]
        out_h, out_w = self.output_size(height, width)
        key = (height, width, x.dtype.str, xp)
        if key not in self._matrices:
            a_h = xp.asarray(bilinear_matrix(height, out_h).astype(x.dtype))  # (OH, H)
            a_w_t = xp.asarray(bilinear_matrix(width, out_w).T.astype(x.dtype))  # (W, OW)
            self._matrices[key] = (a_h, a_w_t)
        a_h, a_w_t = self._matrices[key]
        return xp.matmul(xp.matmul(a_h, x), a_w_t)  # (B, C, OH, W) -> (B, C, OH, OW)

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

    def __call__(self, x: Array, rng: np.random.Generator) -> Array:
        _check_batch(x, "RandomCrop")
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
        return padded[b, c, rows[:, None, :, None], cols[:, None, None, :]]  # (B, C, crop_h, crop_w)

    def __repr__(self) -> str:
        return f"RandomCrop({self.size}, padding={self.padding})"


class RandomHorizontalFlip:
    """Mirror each image left to right with probability ``p``, drawn independently per image."""

    def __init__(self, p: float = 0.5) -> None:
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"RandomHorizontalFlip: p must lie in [0, 1], got {p}")
        self.p = float(p)

    def __call__(self, x: Array, rng: np.random.Generator) -> Array:
        _check_batch(x, "RandomHorizontalFlip")
        xp = get_array_module(x)
        flip = xp.asarray(rng.random(x.shape[0]) < self.p)[:, None, None, None]  # (B, 1, 1, 1)
        return xp.where(flip, x[..., ::-1], x)

    def __repr__(self) -> str:
        return f"RandomHorizontalFlip(p={self.p})"
