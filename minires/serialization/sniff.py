"""What kind of file is this: ``mr.load`` recognizes a checkpoint by its first bytes, never by its name.

    minires     a zip archive with ``__minires_manifest__.npy``           (read by ``npz``)
    torch       a zip archive with ``<folder>/data.pkl``                   (read by ``torch_zip``)
    safetensors an 8-byte little-endian header length, then ``{``         (read by ``safetensors_file``)

Every other kind gets a message that says what the file is and what to do with it: an ``.npz`` of
someone else's, another zip archive, a PyTorch file of the legacy (pre-zip) format, a plain Python pickle,
a single ``.npy`` array, an HDF5 file (Keras weights), an empty file, or something unknown.
"""

from __future__ import annotations

import os
import struct
import zipfile
from typing import Any

ZIP_MAGIC = b"PK\x03\x04"
EMPTY_ZIP_MAGIC = b"PK\x05\x06"
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
NPY_MAGIC = b"\x93NUMPY"
# torch's legacy files begin with the pickled magic number 0x1950a86a20f9469cfc6c (PROTO 2, LONG1, 10 bytes)
TORCH_LEGACY_MAGIC = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"
READS = "mr.load reads minires checkpoints (.npz), PyTorch's zip files (.pt, .pth) and .safetensors files"
TO_ZIP = (
    "To fix: with PyTorch, save it again in the zip format, "
    "torch.save(torch.load(path, weights_only=True), 'weights.pth'), or as .safetensors"
)


class BadFile(Exception):
    """A file ``mr.load`` cannot read; ``mr.load`` raises it as a ValueError naming the path."""


def identify(fh: Any) -> tuple[str, Any]:
    """``("minires", None)``, ``("torch", prefix)`` or ``("safetensors", None)`` for the open binary file
    ``fh`` (left at an arbitrary position); raises ``BadFile`` saying what else it is."""
    head = fh.read(16)
    if head.startswith((ZIP_MAGIC, EMPTY_ZIP_MAGIC)):
        return _identify_zip(fh)
    if _looks_like_safetensors(fh, head):
        return "safetensors", None
    if head.startswith(TORCH_LEGACY_MAGIC):
        raise BadFile(
            "a PyTorch file in the legacy format (a raw pickle stream, written by torch < 1.6 or with "
            f"_use_new_zipfile_serialization=False), which minires does not read. {TO_ZIP}"
        )
    if _is_tar(fh):
        raise BadFile(
            "a tar archive (PyTorch before 0.4 saved its files as tar), which minires does not read. "
            + TO_ZIP
        )
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        raise BadFile(
            f"a Python pickle (protocol {head[1]}), which minires never unpickles: unpickling a file can run "
            "any code it names. To fix: write the weights as a state_dict with torch.save to .pt/.pth (its "
            "zip format, read without unpickling code), with safetensors, or with mr.save"
        )
    if head.startswith(NPY_MAGIC):
        raise BadFile(
            "a single .npy array (numpy.save), not a minires checkpoint (.npz). To fix: read it with "
            "numpy.load(path, allow_pickle=False)"
        )
    if head.startswith(HDF5_MAGIC):
        raise BadFile(
            "an HDF5 file (Keras .h5 weights?), which minires does not read. To fix: read its arrays with "
            "h5py and pass them to load_state_dict under PyTorch's key names, or convert it to .safetensors"
        )
    what = "the file is empty" if not head else f"it starts with {head[:4]!r}"
    raise BadFile(f"an unknown format, not an .npz/zip archive ({what}); {READS}")


def _identify_zip(fh: Any) -> tuple[str, Any]:
    fh.seek(0)
    try:
        with zipfile.ZipFile(fh) as zf:
            names = zf.namelist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, struct.error) as exc:
        raise BadFile(
            f"the zip archive is truncated or corrupt ({type(exc).__name__}: {exc}). To fix: fetch or write "
            "it again (an interrupted download or copy leaves such a file)"
        ) from None
    if "__minires_manifest__.npy" in names:
        return "minires", None
    prefix = _torch_prefix(names)
    if prefix is not None:
        return "torch", prefix
    shown = ", ".join(sorted(names)[:5]) or "none"
    if names and all(n.endswith(".npy") for n in names):
        arrays = ", ".join(sorted(n[:-4] for n in names)[:5])
        raise BadFile(
            "an .npz archive but not a minires checkpoint: no '__minires_manifest__' entry "
            f"(arrays: {arrays}). To fix: read it with numpy.load(path, allow_pickle=False) and pass "
            "the arrays, by PyTorch's key names, to load_state_dict"
        )
    raise BadFile(
        "a zip archive that is not a minires checkpoint, a PyTorch file or an .npz "
        f"(members: {shown}); {READS}"
    )


def _torch_prefix(names: list[str]) -> str | None:
    """The folder of ``data.pkl`` (``"w/"``) if the member ``names`` are a torch.save archive."""
    pickles = [n for n in names if n.endswith("/data.pkl") and n.count("/") == 1]
    return pickles[0][: -len("data.pkl")] if len(pickles) == 1 else None


def _looks_like_safetensors(fh: Any, head: bytes) -> bool:
    """An 8-byte little-endian length N, a JSON header that opens with ``{``, and at least N more bytes."""
    if len(head) < 9 or head[8:9] != b"{":
        return False
    (n,) = struct.unpack("<Q", head[:8])
    here = fh.tell()
    size = fh.seek(0, os.SEEK_END)  # the stream's size (a BytesIO has no file descriptor to fstat)
    fh.seek(here)
    return 2 <= n <= size - 8


def _is_tar(fh: Any) -> bool:
    fh.seek(257)
    return fh.read(5) == b"ustar"
