"""minires.data: the IDX reader, the datasets' search, checksums and downloads, the DataLoader and the
batch transforms (against torch where torch has the same operation).

The tests write small IDX files of their own; the real Fashion-MNIST files are used only where they are
installed (Debian's dataset-fashion-mnist).
"""

from __future__ import annotations

import gzip
import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minires as mr
from minires.data import (
    CIFAR10,
    MNIST,
    DataFileError,
    DataLoader,
    FashionMNIST,
    IDXDataset,
    file_sha256,
    idx_bytes,
    parse_idx,
)
from minires.data.sampler import BatchSampler, RandomSampler, SequentialSampler, SubsetRandomSampler
from minires.data.transforms import (
    Compose,
    Normalize,
    RandomCrop,
    RandomHorizontalFlip,
    Resize,
    ToTensor,
    bilinear_matrix,
)

NAMES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
REAL_DIR = Path("/usr/share/datasets/fashion-mnist")


def synthetic_split(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8), rng.integers(0, 10, size=n, dtype=np.uint8)


def write_idx_dir(directory: Path, n_train: int = 40, n_test: int = 20, gz: bool = False) -> dict[str, bytes]:
    """The four files of a small random dataset in ``directory``; returns each file's uncompressed bytes."""
    directory.mkdir(parents=True, exist_ok=True)
    (train_x, train_y), (test_x, test_y) = synthetic_split(n_train, 0), synthetic_split(n_test, 1)
    contents = dict(zip(NAMES, [idx_bytes(a) for a in (train_x, train_y, test_x, test_y)], strict=True))
    for name, content in contents.items():
        if gz:
            (directory / f"{name}.gz").write_bytes(gzip.compress(content))
        else:
            (directory / name).write_bytes(content)
    return contents


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No $MINIRES_DATA, an empty user cache, no system copy: only what a test writes is found."""
    monkeypatch.delenv("MINIRES_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(FashionMNIST, "system_dirs", (str(tmp_path / "system"),))
    return tmp_path


# ----- IDX ----------------------------------------------------------------------------------------------
@settings(max_examples=30)
@given(
    st.sampled_from(["u1", "i1", "i2", "i4", "f4", "f8"]),
    st.lists(st.integers(0, 5), min_size=0, max_size=4),
    st.integers(0, 2**31 - 1),
)
def test_idx_round_trip(dtype: str, shape: list[int], seed: int) -> None:
    rng = np.random.default_rng(seed)
    array = (rng.standard_normal(shape) * 100).astype(dtype)
    content = idx_bytes(array)
    assert len(content) == 4 + 4 * len(shape) + array.nbytes
    back = parse_idx(content)
    assert back.dtype == array.dtype.newbyteorder("=") and back.shape == array.shape
    np.testing.assert_array_equal(back, array)


def test_idx_header_is_big_endian() -> None:
    content = idx_bytes(np.arange(6, dtype=np.int32).reshape(2, 3))
    assert content[:4] == b"\x00\x00\x0c\x02" and content[4:12] == b"\x00\x00\x00\x02\x00\x00\x00\x03"
    assert content[12:16] == b"\x00\x00\x00\x00" and content[16:20] == b"\x00\x00\x00\x01"


@pytest.mark.parametrize(
    "mangle, message",
    [
        (lambda b: b[:-1], "truncated"),
        (lambda b: b[:10], "truncated header"),
        (lambda b: b + b"\x00", "trailing bytes"),
        (lambda b: b"\x01" + b[1:], "not an IDX file"),
        (lambda b: b[:2] + b"\x07" + b[3:], "not an IDX file"),
        (lambda b: b[:2], "too short"),
    ],
)
def test_idx_rejects_malformed_content(mangle, message: str) -> None:
    content = idx_bytes(np.zeros((3, 4, 5), np.uint8))
    with pytest.raises(DataFileError, match=message):
        parse_idx(mangle(content), "some-file")


def test_gz_and_raw_read_alike_and_hash_the_uncompressed_content(tmp_path: Path) -> None:
    contents = write_idx_dir(tmp_path / "raw")
    write_idx_dir(tmp_path / "gz", gz=True)
    for name in NAMES:
        raw, gz = tmp_path / "raw" / name, tmp_path / "gz" / f"{name}.gz"
        np.testing.assert_array_equal(mr.data.read_idx(raw), mr.data.read_idx(gz))
        assert file_sha256(raw) == file_sha256(gz) == mr.data.idx.sha256_hex(contents[name])
        assert raw.read_bytes() != gz.read_bytes()


def test_truncated_and_corrupted_gzip_are_refused(tmp_path: Path) -> None:
    packed = gzip.compress(idx_bytes(np.arange(4000, dtype=np.uint8).reshape(5, 800)))
    cut = tmp_path / "cut.gz"
    cut.write_bytes(packed[: len(packed) // 2])
    with pytest.raises(DataFileError, match=r"cut\.gz.*truncated or corrupt"):
        mr.data.read_idx(cut)
    flipped = bytearray(packed)
    flipped[len(packed) // 2] ^= 0xFF
    bad = tmp_path / "bad.gz"
    bad.write_bytes(bytes(flipped))
    with pytest.raises(DataFileError, match=r"bad\.gz"):
        mr.data.read_idx(bad)


# ----- datasets: search order, checksums, structure -----------------------------------------------------
def test_idx_dataset_reads_a_directory(isolated: Path) -> None:
    write_idx_dir(isolated / "mine", n_train=40, n_test=20, gz=True)
    train, test = IDXDataset(isolated / "mine"), IDXDataset(isolated / "mine", train=False)
    assert train.images.shape == (40, 28, 28) and train.images.dtype == np.uint8
    assert train.labels.shape == (40,) and train.labels.dtype == np.int64
    assert len(test) == 20 and test[3][1] == int(test.labels[3])
    np.testing.assert_array_equal(train.images, synthetic_split(40, 0)[0])
    assert train.data is train.images and train.targets is train.labels


def test_search_order_root_env_cache_system(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    class Small(IDXDataset):
        name = "small"
        system_dirs = (str(isolated / "system"),)

    for place, n in (("system", 11), ("cache/minires/small", 12), ("env", 13), ("root/small", 14)):
        write_idx_dir(isolated / place, n_train=n)
    monkeypatch.setenv("MINIRES_DATA", str(isolated / "env"))
    assert len(Small(isolated / "root")) == 14  # root first, in its <name>/ subdirectory
    assert len(Small()) == 13  # then $MINIRES_DATA
    monkeypatch.delenv("MINIRES_DATA")
    assert len(Small()) == 12  # then the user cache
    for name in NAMES:
        (isolated / "cache/minires/small" / name).unlink()
    assert len(Small()) == 11  # then the system directory
    assert Small().files["train-images-idx3-ubyte"] == str(isolated / "system" / "train-images-idx3-ubyte")


def test_missing_files_name_every_place_looked(isolated: Path) -> None:
    with pytest.raises(FileNotFoundError) as info:
        FashionMNIST(download=False)
    text = str(info.value)
    assert "train-images-idx3-ubyte" in text and "anywhere minires looks" in text
    assert str(isolated / "cache" / "minires" / "fashion-mnist") in text and "dataset-fashion-mnist" in text
    assert "download=True" in text


@pytest.mark.parametrize("cls", [FashionMNIST, MNIST, IDXDataset])
def test_an_explicit_root_is_authoritative(isolated: Path, monkeypatch: pytest.MonkeyPatch, cls) -> None:
    """torchvision's rule: files in $MINIRES_DATA, the cache or the system folder are not used when a
    root is given; the error names that root and how to fix it."""
    for place in ("env", f"cache/minires/{cls.name}", "system"):
        write_idx_dir(isolated / place)
    monkeypatch.setenv("MINIRES_DATA", str(isolated / "env"))
    monkeypatch.setattr(cls, "system_dirs", (str(isolated / "system"),))
    with pytest.raises(FileNotFoundError) as info:
        cls(isolated / "nowhere", download=False)
    text = str(info.value)
    assert text.startswith(f"{cls.__name__}: train-images-idx3-ubyte was not found in root=")
    assert str(isolated / "nowhere") in text and "the only place looked" in text
    assert "root=None" in text and str(isolated / "cache") not in text and str(isolated / "env") not in text
    if cls.mirrors:
        assert "pass download=True" in text


def test_torchvision_folder_under_root(isolated: Path) -> None:
    """A root that torchvision downloaded into (<root>/FashionMNIST/raw) is read as it is."""
    write_idx_dir(isolated / "root" / "FashionMNIST" / "raw", gz=True)

    class Unpinned(FashionMNIST):
        resources = {name: None for name in NAMES}
        gz_md5 = {}
        split_sizes = {True: None, False: None}

    data = Unpinned(isolated / "root", download=False)
    assert data.files[NAMES[0]] == str(isolated / "root" / "FashionMNIST" / "raw" / f"{NAMES[0]}.gz")


def test_the_gz_file_is_taken_before_the_raw_one(isolated: Path) -> None:
    write_idx_dir(isolated / "root", gz=True)
    write_idx_dir(isolated / "root", gz=False)
    assert IDXDataset(isolated / "root").files[NAMES[0]] == str(isolated / "root" / f"{NAMES[0]}.gz")


def test_official_gz_by_md5_other_copies_by_content_sha256(isolated: Path) -> None:
    """The compressed file whose MD5 is pinned passes by it; an unpacked or re-compressed copy of other
    content must match the content SHA-256 (a re-compression of the right content passes by it)."""
    contents = write_idx_dir(isolated / "official", gz=True)
    md5 = {n: hashlib.md5((isolated / "official" / f"{n}.gz").read_bytes()).hexdigest() for n in NAMES}

    class Pinned(IDXDataset):
        gz_md5 = md5
        resources = {n: "0" * 64 for n in NAMES}  # a content hash the files do not have

    assert len(Pinned(isolated / "official")) == 40  # the official .gz files, by their MD5
    write_idx_dir(isolated / "raw", gz=False)
    with pytest.raises(DataFileError, match="SHA-256 of its uncompressed content is"):
        Pinned(isolated / "raw")
    Pinned.resources = {n: mr.data.idx.sha256_hex(c) for n, c in contents.items()}
    recompressed = isolated / "recompressed"
    recompressed.mkdir()
    for name, content in contents.items():
        (recompressed / f"{name}.gz").write_bytes(gzip.compress(content, compresslevel=1, mtime=1))
    assert len(Pinned(recompressed)) == 40  # another gzip of the right content: by the content hash


def test_mnist_accepts_only_the_official_gz(isolated: Path) -> None:
    """MNIST pins the official .gz MD5s and no content hash: anything else is refused, saying why."""
    assert MNIST.gz_md5 == {
        "train-images-idx3-ubyte": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte": "ec29112dd5afa0611ce80d1b7f02629c",
    }
    assert FashionMNIST.gz_md5["train-images-idx3-ubyte"] == "8d4fb7e6c68d591d4c3dfef9ec88bf0d"
    for gz in (True, False):
        root = isolated / f"root-{gz}"
        write_idx_dir(root, n_train=60000 // 1000, gz=gz)
        with pytest.raises(DataFileError) as info:
            MNIST(root, download=False)
        text = str(info.value)
        assert (
            "expected f68b3c2dcbeaaa9fbdd348bbdeb94873" in text and "no SHA-256" in text and "To fix" in text
        )
        assert str(root / "train-images-idx3-ubyte") in text


def test_foreign_file_fails_the_checksum_with_a_fix(isolated: Path) -> None:
    write_idx_dir(isolated / "root", n_train=60000 // 1000)  # right structure, wrong content
    with pytest.raises(DataFileError) as info:
        FashionMNIST(isolated / "root", download=False)
    text = str(info.value)
    assert str(isolated / "root" / "train-images-idx3-ubyte") in text
    assert FashionMNIST.resources["train-images-idx3-ubyte"] in text  # the expected hash
    assert "To fix" in text and "download=True" in text


@pytest.mark.parametrize(
    "images, labels, message",
    [
        (np.zeros((5, 28, 27), np.uint8), np.zeros(5, np.uint8), r"shape \(N, 28, 28\)"),
        (np.zeros((5, 28, 28), np.float32), np.zeros(5, np.uint8), "uint8 images"),
        (np.zeros((5, 28, 28), np.uint8), np.zeros(4, np.uint8), "4 labels for the 5 images"),
        (
            np.zeros((5, 28, 28), np.uint8),
            np.array([0, 1, 2, 10, 3], np.uint8),
            r"labels must lie in \[0, 10\)",
        ),
        (np.zeros((5, 28, 28), np.uint8), np.zeros((5, 1), np.uint8), "labels of shape"),
    ],
)
def test_structure_checks(isolated: Path, images: np.ndarray, labels: np.ndarray, message: str) -> None:
    root = isolated / "root"
    root.mkdir()
    (root / NAMES[0]).write_bytes(idx_bytes(images))
    (root / NAMES[1]).write_bytes(idx_bytes(labels))
    with pytest.raises(DataFileError, match=message):
        IDXDataset(root)


def test_split_size_is_checked(isolated: Path) -> None:
    class Sized(IDXDataset):
        split_sizes = {True: 41, False: None}

    write_idx_dir(isolated / "root", n_train=40)
    with pytest.raises(DataFileError, match="expected 41 images, got 40"):
        Sized(isolated / "root")


# ----- downloads, from a local HTTP server (http_root: tests/conftest.py) -----------------------------------
def downloadable(contents: dict[str, bytes | None], mirrors: tuple[str, ...]) -> type[IDXDataset]:
    """A dataset whose files come from ``mirrors``, pinned to the hashes of ``contents`` (None: no hash)."""

    class Remote(IDXDataset):
        name = "remote"
        resources = {name: None if c is None else mr.data.idx.sha256_hex(c) for name, c in contents.items()}

    Remote.mirrors = mirrors
    return Remote


def test_download_tries_the_mirrors_and_verifies(isolated: Path, http_root) -> None:
    served, url = http_root
    contents = write_idx_dir(served / "good", gz=True)
    Remote = downloadable(contents, (f"{url}/missing/", f"{url}/good/"))  # the first mirror answers 404
    data = Remote(download=True)
    target = isolated / "cache" / "minires" / "remote"
    assert data.files["train-images-idx3-ubyte"] == str(target / "train-images-idx3-ubyte.gz")
    assert sorted(os.listdir(target)) == ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"]
    np.testing.assert_array_equal(data.images, synthetic_split(40, 0)[0])
    assert len(Remote(download=False)) == 40  # found in the cache the second time


def test_a_corrupt_download_is_never_kept(isolated: Path, http_root) -> None:
    served, url = http_root
    contents = write_idx_dir(served / "good", gz=True)
    write_idx_dir(served / "bad", gz=True, n_train=41)  # valid IDX, another hash
    Remote = downloadable(contents, (f"{url}/bad/",))
    with pytest.raises(DataFileError) as info:
        Remote(download=True)
    assert "SHA-256" in str(info.value) and f"{url}/bad/train-images-idx3-ubyte.gz" in str(info.value)
    target = isolated / "cache" / "minires" / "remote"
    assert os.listdir(target) == []  # no half file, no temporary file


def test_a_download_that_is_not_idx_is_never_kept(isolated: Path, http_root) -> None:
    served, url = http_root
    (served / "train-images-idx3-ubyte.gz").write_bytes(b"<html>rate limited</html>")
    Remote = downloadable({name: None for name in NAMES}, (url,))  # no hash pinned, as MNIST
    with pytest.raises(DataFileError, match="not an IDX file"):
        Remote(download=True)
    assert os.listdir(isolated / "cache" / "minires" / "remote") == []


def test_download_into_root(isolated: Path, http_root) -> None:
    served, url = http_root
    contents = write_idx_dir(served, gz=True)
    Remote = downloadable(contents, (url,))
    data = Remote(isolated / "root", train=False)
    assert data.files["t10k-images-idx3-ubyte"] == str(
        isolated / "root" / "remote" / "t10k-images-idx3-ubyte.gz"
    )
    assert len(data) == 20


@pytest.mark.skipif(
    not REAL_DIR.is_dir(), reason="Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)"
)
def test_real_fashion_mnist(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(FashionMNIST, "system_dirs", (str(REAL_DIR),))
    train, test = FashionMNIST(download=False), FashionMNIST(train=False, download=False)
    assert train.images.shape == (60000, 28, 28) and test.images.shape == (10000, 28, 28)
    assert (
        np.bincount(train.labels).tolist() == [6000] * 10 and np.bincount(test.labels).tolist() == [1000] * 10
    )
    assert train.classes[0] == "T-shirt/top" and train.classes[9] == "Ankle boot"
    assert 0.28 < train.images.mean() / 255 < 0.29  # the pixel mean the example normalizes with (0.2860)


# ----- DataLoader ---------------------------------------------------------------------------------------
class ListDataset:
    """A dataset without .images/.labels arrays: the item-by-item path."""

    def __init__(self, n: int) -> None:
        self.items = [(np.full((2, 3, 3), i, np.float32), i % 10) for i in range(n)]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        return self.items[i]


def array_dataset(n: int) -> IDXDataset:
    data = IDXDataset.__new__(IDXDataset)
    data.images = (np.arange(n, dtype=np.int64)[:, None, None] % 256 * np.ones((1, 28, 28))).astype(np.uint8)
    data.labels = np.arange(n, dtype=np.int64)
    return data


@pytest.mark.parametrize(
    "n, batch, drop_last, expected", [(10, 3, False, [3, 3, 3, 1]), (10, 3, True, [3, 3, 3])]
)
def test_batching_and_drop_last(n: int, batch: int, drop_last: bool, expected: list[int]) -> None:
    loader = DataLoader(array_dataset(n), batch_size=batch, drop_last=drop_last)
    sizes = [len(y.data) for _, y in loader]
    assert sizes == expected and len(loader) == len(expected)
    x, y = next(iter(loader))
    assert x.shape == (3, 1, 28, 28) and x.dtype == mr.float32 and y.dtype == mr.int64
    np.testing.assert_array_equal(y.numpy(), [0, 1, 2])  # no shuffle: in order
    np.testing.assert_allclose(x.numpy()[1], 1 / 255, rtol=1e-6)  # uint8 -> [0, 1]


def test_shuffle_is_a_seeded_permutation_per_pass() -> None:
    data = array_dataset(50)
    a, b = DataLoader(data, 8, shuffle=True, seed=3), DataLoader(data, 8, shuffle=True, seed=3)
    first_a = np.concatenate([y.numpy() for _, y in a])
    second_a = np.concatenate([y.numpy() for _, y in a])
    first_b = np.concatenate([y.numpy() for _, y in b])
    assert sorted(first_a.tolist()) == list(range(50))  # every item exactly once
    np.testing.assert_array_equal(first_a, first_b)  # same seed, same order
    assert not np.array_equal(first_a, second_a)  # a new order each pass
    other = np.concatenate([y.numpy() for _, y in DataLoader(data, 8, shuffle=True, seed=4)])
    assert not np.array_equal(first_a, other)


def test_seed_none_follows_manual_seed() -> None:
    data = array_dataset(30)
    mr.manual_seed(5)
    a = np.concatenate([y.numpy() for _, y in DataLoader(data, 7, shuffle=True)])
    mr.manual_seed(5)
    b = np.concatenate([y.numpy() for _, y in DataLoader(data, 7, shuffle=True)])
    np.testing.assert_array_equal(a, b)


def test_loader_and_samplers_draw_their_seed_from_one_helper(monkeypatch: pytest.MonkeyPatch) -> None:
    """One rule, in one place, for "seed drawn from minires's generator": sampler.drawn_seed."""
    from minires.data import loader as loader_module
    from minires.data import sampler as sampler_module

    assert loader_module.drawn_seed is sampler_module.drawn_seed
    mr.manual_seed(11)
    seed = sampler_module.drawn_seed()
    mr.manual_seed(11)
    assert DataLoader(array_dataset(4)).seed == seed
    mr.manual_seed(11)
    order = list(RandomSampler(range(10)))
    assert order == np.random.default_rng(seed).permutation(10).tolist()


def test_state_dict_replays_the_next_passes() -> None:
    data = array_dataset(40)
    transform = Compose([RandomCrop(28, padding=3), RandomHorizontalFlip()])
    loader = DataLoader(data, 16, shuffle=True, seed=1, transform=transform)
    list(loader)
    state = loader.state_dict()
    expected = [(x.numpy(), y.numpy()) for x, y in loader]
    replay = DataLoader(data, 16, shuffle=True, seed=99, transform=transform)
    replay.load_state_dict(state)
    for (x, y), (ex, ey) in zip(replay, expected, strict=True):
        np.testing.assert_array_equal(x.numpy(), ex)
        np.testing.assert_array_equal(y.numpy(), ey)


def test_item_by_item_datasets_and_one_argument_transforms() -> None:
    loader = DataLoader(ListDataset(7), batch_size=4, transform=lambda x: x * 2)
    (x0, y0), (x1, y1) = list(loader)
    assert x0.shape == (4, 2, 3, 3) and x1.shape == (3, 2, 3, 3)
    np.testing.assert_array_equal(x1.numpy()[:, 0, 0, 0], [8, 10, 12])  # float images pass unscaled
    np.testing.assert_array_equal(y1.numpy(), [4, 5, 6])


@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_bad_batch_size(bad) -> None:
    with pytest.raises(ValueError, match="DataLoader: batch_size must be a positive int or None"):
        DataLoader(array_dataset(3), batch_size=bad)


class EpochSampler:
    """A sampler as DistributedSampler is: its order depends on ``set_epoch``, read at each pass."""

    def __init__(self, indices: list[int]) -> None:
        self.indices, self.epoch, self.passes = indices, 0, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        self.passes += 1
        shift = self.epoch % len(self.indices)
        return iter(self.indices[shift:] + self.indices[:shift])

    def __len__(self) -> int:
        return len(self.indices)


@pytest.mark.parametrize("drop_last", [False, True])
def test_sampler_gives_the_order_as_torch(torch, drop_last: bool) -> None:
    data = array_dataset(12)
    sampler = EpochSampler([5, 3, 9, 0, 1, 11, 7])
    loader = DataLoader(data, batch_size=3, sampler=sampler, drop_last=drop_last)
    assert loader.sampler is sampler
    want = [
        y.tolist()
        for _, y in torch.utils.data.DataLoader(
            list(zip(data.images, data.labels, strict=True)),
            batch_size=3,
            sampler=sampler,
            drop_last=drop_last,
        )
    ]
    got = [y.numpy().tolist() for _, y in loader]
    assert got == want == ([[5, 3, 9], [0, 1, 11]] + ([] if drop_last else [[7]]))
    assert len(loader) == len(want)
    sampler.set_epoch(2)  # a new epoch's order is read when the next pass starts
    assert [y.numpy().tolist() for _, y in loader][0] == [9, 0, 1]
    np.testing.assert_allclose(next(iter(loader))[0].numpy()[0], 9 / 255, rtol=1e-6)


def test_sampler_can_be_any_iterable_with_len() -> None:
    loader = DataLoader(ListDataset(10), batch_size=4, sampler=range(9, -1, -2))
    assert [y.numpy().tolist() for _, y in loader] == [[9, 7, 5, 3], [1]] and len(loader) == 2


def test_batch_sampler_gives_the_batches() -> None:
    batches = [[4, 0], [1, 2, 3], [5]]
    loader = DataLoader(array_dataset(6), batch_sampler=batches)
    assert [y.numpy().tolist() for _, y in loader] == batches and len(loader) == 3
    assert loader.batch_sampler is batches and loader.batch_size is None


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"sampler": [0, 1], "shuffle": True}, "sampler option is mutually exclusive with shuffle"),
        ({"batch_sampler": [[0]], "batch_size": 2}, "batch_sampler option is mutually exclusive"),
        ({"batch_sampler": [[0]], "shuffle": True}, "batch_sampler option is mutually exclusive"),
        ({"batch_sampler": [[0]], "sampler": [0]}, "batch_sampler option is mutually exclusive"),
        ({"batch_sampler": [[0]], "drop_last": True}, "batch_sampler option is mutually exclusive"),
    ],
)
def test_sampler_exclusions_as_torch(torch, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=f"DataLoader: {message}"):
        DataLoader(array_dataset(3), **kwargs)
    with pytest.raises(ValueError, match=message):  # torch refuses the same combinations
        torch.utils.data.DataLoader(list(range(3)), **kwargs)
    with pytest.raises(TypeError, match="DataLoader: sampler must be an iterable of indices, got int"):
        DataLoader(array_dataset(3), sampler=3)


def test_default_samplers_and_their_draws() -> None:
    data = array_dataset(20)
    plain, shuffled = DataLoader(data, 4), DataLoader(data, 4, shuffle=True, seed=7)
    assert isinstance(plain.sampler, SequentialSampler) and isinstance(shuffled.sampler, RandomSampler)
    order = np.concatenate([y.numpy() for _, y in shuffled])
    np.testing.assert_array_equal(order, np.random.default_rng(7).permutation(20))  # the loader's generator
    assert list(RandomSampler(range(5), generator=np.random.default_rng(0))) == (
        np.random.default_rng(0).permutation(5).tolist()
    )
    long = list(RandomSampler(range(4), num_samples=10, generator=np.random.default_rng(1)))
    assert len(long) == 10 and sorted(long[:4]) == sorted(long[4:8]) == [0, 1, 2, 3]  # whole permutations
    drawn = list(
        RandomSampler(range(3), replacement=True, num_samples=50, generator=np.random.default_rng(2))
    )
    assert len(drawn) == 50 and set(drawn) == {0, 1, 2}
    subset = list(SubsetRandomSampler([10, 20, 30, 40], generator=np.random.default_rng(3)))
    assert sorted(subset) == [10, 20, 30, 40] and subset != [10, 20, 30, 40]
    assert list(BatchSampler(range(7), 3, drop_last=False)) == [[0, 1, 2], [3, 4, 5], [6]]
    assert len(BatchSampler(range(7), 3, drop_last=True)) == 2
    mr.manual_seed(11)
    a = list(RandomSampler(range(30)))
    mr.manual_seed(11)
    assert list(RandomSampler(range(30))) == a  # without a generator: reproducible by manual_seed


# ----- per-item transforms (torchvision's transform= and target_transform=) ------------------------------
def test_per_item_transforms_as_torchvision(isolated: Path, torch) -> None:
    write_idx_dir(isolated / "root", n_train=40)
    seen = []
    data = IDXDataset(
        isolated / "root",
        transform=Compose([lambda image: seen.append((image.shape, image.dtype)) or image, ToTensor()]),
        target_transform=lambda label: float(label) / 2,
    )
    image, label = data[5]
    assert seen == [((28, 28), np.uint8)]  # the uint8 image, where torchvision gives a PIL image
    want = torch.from_numpy(data.images[5]).unsqueeze(0).float().div(255)  # torchvision's ToTensor
    assert image.shape == (1, 28, 28) and image.dtype == np.float32
    np.testing.assert_array_equal(image, want.numpy())
    assert label == int(data.labels[5]) / 2
    x, y = next(iter(DataLoader(data, batch_size=8)))  # item by item: what the transforms return, stacked
    assert x.shape == (8, 1, 28, 28) and x.dtype == mr.float32 and y.dtype == mr.float64
    np.testing.assert_array_equal(x.numpy()[5], image)
    np.testing.assert_array_equal(y.numpy(), data.labels[:8] / 2)


def test_with_a_per_item_transform_the_items_are_collated_as_they_are(isolated: Path) -> None:
    """Only the fast path converts (ToTensor on the whole batch); items, here uint8 (28, 28) images,
    are stacked as torch's default_collate stacks them."""
    write_idx_dir(isolated / "root", n_train=40)
    data = IDXDataset(isolated / "root", target_transform=lambda label: 9 - label)
    plain = IDXDataset(isolated / "root")
    (x, y), (px, py) = next(iter(DataLoader(data, batch_size=6))), next(iter(DataLoader(plain, batch_size=6)))
    assert x.dtype == mr.uint8 and x.shape == (6, 28, 28)
    assert px.dtype == mr.float32 and px.shape == (6, 1, 28, 28)  # the fast path: ToTensor's result
    np.testing.assert_array_equal(x.numpy(), plain.images[:6])
    np.testing.assert_array_equal(px.numpy()[:, 0], plain.images[:6] / np.float32(255))
    np.testing.assert_array_equal(y.numpy(), 9 - py.numpy())
    assert y.dtype == mr.int64


def test_generic_items_are_collated_as_torch_default_collate(torch) -> None:
    """No reshaping, no rescaling: float (4, 5) items give (B, 4, 5); uint8 (2, 3, 4) items stay uint8."""

    def items(i: int):
        return (
            (np.full((4, 5), i, np.float32), i),
            (np.full((2, 3, 4), i, np.uint8), np.float64(0.5)),
            (np.full(2, i, np.int32), 0.25, np.uint8(i)),
        )

    for k in range(3):

        class Ours(mr.utils.data.Dataset):
            def __len__(self) -> int:
                return 6

            def __getitem__(self, i: int, k: int = k):
                return items(i)[k]

        class Theirs(torch.utils.data.Dataset):
            __len__, __getitem__ = Ours.__len__, Ours.__getitem__

        for workers in (0, 2):
            got = next(iter(DataLoader(Ours(), batch_size=4, num_workers=workers)))
            want = next(iter(torch.utils.data.DataLoader(Theirs(), batch_size=4)))
            assert type(got) is type(want) is list and len(got) == len(want)  # tuple items: a list
            for g, w in zip(got, want, strict=True):
                assert g.shape == tuple(w.shape) and g.dtype == getattr(
                    mr, str(w.dtype).removeprefix("torch.")
                )
                np.testing.assert_array_equal(g.numpy(), w.numpy())


@pytest.mark.parametrize("cls", [FashionMNIST, MNIST, IDXDataset])
def test_an_unknown_argument_names_the_public_class(isolated: Path, cls) -> None:
    with pytest.raises(
        TypeError, match=rf"^{cls.__name__}.__init__\(\) got an unexpected keyword argument 'tranform'"
    ):
        cls(isolated, tranform=ToTensor())
    with pytest.raises(
        TypeError, match=rf"^{cls.__name__}.__init__\(\) got 1 positional argument\(s\) too many"
    ):
        cls(isolated, True, None, None, False, ToTensor())
    with pytest.raises(TypeError, match=rf"^{cls.__name__}: transform must be callable, got int"):
        cls(isolated, transform=3)
    with pytest.raises(
        TypeError, match=rf"^{cls.__name__}: transform must be callable, got bool .*download="
    ):
        cls(isolated, True, False, ToTensor())  # a bool where a transform goes, beside a target transform
    with pytest.raises(TypeError, match=rf"^{cls.__name__}: download must be a bool, got 'no'"):
        cls(isolated, True, None, None, "no")


def test_a_bool_third_is_download_as_in_the_first_signature(isolated: Path) -> None:
    """API.md's (root, train, download) still reads right: a transform is never a bool."""
    write_idx_dir(isolated / "root", n_train=40)
    data = IDXDataset(isolated / "root", True, False)
    assert data.transform is None and len(data) == 40
    with pytest.raises(Exception, match="download=True"):  # nothing there, and download=False: not fetched
        FashionMNIST(isolated / "empty", True, False)


def test_datasets_take_torchvision_positional_order(isolated: Path) -> None:
    """torchvision's (root, train=True, transform=None, target_transform=None, download=...): a positional
    transform is used, not dropped; the defaults of download are the API's (True; CIFAR10: False)."""
    import inspect

    write_idx_dir(isolated / "root", n_train=40)
    data = IDXDataset(isolated / "root", False, ToTensor(), lambda label: label + 100, False)
    image, label = data[2]
    assert data.train is False and image.shape == (1, 28, 28) and image.dtype == np.float32
    assert label == int(data.labels[2]) + 100
    order = ["root", "train", "transform", "target_transform", "download"]
    for cls in (IDXDataset, FashionMNIST, MNIST, CIFAR10):
        params = list(inspect.signature(cls).parameters.values())
        assert [p.name for p in params[:5]] == order, cls
    assert inspect.signature(FashionMNIST).parameters["download"].default is True
    assert inspect.signature(CIFAR10).parameters["download"].default is False


def test_the_image_datasets_share_one_getitem() -> None:
    from minires.data.dataset import VisionDataset

    for cls in (IDXDataset, FashionMNIST, MNIST, CIFAR10):
        assert issubclass(cls, VisionDataset) and cls.__getitem__ is VisionDataset.__getitem__, cls
        assert "transform" not in vars(cls)  # one declaration of the per-item transforms


def test_random_per_item_transforms_give_the_same_batches_with_worker_threads(isolated: Path) -> None:
    write_idx_dir(isolated / "root", n_train=40)
    data = IDXDataset(
        isolated / "root", transform=Compose([ToTensor(), RandomCrop(28, padding=4), RandomHorizontalFlip()])
    )

    def passes(num_workers: int, n: int = 2) -> list[list[np.ndarray]]:
        loader = DataLoader(data, batch_size=6, shuffle=True, seed=3, num_workers=num_workers)
        return [[x.numpy() for x, _ in loader] for _ in range(n)]

    serial, threaded = passes(0), passes(3)
    for a, b in zip(serial, threaded, strict=True):
        assert len(a) == len(b) == 7
        for xa, xb in zip(a, b, strict=True):
            np.testing.assert_array_equal(xa, xb)
    assert not np.array_equal(serial[0][0], serial[1][0])  # a new draw each pass
    plain = DataLoader(
        IDXDataset(isolated / "root", transform=ToTensor()), batch_size=6, shuffle=True, seed=3
    )
    unaugmented = [x.numpy() for x, _ in plain][0]
    changed = [not np.array_equal(a, b) for a, b in zip(serial[0][0], unaugmented, strict=True)]
    assert (
        sum(changed) >= 4
    )  # the crops and flips were drawn per image (a zero offset and no flip: unchanged)
    assert not np.array_equal(data[0][0], data[0][0])  # outside a loader: minires's generator, new draws


# ----- the DataLoader's torch options -----------------------------------------------------------------------
class SlowDataset:
    """Records the thread that loads each item."""

    def __init__(self, n: int, delay: float = 0.0, fail_at: int | None = None) -> None:
        self.n, self.delay, self.fail_at = n, delay, fail_at
        self.threads: set[str] = set()

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        import threading
        import time

        self.threads.add(threading.current_thread().name)
        if self.delay:
            time.sleep(self.delay)
        if i == self.fail_at:
            raise KeyError(f"item {i} is broken")
        return np.full((1, 2, 2), i, np.float32), i


@pytest.mark.parametrize("shuffle", [False, True])
def test_worker_threads_load_the_same_batches_in_order(shuffle: bool) -> None:
    transform = Compose([RandomCrop(2, padding=1), RandomHorizontalFlip()])  # batch transform, loader's rng
    serial = DataLoader(SlowDataset(50), 4, shuffle=shuffle, seed=1, transform=transform)
    data = SlowDataset(50, delay=0.001)
    threaded = DataLoader(
        data, 4, shuffle=shuffle, seed=1, transform=transform, num_workers=3, prefetch_factor=3
    )
    for _ in range(2):
        got = [(x.numpy(), y.numpy()) for x, y in threaded]
        want = [(x.numpy(), y.numpy()) for x, y in serial]
        assert len(got) == len(want) == 13
        for (gx, gy), (wx, wy) in zip(got, want, strict=True):
            np.testing.assert_array_equal(gy, wy)
            np.testing.assert_array_equal(gx, wx)
    assert data.threads and all(name.startswith("DataLoader-worker") for name in data.threads)
    assert len(data.threads) > 1  # real threads, several of them


def test_worker_init_fn_persistent_workers_and_errors() -> None:
    started = []
    loader = DataLoader(
        SlowDataset(12, delay=0.001), 3, num_workers=2, persistent_workers=True, worker_init_fn=started.append
    )
    list(loader)
    pool = loader._pool
    list(loader)
    assert loader._pool is pool and sorted(started) == [0, 1]  # the same two threads for both passes
    with pytest.raises(KeyError, match="item 7 is broken"):
        list(DataLoader(SlowDataset(12, fail_at=7), 3, num_workers=2))
    with pytest.raises(RuntimeError, match="DataLoader timed out after 0.05 seconds"):
        list(DataLoader(SlowDataset(4, delay=0.3), 2, num_workers=1, timeout=0.05))
    loader = DataLoader(SlowDataset(8), 2, pin_memory=True)  # accepted; nothing to pin on the host
    assert loader.pin_memory and len(list(loader)) == 4


@pytest.mark.parametrize("persistent", [False, True])
def test_timeout_bounds_the_wait(persistent: bool) -> None:
    """The error is raised once the timeout is past, not after the slow batch is done (2 x 1.5 s)."""
    import time

    loader = DataLoader(
        SlowDataset(4, delay=1.5), 2, num_workers=1, timeout=0.2, persistent_workers=persistent
    )
    start = time.perf_counter()
    with pytest.raises(RuntimeError, match=r"DataLoader timed out after 0.2 seconds"):
        list(loader)
    assert time.perf_counter() - start < 1.0
    assert loader._pool is None  # the stuck workers are not reused by the next pass


def test_breaking_out_of_a_threaded_pass_stops_the_workers() -> None:
    import threading

    before = threading.active_count()
    loader = DataLoader(SlowDataset(400, delay=0.001), 4, num_workers=3)
    for i, _ in enumerate(loader):
        if i == 2:
            break
    import gc

    gc.collect()
    assert threading.active_count() <= before


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"num_workers": -1}, "num_workers option should be non-negative"),
        ({"prefetch_factor": 2}, "prefetch_factor option could only be specified in multiprocessing"),
        ({"persistent_workers": True}, "persistent_workers option needs num_workers > 0"),
        ({"timeout": -1}, "timeout option should be non-negative"),
    ],
)
def test_worker_options_are_checked_as_torch_checks_them(torch, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=f"DataLoader: {message}"):
        DataLoader(ListDataset(4), **kwargs)
    with pytest.raises(ValueError, match=message):
        torch.utils.data.DataLoader(list(range(4)), **kwargs)


def test_collate_fn_gets_the_items_and_its_result_is_returned() -> None:
    def collate(items):
        return {"x": np.stack([x for x, _ in items]), "ids": [y for _, y in items]}

    batches = list(DataLoader(ListDataset(5), batch_size=2, collate_fn=collate, num_workers=2))
    assert [b["ids"] for b in batches] == [[0, 1], [2, 3], [4]]
    assert batches[0]["x"].shape == (2, 2, 3, 3)
    with pytest.raises(ValueError, match="with collate_fn, the loader returns what collate_fn returns"):
        DataLoader(ListDataset(5), collate_fn=collate, transform=lambda x: x)


def test_items_of_other_shapes_are_collated_as_torch(torch) -> None:
    class Triples:
        def __len__(self) -> int:
            return 5

        def __getitem__(self, i: int):
            return np.full(3, i, np.float64), i, bool(i % 2), f"item {i}"

    got = list(DataLoader(Triples(), batch_size=2))
    want = list(torch.utils.data.DataLoader(Triples(), batch_size=2))
    assert len(got) == len(want) == 3
    for g, w in zip(got, want, strict=True):
        assert type(g) is type(w) is list and len(g) == len(w) == 4
        assert type(g[3]) is tuple and g[3] == w[3]  # strings: a tuple, as torch gives them
        for gf, wf in zip(g[:3], w[:3], strict=True):
            assert gf.dtype == getattr(mr, str(wf.dtype).removeprefix("torch."))
            np.testing.assert_array_equal(gf.numpy(), wf.numpy())


def test_to_tensor_as_torchvision(torch) -> None:
    gray = np.random.default_rng(0).integers(0, 256, (5, 7), dtype=np.uint8)
    rgb = np.random.default_rng(1).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    for image in (gray, rgb):
        t = (
            torch.from_numpy(image if image.ndim == 3 else image[:, :, None])
            .permute(2, 0, 1)
            .float()
            .div(255)
        )
        out = ToTensor()(image)
        assert out.dtype == np.float32 and out.flags.c_contiguous
        np.testing.assert_array_equal(out, t.numpy())
    floats = np.random.default_rng(2).random((4, 5, 2))
    np.testing.assert_array_equal(
        ToTensor()(floats), floats.transpose(2, 0, 1)
    )  # values kept, as torchvision
    with pytest.raises(ValueError, match=r"ToTensor: expected an image of shape \(H, W\) or \(H, W, C\)"):
        ToTensor()(np.zeros((1, 2, 3, 4), np.uint8))


def test_the_loader_and_to_tensor_scale_every_uint8_value_alike(torch) -> None:
    """Both routes divide by 255 as torchvision does, bit for bit, for all 256 values (gray and HWC)."""
    for shape in ((4, 8, 8), (4, 8, 8, 2)):
        data = IDXDataset.__new__(IDXDataset)
        data.images = (np.arange(int(np.prod(shape))) % 256).astype(np.uint8).reshape(shape)
        data.labels = np.arange(4)
        fast, _ = next(iter(DataLoader(data, batch_size=4)))
        data.transform = ToTensor()
        per_item, _ = next(iter(DataLoader(data, batch_size=4)))
        hwc = torch.from_numpy(data.images if len(shape) == 4 else data.images[..., None])
        want = hwc.permute(0, 3, 1, 2).float().div(255).numpy()
        np.testing.assert_array_equal(fast.numpy(), want)
        np.testing.assert_array_equal(per_item.numpy(), want)


def test_the_generator_goes_only_to_transforms_that_declare_it() -> None:
    """A second parameter with a default and another name is not handed the generator (torchvision calls
    every transform t(x)); one named rng or generator, or without a default, is."""
    from minires.data.transforms import takes_generator

    image = np.full((2, 2), 51, np.uint8)
    out = Compose([ToTensor(), lambda x, scale=2.0: x * scale])(image)
    np.testing.assert_array_equal(out, np.full((1, 2, 2), np.float32(51) / 255 * 2))
    seen = []

    def with_rng(x, rng=None):
        seen.append(rng)
        return x

    def with_generator(x, generator):
        seen.append(generator)
        return x

    loader = DataLoader(ListDataset(4), batch_size=2, transform=lambda x, offset=1.0: x + offset)
    np.testing.assert_array_equal(next(iter(loader))[0].numpy()[:, 0, 0, 0], [1.0, 2.0])
    for fn in (with_rng, with_generator):
        seen.clear()
        loader = DataLoader(ListDataset(4), batch_size=2, transform=Compose([fn]))
        list(loader)
        assert len(seen) == 2 and all(g is loader.generator for g in seen)
    assert takes_generator(RandomCrop(2)) and takes_generator(Compose([]))
    assert takes_generator(lambda x, y: x) and not takes_generator(lambda x, *rest: x)
    assert not takes_generator(np.negative) and not takes_generator(lambda x: x)


# ----- transforms ---------------------------------------------------------------------------------------
@settings(max_examples=25, deadline=None)
@given(
    st.integers(1, 3),
    st.integers(2, 30),
    st.integers(2, 30),
    st.integers(1, 100),
    st.integers(1, 100),
    st.sampled_from([np.float32, np.float64]),
)
def test_resize_matches_torch_bilinear(torch, c: int, h: int, w: int, oh: int, ow: int, dtype) -> None:
    x = np.random.default_rng(h * w).standard_normal((2, c, h, w)).astype(dtype)
    got = Resize((oh, ow))(x)
    want = torch.nn.functional.interpolate(
        torch.from_numpy(x), size=(oh, ow), mode="bilinear", align_corners=False
    )
    assert got.shape == (2, c, oh, ow) and got.dtype == dtype
    np.testing.assert_allclose(got, want.numpy(), rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-5)


def test_resize_int_keeps_the_aspect_ratio_as_torchvision() -> None:
    assert Resize(96).output_size(28, 28) == (96, 96)
    assert Resize(10).output_size(20, 30) == (10, 15)
    assert Resize(10).output_size(35, 20) == (17, 10)
    rows = bilinear_matrix(28, 96)
    np.testing.assert_allclose(rows.sum(axis=1), 1.0)  # an interpolation: weights sum to one


def test_random_crop_cuts_a_window_of_the_padded_image() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 2, 9, 7)).astype(np.float32)
    out = RandomCrop((9, 7), padding=2)(x, np.random.default_rng(1))
    padded = np.pad(x, ((0, 0), (0, 0), (2, 2), (2, 2)))
    draws = np.random.default_rng(1)
    top, left = draws.integers(0, 5, size=64), draws.integers(0, 5, size=64)
    for i in (0, 17, 63):  # spot checks against the draws the transform made
        np.testing.assert_array_equal(out[i], padded[i, :, top[i] : top[i] + 9, left[i] : left[i] + 7])
    assert len(set(zip(top.tolist(), left.tolist(), strict=True))) > 10  # offsets vary per image
    np.testing.assert_array_equal(RandomCrop((9, 7))(x, rng), x)  # no padding, full size: the image itself
    with pytest.raises(ValueError, match="RandomCrop: crop"):
        RandomCrop(12, padding=1)(x, rng)


def test_random_horizontal_flip() -> None:
    x = np.random.default_rng(0).standard_normal((200, 1, 4, 5))
    np.testing.assert_array_equal(RandomHorizontalFlip(0.0)(x, np.random.default_rng(0)), x)
    np.testing.assert_array_equal(RandomHorizontalFlip(1.0)(x, np.random.default_rng(0)), x[..., ::-1])
    out = RandomHorizontalFlip(0.5)(x, np.random.default_rng(0))
    flipped = np.all(out == x[..., ::-1], axis=(1, 2, 3))
    assert np.all(flipped | np.all(out == x, axis=(1, 2, 3)))
    assert 70 < flipped.sum() < 130


def test_normalize_per_channel(torch) -> None:
    x = np.random.default_rng(0).random((3, 2, 4, 4)).astype(np.float32)
    got = Normalize([0.5, 0.2], [0.25, 2.0])(x)
    mean = torch.tensor([0.5, 0.2]).reshape(1, 2, 1, 1)
    std = torch.tensor([0.25, 2.0]).reshape(1, 2, 1, 1)
    np.testing.assert_allclose(got, ((torch.from_numpy(x) - mean) / std).numpy(), rtol=1e-6)
    assert got.dtype == np.float32
    with pytest.raises(ValueError, match="Normalize: mean and std need 1 or 2 values"):
        Normalize([0.1, 0.2, 0.3], [1, 1, 1])(x)
    with pytest.raises(ValueError, match="Normalize: std must be non-zero"):
        Normalize(0.0, 0.0)
    np.testing.assert_array_equal(Normalize([0.5, 0.2], [0.25, 2.0])(x[1]), got[1])  # one (C, H, W) image
    with pytest.raises(ValueError, match=r"Normalize: expected an image of shape \(C, H, W\) or a batch"):
        Normalize(0.0, 1.0)(x[0, 0])
