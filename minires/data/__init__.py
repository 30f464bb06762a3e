"""``minires.data``: the Fashion-MNIST, MNIST and CIFAR-10 datasets, transforms, torch.utils.data's
datasets and samplers, and the ``DataLoader`` (``minires.utils.data`` re-exports torch's names).

from minires.data import CIFAR10, DataLoader, FashionMNIST, TensorDataset, random_split
from minires.data.transforms import Compose, Normalize, RandomCrop, RandomHorizontalFlip, Resize, ToTensor
"""

from . import transforms
from .cifar import CIFAR10, CIFAR10_CLASSES
from .dataset import ConcatDataset, Dataset, Subset, TensorDataset, random_split
from .datasets import FASHION_CLASSES, MNIST, FashionMNIST, IDXDataset
from .distributed import DistributedSampler
from .idx import DataFileError, file_sha256, idx_bytes, parse_idx, read_idx
from .loader import DataLoader
from .sampler import BatchSampler, RandomSampler, Sampler, SequentialSampler, SubsetRandomSampler
from .store import cache_dir

__all__ = [
    "CIFAR10",
    "CIFAR10_CLASSES",
    "FASHION_CLASSES",
    "MNIST",
    "BatchSampler",
    "ConcatDataset",
    "Dataset",
    "DataFileError",
    "DataLoader",
    "DistributedSampler",
    "FashionMNIST",
    "IDXDataset",
    "RandomSampler",
    "Sampler",
    "SequentialSampler",
    "Subset",
    "SubsetRandomSampler",
    "TensorDataset",
    "cache_dir",
    "file_sha256",
    "idx_bytes",
    "parse_idx",
    "random_split",
    "read_idx",
    "transforms",
]
