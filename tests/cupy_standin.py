"""A strict stand-in for CuPy, on NumPy, so that minires's CuPy code path can be tested without a GPU.

``standin`` is a module object named ``cupy``; its arrays are ``StandinArray`` (``standin.ndarray``), which
wrap a NumPy array that plays the part of device memory. Where CuPy and NumPy differ in a way that can hide
a bug, the stand-in behaves as CuPy does, and a little stricter where that costs nothing:

- No implicit conversion to NumPy. ``np.asarray(x)``, ``np.array(x)`` and ``x.__array__()`` raise CuPy's
  TypeError; ``x.get()`` and ``standin.asnumpy(x)`` are the explicit copies. NumPy functions and ufuncs
  applied to a device array (``np.sum(x)``, ``np.exp(x)``) raise TypeError too. Here the stand-in is stricter
  than CuPy, which dispatches them to its own functions through ``__array_function__``/``__array_ufunc__``:
  minires code must say ``xp.sum``. The one exception is NumPy's scalar operators (``np.float32(2) * x``),
  which reach ``__array_ufunc__`` and which CuPy computes on the device.
- No host arrays as operands. ``x + host``, ``host + x`` and ``standin.add(x, host)`` raise CuPy's
  ``TypeError: Unsupported type <class 'numpy.ndarray'>`` (lists and tuples likewise, as CuPy's ufuncs refuse
  them). Python and NumPy scalars are fine. Creation functions (``array``, ``asarray``) copy host data in.
- Device-to-host synchronisations are counted in ``standin.syncs`` (see ``SYNCING`` for the list and why).
- Out-of-range integer-array indices wrap modulo the axis size instead of raising, in ``x[idx]``,
  ``x[idx] = v``, ``take``, ``take_along_axis``, ``put_along_axis``, ``put`` and ``ufunc.at`` (CuPy's
  "Differences between CuPy and NumPy": CuPy wraps around out-of-bounds indices). Scalar integer indices
  still raise IndexError, as in CuPy.
- Reductions and scalar indexing return 0-d device arrays, not NumPy scalars (``x.sum()``, ``x[0]``).
- ``broadcast_to`` returns a writable view (NumPy's is read-only, CuPy's is not).
- Only names that the real CuPy has can be reached: on ``standin`` and its submodules (``random``, ``linalg``,
  ``fft``, ``lib.stride_tricks``, ``cuda``, ``cuda.runtime``), on ``standin_cupyx`` (``cupyx``), on arrays,
  ufuncs and random generators. The names come from tests/cupy_namespace.json, written by
  tools/cupy_names.py from CuPy itself. Any other name raises AttributeError ("cupy has no attribute 'X' in
  CuPy 14.2.0"); a CuPy name that the stand-in does not model raises NotImplementedError when used.
- dtype promotion, shapes and values are NumPy's (CuPy follows NumPy, NEP 50 included).

- Kernel launches are counted in ``standin.launches``: one for each call that computes device values (a
  ufunc, an operator, a function or method whose result is new memory, a fancy index, an assignment into
  an array), none for views (reshape, transpose, slicing, ``broadcast_to``) and host-to-device copies. A
  fused or hand-written CuPy kernel would count one; the stand-in's count is of the calls minires makes.

What it cannot prove: kernel speed, or launches hidden inside one CuPy call (cuBLAS's own, a reduction's
second pass); CUDA numerics (float-to-int casts of negative or infinite
values, the order of parallel reductions, fused multiply-adds, cuBLAS/cuDNN results); device memory use, pool
behaviour, streams and asynchrony (everything runs eagerly on the host); undefined results of duplicate
indices in ``x[idx] = v``; CuPy's own bugs. Host-to-device copies (``asarray`` of host data) are not counted.
"""

from __future__ import annotations

import contextlib
import json
import operator
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

NAMESPACE: dict[str, Any] = json.loads((Path(__file__).with_name("cupy_namespace.json")).read_text())
CUPY_VERSION: str = NAMESPACE["cupy_version"]
IMPLICIT_CONVERSION = (
    "Implicit conversion to a NumPy array is not allowed. "
    "Please use `.get()` to construct a NumPy array explicitly."
)

# Every call below synchronises the device with the host in real CuPy: it needs a value on the host (a
# Python scalar, a NumPy copy, or a result size that depends on the data).
SYNCING = {
    "ndarray.get": "copies the data to the host",
    "ndarray.item": "returns a Python scalar",
    "ndarray.tolist": "returns Python scalars",
    "ndarray.tobytes": "returns host bytes",
    "ndarray.__bool__": "bool(x) needs the value",
    "ndarray.__int__": "int(x) needs the value",
    "ndarray.__float__": "float(x) needs the value",
    "ndarray.__complex__": "complex(x) needs the value",
    "ndarray.__repr__": "printing copies the data to the host",
    "ndarray.__str__": "printing copies the data to the host",
    "ndarray.__format__": "formatting copies the data to the host",
    "ndarray.__reduce__": "pickling copies the data to the host",
    "ndarray.__getitem__[mask]": "the size of x[mask] is the number of True values",
    "ndarray.__setitem__[mask]": "counted conservatively: CuPy's mask scatter may read the True count",
    "asnumpy": "copies the data to the host",
    "nonzero": "the output size is the number of nonzero values (also ndarray.nonzero, where(cond))",
    "argwhere": "calls nonzero",
    "flatnonzero": "calls nonzero",
    "extract": "calls nonzero",
    "compress": "the output size depends on the condition",
    "unique": "the output size is the number of distinct values",
    "trim_zeros": "reads the first and last nonzero positions with .item()",
    "bincount": "one sync for `(x < 0).any()`, one for `int(x.max())` when x is not empty",
    "cuda.Device.synchronize": "waits for the device",
}
# Functions whose CuPy result is a host value (not a 0-d device array).
HOST_RESULT = {
    "ndim", "shape", "size", "isscalar", "can_cast", "result_type", "min_scalar_type", "common_type",
    "may_share_memory", "shares_memory", "iterable", "isfortran", "binary_repr", "base_repr",
    "get_array_module",
}  # fmt: skip
# Functions that take memory from the pool and launch no kernel.
ALLOCATING = {"empty", "empty_like"}
# ndarray attributes that CuPy has and the stand-in does not model (device memory, DLPack, CUDA structs).
NDARRAY_NOT_MODELLED = {
    "data", "flat", "cstruct", "mdspan", "device", "toDlpack", "__dlpack__", "__dlpack_device__",
    "__cuda_array_interface__", "reduced_view", "dump", "dumps", "tofile", "scatter_add", "scatter_max",
    "scatter_min", "byteswap",
}  # fmt: skip


class SyncCounter:
    """Counts device-to-host synchronisations; ``reasons`` names each one, in order."""

    def __init__(self) -> None:
        self.count = 0
        self.reasons: list[str] = []
        self._blocks: list[SyncCounter] = []
        self._forbidden = 0

    def record(self, reason: str, times: int = 1) -> None:
        if self._forbidden:
            raise AssertionError(f"device-to-host sync ({reason}) inside syncs.forbidden()")
        for counter in [self, *self._blocks]:
            counter.count += times
            counter.reasons.extend([reason] * times)

    def reset(self) -> None:
        self.count = 0
        self.reasons.clear()

    @contextlib.contextmanager
    def counting(self) -> Iterator[SyncCounter]:
        """``with standin.syncs.counting() as block: ...`` then ``block.count`` is the syncs inside."""
        block = SyncCounter()
        self._blocks.append(block)
        try:
            yield block
        finally:
            self._blocks.remove(block)

    @contextlib.contextmanager
    def forbidden(self) -> Iterator[None]:
        """Any sync inside the block raises AssertionError (for hot loops that must stay on the device)."""
        self._forbidden += 1
        try:
            yield
        finally:
            self._forbidden -= 1


syncs = SyncCounter()


class LaunchCounter:
    """Counts kernel launches (see the module docstring for what counts as one)."""

    def __init__(self) -> None:
        self.count = 0
        self._blocks: list[LaunchCounter] = []

    def record(self, times: int = 1) -> None:
        for counter in [self, *self._blocks]:
            counter.count += times

    @contextlib.contextmanager
    def counting(self) -> Iterator[LaunchCounter]:
        """``with standin.launches.counting() as block: ...`` then ``block.count`` is the launches inside."""
        block = LaunchCounter()
        self._blocks.append(block)
        try:
            yield block
        finally:
            self._blocks.remove(block)


launches = LaunchCounter()


def _record_launch(result: Any, inputs: Any) -> None:
    """One launch when ``result`` is device memory that no input array shares (a view is no kernel)."""
    if not isinstance(result, np.ndarray):
        if type(result) is tuple and any(isinstance(r, np.ndarray) for r in result):
            launches.record()
        return
    stack = [inputs]
    while stack:
        item = stack.pop()
        if isinstance(item, np.ndarray):
            if np.may_share_memory(result, item):
                return
        elif type(item) in (list, tuple):
            stack.extend(item)
        elif type(item) is dict:
            stack.extend(item.values())
    launches.record()


def _unsupported(obj: Any) -> TypeError:
    return TypeError(f"Unsupported type {type(obj)}")


def _no_attribute(owner: str, name: str) -> AttributeError:
    return AttributeError(f"{owner} has no attribute {name!r} in CuPy {CUPY_VERSION}")


def _not_modelled(qualname: str) -> NotImplementedError:
    return NotImplementedError(f"{qualname} exists in CuPy {CUPY_VERSION} but the stand-in does not model it")


def _device(array: np.ndarray) -> StandinArray:
    """Wrap a NumPy array (sharing its memory) as a device array."""
    out = object.__new__(StandinArray)
    out._a = array
    return out


def _wrap(result: Any) -> Any:
    """NumPy results as device arrays; NumPy scalars become 0-d arrays, as CuPy returns them."""
    if isinstance(result, np.ndarray):
        return _device(result)
    if isinstance(result, np.generic):
        return _device(np.asarray(result))
    if type(result) is tuple:
        return tuple(_wrap(r) for r in result)
    if type(result) is list:
        return [_wrap(r) for r in result]
    return result


def _unwrap(obj: Any, host_ok: bool = False) -> Any:
    """Device arrays to their NumPy arrays (also inside lists and tuples); host arrays are refused."""
    if isinstance(obj, StandinArray):
        return obj._a
    if isinstance(obj, np.ndarray) and not host_ok:
        raise _unsupported(obj)
    if type(obj) in (list, tuple):
        return type(obj)(_unwrap(o, host_ok) for o in obj)
    return obj


def _operand(obj: Any) -> Any:
    """An operand of a ufunc or operator: a device array or a scalar, as CuPy's ufuncs accept."""
    if isinstance(obj, StandinArray):
        return obj._a
    if isinstance(obj, (np.ndarray, list, tuple)):
        raise _unsupported(obj)
    return obj


def _call(
    func: Callable, args: tuple, kwargs: dict, host_ok: bool = False, scalar_to_array: bool = True
) -> Any:
    """Call a NumPy function on unwrapped arguments and wrap its result; ``out=`` is returned as given."""
    host_args = _unwrap(args, host_ok)
    host_kwargs = {k: _unwrap(v, host_ok) for k, v in kwargs.items()}
    result = func(*host_args, **host_kwargs)
    out = kwargs.get("out")
    if isinstance(out, StandinArray) and result is out._a:
        launches.record()
        return out
    owner = getattr(func, "__self__", None)  # a bound method of the array: its result may be a view
    if result is None and isinstance(owner, np.ndarray):
        launches.record()  # an in-place method: fill, sort
    else:
        _record_launch(result, (host_args, host_kwargs, owner if isinstance(owner, np.ndarray) else None))
    if scalar_to_array and type(result) in (bool, int, float, complex):
        return _device(np.asarray(result))
    return _wrap(result)


def _index_array(obj: Any) -> Any:
    if isinstance(obj, StandinArray):
        return obj._a
    if type(obj) is list:
        array = np.asarray(obj)
        # CuPy's _prepare_slice_list: an empty list means no indices (int32), not a float64 array.
        return array.astype(np.int32) if array.size == 0 else array
    return obj


def _index_key(key: Any, shape: tuple[int, ...]) -> tuple[Any, bool]:
    """The key with out-of-range integer-array indices wrapped modulo their axis size, as CuPy does, and
    whether it holds a boolean mask."""
    items = [_index_array(k) for k in (key if type(key) is tuple else (key,))]
    consumed = sum(
        k.ndim if isinstance(k, np.ndarray) and k.dtype == bool else 1 for k in items if k is not None
    )
    consumed -= sum(1 for k in items if k is Ellipsis)
    out, axis, has_mask = [], 0, False
    for item in items:
        if item is None:
            out.append(item)
            continue
        if item is Ellipsis:
            axis += len(shape) - consumed
        elif isinstance(item, np.ndarray) and item.dtype == bool:
            has_mask = True
            axis += item.ndim - 1
        elif (
            isinstance(item, np.ndarray) and item.dtype.kind in "iu" and axis < len(shape) and shape[axis] > 0
        ):
            item = np.mod(item, shape[axis])  # CuPy: x[[1, 3]] of a length-3 axis is x[[1, 0]]
        out.append(item)
        axis += 0 if item is Ellipsis else 1
    return (tuple(out) if type(key) is tuple else out[0]), has_mask


def _binary(op: Callable, reflected: bool = False) -> Callable:
    def method(self: StandinArray, other: Any) -> Any:
        other = _operand(other)
        launches.record()
        return _wrap(op(other, self._a) if reflected else op(self._a, other))

    return method


def _inplace(op: Callable) -> Callable:
    def method(self: StandinArray, other: Any) -> StandinArray:
        op(self._a, _operand(other))
        launches.record()
        return self

    return method


def _unary(op: Callable) -> Callable:
    def method(self: StandinArray) -> Any:
        launches.record()
        return _wrap(op(self._a))

    return method


def _syncing(name: str, reason: str) -> Callable:
    def method(self: StandinArray, *args: Any, **kwargs: Any) -> Any:
        syncs.record(reason)
        return getattr(self._a, name)(*_unwrap(args), **kwargs)

    method.__name__ = name
    return method


class StandinArray:
    """A device array: a NumPy array behind CuPy's interface (see the module docstring)."""

    __slots__ = ("_a",)
    __array_priority__ = 100.0
    __hash__ = None  # type: ignore[assignment]  # unhashable, like CuPy's and NumPy's arrays

    def __init__(
        self, shape: Any, dtype: Any = float, memptr: Any = None, strides: Any = None, order: str = "C"
    ):
        if memptr is not None or strides is not None:
            raise _not_modelled("cupy.ndarray(memptr=..., strides=...)")
        self._a = np.empty(shape, dtype=dtype, order=order)

    # ---- names of the real cupy.ndarray, looked up on the NumPy array
    def __getattr__(self, name: str) -> Any:
        if name == "_a" or name not in NDARRAY_NAMES:
            raise _no_attribute("cupy.ndarray", name)
        if name in NDARRAY_NOT_MODELLED:
            raise _not_modelled(f"cupy.ndarray.{name}")
        value = getattr(self._a, name)
        if callable(value):
            return lambda *args, **kwargs: _call(value, args, kwargs, scalar_to_array=False)
        return _wrap(value)

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "_a":
            object.__setattr__(self, name, value)
        elif name in ("shape", "strides"):
            setattr(self._a, name, value)
        else:
            raise _no_attribute("cupy.ndarray", name)

    def __dir__(self) -> list[str]:
        return sorted(NDARRAY_NAMES)

    # ---- refusals of implicit conversion
    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        raise TypeError(IMPLICIT_CONVERSION)

    def __array_function__(self, func: Any, types: Any, args: Any, kwargs: Any) -> Any:
        raise TypeError(
            f"numpy.{func.__name__} was called on a device array: minires must call xp.{func.__name__} "
            f"(the stand-in is stricter than CuPy, which would dispatch it to cupy.{func.__name__})"
        )

    def __array_ufunc__(self, ufunc: np.ufunc, method: str, *inputs: Any, **kwargs: Any) -> Any:
        for x in inputs + tuple(kwargs.get("out", ())):
            if isinstance(x, np.ndarray):
                raise _unsupported(x)  # what CuPy says to `host + x`
        if method == "__call__" and any(isinstance(x, np.generic) for x in inputs):
            # `np.float32(2) * x`: NumPy's scalar operator lands here; CuPy computes it on the device.
            return _wrap(ufunc(*(_operand(x) for x in inputs), **kwargs))
        raise TypeError(
            f"numpy.{ufunc.__name__} was called on a device array: minires must call xp.{ufunc.__name__} "
            f"(the stand-in is stricter than CuPy, which would dispatch it to cupy.{ufunc.__name__})"
        )

    # ---- explicit copies and the other syncs
    def get(
        self, stream: Any = None, order: str = "C", out: np.ndarray | None = None, blocking: bool = True
    ) -> Any:
        syncs.record("ndarray.get")
        if out is not None:
            np.copyto(out, self._a)
            return out
        return np.array(self._a, order=order, copy=True)

    def set(self, arr: np.ndarray, stream: Any = None) -> None:
        """Copy host data in (host to device: not a sync)."""
        if not isinstance(arr, np.ndarray) or arr.shape != self._a.shape:
            raise ValueError(f"Shape mismatch. Old shape: {self._a.shape}, new shape: {np.shape(arr)}")
        np.copyto(self._a, arr, casting="no")

    item = _syncing("item", "ndarray.item")
    tolist = _syncing("tolist", "ndarray.tolist")
    tobytes = _syncing("tobytes", "ndarray.tobytes")

    def __bool__(self) -> bool:
        syncs.record("ndarray.__bool__")
        return bool(self._a)

    def __int__(self) -> int:
        syncs.record("ndarray.__int__")
        return int(self._a)

    def __float__(self) -> float:
        syncs.record("ndarray.__float__")
        return float(self._a)

    def __complex__(self) -> complex:
        syncs.record("ndarray.__complex__")
        return complex(self._a)

    # No __index__: cupy.ndarray has none, so `range(x)` and `[0, 1][x]` fail on CuPy too.

    def __repr__(self) -> str:
        syncs.record("ndarray.__repr__")
        return repr(self._a)

    def __str__(self) -> str:
        syncs.record("ndarray.__str__")
        return str(self._a)

    def __format__(self, spec: str) -> str:
        syncs.record("ndarray.__format__")
        return format(self._a if self._a.ndim else self._a[()], spec)

    def __reduce__(self) -> tuple:
        syncs.record("ndarray.__reduce__")
        return (_from_host, (np.array(self._a),))

    def nonzero(self) -> tuple[StandinArray, ...]:
        syncs.record("nonzero")
        return _wrap(self._a.nonzero())

    def compress(self, condition: Any, axis: Any = None, out: Any = None) -> StandinArray:
        return compress(condition, self, axis=axis, out=out)

    # ---- shape metadata and iteration: no sync
    def __len__(self) -> int:
        return len(self._a)

    def __iter__(self) -> Iterator[StandinArray]:
        if self._a.ndim == 0:
            raise TypeError("iteration over a 0-d array")
        return (self[i] for i in range(len(self._a)))  # device sub-arrays, as CuPy yields them

    def __copy__(self) -> StandinArray:
        return _device(self._a.copy())

    def __deepcopy__(self, memo: dict) -> StandinArray:
        return _device(self._a.copy())

    # ---- indexing, with CuPy's wrapping of out-of-range integer-array indices
    def __getitem__(self, key: Any) -> Any:
        key, has_mask = _index_key(key, self._a.shape)
        if has_mask:
            syncs.record("ndarray.__getitem__[mask]")
        result = self._a[key]
        _record_launch(result, self._a)  # an integer-array or mask index gathers: a kernel
        return _wrap(result)

    def __setitem__(self, key: Any, value: Any) -> None:
        key, has_mask = _index_key(key, self._a.shape)
        if has_mask:
            syncs.record("ndarray.__setitem__[mask]")
        self._a[key] = _unwrap(value, host_ok=True)  # CuPy copies a host value in
        launches.record()

    def take(self, indices: Any, axis: int | None = None, out: Any = None) -> StandinArray:
        return take(self, indices, axis=axis, out=out)

    def put(self, indices: Any, values: Any, mode: str = "wrap") -> None:
        np.put(self._a, _index_array(indices), _unwrap(values), mode=mode)
        launches.record()

    # ---- operators: device arrays and scalars only
    __add__, __radd__, __iadd__ = _binary(operator.add), _binary(operator.add, True), _inplace(operator.iadd)
    __sub__, __rsub__, __isub__ = _binary(operator.sub), _binary(operator.sub, True), _inplace(operator.isub)
    __mul__, __rmul__, __imul__ = _binary(operator.mul), _binary(operator.mul, True), _inplace(operator.imul)
    __truediv__, __rtruediv__ = _binary(operator.truediv), _binary(operator.truediv, True)
    __itruediv__ = _inplace(operator.itruediv)
    __floordiv__, __rfloordiv__ = _binary(operator.floordiv), _binary(operator.floordiv, True)
    __ifloordiv__ = _inplace(operator.ifloordiv)
    __mod__, __rmod__, __imod__ = _binary(operator.mod), _binary(operator.mod, True), _inplace(operator.imod)
    __pow__, __rpow__, __ipow__ = _binary(operator.pow), _binary(operator.pow, True), _inplace(operator.ipow)
    __matmul__, __rmatmul__ = _binary(operator.matmul), _binary(operator.matmul, True)
    __divmod__, __rdivmod__ = _binary(divmod), _binary(divmod, True)
    __and__, __rand__, __iand__ = (
        _binary(operator.and_),
        _binary(operator.and_, True),
        _inplace(operator.iand),
    )
    __or__, __ror__, __ior__ = _binary(operator.or_), _binary(operator.or_, True), _inplace(operator.ior)
    __xor__, __rxor__, __ixor__ = _binary(operator.xor), _binary(operator.xor, True), _inplace(operator.ixor)
    __lshift__, __rlshift__ = _binary(operator.lshift), _binary(operator.lshift, True)
    __ilshift__ = _inplace(operator.ilshift)
    __rshift__, __rrshift__ = _binary(operator.rshift), _binary(operator.rshift, True)
    __irshift__ = _inplace(operator.irshift)
    __lt__, __le__ = _binary(operator.lt), _binary(operator.le)
    __gt__, __ge__ = _binary(operator.gt), _binary(operator.ge)
    __eq__, __ne__ = _binary(operator.eq), _binary(operator.ne)  # type: ignore[assignment]
    __neg__, __pos__ = _unary(operator.neg), _unary(operator.pos)
    __abs__, __invert__ = _unary(operator.abs), _unary(operator.invert)


def _from_host(array: np.ndarray) -> StandinArray:
    return _device(array)


NDARRAY_NAMES: set[str] = set(NAMESPACE["cupy.ndarray"])


class StandinUfunc:
    """A CuPy ufunc: a NumPy ufunc that takes device arrays and scalars, and whose ``at`` wraps indices."""

    def __init__(self, ufunc: np.ufunc, qualname: str) -> None:
        self._u = ufunc
        self.__name__ = qualname.rpartition(".")[2]
        self._qualname = qualname

    @property
    def name(self) -> str:
        return self.__name__

    def __repr__(self) -> str:
        return f"<ufunc '{self.__name__}'>"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        out = kwargs.get("out")
        if isinstance(out, tuple) and len(out) == 1:
            out = out[0]
        kwargs = {k: _unwrap(v) for k, v in kwargs.items()}
        result = self._u(*(_operand(a) for a in args), **kwargs)
        launches.record()
        if isinstance(out, StandinArray) and result is out._a:
            return out
        return _wrap(result)

    def at(self, a: StandinArray, indices: Any, b: Any = None) -> None:
        key, _ = _index_key(indices, a._a.shape)
        launches.record()
        if b is None:
            self._u.at(a._a, key)
        else:
            self._u.at(a._a, key, _operand(b) if not isinstance(b, (list, tuple)) else b)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name not in UFUNC_NAMES:
            raise _no_attribute("cupy.ufunc", name)
        value = getattr(self._u, name)
        if callable(value):
            return lambda *args, **kwargs: _call(value, args, kwargs, scalar_to_array=False)
        return value


UFUNC_NAMES: set[str] = set(NAMESPACE["cupy.ufunc"])


class _NotModelled:
    """A CuPy name that exists but that the stand-in does not model: using it raises NotImplementedError."""

    def __init__(self, qualname: str) -> None:
        self._qualname = qualname

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise _not_modelled(self._qualname)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        raise _not_modelled(f"{self._qualname}.{name}")


class Namespace(ModuleType):
    """A module of the stand-in: the names of one section of cupy_namespace.json, and no others.

    A name resolves to its override if there is one, else to the NumPy twin: the very object for an alias
    (``float32``), a ``StandinUfunc`` for a ufunc, a function on device arrays for a function.
    """

    def __init__(self, name: str, twin: Any, overrides: dict[str, Any] | None = None) -> None:
        super().__init__(name)
        self._names: dict[str, str] = NAMESPACE[name]
        self._twin = twin
        self._overrides = overrides or {}

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("_") or attr not in self._names:
            raise _no_attribute(self.__name__, attr)
        value = self._resolve(attr, self._names[attr])
        setattr(self, attr, value)  # cached: `standin.add is standin.add`
        return value

    def _resolve(self, attr: str, kind: str) -> Any:
        qualname = f"{self.__name__}.{attr}"
        if attr in self._overrides:
            return self._overrides[attr]
        twin = getattr(self._twin, attr, None) if self._twin is not None else None
        if twin is None:
            return _NotModelled(qualname)
        if kind == "alias":
            return twin
        if isinstance(twin, np.ufunc):
            return StandinUfunc(twin, qualname)
        if kind == "function" and callable(twin):
            return _device_function(twin, attr)
        return _NotModelled(qualname)

    def __dir__(self) -> list[str]:
        return sorted(self._names)


def _device_function(func: Callable, name: str) -> Callable:
    """A NumPy function that takes and returns device arrays and refuses host arrays, as CuPy's do."""
    scalar_to_array = name not in HOST_RESULT

    def function(*args: Any, **kwargs: Any) -> Any:
        if name in ALLOCATING:
            with launches.counting() as block:
                result = _call(func, args, kwargs)
            launches.record(-block.count)  # memory from the pool, no kernel
            return result
        return _call(func, args, kwargs, scalar_to_array=scalar_to_array)

    function.__name__ = name
    function.__doc__ = f"numpy.{name} on device arrays."
    return function


# ---- module functions that differ from the generic NumPy forwarding
def array(
    obj: Any, dtype: Any = None, copy: bool = True, order: str = "K", subok: bool = False, ndmin: int = 0
):
    """A new device array; host data are copied in (host to device: not a sync)."""
    return _device(np.array(_unwrap(obj, host_ok=True), dtype=dtype, copy=True, order=order, ndmin=ndmin))


def asarray(a: Any, dtype: Any = None, order: Any = None, *, blocking: bool = False) -> StandinArray:
    """``a`` itself when it is a device array of that dtype, else a device copy (never sharing host data)."""
    if isinstance(a, StandinArray) and (dtype is None or a._a.dtype == np.dtype(dtype)):
        return a
    if isinstance(a, StandinArray):
        launches.record()  # a cast on the device
    return _device(np.array(_unwrap(a, host_ok=True), dtype=dtype, order=order or "K", copy=True))


def asnumpy(
    a: Any, stream: Any = None, order: str = "C", out: Any = None, blocking: bool = True
) -> np.ndarray:
    """The explicit copy to the host (a sync for a device array)."""
    if isinstance(a, StandinArray):
        return a.get(order=order, out=out)
    return np.asarray(a, order=order)


def get_array_module(*args: Any) -> ModuleType:
    return standin if any(isinstance(a, StandinArray) for a in args) else np


def broadcast_to(array: StandinArray, shape: Any) -> StandinArray:
    """A writable broadcast view, as CuPy's (NumPy's ``broadcast_to`` is read-only)."""
    a = _unwrap(array)
    view = np.broadcast_to(a, shape)
    return _device(np.lib.stride_tricks.as_strided(a, shape=view.shape, strides=view.strides))


def take(a: StandinArray, indices: Any, axis: int | None = None, out: Any = None) -> StandinArray:
    result = np.take(_unwrap(a), _index_array(indices), axis=axis, out=_unwrap(out), mode="wrap")
    launches.record()
    return out if out is not None else _wrap(result)


def _along_axis_indices(arr: StandinArray, indices: Any, axis: int | None) -> np.ndarray:
    indices = _index_array(indices)
    size = arr._a.size if axis is None else arr._a.shape[axis]
    return np.mod(indices, size) if size else indices


def take_along_axis(a: StandinArray, indices: Any, axis: int | None) -> StandinArray:
    launches.record()
    return _wrap(np.take_along_axis(_unwrap(a), _along_axis_indices(a, indices, axis), axis=axis))


def put_along_axis(arr: StandinArray, indices: Any, values: Any, axis: int | None) -> None:
    np.put_along_axis(_unwrap(arr), _along_axis_indices(arr, indices, axis), _unwrap(values), axis=axis)
    launches.record()


def put(a: StandinArray, ind: Any, v: Any, mode: str = "wrap") -> None:
    a.put(ind, v, mode=mode)


def fuse(*args: Any, kernel_name: str | None = None) -> Any:
    """``cupy.fuse``: the function, run on device arrays as written, counted as one kernel launch (what
    CuPy compiles it to). In-place operators on its array arguments update them, as in CuPy's fusion."""

    def decorate(func: Callable) -> Callable:
        def fused(*call_args: Any) -> Any:
            with launches.counting() as block:
                result = func(*call_args)
            launches.record(1 - block.count)
            return result

        fused.__name__ = kernel_name or func.__name__
        return fused

    if len(args) == 1 and callable(args[0]):
        return decorate(args[0])
    return decorate


def _counted(func: Callable, reason: str, times: Callable[..., int] = lambda *a, **k: 1) -> Callable:
    def function(*args: Any, **kwargs: Any) -> Any:
        syncs.record(reason, times(*args, **kwargs))
        return _call(func, args, kwargs)

    function.__name__ = func.__name__
    return function


def where(condition: Any, x: Any = None, y: Any = None) -> Any:
    if x is None and y is None:
        return nonzero(condition)  # where(cond) is nonzero(cond): a sync
    return _call(np.where, (condition, x, y), {})


nonzero = _counted(np.nonzero, "nonzero")
argwhere = _counted(np.argwhere, "argwhere")
flatnonzero = _counted(np.flatnonzero, "flatnonzero")
extract = _counted(np.extract, "extract")
compress = _counted(np.compress, "compress")
unique = _counted(np.unique, "unique")
trim_zeros = _counted(np.trim_zeros, "trim_zeros")
bincount = _counted(np.bincount, "bincount", lambda x, *a, **k: 2 if _unwrap(x).size else 1)


class Device:
    """``cupy.cuda.Device``: the one stand-in device, id 0."""

    def __init__(self, device: int | None = None) -> None:
        self.id = 0 if device is None else int(device)
        if self.id != 0:
            raise RuntimeError("cudaErrorInvalidDevice: invalid device ordinal")

    compute_capability = "90"

    def synchronize(self) -> None:
        syncs.record("cuda.Device.synchronize")

    def use(self) -> None:
        pass

    def __enter__(self) -> Device:
        return self

    def __exit__(self, *exc: Any) -> None:
        pass

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name not in NAMESPACE["cupy.cuda.Device"]:
            raise _no_attribute("cupy.cuda.Device", name)
        raise _not_modelled(f"cupy.cuda.Device.{name}")


class Stream:
    """``cupy.cuda.Stream``: work runs eagerly, so there is nothing to wait for."""

    def __init__(self, null: bool = False, non_blocking: bool = False, ptds: bool = False) -> None:
        self.null = null

    def synchronize(self) -> None:
        syncs.record("cuda.Stream.synchronize")

    def use(self) -> Stream:
        return self

    def __enter__(self) -> Stream:
        return self

    def __exit__(self, *exc: Any) -> None:
        pass


class MemoryPool:
    """``cupy.get_default_memory_pool()``: the stand-in holds no device memory."""

    def free_all_blocks(self, stream: Any = None) -> None:
        pass

    def used_bytes(self) -> int:
        return 0

    def total_bytes(self) -> int:
        return 0


_memory_pool = MemoryPool()
_DEVICE_PROPERTIES = {"name": b"minires CuPy stand-in", "totalGlobalMem": 0, "major": 9, "minor": 0}


class Generator:
    """``cupy.random.Generator`` on a NumPy generator: only CuPy's methods (no ``permutation``, ``normal``,
    ``choice``...); scalar draws come back as 0-d device arrays."""

    def __init__(self, bit_generator: Any) -> None:
        self._gen = (
            np.random.Generator(bit_generator)
            if not isinstance(bit_generator, np.random.Generator)
            else bit_generator
        )

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name not in NAMESPACE["cupy.random.Generator"]:
            raise _no_attribute("cupy.random.Generator", name)
        method = getattr(self._gen, name)
        return lambda *args, **kwargs: _call(method, args, kwargs)


def default_rng(seed: Any = None) -> Generator:
    return Generator(np.random.default_rng(seed))


def Philox4x3210(seed: Any = None, *, size: int = -1) -> np.random.Philox:  # noqa: N802 - CuPy's name
    """CuPy's counter-based bit generator, as NumPy's Philox (other numbers than cuRAND's, same use)."""
    return np.random.Philox(np.random.SeedSequence(seed))


def _special_module() -> Any:
    try:
        import scipy.special
    except ImportError:  # then every cupyx.scipy.special name reads as not modelled
        return None
    return scipy.special


_runtime = Namespace(
    "cupy.cuda.runtime",
    None,
    {
        "getDeviceCount": lambda: 1,
        "getDevice": lambda: 0,
        "getDeviceProperties": lambda device: dict(_DEVICE_PROPERTIES),
        "deviceSynchronize": lambda: syncs.record("cuda.Device.synchronize"),
    },
)
_stride_tricks = Namespace("cupy.lib.stride_tricks", np.lib.stride_tricks)
standin = Namespace(
    "cupy",
    np,
    {
        "ndarray": StandinArray,
        "ufunc": StandinUfunc,
        "array": array,
        "asarray": asarray,
        "asanyarray": asarray,
        "asnumpy": asnumpy,
        "get_array_module": get_array_module,
        "broadcast_to": broadcast_to,
        "take": take,
        "take_along_axis": take_along_axis,
        "put_along_axis": put_along_axis,
        "put": put,
        "where": where,
        "nonzero": nonzero,
        "argwhere": argwhere,
        "flatnonzero": flatnonzero,
        "extract": extract,
        "compress": compress,
        "unique": unique,
        "trim_zeros": trim_zeros,
        "bincount": bincount,
        "fuse": fuse,
        "get_default_memory_pool": lambda: _memory_pool,
        "get_default_pinned_memory_pool": lambda: _memory_pool,
        "random": Namespace(
            "cupy.random",
            np.random,
            {"default_rng": default_rng, "Generator": Generator, "Philox4x3210": Philox4x3210},
        ),
        "linalg": Namespace("cupy.linalg", np.linalg),
        "fft": Namespace("cupy.fft", np.fft),
        "lib": Namespace("cupy.lib", None, {"stride_tricks": _stride_tricks}),
        "cuda": Namespace(
            "cupy.cuda",
            None,
            {
                "Device": Device,
                "Stream": Stream,
                "runtime": _runtime,
                "nccl": Namespace("cupy.cuda.nccl", None),
            },
        ),
    },
)
standin.syncs = syncs  # type: ignore[attr-defined]  # not a CuPy name: the stand-in's own counter
standin.launches = launches  # type: ignore[attr-defined]  # likewise
standin.__version__ = CUPY_VERSION  # type: ignore[attr-defined]

standin_cupyx = Namespace(
    "cupyx",
    None,
    {
        "scipy": Namespace(
            "cupyx.scipy", None, {"special": Namespace("cupyx.scipy.special", _special_module())}
        )
    },
)
