"""The CuPy stand-in (tests/cupy_standin.py) behaves as CuPy where CuPy and NumPy differ.

Each test states one CuPy behaviour and checks it on the stand-in, next to the NumPy behaviour it differs
from where that shows the test could fail. The last tests tie the stand-in to the real CuPy 14 namespace
(tests/cupy_namespace.json) and to what minires calls.
"""

from __future__ import annotations

import copy
import operator
import pickle
import re
from pathlib import Path

import numpy as np
import pytest
from cupy_standin import (
    IMPLICIT_CONVERSION,
    NAMESPACE,
    SYNCING,
    StandinArray,
    standin,
    standin_cupyx,
    syncs,
)
from scripts import load_script

cp = standin
MINIRES = Path(__file__).resolve().parent.parent / "minires"


def device(values, dtype=np.float64) -> StandinArray:
    return cp.asarray(np.asarray(values, dtype=dtype))


# ---- implicit conversion is refused; .get() is the explicit copy


@pytest.mark.parametrize(
    "convert",
    [
        np.asarray,
        np.array,
        lambda x: x.__array__(),
        lambda x: np.array([x, x]),
        lambda x: np.ascontiguousarray(x),
    ],
    ids=["np.asarray", "np.array", "__array__", "np.array-of-list", "np.ascontiguousarray"],
)
def test_implicit_conversion_to_numpy_raises_cupys_type_error(convert):
    x = device([1.0, 2.0])
    with pytest.raises(TypeError, match=re.escape(IMPLICIT_CONVERSION)):
        convert(x)


def test_the_message_is_cupys_own():
    assert IMPLICIT_CONVERSION == (
        "Implicit conversion to a NumPy array is not allowed. "
        "Please use `.get()` to construct a NumPy array explicitly."
    )


@pytest.mark.parametrize(
    "numpy_call",
    [
        np.sum,
        np.exp,
        lambda x: np.add(x, 1),
        lambda x: np.where(x > 0, x, 0),
        lambda x: np.concatenate([x, x]),
    ],
    ids=["np.sum", "np.exp", "np.add", "np.where", "np.concatenate"],
)
def test_numpy_functions_on_a_device_array_are_refused(numpy_call):
    with pytest.raises(TypeError, match=r"was called on a device array: minires must call xp\."):
        numpy_call(device([1.0, -2.0]))


def test_stand_in_functions_take_and_return_device_arrays():
    x, y = device([1.0, 2.0]), device([3.0, 4.0])
    for result in (cp.add(x, y), cp.sum(x), cp.exp(x), cp.where(x > 1, x, 0.0), x + y, x.sum()):
        assert isinstance(result, StandinArray)
    np.testing.assert_array_equal(cp.add(x, y).get(), [4.0, 6.0])


def test_get_is_a_host_copy():
    x = device([1.0, 2.0])
    host = x.get()
    assert type(host) is np.ndarray
    host[0] = 99.0
    assert x.get()[0] == 1.0


def test_asarray_copies_host_data_in():
    host = np.array([1.0, 2.0])
    x = cp.asarray(host)
    host[0] = 99.0
    assert x.get()[0] == 1.0
    assert cp.asarray(x) is x


# ---- host arrays as operands are refused, as CuPy's ufuncs refuse them


@pytest.mark.parametrize(
    "mix",
    [
        lambda x, h: x + h,
        lambda x, h: h + x,
        lambda x, h: h * x,
        lambda x, h: x @ h,
        lambda x, h: x < h,
        lambda x, h: cp.add(x, h),
        lambda x, h: cp.maximum(h, x),
        lambda x, h: cp.matmul(x, h),
        lambda x, h: cp.sum(h),
    ],
    ids=["x+h", "h+x", "h*x", "x@h", "x<h", "cp.add", "cp.maximum", "cp.matmul", "cp.sum(h)"],
)
def test_a_host_array_operand_raises_unsupported_type(mix):
    with pytest.raises(TypeError, match=re.escape("Unsupported type <class 'numpy.ndarray'>")):
        mix(device([1.0, 2.0]), np.array([3.0, 4.0]))


def test_a_list_operand_raises_unsupported_type():
    with pytest.raises(TypeError, match=re.escape("Unsupported type <class 'list'>")):
        device([1.0, 2.0]) + [1.0, 2.0]


def test_scalars_are_fine_operands_and_keep_numpys_dtype_rules():
    x = device([1.0, 2.0], np.float32)
    assert (x * 2 + 1.5).dtype == np.float32  # a Python scalar does not promote (NEP 50)
    assert (np.float32(2) * x).dtype == np.float32  # NumPy's scalar operator, computed on the device
    assert isinstance(np.float32(2) * x, StandinArray)
    assert (x * np.float64(2)).dtype == np.float64
    x += 1
    np.testing.assert_array_equal(x.get(), [2.0, 3.0])


# ---- device-to-host synchronisations are counted


SYNC_CALLS = {
    "item": (lambda x: x[0].item(), 1),
    "float": (lambda x: float(x[0]), 1),
    "int": (lambda x: int(x[0]), 1),
    "bool": (lambda x: bool(x[0]), 1),
    "complex": (lambda x: complex(x[0]), 1),
    "get": (lambda x: x.get(), 1),
    "tolist": (lambda x: x.tolist(), 1),
    "tobytes": (lambda x: x.tobytes(), 1),
    "asnumpy": (lambda x: cp.asnumpy(x), 1),
    "repr": (repr, 1),
    "str": (str, 1),
    "format": (lambda x: f"{x.sum():.3f}", 1),
    "pickle": (pickle.dumps, 1),
    "mask getitem": (lambda x: x[x > 1], 1),
    "mask setitem": (lambda x: x.__setitem__(x > 1, 0.0), 1),
    "nonzero": (cp.nonzero, 1),
    "ndarray.nonzero": (lambda x: x.nonzero(), 1),
    "where(cond)": (lambda x: cp.where(x > 1), 1),
    "argwhere": (cp.argwhere, 1),
    "flatnonzero": (cp.flatnonzero, 1),
    "extract": (lambda x: cp.extract(x > 1, x), 1),
    "compress": (lambda x: cp.compress(x > 1, x), 1),
    "unique": (cp.unique, 1),
    "trim_zeros": (cp.trim_zeros, 1),
    "bincount": (lambda x: cp.bincount(x.astype(cp.int64)), 2),
    "bincount of empty": (lambda x: cp.bincount(x[:0].astype(cp.int64)), 1),
    "Device.synchronize": (lambda x: cp.cuda.Device().synchronize(), 1),
}


@pytest.mark.parametrize("name", SYNC_CALLS)
def test_each_syncing_call_is_counted(name):
    call, expected = SYNC_CALLS[name]
    x = device([0.0, 1.0, 2.0, 2.0])
    with syncs.counting() as block:
        call(x)
    assert block.count == expected, block.reasons
    assert set(block.reasons) <= {reason.split("[")[0] for reason in SYNCING} | set(SYNCING)


NO_SYNC_CALLS = {
    "len": len,
    "iter": lambda x: [row for row in x],  # CuPy yields device sub-arrays
    "shape": lambda x: (x.shape, x.dtype, x.size, x.ndim),
    "reduction": lambda x: x.sum(keepdims=True) + cp.max(x),
    "integer index": lambda x: x[0] * 2,
    "fancy index": lambda x: x[cp.asarray([0, 5])],
    "count_nonzero": cp.count_nonzero,
    "allclose": lambda x: cp.allclose(x, x),
    "asarray of host data": lambda x: cp.asarray(np.ones(3)),
    "copy": copy.deepcopy,
}


@pytest.mark.parametrize("name", NO_SYNC_CALLS)
def test_device_only_calls_do_not_sync(name):
    x = device([0.0, 1.0, 2.0])
    with syncs.counting() as block:
        result = NO_SYNC_CALLS[name](x)
    assert block.count == 0, block.reasons
    if name in ("reduction", "integer index", "count_nonzero", "allclose"):
        assert isinstance(result, StandinArray) and result.ndim in (0, 1)  # a device value, not a scalar


def test_the_counter_resets_nests_and_can_forbid_syncs():
    x = device([1.0, 2.0])
    syncs.reset()
    with syncs.counting() as outer:
        float(x[0])
        with syncs.counting() as inner:
            x.get()
    assert (outer.count, inner.count, syncs.count) == (2, 1, 2)
    assert syncs.reasons == ["ndarray.__float__", "ndarray.get"]
    syncs.reset()
    assert syncs.count == 0 and syncs.reasons == []
    with syncs.forbidden():
        y = cp.exp(x) * 2
        with pytest.raises(AssertionError, match=r"ndarray.item"):
            y[0].item()


def test_index_is_absent_as_in_cupy():
    """cupy.ndarray has no __index__, so a device scalar cannot be used as a Python index or size."""
    assert "__index__" not in NAMESPACE["cupy.ndarray"]
    with pytest.raises(TypeError):
        operator.index(cp.asarray(2))


# ---- out-of-range integer-array indices wrap


def test_fancy_indexing_wraps_out_of_range_indices():
    x = cp.arange(3)
    np.testing.assert_array_equal(x[[1, 3]].get(), [1, 0])  # CuPy's documented example
    np.testing.assert_array_equal(x[cp.asarray([4, -4])].get(), [1, 2])
    with pytest.raises(IndexError):
        np.arange(3)[[1, 3]]  # what NumPy does


def test_wrapping_uses_the_size_of_the_indexed_axis():
    x = cp.arange(6).reshape(2, 3)
    np.testing.assert_array_equal(x[:, [3, 4]].get(), [[0, 1], [3, 4]])
    np.testing.assert_array_equal(x[..., [5]].get(), [[2], [5]])
    np.testing.assert_array_equal(x[[2], None, [4]].get(), [[1]])
    with pytest.raises(IndexError):
        x[2]  # a scalar index still raises, as in CuPy


def test_an_empty_list_index_selects_nothing():
    """CuPy reads an empty list as no integer indices (as NumPy does), not as a float64 array."""
    x = cp.zeros((2, 3))
    assert x[..., []].shape == (2, 0)
    x[:, []] = 1.0
    assert float(x.sum()) == 0.0
    with pytest.raises(IndexError):
        x[..., cp.asarray(np.zeros(0))]  # an empty float64 array is still refused


def test_setitem_take_take_along_axis_put_along_axis_and_add_at_wrap():
    x = cp.zeros(3)
    x[[3, 4]] = 1.0
    np.testing.assert_array_equal(x.get(), [1.0, 1.0, 0.0])
    y = cp.arange(6).reshape(2, 3)
    np.testing.assert_array_equal(cp.take(y, cp.asarray([6, 7])).get(), [0, 1])
    np.testing.assert_array_equal(y.take(cp.asarray([3]), axis=1).get(), [[0], [3]])
    np.testing.assert_array_equal(cp.take_along_axis(y, cp.asarray([[3], [5]]), axis=1).get(), [[0], [5]])
    cp.put_along_axis(y, cp.asarray([[4], [5]]), -1, axis=1)
    np.testing.assert_array_equal(y.get(), [[0, -1, 2], [3, 4, -1]])
    z = cp.zeros(3)
    cp.add.at(z, cp.asarray([0, 3, 5]), 1.0)
    np.testing.assert_array_equal(z.get(), [2.0, 0.0, 1.0])


# ---- broadcast views are writable


def test_broadcast_to_views_are_writable_and_alias_their_base():
    base = cp.zeros(3)
    view = cp.broadcast_to(base, (2, 3))
    view[0, 1] = 5.0
    np.testing.assert_array_equal(base.get(), [0.0, 5.0, 0.0])
    np.testing.assert_array_equal(view.get(), [[0.0, 5.0, 0.0]] * 2)
    with pytest.raises(ValueError, match="read-only"):
        np.broadcast_to(np.zeros(3), (2, 3))[0, 1] = 5.0  # NumPy's are not


# ---- only the real CuPy 14 names


@pytest.mark.parametrize(
    ("owner", "get"),
    [
        ("cupy", lambda: cp.trapz_not_a_name),
        ("cupy", lambda: cp.geomspace),  # NumPy has it; CuPy 14 does not
        ("cupy", lambda: cp.testing_helpers),
        ("cupy.random", lambda: cp.random.Philox),
        ("cupy.linalg", lambda: cp.linalg.matrix_transpose_not_there),
        ("cupy.lib.stride_tricks", lambda: cp.lib.stride_tricks.broadcast_shapes),
        ("cupy.cuda.runtime", lambda: cp.cuda.runtime.notAFunction),
        ("cupy.ndarray", lambda: cp.zeros(2).__array_interface__),
        ("cupy.ndarray", lambda: cp.zeros(2).setflags),
        ("cupy.ndarray", lambda: cp.zeros(2).ctypes),
        ("cupy.ufunc", lambda: cp.add.signature),
        ("cupy.random.Generator", lambda: cp.random.default_rng(0).permutation),
        ("cupyx.scipy.special", lambda: standin_cupyx.scipy.special.not_special),
    ],
)
def test_names_missing_from_cupy_raise_attribute_error(owner, get):
    with pytest.raises(
        AttributeError, match=rf"^{re.escape(owner)} has no attribute '\w+' in CuPy 14\.2\.0$"
    ):
        get()


def test_a_numpy_name_that_cupy_lacks_is_really_absent_from_the_json():
    for name in ("geomspace", "insert", "ctypes", "setflags", "__array_interface__", "__index__"):
        assert name not in NAMESPACE["cupy"] and name not in NAMESPACE["cupy.ndarray"]
    assert hasattr(np, "geomspace") and hasattr(np.ndarray, "setflags")
    assert "permutation" not in NAMESPACE["cupy.random.Generator"]


def test_every_reachable_name_is_a_cupy_name():
    """The stand-in's own public surface is a subset of CuPy's: its class adds no names of its own."""
    own = set(vars(StandinArray)) - set(NAMESPACE["cupy.ndarray"])
    assert own <= {"_a", "__getattr__", "__firstlineno__", "__static_attributes__"}
    for section in ("cupy", "cupy.random", "cupy.linalg", "cupy.lib.stride_tricks", "cupy.cuda"):
        module = cp
        for part in section.split(".")[1:]:
            module = getattr(module, part)
        assert dir(module) == sorted(NAMESPACE[section])


def test_a_cupy_name_the_stand_in_does_not_model_says_so():
    with pytest.raises(NotImplementedError, match=r"cupy.RawKernel exists in CuPy 14\.2\.0"):
        cp.RawKernel("", "f")
    with pytest.raises(NotImplementedError, match=r"cupy.ndarray.data"):
        _ = cp.zeros(2).data


def test_the_json_matches_the_installed_cupy():
    """Where CuPy is installed (``pip install cupy-cuda13x``; no GPU needed), tools/cupy_names.py would
    write the same file: the JSON is not stale. CI has no CuPy and skips this."""
    cupy = pytest.importorskip("cupy")
    if cupy.__version__ != NAMESPACE["cupy_version"]:
        pytest.skip(f"CuPy {cupy.__version__} is installed, the JSON is of {NAMESPACE['cupy_version']}")
    recorded = load_script("tools/cupy_names.py").collect()
    if len(recorded["cupy.cuda.nccl"]) < len(NAMESPACE["cupy.cuda.nccl"]):
        pytest.skip(
            "NCCL's library is not installed here (pip install nvidia-nccl-cu13): cupy.cuda.nccl is empty"
        )
    assert recorded == NAMESPACE


def test_the_json_is_sorted_and_from_cupy_14():
    text = (Path(__file__).with_name("cupy_namespace.json")).read_text()
    assert NAMESPACE["cupy_version"].startswith("14.")
    assert list(NAMESPACE) == sorted(NAMESPACE)
    for value in NAMESPACE.values():
        if isinstance(value, (list, dict)):
            assert list(value) == sorted(value)
    assert text.endswith("\n")


# ---- the module pieces minires touches


def test_module_pieces_minires_touches():
    assert cp.__name__ == "cupy"
    x = cp.ones(2)
    assert cp.get_array_module(x) is cp and cp.get_array_module(np.ones(2)) is np
    assert isinstance(x, cp.ndarray) and not isinstance(np.ones(2), cp.ndarray)
    assert cp.float32 is np.float32 and cp.iinfo is np.iinfo
    assert cp.cuda.runtime.getDeviceCount() == 1
    assert cp.cuda.Device().id == 0
    assert isinstance(cp.cuda.runtime.getDeviceProperties(0)["name"], bytes)  # as CuPy's
    cp.get_default_memory_pool().free_all_blocks()
    gen = cp.random.default_rng(0)
    assert isinstance(gen, cp.random.Generator)
    draw = gen.standard_normal((2, 3), dtype=cp.float32)
    assert isinstance(draw, StandinArray) and draw.dtype == np.float32
    assert isinstance(gen.random(), StandinArray)  # a scalar draw is a 0-d device array
    erf = standin_cupyx.scipy.special.erf(device([0.0, 10.0]))
    np.testing.assert_allclose(erf.get(), [0.0, 1.0])


# ---- a small computation agrees with NumPy


def test_matmul_keepdims_sum_and_im2col_agree_with_numpy():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((4, 5)), rng.standard_normal((5, 3))
    np.testing.assert_allclose((cp.asarray(a) @ cp.asarray(b)).get(), a @ b)
    np.testing.assert_allclose(cp.matmul(cp.asarray(a), cp.asarray(b)).get(), a @ b)
    s = cp.asarray(a).sum(axis=1, keepdims=True)
    assert s.shape == (4, 1)
    np.testing.assert_allclose(s.get(), a.sum(axis=1, keepdims=True))

    # im2col of a 3x3 kernel over x (N, C, H, W) = (2, 3, 5, 6), stride 1: view (N, C, OH, OW, KH, KW)
    x = rng.standard_normal((2, 3, 5, 6))
    n, c, h, w, kh, kw = *x.shape, 3, 3
    shape = (n, c, h - kh + 1, w - kw + 1, kh, kw)
    strides = (*x.strides, x.strides[2], x.strides[3])
    want = np.lib.stride_tricks.as_strided(x, shape, strides)
    xd = cp.ascontiguousarray(cp.asarray(x))
    got = cp.lib.stride_tricks.as_strided(
        xd, shape=shape, strides=(*xd.strides, xd.strides[2], xd.strides[3])
    )
    assert isinstance(got, StandinArray)
    np.testing.assert_array_equal(got.get(), want)
    cols = cp.ascontiguousarray(got.transpose(0, 1, 4, 5, 2, 3)).reshape(
        n, c * kh * kw, -1
    )  # (N, C*KH*KW, OH*OW)
    np.testing.assert_array_equal(cols.get(), want.transpose(0, 1, 4, 5, 2, 3).reshape(n, c * kh * kw, -1))


# ---- every CuPy name that minires calls is in CuPy 14


_XP_CALL = re.compile(r"\b(?:xp|cupy)\.((?:[A-Za-z_]\w*\.)*[A-Za-z_]\w*)")
_CUPYX_IMPORT = re.compile(r"from cupyx\.([\w.]+) import (\w+)")


def names_minires_calls() -> set[str]:
    """Every ``xp.X``/``cupy.X`` use and ``from cupyx.Y import Z`` in minires: ``add.at``, ``copyto``..."""
    names = set()
    for path in MINIRES.rglob("*.py"):
        text = path.read_text()
        names |= {m.group(1) for m in _XP_CALL.finditer(text)}
        names |= {f"cupyx.{module}.{name}" for module, name in _CUPYX_IMPORT.findall(text)}
    return names


def in_real_cupy(dotted: str) -> bool:
    """Walk ``a.b.c`` through the JSON: modules by their sections, ufuncs and types by attribute lists."""
    parts = dotted.split(".")
    section = "cupyx" if parts[0] == "cupyx" else "cupy"
    parts = parts[1:] if parts[0] == "cupyx" else parts
    for part in parts:
        if part.startswith("__") and isinstance(NAMESPACE[section], dict):
            return part in ("__name__", "__version__")  # module attributes
        names = NAMESPACE[section]
        if part not in names:
            return False
        kind = names[part] if isinstance(names, dict) else "attribute"
        child = f"{section}.{part}"
        section = child if child in NAMESPACE else ("cupy.ufunc" if kind == "ufunc" else None)
        if section is None:
            return part == parts[-1]
    return True


def resolve_on_stand_in(dotted: str):
    obj = standin
    parts = dotted.split(".")
    if parts[0] == "cupyx":
        obj, parts = standin_cupyx, parts[1:]
    for part in parts:
        obj = getattr(obj, part)
    return obj


def test_every_name_minires_calls_is_in_cupy_14_and_on_the_stand_in():
    names = names_minires_calls()
    assert len(names) >= 50, sorted(names)  # the scan found minires's calls (59 names when written)
    assert {
        "add.at",
        "put_along_axis",
        "lib.stride_tricks.as_strided",
        "clip",
        "cupyx.scipy.special.erf",
    } <= names
    missing = sorted(n for n in names if not in_real_cupy(n))
    assert not missing, f"minires calls names that CuPy {NAMESPACE['cupy_version']} lacks: {missing}"
    for name in names:
        resolve_on_stand_in(name)  # reachable (raises AttributeError otherwise)


def test_the_name_check_can_fail():
    assert not in_real_cupy("geomspace")
    assert not in_real_cupy("random.Generator.permutation")
    assert not in_real_cupy("add.signature")
    assert not in_real_cupy("lib.stride_tricks.broadcast_shapes")
    assert in_real_cupy("random.Generator.standard_normal") and in_real_cupy("cuda.runtime.getDeviceCount")


# ---- the "standin" backend of the tests (tests/conftest.py)


@pytest.mark.parametrize("backend", ["standin"], indirect=True)
def test_the_standin_backend_puts_minires_on_the_stand_in(backend):
    import minires as mr
    import minires.backend

    assert backend == "cuda" and minires.backend.cupy is standin and minires.backend.cuda_available()
    assert type(mr.randn(2, device=backend).data) is StandinArray
    assert mr.erf(mr.zeros(2, device=backend)).device == "cuda"  # cupyx.scipy.special is the stand-in's


def test_the_other_tests_keep_minires_own_cupy():
    """The stand-in is put in place for each "standin" test and taken away after it."""
    import minires.backend

    assert minires.backend.cupy is not standin
