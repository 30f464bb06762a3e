"""``DataLoader``: batches of a dataset as Tensors, shuffled by a seed, moved to the device once.

    loader = DataLoader(FashionMNIST(train=True), batch_size=256, shuffle=True, seed=0,
                        transform=Compose([RandomCrop(28, padding=2), Normalize(0.286, 0.353)]))
    for x, y in loader:   # x: float32 (256, 1, 28, 28); y: int64 (256,)
        ...

The order is a sampler's (``minires.data.sampler``, torch's rules): ``shuffle`` picks a ``RandomSampler``
on the loader's generator or a ``SequentialSampler``; ``sampler=`` (any iterable of indices with a
``__len__``, e.g. a ``DistributedSampler``) or ``batch_sampler=`` (an iterable of lists of indices)
replace it.

A batch has the structure torch's ``default_collate`` gives it (``minires.data.collate``, recursive):
a dataset of tuples (``TensorDataset``, the image datasets' ``(image, label)``, a tuple of one field
included) gives a **list** of fields, so ``for x, y in loader`` and ``for (x,) in loader`` unpack as in
torch; a list item gives a list, a namedtuple its own type, a dict (any mapping) the same type with each
key's values collated, keys in the item's order; a bare item (a Tensor, an array, a number) gives the
stacked Tensor itself. Every numeric leaf is a Tensor on ``device``; strings are left as torch leaves
them (a tuple of the batch's strings for a field of tuple items, a list for string items or dict values).

How a batch is gathered (the structure is the same on every route):

- the library's image datasets (FashionMNIST, MNIST, IDXDataset, CIFAR10: ``VisionDataset.__getitem__``,
  not overridden; or an object with ``.images`` and ``.labels`` arrays and no ``__getitem__``) without a
  per-item ``transform``/``target_transform``: one fancy index per batch, ``[images, labels]``;
- a ``TensorDataset``: one fancy index per tensor, a list of as many fields as it has tensors; a
  ``Subset`` maps the indices and gathers from its dataset the same way (these are recognized by their
  ``__getitem__`` too: a subclass that overrides it is read item by item);
- any other dataset (and the ones above with per-item transforms): item by item, ``dataset[i]``, the
  items collated as torch's ``default_collate`` collates them, with no other change: Tensors stacked as
  they are, NumPy arrays (and NumPy scalars) with their dtype and shape, Python ints as int64, floats as
  float64, bools as bool (``collate_fn=`` replaces this collation and its result is returned as it is).

Only on the first route, the library's image datasets, is the image batch converted as torchvision's
``ToTensor`` converts each image: uint8 images become float32 in [0, 1] (``x / 255``), an (N, H, W) batch
gains the channel axis, a uint8 (N, H, W, C) one (CIFAR-10's) is made channels-first; float arrays keep
their values and dtype; the labels are int64 (``int(labels[i])``, collated). The batch is moved to
``device`` as uint8 (the smallest form) and converted there. ``transform=`` then runs, whatever the
route, on the device, on the batch's first field: field 0 of a sequence (list, namedtuple), the first
key's value of a mapping, the batch itself for bare items; that field must be an array (a TypeError
says so otherwise: strings, or a nested container).

``batch_size=None`` turns batching off, as in torch: the loader returns each item, in the sampler's order,
converted as torch's ``default_convert`` converts it (NumPy arrays and Tensors become Tensors on
``device``, NumPy scalars 0-d Tensors, Python numbers and strings stay as they are, a tuple becomes a
list, other containers keep their type), or ``collate_fn(item)``; ``len(loader)`` is the sampler's
length and ``drop_last`` is refused. An image dataset's item is then ``[image, label]`` with the image
converted as ``ToTensor`` converts one image (float32 (C, H, W)) and the label a Python int; the
``transform`` gets that one image.

``num_workers=N`` gathers batches in N background threads, ``prefetch_factor`` batches each ahead (torch's
workers are processes; threads share the dataset without copying it and overlap NumPy's work, which
releases the GIL, with the training step). The batches are the same, in the same order, as with
``num_workers=0``: the order is drawn in the main thread, the batch ``transform`` runs there in order,
and a random per-item transform called without a generator draws from one made for its batch (seeded
by the loader's seed, the pass and the batch number: ``minires.data.transforms.item_generator``).
``pin_memory`` is accepted and does nothing (NumPy arrays need no pinning; CuPy copies from pageable
memory), ``timeout`` bounds the wait for a batch, ``worker_init_fn(worker_id)`` runs in each thread.
"""

from __future__ import annotations

import itertools
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

import numpy as np

from .. import backend
from ..tensor import Tensor
from .collate import collate, convert, fields, is_container, is_numeric_array, rebuild, to_tensors
from .dataset import Subset, TensorDataset, VisionDataset
from .sampler import BatchSampler, RandomSampler, SequentialSampler, check_sampler, drawn_seed
from .transforms import item_generator, takes_generator

Batch = tuple[Any, bool]  # the collated structure, and whether its first field is an image dataset's images


class DataLoader:
    """``DataLoader(dataset, batch_size=1, shuffle=False, drop_last=False, seed=None, transform=None,
    device="cpu", *, sampler=None, batch_sampler=None, num_workers=0, collate_fn=None, pin_memory=False,
    timeout=0, worker_init_fn=None, generator=None, prefetch_factor=None, persistent_workers=False)``.

    Each batch is structured as torch's ``default_collate`` structures it (a list of fields for tuple
    items, one-field ones included; a dict for dict items; ...: see the module docstring), its numeric
    leaves Tensors on ``device``. ``batch_size=None`` returns the items one by one, each converted as
    torch's ``default_convert`` converts it.

    ``sampler`` is mutually exclusive with ``shuffle``; ``batch_sampler`` with ``batch_size``,
    ``shuffle``, ``sampler`` and ``drop_last``; ``batch_size=None`` with ``drop_last`` (torch's rules).
    Each pass iterates the sampler once, so a sampler's own state (``DistributedSampler.set_epoch``) is
    read at the start of each epoch.

    Each pass (``iter(loader)``) draws a new order from the loader's own generator, seeded by ``seed``
    (or, when ``seed`` is None, by a draw from minires's generator, so ``mr.manual_seed`` makes it
    reproducible; ``generator=``, a ``numpy.random.Generator``, replaces it). ``transform(x, rng)`` (see
    ``minires.data.transforms``; a callable that does not declare the generator, ``transform(x)`` or
    ``transform(x, scale=2.0)``, is called ``transform(x)``: see ``transforms.takes_generator``) runs on
    the first field of each batch (of each item, with ``batch_size=None``) with the same generator.
    ``state_dict()`` and ``load_state_dict()`` save and restore that generator and the number of passes,
    so a resumed run draws the same batches.
    """

    def __init__(
        self,
        dataset: Any,
        batch_size: int | None = 1,
        shuffle: bool = False,
        drop_last: bool = False,
        seed: int | None = None,
        transform: Any = None,
        device: Any = "cpu",
        *,
        sampler: Any = None,
        batch_sampler: Any = None,
        num_workers: int = 0,
        collate_fn: Callable[[list[Any]], Any] | None = None,
        pin_memory: bool = False,
        timeout: float = 0,
        worker_init_fn: Callable[[int], None] | None = None,
        generator: np.random.Generator | None = None,
        prefetch_factor: int | None = None,
        persistent_workers: bool = False,
    ) -> None:
        if batch_size is not None and (
            not isinstance(batch_size, int | np.integer) or isinstance(batch_size, bool) or batch_size < 1
        ):
            raise ValueError(f"DataLoader: batch_size must be a positive int or None, got {batch_size!r}")
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
        elif batch_size is None and drop_last:
            raise ValueError(
                "DataLoader: batch_size=None option disables auto-batching and is mutually exclusive with "
                "drop_last"
            )
        if transform is not None and not callable(transform):
            raise TypeError(f"DataLoader: transform must be callable, got {type(transform).__name__}")
        _check_workers(num_workers, timeout, prefetch_factor, persistent_workers)
        if collate_fn is not None and not callable(collate_fn):
            raise TypeError(f"DataLoader: collate_fn must be callable, got {type(collate_fn).__name__}")
        if generator is not None and not isinstance(generator, np.random.Generator):
            raise TypeError(
                f"DataLoader: generator must be a numpy.random.Generator, got {type(generator).__name__}"
            )
        self.dataset = dataset
        self.batch_size: int | None = None if batch_size is None else int(batch_size)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.transform = transform
        self._transform_takes_rng = transform is not None and takes_generator(transform)
        self.device = backend.normalize_device(device)
        if collate_fn is not None and (transform is not None or self.device != "cpu"):
            raise ValueError(
                "DataLoader: with collate_fn, the loader returns what collate_fn returns; transform= and "
                f"device= act on the default (images, labels) batch (got transform={transform!r}, "
                f"device={self.device!r}): apply them inside collate_fn"
            )
        self.collate_fn = collate_fn
        self.num_workers = int(num_workers)
        self.prefetch_factor = (
            (2 if self.num_workers else None) if prefetch_factor is None else prefetch_factor
        )
        self.persistent_workers = bool(persistent_workers)
        self.pin_memory = bool(pin_memory)
        self.timeout = float(timeout)
        self.worker_init_fn = worker_init_fn
        self.seed = drawn_seed() if seed is None else int(seed)
        self.generator = np.random.default_rng(self.seed) if generator is None else generator
        self._passes = 0
        self._pool: ThreadPoolExecutor | None = None
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
            # batch_size=None: no batch sampler, the sampler's indices one by one (torch's attributes)
            self.batch_sampler = (
                None if self.batch_size is None else BatchSampler(sampler, self.batch_size, self.drop_last)
            )

    @property
    def _auto_collation(self) -> bool:
        """Whether the items are collated into batches (torch's name): not with ``batch_size=None``."""
        return self.batch_sampler is not None

    def __len__(self) -> int:
        return len(self.batch_sampler if self._auto_collation else self.sampler)

    def __iter__(self) -> Iterator[Any]:
        pass_number = self._passes
        self._passes += 1
        batches = enumerate(self.batch_sampler if self._auto_collation else self.sampler)
        if self.num_workers == 0:
            for k, indices in batches:
                yield self._finish(self._fetch(indices, pass_number, k))
        else:
            yield from self._prefetched(batches, pass_number)

    # ----- the worker threads -------------------------------------------------------------------------
    def _prefetched(self, batches: Iterator[tuple[int, Any]], pass_number: int) -> Iterator[Any]:
        """The batches in order, each gathered in a worker thread, up to ``prefetch_factor *
        num_workers`` of them ahead of the one handed out."""
        pool = self._pool if self._pool is not None else self._start_workers()
        pending: deque[Future] = deque()
        ahead = self.prefetch_factor * self.num_workers
        failed = True
        try:
            for k, indices in batches:
                pending.append(pool.submit(self._fetch, indices, pass_number, k))
                if len(pending) >= ahead:
                    yield self._finish(self._result(pending.popleft()))
            while pending:
                yield self._finish(self._result(pending.popleft()))
            failed = False
        except GeneratorExit:  # the loop over the batches was left early: not an error
            failed = False
            raise
        finally:
            for future in pending:
                future.cancel()
            if failed:
                # A timeout or an error: raise now, without waiting for a batch still being loaded (its
                # thread ends on its own); persistent workers stuck in it are not reused.
                pool.shutdown(wait=False, cancel_futures=True)
                self._pool = None
            elif not self.persistent_workers:
                pool.shutdown(wait=True, cancel_futures=True)

    def _start_workers(self) -> ThreadPoolExecutor:
        ids, lock = itertools.count(), threading.Lock()

        def init() -> None:
            with lock:
                worker_id = next(ids)
            if self.worker_init_fn is not None:
                self.worker_init_fn(worker_id)

        pool = ThreadPoolExecutor(self.num_workers, thread_name_prefix="DataLoader-worker", initializer=init)
        if self.persistent_workers:
            self._pool = pool
        return pool

    def _result(self, future: Future) -> Any:
        try:
            return future.result(timeout=self.timeout or None)
        except FutureTimeout:
            raise RuntimeError(f"DataLoader timed out after {self.timeout:g} seconds") from None

    # ----- one batch ----------------------------------------------------------------------------------
    def _fetch(self, indices: Any, pass_number: int, k: int) -> Any:
        """Gather batch ``k`` of pass ``pass_number`` on the host (in a worker thread when there are
        workers); random per-item transforms draw from a generator of this batch's own. With
        ``batch_size=None``, ``indices`` is one index and the "batch" is that item, converted."""
        with item_generator(np.random.default_rng([self.seed, pass_number, k])):
            if not self._auto_collation:
                if self.collate_fn is not None:
                    return self.collate_fn(self.dataset[int(indices)])
                return _gather_one(self.dataset, int(indices))
            if self.collate_fn is not None:
                return self.collate_fn([self.dataset[int(i)] for i in indices])
            return _gather(self.dataset, np.asarray(indices, dtype=np.int64))

    def _finish(self, batch: Any) -> Any:
        """On the main thread, in order: the device move of every numeric leaf, and on the first field
        ToTensor's conversion (image datasets only) and the transform; the structure is kept."""
        if self.collate_fn is not None:
            return batch
        structure, images = batch
        if is_container(structure):
            values = fields(structure)
            if not values:
                return self._first_field(structure, images)  # no field: nothing to transform
            rest = [to_tensors(value, self.device) for value in values[1:]]
            return rebuild(structure, [self._first_field(values[0], images), *rest])
        return self._first_field(structure, images)  # a bare field: the batch is the first field

    def _first_field(self, x: Any, images: bool) -> Any:
        """The first field, moved to the device: an image dataset's uint8 images made torchvision's
        ToTensor result, then the loader's ``transform``."""
        if not is_numeric_array(x):
            if self.transform is not None:
                raise TypeError(
                    "DataLoader: transform= runs on the first field of each batch, which must be an array; "
                    f"here it is a {type(x).__name__} (reorder the items' fields, or use collate_fn=)"
                )
            return to_tensors(x, self.device)
        x = backend.to_device(x, self.device)
        if images:
            x = self._to_tensor_images(x)
        if self.transform is not None:
            x = self.transform(x, self.generator) if self._transform_takes_rng else self.transform(x)
        return Tensor(x)

    def _to_tensor_images(self, x: Any) -> Any:
        """An image dataset's batch (or, with ``batch_size=None``, one image) as ToTensor makes it."""
        one = not self._auto_collation
        if one:
            x = x[None]  # one image: a batch of one, (1, H, W) or (1, H, W, C)
        xp = backend.array_module_for(self.device)
        if x.dtype == np.uint8:
            if x.ndim == 4:  # (B, H, W, C) images, as CIFAR10.data: ToTensor's channels-first
                x = x.transpose(0, 3, 1, 2)  # (B, C, H, W), a view
            x = x.astype(xp.float32, order="C")  # one contiguous float copy
            x /= xp.float32(255)  # ToTensor's division (not * 1/255: 126 of 256 differ), in place
        if x.ndim == 3:
            x = x[:, None]  # (B, H, W) -> (B, 1, H, W)
        return x[0] if one else x

    def state_dict(self) -> dict[str, Any]:
        """The generator's state and the passes made: restoring them replays the following passes."""
        return {"seed": self.seed, "generator": self.generator.bit_generator.state, "passes": self._passes}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.seed = int(state["seed"])
        self.generator.bit_generator.state = state["generator"]
        self._passes = int(state.get("passes", 0))

    def __repr__(self) -> str:
        return (
            f"DataLoader({self.dataset!r}, batch_size={self.batch_size}, shuffle={self.shuffle}, "
            f"drop_last={self.drop_last}, transform={self.transform!r}, device={self.device!r}, "
            f"num_workers={self.num_workers})"
        )


def _check_workers(num_workers: Any, timeout: Any, prefetch_factor: Any, persistent_workers: Any) -> None:
    """torch's checks of the worker options, with its messages."""
    if isinstance(num_workers, bool) or not isinstance(num_workers, int | np.integer) or num_workers < 0:
        raise ValueError(
            "DataLoader: num_workers option should be non-negative; use num_workers=0 to disable "
            f"multiprocessing (got {num_workers!r})"
        )
    if not isinstance(timeout, int | float) or timeout < 0:
        raise ValueError(f"DataLoader: timeout option should be non-negative (got {timeout!r})")
    if num_workers == 0 and prefetch_factor is not None:
        raise ValueError(
            "DataLoader: prefetch_factor option could only be specified in multiprocessing. Let "
            "num_workers > 0 to enable multiprocessing, otherwise set prefetch_factor to None."
        )
    if prefetch_factor is not None and (
        isinstance(prefetch_factor, bool) or not isinstance(prefetch_factor, int) or prefetch_factor < 1
    ):
        raise ValueError(f"DataLoader: prefetch_factor must be a positive int, got {prefetch_factor!r}")
    if persistent_workers and num_workers == 0:
        raise ValueError("DataLoader: persistent_workers option needs num_workers > 0")


def _gather(dataset: Any, indices: np.ndarray) -> Batch:
    """The items at ``indices``, collated as torch's ``default_collate`` collates them: one fancy index
    per field where the dataset allows it (see the module docstring; the items are tuples there, so the
    batch is a list of fields), else item by item; and whether the first field is an image dataset's
    batch, to be converted as ToTensor converts."""
    getitem = getattr(type(dataset), "__getitem__", None)
    if getitem is Subset.__getitem__:
        return _gather(dataset.dataset, np.asarray([dataset.indices[i] for i in indices], dtype=np.int64))
    if getitem is TensorDataset.__getitem__:
        return [t.data[indices] for t in dataset.tensors], False
    if _is_image_array_dataset(dataset, getitem):
        labels = dataset.labels[indices].astype(np.int64, copy=False)  # int(labels[i]), collated: int64
        return [dataset.images[indices], labels], True
    return collate([dataset[int(i)] for i in indices]), False


def _gather_one(dataset: Any, index: int) -> Batch:
    """Item ``index`` converted as torch's ``default_convert`` converts it (``batch_size=None``); an
    image dataset's item is ``[image, int(label)]``, the image (a copy) to be converted as ToTensor
    converts one image."""
    getitem = getattr(type(dataset), "__getitem__", None)
    if getitem is Subset.__getitem__:
        return _gather_one(dataset.dataset, int(dataset.indices[index]))
    if _is_image_array_dataset(dataset, getitem):
        return [np.array(dataset.images[index]), int(dataset.labels[index])], True
    return convert(dataset[index]), False


def _is_image_array_dataset(dataset: Any, getitem: Any) -> bool:
    """Whether item ``i`` of ``dataset`` is ``(images[i], int(labels[i]))`` as it stands: the dataset keeps
    ``VisionDataset.__getitem__`` (FashionMNIST, MNIST, IDXDataset, CIFAR10, or a subclass that does not
    override it) or has no ``__getitem__`` at all (a holder of the two arrays), has ``.images`` and
    ``.labels`` NumPy arrays and no per-item ``transform``/``target_transform``. A subclass with its own
    ``__getitem__`` is never bypassed, whatever its attributes are called."""
    if getitem is not None and getitem is not VisionDataset.__getitem__:
        return False
    if any(getattr(dataset, name, None) is not None for name in ("transform", "target_transform")):
        return False
    return isinstance(getattr(dataset, "images", None), np.ndarray) and isinstance(
        getattr(dataset, "labels", None), np.ndarray
    )
