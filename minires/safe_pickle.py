"""An allow-list unpickler: reads pickles of plain data and refuses everything else.

``pickle.load`` runs whatever the file asks for: a pickle can name any importable callable (``os.system``,
``builtins.eval``, ``subprocess.Popen``) together with its arguments, and the unpickler calls it. So a
pickle from anywhere but one's own program is never given to ``pickle.load`` here. ``loads`` below
builds the containers and scalars that pickle's opcodes make by themselves (dicts, lists, tuples, str,
bytes, numbers, None, booleans) and, of the globals a pickle may name, only those in an allow-list:
NumPy's array reconstructors, each wrapped so that it builds nothing but a plain ``numpy.ndarray`` of a
dtype without Python objects inside. Any other global is refused with ``UnsafePickleError`` naming it,
before anything of it runs.

    safe_pickle.loads(blob, encoding="latin1")   # a pickle written by Python 2 (CIFAR-10's batches)

A caller can give its own allow-list (``minires.serialization.torch_zip`` gives PyTorch's tensor
rebuilders) and a ``persistent_load`` (PyTorch's files refer to their storages by persistent id). What the
pickle gets for an allowed global is a fresh wrapper made for this one load, never the function itself.

Pickle's BUILD opcode calls ``obj.__setstate__(state)``, or sets attributes, on whatever object is on the
stack; on a ``numpy.dtype`` it would rewrite the dtype's flags (one that claims to hold Python objects,
whose "pointers" are then read from the array's bytes), on a wrapper it would change the next call. So
BUILD is allowed on three targets only: an array ``_reconstruct`` has just made, once, with a state whose
dtype holds no objects and whose data is bytes; a dtype, with a state that NumPy itself writes for a
dtype its constructor makes from the state's parts (byte order, fields and offsets, sub-array), flags
included; and an ``OrderedDict``, given plain attributes (a ``state_dict()``'s ``_metadata``). Anything
else is refused. That needs the Python
unpickler (``pickle._Unpickler``): the C one cannot be told what BUILD may touch.
"""

from __future__ import annotations

import io
import pickle
import struct
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np


class UnsafePickleError(pickle.UnpicklingError):
    """A pickle asked for a global that is not on the allow-list (``global_name``, also in the message),
    or to build something it may not (``global_name`` None)."""

    def __init__(self, message: str, global_name: str | None = None) -> None:
        super().__init__(message)
        self.global_name = global_name


def _plain_dtype(*args: Any) -> np.dtype:
    """``numpy.dtype(...)`` as a pickle calls it, refusing dtypes that hold Python objects (an object
    array's items would be unpickled as arbitrary objects)."""
    dtype = np.dtype(*args)
    if dtype.hasobject:
        raise UnsafePickleError(
            f"the pickle asks for a NumPy array of Python objects (dtype {dtype}): refused"
        )
    return dtype


class _NdarrayName:
    """What a pickle gets for the global ``numpy.ndarray``: a name to pass to ``_reconstruct``, which
    cannot itself be called (``ndarray(shape, "O")`` would make an array of Python objects)."""

    def __new__(cls, *args: Any, **kwargs: Any) -> _NdarrayName:
        raise UnsafePickleError("the pickle calls numpy.ndarray directly: refused")


class Global:
    """An allowed global as one load sees it: calling it calls ``fn``. Made afresh by each load, so that
    what a pickle does to it (BUILD) ends with that load."""

    __slots__ = ("fn", "name")

    def __init__(self, fn: Callable[..., Any], name: str) -> None:
        self.fn = fn
        self.name = name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    def __repr__(self) -> str:
        return self.name


def is_global(obj: Any, fn: Any) -> bool:
    """Whether ``obj`` is what a pickle got for the allowed global ``fn``."""
    return isinstance(obj, Global) and obj.fn is fn


def _reconstruct(cls: Any, shape: Any, dtype: Any) -> np.ndarray:
    """NumPy's ``_reconstruct(ndarray, shape, dtype)``: an empty array whose state the pickle then sets.
    Only ``numpy.ndarray`` itself (no subclass, which could run code of its own)."""
    if not is_global(cls, _NdarrayName):
        raise UnsafePickleError(f"the pickle asks to reconstruct {cls!r}, not numpy.ndarray: refused")
    return np.ndarray.__new__(np.ndarray, shape, _plain_dtype(dtype))


def _frombuffer(buffer: Any, dtype: Any, shape: Any, order: str) -> np.ndarray:
    """NumPy's ``_frombuffer`` (arrays pickled with protocol 5): a copy, so the result owns its memory."""
    array = np.frombuffer(buffer, dtype=_plain_dtype(dtype))
    if order == "F":
        return array.reshape(shape[::-1]).T.copy()
    return array.reshape(shape).copy()


def _latin1_bytes(text: str, encoding: str = "latin1") -> bytes:
    """``_codecs.encode(text, "latin1")``: how protocol 2 pickles written by Python 3 spell a bytes object."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise UnsafePickleError(f"the pickle calls _codecs.encode with {type(text).__name__}, {encoding!r}")
    return text.encode("latin1")


# (module, name) -> what the pickle gets when it names that global.
NUMPY_ARRAYS: dict[tuple[str, str], Callable[..., Any]] = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,  # written by NumPy < 2
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,  # written by NumPy >= 2
    ("numpy.core.numeric", "_frombuffer"): _frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _frombuffer,
    ("numpy", "ndarray"): _NdarrayName,  # the class argument of _reconstruct
    ("numpy", "dtype"): _plain_dtype,
    ("_codecs", "encode"): _latin1_bytes,
}


def _array_state(state: Any) -> tuple:
    """The state BUILD may give a fresh ``numpy.ndarray``: ``([version,] shape, dtype, is_fortran, data)``
    with a dtype that holds no Python objects and data as bytes (a str from a Python 2 pickle read with
    ``encoding="latin1"``), never a list (an object array's items)."""
    if not (isinstance(state, tuple) and len(state) in (4, 5)):
        raise UnsafePickleError(f"the pickle gives a NumPy array the state {type(state).__name__}: refused")
    shape, dtype, _fortran, data = state[-4:]
    if not isinstance(dtype, np.dtype) or dtype.hasobject:
        raise UnsafePickleError(f"the pickle gives a NumPy array the dtype {dtype!r}: refused")
    if not isinstance(data, (bytes, bytearray, str)) or not isinstance(shape, tuple):
        raise UnsafePickleError(f"the pickle gives a NumPy array data of type {type(data).__name__}: refused")
    return state


def _same(a: Any, b: Any) -> bool:
    """``a == b`` of the same types all the way down (``dtype("f8") == "f8"`` would pass ``==`` alone)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, np.dtype):
        return bool(a == b) and a.flags == b.flags
    return bool(a == b)


def _checked_dtype_state(dtype: np.dtype, state: Any) -> Any:
    """``state`` if it is what NumPy itself pickles for a dtype its constructor makes from ``state``'s
    parts (byte order, sub-array, fields, datetime unit); else ``UnsafePickleError``. A dtype's
    ``__setstate__`` takes flags, item size and field offsets on trust; this one takes none."""
    try:
        order, subarray, names, fields, itemsize, _alignment, flags = state[1:8]
        if subarray is not None:
            candidate = np.dtype(tuple(subarray))
        elif names is not None:
            spec: dict[str, Any] = {
                "names": list(names),
                "formats": [fields[n][0] for n in names],
                "offsets": [fields[n][1] for n in names],
                "itemsize": itemsize,
            }
            titles = [fields[n][2] if len(fields[n]) > 2 else None for n in names]
            if any(t is not None for t in titles):
                spec["titles"] = titles
            candidate = np.dtype(spec, align=bool(flags & 0x80))  # NPY_ALIGNED_STRUCT
        elif dtype.kind in "mM" and len(state) == 9:  # datetime64/timedelta64: the unit is the 9th item
            unit, count = state[8][1][:2]
            candidate = np.dtype(f"{order}{dtype.kind}8[{count}{unit.decode('ascii')}]")
        else:
            candidate = dtype.newbyteorder(order)
        genuine = _same(candidate.__reduce__()[2], state) and not candidate.hasobject
    except Exception:  # noqa: BLE001 - whatever the parts make NumPy raise: not a state NumPy writes
        genuine = False
    if not genuine:
        raise UnsafePickleError(
            f"the pickle gives the NumPy dtype {dtype} the state {state!r}, which is not NumPy's own for any "
            "dtype: refused"
        )
    return state


class _AllowListUnpickler(pickle._Unpickler):  # the Python unpickler: BUILD must be checked (see above)
    dispatch = dict(pickle._Unpickler.dispatch)

    def __init__(
        self,
        file: io.BytesIO,
        allowed: dict[tuple[str, str], Any],
        encoding: str,
        persistent: Callable[[Any], Any] | None,
    ) -> None:
        super().__init__(file, encoding=encoding)
        self.allowed = allowed
        self.persistent = persistent
        self.unbuilt: dict[int, np.ndarray] = {}  # arrays _reconstruct made, waiting for their one BUILD

    def _reconstruct(self, cls: Any, shape: Any, dtype: Any) -> np.ndarray:
        array = _reconstruct(cls, shape, dtype)
        self.unbuilt[id(array)] = array  # kept alive here, so the id stays its own
        return array

    def load_build(self) -> None:
        state = self.stack.pop()
        target = self.stack[-1]
        if type(target) is np.ndarray and self.unbuilt.get(id(target)) is target:
            del self.unbuilt[id(target)]
            target.__setstate__(_array_state(state))
            if type(target) is not np.ndarray or target.dtype.hasobject:  # what NumPy made of it, again
                raise UnsafePickleError(f"the pickle made a NumPy array of dtype {target.dtype}: refused")
        elif isinstance(target, np.dtype):  # numpy.dtype(...) then BUILD: how NumPy pickles a dtype
            target.__setstate__(_checked_dtype_state(target, state))
        elif type(target) is OrderedDict and isinstance(state, dict):
            for key, value in state.items():
                if not isinstance(key, str) or key.startswith("__"):
                    raise UnsafePickleError(
                        f"the pickle sets the attribute {key!r} of an OrderedDict: refused"
                    )
                target.__dict__[key] = value
        else:
            raise UnsafePickleError(
                f"the pickle sets the state of a {type(target).__name__} (pickle's BUILD opcode): refused; "
                "only fresh NumPy arrays, NumPy's own dtype states and an OrderedDict's attributes are built"
            )

    dispatch[pickle.BUILD[0]] = load_build

    def find_class(self, module: str, name: str) -> Any:
        try:
            fn = self.allowed[(module, name)]
            return Global(self._reconstruct if fn is _reconstruct else fn, f"{module}.{name}")
        except KeyError:
            raise UnsafePickleError(
                f"the pickle asks for {module}.{name}, which is not on the allow-list "
                f"({', '.join(sorted(f'{m}.{n}' for m, n in self.allowed)) or 'nothing'}): refused, "
                "nothing of it was run",
                f"{module}.{name}",
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        if self.persistent is None:
            raise UnsafePickleError(f"the pickle refers to a persistent object {pid!r}: refused")
        return self.persistent(pid)


def loads(
    data: bytes,
    allowed: dict[tuple[str, str], Any] | None = None,
    encoding: str = "ASCII",
    persistent_load: Callable[[Any], Any] | None = None,
) -> Any:
    """Unpickle ``data``, building only plain containers, scalars and the globals of ``allowed``
    (default: ``NUMPY_ARRAYS``). ``encoding`` decodes Python 2 strings, as in ``pickle.loads``.
    ``persistent_load(pid)`` answers the pickle's persistent ids (none are accepted without it); the
    globals it receives inside ``pid`` are ``Global`` wrappers (see ``is_global``).

    Raises ``UnsafePickleError`` for any other global and for BUILD on anything but a fresh array or
    an OrderedDict, and ``pickle.UnpicklingError`` (or ``EOFError``, ``ValueError``) for a damaged
    pickle."""
    allowed = NUMPY_ARRAYS if allowed is None else allowed
    unpickler = _AllowListUnpickler(io.BytesIO(data), allowed, encoding, persistent_load)
    try:
        return unpickler.load()
    except (KeyError, IndexError, struct.error) as exc:  # the Python unpickler's word for a damaged pickle
        raise pickle.UnpicklingError(f"a damaged pickle ({type(exc).__name__}: {exc})") from None
