"""Normalization: batch normalization (per channel, over the batch, with PyTorch's running statistics) and
group normalization (per sample, over groups of channels)."""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from ..backend import get_array_module
from ..errors import DTypeError, ShapeError
from ..function import Function
from ..memory_order import as_rows, channel_rows, from_rows, in_order_of, per_row
from ..tensor import Tensor
from ..threads import each_chunk, sum_in_order
from .args import check_like, check_vector


def _channel_dot(a: Any, b: Any) -> Any:
    """sum over every axis but axis 1 of a * b, shape (C,). NumPy's einsum does it without making the
    array a * b, reading a and b in whatever memory layout they have (channels-last views included).
    CuPy's einsum would copy both inputs into a GEMM layout first; there the product and one reduction
    over it (two kernels, one temporary of a's size, no copy of the inputs) are the cheaper way."""
    xp = get_array_module(a)
    if xp is not np:
        return (a * b).sum(axis=(0, *range(2, a.ndim)))  # (C,)
    axes = _einsum_axes(a)
    return np.einsum(f"{axes},{axes}->c", a, b)  # (C,)


def _channel_sum(a: Any) -> Any:
    """sum over every axis but axis 1 of a, shape (C,): NumPy's einsum, measured 1.7-2.5x faster than
    ``a.sum(axis=(0, 2, 3))`` on a batch chunk (float32, 1 MiB, 7x7 to 28x28 images, AVX2; the same
    float32 error against a float64 sum), which reduces over the outer and inner axes in two sweeps.
    CuPy's sum is one kernel already."""
    xp = get_array_module(a)
    if xp is not np:
        return a.sum(axis=(0, *range(2, a.ndim)))  # (C,)
    return np.einsum(f"{_einsum_axes(a)}->c", a)  # (C,)


def _einsum_axes(a: Any) -> str:
    """einsum's subscripts for an (N, C, *spatial) array: "nchw" for (N, C, H, W), "nc" for (N, C)."""
    return "nc" + "hwdefgijkl"[: a.ndim - 2]


def normalize(
    x: Any,
    mu: Any,
    inv_std: Any,
    gamma: Any | None,
    beta: Any | None,
    residual: Any | None = None,
    relu: bool = False,
) -> Any:
    """y = gamma * (x - mu) * inv_std + beta per channel, computed as y = x * scale + shift with
    scale = gamma * inv_std and shift = beta - mu * scale (two passes over x; PyTorch's CPU kernel does the
    same), a batch chunk at a time on the CPU's threads. y has x's memory order (channels last stays so).
    ``residual`` (an array of x's shape, in x's memory order) is added to y, and ``relu`` clips y at 0, each
    while the chunk is in the cache (``BatchNormReLU``).
    Shapes: x (N, C, *); mu, inv_std (1, C, 1, ..., 1); gamma, beta (C,) or None (1 and 0)."""
    xp = get_array_module(x)
    bshape = mu.shape
    scale = inv_std if gamma is None else gamma.reshape(bshape) * inv_std  # (1, C, 1, ..., 1)
    shift = -mu * scale if beta is None else beta.reshape(bshape) - mu * scale
    y = xp.empty_like(x)
    rows = channel_rows(x) if residual is None else channel_rows(x, residual)
    scale, shift = per_row(scale, x, rows), per_row(shift, x, rows)

    def affine(c: Any) -> None:
        y_c = as_rows(y[c], rows)
        xp.multiply(as_rows(x[c], rows), scale, out=y_c)
        y_c += shift
        if residual is not None:
            y_c += as_rows(residual[c], rows)
        if relu:  # clip to [0, inf], as relu_into (activation.py): keeps NaN and -0.0 as PyTorch does
            xp.clip(y_c, 0, xp.inf, out=y_c)

    each_chunk(xp, affine, x)
    return y


class BatchNorm(Function):
    r"""y = gamma * x_hat + beta,  x_hat = (x - mu) * inv_std,  inv_std = 1 / sqrt(var + eps),
    per channel c, over the m = N * prod(spatial) values x[:, c, ...] of that channel.

    Training: mu and var are the batch mean and the biased batch variance (1/m) sum (x - mu)^2, computed in
    two passes (mean first, then the mean of the squared deviations: no cancellation). The running
    estimates, when given, are updated in place with the unbiased variance var * m / (m - 1):
        running = (1 - momentum) * running + momentum * batch_stat.
    Eval: mu and var are the running estimates, constants of the graph.
    Either way y is computed as x * scale + shift (``normalize``), with per channel scale = gamma * inv_std
    and shift = beta - mu * scale: the same function, two passes over x instead of four.

    Backward, with g = dL/dy and sums/means over the m values of a channel:
        dbeta = sum(g),   dgamma = sum(g * x_hat),   because dy/dbeta = 1 and dy/dgamma = x_hat.
        Eval: mu and inv_std are constants, so dx = gamma * inv_std * g.
        Training: mu and inv_std depend on every x_j of the channel. With dL/dx_hat_i = gamma g_i and
            dx_hat_i/dx_j = inv_std (delta_ij - 1/m) - (x_i - mu) inv_std^3 (1/2) dvar/dx_j,
            dvar/dx_j = (2/m) (x_j - mu) (the term from dmu/dx_j sums to zero),
        so dx_hat_i/dx_j = inv_std (delta_ij - 1/m - x_hat_i x_hat_j / m), and summing over i:
            dx_j = gamma * inv_std * (g_j - mean(g) - x_hat_j * mean(g * x_hat)).
    x_hat is not kept: backward works from x (kept instead, the same size), a batch chunk at a time, with
    sum(g * x_hat) = inv_std * sum(g * (x - mu)) and x_hat_j * mean(g * x_hat) = (x_j - mu) * inv_std * (...).
    gamma, beta None (affine=False) mean gamma = 1, beta = 0 and no parameter gradients.

    On the CPU every pass runs a batch chunk at a time on minires's threads (threads.each_chunk): the
    channel sums are taken per chunk and added in chunk order, and a chunk stays in the cache between the
    passes over it. On the GPU each pass is one kernel over the whole batch.
    Shapes: x, y (N, C, *); gamma, beta, running_mean, running_var (C,).
    """

    saved = ("bshape", "m", "gamma", "inv_std", "x", "mu")

    def __init__(
        self,
        running_mean: Any | None,
        running_var: Any | None,
        training: bool,
        momentum: float,
        eps: float,
    ) -> None:
        self.running_mean, self.running_var = running_mean, running_var  # raw arrays, updated in place
        self.training, self.momentum, self.eps = training, momentum, eps

    def forward(self, x: Any, gamma: Any | None, beta: Any | None) -> Any:
        self.gamma = gamma
        mu, inv_std = self._statistics(x)
        return normalize(x, mu, inv_std, gamma, beta)

    def _statistics(self, x: Any) -> tuple[Any, Any]:
        """mu and inv_std (each (1, C, 1, ..., 1)) for y: the batch's (training, the running estimates
        updated) or the running estimates (eval); sets what backward needs."""
        xp = get_array_module(x)
        C = x.shape[1]
        bshape = (1, C) + (1,) * (x.ndim - 2)  # (1, C, 1, ..., 1): a (C,) vector broadcast against x
        m = x.size // C if C else 0
        self.bshape, self.m = bshape, m
        if self.training:
            inv_m = 1.0 / max(m, 1)  # an empty batch gives mu = var = 0 rather than 0/0
            mu = sum_in_order(each_chunk(xp, lambda c: _channel_sum(x[c]), x)).reshape(bshape) * inv_m

            rows = channel_rows(x)
            mu_row = per_row(mu, x, rows)

            def squared_deviations(c: slice) -> Any:  # sum over the chunk of (x - mu)^2, per channel
                d = from_rows(as_rows(x[c], rows) - mu_row, x[c], rows)
                return _channel_dot(d, d)  # (C,)

            var = sum_in_order(each_chunk(xp, squared_deviations, x)).reshape(bshape) * inv_m  # biased
            inv_std = 1 / xp.sqrt(var + self.eps)  # (1, C, 1, ..., 1)
            if self.running_mean is not None and m > 0:
                self._update_running(mu.reshape(C), var.reshape(C) * (m / max(m - 1, 1)))
            self.x, self.mu = x, mu
        else:
            mu = self.running_mean.reshape(bshape)
            inv_std = 1 / xp.sqrt(self.running_var.reshape(bshape) + self.eps)
            if self.needs_input_grad[1]:  # x_hat is rebuilt in backward only when dgamma is wanted
                self.x, self.mu = x, mu.copy()  # a copy: the running mean may change before backward
        self.inv_std = inv_std
        return mu, inv_std

    def _update_running(self, mu: Any, var_unbiased: Any) -> None:
        rm, rv, momentum = self.running_mean, self.running_var, self.momentum
        rm *= 1 - momentum
        rm += momentum * mu
        rv *= 1 - momentum
        rv += momentum * var_unbiased

    def backward(self, g: Any) -> tuple[Any, Any, Any]:
        return self._backward(g)[:3]

    def _backward(self, g: Any, z: Any | None = None) -> tuple[Any, Any, Any, Any]:
        """(dx, dgamma, dbeta, g_y): the gradients of the inputs the graph asked for (None for the others)
        and the gradient g_y = dL/dy of the batch norm's own output y: g itself, or, with ``z`` (the output
        of a ReLU after y, BatchNormReLU), g * [z > 0], made chunk by chunk in the passes that use it."""
        xp = get_array_module(g)
        C, inv_std = self.bshape[1], self.inv_std
        need_dx, need_dgamma, need_dbeta = self.needs_input_grad[:3]
        gamma = self.gamma
        scale = inv_std if gamma is None else gamma.reshape(self.bshape) * inv_std  # (1, C, 1, ..., 1)
        dx = dgamma = dbeta = None
        if z is not None:
            g = in_order_of(g, z)  # z is in x's memory order (normalize)
            g_y = xp.empty_like(z)

            def mask(c: Any) -> Any:  # the chunk of g_y = g * [z > 0]
                return xp.multiply(g[c], z[c] > 0, out=g_y[c])

            if not self.training or not (need_dx or need_dgamma or need_dbeta):
                each_chunk(xp, mask, z)
                g = g_y  # eval: the terms below are single passes over g_y; or g_y is all that is asked
                if not (need_dx or need_dgamma or need_dbeta):
                    return dx, dgamma, dbeta, g_y
        if self.training:
            x, mu = self.x, self.mu
            g = in_order_of(g, x)  # so that both go by rows (a g of the other layout is copied over)
            rows = channel_rows(x, g)
            mu_row = per_row(mu, x, rows)

            # x - mu goes where dx will be (dx is made from it in place), else to a temporary per chunk
            x_mu = xp.empty_like(x) if need_dx else None

            def channel_sums(c: slice) -> tuple[Any, Any]:  # sum(g) and sum(g * (x - mu)) over the chunk
                x_mu_c = xp.subtract(
                    as_rows(x[c], rows), mu_row, out=None if x_mu is None else as_rows(x_mu[c], rows)
                )
                g_c = g[c] if z is None else mask(c)  # the mask made here, where the chunk is read anyway
                g_sum_c = _channel_sum(g_c).reshape(self.bshape)  # (1, C, 1, ..., 1)
                gx_mu_sum_c = _channel_dot(g_c, from_rows(x_mu_c, x[c], rows)).reshape(self.bshape)
                return g_sum_c, gx_mu_sum_c

            sums = each_chunk(xp, channel_sums, x)
            g = g if z is None else g_y
            g_sum = sum_in_order([s[0] for s in sums])  # (1, C, 1, ..., 1)
            gx_hat_sum = sum_in_order([s[1] for s in sums]) * inv_std  # sum(g * x_hat), (1, C, 1, ..., 1)
            if need_dx:
                inv_m = 1.0 / max(self.m, 1)
                g_mean, gx_hat_mean = g_sum * inv_m, gx_hat_sum * inv_m
                dx = x_mu  # holds x - mu: one pass over x fewer than computing it again
                # times (x - mu) it is the term - x_hat * mean(g * x_hat)
                x_hat_coef = per_row(-inv_std * gx_hat_mean, x, rows)
                g_mean, scale = per_row(g_mean, x, rows), per_row(scale, x, rows)

                def input_grad(c: slice) -> None:  # gamma * inv_std * (g - mean(g) - x_hat * mean(g * x_hat))
                    dx_c = as_rows(dx[c], rows)  # x - mu
                    dx_c *= x_hat_coef
                    dx_c += as_rows(g[c], rows)
                    dx_c -= g_mean
                    dx_c *= scale

                each_chunk(xp, input_grad, x)
            if need_dgamma:
                dgamma = gx_hat_sum.reshape(C)
            if need_dbeta:
                dbeta = g_sum.reshape(C)
            return dx, dgamma, dbeta, g
        if need_dx:
            dx = g * scale
        if need_dgamma:
            x_hat = (self.x - self.mu) * inv_std
            dgamma = _channel_dot(g, x_hat)  # (C,)
        if need_dbeta:
            dbeta = _channel_sum(g)  # (C,)
        return dx, dgamma, dbeta, g


class BatchNormReLU(BatchNorm):
    r"""z = max(y + r, 0), y = gamma * x_hat + beta (BatchNorm), r an optional residual of x's shape: a
    ResNet block's bn1 -> ReLU, and its bn2 -> add the shortcut -> ReLU, as one op (``batch_norm_relu``).
    The separate ops pass over memory three times where this op passes once: y written, then read and
    written by the add, then by the ReLU, against z written while each batch chunk of y is in the cache.

    Backward, with g = dL/dz. The ReLU's derivative is [y + r > 0] = [z > 0] (0 at the kink, as
    PyTorch's), and the sum's is 1 in each term, so

        g_y = dL/dy = g * [z > 0],      dL/dr = g_y,

    and dx, dgamma, dbeta are BatchNorm's backward of g_y (derived there). z is saved for the mask; the
    convolution that reads z keeps it anyway. In training g_y is made a batch chunk at a time inside batch
    norm's first backward pass, which reads the chunk of g then, and is kept as dL/dr; so the ReLU's own
    backward pass (read g and z, write g_y) and its separate read of g_y go.

    The same roundings in the same order as the three ops (y = x * scale + shift, then y + r, then the
    clip; g_y the ReLU's product): its results equal theirs bit for bit (tests/test_norm_relu.py).
    Shapes: x, r, z (N, C, *); gamma, beta, running_mean, running_var (C,).
    """

    saved = (*BatchNorm.saved, "z")

    def forward(self, x: Any, gamma: Any | None, beta: Any | None, residual: Any | None) -> Any:
        self.gamma = gamma
        mu, inv_std = self._statistics(x)
        r = None if residual is None else in_order_of(residual, x)  # read by rows beside x
        z = normalize(x, mu, inv_std, gamma, beta, residual=r, relu=True)
        if any(self.needs_input_grad):
            self.z = z
        return z

    def backward(self, g: Any) -> tuple[Any, Any, Any, Any]:
        dx, dgamma, dbeta, g_y = self._backward(g, self.z)
        return dx, dgamma, dbeta, g_y if self.needs_input_grad[3] else None


class GroupNorm(Function):
    r"""y = gamma * x_hat + beta,  x_hat = (x - mu) * inv_std,  inv_std = 1 / sqrt(var + eps), where mu and
    the biased var are taken per sample n and group k, over the m = (C / G) * prod(spatial) values of the
    C / G channels of group k: channels are split into G consecutive groups. gamma, beta are per channel.
    No running statistics: training and eval compute the same thing.

    Backward, with g = dL/dy and sums/means over the m values of one (sample, group):
        dbeta = sum over (n, spatial) of g,   dgamma = sum over (n, spatial) of g * x_hat   (per channel),
        because dy/dbeta = 1 and dy/dgamma = x_hat.
        dL/dx_hat = gamma * g =: h. As in batch norm, but within a group,
            dx_hat_i/dx_j = inv_std (delta_ij - 1/m - x_hat_i x_hat_j / m)
        (d mu/dx_j = 1/m and d var/dx_j = (2/m)(x_j - mu)), so summing over i:
            dx_j = inv_std * (h_j - mean(h) - x_hat_j * mean(h * x_hat)).
    gamma, beta None (affine=False) mean gamma = 1, beta = 0 and no parameter gradients.
    Shapes: x, y (N, C, *); gamma, beta (C,); mu, inv_std (N, G, 1) over x viewed as (N, G, m).
    """

    saved = ("x_hat", "inv_std", "gamma", "bshape")

    def __init__(self, num_groups: int, eps: float) -> None:
        self.num_groups, self.eps = num_groups, eps

    def forward(self, x: Any, gamma: Any | None, beta: Any | None) -> Any:
        xp = get_array_module(x)
        N, C = x.shape[:2]
        G = self.num_groups
        bshape = (1, C) + (1,) * (x.ndim - 2)  # a (C,) vector broadcast against x
        xg = x.reshape(N, G, -1)  # (N, G, m)
        inv_m = 1.0 / max(xg.shape[2], 1)
        mu = xg.sum(axis=2, keepdims=True) * inv_m  # (N, G, 1)
        x_hat = xg - mu  # (N, G, m)
        var = (x_hat * x_hat).sum(axis=2, keepdims=True) * inv_m  # (N, G, 1), biased
        inv_std = 1 / xp.sqrt(var + self.eps)
        x_hat *= inv_std
        x_hat = x_hat.reshape(x.shape)  # (N, C, *)
        self.x_hat, self.inv_std, self.gamma, self.bshape = x_hat, inv_std, gamma, bshape
        y = x_hat * gamma.reshape(bshape) if gamma is not None else x_hat.copy()
        if beta is not None:
            y += beta.reshape(bshape)
        return y

    def backward(self, g: Any) -> tuple[Any, Any, Any]:
        need_dx, need_dgamma, need_dbeta = self.needs_input_grad
        x_hat, gamma = self.x_hat, self.gamma
        dx = dgamma = dbeta = None
        if need_dx:
            N, G = x_hat.shape[0], self.num_groups
            h = (g * gamma.reshape(self.bshape) if gamma is not None else g).reshape(N, G, -1)  # (N, G, m)
            xh = x_hat.reshape(N, G, -1)  # (N, G, m)
            inv_m = 1.0 / max(xh.shape[2], 1)
            h_mean = h.sum(axis=2, keepdims=True) * inv_m  # (N, G, 1)
            hx_mean = (h * xh).sum(axis=2, keepdims=True) * inv_m  # (N, G, 1)
            dx = (self.inv_std * (h - h_mean - xh * hx_mean)).reshape(g.shape)  # (N, C, *)
        if need_dgamma:
            dgamma = _channel_dot(g, x_hat)  # (C,)
        if need_dbeta:
            dbeta = g.sum(axis=(0,) + tuple(range(2, g.ndim)))  # (C,)
        return dx, dgamma, dbeta


def _batch_norm_node(
    cls: type[BatchNorm],
    op: str,
    input: Tensor,  # noqa: A002 - PyTorch's name
    running_mean: Tensor | None,
    running_var: Tensor | None,
    weight: Tensor | None,
    bias: Tensor | None,
    training: bool,
    momentum: float,
    eps: float,
) -> BatchNorm:
    """The node ``cls`` (BatchNorm or BatchNormReLU) for batch_norm's arguments, checked first (the errors
    naming ``op``)."""
    if not isinstance(input, Tensor):
        raise TypeError(f"{op}: expected input to be a Tensor, got {type(input).__name__}")
    if input.ndim < 2:
        raise ShapeError(f"{op}: expected input of at least 2 dimensions (N, C, *), got shape {input.shape}")
    if input.dtype.kind != "f":
        raise DTypeError(f"{op}: expected a floating-point input, got {input.dtype}")
    if momentum is None or isinstance(momentum, bool) or not isinstance(momentum, numbers.Real):
        raise TypeError(
            f"{op}: momentum must be a float, got {momentum!r}; for a cumulative moving average pass "
            "momentum = 1 / num_batches_tracked (what nn.BatchNorm2d does when its momentum is None)"
        )
    if (running_mean is None) != (running_var is None):
        raise ValueError(f"{op}: running_mean and running_var must either both be None or both be given")
    if not training and running_mean is None:
        raise ValueError(f"{op}: running_mean and running_var must be given when training=False")
    for name, t in (
        ("running_mean", running_mean),
        ("running_var", running_var),
        ("weight", weight),
        ("bias", bias),
    ):
        check_vector(op, name, t, input.shape[1], input)
    if training:
        m = input.numel() // input.shape[1] if input.shape[1] else 0
        if m == 1:
            raise ShapeError(
                f"{op}: Expected more than 1 value per channel when training, "
                f"got input of shape {input.shape}"
            )
    return cls(
        None if running_mean is None else running_mean.data,
        None if running_var is None else running_var.data,
        bool(training),
        float(momentum),
        float(eps),
    )


def batch_norm(
    input: Tensor,  # noqa: A002 - PyTorch's name
    running_mean: Tensor | None,
    running_var: Tensor | None,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> Tensor:
    """Normalize each channel (axis 1) of ``input`` (N, C, *) as torch.nn.functional.batch_norm.

    ``training=True`` normalizes with the batch statistics and, when ``running_mean``/``running_var`` are
    given, updates them in place (their ``.data``) with the unbiased batch variance. ``training=False``
    normalizes with the running statistics, which must then be given. ``momentum`` must be a number, as in
    torch.nn.functional.batch_norm: a cumulative moving average is the caller's business (nn.BatchNorm2d
    with momentum=None passes 1 / num_batches_tracked).
    """
    args = (input, running_mean, running_var, weight, bias, training, momentum, eps)
    return _batch_norm_node(BatchNorm, "batch_norm", *args)(input, weight, bias)


def batch_norm_relu(
    input: Tensor,  # noqa: A002 - PyTorch's name
    running_mean: Tensor | None,
    running_var: Tensor | None,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
    residual: Tensor | None = None,
) -> Tensor:
    """``relu(batch_norm(input, ...) + residual)`` (``residual`` None: nothing added) as one op,
    ``BatchNormReLU``: the same values and gradients as the separate ops, bit for bit, in one pass over
    memory instead of three. batch_norm's arguments; ``residual`` a Tensor of input's shape, dtype and
    device. minires's own (PyTorch has no such function): the blocks call it through
    ``nn.modules.norm.batch_norm_relu`` where nothing would see the ops in between."""
    op_name = "batch_norm_relu"
    args = (input, running_mean, running_var, weight, bias, training, momentum, eps)
    node = _batch_norm_node(BatchNormReLU, op_name, *args)
    check_like(op_name, "residual", residual, input, input.shape, "the shape of input")
    return node(input, weight, bias, residual)


def group_norm(
    input: Tensor,  # noqa: A002 - PyTorch's name
    num_groups: int,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    eps: float = 1e-5,
) -> Tensor:
    """Normalize ``input`` (N, C, *) over each group of C / num_groups consecutive channels of each sample,
    then scale and shift per channel, as torch.nn.functional.group_norm (see ``GroupNorm``)."""
    if not isinstance(input, Tensor):
        raise TypeError(f"group_norm: expected input to be a Tensor, got {type(input).__name__}")
    if input.ndim < 2:
        raise ShapeError(
            f"group_norm: expected input of at least 2 dimensions (N, C, *), got shape {input.shape}"
        )
    if input.dtype.kind != "f":
        raise DTypeError(f"group_norm: expected a floating-point input, got {input.dtype}")
    if isinstance(num_groups, bool) or not isinstance(num_groups, int) or num_groups <= 0:
        raise ValueError(f"group_norm: num_groups must be a positive int, got {num_groups!r}")
    if input.shape[1] % num_groups:
        raise ShapeError(
            f"group_norm: expected the number of channels {input.shape[1]} of the input of shape "
            f"{input.shape} to be divisible by num_groups={num_groups}"
        )
    for name, t in (("weight", weight), ("bias", bias)):
        check_vector("group_norm", name, t, input.shape[1], input)
    if input.numel() // num_groups == 1:  # torch's check, though a group of one value only gives x_hat = 0
        raise ShapeError(
            "group_norm: Expected more than 1 value per channel when training, got input of shape "
            f"{input.shape} with num_groups={num_groups}"
        )
    return GroupNorm(num_groups, float(eps))(input, weight, bias)
