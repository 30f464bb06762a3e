"""``minires.utils.data``: torch.utils.data's names (``Dataset``, ``TensorDataset``, ``Subset``,
``ConcatDataset``, ``random_split``, the samplers, ``DataLoader``), each checked against torch's."""

from __future__ import annotations

import importlib

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
    assert len(got) == len(want) == 3
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
