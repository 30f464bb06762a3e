"""PyTorch's checkpoint format (``torch.save``'s zip archive), read and written without PyTorch.

What ``torch.save(state_dict, "w.pth")`` writes (torch 2.13, inspected with ``zipfile`` and ``pickletools``)
is a zip archive, every member under one folder named after the file (``w/``; ``archive/`` for a
file object), each member's data starting at a multiple of 64 bytes:

    w/data.pkl                 the object, pickled with protocol 2; tensors refer to storages by persistent id
    w/.format_version          b"1"
    w/.storage_alignment       b"64"
    w/byteorder                b"little" (the storages' byte order; files older than torch 1.10 lack it)
    w/data/0, w/data/1, ...    each storage's raw bytes
    w/version                  b"3\\n"

In ``data.pkl`` a tensor is ``torch._utils._rebuild_tensor_v2(storage, storage_offset, size, stride,
requires_grad, backward_hooks)`` where ``storage`` is the persistent id ``("storage", torch.FloatStorage,
"0", "cpu", numel)`` (numel in elements), ``size`` and ``stride`` are tuples (strides in elements) and
``backward_hooks`` is an empty ``collections.OrderedDict()``. An ``nn.Parameter`` is
``torch._utils._rebuild_parameter(tensor, requires_grad, OrderedDict())``. A ``state_dict()`` is a
``collections.OrderedDict`` whose ``_metadata`` (the modules' versions) is set by the BUILD opcode. Two
tensors that view one storage name the same key: torch writes a storage once. The dtypes without a typed
storage class (uint16, uint32, uint64, the float8 kinds) are ``torch._utils._rebuild_tensor_v3(storage,
storage_offset, size, stride, requires_grad, backward_hooks, torch.uint16)`` over the persistent id
``("storage", torch.storage.UntypedStorage, "0", "cpu", nbytes)`` (numel in bytes; offset and strides
still in elements of the dtype).

Reading (``read``) never runs ``pickle.load``: ``minires.safe_pickle`` unpickles with an allow-list, as
``torch.load(weights_only=True)`` does, of ``collections.OrderedDict``, the tensor and Parameter
rebuilders, the storage classes, torch's dtypes and ``torch.Size`` (a tuple); containers, strings and
numbers come from pickle's own opcodes. Any other global is refused by name before anything of it runs.
Every tensor comes back as a NumPy array that owns its memory (what ``Module.state_dict()`` holds and
``load_state_dict`` takes): views are resolved by their offset and strides, each checked to stay inside
its storage, and tensors that shared a storage become independent arrays, except that two identical
views (tied weights: two names, one tensor) come back as one array, as torch gives them one storage.
bfloat16, which NumPy lacks, becomes float32 (exactly: a bfloat16 is the top half of a float32); a
float8 or complex32 tensor, which NumPy has no type for, is refused naming its dtype. A Parameter comes
back as its array.

A few bytes of file never become gigabytes: every member read must be stored, not compressed (torch
writes them so; a deflated one could inflate a thousandfold), of the size its storage's numel says, and
all of them together no more than the archive's bytes; and the arrays built take, in all, at most the
bytes of the storages plus ``OVERLAP_BYTES`` (views that repeat elements, stride 0, or view one storage
several times), whatever number of views the pickle makes: the tensor that would pass is refused.

Writing (``write``) spells out the same pickle opcode by opcode (no ``pickle.dumps`` of objects that
would have to pretend to be torch's) and the same members, so ``torch.load(path)`` reads it with its
default ``weights_only=True``.
"""

from __future__ import annotations

import os
import struct
import zipfile
from collections import OrderedDict
from collections.abc import Callable
from typing import IO, Any

import numpy as np

from .. import safe_pickle
from .arrays import host_array, is_parameter
from .sniff import BadFile

ALIGNMENT = 64
# bytes one load's tensors may take beyond what its storages hold (expanded views: stride 0), 2^24 float32
OVERLAP_BYTES = 64 << 20

# torch's typed storage classes and the NumPy dtype of their elements ("bfloat16": read as uint16 bits).
STORAGE_DTYPES: dict[str, Any] = {
    "DoubleStorage": np.float64,
    "FloatStorage": np.float32,
    "HalfStorage": np.float16,
    "BFloat16Storage": "bfloat16",
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
    "ComplexFloatStorage": np.complex64,
    "ComplexDoubleStorage": np.complex128,
}
_DTYPE_STORAGES = {np.dtype(t): name for name, t in STORAGE_DTYPES.items() if t != "bfloat16"}

# torch's dtypes as data.pkl names them (``torch.uint16``), the last argument of ``_rebuild_tensor_v3``:
# NumPy's dtype, or None for those NumPy has no type for (refused, by name, when a tensor has one).
TENSOR_DTYPES: dict[str, Any] = {
    "bfloat16": "bfloat16",
    "float64": np.float64,
    "float32": np.float32,
    "float16": np.float16,
    "int64": np.int64,
    "int32": np.int32,
    "int16": np.int16,
    "int8": np.int8,
    "uint8": np.uint8,
    "uint16": np.uint16,
    "uint32": np.uint32,
    "uint64": np.uint64,
    "bool": np.bool_,
    "complex64": np.complex64,
    "complex128": np.complex128,
    **dict.fromkeys(
        ["complex32", "float8_e4m3fn", "float8_e4m3fnuz", "float8_e5m2", "float8_e5m2fnuz", "float8_e8m0fnu"]
        + ["float4_e2m1fn_x2", "bits1x8", "bits2x4", "bits4x2", "bits8", "bits16"]
    ),
}
# The dtypes torch 2.13 writes with _rebuild_tensor_v3 over an untyped storage (torch.storage._new_dtypes()).
_V3_DTYPES = {np.dtype(np.uint16): "uint16", np.dtype(np.uint32): "uint32", np.dtype(np.uint64): "uint64"}


# ----- reading ------------------------------------------------------------------------------------------
class _StorageType:
    """What the pickle gets for ``torch.FloatStorage`` and its kin: the name and the element dtype
    (``torch.storage.UntypedStorage``, whose numel counts bytes: uint8)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.dtype = np.uint8 if name == "UntypedStorage" else STORAGE_DTYPES[name]

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise safe_pickle.UnsafePickleError(f"the pickle calls torch.{self.name} itself: refused")


class _TorchDtype:
    """What the pickle gets for ``torch.uint16`` and its kin: the name and NumPy's dtype (or None)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.dtype = TENSOR_DTYPES[name]

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise safe_pickle.UnsafePickleError(f"the pickle calls torch.{self.name} itself: refused")


class _Storage:
    """A storage's bytes as the archive holds them (a read-only uint8 array), with its type and key."""

    __slots__ = ("key", "raw", "type_name")

    def __init__(self, raw: np.ndarray, key: str, type_name: str) -> None:
        self.raw = raw
        self.key = key
        self.type_name = type_name


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


class _Reader:
    """One ``read``: the storages met so far, and the bytes the tensors built from them have taken.

    The budget is the whole load's, not a view's: a pickle may name one storage any number of times,
    so every array built is charged its bytes (as the file stores them) against the bytes of the storages
    read plus ``OVERLAP_BYTES``, and the tensor that would pass it is refused before it is allocated.
    A view identical to one already built (tied weights: two names, one tensor) is that same array."""

    def __init__(self, zf: zipfile.ZipFile, prefix: str, byteorder: str, archive_bytes: int) -> None:
        self.zf, self.prefix, self.order = zf, prefix, "<" if byteorder == "little" else ">"
        self.archive_bytes = archive_bytes
        self.storages: dict[str, _Storage] = {}
        self.storage_bytes = 0  # what the storages read so far hold
        self.built_bytes = 0  # what the arrays built so far take, counted as the file stores them
        self.built: dict[tuple, np.ndarray] = {}  # (key, dtype, offset, size, stride) -> its array

    def persistent_load(self, pid: Any) -> _Storage:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise BadFile(f"unknown persistent id {pid!r}; expected ('storage', type, key, location, numel)")
        _, storage_type, key, _location, numel = pid
        if not (isinstance(storage_type, safe_pickle.Global) and isinstance(storage_type.fn, _StorageType)):
            raise BadFile(f"storage {key!r} has type {storage_type!r}, not a typed torch storage")
        if not isinstance(key, str) or not _is_int(numel) or numel < 0:
            raise BadFile(f"bad storage key {key!r} or numel {numel!r}")
        name = storage_type.fn.name
        itemsize = 2 if storage_type.fn.dtype == "bfloat16" else np.dtype(storage_type.fn.dtype).itemsize
        if key not in self.storages:
            raw = self.member(f"{self.prefix}data/{key}", numel, itemsize)
            self.storages[key] = _Storage(raw, key, name)
            self.storage_bytes += raw.nbytes
        storage = self.storages[key]
        if storage.type_name != name or storage.raw.nbytes != numel * itemsize:
            raise BadFile(
                f"storage {key!r} is named as {numel} elements of torch.{name} and as "
                f"{storage.raw.nbytes} bytes of torch.{storage.type_name}"
            )
        return storage

    def member(self, name: str, numel: int | None = None, itemsize: int = 1) -> np.ndarray:
        """The bytes of the stored member ``name`` (of ``numel`` elements of ``itemsize`` bytes, if given)
        as a read-only uint8 array. Refused before anything is read: a compressed member (torch.save
        stores every member as it is; deflate could inflate a few KB to gigabytes), a member of another
        size than the pickle says, and members that together hold more bytes than the archive (entries
        that overlap, each read again)."""
        try:
            info = self.zf.getinfo(name)
        except KeyError:
            raise BadFile(f"the pickle refers to storage {name!r}, which the archive lacks") from None
        if info.compress_type != zipfile.ZIP_STORED:
            raise BadFile(
                f"member {name!r} is compressed (zip method {info.compress_type}), which torch.save never "
                "writes and which could inflate to any size: refused. To fix: with PyTorch, save it again, "
                "torch.save(torch.load(path, weights_only=True), path)"
            )
        if numel is not None and info.file_size != numel * itemsize:
            raise BadFile(
                f"storage {name!r} has {info.file_size} bytes, expected {numel} elements of {itemsize} bytes"
            )
        self.archive_bytes -= info.file_size
        if self.archive_bytes < 0:
            raise BadFile(
                f"member {name!r}: the members read hold more bytes than the archive (they overlap)"
            )
        try:
            raw = np.frombuffer(self.zf.read(info), dtype=np.uint8)
        except (zipfile.BadZipFile, OSError, ValueError) as exc:  # a CRC mismatch, a cut member
            raise BadFile(f"{name!r} is corrupt ({type(exc).__name__}: {exc})") from None
        if len(raw) != info.file_size:
            raise BadFile(f"{name!r} has {len(raw)} bytes, the archive's directory says {info.file_size}")
        return raw

    def rebuild_tensor_v2(
        self,
        storage: Any,
        storage_offset: Any,
        size: Any,
        stride: Any,
        requires_grad: Any,
        backward_hooks: Any,
        metadata: Any = None,
    ) -> np.ndarray:
        """``torch._utils._rebuild_tensor_v2``: a tensor of its typed storage's dtype."""
        if not isinstance(storage, _Storage) or storage.type_name == "UntypedStorage":
            raise BadFile(f"_rebuild_tensor_v2: expected a typed storage, got {type(storage).__name__}")
        dtype = STORAGE_DTYPES[storage.type_name]
        return self.view(storage, dtype, storage_offset, size, stride, requires_grad, backward_hooks)

    def rebuild_tensor_v3(
        self,
        storage: Any,
        storage_offset: Any,
        size: Any,
        stride: Any,
        requires_grad: Any,
        backward_hooks: Any,
        dtype: Any,
        metadata: Any = None,
    ) -> np.ndarray:
        """``torch._utils._rebuild_tensor_v3``: a tensor of ``dtype`` over a storage's bytes (torch writes
        it, over a ``torch.storage.UntypedStorage``, for uint16, uint32, uint64 and the float8 kinds)."""
        if not isinstance(storage, _Storage):
            raise BadFile(f"_rebuild_tensor_v3: expected a storage, got {type(storage).__name__}")
        if not (isinstance(dtype, safe_pickle.Global) and isinstance(dtype.fn, _TorchDtype)):
            raise BadFile(f"_rebuild_tensor_v3: expected a torch dtype, got {dtype!r}")
        if dtype.fn.dtype is None:
            raise BadFile(
                f"a tensor of dtype torch.{dtype.fn.name}, which NumPy has no type for, so minires does not "
                "read it. To fix: with PyTorch, convert it before saving, t.to(torch.float32)"
            )
        return self.view(storage, dtype.fn.dtype, storage_offset, size, stride, requires_grad, backward_hooks)

    def view(
        self,
        storage: _Storage,
        dtype: Any,
        storage_offset: Any,
        size: Any,
        stride: Any,
        requires_grad: Any,
        backward_hooks: Any,
    ) -> np.ndarray:
        """The tensor ``size`` with ``stride`` (in elements of ``dtype``; "bfloat16" is widened to float32)
        at ``storage_offset`` of ``storage``, copied into an array of its own. Every index it reaches,
        ``offset + sum((size_i - 1) * stride_i)`` at most, must lie inside the storage: a file that points
        past it is refused rather than read out of bounds."""
        if not (isinstance(size, tuple) and isinstance(stride, tuple) and len(size) == len(stride)):
            raise BadFile(f"_rebuild_tensor: bad size {size!r} or stride {stride!r}")
        if not (_is_int(storage_offset) and storage_offset >= 0):
            raise BadFile(f"_rebuild_tensor: bad storage offset {storage_offset!r}")
        if not all(_is_int(n) and n >= 0 for n in size + stride):
            raise BadFile(f"_rebuild_tensor: size {size} and stride {stride} must be ints >= 0")
        if not isinstance(requires_grad, bool) or not (
            backward_hooks is None or isinstance(backward_hooks, dict)
        ):
            raise BadFile("_rebuild_tensor: bad requires_grad or backward_hooks")
        bfloat16 = isinstance(dtype, str) and dtype == "bfloat16"
        stored = np.dtype(np.uint16 if bfloat16 else dtype).newbyteorder(self.order)
        out_dtype = np.dtype(np.float32 if bfloat16 else dtype)
        numel = storage.raw.nbytes // stored.itemsize
        elements = storage.raw[: numel * stored.itemsize].view(stored)  # no copy
        if 0 in size:
            return np.empty(size, dtype=out_dtype)
        last = storage_offset + sum((n - 1) * s for n, s in zip(size, stride, strict=True))
        if last >= numel:
            raise BadFile(
                f"_rebuild_tensor: a tensor of size {size}, stride {stride} at offset {storage_offset} "
                f"reaches element {last} of storage {storage.key!r}, which has {numel}"
            )
        key = (storage.key, stored.str, storage_offset, size, stride)
        if key in self.built:
            return self.built[key]
        charge = int(np.prod(size, dtype=object)) * stored.itemsize
        if self.built_bytes + charge > self.storage_bytes + OVERLAP_BYTES:
            raise BadFile(
                f"a tensor of size {size}, stride {stride} over storage {storage.key!r} asks for {charge} "
                f"bytes, after {self.built_bytes} for the tensors before it: more than the file's storages "
                f"hold ({self.storage_bytes} bytes) plus {OVERLAP_BYTES} for views that repeat elements "
                "(stride 0) or view one storage twice: refused (a few bytes of file must not become "
                "gigabytes)"
            )
        self.built_bytes += charge
        view = np.lib.stride_tricks.as_strided(
            elements[storage_offset:],
            shape=size,
            strides=[s * stored.itemsize for s in stride],
            writeable=False,
        )
        array = widen_bfloat16(view) if bfloat16 else np.array(view, dtype=out_dtype, order="C")
        self.built[key] = array  # its own memory, C order, native byte order
        return array

    def allowed(self) -> dict[tuple[str, str], Any]:
        """The globals this read's pickle may name (see the module docstring)."""
        allowed: dict[tuple[str, str], Any] = {
            ("collections", "OrderedDict"): _ordered_dict,
            ("torch._utils", "_rebuild_tensor_v2"): self.rebuild_tensor_v2,
            ("torch._utils", "_rebuild_tensor_v3"): self.rebuild_tensor_v3,
            ("torch.storage", "UntypedStorage"): _StorageType("UntypedStorage"),
            ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
            ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
            ("torch", "Size"): _size,
        }
        for name in STORAGE_DTYPES:
            allowed[("torch", name)] = _StorageType(name)
        for name in TENSOR_DTYPES:
            allowed[("torch", name)] = _TorchDtype(name)
        return allowed


class SavedParameter(np.ndarray):
    """An array that was an ``nn.Parameter`` in the file (``load`` makes it a minires Parameter)."""

    requires_grad = True


def _rebuild_parameter(data: Any, requires_grad: Any, backward_hooks: Any, state: Any = None) -> np.ndarray:
    """An ``nn.Parameter`` (with or without extra state): its array, marked as a parameter."""
    if not isinstance(data, np.ndarray) or not isinstance(requires_grad, bool):
        raise BadFile("_rebuild_parameter: expected a tensor and a bool")
    if state:
        raise BadFile("_rebuild_parameter: a Parameter with extra attributes is refused")
    marked = data.view(SavedParameter)
    marked.requires_grad = requires_grad
    return marked


def _ordered_dict(*args: Any) -> OrderedDict:
    if args and not isinstance(args[0], (list, tuple)):
        raise BadFile("collections.OrderedDict: expected a list of pairs")
    return OrderedDict(*args)


def _size(dims: Any = ()) -> tuple:
    if not isinstance(dims, (list, tuple)) or not all(_is_int(d) for d in dims):
        raise BadFile(f"torch.Size: expected ints, got {dims!r}")
    return tuple(dims)


def read(zf: zipfile.ZipFile, prefix: str) -> Any:
    """The object in the torch.save archive ``zf`` (members under ``prefix``), tensors as NumPy arrays.

    Raises ``BadFile`` for a damaged archive, or one whose tensors would take more memory than its
    storages hold plus ``OVERLAP_BYTES``; ``safe_pickle.UnsafePickleError`` (naming the global) for a
    pickle that asks for anything off the allow-list."""
    # zipfile seeks to each member before reading it, so moving to the end here disturbs nothing
    archive_bytes = zf.fp.seek(0, os.SEEK_END) if zf.fp is not None else 0
    reader = _Reader(zf, prefix, "little", archive_bytes)
    if f"{prefix}byteorder" in zf.namelist():
        byteorder = reader.member(f"{prefix}byteorder").tobytes().decode("ascii", "replace").strip()
        if byteorder not in ("little", "big"):
            raise BadFile(f"{prefix}byteorder says {byteorder!r}, expected 'little' or 'big'")
        reader.order = "<" if byteorder == "little" else ">"
    data = reader.member(f"{prefix}data.pkl").tobytes()
    return safe_pickle.loads(
        data, allowed=reader.allowed(), encoding="utf-8", persistent_load=reader.persistent_load
    )


def widen_bfloat16(bits: np.ndarray) -> np.ndarray:
    """bfloat16 values (their 16 bits as uint16) as float32, exactly: a bfloat16 is a float32's top half."""
    out = np.empty(bits.shape, dtype=np.float32)
    out.view(np.uint32)[...] = bits.astype(np.uint32) << 16
    return out


# ----- writing ------------------------------------------------------------------------------------------
class _Pickler:
    """Protocol-2 pickle opcodes for a checkpoint tree, tensors as torch's ``_rebuild_tensor_v2``.

    Opcodes used (``pickletools`` names): PROTO, NONE, NEWTRUE/NEWFALSE, BININT1/BININT2/BININT, LONG1/LONG4,
    BINFLOAT, BINUNICODE, EMPTY_TUPLE/TUPLE1-3/MARK+TUPLE, EMPTY_LIST+APPENDS, EMPTY_DICT+SETITEMS,
    GLOBAL+REDUCE, BUILD, BINPERSID, STOP."""

    def __init__(self) -> None:
        self.out = bytearray(b"\x80\x02")  # PROTO 2, torch's default protocol
        self.storages: list[np.ndarray] = []
        self._storage_of: dict[int, tuple[str, np.ndarray]] = {}  # id(array) -> (key, array kept alive)

    def dumps(self, obj: Any) -> bytes:
        self._dump(obj, "obj", set())
        self.out += b"."  # STOP
        return bytes(self.out)

    # -- scalars
    def _int(self, v: int) -> None:
        if 0 <= v < 256:
            self.out += b"K" + bytes([v])
        elif 0 <= v < 65536:
            self.out += b"M" + struct.pack("<H", v)
        elif -(2**31) <= v < 2**31:
            self.out += b"J" + struct.pack("<i", v)
        else:  # two's complement, little-endian, as few bytes as hold the sign
            n = (v.bit_length() + 8) // 8
            body = v.to_bytes(n, "little", signed=True)
            self.out += (b"\x8a" + bytes([n]) if n < 256 else b"\x8b" + struct.pack("<I", n)) + body

    def _str(self, v: str) -> None:
        body = v.encode("utf-8", "surrogatepass")
        self.out += b"X" + struct.pack("<I", len(body)) + body

    def _global(self, module: str, name: str) -> None:
        self.out += b"c" + module.encode("ascii") + b"\n" + name.encode("ascii") + b"\n"

    def _tuple(self, items: list[Callable[[], None]]) -> None:
        if not items:
            self.out += b")"
            return
        if len(items) > 3:
            self.out += b"("
        for item in items:
            item()
        self.out += {1: b"\x85", 2: b"\x86", 3: b"\x87"}.get(len(items), b"t")

    def _empty_ordered_dict(self) -> None:
        self._global("collections", "OrderedDict")
        self.out += b")R"  # OrderedDict()

    # -- the tree
    def _dump(self, obj: Any, where: str, active: set[int]) -> None:
        if obj is None:
            self.out += b"N"
        elif isinstance(obj, np.generic) and not isinstance(obj, (np.bool_, np.number, np.str_)):
            raise TypeError(f"save: cannot save a NumPy {obj.dtype} scalar at {where} in a PyTorch file")
        elif isinstance(obj, (bool, np.bool_)):
            self.out += b"\x88" if obj else b"\x89"
        elif isinstance(obj, (int, np.integer)):
            self._int(int(obj))
        elif isinstance(obj, (float, np.floating)):
            self.out += b"G" + struct.pack(">d", float(obj))
        elif isinstance(obj, str):
            self._str(str(obj))
        elif (array := host_array(obj)) is not None:  # a Tensor, NumPy, CuPy or torch
            requires_grad = bool(getattr(obj, "requires_grad", False))
            self._tensor(array, requires_grad, is_parameter(obj), where)
        elif isinstance(obj, (dict, list, tuple)):
            if id(obj) in active:
                raise ValueError(
                    f"save: {where} is a container that encloses itself; a checkpoint must be a tree"
                )
            active.add(id(obj))
            try:
                self._container(obj, where, active)
            finally:
                active.discard(id(obj))
        else:
            raise TypeError(
                f"save: cannot save a {_type_name(obj)} at {where} in a PyTorch file; it holds dicts (str or "
                "int keys), lists, tuples, arrays, Tensors, ints, floats, bools, None and str"
            )

    def _container(self, obj: Any, where: str, active: set[int]) -> None:
        if isinstance(obj, tuple):
            self._tuple([lambda i=i, v=v: self._dump(v, f"{where}[{i}]", active) for i, v in enumerate(obj)])
        elif isinstance(obj, list):
            self.out += b"]"
            if obj:
                self.out += b"("
                for i, item in enumerate(obj):
                    self._dump(item, f"{where}[{i}]", active)
                self.out += b"e"  # APPENDS
        else:
            ordered = isinstance(obj, OrderedDict)
            if ordered:
                self._empty_ordered_dict()
            else:
                self.out += b"}"
            if obj:
                self.out += b"("
                for key, value in obj.items():
                    if isinstance(key, bool) or not isinstance(key, (str, int)):
                        raise TypeError(
                            f"save: dict keys must be str or int, got {type(key).__name__} key {key!r} "
                            f"in {where}"
                        )
                    self._dump(key, where, active)
                    self._dump(value, f"{where}[{key!r}]", active)
                self.out += b"u"  # SETITEMS
            metadata = getattr(obj, "_metadata", None) if ordered else None
            if isinstance(metadata, dict):  # state_dict()'s versions, set as torch sets them: BUILD
                self.out += b"}"
                self._str("_metadata")
                self._dump(metadata, f"{where}._metadata", active)
                self.out += b"sb"  # SETITEM, BUILD

    def _tensor(self, array: np.ndarray, requires_grad: bool, parameter: bool, where: str) -> None:
        """The tensor as torch 2.13 pickles it: ``_rebuild_tensor_v2`` over a typed storage, or for
        uint16/32/64 ``_rebuild_tensor_v3`` over an untyped one (numel in bytes) with the dtype last."""
        native = array.dtype.newbyteorder("=")
        storage, v3_dtype = _DTYPE_STORAGES.get(native), _V3_DTYPES.get(native)
        if storage is None and v3_dtype is None:
            known = sorted(str(d) for d in [*_DTYPE_STORAGES, *_V3_DTYPES])
            raise TypeError(
                f"save: {where} is an array of dtype {array.dtype}, which a PyTorch file cannot hold (torch "
                f"stores {', '.join(known)}); convert it with .astype, or save to an .npz file"
            )
        known = self._storage_of.get(id(array))
        if known is None:
            key = str(len(self.storages))
            self.storages.append(np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")))
            self._storage_of[id(array)] = known = (key, array)
        key = known[0]
        if parameter:
            self._global("torch._utils", "_rebuild_parameter")
            self.out += b"("
        self._global("torch._utils", "_rebuild_tensor_v3" if v3_dtype else "_rebuild_tensor_v2")
        self.out += b"("
        self.out += b"("  # the persistent id ('storage', torch.<T>Storage, key, 'cpu', numel)
        self._str("storage")
        if v3_dtype:
            self._global("torch.storage", "UntypedStorage")
        else:
            self._global("torch", storage)
        self._str(key)
        self._str("cpu")
        self._int(array.nbytes if v3_dtype else array.size)
        self.out += b"tQ"  # TUPLE, BINPERSID
        self._int(0)  # storage offset
        contiguous = [int(np.prod(array.shape[i + 1 :], dtype=np.int64)) for i in range(array.ndim)]
        self._tuple([lambda n=n: self._int(n) for n in array.shape])
        self._tuple([lambda n=n: self._int(n) for n in contiguous])
        self.out += b"\x88" if requires_grad and not parameter else b"\x89"
        self._empty_ordered_dict()  # backward_hooks
        if v3_dtype:
            self._global("torch", v3_dtype)
        self.out += b"tR"  # TUPLE, REDUCE
        if parameter:
            self.out += b"\x88" if requires_grad else b"\x89"
            self._empty_ordered_dict()
            self.out += b"tR"


def _type_name(obj: Any) -> str:
    cls = type(obj)
    return cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


def encode(obj: Any) -> tuple[bytes, list[np.ndarray]]:
    """``data.pkl``'s bytes for ``obj`` and the storages it refers to; nothing is written.

    Raises ``TypeError`` naming where an unsupported value sits."""
    pickler = _Pickler()
    return pickler.dumps(obj), pickler.storages


def write(f: IO[bytes], pickled: bytes, storages: list[np.ndarray], archive_name: str) -> None:
    """Write the members torch.save writes, under ``archive_name/``, to the open binary file ``f``."""
    records: list[tuple[str, Any]] = [
        ("data.pkl", pickled),
        (".format_version", b"1"),
        (".storage_alignment", str(ALIGNMENT).encode()),
        ("byteorder", b"little"),
    ]
    records += [(f"data/{i}", array) for i, array in enumerate(storages)]
    records.append(("version", b"3\n"))
    with zipfile.ZipFile(f, mode="w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for name, content in records:
            _write_aligned(zf, f, f"{archive_name}/{name}", content)


def _write_aligned(zf: zipfile.ZipFile, f: IO[bytes], name: str, content: Any) -> None:
    """One stored member whose data starts at a multiple of ``ALIGNMENT`` (torch's rule, which lets
    ``torch.load(mmap=True)`` map tensors in place): the local header's extra field is padded, as torch
    pads it, with a record of id ``FB``."""
    data = memoryview(content).cast("B") if isinstance(content, np.ndarray) else memoryview(content)
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.file_size = len(data)
    zip64 = info.file_size * 1.05 > zipfile.ZIP64_LIMIT  # zipfile's own rule for a member of known size
    header = 30 + len(name.encode("utf-8")) + (20 if zip64 else 0)
    pad = -(f.tell() + header) % ALIGNMENT
    if pad:
        pad += ALIGNMENT if pad < 4 else 0
        info.extra = b"FB" + struct.pack("<H", pad - 4) + b"Z" * (pad - 4)
    with zf.open(info, mode="w", force_zip64=zip64) as member:
        member.write(data)


def archive_name_for(path: str) -> str:
    """torch's folder name inside the archive: the file's name without its extension."""
    stem = os.path.splitext(os.path.basename(path))[0]
    return stem if stem and stem.isascii() and "/" not in stem else "archive"
