"""torch.utils.data's datasets: ``Dataset``, ``TensorDataset``, ``Subset``, ``ConcatDataset`` and
``random_split``.

    from minires.utils.data import DataLoader, TensorDataset, random_split   # as from torch.utils.data

    data = TensorDataset(mr.randn(100, 8), mr.tensor(labels))
    train, val = random_split(data, [0.8, 0.2], generator=np.random.default_rng(42))
    for x, y in DataLoader(train, batch_size=16, shuffle=True): ...

A dataset is anything with ``__getitem__`` and ``__len__``; ``Dataset`` is the base class torch code
subclasses. ``random_split``'s ``generator`` is a ``numpy.random.Generator`` (torch's is a
``torch.Generator``); without one it draws from minires's generator, so ``mr.manual_seed`` fixes it.
"""

from __future__ import annotations

import bisect
import math
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .. import rng
from ..tensor import Tensor


class Dataset:
    """The base class of map-style datasets: a subclass defines ``__getitem__`` and ``__len__``.
    ``a + b`` concatenates two datasets, as in torch."""

    def __getitem__(self, index: int) -> Any:
        raise NotImplementedError(f"{type(self).__name__}: a Dataset subclass must define __getitem__")

    def __add__(self, other: Any) -> ConcatDataset:
        return ConcatDataset([self, other])


class TensorDataset(Dataset):
    """Item ``i`` is ``tuple(t[i] for t in tensors)``; every tensor has the same first dimension.

    ``TensorDataset(*tensors)`` takes minires Tensors (or arrays, made Tensors with their dtype kept). The
    ``DataLoader`` batches it with one fancy index per tensor, stacked as torch's ``default_collate``
    stacks tensors: dtypes and shapes as they are, no image conversion; a batch is torch's list of the
    fields, one per tensor (``for (x,) in loader`` for one tensor)."""

    def __init__(self, *tensors: Any) -> None:
        if not tensors:
            raise ValueError("TensorDataset: expected at least one tensor")
        self.tensors = tuple(t if isinstance(t, Tensor) else Tensor(np.asarray(t)) for t in tensors)
        sizes = [t.shape[0] if t.ndim else None for t in self.tensors]
        if any(s is None for s in sizes) or len(set(sizes)) != 1:
            shapes = ", ".join(str(tuple(t.shape)) for t in self.tensors)
            raise ValueError(
                f"TensorDataset: Size mismatch between tensors: their first dimensions differ ({shapes})"
            )

    def __getitem__(self, index: int) -> tuple[Tensor, ...]:
        return tuple(t[index] for t in self.tensors)

    def __len__(self) -> int:
        return int(self.tensors[0].shape[0])


class Subset(Dataset):
    """The items of ``dataset`` at ``indices``, in that order: ``Subset(dataset, indices)[i]`` is
    ``dataset[indices[i]]``."""

    def __init__(self, dataset: Any, indices: Sequence[int]) -> None:
        self.dataset = dataset
        self.indices = indices

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, list):
            return [self.dataset[self.indices[i]] for i in index]
        return self.dataset[self.indices[index]]

    def __len__(self) -> int:
        return len(self.indices)


class ConcatDataset(Dataset):
    """The datasets one after another; ``cumulative_sizes[k]`` is the number of items in the first k+1."""

    def __init__(self, datasets: Sequence[Any]) -> None:
        self.datasets = list(datasets)
        if not self.datasets:
            raise ValueError("ConcatDataset: datasets should not be an empty iterable")
        self.cumulative_sizes: list[int] = []
        total = 0
        for dataset in self.datasets:
            total += len(dataset)
            self.cumulative_sizes.append(total)

    def __len__(self) -> int:
        return self.cumulative_sizes[-1]

    def __getitem__(self, index: int) -> Any:
        if index < 0:
            if -index > len(self):
                raise ValueError(
                    f"ConcatDataset: absolute value of index {index} should not exceed {len(self)}"
                )
            index += len(self)
        if index >= len(self):
            raise IndexError(f"ConcatDataset: index {index} out of range for {len(self)} items")
        which = bisect.bisect_right(self.cumulative_sizes, index)
        start = self.cumulative_sizes[which - 1] if which else 0
        return self.datasets[which][index - start]


def random_split(
    dataset: Any, lengths: Sequence[int | float], generator: np.random.Generator | None = None
) -> list[Subset]:
    """Split ``dataset`` into non-overlapping ``Subset``s of the given ``lengths``, at random.

    As torch: ``lengths`` are item counts that sum to ``len(dataset)``, or fractions that sum to 1, each
    becoming ``floor(fraction * len(dataset))`` items with the remainder dealt one by one, round-robin,
    from the first split on. The order is one permutation of all the items, cut in turn."""
    n = len(dataset)
    lengths = list(lengths)
    if math.isclose(sum(lengths), 1) and sum(lengths) <= 1:
        if not all(0 <= f <= 1 for f in lengths):
            raise ValueError(f"random_split: fractions must lie in [0, 1], got {lengths}")
        counts = [int(math.floor(n * f)) for f in lengths]
        for i in range(n - sum(counts)):
            counts[i % len(counts)] += 1
        for i, count in enumerate(counts):
            if count == 0:
                warnings.warn(
                    f"Length of split at index {i} is 0. This might result in an empty dataset.", stacklevel=2
                )
        lengths = counts
    if any(isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 0 for v in lengths):
        raise ValueError(
            f"random_split: lengths must be non-negative ints or fractions summing to 1, got {lengths}"
        )
    if sum(lengths) != n:
        raise ValueError(
            f"random_split: Sum of input lengths ({sum(lengths)}) does not equal the length of the input "
            f"dataset ({n})!"
        )
    draws = rng.generator("cpu") if generator is None else generator
    order = draws.permutation(n).tolist()
    subsets, start = [], 0
    for length in lengths:
        subsets.append(Subset(dataset, order[start : start + int(length)]))
        start += int(length)
    return subsets


class VisionDataset(Dataset):
    """The base of the image datasets (torchvision's name): ``FashionMNIST``, ``MNIST``, ``IDXDataset`` and
    ``CIFAR10``. Item ``i`` is ``(images[i], int(labels[i]))``, each passed through ``transform`` and
    ``target_transform`` when they are given (torchvision's per-item transforms; the image is the uint8
    array where torchvision gives a PIL image, see ``minires.data.transforms.ToTensor``).

    The ``DataLoader`` knows this ``__getitem__``: a dataset that keeps it and has no per-item transform is
    batched by one fancy index into ``.images`` and ``.labels``."""

    images: np.ndarray
    labels: np.ndarray
    transform: Callable[[np.ndarray], Any] | None = None
    target_transform: Callable[[int], Any] | None = None

    def _set_arguments(
        self, train: Any, transform: Any, target_transform: Any, download: Any, args: tuple, kwargs: dict
    ) -> bool:
        """Check the arguments every image dataset takes, torchvision's ``(root, train=True,
        transform=None, target_transform=None, download=...)``, naming the public class in errors, keep
        ``train``, ``transform`` and ``target_transform``, and return ``download``.

        A bool in the third place is ``download``: minires's first signature was ``(root, train,
        download)`` (API.md), and a transform is never a bool, so both orders read right."""
        cls = type(self).__name__
        reject_unknown_arguments(
            type(self), "root, train, transform, target_transform, download", args, kwargs
        )
        if isinstance(transform, bool | np.bool_) and target_transform is None:
            transform, download = None, bool(transform)
        for name, value in (("train", train), ("download", download)):
            if not isinstance(value, bool | np.bool_):
                raise TypeError(f"{cls}: {name} must be a bool, got {value!r}")
        for name, fn in (("transform", transform), ("target_transform", target_transform)):
            if fn is not None and not callable(fn):
                hint = (
                    " (torchvision's order is (root, train, transform, target_transform, download): pass "
                    "download= by keyword)"
                    if isinstance(fn, bool | np.bool_)
                    else ""
                )
                raise TypeError(f"{cls}: {name} must be callable, got {type(fn).__name__}{hint}")
        self.train = bool(train)
        self.transform = transform
        self.target_transform = target_transform
        return bool(download)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        image, label = self.images[index], int(self.labels[index])
        if self.transform is not None:
            image = self.transform(image)
        if self.target_transform is not None:
            label = self.target_transform(label)
        return image, label


def reject_unknown_arguments(cls: type, accepted: str, args: tuple, kwargs: dict) -> None:
    """Raise the TypeError Python would, but naming the public class ``cls`` (``FashionMNIST``) rather
    than the base class whose ``__init__`` took the call; ``accepted`` lists the arguments it takes."""
    if args:
        raise TypeError(
            f"{cls.__name__}.__init__() got {len(args)} positional argument(s) too many: {args!r} "
            f"(it takes {accepted})"
        )
    if kwargs:
        name = next(iter(kwargs))
        raise TypeError(
            f"{cls.__name__}.__init__() got an unexpected keyword argument {name!r} (it takes {accepted})"
        )
