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

A caller can give its own allow-list (``minires.torch_format`` gives PyTorch's tensor rebuilders) and a
``persistent_load`` (PyTorch's files refer to their storages by persistent id). What the pickle gets for
an allowed global is a fresh wrapper made for this one load, never the function itself: pickle's BUILD
opcode sets attributes on whatever object it is given, and it must not reach a function of this module
(its ``__defaults__``, say) and change how the next file is read.
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Callable
from typing import Any

import numpy as np


class UnsafePickleError(pickle.UnpicklingError):
    """A pickle asked for a global that is not on the allow-list; the message names it."""


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


class _AllowListUnpickler(pickle.Unpickler):
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

    def find_class(self, module: str, name: str) -> Any:
        try:
            return Global(self.allowed[(module, name)], f"{module}.{name}")
        except KeyError:
            raise UnsafePickleError(
                f"the pickle asks for {module}.{name}, which is not on the allow-list "
                f"({', '.join(sorted(f'{m}.{n}' for m, n in self.allowed)) or 'nothing'}): refused, "
                "nothing of it was run"
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

    Raises ``UnsafePickleError`` for any other global, and ``pickle.UnpicklingError`` (or ``EOFError``,
    ``ValueError``) for a damaged pickle."""
    allowed = NUMPY_ARRAYS if allowed is None else allowed
    return _AllowListUnpickler(io.BytesIO(data), allowed, encoding, persistent_load).load()
