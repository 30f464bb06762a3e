"""torch's ``default_collate`` and ``default_convert``: the structure of what a ``DataLoader`` returns.

``collate(items)`` makes one batch of a list of dataset items, rule for rule as
``torch.utils.data.default_collate``, recursively (a tuple inside a tuple, a dict of tuples, ...):

    item (each of the batch's)    batch
    Tensor                        the items stacked, (B, ...), with their dtype
    NumPy array, NumPy scalar     stacked with their dtype (string and object arrays are refused)
    int, float, bool              a (B,) array: int64, float64, bool
    str, bytes                    the strings as they come: a tuple when they are the fields of sequence
                                  items (``zip``'s columns), a list when they are the items themselves or
                                  the values of a mapping (torch hands back the list it was given)
    mapping (dict, ...)           the same type, keys in the first item's order, each key's values collated
    namedtuple                    the same type, each field collated
    tuple                         a list, each field collated (a one-field item gives a one-element list)
    list (any other sequence)     the same type, each position collated; items of unequal lengths are
                                  refused with torch's RuntimeError

``convert(item)`` is ``default_convert``, what the loader returns for each item with ``batch_size=None``:
a Tensor and a numeric NumPy array (or NumPy scalar, as a 0-d array) become the loader's Tensor; Python
numbers, strings and NumPy string arrays stay as they are; a tuple becomes a list; mappings, namedtuples
and lists keep their type, their values converted.

Both leave the arrays as they are, on the host (or where a Tensor's data is): the ``DataLoader`` moves them
to its device and wraps them as Tensors on the main thread (``to_tensors``), after collating in a worker.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, MutableMapping, MutableSequence, Sequence
from typing import Any

import numpy as np

from .. import backend
from ..tensor import Tensor

COLLATE_ERROR = (
    "DataLoader: default_collate: batch must contain tensors, numpy arrays, numbers, dicts or lists"
)


def collate(batch: Sequence[Any]) -> Any:
    """One batch of ``batch``'s items, structured as torch's ``default_collate`` structures it (see the
    module docstring); the leaves are stacked arrays, and strings as they come."""
    first = batch[0]
    if isinstance(first, Tensor):
        xp = backend.get_array_module(first.data)
        return xp.stack([item.data for item in batch])
    if isinstance(first, str | bytes):
        return batch
    if isinstance(first, Mapping):
        return rebuild(first, [collate([item[key] for item in batch]) for key in first])
    if _is_namedtuple(first):
        return rebuild(first, [collate(column) for column in zip(*batch, strict=True)])
    if isinstance(first, Sequence):
        if any(len(item) != len(first) for item in batch):
            raise RuntimeError(
                "DataLoader: default_collate: each element in list of batch should be of equal size"
            )
        columns = [collate(column) for column in zip(*batch, strict=True)]
        return columns if isinstance(first, tuple) else rebuild(first, columns)
    return _stack(batch)


def _stack(values: Sequence[Any]) -> Any:
    """Arrays, NumPy scalars and Python numbers stacked: dtypes kept, Python ints int64, floats float64,
    bools bool (NumPy's reading of them, which is torch's)."""
    if is_array(values[0]):
        if values[0].dtype.kind in "OSUV":
            raise TypeError(
                f"{COLLATE_ERROR}; found {values[0].dtype.str} (pass collate_fn= to batch such items)"
            )
        return backend.get_array_module(values[0]).stack(values)
    stacked = np.stack([np.asarray(v) for v in values])
    if stacked.dtype.kind in "OSUV":
        raise TypeError(f"{COLLATE_ERROR}; found {type(values[0])} (pass collate_fn= to batch such items)")
    return stacked


def convert(item: Any) -> Any:
    """``item`` as torch's ``default_convert`` gives it (see the module docstring); numeric arrays are left
    for ``to_tensors`` to wrap."""
    if isinstance(item, Tensor):
        return item.data
    if isinstance(item, np.generic) and item.dtype.kind not in "OSUV":
        return np.asarray(item)  # a NumPy scalar: torch.as_tensor's 0-d tensor
    if isinstance(item, Mapping):
        return rebuild(item, [convert(value) for value in item.values()])
    if _is_namedtuple(item):
        return rebuild(item, [convert(value) for value in item])
    if isinstance(item, tuple):
        return [convert(value) for value in item]
    if is_container(item):
        return rebuild(item, [convert(value) for value in item])
    return item


def to_tensors(structure: Any, device: str) -> Any:
    """``structure`` with each numeric array moved to ``device`` and made a Tensor; containers keep their
    types, and strings, numbers and string arrays stay as they are."""
    if is_container(structure):
        return rebuild(structure, [to_tensors(value, device) for value in fields(structure)])
    if is_numeric_array(structure):
        return Tensor(backend.to_device(structure, device))
    return structure


def fields(structure: Any) -> list[Any]:
    """A container's values in order: a mapping's by its keys, a sequence's by position."""
    return list(structure.values() if isinstance(structure, Mapping) else structure)


def rebuild(like: Any, values: list[Any]) -> Any:
    """A container of ``like``'s kind with ``values`` in its places, by torch's rules: a mutable mapping or
    sequence is copied and its values replaced (so ``OrderedDict`` and list subclasses keep their type), a
    namedtuple or other mapping or sequence is made by its type; where that type cannot be built so, a
    dict or a list. A plain tuple stays a tuple (``collate`` and ``convert`` make lists of tuples first)."""
    try:
        if isinstance(like, Mapping):
            if isinstance(like, MutableMapping):
                clone = copy.copy(like)
                clone.update(zip(like, values, strict=True))
                return clone
            return type(like)(dict(zip(like, values, strict=True)))
        if _is_namedtuple(like):
            return type(like)(*values)
        if type(like) is tuple:
            return tuple(values)
        if isinstance(like, MutableSequence):
            clone = copy.copy(like)
            for i, value in enumerate(values):
                clone[i] = value
            return clone
        return type(like)(values)
    except TypeError:
        return dict(zip(like, values, strict=True)) if isinstance(like, Mapping) else list(values)


def is_array(x: Any) -> bool:
    """A NumPy or CuPy array."""
    return isinstance(x, np.ndarray) or (backend.cupy is not None and isinstance(x, backend.cupy.ndarray))


def is_numeric_array(x: Any) -> bool:
    """An array a Tensor can hold: not of strings, bytes, objects or records (torch's ``[SaUO]`` rule)."""
    return is_array(x) and x.dtype.kind not in "OSUV"


def is_container(x: Any) -> bool:
    """A mapping or a sequence other than a string: what ``collate`` and ``convert`` recurse into."""
    return isinstance(x, Mapping) or (isinstance(x, Sequence) and not isinstance(x, str | bytes))


def _is_namedtuple(x: Any) -> bool:
    return isinstance(x, tuple) and hasattr(x, "_fields")
