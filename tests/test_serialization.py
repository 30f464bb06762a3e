"""mr.save / mr.load (minires/serialization.py): exact round trips, atomic writes, clear errors, no pickle."""

from __future__ import annotations

import json
import math
import os
import pathlib
import zipfile
from collections import OrderedDict
from typing import Any

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minires as mr
from minires import backend as backend_mod
from minires import rng, serialization
from minires.serialization import MANIFEST_KEY, load, save


# ----- helpers ------------------------------------------------------------------------------------------
def assert_same(a: Any, b: Any, where: str = "obj") -> None:
    """``b`` equals ``a`` exactly: same types (dict vs OrderedDict, tuple vs list, int vs bool), same key
    order, arrays bit for bit (dtype with byte order, shape), floats bit for bit (nan and -0.0 included)."""
    assert type(a) is type(b), f"{where}: {type(a).__name__} != {type(b).__name__}"
    if isinstance(a, dict):
        assert list(a) == list(b), f"{where}: keys {list(a)} != {list(b)}"
        assert [type(k) for k in a] == [type(k) for k in b], f"{where}: key types differ"
        for key in a:
            assert_same(a[key], b[key], f"{where}[{key!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), f"{where}: length {len(a)} != {len(b)}"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, np.ndarray):
        assert a.dtype.str == b.dtype.str and a.shape == b.shape, (
            f"{where}: {a.dtype}{a.shape} != {b.dtype}{b.shape}"
        )
        assert np.ascontiguousarray(a).tobytes() == np.ascontiguousarray(b).tobytes(), (
            f"{where}: values differ"
        )
    elif isinstance(a, np.generic):
        assert a.dtype.str == b.dtype.str and a.tobytes() == b.tobytes(), f"{where}: {a!r} != {b!r}"
    elif isinstance(a, mr.Tensor):
        assert a.requires_grad == b.requires_grad and b.device == "cpu"
        assert_same(backend_mod.to_numpy(a.data), b.data, f"{where}.data")
    elif isinstance(a, float):
        assert a.hex() == b.hex() or (math.isnan(a) and math.isnan(b)), f"{where}: {a!r} != {b!r}"
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def round_trip(obj: Any, path: pathlib.Path) -> Any:
    save(obj, path)
    return load(path)


def write_zip(path: pathlib.Path, members: dict[str, bytes]) -> None:
    """A hand-made archive, to build foreign and damaged checkpoints."""
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)


def npy_bytes(array: np.ndarray, allow_pickle: bool = False) -> bytes:
    import io

    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=allow_pickle)
    return buf.getvalue()


def manifest_bytes(manifest: Any) -> bytes:
    return npy_bytes(np.frombuffer(json.dumps(manifest).encode(), dtype=np.uint8))


# ----- round trips --------------------------------------------------------------------------------------
DTYPES = ["float16", "float32", "float64", "int8", "int32", "int64", "uint8", "uint16", "bool", ">f8", "<U3"]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(), (0,), (3, 0, 2), (5,), (2, 3, 4)])
def test_array_round_trip_is_bit_exact(tmp_path: pathlib.Path, dtype: str, shape: tuple) -> None:
    rng = np.random.default_rng(0)
    if np.dtype(dtype).kind == "U":
        array = np.full(shape, "ab\u00e9", dtype=dtype)
    else:
        array = np.asarray(rng.standard_normal(shape) * 100).astype(dtype)
    out = round_trip({"x": array}, tmp_path / "a.npz")["x"]
    assert_same(array, out)


def test_special_floats_and_fortran_and_views(tmp_path: pathlib.Path) -> None:
    special = np.array([np.nan, np.inf, -np.inf, -0.0, 5e-324, np.finfo(np.float64).max], dtype=np.float64)
    half = np.array([np.nan, np.inf, -0.0, 6e-8], dtype=np.float16)
    fortran = np.asfortranarray(np.arange(12, dtype=np.float32).reshape(3, 4))
    view = np.arange(20.0)[::3]
    obj = [special, half, fortran, view]
    out = round_trip(obj, tmp_path / "a.npz")
    assert_same(obj, out)
    nan_bits = np.array([np.nan], dtype=np.float64).view(np.uint64)
    assert out[0][:1].view(np.uint64)[0] == nan_bits[0]


def test_python_scalars_round_trip(tmp_path: pathlib.Path) -> None:
    obj = {
        "ints": [0, -1, 2**63, -(2**63) - 1, 3**200, -(10**50)],
        "floats": [0.1, -0.0, 1e308, 5e-324, float("nan"), float("inf"), float("-inf"), 1.0],
        "bools": [True, False],
        "none": None,
        "str": ["", "plain", "unicod\u00e9 \u4e2d\u6587 \U0001f600", 'quo"te\\back\nslash', "lone \ud800"],
        "numpy scalars": [np.float32(1.5), np.float64(0.1), np.int64(-7), np.bool_(True), np.str_("s")],
    }
    out = round_trip(obj, tmp_path / "a.npz")
    assert_same(obj, out)
    assert out["floats"][1] == 0.0 and math.copysign(1.0, out["floats"][1]) == -1.0
    assert type(out["bools"][0]) is bool and type(out["ints"][0]) is int and type(out["floats"][7]) is float


def test_nested_structure_types_and_order(tmp_path: pathlib.Path) -> None:
    obj = OrderedDict(
        [
            ("z", {3: "int key", "3": "str key", -1: (1, [2, (3,)]), "empty": {}}),
            ("a", [(), [], OrderedDict(), {"b": 1, "a": 2}]),
            ("m", {10**30: True, 0: None}),
        ]
    )
    out = round_trip(obj, tmp_path / "a.npz")
    assert_same(obj, out)
    assert type(out) is OrderedDict and type(out["z"]) is dict and type(out["a"][2]) is OrderedDict
    assert list(out["z"]) == [3, "3", -1, "empty"]


def test_subclasses_come_back_as_their_base_type(tmp_path: pathlib.Path) -> None:
    import collections
    import enum

    class Color(enum.IntEnum):
        RED = 2

    point = collections.namedtuple("Point", "x y")
    obj = [Color.RED, point(1, 2), collections.defaultdict(list, {"a": [1]})]
    out = round_trip(obj, tmp_path / "a.npz")
    assert_same([2, (1, 2), {"a": [1]}], out)


def test_tensors_come_back_as_cpu_tensors(tmp_path: pathlib.Path, backend: str) -> None:
    w = mr.randn(3, 4, dtype=mr.float64, device=backend, requires_grad=True)
    labels = mr.tensor([1, 2, 3], device=backend)
    out = round_trip({"w": w, "labels": labels}, tmp_path / "a.npz")
    assert type(out["w"]) is mr.Tensor and out["w"].requires_grad and out["w"].grad is None
    assert not out["labels"].requires_grad and out["labels"].dtype == mr.int64
    assert_same({"w": w, "labels": labels}, out)


@pytest.mark.gpu
def test_cupy_arrays_come_back_as_numpy(tmp_path: pathlib.Path) -> None:
    cupy = backend_mod.cupy
    if cupy is None:
        pytest.skip("CuPy with an NVIDIA GPU not available")
    x = cupy.arange(6, dtype=cupy.float32).reshape(2, 3)
    out = round_trip({"x": x}, tmp_path / "a.npz")
    assert type(out["x"]) is np.ndarray
    assert_same(cupy.asnumpy(x), out["x"])


def test_optimizer_state_dict_from_torch(tmp_path: pathlib.Path, torch: Any) -> None:
    """A real optimizer state: param_groups (floats, tuples, bools, None, int lists), state keyed by int."""
    params = [torch.nn.Parameter(torch.randn(3, 2)), torch.nn.Parameter(torch.randn(2))]
    opt = torch.optim.Adam(params, lr=1e-3, betas=(0.9, 0.999))
    sum(p.sum() for p in params).backward()
    opt.step()
    state = _torch_to_numpy(opt.state_dict(), torch)
    out = round_trip(state, tmp_path / "opt.npz")
    assert_same(state, out)
    assert list(out["state"]) == [0, 1] and out["param_groups"][0]["betas"] == (0.9, 0.999)
    # And torch takes it back.
    back = _numpy_to_torch(out, torch)
    fresh = torch.optim.Adam(params, lr=5.0)
    fresh.load_state_dict(back)
    assert fresh.param_groups[0]["lr"] == 1e-3


def test_torch_tensors_are_saved_as_arrays(tmp_path: pathlib.Path, torch: Any) -> None:
    """A PyTorch state_dict saved with mr.save loads into a minires model (or back into torch)."""
    linear = torch.nn.Linear(3, 2).double()
    state = linear.state_dict()
    out = round_trip(state, tmp_path / "torch.npz")
    assert type(out) is OrderedDict and list(out) == ["weight", "bias"]
    for key, value in state.items():
        assert_same(value.numpy(), out[key])
    with pytest.raises(TypeError, match="dtype object"):
        save([np.array([torch.zeros(1)], dtype=object)], tmp_path / "bad.npz")


def _torch_to_numpy(obj: Any, torch: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.detach().numpy().copy()
    if isinstance(obj, dict):
        return {k: _torch_to_numpy(v, torch) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_torch_to_numpy(v, torch) for v in obj)
    return obj


def _numpy_to_torch(obj: Any, torch: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(obj)
    if isinstance(obj, dict):
        return {k: _numpy_to_torch(v, torch) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_numpy_to_torch(v, torch) for v in obj)
    return obj


@pytest.mark.parametrize("bit_generator", ["PCG64", "MT19937", "Philox", "SFC64"])
def test_rng_state_round_trip_resumes_the_stream(tmp_path: pathlib.Path, bit_generator: str) -> None:
    gen = np.random.Generator(getattr(np.random, bit_generator)(1234))
    gen.standard_normal(7)
    ckpt = {"epoch": 3, "rng": gen.bit_generator.state}
    expected = gen.standard_normal(5)
    out = round_trip(ckpt, tmp_path / "ckpt.npz")
    assert_same(ckpt, out)
    fresh = np.random.Generator(getattr(np.random, bit_generator)(0))
    fresh.bit_generator.state = out["rng"]
    np.testing.assert_array_equal(fresh.standard_normal(5), expected)


def test_minires_rng_state_round_trip(tmp_path: pathlib.Path) -> None:
    mr.manual_seed(7)
    mr.randn(3)
    save({"rng": rng.get_state()}, tmp_path / "r.npz")
    expected = mr.randn(4).numpy()
    rng.set_state(load(tmp_path / "r.npz")["rng"])
    np.testing.assert_array_equal(mr.randn(4).numpy(), expected)


_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**130), max_value=2**130),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    hnp.arrays(
        dtype=st.sampled_from([np.float16, np.float32, np.float64, np.int64, np.uint8, np.bool_]),
        shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=3),
    ),
)
_trees = st.recursive(
    _leaves,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.lists(children, max_size=4).map(tuple),
        st.dictionaries(st.one_of(st.text(max_size=5), st.integers(-1000, 1000)), children, max_size=4),
        st.dictionaries(st.text(max_size=5), children, max_size=4).map(OrderedDict),
    ),
    max_leaves=12,
)


@given(obj=_trees)
def test_random_trees_round_trip(tmp_path_factory: pytest.TempPathFactory, obj: Any) -> None:
    path = tmp_path_factory.mktemp("trees") / "t.npz"
    assert_same(obj, round_trip(obj, path))


# ----- the file itself ----------------------------------------------------------------------------------
def test_file_is_a_plain_npz_with_a_json_manifest(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "ckpt.mr"  # any name but .pt, .pth and .safetensors: no suffix is added
    save({"w": np.ones(2, np.float32), "epoch": 3}, path)
    assert os.listdir(tmp_path) == ["ckpt.mr"]
    with np.load(path, allow_pickle=False) as npz:
        assert sorted(npz.files) == ["__minires_manifest__", "a0"]
        manifest = json.loads(npz[MANIFEST_KEY].tobytes().decode("utf-8"))
        np.testing.assert_array_equal(npz["a0"], np.ones(2, np.float32))
    assert manifest["format"] == "minires.save" and manifest["version"] == 1
    assert manifest["root"]["type"] == "dict"


def test_same_checkpoint_same_bytes(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    obj = {"w": np.arange(4.0), "epoch": 3}
    save(obj, tmp_path / "a.npz")
    monkeypatch.setattr(time, "time", lambda: 2e9)  # years later: no timestamp gets into the file
    save(obj, tmp_path / "b.npz")
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()


def test_accepts_path_like_and_str(tmp_path: pathlib.Path) -> None:
    save([1], tmp_path / "p.npz")
    save([2], str(tmp_path / "s.npz"))
    assert load(str(tmp_path / "p.npz")) == [1] and load(tmp_path / "s.npz") == [2]


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
def test_file_mode_follows_the_umask_like_open(tmp_path: pathlib.Path) -> None:
    save([1], tmp_path / "a.npz")
    (tmp_path / "b").write_bytes(b"")
    assert os.stat(tmp_path / "a.npz").st_mode == os.stat(tmp_path / "b").st_mode


def test_overwrite_replaces_the_whole_file(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "a.npz"
    save({"big": np.zeros(10_000)}, path)
    save({"small": 1}, path)
    assert load(path) == {"small": 1}
    assert os.listdir(tmp_path) == ["a.npz"]


# ----- atomicity ----------------------------------------------------------------------------------------
def test_failure_mid_write_keeps_the_old_file_and_removes_the_temp(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "ckpt.npz"
    old = {"w": np.arange(5.0), "epoch": 1}
    save(old, path)
    old_bytes = path.read_bytes()
    real_write_array = np.lib.format.write_array
    calls = []

    def failing_write_array(fp: Any, array: np.ndarray, *args: Any, **kwargs: Any) -> None:
        calls.append(array.shape)
        if len(calls) == 2:  # the first array is written, the second fails half-way
            fp.write(b"\x93NUMPY partial")
            raise OSError(28, "No space left on device")
        real_write_array(fp, array, *args, **kwargs)

    monkeypatch.setattr(np.lib.format, "write_array", failing_write_array)
    with pytest.raises(OSError, match="No space left"):
        save({"w": np.zeros(1000), "v": np.zeros(1000), "epoch": 2}, path)
    assert len(calls) == 2
    assert os.listdir(tmp_path) == ["ckpt.npz"]  # no temporary file left behind
    assert path.read_bytes() == old_bytes
    assert_same(old, load(path))


def test_failure_at_rename_removes_the_temp(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "ckpt.npz"
    save([1], path)

    def failing_replace(src: Any, dst: Any) -> None:
        raise PermissionError("replace refused")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(PermissionError):
        save([2], path)
    assert os.listdir(tmp_path) == ["ckpt.npz"]
    monkeypatch.undo()
    assert load(path) == [1]


def test_interrupt_mid_write_also_cleans_up(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(serialization.npz, "write_npz", interrupted)
    with pytest.raises(KeyboardInterrupt):
        save([1], tmp_path / "a.npz")
    assert os.listdir(tmp_path) == []


def test_writes_a_temp_in_the_same_directory_fsyncs_then_renames(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list[tuple] = []
    real_fsync, real_replace = os.fsync, os.replace

    def spy_fsync(fd: int) -> None:
        events.append(("fsync",))
        real_fsync(fd)

    def spy_replace(src: Any, dst: Any) -> None:
        events.append(("replace", os.path.dirname(src), os.path.getsize(src), dst))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", spy_fsync)
    monkeypatch.setattr(os, "replace", spy_replace)
    path = tmp_path / "ckpt.npz"
    save({"w": np.zeros(100)}, path)
    first_replace = next(i for i, e in enumerate(events) if e[0] == "replace")
    assert ("fsync",) in events[:first_replace]  # the data is on disk before the rename
    _, directory, size, dst = events[first_replace]
    assert directory == str(tmp_path) and size == os.path.getsize(path) and dst == str(path)


def test_unsupported_values_fail_before_touching_the_file(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "a.npz"
    save([1], path)
    with pytest.raises(TypeError, match=r"obj\['opt'\]\[0\]"):
        save({"opt": [{1, 2}]}, path)
    with pytest.raises(TypeError, match="dict keys must be str or int"):
        save({1.5: 0}, path)
    with pytest.raises(TypeError, match="dict keys must be str or int"):
        save({True: 0}, path)
    with pytest.raises(TypeError, match="bytes"):
        save(b"raw", path)
    cycle: list = []
    cycle.append(cycle)
    with pytest.raises(ValueError, match="encloses itself"):
        save(cycle, path)
    assert os.listdir(tmp_path) == ["a.npz"] and load(path) == [1]


def test_shared_subtrees_are_not_cycles(tmp_path: pathlib.Path) -> None:
    shared = [1, 2]
    array = np.arange(3)
    out = round_trip({"a": shared, "b": shared, "x": array, "y": array}, tmp_path / "a.npz")
    assert out["a"] == out["b"] == [1, 2] and out["a"] is not out["b"]
    assert_same(out["x"], array) and out["x"] is not out["y"]


# ----- no pickle ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "bad",
    [
        np.array([1, "a"], dtype=object),
        np.zeros(2, dtype=[("a", np.float32), ("b", object)]),
        (1, [np.empty(0, dtype=object)]),
    ],
    ids=["object", "structured-with-object", "nested-empty-object"],
)
def test_object_arrays_are_refused_at_save(tmp_path: pathlib.Path, bad: Any) -> None:
    with pytest.raises(TypeError, match="dtype.*pickle"):
        save({"x": bad}, tmp_path / "a.npz")
    assert os.listdir(tmp_path) == []


def test_load_always_passes_allow_pickle_false(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    save({"w": np.ones(3)}, tmp_path / "a.npz")
    seen = []
    real_load = np.load

    def spy_load(*args: Any, **kwargs: Any) -> Any:
        seen.append(kwargs.get("allow_pickle"))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(np, "load", spy_load)
    load(tmp_path / "a.npz")
    assert seen == [False]


def test_a_pickled_array_inside_a_checkpoint_is_never_unpickled(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "evil.npz"
    manifest = {
        "format": "minires.save",
        "version": 1,
        "root": {"type": "ndarray", "array": {"key": "a0", "dtype": "|O", "shape": [1]}},
    }
    write_zip(
        path,
        {
            "a0.npy": npy_bytes(np.array([print], dtype=object), allow_pickle=True),
            f"{MANIFEST_KEY}.npy": manifest_bytes(manifest),
        },
    )
    with pytest.raises(ValueError, match=r"evil\.npz.*array 'a0' is corrupt.*allow_pickle"):
        load(path)


# ----- damaged and foreign files ------------------------------------------------------------------------
@pytest.fixture
def good_file(tmp_path: pathlib.Path) -> tuple[pathlib.Path, bytes, Any]:
    obj = {"w": np.arange(12, dtype=np.float32).reshape(3, 4), "e": np.zeros((0, 2)), "s": 0.5, "k": [1, "x"]}
    path = tmp_path / "good.npz"
    save(obj, path)
    return path, path.read_bytes(), obj


def test_every_truncation_gives_a_clear_error(tmp_path: pathlib.Path, good_file: tuple) -> None:
    _, data, _ = good_file
    bad = tmp_path / "cut.npz"
    for n in range(len(data)):
        bad.write_bytes(data[:n])
        with pytest.raises(ValueError, match=r"load: cannot load '.*cut\.npz': ") as info:
            load(bad)
        assert info.value.__cause__ is None and info.value.__suppress_context__


def test_corrupted_bytes_never_load_silently_wrong(tmp_path: pathlib.Path, good_file: tuple) -> None:
    """Flip each byte: either a clear ValueError, or (a flip in an unused zip field) the exact original."""
    _, data, obj = good_file
    bad = tmp_path / "flip.npz"
    errors = 0
    for i in range(len(data)):
        flipped = bytearray(data)
        flipped[i] ^= 0x10
        bad.write_bytes(bytes(flipped))
        try:
            out = load(bad)
        except ValueError as exc:
            assert "flip.npz" in str(exc)
            errors += 1
        else:
            assert_same(obj, out)
    assert errors > len(data) // 2


def test_corrupted_array_data_names_the_array(tmp_path: pathlib.Path, good_file: tuple) -> None:
    path, data, _ = good_file
    i = data.index(np.arange(12, dtype=np.float32).tobytes())
    flipped = bytearray(data)
    flipped[i + 5] ^= 0xFF
    path.write_bytes(bytes(flipped))
    with pytest.raises(ValueError, match=r"good\.npz.*array 'a0' is corrupt.*CRC"):
        load(path)


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", r"an unknown format, not an \.npz/zip archive \(the file is empty\)"),
        (b"epoch,loss\n1,0.5\n", r"not an \.npz/zip archive \(it starts with b'epoc'\)"),
        (npy_bytes(np.arange(3)), r"a single \.npy array.*numpy\.load"),
        (b"\x80\x04\x95pickle", r"a Python pickle \(protocol 4\), which minires never unpickles"),
    ],
    ids=["empty", "text", "npy", "pickle"],
)
def test_non_zip_files(tmp_path: pathlib.Path, content: bytes, message: str) -> None:
    path = tmp_path / "x.npz"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=rf"load: cannot load '.*x\.npz': .*{message}"):
        load(path)


def test_foreign_npz(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "foreign.npz"
    np.savez(path, weights=np.ones(3), bias=np.zeros(1))
    with pytest.raises(ValueError, match=r"foreign\.npz.*not a minires checkpoint.*arrays: bias, weights"):
        load(path)


def test_zip_that_is_not_an_npz(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "docs.zip"
    write_zip(path, {"readme.txt": b"hello"})
    with pytest.raises(ValueError, match=r"docs\.zip.*not a minires checkpoint"):
        load(path)


@pytest.mark.parametrize(
    "manifest_payload, message",
    [
        (b"not json{", "not valid UTF-8 JSON"),
        (b"\xff\xfe", "not valid UTF-8 JSON"),
        (json.dumps([1, 2]).encode(), "format is 'list'"),
        (json.dumps({"format": "other", "version": 1, "root": {}}).encode(), "format is 'other'"),
        (
            json.dumps({"format": "minires.save", "version": 2, "root": {}}).encode(),
            "version 2; this minires",
        ),
        (json.dumps({"format": "minires.save", "version": 1}).encode(), "no 'root'"),
        (json.dumps({"format": "minires.save", "version": 1, "root": {"type": "set"}}).encode(), "malformed"),
        (
            json.dumps(
                {"format": "minires.save", "version": 1, "root": {"type": "int", "value": "x"}}
            ).encode(),
            "entry for obj is malformed",
        ),
        (
            json.dumps(
                {
                    "format": "minires.save",
                    "version": 1,
                    "root": {"type": "dict", "items": [[{"type": "none"}, 1]]},
                }
            ).encode(),
            "key of obj is not a str or int",
        ),
    ],
    ids=["not-json", "not-utf8", "not-object", "format", "version", "no-root", "type", "int", "key"],
)
def test_bad_manifests(tmp_path: pathlib.Path, manifest_payload: bytes, message: str) -> None:
    path = tmp_path / "m.npz"
    write_zip(path, {f"{MANIFEST_KEY}.npy": npy_bytes(np.frombuffer(manifest_payload, dtype=np.uint8))})
    with pytest.raises(ValueError, match=rf"m\.npz.*{message}"):
        load(path)


def test_manifest_of_the_wrong_dtype(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "m.npz"
    write_zip(path, {f"{MANIFEST_KEY}.npy": npy_bytes(np.zeros(3, dtype=np.float32))})
    with pytest.raises(ValueError, match="manifest is an array of dtype float32"):
        load(path)


def test_missing_array(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "m.npz"
    root = {
        "type": "list",
        "items": [{"type": "ndarray", "array": {"key": "a7", "dtype": "<f8", "shape": [2]}}],
    }
    write_zip(
        path, {f"{MANIFEST_KEY}.npy": manifest_bytes({"format": "minires.save", "version": 1, "root": root})}
    )
    with pytest.raises(ValueError, match=r"m\.npz.*refers to array 'a7', which the archive lacks"):
        load(path)


def test_array_that_disagrees_with_the_manifest(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "m.npz"
    root = {"type": "ndarray", "array": {"key": "a0", "dtype": "<f8", "shape": [2]}}
    write_zip(
        path,
        {
            "a0.npy": npy_bytes(np.zeros(3, dtype=np.float32)),
            f"{MANIFEST_KEY}.npy": manifest_bytes({"format": "minires.save", "version": 1, "root": root}),
        },
    )
    with pytest.raises(
        ValueError, match=r"array 'a0' \(obj\) has dtype <f4 and shape \(3,\), .* <f8 and \(2,\)"
    ):
        load(path)


def test_missing_file_is_file_not_found(tmp_path: pathlib.Path) -> None:
    with pytest.raises(FileNotFoundError):
        load(tmp_path / "nope.npz")


# ----- models -------------------------------------------------------------------------------------------
def _small_model() -> Any:
    from minires import nn

    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1, bias=False),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(4 * 5 * 5, 3),
    )


def test_state_dict_round_trip_gives_bit_identical_outputs(tmp_path: pathlib.Path) -> None:
    mr.manual_seed(0)
    model = _small_model()
    x = mr.randn(2, 3, 5, 5)
    model.train()
    model(x)  # running statistics and num_batches_tracked move away from their initial values
    model.eval()
    expected = model(x).numpy()
    state = model.state_dict()
    save(state, tmp_path / "model.npz")
    loaded = load(tmp_path / "model.npz")
    assert_same(state, loaded)
    assert type(loaded) is OrderedDict and loaded["1.num_batches_tracked"].dtype == np.int64
    assert loaded._metadata == state._metadata

    mr.manual_seed(1)
    fresh = _small_model()
    assert not np.array_equal(fresh(x).numpy(), expected)
    fresh.load_state_dict(loaded)
    fresh.eval()
    out = fresh(x).numpy()
    assert out.dtype == expected.dtype and out.tobytes() == expected.tobytes()


def test_whole_checkpoint_round_trip(tmp_path: pathlib.Path) -> None:
    import minires.models as models

    mr.manual_seed(0)
    model = models.d2l_resnet18(in_channels=1, num_classes=10)
    ckpt = {
        "model": model.state_dict(),
        "optimizer": {
            "state": {0: {"momentum_buffer": np.ones((64, 1, 7, 7))}, 3: {"step": 12}},
            "param_groups": [{"lr": 0.05, "momentum": 0.9, "nesterov": False, "params": list(range(62))}],
        },
        "epoch": 3,
        "rng": rng.get_state(),
        "params": [next(iter(model.parameters()))],
    }
    out = round_trip(ckpt, tmp_path / "ckpt.npz")
    assert_same(ckpt, out)
    assert type(out["params"][0]) is type(ckpt["params"][0]) and out["params"][0].requires_grad

    mr.manual_seed(5)
    fresh = models.d2l_resnet18(in_channels=1, num_classes=10)
    fresh.load_state_dict(out["model"])
    model.eval()
    fresh.eval()
    x = mr.randn(1, 1, 32, 32)
    assert fresh(x).numpy().tobytes() == model(x).numpy().tobytes()


@pytest.mark.parametrize("suffix", [".npz", ".pth", ".safetensors"])
def test_every_writer_takes_the_same_arrays(tmp_path: pathlib.Path, torch: Any, suffix: str) -> None:
    """A Tensor, a Parameter, a NumPy array and a torch tensor are arrays to every format alike: one helper
    (serialization.arrays.host_array) decides, where each writer used to spell it out on its own."""
    import inspect

    from minires.serialization import npz, safetensors_file, torch_zip

    if suffix == ".safetensors":
        pytest.importorskip("safetensors.numpy")
    values = {
        "tensor": mr.tensor([1.0, 2.0]),
        "param": mr.nn.Parameter(np.ones((2, 2), np.float32)),
        "numpy": np.arange(3, dtype=np.int64),
        "torch": torch.arange(4, dtype=torch.float64),
    }
    save(values, tmp_path / f"a{suffix}")
    out = load(tmp_path / f"a{suffix}")
    for key, value in values.items():
        want = value.detach().numpy() if key == "torch" else mr.tensor(value).numpy()
        got = out[key].numpy() if isinstance(out[key], mr.Tensor) else out[key]
        np.testing.assert_array_equal(got, want, err_msg=key)
    for module in (npz, safetensors_file, torch_zip):
        assert "backend.cupy" not in inspect.getsource(module), module.__name__


def test_save_and_load_take_open_binary_files(tmp_path: pathlib.Path, torch: Any) -> None:
    """As torch.save and torch.load: a BytesIO (minires's own format; read from its position, which need
    not be 0), a file opened by name (the format by its extension: a .pt one torch.load reads), and a
    torch.save'd buffer."""
    import io

    model = mr.nn.Linear(3, 2)
    checkpoint = {"model": model.state_dict(), "epoch": 3, "note": "best", "t": mr.arange(4.0)}
    buf = io.BytesIO(b"head")
    buf.seek(4)
    save(checkpoint, buf)
    buf.seek(4)
    back = load(buf)
    assert back["epoch"] == 3 and back["note"] == "best"
    np.testing.assert_array_equal(back["t"].numpy(), np.arange(4.0, dtype=np.float32))
    np.testing.assert_array_equal(np.asarray(back["model"]["weight"]), model.weight.numpy())
    path = tmp_path / "w.pt"
    with open(path, "wb") as f:
        save(model.state_dict(), f)
    assert zipfile.is_zipfile(path)  # torch's format, by the file's name
    np.testing.assert_array_equal(torch.load(path)["bias"].numpy(), model.bias.numpy())
    with open(path, "rb") as f:
        np.testing.assert_array_equal(load(f)["weight"].numpy(), model.weight.numpy())
    theirs = io.BytesIO()
    torch.save(torch.nn.Linear(3, 2).state_dict(), theirs)
    theirs.seek(0)
    assert load(theirs)["weight"].shape == (2, 3)
