"""``CIFAR10``: Krizhevsky's 60,000 32x32 colour images in 10 classes, read without ever running a pickle.

The official binary version, ``cifar-10-binary.tar.gz`` (170,052,171 bytes, MD5
c32a1d4ab5d03f1284b67883e8d87530), holds in its folder ``cifar-10-batches-bin/``:

    data_batch_1.bin ... data_batch_5.bin, test_batch.bin
        10,000 records each, a record = 1 label byte (0-9) + 3,072 pixel bytes:
        the 1,024 red values of the 32x32 image row by row, then the green, then the blue
    batches.meta.txt
        the 10 class names, one per line

What is read, in each folder that ``minires.data.store`` searches (``<dir>/cifar-10/`` and ``<dir>/``):

1. the archive ``cifar-10-binary.tar.gz``, checked by its size and MD5, then read member by member straight
   from the compressed stream. Only the members named above are read (each must be a regular file of the
   exact size); nothing is ever extracted, so no member, whatever its name, can write anywhere;
2. the extracted folder ``cifar-10-batches-bin/``, checked by the structure (no official hash of the
   single files is published): exact sizes, labels in 0-9, ten class names;
3. torchvision's pickled folder ``cifar-10-batches-py/``: each file checked against torchvision's MD5,
   then unpickled by ``minires.safe_pickle``, which builds nothing but NumPy arrays, lists, dicts, strings
   and numbers (a pickle that asks for anything else is refused, naming it).

A damaged, truncated or wrong-size file raises ``DataFileError`` naming it and how to fix it; it is never
used. ``download=True`` fetches the archive from the official site into a temporary file, verifies it,
then renames it into ``<root or $MINIRES_DATA or the cache>/cifar-10/``.
"""

from __future__ import annotations

import gzip
import os
import pickle
import tarfile
import zlib
from collections.abc import Callable
from typing import Any

import numpy as np

from .. import safe_pickle
from . import store
from .dataset import VisionDataset
from .idx import DataFileError

CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
PIXELS = 3 * 32 * 32  # 3,072 bytes per image
RECORD = 1 + PIXELS  # 3,073 bytes per record of the binary version


class CIFAR10(VisionDataset):
    """``CIFAR10(root=None, train=True, transform=None, target_transform=None, download=False)``, as
    torchvision's, in its order (see the module docstring).

    ``.data`` is a uint8 array (N, 32, 32, 3) (height, width, RGB, as torchvision's), ``.targets`` a list
    of ints, ``.classes`` the ten names and ``.class_to_idx`` their indices; ``dataset[i]`` is
    ``(data[i], targets[i])``, each passed through ``transform`` and ``target_transform`` when they are
    given (``VisionDataset``'s items; the image is the uint8 (32, 32, 3) array where torchvision gives a
    PIL image). ``.images`` (the
    same array) and ``.labels`` (int64) are the names the ``DataLoader`` batches by; it turns the
    (B, 32, 32, 3) uint8 batch into float32 (B, 3, 32, 32) in [0, 1], as torchvision's ``ToTensor``.
    ``.source`` says what was read (the archive, or which folder).

    A subclass may change the pinned checks (``archive_md5``, ``archive_size``, ``py_md5``; None: not
    checked) and ``records_per_file``: the tests read small synthetic archives that way.
    """

    name = "cifar-10"
    archive = "cifar-10-binary.tar.gz"
    archive_md5: str | None = "c32a1d4ab5d03f1284b67883e8d87530"
    archive_size: int | None = 170_052_171
    bin_folder = "cifar-10-batches-bin"
    py_folder = "cifar-10-batches-py"
    train_files = tuple(f"data_batch_{i}" for i in range(1, 6))
    test_files = ("test_batch",)
    records_per_file = 10_000
    # torchvision's checksums of its pickled files (cifar-10-python.tar.gz, extracted).
    py_md5: dict[str, str] | None = {
        "data_batch_1": "c99cafc152244af753f735de768cd75f",
        "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
        "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
        "data_batch_4": "634d18415352ddfa80567beed471001a",
        "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
        "test_batch": "40351d587109b95175f43aff81a1287e",
        "batches.meta": "5ff9c542aee3614f3951f8cda6e48888",
    }
    mirrors: tuple[str, ...] = ("https://www.cs.toronto.edu/~kriz/",)
    system_dirs: tuple[str, ...] = ()
    fix_hint = (
        "put the binary version (cifar-10-binary.tar.gz, from https://www.cs.toronto.edu/~kriz/cifar.html) "
        "in ~/.cache/minires/cifar-10, or pass download=True"
    )

    def __init__(
        self,
        root: str | os.PathLike | None = None,
        train: bool = True,
        transform: Callable[[np.ndarray], Any] | None = None,
        target_transform: Callable[[int], Any] | None = None,
        download: bool = False,
        *args: Any,
        **kwargs: Any,
    ) -> None:
        download = self._set_arguments(train, transform, target_transform, download, args, kwargs)
        self.root = None if root is None else os.fspath(root)
        self.source = self._find(download)
        kind, path = self.source
        files = self.train_files if self.train else self.test_files
        if kind == "py":
            batches, classes = self._read_py_folder(path, files)
        else:
            contents = (
                self._read_archive(path, files) if kind == "archive" else self._read_bin_folder(path, files)
            )
            classes = self._parse_meta(
                contents.pop("batches.meta.txt"), self._where(kind, path, "batches.meta.txt")
            )
            batches = [self._parse_records(contents[f], self._where(kind, path, f"{f}.bin")) for f in files]
        self.classes = list(classes)
        self.class_to_idx = {c: i for i, c in enumerate(self.classes)}
        self.data = np.concatenate([images for images, _ in batches])  # (N, 32, 32, 3) uint8
        self.labels = np.concatenate([labels for _, labels in batches]).astype(np.int64)  # (N,)

    # ----- torch-style access (``__len__`` and ``__getitem__``: VisionDataset's) ------------------------
    @property
    def images(self) -> np.ndarray:
        """The ``DataLoader``'s name for ``data``."""
        return self.data

    @images.setter
    def images(self, value: np.ndarray) -> None:
        self.data = value

    @property
    def targets(self) -> list[int]:
        """The labels as a list of ints, as torchvision's (a new list each time: index ``.labels`` in a
        loop); assigning a list replaces the labels."""
        return self.labels.tolist()

    @targets.setter
    def targets(self, value: Any) -> None:
        self.labels = np.asarray(value, dtype=np.int64)

    def __repr__(self) -> str:
        split = "train" if self.train else "test"
        return f"{type(self).__name__}({split}, {len(self)} images, from {self.source[1]})"

    # ----- finding the files ----------------------------------------------------------------------------
    def _find(self, download: bool) -> tuple[str, str]:
        """(kind, path) of the first copy found: ``archive``, ``bin`` or ``py``."""
        tried = []
        for directory in store.search_dirs(self.name, self.root, self.system_dirs):
            for kind, candidate in (
                ("archive", directory / self.archive),
                ("bin", directory / self.bin_folder),
                ("py", directory / self.py_folder),
            ):
                tried.append(str(candidate))
                if candidate.is_file() if kind == "archive" else candidate.is_dir():
                    return kind, str(candidate)
        if download and self.mirrors:
            return "archive", self._download()
        raise store.not_found(
            type(self).__name__, self.archive, self.root, self.name, tried, download, self.fix_hint
        )

    def _download(self) -> str:
        return store.fetch_from_mirrors(
            type(self).__name__,
            self.archive,
            self.mirrors,
            store.download_dir(self.name, self.root) / self.archive,
            lambda path, url: self._check_archive(path, url),
            self.fix_hint,
        )

    @staticmethod
    def _where(kind: str, path: str, member: str) -> str:
        return f"{path}:{member}" if kind == "archive" else os.path.join(path, member)

    def _fail(self, where: str, problem: str) -> DataFileError:
        return DataFileError(
            f"{type(self).__name__}: {where}: {problem}. It was not used. "
            f"To fix: delete it and {self.fix_hint}."
        )

    # ----- the binary archive -----------------------------------------------------------------------------
    def _check_archive(self, path: str, where: str) -> None:
        """The archive's size and MD5, where they are pinned."""
        size = os.path.getsize(path)
        if self.archive_size is not None and size != self.archive_size:
            raise self._fail(where, f"the archive is {size} bytes, expected {self.archive_size}")
        if self.archive_md5 is not None:
            md5 = store.file_md5(path)
            if md5 != self.archive_md5:
                raise self._fail(
                    where, f"not the official archive: its MD5 is {md5}, expected {self.archive_md5}"
                )

    def _read_archive(self, path: str, files: tuple[str, ...]) -> dict[str, bytes]:
        """The wanted members' bytes, read in one pass over the compressed stream; never extracted."""
        self._check_archive(path, path)
        wanted = {f"{self.bin_folder}/{f}.bin": f for f in files}
        wanted[f"{self.bin_folder}/batches.meta.txt"] = "batches.meta.txt"
        contents: dict[str, bytes] = {}
        try:
            # A stream (members in order, no seeking back) through GzipFile, drained to the end below so
            # that the gzip CRC is checked: a flipped bit inside a member does not pass unnoticed.
            with open(path, "rb") as raw, gzip.GzipFile(fileobj=raw) as unzipped:
                with tarfile.open(fileobj=unzipped, mode="r|") as tar:
                    for member in tar:
                        key = wanted.get(member.name)
                        if key is None:
                            continue  # any other member, whatever its name, is skipped unread
                        where = f"{path}:{member.name}"
                        if key in contents:
                            raise self._fail(where, "the member appears twice in the archive")
                        if not member.isfile():
                            raise self._fail(where, "the member is not a regular file (a link or a device)")
                        expected = self.records_per_file * RECORD if key != "batches.meta.txt" else None
                        if expected is not None and member.size != expected:
                            raise self._fail(
                                where,
                                f"the member is {member.size} bytes, expected {expected} "
                                f"({self.records_per_file} records of {RECORD} bytes)",
                            )
                        handle = tar.extractfile(member)
                        assert handle is not None  # a regular file always has one
                        contents[key] = handle.read()
                while unzipped.read(1 << 20):  # to the end: the CRC and length are checked
                    pass
        except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
            raise self._fail(path, f"the archive is truncated or corrupt ({exc})") from None
        missing = [k for k in wanted if wanted[k] not in contents]
        if missing:
            raise self._fail(path, f"the archive has no member {', '.join(missing)}")
        return contents

    # ----- the extracted binary folder --------------------------------------------------------------------
    def _read_bin_folder(self, folder: str, files: tuple[str, ...]) -> dict[str, bytes]:
        contents = {}
        for key, file_name in [(f, f"{f}.bin") for f in files] + [("batches.meta.txt", "batches.meta.txt")]:
            path = os.path.join(folder, file_name)
            if not os.path.isfile(path):
                raise self._fail(path, "the file is missing from the extracted folder")
            with open(path, "rb") as f:
                contents[key] = f.read()
        return contents

    def _parse_records(self, content: bytes, where: str) -> tuple[np.ndarray, np.ndarray]:
        """(images (n, 32, 32, 3) uint8, labels (n,) uint8) of one batch file of the binary version."""
        expected = self.records_per_file * RECORD
        if len(content) != expected:
            raise self._fail(
                where,
                f"{len(content)} bytes, expected {expected} ({self.records_per_file} records of {RECORD} "
                f"bytes{': truncated' if len(content) < expected else ''})",
            )
        records = np.frombuffer(content, dtype=np.uint8).reshape(self.records_per_file, RECORD)
        labels = records[:, 0].copy()  # (n,)
        self._check_labels(labels, where)
        images = records[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)  # (n, 32, 32, 3)
        return np.ascontiguousarray(images), labels

    def _parse_meta(self, content: bytes, where: str) -> list[str]:
        try:
            names = [line.strip() for line in content.decode("ascii").splitlines() if line.strip()]
        except UnicodeDecodeError:
            raise self._fail(where, "the class names are not ASCII text") from None
        if len(names) != len(CIFAR10_CLASSES):
            raise self._fail(where, f"expected {len(CIFAR10_CLASSES)} class names, got {len(names)}")
        return names

    def _check_labels(self, labels: np.ndarray, where: str) -> None:
        if labels.size and int(labels.max()) >= len(CIFAR10_CLASSES):
            raise self._fail(where, f"labels must lie in [0, 10), found {int(labels.max())}")

    # ----- torchvision's pickled folder -------------------------------------------------------------------
    def _read_py_folder(self, folder: str, files: tuple[str, ...]) -> tuple[list, list[str]]:
        """torchvision's ``cifar-10-batches-py``: each file MD5-checked, then read by the allow-list
        unpickler (``minires.safe_pickle``)."""
        batches = []
        for file_name in files:
            entry, where = self._unpickle(folder, file_name)
            data, labels = entry.get("data"), entry.get("labels")
            if (
                not isinstance(data, np.ndarray)
                or data.dtype != np.uint8
                or data.shape != (self.records_per_file, PIXELS)
            ):
                shape = getattr(data, "shape", None)
                raise self._fail(
                    where,
                    f"expected 'data', a uint8 array of shape ({self.records_per_file}, {PIXELS}), got "
                    f"{type(data).__name__} {getattr(data, 'dtype', '')} {shape}",
                )
            if (
                not isinstance(labels, list)
                or len(labels) != self.records_per_file
                or not all(isinstance(v, int) and v >= 0 for v in labels)
            ):
                raise self._fail(where, f"expected 'labels', a list of {self.records_per_file} ints")
            labels_array = np.asarray(labels, dtype=np.int64)
            self._check_labels(labels_array, where)
            batches.append(
                (np.ascontiguousarray(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)), labels_array)
            )
        meta, where = self._unpickle(folder, "batches.meta")
        names = meta.get("label_names")
        if (
            not isinstance(names, list)
            or len(names) != len(CIFAR10_CLASSES)
            or not all(isinstance(n, str) for n in names)
        ):
            raise self._fail(where, "expected 'label_names', a list of the 10 class names")
        return batches, names

    def _unpickle(self, folder: str, file_name: str) -> tuple[dict[str, Any], str]:
        path = os.path.join(folder, file_name)
        if not os.path.isfile(path):
            raise self._fail(path, "the file is missing from torchvision's folder")
        with open(path, "rb") as f:
            blob = f.read()
        expected = None if self.py_md5 is None else self.py_md5.get(file_name)
        if expected is not None and store.md5_hex(blob) != expected:
            raise self._fail(
                path, f"not torchvision's {file_name}: its MD5 is {store.md5_hex(blob)}, expected {expected}"
            )
        try:
            entry = safe_pickle.loads(blob, encoding="latin1")
        except safe_pickle.UnsafePickleError as exc:
            raise self._fail(path, f"unsafe pickle: {exc}") from None
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as exc:
            raise self._fail(
                path, f"the pickle is truncated or corrupt ({type(exc).__name__}: {exc})"
            ) from None
        if not isinstance(entry, dict):
            raise self._fail(path, f"expected a dict, got {type(entry).__name__}")
        return entry, path
