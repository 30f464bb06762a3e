"""minires.data.CIFAR10: the binary archive, its extracted folder and torchvision's pickled folder, on small
synthetic copies written here; damaged, truncated, wrong-size and malicious files refused by name.

The real CIFAR-10 is not on this machine; the synthetic copies have the official layout with fewer
records per file (``Tiny`` below), and the real class's pinned checks are tested on them too.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest

import minires as mr
from minires.data import CIFAR10, DataFileError, DataLoader
from minires.data.cifar import CIFAR10_CLASSES, RECORD

N = 6  # records per batch file of the synthetic copies
FILES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]


class Tiny(CIFAR10):
    """CIFAR10 with the official layout but N records per file and no pinned checksums."""

    records_per_file = N
    archive_md5 = None
    archive_size = None
    py_md5 = None
    mirrors = ()


def batch(seed: int, n: int = N) -> tuple[np.ndarray, np.ndarray]:
    """(images (n, 32, 32, 3) uint8, labels (n,) uint8) of one synthetic batch file."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, n, dtype=np.uint8)


def records(images: np.ndarray, labels: np.ndarray) -> bytes:
    """The binary version's records: label byte, then the R, G and B planes, row by row."""
    planes = images.transpose(0, 3, 1, 2).reshape(len(images), -1)  # (n, 3072)
    return np.concatenate([labels[:, None], planes], axis=1).astype(np.uint8).tobytes()


META = ("\n".join(CIFAR10_CLASSES) + "\n\n").encode()


def bin_members(overrides: dict[str, bytes | None] | None = None) -> dict[str, bytes]:
    """Member name (inside cifar-10-batches-bin/) -> bytes; an override of None drops the member."""
    members = {f"{f}.bin": records(*batch(i)) for i, f in enumerate(FILES)}
    members["batches.meta.txt"] = META
    members["readme.html"] = b"<html>the official archive has one</html>"
    for name, content in (overrides or {}).items():
        if content is None:
            members.pop(name, None)
        else:
            members[name] = content
    return members


def write_archive(path: Path, members: dict[str, bytes], extra: list[tarfile.TarInfo] | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        for info in extra or []:
            tar.addfile(info, io.BytesIO(b"x" * info.size) if info.isfile() else None)
        for name, content in members.items():
            info = tarfile.TarInfo(f"cifar-10-batches-bin/{name}")
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return path


def write_bin_folder(folder: Path, members: dict[str, bytes]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in members.items():
        (folder / name).write_bytes(content)
    return folder


def write_py_folder(folder: Path) -> Path:
    """torchvision's cifar-10-batches-py, pickled as torchvision's files are (dicts with a uint8 'data'
    array of shape (n, 3072) and a list of int 'labels')."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, f in enumerate(FILES):
        images, labels = batch(i)
        entry = {
            "batch_label": f"synthetic {f}",
            "labels": [int(v) for v in labels],
            "data": images.transpose(0, 3, 1, 2).reshape(N, -1),
            "filenames": [f"img_{k}.png" for k in range(N)],
        }
        (folder / f).write_bytes(pickle.dumps(entry, protocol=2))
    meta = {"num_cases_per_batch": N, "label_names": list(CIFAR10_CLASSES), "num_vis": 3072}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    return folder


def expected(train: bool) -> tuple[np.ndarray, np.ndarray]:
    parts = [batch(i) for i in (range(5) if train else [5])]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]).astype(np.int64)


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("MINIRES_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path


# ----- the three forms read alike ----------------------------------------------------------------------
@pytest.mark.parametrize("form", ["archive", "bin", "py"])
@pytest.mark.parametrize("train", [True, False])
def test_every_form_reads_the_same_data(isolated: Path, form: str, train: bool) -> None:
    root = isolated / "root"
    if form == "archive":
        write_archive(root / "cifar-10-binary.tar.gz", bin_members())
    elif form == "bin":
        write_bin_folder(root / "cifar-10-batches-bin", bin_members())
    else:
        write_py_folder(root / "cifar-10-batches-py")
    data = Tiny(root, train=train)
    images, labels = expected(train)
    assert data.source[0] == form
    assert data.data.dtype == np.uint8 and data.data.shape == (len(labels), 32, 32, 3)
    np.testing.assert_array_equal(data.data, images)
    assert data.targets == labels.tolist() and isinstance(data.targets[0], int)
    assert data.classes == list(CIFAR10_CLASSES) and data.class_to_idx["truck"] == 9
    image, target = data[3]
    np.testing.assert_array_equal(image, images[3])
    assert target == labels[3] and len(data) == len(labels)


def test_channel_order_is_rgb_planes(isolated: Path) -> None:
    """Record byte 1 + c*1024 + h*32 + w is channel c of pixel (h, w): data[i, h, w, c]."""
    images, labels = batch(0)
    content = records(images, labels)
    rec = np.frombuffer(content, np.uint8).reshape(N, RECORD)
    data = Tiny(write_archive(isolated / "r" / "cifar-10-binary.tar.gz", bin_members()).parent)
    for i, h, w, c in [(0, 0, 0, 0), (1, 5, 7, 2), (5, 31, 31, 1)]:
        assert data.data[i, h, w, c] == rec[i, 1 + c * 1024 + h * 32 + w]
    assert data.labels[2] == rec[2, 0]


def test_the_loader_makes_channels_first_float_batches(isolated: Path) -> None:
    root = write_archive(isolated / "r" / "cifar-10-binary.tar.gz", bin_members()).parent
    data = Tiny(root)
    x, y = next(iter(DataLoader(data, batch_size=4)))
    assert x.shape == (4, 3, 32, 32) and x.dtype == mr.float32 and y.dtype == mr.int64
    np.testing.assert_allclose(x.numpy(), data.data[:4].transpose(0, 3, 1, 2) / np.float32(255), rtol=1e-6)
    np.testing.assert_array_equal(y.numpy(), data.labels[:4])


def test_matches_torch_to_tensor(isolated: Path, torch) -> None:
    """torchvision's ToTensor on an HWC uint8 image is permute(2, 0, 1) / 255: the same as the loader."""
    root = write_archive(isolated / "r" / "cifar-10-binary.tar.gz", bin_members()).parent
    data = Tiny(root)
    x, _ = next(iter(DataLoader(data, batch_size=N)))
    reference = torch.from_numpy(data.data[:N]).permute(0, 3, 1, 2).float().div(255)
    np.testing.assert_allclose(x.numpy(), reference.numpy(), rtol=1e-6, atol=0)


def test_per_item_transforms_as_torchvision(isolated: Path, torch) -> None:
    """transform= gets the uint8 (32, 32, 3) image (torchvision's PIL image), target_transform= the int;
    the loader then goes item by item and stacks what they return."""
    from minires.data.transforms import Compose, Normalize, ToTensor

    root = write_archive(isolated / "r" / "cifar-10-binary.tar.gz", bin_members()).parent
    mean, std = (0.49, 0.48, 0.45), (0.25, 0.24, 0.26)
    seen = []
    data = Tiny(
        root,
        transform=Compose(
            [lambda image: seen.append(image.shape) or image, ToTensor(), Normalize(mean, std)]
        ),
        target_transform=lambda label: label + 100,
    )
    image, label = data[3]
    assert seen == [(32, 32, 3)] and image.shape == (3, 32, 32) and image.dtype == np.float32
    assert label == int(data.labels[3]) + 100
    want = (
        torch.from_numpy(data.data[3]).permute(2, 0, 1).float().div(255) - torch.tensor(mean)[:, None, None]
    ) / (torch.tensor(std)[:, None, None])
    np.testing.assert_allclose(image, want.numpy(), rtol=1e-5, atol=1e-6)
    x, y = next(iter(DataLoader(data, batch_size=4)))
    assert x.shape == (4, 3, 32, 32) and x.dtype == mr.float32 and y.dtype == mr.int64
    np.testing.assert_allclose(x.numpy()[3], image, rtol=1e-6)
    np.testing.assert_array_equal(y.numpy(), data.labels[:4] + 100)
    with pytest.raises(
        TypeError, match=r"^Tiny.__init__\(\) got an unexpected keyword argument 'transforms'"
    ):
        Tiny(root, transforms=ToTensor())


def test_positional_arguments_in_torchvision_order(isolated: Path) -> None:
    """CIFAR10(root, train, transform, target_transform, download): the transform is used, not dropped."""
    from minires.data.transforms import ToTensor

    root = write_archive(isolated / "r" / "cifar-10-binary.tar.gz", bin_members()).parent
    data = Tiny(root, False, ToTensor(), lambda label: -label, False)
    image, label = data[1]
    assert not data.train and image.shape == (3, 32, 32) and image.dtype == np.float32
    assert label == -int(data.labels[1])
    with pytest.raises(TypeError, match=r"^Tiny: download must be a bool, got 'yes'"):
        Tiny(root, True, None, None, "yes")


# ----- where it is looked for ----------------------------------------------------------------------------
def test_archive_is_preferred_and_search_follows_the_store(isolated: Path, monkeypatch) -> None:
    write_bin_folder(isolated / "env" / "cifar-10" / "cifar-10-batches-bin", bin_members())
    write_archive(isolated / "env" / "cifar-10" / "cifar-10-binary.tar.gz", bin_members())
    monkeypatch.setenv("MINIRES_DATA", str(isolated / "env"))
    assert Tiny().source == ("archive", str(isolated / "env" / "cifar-10" / "cifar-10-binary.tar.gz"))
    monkeypatch.delenv("MINIRES_DATA")
    write_py_folder(isolated / "cache" / "minires" / "cifar-10" / "cifar-10-batches-py")
    assert Tiny().source[0] == "py"


def test_an_explicit_root_is_authoritative(isolated: Path) -> None:
    write_archive(isolated / "cache" / "minires" / "cifar-10" / "cifar-10-binary.tar.gz", bin_members())
    assert Tiny().source[0] == "archive"  # root=None finds the cache
    with pytest.raises(FileNotFoundError) as info:
        Tiny(isolated / "empty")
    text = str(info.value)
    assert "Tiny: cifar-10-binary.tar.gz was not found in root=" in text and str(isolated / "empty") in text
    assert "only place looked" in text and "download=True" in text and "root=None" in text
    assert str(isolated / "cache") not in text


# ----- damaged copies are refused by name ----------------------------------------------------------------
def test_the_real_class_checks_the_archive_size_and_md5(isolated: Path) -> None:
    class Sized(CIFAR10):
        records_per_file = N

    path = write_archive(isolated / "r" / "cifar-10-binary.tar.gz", bin_members())
    with pytest.raises(
        DataFileError, match=r"cifar-10-binary.tar.gz: the archive is \d+ bytes, expected 170052171"
    ):
        Sized(path.parent)
    Sized.archive_size = os.path.getsize(path)
    md5 = hashlib.md5(path.read_bytes()).hexdigest()
    with pytest.raises(DataFileError) as info:
        Sized(path.parent)
    assert f"its MD5 is {md5}, expected c32a1d4ab5d03f1284b67883e8d87530" in str(info.value)
    assert "It was not used" in str(info.value) and "To fix" in str(info.value)
    Sized.archive_md5 = md5
    assert len(Sized(path.parent)) == 5 * N


@pytest.mark.parametrize(
    "overrides, message",
    [
        (
            {"data_batch_3.bin": records(*batch(2))[:-1]},
            r"data_batch_3.bin: the member is 18437 bytes, expected 18438",
        ),
        (
            {"data_batch_2.bin": records(*batch(1, N + 1))},
            r"data_batch_2.bin: the member is \d+ bytes, expected",
        ),
        ({"data_batch_5.bin": None}, r"no member cifar-10-batches-bin/data_batch_5.bin"),
        ({"batches.meta.txt": None}, r"no member cifar-10-batches-bin/batches.meta.txt"),
        ({"batches.meta.txt": b"cat\ndog\n"}, r"batches.meta.txt: expected 10 class names, got 2"),
        (
            {"data_batch_1.bin": records(batch(0)[0], np.array([0, 1, 2, 10, 3, 4], np.uint8))},
            r"data_batch_1.bin: labels must lie in \[0, 10\), found 10",
        ),
    ],
)
def test_damaged_archive_members_are_refused_by_name(isolated: Path, overrides, message: str) -> None:
    root = write_archive(isolated / "r" / "cifar-10-binary.tar.gz", bin_members(overrides)).parent
    with pytest.raises(DataFileError, match=message):
        Tiny(root)


@pytest.mark.parametrize("cut", [0.5, 0.95])
def test_truncated_archive_is_refused(isolated: Path, cut: float) -> None:
    path = write_archive(isolated / "r" / "cifar-10-binary.tar.gz", bin_members())
    blob = path.read_bytes()
    path.write_bytes(blob[: int(len(blob) * cut)])
    with pytest.raises(DataFileError, match="cifar-10-binary.tar.gz: the archive is truncated or corrupt"):
        Tiny(path.parent)


def test_corrupt_gzip_stream_is_refused(isolated: Path) -> None:
    path = write_archive(isolated / "r" / "cifar-10-binary.tar.gz", bin_members())
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    path.write_bytes(bytes(blob))
    with pytest.raises(DataFileError, match="truncated or corrupt"):
        Tiny(path.parent)


def test_nothing_is_extracted_and_links_are_refused(isolated: Path) -> None:
    """A member named ../escape or /abs is never written; a link in place of a batch is refused."""
    traversal = tarfile.TarInfo("../../escape.txt")
    traversal.size = 3
    absolute = tarfile.TarInfo(str(isolated / "absolute.txt"))
    absolute.size = 3
    path = write_archive(
        isolated / "r" / "cifar-10-binary.tar.gz", bin_members(), extra=[traversal, absolute]
    )
    before = sorted(p for p in isolated.rglob("*"))
    data = Tiny(path.parent)
    assert len(data) == 5 * N
    assert sorted(p for p in isolated.rglob("*")) == before  # nothing written anywhere
    assert not (isolated / "absolute.txt").exists() and not (isolated.parent / "escape.txt").exists()

    link = tarfile.TarInfo("cifar-10-batches-bin/data_batch_1.bin")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    members = bin_members({"data_batch_1.bin": None})
    path = write_archive(isolated / "s" / "cifar-10-binary.tar.gz", members, extra=[link])
    with pytest.raises(DataFileError, match="data_batch_1.bin: the member is not a regular file"):
        Tiny(path.parent)


def test_duplicate_member_is_refused(isolated: Path) -> None:
    dup = tarfile.TarInfo("cifar-10-batches-bin/test_batch.bin")
    dup.size = N * RECORD
    path = write_archive(isolated / "r" / "cifar-10-binary.tar.gz", bin_members(), extra=[dup])
    with pytest.raises(DataFileError, match="test_batch.bin: the member appears twice"):
        Tiny(path.parent, train=False)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (
            {"test_batch.bin": records(*batch(5))[:100]},
            r"test_batch.bin: 100 bytes, expected 18438 .*truncated",
        ),
        ({"test_batch.bin": None}, r"test_batch.bin: the file is missing"),
        ({"batches.meta.txt": b"\xff\xfe"}, r"batches.meta.txt: the class names are not ASCII"),
    ],
)
def test_damaged_bin_folder_is_refused_by_name(isolated: Path, overrides, message: str) -> None:
    root = isolated / "r"
    write_bin_folder(root / "cifar-10-batches-bin", bin_members(overrides))
    with pytest.raises(DataFileError, match=message):
        Tiny(root, train=False)


# ----- torchvision's pickles: checked, and never able to run code ---------------------------------------
class _Planted:
    """Pickles to a call of ``open(path, "w")``: unpickling it with pickle.load would create the file."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_a_malicious_pickle_is_refused_and_runs_nothing(isolated: Path) -> None:
    folder = write_py_folder(isolated / "r" / "cifar-10-batches-py")
    planted = isolated / "planted.txt"
    entry = {"data": np.zeros((N, 3072), np.uint8), "labels": [0] * N, "x": _Planted(str(planted))}
    (folder / "data_batch_2").write_bytes(pickle.dumps(entry, protocol=2))
    with pytest.raises(DataFileError) as info:
        Tiny(folder.parent)
    text = str(info.value)
    assert "data_batch_2: unsafe pickle" in text and "io.open" in text and "not on the allow-list" in text
    assert not planted.exists()
    pickle.loads(pickle.dumps(_Planted(str(planted)))).close()  # given to pickle, it does create the file
    assert planted.exists()


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: np.array([1, "a"], dtype=object), "Python objects"),
        (lambda: np.ma.masked_array([1, 2]), "numpy.ma"),
        (
            lambda: {"data": np.zeros((N, 3072), np.float32), "labels": [0] * N},
            "expected 'data', a uint8 array",
        ),
        (lambda: {"data": np.zeros((N, 3072), np.uint8), "labels": [0] * (N - 1)}, "expected 'labels'"),
        (lambda: [1, 2], "expected a dict, got list"),
    ],
)
def test_pickles_of_anything_else_are_refused(isolated: Path, make, message: str) -> None:
    folder = write_py_folder(isolated / "r" / "cifar-10-batches-py")
    value = make()
    (folder / "data_batch_1").write_bytes(
        pickle.dumps(value if isinstance(value, dict | list) else {"data": value})
    )
    with pytest.raises(DataFileError, match=message):
        Tiny(folder.parent)


def test_truncated_pickle_and_torchvision_md5(isolated: Path) -> None:
    folder = write_py_folder(isolated / "r" / "cifar-10-batches-py")
    blob = (folder / "test_batch").read_bytes()
    (folder / "test_batch").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(DataFileError, match="test_batch: the pickle is truncated or corrupt"):
        Tiny(folder.parent, train=False)

    class Pinned(Tiny):
        py_md5 = CIFAR10.py_md5

    (folder / "test_batch").write_bytes(blob)
    with pytest.raises(DataFileError, match="expected 40351d587109b95175f43aff81a1287e"):
        Pinned(folder.parent, train=False)


# ----- download (http_root: tests/conftest.py) ------------------------------------------------------------
def test_download_verifies_before_keeping(isolated: Path, http_root) -> None:
    served, url = http_root
    good = write_archive(served / "good" / "cifar-10-binary.tar.gz", bin_members())
    (served / "bad").mkdir()
    (served / "bad" / "cifar-10-binary.tar.gz").write_bytes(gzip.compress(b"an error page"))

    class Remote(Tiny):
        archive_md5 = hashlib.md5(good.read_bytes()).hexdigest()
        mirrors = (f"{url}/bad/", f"{url}/good/")

    data = Remote(isolated / "root", download=True)
    assert data.source == ("archive", str(isolated / "root" / "cifar-10" / "cifar-10-binary.tar.gz"))
    assert sorted(os.listdir(isolated / "root" / "cifar-10")) == ["cifar-10-binary.tar.gz"]
    Remote.mirrors = (f"{url}/bad/",)
    with pytest.raises(DataFileError, match="could not download cifar-10-binary.tar.gz"):
        Remote(isolated / "other", download=True)
    assert os.listdir(isolated / "other" / "cifar-10") == []  # no half file, no temporary file
