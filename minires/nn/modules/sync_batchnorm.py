"""``SyncBatchNorm``: batch normalization whose training statistics are taken over every rank's batch, as
``torch.nn.SyncBatchNorm``; ``SyncBatchNorm.convert_sync_batchnorm(model)`` swaps it in for every
``BatchNorm1d``/``BatchNorm2d``. The op and its backward are ``SyncBatchNorm`` in minires/ops/sync_norm.py.
"""

from __future__ import annotations

from typing import Any

from ... import distributed
from ...errors import ShapeError
from ...grad_mode import no_grad
from ...ops.sync_norm import sync_batch_norm
from ...tensor import Tensor
from .. import functional as F
from ..module import Module
from .norm import _BatchNorm


def _sum_over_ranks(array: Any) -> None:
    distributed.all_reduce(array)


class SyncBatchNorm(_BatchNorm):
    """``SyncBatchNorm(num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True,
    process_group=None)`` on inputs (N, C, *).

    In training, with a process group of more than one rank, mu and var are those of the union of the
    ranks' batches, each rank weighing in by its count (the local batches may differ in size), and every
    rank updates its running estimates with the same global statistics (unbiased variance). In eval, or
    with one rank (no process group, or a world of one), it computes what ``BatchNorm2d`` computes.
    Every rank must call it the same number of times in the same order: each training call is two
    all-reduces in forward and one in backward.
    """

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        process_group: Any = None,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__(num_features, eps, momentum, affine, track_running_stats, device, dtype)
        self.process_group = process_group  # torch's argument; minires has only the default group

    def _check_input_dim(self, input: Tensor) -> None:  # noqa: A002 - PyTorch's name
        if input.ndim < 2:
            raise ShapeError(
                f"SyncBatchNorm: expected at least 2D input (got {input.ndim}D input of shape {input.shape})"
            )

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002 - PyTorch's name
        self._check_input_dim(input)
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked.data += 1
            if self.momentum is None:  # cumulative moving average
                factor = 1.0 / float(self.num_batches_tracked.data)
        use_batch_stats = self.training or (self.running_mean is None and self.running_var is None)
        track = not self.training or self.track_running_stats
        running_mean = self.running_mean if track else None
        running_var = self.running_var if track else None
        sync = (
            use_batch_stats
            and self.training
            and distributed.is_initialized()
            and distributed.get_world_size() > 1
        )
        if not sync:
            return F.batch_norm(
                input, running_mean, running_var, self.weight, self.bias, use_batch_stats, factor, self.eps
            )
        return sync_batch_norm(
            input, running_mean, running_var, self.weight, self.bias, factor, self.eps, _sum_over_ranks
        )

    @classmethod
    def convert_sync_batchnorm(cls, module: Module, process_group: Any = None) -> Module:
        """``module`` with every ``BatchNorm1d``/``BatchNorm2d`` in it replaced by a ``SyncBatchNorm`` that
        holds the same Parameters (an optimizer made before keeps working) and the same running buffers.
        Returns the converted module: ``module`` itself, changed in place, unless it is a batch norm."""
        converted = module
        if isinstance(module, _BatchNorm) and not isinstance(module, SyncBatchNorm):
            converted = cls(
                module.num_features,
                module.eps,
                module.momentum,
                module.affine,
                module.track_running_stats,
                process_group,
            )
            with no_grad():
                if module.affine:
                    converted.weight = module.weight
                    converted.bias = module.bias
                converted.running_mean = module.running_mean
                converted.running_var = module.running_var
                converted.num_batches_tracked = module.num_batches_tracked
            converted.training = module.training
        for name, child in module.named_children():
            converted.add_module(name, cls.convert_sync_batchnorm(child, process_group))
        return converted
