"""``DataLoader``: batches of a dataset as Tensors, shuffled by a seed, moved to the device once.

    loader = DataLoader(FashionMNIST(train=True), batch_size=256, shuffle=True, seed=0,
                        transform=Compose([RandomCrop(28, padding=2), Normalize(0.286, 0.353)]))
    for x, y in loader:   # x: float32 (256, 1, 28, 28); y: int64 (256,)
        ...

The order is a sampler's (``minires.data.sampler``, torch's rules): ``shuffle`` picks a ``RandomSampler``
on the loader's generator or a ``SequentialSampler``; ``sampler=`` (any iterable of indices with a
``__len__``, e.g. a ``DistributedSampler``) or ``batch_sampler=`` (an iterable of lists of indices)
replace it.

A dataset with ``.images`` and ``.labels`` arrays (FashionMNIST, MNIST, CIFAR10) is batched by one
fancy-index per batch; any other dataset by ``dataset[i] -> (image, label)``. uint8 images become float32
in [0, 1] (torchvision's ``ToTensor``): an (N, H, W) dataset gains the channel axis, an (N, H, W, C) one
(CIFAR-10's) is made channels-first; float images pass unchanged.
The batch is moved to ``device`` as uint8 (the smallest form) and converted and transformed there.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from typing import Any

import numpy as np

from .. import backend, rng
from ..tensor import Tensor
from .sampler import BatchSampler, RandomSampler, SequentialSampler, check_sampler


class DataLoader:
    """``DataLoader(dataset, batch_size=1, shuffle=False, drop_last=False, seed=None, transform=None,
    device="cpu", *, sampler=None, batch_sampler=None)``.

    ``sampler`` is mutually exclusive with ``shuffle``; ``batch_sampler`` with ``batch_size``,
    ``shuffle``, ``sampler`` and ``drop_last`` (torch's rules). Each pass iterates the sampler once, so a
    sampler's own state (``DistributedSampler.set_epoch``) is read at the start of each epoch.

    Each pass (``iter(loader)``) draws a new order from the loader's own generator, seeded by ``seed``
    (or, when ``seed`` is None, by a draw from minires's generator, so ``mr.manual_seed`` makes it
    reproducible). ``transform(x, rng)`` (see ``minires.data.transforms``; a one-argument callable
    ``transform(x)`` works too) runs on each float batch with the same generator. ``state_dict()`` and
    ``load_state_dict()`` save and restore that generator, so a resumed run draws the same batches.
    """

    def __init__(
        self,
        dataset: Any,
        batch_size: int = 1,
        shuffle: bool = False,
        drop_last: bool = False,
        seed: int | None = None,
        transform: Any = None,
        device: Any = "cpu",
        *,
        sampler: Any = None,
        batch_sampler: Any = None,
    ) -> None:
        if not isinstance(batch_size, int | np.integer) or isinstance(batch_size, bool) or batch_size < 1:
            raise ValueError(f"DataLoader: batch_size must be a positive int, got {batch_size!r}")
        if sampler is not None:
            check_sampler(sampler, "sampler")
            if shuffle:
                raise ValueError("DataLoader: sampler option is mutually exclusive with shuffle")
        if batch_sampler is not None:
            check_sampler(batch_sampler, "batch_sampler")
            if batch_size != 1 or shuffle or sampler is not None or drop_last:
                raise ValueError(
                    "DataLoader: batch_sampler option is mutually exclusive with batch_size, shuffle, "
                    f"sampler, and drop_last (got batch_size={batch_size!r}, shuffle={shuffle!r}, "
                    f"sampler={sampler!r}, drop_last={drop_last!r})"
                )
        if transform is not None and not callable(transform):
            raise TypeError(f"DataLoader: transform must be callable, got {type(transform).__name__}")
        self.dataset = dataset
        self.batch_size: int | None = int(batch_size)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.transform = transform
        self._transform_takes_rng = transform is not None and _takes_two_args(transform)
        self.device = backend.normalize_device(device)
        if seed is None:
            seed = int(rng.generator("cpu").integers(2**63))
        self.seed = int(seed)
        self.generator = np.random.default_rng(self.seed)
        if batch_sampler is not None:
            self.batch_size, self.drop_last = None, False  # torch's values: the batches are given
            self.sampler = sampler
            self.batch_sampler = batch_sampler
        else:
            if sampler is None:
                sampler = (
                    RandomSampler(dataset, generator=self.generator)
                    if self.shuffle
                    else SequentialSampler(dataset)
                )
            self.sampler = sampler
            self.batch_sampler = BatchSampler(sampler, self.batch_size, self.drop_last)

    def __len__(self) -> int:
        return len(self.batch_sampler)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        for indices in self.batch_sampler:
            yield self._batch(np.asarray(indices, dtype=np.int64))

    def _batch(self, indices: np.ndarray) -> tuple[Tensor, Tensor]:
        images, labels = _gather(self.dataset, indices)
        xp = backend.array_module_for(self.device)
        x = backend.to_device(images, self.device)
        if x.dtype == np.uint8:
            if x.ndim == 4:  # (B, H, W, C) images, as CIFAR10.data: ToTensor's channels-first
                x = x.transpose(0, 3, 1, 2)  # (B, C, H, W), a view
            x = x.astype(xp.float32, order="C")  # one contiguous float copy
            x *= xp.float32(1 / 255)  # ToTensor's scaling, in place
        if x.ndim == 3:
            x = x[:, None]  # (B, H, W) -> (B, 1, H, W)
        if self.transform is not None:
            x = self.transform(x, self.generator) if self._transform_takes_rng else self.transform(x)
        y = backend.to_device(labels.astype(np.int64, copy=False), self.device)
        return Tensor(x), Tensor(y)

    def state_dict(self) -> dict[str, Any]:
        """The generator's state: restoring it replays the following passes exactly."""
        return {"seed": self.seed, "generator": self.generator.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.seed = int(state["seed"])
        self.generator.bit_generator.state = state["generator"]

    def __repr__(self) -> str:
        return (
            f"DataLoader({self.dataset!r}, batch_size={self.batch_size}, shuffle={self.shuffle}, "
            f"drop_last={self.drop_last}, transform={self.transform!r}, device={self.device!r})"
        )


def _gather(dataset: Any, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Images and labels of ``indices``: one fancy index on array datasets, else item by item."""
    images = getattr(dataset, "images", None)
    labels = getattr(dataset, "labels", None)
    if isinstance(images, np.ndarray) and isinstance(labels, np.ndarray):
        return images[indices], labels[indices]
    items = [dataset[int(i)] for i in indices]
    return np.stack([np.asarray(item[0]) for item in items]), np.asarray([item[1] for item in items])


def _takes_two_args(fn: Any) -> bool:
    """Whether ``fn`` accepts ``(x, rng)``; the transforms here do, a plain ``lambda x: ...`` does not."""
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return True
    try:
        signature.bind(None, None)
    except TypeError:
        return False
    return True
