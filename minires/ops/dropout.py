"""Inverted dropout: zero each element with probability p and scale the survivors by 1 / (1 - p)."""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from .. import rng
from ..backend import device_of
from ..errors import DTypeError
from ..function import Function
from ..tensor import Tensor


class Dropout(Function):
    r"""y = x * mask / (1 - p),  mask_i ~ Bernoulli(1 - p) independently (1: keep, 0: drop), drawn from
    minires's seeded generator for x's device. The scale keeps E[y_i] = x_i, so nothing changes at eval
    time. p = 1 drops everything: y = x * 0 (the scale is taken as 0, never 1/0).

    Backward: y_i is x_i times the constant mask_i / (1 - p), so dx = g * mask / (1 - p): the gradient flows
    only through the kept elements, scaled as they were. Only the boolean mask is saved.
    Shapes: x, y, mask (*).
    """

    saved = ("mask", "scale")

    def __init__(self, p: float) -> None:
        self.p = p

    def forward(self, x: Any) -> Any:
        gen = rng.generator(device_of(x))
        u = gen.random(x.shape, dtype=np.float32)  # uniform in [0, 1)
        self.mask = u >= self.p  # P(keep) = 1 - p
        self.scale = 1.0 / (1.0 - self.p) if self.p < 1 else 0.0
        y = x * self.mask
        y *= self.scale
        return y

    def backward(self, g: Any) -> Any:
        dx = g * self.mask
        dx *= self.scale
        return dx


def dropout(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:  # noqa: A002
    """Inverted dropout as torch.nn.functional.dropout; the identity (``input`` itself) when not training
    or when p == 0. ``inplace`` is accepted for PyTorch compatibility and gives the same values, out of place.
    """
    if isinstance(p, bool) or not isinstance(p, numbers.Real):
        raise TypeError(f"dropout: p must be a float, got {p!r}")
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout: dropout probability has to be between 0 and 1, but got {p}")
    if not isinstance(input, Tensor):
        raise TypeError(f"dropout: expected input to be a Tensor, got {type(input).__name__}")
    if input.dtype.kind != "f":
        raise DTypeError(f"dropout: expected a floating-point input, got {input.dtype}")
    if not training or p == 0:
        return input
    return Dropout(float(p))(input)
