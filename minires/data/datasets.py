"""``FashionMNIST`` and ``MNIST``: the four IDX files found, verified and read into NumPy arrays.

Where the files are looked for, in order (each directory as ``<dir>/<name>/`` and as ``<dir>/``, where
``<name>`` is ``fashion-mnist`` or ``mnist``, each file raw or gzipped):

    1. ``root`` when given, else ``$MINIRES_DATA`` when set
    2. the user cache, ``~/.cache/minires`` (``$XDG_CACHE_HOME/minires`` when that is set)
    3. the system copy: ``/usr/share/datasets/fashion-mnist`` (Debian's ``dataset-fashion-mnist``)

A missing file is downloaded when ``download=True`` from the official mirrors, with a progress bar,
into a temporary file that is verified and then renamed, into ``<dir>/<name>/`` of the first place.

Every file is verified before use: by the SHA-256 of its uncompressed content where the official hash
is known (so a re-compressed copy passes and a truncated, corrupted or foreign one does not), and always
by its IDX structure (shape, element type, the number of images and labels, the label range). A file that
fails raises ``DataFileError`` naming the file, what was expected and how to fix it; it is never used.
"""

from __future__ import annotations

import os
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

from ..fileio import atomic_open
from .idx import DataFileError, parse_idx, read_bytes, sha256_hex

FASHION_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
DIGIT_CLASSES = tuple(str(d) for d in range(10))


def cache_dir() -> Path:
    """The user cache of minires's datasets: ``$XDG_CACHE_HOME/minires`` or ``~/.cache/minires``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "minires"


class IDXDataset:
    """A 28x28 image classification dataset stored as the four MNIST-style IDX files.

    ``.images`` is a uint8 array (N, 28, 28), ``.labels`` an int64 array (N,), ``.classes`` the class
    names; ``dataset[i]`` is ``(images[i], int(labels[i]))``. ``.files`` maps each file's name to the
    path it was read from.

    A subclass names its files (``resources``: file name -> SHA-256 of the uncompressed content, or None
    where no official hash is pinned), the sizes of its splits, its directory name, its mirrors and
    system directories. Used directly, ``IDXDataset(root)`` reads the four files from ``root`` with the
    structure checks only: a way to train on IDX files of one's own.
    """

    name = "idx"
    resources: dict[str, str | None] = {
        "train-images-idx3-ubyte": None,
        "train-labels-idx1-ubyte": None,
        "t10k-images-idx3-ubyte": None,
        "t10k-labels-idx1-ubyte": None,
    }
    split_sizes: dict[bool, int | None] = {True: None, False: None}  # train -> expected N (None: any)
    classes: tuple[str, ...] = tuple(str(d) for d in range(10))
    mirrors: tuple[str, ...] = ()
    system_dirs: tuple[str, ...] = ()
    fix_hint = "put the four IDX files (raw or .gz) in one directory and pass it as root"

    def __init__(
        self, root: str | os.PathLike | None = None, train: bool = True, download: bool = True
    ) -> None:
        self.train = bool(train)
        self.root = None if root is None else os.fspath(root)
        prefix = "train" if self.train else "t10k"
        image_name, label_name = f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte"
        self.files = {name: self._locate(name, download) for name in (image_name, label_name)}
        images = self._load(image_name)
        labels = self._load(label_name)
        self._check(images, labels, image_name, label_name)
        self.images = images  # (N, 28, 28) uint8
        self.labels = labels.astype(np.int64)  # (N,)

    # ----- torch-style access ---------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[np.ndarray, int]:
        return self.images[index], int(self.labels[index])

    @property
    def data(self) -> np.ndarray:
        """torchvision's name for ``images``."""
        return self.images

    @property
    def targets(self) -> np.ndarray:
        """torchvision's name for ``labels``."""
        return self.labels

    def __repr__(self) -> str:
        split = "train" if self.train else "test"
        where = os.path.dirname(next(iter(self.files.values())))
        return f"{type(self).__name__}({split}, {len(self)} images, from {where})"

    # ----- finding the files ----------------------------------------------------------------------------
    def search_dirs(self) -> list[Path]:
        """The directories looked in, in order (see the module docstring)."""
        first = self.root if self.root is not None else os.environ.get("MINIRES_DATA") or None
        dirs: list[Path] = []
        if first is not None:
            dirs += [Path(first) / self.name, Path(first)]
        dirs += [cache_dir() / self.name]
        dirs += [Path(d) for d in self.system_dirs]
        return dirs

    def download_dir(self) -> Path:
        """Where a downloaded file goes: ``<root or $MINIRES_DATA or the cache>/<name>``."""
        first = self.root if self.root is not None else os.environ.get("MINIRES_DATA") or None
        return (Path(first) if first is not None else cache_dir()) / self.name

    def _locate(self, name: str, download: bool) -> str:
        tried = []
        for directory in self.search_dirs():
            for candidate in (directory / name, directory / f"{name}.gz"):
                tried.append(str(candidate))
                if candidate.is_file():
                    return str(candidate)
        if download and self.mirrors:
            return self._download(name)
        how = "pass download=True, or " if self.mirrors and not download else ""
        raise FileNotFoundError(
            f"{type(self).__name__}: {name} was not found; looked for {', '.join(tried)}. "
            f"To fix: {how}{self.fix_hint}."
        )

    def _download(self, name: str) -> str:
        target_dir = self.download_dir()
        target_dir.mkdir(parents=True, exist_ok=True)
        target = target_dir / f"{name}.gz"
        errors = []
        for mirror in self.mirrors:
            url = f"{mirror.rstrip('/')}/{name}.gz"
            try:
                _fetch(url, target, lambda path, url=url: self._verify_download(name, path, url))
                return str(target)
            except (OSError, DataFileError) as exc:  # URLError is an OSError
                errors.append(f"{url}: {exc}")
        raise DataFileError(
            f"{type(self).__name__}: could not download {name}:\n  "
            + "\n  ".join(errors)
            + f"\nTo fix: {self.fix_hint}."
        )

    # ----- verifying and reading ------------------------------------------------------------------------
    def _verify(self, name: str, content: bytes, path: str | os.PathLike) -> None:
        """Raise ``DataFileError`` unless ``content`` hashes to the official SHA-256 of ``name``."""
        expected = self.resources[name]
        if expected is None:
            return
        actual = sha256_hex(content)
        if actual != expected:
            raise DataFileError(
                f"{type(self).__name__}: {os.fspath(path)} is not the official {name}: the SHA-256 of its "
                f"uncompressed content is {actual}, expected {expected} (the file is truncated, "
                f"corrupted or from another dataset). To fix: delete it and run again with download=True, "
                f"or {self.fix_hint}."
            )

    def _verify_download(self, name: str, path: str, url: str) -> None:
        """A download is kept only if it hashes right (where a hash is pinned) and parses as IDX: an error
        page or a cut-off transfer never lands in the cache."""
        content = read_bytes(path)
        self._verify(name, content, url)
        parse_idx(content, url)

    def _load(self, name: str) -> np.ndarray:
        path = self.files[name]
        try:
            content = read_bytes(path)
            self._verify(name, content, path)
            return parse_idx(content, path)
        except DataFileError as exc:
            message = str(exc)
            if "To fix" not in message:
                message += f". To fix: delete it and run again with download=True, or {self.fix_hint}."
            raise DataFileError(f"{type(self).__name__}: {message}") from None

    def _check(self, images: np.ndarray, labels: np.ndarray, image_name: str, label_name: str) -> None:
        """The structure every split must have, hash or no hash."""

        def fail(name: str, problem: str) -> None:
            raise DataFileError(
                f"{type(self).__name__}: {self.files[name]}: {problem}. To fix: {self.fix_hint}."
            )

        if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
            fail(image_name, f"expected uint8 images of shape (N, 28, 28), got {images.dtype} {images.shape}")
        if labels.dtype != np.uint8 or labels.ndim != 1:
            fail(label_name, f"expected uint8 labels of shape (N,), got {labels.dtype} {labels.shape}")
        expected = self.split_sizes[self.train]
        if expected is not None and len(images) != expected:
            fail(image_name, f"expected {expected} images, got {len(images)}")
        if len(labels) != len(images):
            fail(label_name, f"{len(labels)} labels for the {len(images)} images of {self.files[image_name]}")
        if labels.size and int(labels.max()) >= len(self.classes):
            fail(label_name, f"labels must lie in [0, {len(self.classes)}), found {int(labels.max())}")


class FashionMNIST(IDXDataset):
    """Zalando's Fashion-MNIST: 60,000 training and 10,000 test images of 10 kinds of clothing.

    ``FashionMNIST(root=None, train=True, download=True)``; every file is checked against the SHA-256 of
    the official uncompressed content.
    """

    name = "fashion-mnist"
    resources = {
        "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    }
    split_sizes = {True: 60000, False: 10000}
    classes = FASHION_CLASSES
    mirrors = (
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion/",
    )
    system_dirs = ("/usr/share/datasets/fashion-mnist",)
    fix_hint = (
        "install Debian's copy (apt-get install dataset-fashion-mnist), or put the official files in "
        "~/.cache/minires/fashion-mnist"
    )


class MNIST(IDXDataset):
    """LeCun, Cortes and Burges's MNIST digits: 60,000 training and 10,000 test images.

    ``MNIST(root=None, train=True, download=True)``. No SHA-256 of the uncompressed official files is
    pinned here yet (none was at hand to compute it from), so MNIST files get the structure checks only:
    the element type, the shapes, 60,000/10,000 items and labels in 0-9.
    """

    name = "mnist"
    split_sizes = {True: 60000, False: 10000}
    classes = DIGIT_CLASSES
    mirrors = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/")
    system_dirs = ("/usr/share/datasets/mnist",)
    fix_hint = "put the official files in ~/.cache/minires/mnist"


def _fetch(url: str, target: Path, verify: Any) -> None:
    """Download ``url`` into a temporary file beside ``target``, ``verify(temp_path)``, then rename it:
    ``target`` is either absent or whole and verified (``atomic_open`` removes the temporary file on any
    failure)."""
    try:
        from tqdm import tqdm
    except ImportError:  # tqdm is a dependency, but a download must not fail for want of a progress bar
        tqdm = None
    with atomic_open(target, "wb") as out, urllib.request.urlopen(url, timeout=60) as response:
        total = int(response.headers.get("Content-Length") or 0) or None
        bar = (
            None
            if tqdm is None
            else tqdm(total=total, unit="B", unit_scale=True, desc=target.name, leave=False)
        )
        while chunk := response.read(1 << 16):
            out.write(chunk)
            if bar is not None:
                bar.update(len(chunk))
        if bar is not None:
            bar.close()
        if total is not None and out.tell() != total:
            raise DataFileError(f"the download stopped after {out.tell()} of {total} bytes")
        out.flush()
        verify(out.name)
