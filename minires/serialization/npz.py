"""minires's own checkpoint format: one ``.npz`` file, read back without pickle (``mr.save`` writes it for
any path that does not end in ``.pt``, ``.pth`` or ``.safetensors``; see ``minires.serialization``).

A checkpoint is a nested structure: dicts (str or int keys, insertion order kept; an ``OrderedDict``, such
as ``Module.state_dict()`` returns, comes back as an ``OrderedDict``, with its ``_metadata``), lists, tuples,
NumPy arrays, minires Tensors, CuPy arrays, NumPy scalars, and Python ints (of any size), floats (nan and
inf included), bools, None and strings. That covers a model's ``state_dict()``, an optimizer's
``state_dict()`` (param groups of floats and tuples, per-parameter state keyed by int) and a whole training
checkpoint ``{"model": ..., "optimizer": ..., "epoch": 3, "rng": generator.bit_generator.state}``.

The file is an ordinary ``.npz`` (a zip of ``.npy`` files, readable by ``numpy.load``):

    a0.npy, a1.npy, ...          every array, under a generated key, in the order met
    __minires_manifest__.npy     uint8 bytes of a JSON document describing the structure

The manifest is ``{"format": "minires.save", "version": 1, "root": node}``, where a node is one of

    {"type": "none"}                              {"type": "bool", "value": true}
    {"type": "int", "value": "123"}               ints as decimal strings, so any size survives
    {"type": "float", "value": "0.1"}             repr(float): exact; also "nan", "inf", "-inf"
    {"type": "str", "value": "..."}
    {"type": "list" | "tuple", "items": [node, ...]}
    {"type": "dict" | "OrderedDict", "items": [[key node, value node], ...]}   key: a str or int node;
     an OrderedDict with a ``_metadata`` dict attribute (``state_dict()``'s) also has "metadata": node
    {"type": "ndarray" | "numpy_scalar" | "tensor" | "parameter", "array": {"key": "a0", "dtype": "<f4",
     "shape": [3, 4]}}    (tensor and parameter nodes also carry "requires_grad")

What comes back from ``load``:
- NumPy arrays as NumPy arrays, bit for bit (dtype, byte order and shape included); CuPy arrays and
  torch tensors (a PyTorch ``state_dict``) also come back as NumPy arrays (copied to the host at save time).
- A minires ``Tensor`` as a ``Tensor`` on the CPU with the same ``requires_grad`` (its ``.grad`` and graph
  are not saved); an ``nn.Parameter`` as an ``nn.Parameter``.
- Subclasses of int, float, str, tuple and dict (an IntEnum, a namedtuple, a defaultdict) as their base
  type. An array referenced twice is stored twice and comes back as two independent arrays.

Safety: arrays of dtype object are refused at save (``TypeError``), and ``read`` always reads with
``allow_pickle=False``, so loading a file never runs code. A file that is truncated, corrupt (zip CRCs are
checked as arrays are read) or has a broken manifest raises ``BadFile``, which ``mr.load`` turns into a
``ValueError`` naming the path and the problem.
"""

from __future__ import annotations

import json
import zipfile
from collections import OrderedDict
from typing import Any

import numpy as np

from ..nn.parameter import Parameter
from ..tensor import Tensor
from .arrays import host_array, is_parameter
from .sniff import BadFile

FORMAT = "minires.save"
VERSION = 1
MANIFEST_KEY = "__minires_manifest__"


# ----- save ---------------------------------------------------------------------------------------------
def encode(obj: Any) -> dict[str, np.ndarray]:
    """The arrays of the ``.npz`` file for ``obj``, the manifest among them; nothing is written.

    Raises ``TypeError`` naming where in ``obj`` an unsupported value sits (a set, an object array,
    a float dict key, ...)."""
    arrays: dict[str, np.ndarray] = {}
    root = _encode(obj, arrays, "obj", set())
    manifest = {"format": FORMAT, "version": VERSION, "root": root}
    # ensure_ascii: the JSON text is plain ASCII (so valid UTF-8) even for strings with lone surrogates.
    text = json.dumps(manifest, ensure_ascii=True, allow_nan=False, separators=(",", ":"))
    arrays[MANIFEST_KEY] = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
    return arrays


def _encode(obj: Any, arrays: dict[str, np.ndarray], where: str, active: set[int]) -> dict:
    """The manifest node for ``obj``; arrays go into ``arrays``. ``where`` names obj for error messages,
    ``active`` holds the ids of the containers being encoded (to catch a structure that contains itself)."""
    if obj is None:
        return {"type": "none"}
    if isinstance(obj, np.generic):  # first: np.float64 and np.str_ are also float and str
        return {"type": "numpy_scalar", "array": _add_array(np.asarray(obj), arrays, where)}
    if isinstance(obj, bool):  # before int: bool is a subclass of int
        return {"type": "bool", "value": bool(obj)}
    if isinstance(obj, int):
        return {"type": "int", "value": str(int(obj))}
    if isinstance(obj, float):
        return {"type": "float", "value": repr(float(obj))}
    if isinstance(obj, str):
        return {"type": "str", "value": str(obj)}
    array = host_array(obj)  # a Tensor, NumPy, CuPy, or torch (a PyTorch state_dict: saved as its array)
    if array is not None:
        if isinstance(obj, Tensor):
            kind = "parameter" if is_parameter(obj) else "tensor"
            spec = _add_array(array, arrays, where)
            return {"type": kind, "array": spec, "requires_grad": bool(obj.requires_grad)}
        return {"type": "ndarray", "array": _add_array(array, arrays, where)}
    if isinstance(obj, (dict, list, tuple)):
        if id(obj) in active:
            raise ValueError(
                f"save: {where} is a container that encloses itself; a checkpoint must be a tree"
            )
        active.add(id(obj))
        try:
            if isinstance(obj, dict):
                items = []
                for key, value in obj.items():
                    items.append(
                        [_encode_key(key, where), _encode(value, arrays, f"{where}[{key!r}]", active)]
                    )
                node = {"type": "OrderedDict" if isinstance(obj, OrderedDict) else "dict", "items": items}
                metadata = getattr(obj, "_metadata", None)  # state_dict()'s per-module versions
                if isinstance(metadata, dict):
                    node["metadata"] = _encode(metadata, arrays, f"{where}._metadata", active)
                return node
            nodes = [_encode(item, arrays, f"{where}[{i}]", active) for i, item in enumerate(obj)]
            return {"type": "tuple" if isinstance(obj, tuple) else "list", "items": nodes}
        finally:
            active.discard(id(obj))
    name = (
        type(obj).__qualname__
        if type(obj).__module__ == "builtins"
        else f"{type(obj).__module__}.{type(obj).__qualname__}"
    )
    raise TypeError(
        f"save: cannot save a {name} at {where}; a checkpoint holds "
        "dicts (str or int keys), lists, tuples, arrays, Tensors, ints, floats, bools, None and str"
    )


def _encode_key(key: Any, where: str) -> dict:
    if isinstance(key, bool) or not isinstance(key, (str, int)):
        raise TypeError(
            f"save: dict keys must be str or int, got {type(key).__name__} key {key!r} in {where}"
        )
    return {"type": "int", "value": str(int(key))} if isinstance(key, int) else {"type": "str", "value": key}


def _add_array(array: np.ndarray, arrays: dict[str, np.ndarray], where: str) -> dict:
    if array.dtype.hasobject:
        raise TypeError(
            f"save: {where} is an array of dtype {array.dtype}, which holds Python objects and would need "
            "pickle; convert it to a numeric or string dtype, or to a list"
        )
    key = f"a{len(arrays)}"
    arrays[key] = array
    return {"key": key, "dtype": array.dtype.str, "shape": list(array.shape)}


def write_npz(f: Any, arrays: dict[str, np.ndarray]) -> None:
    """``numpy.savez`` spelled out, so that the writer too refuses pickle; with a fixed timestamp on every
    member, so that the same checkpoint always gives the same bytes."""
    with zipfile.ZipFile(f, mode="w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for key, array in arrays.items():
            info = zipfile.ZipInfo(key + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            with zf.open(info, mode="w", force_zip64=True) as member:
                np.lib.format.write_array(member, array, allow_pickle=False)


# ----- load ---------------------------------------------------------------------------------------------
def read(fh: Any) -> Any:
    """The object in the open minires checkpoint ``fh`` (a zip archive, checked by the caller)."""
    try:
        npz = np.load(fh, allow_pickle=False)
    except Exception as exc:  # noqa: BLE001 - any failure to open the archive means a damaged file
        raise BadFile(f"the zip archive is truncated or corrupt ({type(exc).__name__}: {exc})") from None
    with npz:
        reader = _ArrayReader(npz)
        manifest = _read_manifest(reader)
        return _decode(manifest["root"], reader, "obj")


class _ArrayReader:
    """Reads the arrays of an open NpzFile, turning every failure into ``BadFile``."""

    def __init__(self, npz: Any) -> None:
        self.npz = npz
        self.files = set(npz.files)

    def read(self, key: str) -> np.ndarray:
        if key not in self.files:
            raise BadFile(f"the manifest refers to array {key!r}, which the archive lacks")
        try:
            # Reading a member to its end makes zipfile check its CRC-32, so flipped bits are caught here.
            return self.npz[key]
        except Exception as exc:  # noqa: BLE001 - bytes from disk: any parse failure means a damaged file
            raise BadFile(f"array {key!r} is corrupt ({type(exc).__name__}: {exc})") from None


def _read_manifest(reader: _ArrayReader) -> dict:
    if MANIFEST_KEY not in reader.files:
        names = ", ".join(sorted(reader.files)[:5]) or "none"
        raise BadFile(
            f"an .npz archive but not a minires checkpoint: no {MANIFEST_KEY!r} entry (arrays: {names})"
        )
    raw = reader.read(MANIFEST_KEY)
    if raw.dtype != np.uint8 or raw.ndim != 1:
        raise BadFile(f"the manifest is an array of dtype {raw.dtype} and shape {raw.shape}, not uint8 bytes")
    try:
        manifest = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadFile(f"the manifest is not valid UTF-8 JSON ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else type(manifest).__name__
        raise BadFile(f"the manifest's format is {found!r}, expected {FORMAT!r}")
    version = manifest.get("version")
    if version != VERSION:
        raise BadFile(f"format version {version!r}; this minires reads version {VERSION}")
    if "root" not in manifest:
        raise BadFile("the manifest has no 'root' entry")
    return manifest


def _decode(node: Any, reader: _ArrayReader, where: str) -> Any:
    """The Python object a manifest node describes (``where`` names it for error messages)."""
    kind = node.get("type") if isinstance(node, dict) else None
    try:
        if kind == "none":
            return None
        if kind == "bool" and isinstance(node["value"], bool):
            return node["value"]
        if kind == "int" and isinstance(node["value"], str):
            return int(node["value"])
        if kind == "float" and isinstance(node["value"], str):
            return float(node["value"])
        if kind == "str" and isinstance(node["value"], str):
            return node["value"]
        if kind in ("list", "tuple") and isinstance(node["items"], list):
            items = [_decode(item, reader, f"{where}[{i}]") for i, item in enumerate(node["items"])]
            return tuple(items) if kind == "tuple" else items
        if kind in ("dict", "OrderedDict") and isinstance(node["items"], list):
            out: dict = OrderedDict() if kind == "OrderedDict" else {}
            for key_node, value_node in node["items"]:
                key = _decode(key_node, reader, f"{where} key")
                if isinstance(key, bool) or not isinstance(key, (str, int)):
                    raise BadFile(f"manifest entry for a key of {where} is not a str or int")
                out[key] = _decode(value_node, reader, f"{where}[{key!r}]")
            if kind == "OrderedDict" and "metadata" in node:
                out._metadata = _decode(node["metadata"], reader, f"{where}._metadata")  # type: ignore[attr-defined]
            return out
        if kind in ("ndarray", "numpy_scalar", "tensor", "parameter"):
            array = _read_array(node["array"], reader, where)
            if kind == "ndarray":
                return array
            if kind == "numpy_scalar":
                return array[()]
            requires_grad = bool(node["requires_grad"])
            if kind == "parameter":
                return Parameter(array, requires_grad=requires_grad)
            return Tensor(array, requires_grad=requires_grad)
    except (KeyError, TypeError, ValueError) as exc:  # a malformed node: missing fields, wrong types
        raise BadFile(f"the manifest entry for {where} is malformed ({type(exc).__name__}: {exc})") from None
    raise BadFile(f"the manifest entry for {where} is malformed: {_short(node)}")


def _read_array(spec: Any, reader: _ArrayReader, where: str) -> np.ndarray:
    key, dtype, shape = spec["key"], spec["dtype"], tuple(spec["shape"])
    array = reader.read(key)
    if array.dtype.str != dtype or array.shape != shape:
        raise BadFile(
            f"array {key!r} ({where}) has dtype {array.dtype.str} and shape {array.shape}, "
            f"but the manifest says {dtype} and {shape}"
        )
    return array


def _short(node: Any) -> str:
    return json.dumps(node)[:80]  # node came from json.loads, so it dumps back
