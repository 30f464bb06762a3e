"""``FashionMNIST`` and ``MNIST``: the four IDX files found, verified and read into NumPy arrays.

Where the files are looked for is ``minires.data.store``'s rule: in ``root`` only when it is given
(``<root>/<name>/``, ``<root>/`` and torchvision's ``<root>/FashionMNIST/raw/``), else ``$MINIRES_DATA``,
the user cache ``~/.cache/minires/<name>`` and the system copy (``/usr/share/datasets/fashion-mnist``,
Debian's ``dataset-fashion-mnist``). In each folder the official ``.gz`` file is taken before a raw one.
A missing file is downloaded when ``download=True`` from the official mirrors, with a progress bar, into a
temporary file that is verified and then renamed.

Every file is verified before use:

- the official compressed file is recognized by its published MD5 (what torchvision checks);
- any other copy (unpacked, or re-compressed as Debian's) by the SHA-256 of its uncompressed content where
  that is pinned (Fashion-MNIST); where it is not (MNIST), only the official ``.gz`` file is accepted;
- and always by its IDX structure (shape, element type, the number of images and labels, the label range).

A file that fails raises ``DataFileError`` naming the file, what was expected and how to fix it; it is
never used.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from . import store
from .dataset import VisionDataset
from .idx import GZIP_MAGIC, DataFileError, decompress, parse_idx, sha256_hex

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


class IDXDataset(VisionDataset):
    """A 28x28 image classification dataset stored as the four MNIST-style IDX files.

    ``IDXDataset(root=None, train=True, transform=None, target_transform=None, download=True)``: torchvision's
    order of the arguments (``FashionMNIST(root, True, ToTensor())``). ``.images`` is a uint8 array
    (N, 28, 28), ``.labels`` an int64 array (N,), ``.classes`` the class names; ``dataset[i]`` is
    ``(images[i], int(labels[i]))``, each passed through ``transform`` and ``target_transform`` when they
    are given (``VisionDataset``'s items; the image is the uint8 (28, 28) array where torchvision gives a
    PIL image). ``.files`` maps each file's name to the path it was read from.

    A subclass names its files (``resources``: file name -> SHA-256 of the uncompressed content, or None
    where no official hash is pinned; ``gz_md5``: file name -> MD5 of the official ``.gz`` file), the
    sizes of its splits, its directory name, its mirrors, system folders and torchvision's folder.
    Used directly, ``IDXDataset(root)`` reads the four files from ``root`` with the structure checks
    only: a way to train on IDX files of one's own.
    """

    name = "idx"
    resources: dict[str, str | None] = {
        "train-images-idx3-ubyte": None,
        "train-labels-idx1-ubyte": None,
        "t10k-images-idx3-ubyte": None,
        "t10k-labels-idx1-ubyte": None,
    }
    gz_md5: dict[str, str] = {}
    split_sizes: dict[bool, int | None] = {True: None, False: None}  # train -> expected N (None: any)
    classes: tuple[str, ...] = tuple(str(d) for d in range(10))
    mirrors: tuple[str, ...] = ()
    system_dirs: tuple[str, ...] = ()
    torchvision_dirs: tuple[str, ...] = ()
    fix_hint = "put the four IDX files (raw or .gz) in one directory and pass it as root"

    def __init__(
        self,
        root: str | os.PathLike | None = None,
        train: bool = True,
        transform: Callable[[np.ndarray], Any] | None = None,
        target_transform: Callable[[int], Any] | None = None,
        download: bool = True,
        *args: Any,
        **kwargs: Any,
    ) -> None:
        download = self._set_arguments(train, transform, target_transform, download, args, kwargs)
        self.root = None if root is None else os.fspath(root)
        prefix = "train" if self.train else "t10k"
        image_name, label_name = f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte"
        self.files = {name: self._locate(name, download) for name in (image_name, label_name)}
        images = self._load(image_name)
        labels = self._load(label_name)
        self._check(images, labels, image_name, label_name)
        self.images = images  # (N, 28, 28) uint8
        self.labels = labels.astype(np.int64)  # (N,)

    # ----- torch-style access (``__len__`` and ``__getitem__``: VisionDataset's) ------------------------
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
        """The folders looked in, in order (see ``minires.data.store``)."""
        return store.search_dirs(self.name, self.root, self.system_dirs, self.torchvision_dirs)

    def download_dir(self) -> Path:
        """Where a downloaded file goes: ``<root or $MINIRES_DATA or the cache>/<name>``."""
        return store.download_dir(self.name, self.root)

    def _locate(self, name: str, download: bool) -> str:
        tried = []
        for directory in self.search_dirs():
            for candidate in (directory / f"{name}.gz", directory / name):
                tried.append(str(candidate))
                if candidate.is_file():
                    return str(candidate)
        if download and self.mirrors:
            return self._download(name)
        raise store.not_found(type(self).__name__, name, self.root, self.name, tried, download, self.fix_hint)

    def _download(self, name: str) -> str:
        return store.fetch_from_mirrors(
            type(self).__name__,
            f"{name}.gz",
            self.mirrors,
            self.download_dir() / f"{name}.gz",
            lambda path, url: self._verify_download(name, path, url),
            self.fix_hint,
        )

    # ----- verifying and reading ------------------------------------------------------------------------
    def _verified_content(self, name: str, path: str | os.PathLike, where: str) -> bytes:
        """The uncompressed content of ``path`` once it is shown to be the official ``name`` (see the
        module docstring); ``where`` (the path or URL) is named in errors."""
        with open(path, "rb") as f:
            raw = f.read()
        md5 = self.gz_md5.get(name)
        if md5 is not None and raw.startswith(GZIP_MAGIC) and store.md5_hex(raw) == md5:
            return decompress(raw, where)  # the official compressed file itself
        content = decompress(raw, where) if raw.startswith(GZIP_MAGIC) else raw
        expected = self.resources.get(name)
        if expected is not None:
            actual = sha256_hex(content)
            if actual != expected:
                raise DataFileError(
                    f"{type(self).__name__}: {where} is not the official {name}: the SHA-256 of its "
                    f"uncompressed content is {actual}, expected {expected} (the file is truncated, "
                    f"corrupted or from another dataset). To fix: delete it and run again with "
                    f"download=True, or {self.fix_hint}."
                )
        elif md5 is not None:
            raise DataFileError(
                f"{type(self).__name__}: {where} is not the official {name}.gz: its MD5 is "
                f"{store.md5_hex(raw)}, expected {md5}; no SHA-256 of the uncompressed {name} is pinned, "
                f"so only the official compressed file can be verified. To fix: delete it and run again "
                f"with download=True, or {self.fix_hint}."
            )
        return content

    def _verify_download(self, name: str, path: str, url: str) -> None:
        """A download is kept only if it is verified and parses as IDX: an error page or a cut-off
        transfer never lands in the cache."""
        parse_idx(self._verified_content(name, path, url), url)

    def _load(self, name: str) -> np.ndarray:
        path = self.files[name]
        try:
            return parse_idx(self._verified_content(name, path, path), path)
        except DataFileError as exc:
            message = str(exc)
            if "To fix" not in message:
                message += f". To fix: delete it and run again with download=True, or {self.fix_hint}."
            if not message.startswith(type(self).__name__):
                message = f"{type(self).__name__}: {message}"
            raise DataFileError(message) from None

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

    ``FashionMNIST(root=None, train=True, transform=None, target_transform=None, download=True)``; every
    file is checked against the SHA-256 of the official uncompressed content.
    """

    name = "fashion-mnist"
    resources = {
        "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    }
    gz_md5 = {
        "train-images-idx3-ubyte": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte": "bb300cfdad3c16e7a12a480ee83cd310",
    }
    split_sizes = {True: 60000, False: 10000}
    classes = FASHION_CLASSES
    mirrors = (
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion/",
    )
    system_dirs = ("/usr/share/datasets/fashion-mnist",)
    torchvision_dirs = ("FashionMNIST/raw",)
    fix_hint = (
        "install Debian's copy (apt-get install dataset-fashion-mnist), or put the official files in "
        "~/.cache/minires/fashion-mnist"
    )


class MNIST(IDXDataset):
    """LeCun, Cortes and Burges's MNIST digits: 60,000 training and 10,000 test images.

    ``MNIST(root=None, train=True, transform=None, target_transform=None, download=True)``. The official
    compressed files are recognized by
    their published MD5 (torchvision's). No SHA-256 of the uncompressed content is pinned (none was at
    hand to compute it from), so an unpacked or re-compressed copy cannot be verified and is refused:
    keep the official ``.gz`` files (torchvision's ``MNIST/raw`` folder has them beside the unpacked ones).
    """

    name = "mnist"
    gz_md5 = {
        "train-images-idx3-ubyte": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte": "ec29112dd5afa0611ce80d1b7f02629c",
    }
    split_sizes = {True: 60000, False: 10000}
    classes = DIGIT_CLASSES
    mirrors = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/")
    system_dirs = ("/usr/share/datasets/mnist",)
    torchvision_dirs = ("MNIST/raw",)
    fix_hint = "put the official .gz files in ~/.cache/minires/mnist"
