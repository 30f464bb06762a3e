"""``minires.data``: the Fashion-MNIST and MNIST datasets, batch transforms and the ``DataLoader``.

from minires.data import DataLoader, FashionMNIST
from minires.data.transforms import Compose, Normalize, RandomCrop, RandomHorizontalFlip, Resize
"""

from . import transforms
from .datasets import FASHION_CLASSES, MNIST, FashionMNIST, IDXDataset, cache_dir
from .idx import DataFileError, file_sha256, idx_bytes, parse_idx, read_idx
from .loader import DataLoader

__all__ = [
    "FASHION_CLASSES",
    "MNIST",
    "DataFileError",
    "DataLoader",
    "FashionMNIST",
    "IDXDataset",
    "cache_dir",
    "file_sha256",
    "idx_bytes",
    "parse_idx",
    "read_idx",
    "transforms",
]
