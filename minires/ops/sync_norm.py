"""Synchronized batch normalization: batch statistics taken over the batches of every rank, as if the ranks'
batches were one (``nn.SyncBatchNorm``'s op; the one-process math is ``BatchNorm`` in ``norm.py``).

The op talks to the other ranks through one callable, ``all_reduce(a)``: it replaces the array ``a`` in
place by its sum over the ranks (``minires.distributed.all_reduce``). ``None`` means one rank, and then
the op computes exactly what ``BatchNorm`` computes in training.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from typing import Any

import numpy as np

from ..backend import get_array_module
from ..errors import DTypeError, ShapeError
from ..function import Function
from ..tensor import Tensor
from .args import check_vector
from .norm import _channel_dot, normalize

AllReduce = Callable[[Any], Any]  # a -> None, a replaced in place by its sum over the ranks


def _one_rank(a: Any) -> None:
    """The all-reduce of a world of one rank: the sum over one rank is the array itself."""


class SyncBatchNorm(Function):
    r"""Training-mode batch normalization over the union of the ranks' batches.
    y = gamma * x_hat + beta,  x_hat = (x - mu) * inv_std,  inv_std = 1 / sqrt(var + eps),
    per channel c, where mu and the biased var are taken over all m = sum_r m_r values of channel c on all
    ranks (rank r holds m_r = N_r * prod(spatial) of them; the N_r may differ):

        mu  = (sum_r sum_{i in r} x_i) / m                  all-reduce 1: the C sums and the count m_r
        var = (sum_r sum_{i in r} (x_i - mu)^2) / m          all-reduce 2: the C sums of squares

    Each rank weighs in by its count, so the statistics are those of one process holding every batch; two
    passes (the mean first) keep var free of cancellation, as in BatchNorm. The running estimates are
    updated on every rank with the same global mu and the unbiased var * m / (m - 1).

    Backward. Let L = sum_r L_r be the sum of the ranks' losses; rank r has g = dL_r/dy for its own y.
    L_r depends on gamma and beta only through the rank's own y, so each rank returns its share
        dbeta = sum_{i in r} g_i,   dgamma = sum_{i in r} g_i * x_hat_i,
    and the all-reduce of DistributedDataParallel averages the shares (sum, then / R: every gradient is
    then that of the ranks' mean loss L / R, consistently, the layers below included).
    But L_r depends on every rank's x through mu and var: as in BatchNorm,
    dx_hat_i/dx_j = inv_std (delta_ij - 1/m - x_hat_i x_hat_j / m) for any two values i, j of the channel,
    on whatever ranks. Summing g_i * gamma * dx_hat_i/dx_j over
    all i of all ranks gives, for x_j on this rank,
        dx_j = gamma * inv_std * (g_j - G / m - x_hat_j * H / m),   G = sum_r sum_{i in r} g_i,
                                                                     H = sum_r sum_{i in r} g_i x_hat_i,
    the gradient of L (all ranks' losses) with respect to this rank's x_j. G and H are the two local sums
    above, all-reduced together: the backward costs one all-reduce of 2C numbers. With one rank, G and H
    are the local sums and this is BatchNorm's backward.
    gamma, beta None (affine=False) mean gamma = 1, beta = 0 and no parameter gradients.
    Shapes: x, y (N_r, C, *) on rank r; gamma, beta, running_mean, running_var (C,).
    """

    saved = ("axes", "bshape", "m", "gamma", "inv_std", "x_hat")

    def __init__(
        self,
        running_mean: Any | None,
        running_var: Any | None,
        momentum: float,
        eps: float,
        all_reduce: AllReduce | None,
    ) -> None:
        self.running_mean, self.running_var = running_mean, running_var  # raw arrays, updated in place
        self.momentum, self.eps = momentum, eps
        self.all_reduce = _one_rank if all_reduce is None else all_reduce

    def forward(self, x: Any, gamma: Any | None, beta: Any | None) -> Any:
        xp = get_array_module(x)
        C = x.shape[1]
        axes = (0,) + tuple(range(2, x.ndim))  # every axis but the channel axis
        bshape = (1, C) + (1,) * (x.ndim - 2)  # (1, C, 1, ..., 1)
        # The sums travel in float64: a float32 count is exact only up to 2**24 values per channel.
        sums = xp.empty(C + 1, dtype=np.float64)  # (C + 1,): the C sums of x, then the count m_r
        sums[:C] = x.sum(axis=axes)
        sums[C] = x.size // C if C else 0
        self.all_reduce(sums)
        m = int(round(float(sums[C])))
        if m == 1:
            raise ValueError(
                "sync_batch_norm: Expected more than 1 value per channel when training, got 1 value over all "
                f"ranks (the input of this rank has shape {x.shape})"
            )
        inv_m = 1.0 / max(m, 1)  # no value on any rank gives mu = var = 0 rather than 0/0
        mu = (sums[:C] * inv_m).astype(x.dtype).reshape(bshape)  # (1, C, 1, ..., 1)
        x_hat = x - mu  # (N_r, C, *)
        squares = _channel_dot(x_hat, x_hat).astype(np.float64)  # (C,)
        self.all_reduce(squares)
        var = (squares * inv_m).astype(x.dtype).reshape(bshape)  # biased, over all ranks
        inv_std = 1 / xp.sqrt(var + self.eps)
        x_hat *= inv_std
        if self.running_mean is not None and m > 0:
            momentum, rm, rv = self.momentum, self.running_mean, self.running_var
            rm *= 1 - momentum
            rm += momentum * mu.reshape(C)
            rv *= 1 - momentum
            rv += momentum * var.reshape(C) * (m / max(m - 1, 1))  # unbiased
        self.axes, self.bshape, self.m = axes, bshape, m
        self.gamma, self.inv_std, self.x_hat = gamma, inv_std, x_hat
        return normalize(x, mu, inv_std, gamma, beta)  # BatchNorm's formula for y

    def backward(self, g: Any) -> tuple[Any, Any, Any]:
        xp = get_array_module(g)
        need_dx, need_dgamma, need_dbeta = self.needs_input_grad
        C, x_hat, gamma = self.bshape[1], self.x_hat, self.gamma
        g_sum = g.sum(axis=self.axes)  # (C,), this rank's share of G
        gx_hat_sum = _channel_dot(g, x_hat)  # (C,), this rank's share of H
        dx = None
        if need_dx:
            both = xp.concatenate([g_sum, gx_hat_sum]).astype(np.float64)  # (2C,)
            self.all_reduce(both)  # G, H over all ranks
            inv_m = 1.0 / max(self.m, 1)
            G = (both[:C] * inv_m).astype(g.dtype).reshape(self.bshape)  # G / m
            H = (both[C:] * inv_m).astype(g.dtype).reshape(self.bshape)  # H / m
            scale = self.inv_std if gamma is None else gamma.reshape(self.bshape) * self.inv_std
            dx = x_hat * -H  # - x_hat * H / m
            dx += g
            dx -= G  # - G / m
            dx *= scale  # gamma * inv_std * (...)
        dgamma = gx_hat_sum if need_dgamma else None
        dbeta = g_sum if need_dbeta else None
        return dx, dgamma, dbeta


def sync_batch_norm(
    input: Tensor,  # noqa: A002 - PyTorch's name
    running_mean: Tensor | None,
    running_var: Tensor | None,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    momentum: float = 0.1,
    eps: float = 1e-5,
    all_reduce: AllReduce | None = None,
) -> Tensor:
    """Training-mode batch normalization of ``input`` (N, C, *) with the statistics of every rank's batch
    (see ``SyncBatchNorm``). ``all_reduce(a)`` sums an array over the ranks in place; None is one rank, where
    this equals ``F.batch_norm(..., training=True)``. The running estimates, when given, are updated in
    place with the global statistics."""
    if not isinstance(input, Tensor):
        raise TypeError(f"sync_batch_norm: expected input to be a Tensor, got {type(input).__name__}")
    if input.ndim < 2:
        raise ShapeError(
            f"sync_batch_norm: expected input of at least 2 dimensions (N, C, *), got shape {input.shape}"
        )
    if input.dtype.kind != "f":
        raise DTypeError(f"sync_batch_norm: expected a floating-point input, got {input.dtype}")
    if momentum is None or isinstance(momentum, bool) or not isinstance(momentum, numbers.Real):
        raise TypeError(f"sync_batch_norm: momentum must be a float, got {momentum!r}")
    if (running_mean is None) != (running_var is None):
        raise ValueError(
            "sync_batch_norm: running_mean and running_var must either both be None or both be given"
        )
    if all_reduce is not None and not callable(all_reduce):
        raise TypeError(f"sync_batch_norm: all_reduce must be callable, got {type(all_reduce).__name__}")
    for name, t in (
        ("running_mean", running_mean),
        ("running_var", running_var),
        ("weight", weight),
        ("bias", bias),
    ):
        check_vector("sync_batch_norm", name, t, input.shape[1], input)
    op = SyncBatchNorm(
        None if running_mean is None else running_mean.data,
        None if running_var is None else running_var.data,
        float(momentum),
        float(eps),
        all_reduce,
    )
    return op(input, weight, bias)
