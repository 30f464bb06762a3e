"""Samplers: the order in which a ``DataLoader`` visits a dataset, as in ``torch.utils.data.sampler``.

A sampler is any iterable of dataset indices with a ``__len__``; a batch sampler is any iterable of lists
of indices. ``DataLoader(dataset, batch_size, shuffle=...)`` builds a ``SequentialSampler`` or a
``RandomSampler`` and wraps it in a ``BatchSampler``; ``sampler=`` or ``batch_sampler=`` replace them.

    loader = DataLoader(data, batch_size=64, sampler=SubsetRandomSampler(range(1000)))

The random samplers draw from a ``numpy.random.Generator``: the one given, or a fresh one seeded from
minires's generator at each pass, so ``mr.manual_seed`` makes them reproducible (torch's rule with its
own generator).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sized
from typing import Any

import numpy as np

from .. import rng


class Sampler:
    """The base class: ``__iter__`` yields dataset indices, ``__len__`` says how many."""

    def __iter__(self) -> Iterator[int]:
        raise NotImplementedError(f"{type(self).__name__}: a Sampler subclass must define __iter__")

    def __len__(self) -> int:
        raise TypeError(f"{type(self).__name__}: this sampler has no __len__")


class SequentialSampler(Sampler):
    """``0, 1, ..., len(data_source) - 1``."""

    def __init__(self, data_source: Sized) -> None:
        self.data_source = data_source

    def __iter__(self) -> Iterator[int]:
        return iter(range(len(self.data_source)))

    def __len__(self) -> int:
        return len(self.data_source)


def drawn_seed() -> int:
    """A seed drawn from minires's generator, so ``mr.manual_seed`` fixes it (the samplers' and the
    ``DataLoader``'s rule when no seed or generator is given)."""
    return int(rng.generator("cpu").integers(2**63))


def _fresh_generator(generator: np.random.Generator | None) -> np.random.Generator:
    """``generator`` itself, or one seeded by ``drawn_seed()``."""
    return generator if generator is not None else np.random.default_rng(drawn_seed())


class RandomSampler(Sampler):
    """A random permutation of the dataset (or, with ``replacement=True``, ``num_samples`` draws with
    replacement). ``RandomSampler(data_source, replacement=False, num_samples=None, generator=None)``;
    ``generator`` is a ``numpy.random.Generator``. Without replacement, ``num_samples`` larger than the
    dataset repeats whole permutations, as torch does."""

    def __init__(
        self,
        data_source: Sized,
        replacement: bool = False,
        num_samples: int | None = None,
        generator: np.random.Generator | None = None,
    ) -> None:
        if not isinstance(replacement, bool):
            raise TypeError(f"RandomSampler: replacement must be a bool, got {replacement!r}")
        if num_samples is not None and (
            not isinstance(num_samples, int | np.integer) or isinstance(num_samples, bool) or num_samples <= 0
        ):
            raise ValueError(f"RandomSampler: num_samples must be a positive int, got {num_samples!r}")
        self.data_source = data_source
        self.replacement = replacement
        self._num_samples = num_samples
        self.generator = generator

    @property
    def num_samples(self) -> int:
        return len(self.data_source) if self._num_samples is None else int(self._num_samples)

    def __iter__(self) -> Iterator[int]:
        n, generator = len(self.data_source), _fresh_generator(self.generator)
        if self.replacement:
            return iter(generator.integers(0, n, size=self.num_samples).tolist())
        whole, rest = divmod(self.num_samples, n) if n else (0, 0)
        order = [generator.permutation(n) for _ in range(whole)]
        if rest:
            order.append(generator.permutation(n)[:rest])
        return iter(np.concatenate(order).tolist() if order else [])

    def __len__(self) -> int:
        return self.num_samples


class SubsetRandomSampler(Sampler):
    """The given ``indices`` in a random order, each once per pass."""

    def __init__(self, indices: Iterable[int], generator: np.random.Generator | None = None) -> None:
        self.indices = list(indices)
        self.generator = generator

    def __iter__(self) -> Iterator[int]:
        order = _fresh_generator(self.generator).permutation(len(self.indices))
        return iter([self.indices[i] for i in order])

    def __len__(self) -> int:
        return len(self.indices)


class BatchSampler(Sampler):
    """Lists of ``batch_size`` indices from ``sampler``; the last, shorter one is dropped if ``drop_last``."""

    def __init__(self, sampler: Iterable[int], batch_size: int, drop_last: bool) -> None:
        if not isinstance(batch_size, int | np.integer) or isinstance(batch_size, bool) or batch_size < 1:
            raise ValueError(f"BatchSampler: batch_size must be a positive int, got {batch_size!r}")
        if not isinstance(drop_last, bool):
            raise ValueError(f"BatchSampler: drop_last must be a bool, got {drop_last!r}")
        self.sampler = sampler
        self.batch_size = int(batch_size)
        self.drop_last = drop_last

    def __iter__(self) -> Iterator[list[int]]:
        batch: list[int] = []
        for index in self.sampler:
            batch.append(int(index))
            if len(batch) == self.batch_size:
                yield batch
                batch = []
        if batch and not self.drop_last:
            yield batch

    def __len__(self) -> int:
        n = len(self.sampler)  # type: ignore[arg-type]
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)


def check_sampler(sampler: Any, what: str) -> None:
    """``sampler`` must be iterable; ``what`` names the argument in the error."""
    if not hasattr(sampler, "__iter__"):
        raise TypeError(f"DataLoader: {what} must be an iterable of indices, got {type(sampler).__name__}")
