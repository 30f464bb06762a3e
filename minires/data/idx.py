"""The IDX file format of MNIST and Fashion-MNIST: a reader that refuses anything not exactly right.

An IDX file is a big-endian header followed by the raw array:

    bytes 0-1   0x00 0x00
    byte  2     the element type: 0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64
    byte  3     the number of dimensions, ndim
    then        ndim big-endian uint32 sizes, then prod(sizes) elements, big-endian, C order

The official files are distributed gzipped; Debian's package re-compresses them. ``read_idx`` accepts
either, telling them apart by the gzip magic bytes (not the file name), and ``file_sha256`` hashes the
uncompressed content, so a re-compressed copy of an official file has the official hash.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import zlib

import numpy as np

GZIP_MAGIC = b"\x1f\x8b"
_DTYPES = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


class DataFileError(ValueError):
    """A data file that is truncated, corrupt or not the file it claims to be. The message names the file,
    what was expected and how to fix it."""


def read_bytes(path: str | os.PathLike) -> bytes:
    """The uncompressed content of ``path`` (gunzipped when it starts with the gzip magic bytes)."""
    path = os.fspath(path)
    with open(path, "rb") as f:
        raw = f.read()
    return decompress(raw, path) if raw.startswith(GZIP_MAGIC) else raw


def decompress(raw: bytes, name: str) -> bytes:
    """The gunzipped ``raw``; a cut-off or damaged stream raises ``DataFileError`` naming ``name``."""
    try:
        return gzip.decompress(raw)
    except (EOFError, OSError, zlib.error) as exc:
        raise DataFileError(f"{name}: the gzip data is truncated or corrupt ({exc})") from None


def sha256_hex(content: bytes) -> str:
    """The SHA-256 of ``content``, as 64 hex digits."""
    return hashlib.sha256(content).hexdigest()


def file_sha256(path: str | os.PathLike) -> str:
    """The SHA-256 of the uncompressed content of ``path``."""
    return sha256_hex(read_bytes(path))


def parse_idx(content: bytes, name: str = "<bytes>") -> np.ndarray:
    """The array held by the IDX bytes ``content`` (in native byte order); ``name`` is used in errors.

    Raises ``DataFileError`` when the header is malformed or the data is shorter or longer than the
    header announces.
    """
    if len(content) < 4:
        raise DataFileError(f"{name}: {len(content)} bytes is too short for an IDX header (4 bytes at least)")
    zero, type_code, ndim = content[:2], content[2], content[3]
    if zero != b"\x00\x00" or type_code not in _DTYPES:
        raise DataFileError(
            f"{name}: not an IDX file (expected the magic 0x0000 followed by a type code in "
            f"{sorted(hex(c) for c in _DTYPES)}, got 0x{content[:4].hex()})"
        )
    header = 4 + 4 * ndim
    if len(content) < header:
        raise DataFileError(
            f"{name}: truncated header ({len(content)} bytes, the {ndim} sizes need {header})"
        )
    shape = tuple(int(s) for s in np.frombuffer(content, dtype=">u4", count=ndim, offset=4))
    dtype = _DTYPES[type_code]
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(content) != expected:
        problem = "truncated" if len(content) < expected else "has trailing bytes"
        raise DataFileError(
            f"{name}: {problem}: the header announces shape {shape} of {dtype.name}, "
            f"{expected} bytes in all, but the content is {len(content)} bytes"
        )
    array = np.frombuffer(content, dtype=dtype, offset=header).reshape(shape)
    return array.astype(dtype.newbyteorder("="), copy=True)  # native order, writable, owning its memory


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read the IDX file at ``path``, gzipped or raw."""
    return parse_idx(read_bytes(path), os.fspath(path))


def idx_bytes(array: np.ndarray) -> bytes:
    """The IDX encoding of ``array`` (the inverse of ``parse_idx``), for tests and tools that write data."""
    array = np.asarray(array)
    codes = {dtype.newbyteorder("="): code for code, dtype in _DTYPES.items()}
    key = array.dtype.newbyteorder("=")
    if key not in codes:
        raise TypeError(f"idx_bytes: IDX has no type code for dtype {array.dtype}")
    header = bytes([0, 0, codes[key], array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    big_endian = array.astype(_DTYPES[codes[key]], copy=False)
    return header + np.ascontiguousarray(big_endian).tobytes()
