"""``DistributedSampler``: each rank's share of a dataset's indices, as
``torch.utils.data.distributed.DistributedSampler``.

    sampler = DistributedSampler(train_set)                  # rank and world size from minires.distributed
    loader = DataLoader(train_set, batch_size=64, sampler=sampler)
    for epoch in range(epochs):
        sampler.set_epoch(epoch)                             # a new shuffle each epoch, the same on all ranks
        for x, y in loader: ...

The indices of one epoch (shuffled by ``seed + epoch``, identically on every rank) are padded by repeating
their beginning until their number divides by the number of replicas (or cut to a multiple of it with
``drop_last=True``); rank r then takes every num_replicas-th index starting at r, ``indices[r::R]``.
So every rank gets the same number of samples, the ranks' shares are disjoint apart from the padding,
and together they cover the dataset.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sized

import numpy as np

from .. import distributed
from .sampler import Sampler


class DistributedSampler(Sampler):
    """``DistributedSampler(dataset, num_replicas=None, rank=None, shuffle=True, seed=0, drop_last=False)``.

    ``num_replicas`` and ``rank`` default to the world size and rank of ``minires.distributed`` (which
    must then be initialized). Shuffling uses NumPy's ``default_rng(seed + epoch)``: the same order on
    every rank for one epoch, a new one after ``set_epoch``. (torch shuffles with ``torch.randperm``, so
    the shuffled order differs from torch's; the unshuffled indices, the padding and the split are torch's.)
    """

    def __init__(
        self,
        dataset: Sized,
        num_replicas: int | None = None,
        rank: int | None = None,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
    ) -> None:
        if num_replicas is None:
            num_replicas = distributed.get_world_size()
        if rank is None:
            rank = distributed.get_rank()
        if isinstance(num_replicas, bool) or not isinstance(num_replicas, int) or num_replicas < 1:
            raise ValueError(f"DistributedSampler: num_replicas must be a positive int, got {num_replicas!r}")
        if isinstance(rank, bool) or not isinstance(rank, int) or not 0 <= rank < num_replicas:
            raise ValueError(f"Invalid rank {rank}, rank should be in the interval [0, {num_replicas - 1}]")
        self.dataset = dataset
        self.num_replicas, self.rank = num_replicas, rank
        self.shuffle, self.seed, self.drop_last = bool(shuffle), int(seed), bool(drop_last)
        self.epoch = 0
        n = len(dataset)
        if self.drop_last and n % num_replicas:
            self.num_samples = math.ceil((n - num_replicas) / num_replicas)  # drop the tail
        else:
            self.num_samples = math.ceil(n / num_replicas)  # pad to a multiple of num_replicas
        self.total_size = self.num_samples * num_replicas

    def __iter__(self) -> Iterator[int]:
        n = len(self.dataset)
        if self.shuffle:
            indices = np.random.default_rng(self.seed + self.epoch).permutation(n)  # the same on every rank
        else:
            indices = np.arange(n)
        if self.drop_last:
            indices = indices[: self.total_size]
        elif self.total_size > n:  # repeat the beginning (the whole list as often as needed) as padding
            indices = np.resize(indices, self.total_size)
        return iter(indices[self.rank : self.total_size : self.num_replicas].tolist())

    def __len__(self) -> int:
        return self.num_samples

    def set_epoch(self, epoch: int) -> None:
        """Shuffle the next pass with ``seed + epoch``: call it at the start of every epoch, on every rank."""
        self.epoch = int(epoch)

    def __repr__(self) -> str:
        return (
            f"DistributedSampler(num_replicas={self.num_replicas}, rank={self.rank}, shuffle={self.shuffle}, "
            f"seed={self.seed}, drop_last={self.drop_last})"
        )
