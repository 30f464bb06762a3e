"""``minires.utils.data``: torch.utils.data's names (``Dataset``, ``TensorDataset``, ``Subset``,
``ConcatDataset``, ``random_split``, the samplers, ``DataLoader``), each checked against torch's."""

from __future__ import annotations

import collections
import importlib
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import minires as mr
from minires.utils.data import (
    ConcatDataset,
    DataLoader,
    Dataset,
    RandomSampler,
    Subset,
    TensorDataset,
    random_split,
)

TORCH_NAMES = [
    "BatchSampler",
    "ConcatDataset",
    "DataLoader",
    "Dataset",
    "DistributedSampler",
    "RandomSampler",
    "Sampler",
    "SequentialSampler",
    "Subset",
    "SubsetRandomSampler",
    "TensorDataset",
    "random_split",
]


def test_torch_utils_data_ports_by_the_import(torch) -> None:
    ours = importlib.import_module("minires.utils.data")
    for name in TORCH_NAMES:
        assert hasattr(torch.utils.data, name), name  # a name torch has
        assert getattr(ours, name) is getattr(mr.data, name), name  # the class of minires.data itself


def test_tensor_dataset_items_and_batches_as_torch(torch) -> None:
    x = np.random.default_rng(0).standard_normal((10, 3, 4)).astype(np.float32)
    y = np.arange(10) % 3
    ours, theirs = (
        TensorDataset(mr.tensor(x), mr.tensor(y)),
        torch.utils.data.TensorDataset(torch.from_numpy(x), torch.from_numpy(y)),
    )
    assert len(ours) == len(theirs) == 10
    item = ours[4]
    assert isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], mr.Tensor)
    np.testing.assert_array_equal(item[0].numpy(), theirs[4][0].numpy())
    assert int(item[1].item()) == int(theirs[4][1])
    got = list(DataLoader(ours, batch_size=4))
    want = list(torch.utils.data.DataLoader(theirs, batch_size=4))
    assert len(got) == len(want) == 3 and all(type(b) is list for b in got + want)  # torch's list of fields
    for (gx, gy), (wx, wy) in zip(got, want, strict=True):
        assert gx.shape == tuple(wx.shape) and gx.dtype == mr.float32 and gy.dtype == mr.int64
        np.testing.assert_array_equal(gx.numpy(), wx.numpy())  # (B, 3, 4): no channel axis added
        np.testing.assert_array_equal(gy.numpy(), wy.numpy())
    with pytest.raises(ValueError, match="TensorDataset: Size mismatch between tensors"):
        TensorDataset(mr.zeros(3, 2), mr.zeros(4))


def test_tensor_dataset_of_uint8_keeps_its_dtype_as_torch(torch) -> None:
    images = np.arange(24, dtype=np.uint8).reshape(6, 2, 2)
    (x, y), *_ = DataLoader(TensorDataset(images, np.arange(6)), batch_size=3)
    ((tx, ty), *_) = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(torch.from_numpy(images), torch.arange(6)), batch_size=3
    )
    assert x.dtype == mr.uint8 and x.shape == (3, 2, 2)
    np.testing.assert_array_equal(x.numpy(), tx.numpy())


def test_subset_and_concat(torch) -> None:
    base = [(np.full(2, i, np.float32), i) for i in range(10)]

    class Items(Dataset):
        def __len__(self) -> int:
            return len(base)

        def __getitem__(self, i: int):
            return base[i]

    sub = Subset(Items(), [7, 2, 9])
    assert len(sub) == 3 and sub[1][1] == 2 and [item[1] for item in sub[[0, 2]]] == [7, 9]
    both = Items() + sub
    assert isinstance(both, ConcatDataset) and len(both) == 13 and both.cumulative_sizes == [10, 13]
    theirs = torch.utils.data.ConcatDataset([base, torch.utils.data.Subset(base, [7, 2, 9])])
    assert [both[i][1] for i in range(-13, 13)] == [theirs[i][1] for i in range(-13, 13)]
    with pytest.raises(IndexError, match="ConcatDataset: index 13 out of range"):
        both[13]
    batches = [y.numpy().tolist() for _, y in DataLoader(both, batch_size=5)]
    assert batches == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9], [7, 2, 9]]


def test_a_subset_of_an_array_dataset_is_gathered_by_one_fancy_index() -> None:
    from minires.data import IDXDataset

    data = IDXDataset.__new__(IDXDataset)
    data.images = np.arange(20, dtype=np.uint8)[:, None, None] * np.ones((1, 28, 28), np.uint8)
    data.labels = np.arange(20, dtype=np.int64)
    loader = DataLoader(Subset(data, np.array([19, 3, 5, 0])), batch_size=3)
    (x, y), (x2, y2) = list(loader)
    assert y.numpy().tolist() == [19, 3, 5] and y2.numpy().tolist() == [0]
    assert x.shape == (3, 1, 28, 28) and x.dtype == mr.float32  # the image dataset's ToTensor conversion
    np.testing.assert_allclose(x.numpy()[0], 19 / 255, rtol=1e-6)


@pytest.mark.parametrize(
    "n, lengths",
    [
        (10, [0.8, 0.2]),
        (10, [0.5, 0.5]),
        (11, [0.3, 0.3, 0.4]),
        (7, [0.1, 0.1, 0.8]),
        (100, [1 / 3, 1 / 3, 1 / 3]),
        (10, [3, 7]),
        (5, [5, 0]),
    ],
)
def test_random_split_lengths_as_torch(torch, n: int, lengths: list) -> None:
    ours = random_split(list(range(n)), lengths, generator=np.random.default_rng(0))
    theirs = torch.utils.data.random_split(list(range(n)), lengths)
    assert [len(s) for s in ours] == [len(s) for s in theirs]
    assert sorted(i for s in ours for i in s.indices) == list(range(n))  # a partition
    assert all(isinstance(s, Subset) for s in ours)


def test_random_split_draws_and_refusals(torch) -> None:
    a = random_split(range(30), [0.5, 0.5], generator=np.random.default_rng(42))
    b = random_split(range(30), [0.5, 0.5], generator=np.random.default_rng(42))
    assert a[0].indices == b[0].indices and a[0].indices != list(range(15))
    mr.manual_seed(1)
    c = random_split(range(30), [10, 20])
    mr.manual_seed(1)
    assert random_split(range(30), [10, 20])[1].indices == c[1].indices  # without a generator: manual_seed
    with pytest.raises(ValueError, match="Sum of input lengths"):
        random_split(range(10), [3, 3])
    with pytest.raises(ValueError, match="Sum of input lengths"):
        torch.utils.data.random_split(range(10), [3, 3])
    with pytest.warns(UserWarning, match="Length of split at index 1 is 0"):
        random_split(range(2), [0.9, 0.1])


def test_a_dataset_subclass_and_random_sampler_in_a_loader() -> None:
    class Squares(Dataset):
        def __len__(self) -> int:
            return 8

        def __getitem__(self, i: int):
            return np.array([i * i], np.float32), i

    loader = DataLoader(
        Squares(), batch_size=3, sampler=RandomSampler(range(8), generator=np.random.default_rng(5))
    )
    order = np.concatenate([y.numpy() for _, y in loader])
    assert sorted(order.tolist()) == list(range(8))
    np.testing.assert_array_equal(order, np.random.default_rng(5).permutation(8))
    with pytest.raises(NotImplementedError, match="Dataset subclass must define __getitem__"):
        Dataset()[0]


def test_a_dataset_with_images_and_labels_attributes_keeps_its_own_getitem(torch) -> None:
    """The fast path is the library's: a user's __getitem__ is never skipped, whatever the attribute names."""

    class Mine(Dataset):
        def __init__(self) -> None:
            self.images = np.arange(4 * 2 * 2, dtype=np.uint8).reshape(4, 2, 2)
            self.labels = np.arange(4)

        def __len__(self) -> int:
            return 4

        def __getitem__(self, i: int):
            return self.images[i].astype(np.float32) * 2, int(self.labels[i]) + 100

    class Theirs(torch.utils.data.Dataset):
        __len__, __getitem__ = Mine.__len__, Mine.__getitem__
        __init__ = Mine.__init__

    x, y = next(iter(DataLoader(Mine(), batch_size=4)))
    tx, ty = next(iter(torch.utils.data.DataLoader(Theirs(), batch_size=4)))
    np.testing.assert_array_equal(y.numpy(), ty.numpy())  # 100..103
    assert x.shape == tuple(tx.shape) == (4, 2, 2)  # the user's float items, stacked as they are
    np.testing.assert_array_equal(x.numpy(), tx.numpy())

    class Shifted(TensorDataset):
        def __getitem__(self, i: int):
            return tuple(t + 1 for t in super().__getitem__(i))

    sx, sy = next(iter(DataLoader(Shifted(mr.tensor(np.arange(3.0)), mr.tensor(np.arange(3))), batch_size=3)))
    np.testing.assert_array_equal(sx.numpy(), [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(sy.numpy(), [1, 2, 3])


# ----- the structure of a batch: torch's default_collate, and default_convert with batch_size=None --------
Point = collections.namedtuple("Point", "x y")


class Items:
    """A map-style dataset without a base class (torch's DataLoader takes it too): item ``i`` is
    ``make(i)``."""

    def __init__(self, make: Callable[[int], Any], n: int = 5) -> None:
        self.make, self.n = make, n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> Any:
        return self.make(i)


# Each kind of item, made with a tensor constructor (mr.tensor for ours, torch.tensor for torch's).
ITEMS: dict[str, Callable[[Callable, int], Any]] = {
    "tensor": lambda T, i: T(np.full(2, i, np.float32)),
    "array": lambda T, i: np.full((2, 3), i, np.float32),
    "int": lambda T, i: i,
    "float": lambda T, i: i / 2,
    "bool": lambda T, i: bool(i % 2),
    "numpy-scalar": lambda T, i: np.float32(i),
    "str": lambda T, i: f"s{i}",
    "tuple": lambda T, i: (np.full(2, i, np.float32), i),
    "one-field-tuple": lambda T, i: (np.full(2, i, np.float32),),
    "tuple-of-tensors": lambda T, i: (T(np.full(2, i, np.float32)), T(np.int64(i))),
    "list": lambda T, i: [np.full(2, i, np.float32), i],
    "namedtuple": lambda T, i: Point(np.full(2, i, np.float32), i),
    "dict": lambda T, i: {"y": i, "x": np.full(2, i, np.float32), "name": f"n{i}"},
    "ordered-dict": lambda T, i: collections.OrderedDict(a=i, b=np.uint8(i)),
    "nested": lambda T, i: ((np.full(2, i, np.float32), i), {"k": (i, f"s{i}")}, [i, [i * 2]]),
    "dict-of-tuples": lambda T, i: {"pair": (i, i / 2), "list": [i, f"t{i}"], "nt": Point(i, i)},
    "strings-in-a-tuple": lambda T, i: (np.full(1, i), f"s{i}", b"b"),
}


def assert_same_batch(got: Any, want: Any, torch, where: str = "batch") -> None:
    """``got`` has ``want``'s structure, container type for container type (list, tuple, namedtuple,
    dict and its key order), a minires Tensor where torch has a tensor (same shape, dtype and values),
    and the same Python values (numbers, strings) elsewhere."""
    if isinstance(want, torch.Tensor):
        assert type(got) is mr.Tensor, f"{where}: {type(got).__name__}, torch has a tensor"
        assert got.shape == tuple(want.shape), where
        assert got.dtype == getattr(mr, str(want.dtype).removeprefix("torch.")), where
        np.testing.assert_array_equal(got.numpy(), want.numpy(), err_msg=where)
        return
    assert type(got) is type(want), f"{where}: {type(got).__name__}, torch has {type(want).__name__}"
    if isinstance(want, dict):
        assert list(got) == list(want), where
        for key in want:
            assert_same_batch(got[key], want[key], torch, f"{where}[{key!r}]")
    elif isinstance(want, list | tuple):
        assert len(got) == len(want), where
        for k, (g, w) in enumerate(zip(got, want, strict=True)):
            assert_same_batch(g, w, torch, f"{where}[{k}]")
    else:
        assert got == want, where


def assert_same_batches(ours: DataLoader, theirs, torch) -> None:
    got, want = list(ours), list(theirs)
    assert len(got) == len(want) == len(ours) == len(theirs)
    for k, (g, w) in enumerate(zip(got, want, strict=True)):
        assert_same_batch(g, w, torch, f"batch {k}")


LOADER_OPTIONS = [{"batch_size": 2}, {"batch_size": 2, "drop_last": True}, {"batch_size": None}]


@pytest.mark.parametrize("options", LOADER_OPTIONS, ids=["batches", "drop-last", "batch-size-none"])
@pytest.mark.parametrize("subset", [False, True], ids=["dataset", "subset"])
@pytest.mark.parametrize("kind", list(ITEMS))
def test_batches_have_torch_default_collate_structure(torch, kind: str, subset: bool, options: dict) -> None:
    """Tuples give lists, namedtuples and dicts their own type, recursively; strings stay as torch leaves
    them; batch_size=None gives each item as torch's default_convert does."""
    make = ITEMS[kind]
    ours = Items(lambda i: make(mr.tensor, i))
    theirs = Items(lambda i: make(torch.tensor, i))
    if subset:
        ours, theirs = Subset(ours, [3, 1, 4, 0]), torch.utils.data.Subset(theirs, [3, 1, 4, 0])
    assert_same_batches(DataLoader(ours, **options), torch.utils.data.DataLoader(theirs, **options), torch)


@pytest.mark.parametrize("options", LOADER_OPTIONS, ids=["batches", "drop-last", "batch-size-none"])
@pytest.mark.parametrize("subset", [False, True], ids=["dataset", "subset"])
@pytest.mark.parametrize("count", [1, 2, 3])
def test_tensor_dataset_batches_are_lists_as_torch(torch, count: int, subset: bool, options: dict) -> None:
    """One fancy index per tensor, and torch's list of fields: one tensor gives a one-element list."""
    arrays = (np.arange(10.0, dtype=np.float32).reshape(5, 2), np.arange(5), np.arange(5, dtype=np.uint8))[
        :count
    ]
    ours = TensorDataset(*[mr.tensor(a) for a in arrays])
    theirs = torch.utils.data.TensorDataset(*[torch.from_numpy(a) for a in arrays])
    if subset:
        ours, theirs = Subset(ours, [3, 1, 4]), torch.utils.data.Subset(theirs, [3, 1, 4])
    assert_same_batches(DataLoader(ours, **options), torch.utils.data.DataLoader(theirs, **options), torch)


def test_for_one_field_in_loader_unpacks_as_in_torch() -> None:
    seen = [xb.numpy().tolist() for (xb,) in DataLoader(TensorDataset(mr.tensor([[1.0], [2.0], [3.0]])), 2)]
    assert seen == [[[1.0], [2.0]], [[3.0]]]


@pytest.mark.parametrize("options", LOADER_OPTIONS, ids=["batches", "drop-last", "batch-size-none"])
@pytest.mark.parametrize("subset", [False, True], ids=["dataset", "subset"])
@pytest.mark.parametrize("shape", [(6, 5), (6, 5, 3)], ids=["gray", "rgb-hwc"])
def test_image_datasets_batch_as_torch_over_to_tensor_items(
    torch, shape: tuple, subset: bool, options: dict
) -> None:
    """The fast path (one fancy index, ToTensor on the batch) gives what torch's loader gives for items
    made by torchvision's ToTensor: [float32 images, int64 labels]; unbatched, [(C, H, W) image, int]."""
    from minires.data import IDXDataset
    from minires.data.transforms import ToTensor

    rs = np.random.default_rng(0)
    data = IDXDataset.__new__(IDXDataset)
    data.images = rs.integers(0, 256, (7, *shape), dtype=np.uint8)
    data.labels = rs.integers(0, 10, 7).astype(np.uint8)
    ours, theirs = (
        data,
        Items(lambda i: (torch.from_numpy(ToTensor()(data.images[i])), int(data.labels[i])), 7),
    )
    if subset:
        ours, theirs = Subset(ours, [6, 2, 0, 5]), torch.utils.data.Subset(theirs, [6, 2, 0, 5])
    assert_same_batches(DataLoader(ours, **options), torch.utils.data.DataLoader(theirs, **options), torch)


@pytest.mark.parametrize("batch_size", [2, None])
def test_a_shuffled_pass_has_torch_structure_in_the_seeded_order(torch, batch_size: int | None) -> None:
    """The order is the loader's generator's permutation; given that order, torch's loader gives the same."""
    make = ITEMS["dict-of-tuples"]
    order = np.random.default_rng(7).permutation(5).tolist()
    ours = DataLoader(Items(lambda i: make(mr.tensor, i)), batch_size, shuffle=True, seed=7, num_workers=2)
    theirs = torch.utils.data.DataLoader(Items(lambda i: make(torch.tensor, i)), batch_size, sampler=order)
    assert_same_batches(ours, theirs, torch)


def test_batch_size_none_options_as_torch(torch) -> None:
    ours, theirs = (
        DataLoader(Items(lambda i: i, 7), None),
        torch.utils.data.DataLoader(Items(lambda i: i, 7), None),
    )
    for loader in (ours, theirs):
        assert loader.batch_size is None and loader.batch_sampler is None and not loader.drop_last
        assert len(loader) == 7 and list(loader) == list(range(7))
    for loader in (DataLoader, torch.utils.data.DataLoader):
        with pytest.raises(ValueError, match="batch_size=None option disables auto-batching"):
            loader(Items(lambda i: i), batch_size=None, drop_last=True)
        with pytest.raises(ValueError, match="batch_sampler option is mutually exclusive"):
            loader(Items(lambda i: i), batch_size=None, batch_sampler=[[0]])
    pairs = Items(lambda i: (i, i))
    assert list(DataLoader(pairs, None, collate_fn=lambda item: ("got", item))) == list(
        torch.utils.data.DataLoader(pairs, None, collate_fn=lambda item: ("got", item))
    )  # collate_fn gets each item itself


@pytest.mark.parametrize(
    "make, error",
    [
        (lambda i: None, TypeError),
        (lambda i: (i, None), TypeError),
        (lambda i: [i] * (1 + i % 2), RuntimeError),
        (lambda i: np.array(["a"]), TypeError),
    ],
    ids=["none", "none-field", "unequal-lengths", "string-array"],
)
def test_items_torch_cannot_collate_are_refused_as_torch_refuses_them(torch, make, error) -> None:
    with pytest.raises(error, match="default_collate"):
        next(iter(DataLoader(Items(make), batch_size=2)))
    with pytest.raises(error):
        next(iter(torch.utils.data.DataLoader(Items(make), batch_size=2)))


def test_the_transform_runs_on_the_first_field() -> None:
    """Field 0 of a sequence, the first key's value of a dict, a bare batch itself, one item's first field
    with batch_size=None; a first field that is not an array is refused."""
    image = lambda i: np.full((1, 2, 2), i, np.float32)  # noqa: E731
    add_ten = lambda x: x + 10  # noqa: E731
    batch = next(iter(DataLoader(Items(lambda i: {"image": image(i), "label": i}), 2, transform=add_ten)))
    assert type(batch) is dict and list(batch) == ["image", "label"]
    assert batch["image"].numpy()[:, 0, 0, 0].tolist() == [10, 11] and batch["label"].numpy().tolist() == [
        0,
        1,
    ]
    labels_first = next(iter(DataLoader(Items(lambda i: Point(image(i), i)), 2, transform=add_ten)))
    assert type(labels_first) is Point and labels_first.x.numpy()[:, 0, 0, 0].tolist() == [10, 11]
    bare = next(iter(DataLoader(Items(image), 2, transform=add_ten)))
    assert type(bare) is mr.Tensor and bare.numpy()[:, 0, 0, 0].tolist() == [10, 11]
    one = next(iter(DataLoader(Items(lambda i: (image(i), i)), None, transform=add_ten)))
    assert type(one) is list and one[0].shape == (1, 2, 2) and one[0].numpy()[0, 0, 0] == 10 and one[1] == 0
    (ones,) = next(iter(DataLoader(TensorDataset(np.ones((3, 1, 2, 2), np.float32)), 3, transform=add_ten)))
    assert ones.numpy().tolist() == np.full((3, 1, 2, 2), 11.0).tolist()
    for make in (lambda i: (f"s{i}", image(i)), lambda i: ((image(i), i), i)):
        with pytest.raises(TypeError, match="transform= runs on the first field of each batch"):
            next(iter(DataLoader(Items(make), 2, transform=add_ten)))


def test_an_image_dataset_without_batching_gives_one_to_tensor_image() -> None:
    """batch_size=None: [ToTensor(image), int(label)] per item, a copy (the dataset is left as it is),
    and the loader's transform on that image."""
    from minires.data import IDXDataset
    from minires.data.transforms import RandomHorizontalFlip

    data = IDXDataset.__new__(IDXDataset)
    data.images = np.arange(4 * 3 * 3, dtype=np.uint8).reshape(4, 3, 3)
    data.labels = np.arange(4, dtype=np.uint8)
    items = list(DataLoader(data, batch_size=None))
    assert all(type(item) is list and type(item[1]) is int for item in items)
    assert [item[1] for item in items] == [0, 1, 2, 3] and items[2][0].shape == (1, 3, 3)
    np.testing.assert_array_equal(items[2][0].numpy()[0], data.images[2] / np.float32(255))
    flipped = list(DataLoader(data, None, transform=RandomHorizontalFlip(p=1.0)))
    np.testing.assert_array_equal(flipped[2][0].numpy(), items[2][0].numpy()[..., ::-1])
    floats = IDXDataset.__new__(IDXDataset)
    floats.images, floats.labels = np.zeros((2, 3, 3), np.float32), np.arange(2)
    first = next(iter(DataLoader(floats, batch_size=None)))[0]
    first.data += 1
    assert first.shape == (1, 3, 3) and not floats.images.any()


def test_every_tensor_of_a_batch_is_moved_to_the_device(backend: str) -> None:
    """device= moves each numeric leaf, however deep, and keeps the structure; strings stay on the host."""
    make = ITEMS["nested"]

    def leaves(batch: Any) -> list[Any]:
        if isinstance(batch, dict):
            return [leaf for value in batch.values() for leaf in leaves(value)]
        if isinstance(batch, list | tuple):
            return [leaf for value in batch for leaf in leaves(value)]
        return [batch]

    for batch_size in (2, None):
        here = list(DataLoader(Items(lambda i: make(mr.tensor, i)), batch_size))
        there = list(DataLoader(Items(lambda i: make(mr.tensor, i)), batch_size, device=backend))
        assert repr([type(x) for x in leaves(here)]) == repr([type(x) for x in leaves(there)])
        for h, t in zip(leaves(here), leaves(there), strict=True):
            if isinstance(h, mr.Tensor):
                assert t.device == backend and t.dtype == h.dtype
                np.testing.assert_array_equal(t.numpy(), h.numpy())
            else:
                assert t == h
    (x,) = next(iter(DataLoader(TensorDataset(mr.tensor(np.arange(6.0)).to(backend)), 4, device=backend)))
    assert x.device == backend and x.numpy().tolist() == [0.0, 1.0, 2.0, 3.0]
