"""``minires.data``: the Fashion-MNIST, MNIST and CIFAR-10 datasets, batch transforms and the ``DataLoader``.

from minires.data import CIFAR10, DataLoader, FashionMNIST
from minires.data.transforms import Compose, Normalize, RandomCrop, RandomHorizontalFlip, Resize
"""

from . import transforms
from .cifar import CIFAR10, CIFAR10_CLASSES
from .datasets import FASHION_CLASSES, MNIST, FashionMNIST, IDXDataset
from .distributed import DistributedSampler
from .idx import DataFileError, file_sha256, idx_bytes, parse_idx, read_idx
from .loader import DataLoader
from .store import cache_dir

__all__ = [
    "CIFAR10",
    "CIFAR10_CLASSES",
    "FASHION_CLASSES",
    "MNIST",
    "DataFileError",
    "DataLoader",
    "DistributedSampler",
    "FashionMNIST",
    "IDXDataset",
    "cache_dir",
    "file_sha256",
    "idx_bytes",
    "parse_idx",
    "read_idx",
    "transforms",
]
