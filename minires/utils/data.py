"""``minires.utils.data``: torch.utils.data's names, so that ``from torch.utils.data import DataLoader``
ports by changing the import. The classes live in ``minires.data``.

    from minires.utils.data import DataLoader, Dataset, TensorDataset, random_split
"""

from ..data.dataset import ConcatDataset, Dataset, Subset, TensorDataset, random_split
from ..data.distributed import DistributedSampler
from ..data.loader import DataLoader
from ..data.sampler import BatchSampler, RandomSampler, Sampler, SequentialSampler, SubsetRandomSampler

__all__ = [
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
