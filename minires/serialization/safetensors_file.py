"""``.safetensors`` files (Hugging Face's format): a flat dict of named arrays, no code, no pickle.

The ``safetensors`` package does the parsing and the writing; it is an optional extra
(``pip install 'minires[interop]'``), imported only when such a file is met. A safetensors file holds a
``str -> array`` dict and nothing else, so it fits a ``state_dict()`` (its ``_metadata``, the modules'
versions, is left out, as ``safetensors.torch.save_file`` leaves it out) but not a whole training
checkpoint. The arrays come back in the order of the file (safetensors sorts them), as NumPy arrays;
bfloat16, which NumPy lacks, becomes float32 (exactly: a bfloat16 is the top half of a float32).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import numpy as np

from .arrays import host_array
from .sniff import BadFile
from .torch_zip import widen_bfloat16

INSTALL = "pip install 'minires[interop]' (or pip install safetensors)"

# safetensors' dtype names -> NumPy's ("BF16" is widened to float32 below).
DTYPES = {
    "F64": np.float64,
    "F32": np.float32,
    "F16": np.float16,
    "I64": np.int64,
    "I32": np.int32,
    "I16": np.int16,
    "I8": np.int8,
    "U64": np.uint64,
    "U32": np.uint32,
    "U16": np.uint16,
    "U8": np.uint8,
    "BOOL": np.bool_,
}


def _package(doing: str) -> Any:
    try:
        import safetensors
        import safetensors.numpy
    except ImportError:
        raise ImportError(f"{doing} a .safetensors file needs the safetensors package: {INSTALL}") from None
    return safetensors


def encode(obj: Any) -> bytes:
    """The bytes of a safetensors file holding the flat ``str -> array`` dict ``obj``.

    Raises ``TypeError`` naming the entry that is not an array, or ``obj`` if it is not such a dict."""
    if not isinstance(obj, dict):
        raise TypeError(
            "save: a .safetensors file holds a dict of str -> array (a state_dict), got "
            f"{type(obj).__name__}; save other objects to .pt/.pth or .npz"
        )
    arrays: dict[str, np.ndarray] = {}
    for key, value in obj.items():
        if not isinstance(key, str):
            raise TypeError(f"save: a .safetensors file needs str keys, got {type(key).__name__} key {key!r}")
        arrays[key] = _array(value, key)
    return _package("writing").numpy.save(arrays)


def _array(value: Any, key: str) -> np.ndarray:
    array = host_array(value)
    if array is None:
        raise TypeError(
            f"save: a .safetensors file holds only arrays, but obj[{key!r}] is a {type(value).__name__}; "
            "save a checkpoint with other values to .pt/.pth or .npz"
        )
    if array.dtype.newbyteorder("=") not in {np.dtype(t) for t in DTYPES.values()}:
        raise TypeError(
            f"save: obj[{key!r}] has dtype {array.dtype}, which a .safetensors file cannot hold; convert it "
            "with .astype"
        )
    return np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<"))


def read(content: bytes) -> OrderedDict:
    """The arrays of a safetensors file's ``content``, each owning its memory."""
    safetensors = _package("reading")
    try:
        entries = safetensors.deserialize(content)
    except Exception as exc:  # noqa: BLE001 - safetensors' SafetensorError: the header or data is damaged
        raise BadFile(f"a damaged safetensors file ({exc})") from None
    out: OrderedDict = OrderedDict()
    for name, entry in entries:
        dtype, shape, data = entry["dtype"], tuple(entry["shape"]), entry["data"]
        if dtype == "BF16":
            out[name] = widen_bfloat16(np.frombuffer(data, dtype="<u2").reshape(shape))
        elif dtype in DTYPES:
            little = np.dtype(DTYPES[dtype]).newbyteorder("<")
            out[name] = np.frombuffer(data, dtype=little).reshape(shape).astype(DTYPES[dtype])  # a copy
        else:
            raise BadFile(f"tensor {name!r} has dtype {dtype}, which minires does not read")
    return out
