"""``BatchNorm1d`` and ``BatchNorm2d``: batch normalization with PyTorch's parameters, running statistics
and ``num_batches_tracked``; ``GroupNorm``. The math is ``F.batch_norm`` and ``F.group_norm``
(minires/ops/norm.py derives their backward). ``batch_norm_relu``: a block's batch norm -> (add ->) ReLU,
as one op where nothing would see the ops in between."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ...errors import ShapeError
from ...grad_mode import norm_relu_fused
from ...ops import norm as norm_ops
from ...tensor import Tensor, ones, tensor, zeros
from .. import functional as F
from .. import init
from ..module import Module
from ..parameter import Parameter
from .activation import ReLU


class _BatchNorm(Module):
    """Per-channel y = gamma * (x - mu) / sqrt(var + eps) + beta over every axis but the channel axis 1.

    Training: mu, var are the batch's statistics, and (when ``track_running_stats``) the running estimates
    are updated in place, running = (1 - m) * running + m * batch (unbiased variance), with m = ``momentum``,
    or m = 1 / num_batches_tracked (a cumulative average) when ``momentum`` is None; ``num_batches_tracked``
    counts the training batches. Eval: the running estimates; without ``track_running_stats`` there are
    none, and the batch statistics are used in eval too.
    """

    _version = 2  # version 2 added num_batches_tracked (an older state_dict lacks it)
    _expected_ndim: tuple[int, ...] = ()

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        device: Any = None,
        dtype: Any = None,
        *,
        bias: bool = True,
    ) -> None:
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        if affine:
            self.weight = Parameter(zeros(num_features, dtype=dtype, device=device))
            if bias:
                self.bias = Parameter(zeros(num_features, dtype=dtype, device=device))
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", zeros(num_features, dtype=dtype, device=device))
            self.register_buffer("running_var", ones(num_features, dtype=dtype, device=device))
            self.register_buffer("num_batches_tracked", tensor(0, dtype=np.int64, device=device))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)
        self.reset_parameters()

    def reset_running_stats(self) -> None:
        if self.track_running_stats:
            self.running_mean.data[...] = 0
            self.running_var.data[...] = 1
            self.num_batches_tracked.data[...] = 0

    def reset_parameters(self) -> None:
        self.reset_running_stats()
        if self.affine:
            init.ones_(self.weight)
            if self.bias is not None:
                init.zeros_(self.bias)

    def _check_input_dim(self, input: Tensor) -> None:  # noqa: A002 - PyTorch's name
        if input.ndim not in self._expected_ndim:
            want = " or ".join(f"{n}D" for n in self._expected_ndim)
            raise ShapeError(
                f"{type(self).__name__}: expected {want} input "
                f"(got {input.ndim}D input of shape {input.shape})"
            )

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002 - PyTorch's name
        return F.batch_norm(input, *self._functional_args(input))

    def _functional_args(self, input: Tensor) -> tuple:  # noqa: A002 - PyTorch's name
        """F.batch_norm's arguments after ``input`` for this call (its input checked, and in training the
        batch counted): running_mean, running_var, weight, bias, training, momentum, eps."""
        self._check_input_dim(input)
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked.data += 1
            if self.momentum is None:  # cumulative moving average
                factor = 1.0 / float(self.num_batches_tracked.data)
        use_batch_stats = self.training or (self.running_mean is None and self.running_var is None)
        track = not self.training or self.track_running_stats  # running stats passed only to be used/updated
        return (
            self.running_mean if track else None,
            self.running_var if track else None,
            self.weight,
            self.bias,
            use_batch_stats,
            factor,
            self.eps,
        )

    def _upgrade_state_dict(self, state_dict: dict, prefix: str, version: int | None) -> None:
        """A state_dict without version metadata (or from before version 2) may lack num_batches_tracked:
        keep the current count then, as PyTorch does."""
        key = prefix + "num_batches_tracked"
        if (version is None or version < 2) and self.track_running_stats and key not in state_dict:
            state_dict[key] = self.num_batches_tracked

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
            f"bias={self.bias is not None}, track_running_stats={self.track_running_stats}"
        )


class BatchNorm1d(_BatchNorm):
    """Batch normalization of a (N, C) or (N, C, L) input, per channel C."""

    _expected_ndim = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Batch normalization of a (N, C, H, W) input, per channel C (over the N*H*W values of each)."""

    _expected_ndim = (4,)


class GroupNorm(Module):
    """``GroupNorm(num_groups, num_channels, eps=1e-5, affine=True, *, bias=True)`` as
    ``torch.nn.GroupNorm``: each sample's channels split into ``num_groups`` groups, each group normalized
    over its channels and positions, then a per-channel ``weight`` (ones) and ``bias`` (zeros, unless
    ``bias=False``) when ``affine``. The same in training and eval (no running statistics)."""

    def __init__(
        self,
        num_groups: int,
        num_channels: int,
        eps: float = 1e-5,
        affine: bool = True,
        device: Any = None,
        dtype: Any = None,
        *,
        bias: bool = True,
    ) -> None:
        super().__init__()
        if num_channels % num_groups != 0:
            raise ValueError(
                f"GroupNorm: num_channels ({num_channels}) must be divisible by num_groups ({num_groups})"
            )
        self.num_groups, self.num_channels, self.eps, self.affine = num_groups, num_channels, eps, affine
        if affine:
            self.weight = Parameter(ones(num_channels, dtype=dtype, device=device))
            if bias:
                self.bias = Parameter(zeros(num_channels, dtype=dtype, device=device))
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def reset_parameters(self) -> None:
        if self.affine:
            init.ones_(self.weight)
            if self.bias is not None:
                init.zeros_(self.bias)

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002 - PyTorch's name
        return F.group_norm(input, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (
            f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}, "
            f"bias={self.bias is not None}"
        )


def batch_norm_relu(
    bn: Module,
    relu: Module | None,
    input: Tensor,  # noqa: A002 - PyTorch's name
    residual: Tensor | Callable[[], Tensor] | None = None,
) -> Tensor:
    """``relu(bn(input) + residual)`` for a residual block or a stem (``residual`` None: ``relu(bn(input))``),
    with ``relu`` an ``nn.ReLU`` module, or None for ``F.relu``. ``residual`` may be a function that makes
    it (a block's shortcut): it is called after ``bn``, as the blocks of torchvision call their modules.

    One op, ``ops.norm.BatchNormReLU`` (the same bits in one pass over memory for three), where that is
    what the modules would compute and nothing would see the ops in between: ``fuse_norm_relu`` is on (the
    default); ``bn`` is a plain BatchNorm1d or BatchNorm2d and ``relu`` a plain ReLU, their ``forward``
    neither replaced on the module nor on the class (a subclass may change it: SyncBatchNorm, a lazy layer
    not yet materialized); neither has a hook; and the residual is a Tensor of bn's output shape and dtype
    on its device. Otherwise the modules are called, the residual added in place between them, as
    torchvision's blocks do. Either way bn's checks (errors naming batch_norm) and its batch count come
    before the shortcut is made. What differs: the running statistics are updated when the one op runs,
    after the shortcut; and the graph holds one BatchNormReLUBackward node, so backward finishes bn's
    parameter gradients together with the shortcut's gradient."""
    make = residual if callable(residual) and not isinstance(residual, Tensor) else None
    if not (
        norm_relu_fused()
        and type(bn) in (BatchNorm1d, BatchNorm2d)
        and _plain(bn, _BN_FORWARD)
        and (relu is None or (type(relu) is ReLU and _plain(relu, _RELU_FORWARD)))
        and isinstance(input, Tensor)
    ):
        out = bn(input)
        r = make() if make is not None else residual
        if r is not None:
            out += r
        return F.relu(out) if relu is None else relu(out)
    args = bn._functional_args(input)  # what bn(input) does first: its input checked, its batch counted
    node = norm_ops._batch_norm_node(norm_ops.BatchNormReLU, "batch_norm", input, *args)  # bn's checks
    r = make() if make is not None else residual
    if r is None or (
        isinstance(r, Tensor) and (r.shape, r.dtype, r.device) == (input.shape, input.dtype, input.device)
    ):
        return node(input, bn.weight, bn.bias, r)
    out = F.batch_norm(input, *args)  # bn(input), which has no hook
    out += r
    return F.relu(out) if relu is None else relu(out)


_BN_FORWARD, _RELU_FORWARD = _BatchNorm.forward, ReLU.forward  # their own, to tell a class-wide replacement


def _plain(module: Module, forward: Callable) -> bool:
    """The module runs ``forward`` (its class's, not replaced on it or on the class), without hooks."""
    return (
        type(module).forward is forward
        and type(module).__call__ is Module.__call__
        and "forward" not in vars(module)
        and not _hooked(module)
    )


def _hooked(module: Module) -> bool:
    return bool(module._forward_hooks or module._forward_pre_hooks or module._backward_hooks)
