"""Weights in and out of PyTorch without pickle: ``.pt``/``.pth`` (torch.save's zip) and ``.safetensors``.

Every file a test reads was written by torch (``torch.save``, ``safetensors.torch.save_file``) and every
file minires writes is read back by torch, each value compared; the allow-list unpickler is shown to
refuse, by name and before it runs, a pickle that would write a file; and a ResNet-18 with torchvision's
keys is fine-tuned from a ``.pth`` file with torch made unimportable.
"""

from __future__ import annotations

import io
import math
import os
import pickle
import struct
import sys
import warnings
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import minires as mr
from minires import nn, optim
from minires.safe_pickle import UnsafePickleError
from minires.serialization import torch_zip


@pytest.fixture
def safetensors() -> Any:
    """The safetensors package (the interop extra); its tests skip without it, the rest run."""
    return pytest.importorskip(
        "safetensors.numpy", reason="the interop extra: pip install 'minires[interop]'"
    )


def to_numpy(obj: Any, torch: Any) -> Any:
    """A torch object tree with its tensors as NumPy arrays (bfloat16 as float32), the rest as it is."""
    if isinstance(obj, torch.Tensor):
        t = obj.detach()
        return (t.float() if t.dtype == torch.bfloat16 else t).numpy()
    if isinstance(obj, dict):
        out = type(obj)((k, to_numpy(v, torch)) for k, v in obj.items())
        if hasattr(obj, "_metadata"):
            out._metadata = obj._metadata
        return out
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_numpy(v, torch) for v in obj)
    return obj


def assert_tree_equal(want: Any, got: Any, where: str = "obj") -> None:
    """Same container types and keys in the same order, arrays of the same dtype, shape and values (an
    array read from a torch or safetensors file is a minires Tensor, as torch.load gives tensors)."""
    if isinstance(want, np.ndarray) and isinstance(got, mr.Tensor):
        got = got.data
    assert type(got) is type(want), f"{where}: {type(got).__name__}, expected {type(want).__name__}"
    if isinstance(want, dict):
        assert list(got) == list(want), f"{where}: keys {list(got)}, expected {list(want)}"
        for key in want:
            assert_tree_equal(want[key], got[key], f"{where}[{key!r}]")
    elif isinstance(want, (list, tuple)):
        assert len(got) == len(want), f"{where}: length {len(got)}, expected {len(want)}"
        for i, (w, g) in enumerate(zip(want, got, strict=True)):
            assert_tree_equal(w, g, f"{where}[{i}]")
    elif isinstance(want, np.ndarray):
        assert got.dtype == want.dtype and got.shape == want.shape, (
            f"{where}: {got.dtype}{got.shape}, expected {want.dtype}{want.shape}"
        )
        np.testing.assert_array_equal(got, want, err_msg=where)
    elif isinstance(want, float) and math.isnan(want):
        assert math.isnan(got), f"{where}: {got!r}, expected nan"
    else:
        assert got == want, f"{where}: {got!r}, expected {want!r}"


def torch_archive(path: Path, data_pkl: bytes, storages: dict[str, bytes] | None = None) -> None:
    """A hand-made archive in torch.save's layout around a given data.pkl (to plant hostile pickles)."""
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("w/data.pkl", data_pkl)
        zf.writestr("w/byteorder", "little")
        for key, content in (storages or {}).items():
            zf.writestr(f"w/data/{key}", content)
        zf.writestr("w/version", "3\n")


# ----- minires -> PyTorch ---------------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".pth", ".pt"])
def test_a_minires_state_dict_loads_into_torch_in_one_line(tmp_path: Path, torch: Any, suffix: str) -> None:
    from tests.torch_twins import resnet18 as torch_resnet18

    mr.manual_seed(0)
    model = mr.models.resnet18(num_classes=10)
    model.train()
    model(mr.randn(2, 3, 32, 32))  # running statistics and num_batches_tracked move
    path = tmp_path / f"resnet18{suffix}"
    mr.save(model.state_dict(), path)

    twin = torch_resnet18(num_classes=10)
    twin.load_state_dict(torch.load(path))  # the one line, torch's default weights_only=True
    state, loaded = model.state_dict(), torch.load(path, weights_only=True, mmap=True)
    assert list(loaded) == list(state) and type(loaded) is OrderedDict
    assert loaded._metadata == state._metadata  # BatchNorm's version 2 and the rest, as torch writes them
    for key, value in state.items():
        assert loaded[key].dtype == torch.from_numpy(value).dtype, key
        np.testing.assert_array_equal(loaded[key].numpy(), value, err_msg=key)
        np.testing.assert_array_equal(twin.state_dict()[key].numpy(), value, err_msg=key)
    assert int(loaded["bn1.num_batches_tracked"]) == 1
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    model.eval()
    twin.eval()
    np.testing.assert_allclose(
        twin(torch.from_numpy(x)).detach().numpy(), model(mr.tensor(x)).numpy(), atol=1e-4
    )


def test_the_file_has_torch_s_layout(tmp_path: Path) -> None:
    mr.save(OrderedDict(w=np.ones((2, 3), np.float32), n=np.array(5)), tmp_path / "w.pth")
    with zipfile.ZipFile(tmp_path / "w.pth") as zf:
        names = zf.namelist()
        assert names == [
            "w/data.pkl",
            "w/.format_version",
            "w/.storage_alignment",
            "w/byteorder",
            "w/data/0",
            "w/data/1",
            "w/version",
        ]
        assert zf.read("w/byteorder") == b"little" and zf.read("w/version") == b"3\n"
        assert zf.read("w/data/0") == np.ones(6, "<f4").tobytes()
        for info in zf.infolist():  # every member's data at a multiple of 64 bytes, as torch writes them
            with open(tmp_path / "w.pth", "rb") as f:
                f.seek(info.header_offset + 26)
                name_len, extra_len = struct.unpack("<HH", f.read(4))
            assert (info.header_offset + 30 + name_len + extra_len) % 64 == 0, info.filename
    text = io.StringIO()
    import pickletools

    pickletools.dis(zipfile.ZipFile(tmp_path / "w.pth").read("w/data.pkl"), out=text)
    assert "GLOBAL     'torch._utils _rebuild_tensor_v2'" in text.getvalue()
    assert "GLOBAL     'torch FloatStorage'" in text.getvalue() and "BINPERSID" in text.getvalue()


def test_zip64_members_stay_aligned(tmp_path: Path, torch: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A storage past zip's 2 GiB limit gets a ZIP64 record in its local header; its data must still start
    at a multiple of 64 (the limit is lowered here so that a small file takes that path)."""
    monkeypatch.setattr(zipfile, "ZIP64_LIMIT", 1000)
    path = tmp_path / "z.pth"
    mr.save({"big": np.arange(5000, dtype=np.float32), "small": np.ones(3)}, path)
    with zipfile.ZipFile(path) as zf, open(path, "rb") as f:
        for info in zf.infolist():
            f.seek(info.header_offset + 26)
            name_len, extra_len = struct.unpack("<HH", f.read(4))
            assert (info.header_offset + 30 + name_len + extra_len) % 64 == 0, info.filename
            if info.filename.endswith("data/0"):
                f.seek(info.header_offset + 30 + name_len)
                assert b"\x01\x00\x10\x00" in f.read(extra_len)  # the ZIP64 extra record is there
    np.testing.assert_array_equal(
        torch.load(path, mmap=True)["big"].numpy(), np.arange(5000, dtype=np.float32)
    )
    np.testing.assert_array_equal(mr.load(path)["big"], np.arange(5000, dtype=np.float32))


def test_a_whole_checkpoint_round_trips_through_torch(tmp_path: Path, torch: Any) -> None:
    """Everything a training checkpoint holds: big ints (a generator's 128-bit state), special floats,
    strings, None, bools, tuples, int keys, empty containers, Tensors and Parameters."""
    gen = np.random.default_rng(3)
    weight = nn.Parameter(np.arange(6, dtype=np.float32).reshape(2, 3))
    frozen = nn.Parameter(np.ones(2, np.float32), requires_grad=False)
    ckpt = {
        "model": OrderedDict(w=np.arange(4.0), b=np.array([True, False])),
        "optimizer": {"state": {0: {"step": 3, "buf": np.ones((2, 2), np.float16)}}, "param_groups": []},
        "epoch": 7,
        "rng": gen.bit_generator.state,
        "floats": [0.1, -0.0, float("inf"), float("-inf"), float("nan"), 1e308],
        "ints": [0, 255, 256, 65535, 65536, -1, -(2**31), 2**31, 2**63, -(2**200), 10**30],
        "misc": (None, True, False, "unicod\u00e9 \U0001f600", (), [], {}, OrderedDict()),
        "tensors": [weight, frozen, mr.tensor([1, 2, 3]), mr.randn(2, requires_grad=True)],
    }
    path = tmp_path / "ckpt.pt"
    mr.save(ckpt, path)
    theirs = torch.load(path)  # weights_only=True: nothing off torch's allow-list either
    assert isinstance(theirs["tensors"][0], torch.nn.Parameter) and theirs["tensors"][0].requires_grad
    assert isinstance(theirs["tensors"][1], torch.nn.Parameter) and not theirs["tensors"][1].requires_grad
    assert theirs["tensors"][2].dtype == torch.int64 and theirs["tensors"][3].requires_grad
    assert theirs["rng"]["state"]["state"] == ckpt["rng"]["state"]["state"]  # a 128-bit int, exactly
    assert theirs["optimizer"]["state"][0]["buf"].dtype == torch.float16

    as_arrays = dict(ckpt, tensors=[t.numpy() for t in ckpt["tensors"]])
    assert_tree_equal(as_arrays, to_numpy(theirs, torch))
    mine = mr.load(path)  # and minires reads its own file: tensors as Tensors, Parameters as Parameters
    assert type(mine["tensors"][0]) is nn.Parameter and mine["tensors"][0].requires_grad
    assert type(mine["tensors"][1]) is nn.Parameter and not mine["tensors"][1].requires_grad
    assert type(mine["tensors"][2]) is mr.Tensor and type(mine["model"]["w"]) is mr.Tensor
    assert_tree_equal(as_arrays, mine)
    assert math.copysign(1.0, mr.load(path)["floats"][1]) == -1.0


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"x": {1, 2}}, r"cannot save a set at obj\['x'\] in a PyTorch file"),
        ({"x": np.array(["a"])}, r"obj\['x'\] is an array of dtype <U1, which a PyTorch file cannot hold"),
        ({"x": np.zeros(2, "datetime64[s]")}, r"dtype datetime64\[s\], which a PyTorch file cannot hold"),
        ({1.5: 1}, "dict keys must be str or int, got float key 1.5"),
    ],
)
def test_what_a_torch_file_cannot_hold_is_refused_before_writing(
    tmp_path: Path, bad: Any, message: str
) -> None:
    with pytest.raises(TypeError, match=message):
        mr.save(bad, tmp_path / "bad.pth")
    assert os.listdir(tmp_path) == []


def test_the_extension_picks_the_format_and_the_content_is_read_whatever_the_name(tmp_path: Path) -> None:
    from minires.serialization import format_for, npz

    assert [format_for(n) for n in ("a.pt", "a.PTH", "a.safetensors", "a.npz", "a.ckpt", "a")] == [
        "torch",
        "torch",
        "safetensors",
        "minires",
        "minires",
        "minires",
    ]
    with open(tmp_path / "old.pt", "wb") as f:  # a minires checkpoint that an older minires named .pt
        npz.write_npz(f, npz.encode({"w": mr.tensor([1.0, 2.0], requires_grad=True), "epoch": 3}))
    old = mr.load(tmp_path / "old.pt")
    assert type(old["w"]) is mr.Tensor and old["w"].requires_grad and old["epoch"] == 3
    mr.save({"w": np.ones(2)}, tmp_path / "torch_file.npz.pth")
    (tmp_path / "torch_file.npz.pth").rename(tmp_path / "renamed.bin")  # HF's pytorch_model.bin
    np.testing.assert_array_equal(mr.load(tmp_path / "renamed.bin")["w"], np.ones(2))


# ----- PyTorch -> minires ---------------------------------------------------------------------------------
TORCH_DTYPES = [
    "float16",
    "float32",
    "float64",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "bool",
    "bfloat16",
]


@pytest.mark.parametrize("dtype", TORCH_DTYPES)
def test_every_dtype_torch_writes_reads_back(tmp_path: Path, torch: Any, dtype: str) -> None:
    t = (torch.randn(3, 4) * 50).to(getattr(torch, dtype))
    torch.save({"t": t, "scalar": t[1, 2].clone()}, tmp_path / "t.pth")
    got = mr.load(tmp_path / "t.pth")
    want = (t.float() if dtype == "bfloat16" else t).numpy()
    assert got["t"].dtype == want.dtype and got["t"].shape == (3, 4)
    np.testing.assert_array_equal(got["t"], want)
    assert got["scalar"].shape == () and got["scalar"] == want[1, 2]


@pytest.mark.parametrize("dtype", ["uint16", "uint32", "uint64"])
def test_unsigned_dtypes_round_trip_both_ways_as_torch_writes_them(
    tmp_path: Path, torch: Any, dtype: str
) -> None:
    """torch 2.13 pickles uint16/32/64 with _rebuild_tensor_v3 over an untyped storage (numel in bytes) and
    the dtype last; minires reads that (a view at an offset too) and writes the same opcodes."""
    big = np.iinfo(dtype).max
    t = torch.tensor([[0, 1, big], [7, big - 1, 3]], dtype=getattr(torch, dtype))
    torch.save({"t": t, "col": t[:, 1:]}, tmp_path / "torch.pth")
    got = mr.load(tmp_path / "torch.pth")
    assert got["t"].dtype == np.dtype(dtype) and got["col"].dtype == np.dtype(dtype)
    np.testing.assert_array_equal(got["t"], np.array([[0, 1, big], [7, big - 1, 3]], dtype))
    np.testing.assert_array_equal(got["col"], got["t"][:, 1:])
    mr.save({"t": got["t"]}, tmp_path / "minires.pth")
    back = torch.load(tmp_path / "minires.pth")  # weights_only=True
    assert back["t"].dtype == getattr(torch, dtype) and back["t"].equal(t)
    mine, theirs = (_pickle_text(tmp_path / f"{n}.pth") for n in ("minires", "torch"))
    for text in (mine, theirs):
        assert (
            "GLOBAL     'torch._utils _rebuild_tensor_v3'" in text
            and "'torch.storage UntypedStorage'" in text
        )
        assert f"GLOBAL     'torch {dtype}'" in text


def _pickle_text(path: Path) -> str:
    import pickletools

    with zipfile.ZipFile(path) as zf:
        data = zf.read(next(n for n in zf.namelist() if n.endswith("/data.pkl")))
    text = io.StringIO()
    pickletools.dis(data, out=text)
    return text.getvalue()


@pytest.mark.parametrize("dtype", ["float8_e4m3fn", "float8_e5m2", "complex32"])
def test_dtypes_numpy_lacks_are_refused_by_name(tmp_path: Path, torch: Any, dtype: str) -> None:
    with warnings.catch_warnings():  # torch: "ComplexHalf support is experimental"
        warnings.simplefilter("ignore", UserWarning)
        torch.save({"t": torch.zeros(2, dtype=getattr(torch, dtype))}, tmp_path / "f8.pth")
    with pytest.raises(
        ValueError, match=rf"a tensor of dtype torch\.{dtype}, which NumPy has no type for"
    ) as info:
        mr.load(tmp_path / "f8.pth")
    assert "state_dict" not in str(info.value)


def test_shared_storages_and_views_come_back_value_for_value(tmp_path: Path, torch: Any) -> None:
    base = torch.arange(48, dtype=torch.float64).reshape(6, 8)
    views = OrderedDict(
        base=base,
        transposed=base.t(),
        strided=base[1:, ::3],
        row=base[4],
        narrowed=base.narrow(1, 2, 5)[::2],
        expanded=base[0, :3].expand(4, 3),  # stride 0
        permuted=base.reshape(2, 3, 8).permute(2, 0, 1),
        empty=base[:, 8:],
    )
    path = tmp_path / "views.pth"
    torch.save(views, path)
    with zipfile.ZipFile(path) as zf:  # torch wrote one storage for all of them
        assert len([n for n in zf.namelist() if "/data/" in n]) == 1
    got = mr.load(path)
    assert list(got) == list(views)
    for key, view in views.items():
        assert got[key].shape == tuple(view.shape), key
        np.testing.assert_array_equal(got[key], view.numpy(), err_msg=key)
        flags = got[key].data.flags
        assert flags.owndata and flags.c_contiguous and flags.writeable, key
    got["base"][0, 0] = -1.0  # each array its own: writing one leaves the others as they were
    assert got["transposed"][0, 0] == 0.0 and got["expanded"][0, 0] == 0.0


def test_a_torch_state_dict_loads_into_minires_in_one_line(tmp_path: Path, torch: Any) -> None:
    """torch.save of a ResNet-18 (torchvision's keys) after training steps: BN buffers, num_batches_tracked
    as int64, metadata; model.load_state_dict(mr.load(path)) gives torch's outputs."""
    from tests.torch_twins import resnet18 as torch_resnet18

    torch.manual_seed(0)
    twin = torch_resnet18(num_classes=5).double()
    twin.train()
    twin(torch.randn(2, 3, 32, 32, dtype=torch.float64))
    path = tmp_path / "resnet18.pth"
    torch.save(twin.state_dict(), path)

    model = mr.models.resnet18(num_classes=5).double()
    model.load_state_dict(mr.load(path))  # the one line
    loaded = mr.load(path)
    assert type(loaded) is OrderedDict and loaded._metadata == twin.state_dict()._metadata
    assert loaded["layer1.0.bn1.num_batches_tracked"].dtype == np.int64
    assert_tree_equal(to_numpy(twin.state_dict(), torch), loaded)
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(value, twin.state_dict()[key].numpy(), err_msg=key)
    x = np.random.default_rng(1).standard_normal((2, 3, 32, 32))
    model.eval()
    twin.eval()
    np.testing.assert_allclose(
        model(mr.tensor(x)).numpy(), twin(torch.from_numpy(x)).detach().numpy(), atol=1e-10
    )


def test_torch_optimizer_and_scheduler_state_read_back(tmp_path: Path, torch: Any) -> None:
    params = [torch.nn.Parameter(torch.randn(3, 2)), torch.nn.Parameter(torch.randn(2))]
    opt = torch.optim.Adam(params, lr=1e-3)
    sched = torch.optim.lr_scheduler.StepLR(opt, 2)
    sum(p.sum() for p in params).backward()
    opt.step()
    sched.step()
    ckpt = {"optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "params": params}
    torch.save(ckpt, tmp_path / "ckpt.pt")
    got = mr.load(tmp_path / "ckpt.pt", map_location="cpu", weights_only=True)
    assert_tree_equal(to_numpy(ckpt, torch), got)
    assert got["optimizer"]["param_groups"][0]["betas"] == (0.9, 0.999)


def test_a_plain_tensor_and_a_list_are_what_torch_gives(tmp_path: Path, torch: Any) -> None:
    torch.save(torch.arange(5), tmp_path / "t.pt")
    np.testing.assert_array_equal(mr.load(tmp_path / "t.pt"), np.arange(5))
    torch.save([torch.ones(2), (3, "x"), torch.Size([2, 3])], tmp_path / "l.pt")
    got = mr.load(tmp_path / "l.pt")
    assert got[1:] == [(3, "x"), (2, 3)] and type(got[2]) is tuple
    buffer = io.BytesIO()
    torch.save({"a": torch.zeros(1)}, buffer)  # a file object: torch names the folder archive/
    (tmp_path / "buf.pth").write_bytes(buffer.getvalue())
    assert list(mr.load(tmp_path / "buf.pth")) == ["a"]


def test_big_endian_storages(tmp_path: Path) -> None:
    path = tmp_path / "be.pth"
    mr.save({"x": np.arange(4, dtype=np.float32)}, path)
    with zipfile.ZipFile(path) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    members["w/byteorder"] = b"big"
    members["w/data/0"] = np.arange(4, dtype=">f4").tobytes()
    with zipfile.ZipFile(path, "w") as zf:
        for name, content in members.items():
            zf.writestr(name, content)
    got = mr.load(path)["x"]
    assert got.dtype == np.float32 and got.dtype.isnative
    np.testing.assert_array_equal(got, np.arange(4, dtype=np.float32))


# ----- the allow-list -------------------------------------------------------------------------------------
class _Planted:
    """Pickles as a call of ``fn(*args)``: what a hostile checkpoint contains."""

    def __init__(self, fn: Any, *args: Any) -> None:
        self.fn, self.args = fn, args

    def __reduce__(self) -> tuple:
        return self.fn, self.args


@pytest.mark.parametrize(
    "make, named",
    [
        (lambda target: _Planted(os.system, f"touch {target}"), "posix.system"),
        (lambda target: _Planted(open, str(target), "w"), "io.open"),
        (
            lambda target: _Planted(eval, f"open({str(target)!r}, 'w')"),
            "__builtin__.eval",
        ),  # protocol 2 spells builtins as Python 2 did
    ],
    ids=["os.system", "open", "eval"],
)
def test_a_pickle_that_would_write_a_file_is_refused_by_name(tmp_path: Path, make: Any, named: str) -> None:
    target = tmp_path / "pwned"
    payload = {"weight": np.zeros(1), "evil": make(target)}
    torch_archive(tmp_path / "evil.pth", pickle.dumps(OrderedDict(evil=payload["evil"]), protocol=2))
    with pytest.raises(
        UnsafePickleError, match=rf"evil\.pth'.*asks for {named}, which is not on the allow-list"
    ):
        mr.load(tmp_path / "evil.pth")
    assert not target.exists()
    assert isinstance(UnsafePickleError("x"), pickle.UnpicklingError)  # caught as torch's refusal is


def test_a_whole_pickled_model_is_refused_with_the_state_dict_fix(tmp_path: Path, torch: Any) -> None:
    torch.save(torch.nn.Linear(2, 3), tmp_path / "model.pth")  # the object, not its state_dict
    with pytest.raises(UnsafePickleError) as info:
        mr.load(tmp_path / "model.pth")
    text = str(info.value)
    assert "asks for torch.nn.modules.linear.Linear, which is not on the allow-list" in text
    assert "torch.save(model.state_dict(), path)" in text


def test_torch_globals_off_the_allow_list_are_refused(tmp_path: Path) -> None:
    data = b"\x80\x02ctorch\nload\nX\x01\x00\x00\x00x\x85R."  # torch.load('x')
    torch_archive(tmp_path / "t.pth", data)
    with pytest.raises(UnsafePickleError, match="asks for torch.load"):
        mr.load(tmp_path / "t.pth")


def _tensor_pickle(
    offset: int, size: tuple, stride: tuple, numel: int, storage: str = "FloatStorage"
) -> bytes:
    """data.pkl of one tensor, written with the opcodes torch uses (protocol 2)."""
    pickler = torch_zip._Pickler()
    out = pickler.out
    pickler._global("torch._utils", "_rebuild_tensor_v2")
    out += b"(("
    pickler._str("storage")
    pickler._global("torch", storage)
    pickler._str("0")
    pickler._str("cpu")
    pickler._int(numel)
    out += b"tQ"
    pickler._int(offset)
    pickler._tuple([lambda n=n: pickler._int(n) for n in size])
    pickler._tuple([lambda n=n: pickler._int(n) for n in stride])
    out += b"\x89"
    pickler._empty_ordered_dict()
    out += b"tR."
    return bytes(out)


@pytest.mark.parametrize(
    "offset, size, stride, numel, nbytes, message",
    [
        (0, (3, 4), (4, 1), 6, 24, "reaches element 11 of storage '0', which has 6"),
        (5, (2,), (1,), 6, 24, "reaches element 6 of storage '0', which has 6"),
        (0, (2,), (-1,), 6, 24, "must be ints >= 0"),
        (0, (2,), (1,), 6, 20, "has 20 bytes, expected 6 elements of 4 bytes"),
        (
            0,
            (1 << 20, 1 << 20),
            (0, 0),
            1,
            4,
            r"size \(1048576, 1048576\), stride \(0, 0\) over storage '0' asks",
        ),
    ],
)
def test_tensors_that_point_outside_their_storage_are_refused(
    tmp_path: Path, offset: int, size: tuple, stride: tuple, numel: int, nbytes: int, message: str
) -> None:
    torch_archive(tmp_path / "t.pth", _tensor_pickle(offset, size, stride, numel), {"0": bytes(nbytes)})
    with pytest.raises(ValueError, match=rf"load: cannot load '.*t\.pth': .*{message}"):
        mr.load(tmp_path / "t.pth")


def test_many_views_of_one_storage_cannot_take_unbounded_memory(tmp_path: Path, torch: Any) -> None:
    """A 2 KB file of N expanded views of one 4-byte storage asked for N * 64 MiB (each view checked alone);
    the budget is the whole load's: the storages' bytes plus OVERLAP_BYTES, refused before allocating."""
    zero, n = torch.zeros(1), torch_zip.OVERLAP_BYTES // 4  # each view alone within the allowance
    torch.save([zero.expand(n - i) for i in range(16)], tmp_path / "bomb.pth")
    assert os.path.getsize(tmp_path / "bomb.pth") < 4096
    with pytest.raises(
        ValueError, match=r"bomb\.pth': a tensor of size \(16777215,\), stride \(0,\) .*refused"
    ):
        mr.load(tmp_path / "bomb.pth")
    torch.save([zero.expand(n) for _ in range(16)], tmp_path / "same.pth")  # the report's file: 16 alike
    same = mr.load(tmp_path / "same.pth")
    assert all(a is same[0] for a in same) and same[0].shape == (n,)
    torch.save([torch.zeros(1).expand(1000)] * 16, tmp_path / "small.pth")  # small expands still load
    assert [a.shape for a in mr.load(tmp_path / "small.pth")] == [(1000,)] * 16
    # One tensor under two names (tied weights) is one array, so it does not count twice.
    tied = torch.arange(3 * torch_zip.OVERLAP_BYTES // 4 // 8, dtype=torch.float64)
    torch.save(OrderedDict(embed=tied.detach(), head=tied.detach(), half=tied[::2]), tmp_path / "tied.pth")
    got = mr.load(tmp_path / "tied.pth")
    assert got["embed"] is got["head"] and got["embed"].data.flags.owndata
    np.testing.assert_array_equal(got["half"], tied[::2].numpy())


def test_a_compressed_member_is_refused_before_it_inflates(tmp_path: Path, torch: Any) -> None:
    """torch.save stores its members; one deflated (1 MiB of zeros -> 1 KB here, 256 MiB -> 260 KB in the
    report) is refused without being read, and so are entries that overlap (more bytes than the file)."""
    torch.save({"a": torch.zeros(1 << 18)}, tmp_path / "big.pth")
    with zipfile.ZipFile(tmp_path / "big.pth") as src, zipfile.ZipFile(tmp_path / "zb.pth", "w") as dst:
        for name in src.namelist():
            method = zipfile.ZIP_DEFLATED if "/data/" in name else zipfile.ZIP_STORED
            dst.writestr(name, src.read(name), compress_type=method)
    assert os.path.getsize(tmp_path / "zb.pth") < 4096
    with pytest.raises(ValueError, match=r"zb\.pth': member 'big/data/0' is compressed .*refused"):
        mr.load(tmp_path / "zb.pth")
    with zipfile.ZipFile(tmp_path / "big.pth") as zf:  # as if the archive were 100 bytes long
        reader = torch_zip._Reader(zf, "big/", "little", archive_bytes=100)
        with pytest.raises(torch_zip.BadFile, match="more bytes than the archive"):
            reader.member("big/data/0", 1 << 18, 4)


def test_a_missing_storage_or_a_storage_that_is_not_one(tmp_path: Path) -> None:
    torch_archive(tmp_path / "t.pth", _tensor_pickle(0, (2,), (1,), 2))
    with pytest.raises(ValueError, match=r"refers to storage 'w/data/0', which the archive lacks"):
        mr.load(tmp_path / "t.pth")
    torch_archive(
        tmp_path / "q.pth", _tensor_pickle(0, (2,), (1,), 2, storage="QInt8Storage"), {"0": bytes(2)}
    )
    with pytest.raises(UnsafePickleError, match="asks for torch.QInt8Storage"):
        mr.load(tmp_path / "q.pth")


def test_a_pickle_cannot_change_the_next_load(tmp_path: Path, torch: Any) -> None:
    """BUILD with a slot state would ``setattr(_rebuild_tensor_v2, "__defaults__", ...)`` on the function
    itself; the pickle gets only a wrapper made for that one load, and BUILD on it is refused."""
    defaults = b"(" + b"K\x00" * 6 + b"t"
    build = (
        b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\nN}X\x0c\x00\x00\x00__defaults__" + defaults + b"s\x86b."
    )
    torch_archive(tmp_path / "b.pth", build)
    with pytest.raises(UnsafePickleError, match=r"b\.pth': the pickle sets the state of a Global") as info:
        mr.load(tmp_path / "b.pth")
    assert "state_dict" not in str(info.value)
    assert torch_zip._Reader.rebuild_tensor_v2.__defaults__ == (None,)
    torch.save({"a": torch.ones(2)}, tmp_path / "good.pth")
    np.testing.assert_array_equal(mr.load(tmp_path / "good.pth")["a"], np.ones(2, np.float32))


# ----- files mr.load cannot read ----------------------------------------------------------------------------
class _Doctored:
    """Pickles as ``numpy.dtype("V8")`` followed by BUILD with ``flags``: NumPy's dtype ``__setstate__``
    takes the flags on trust (0x01: "holds Python objects", so the array's bytes would be read as
    pointers)."""

    def __init__(self, flags: int) -> None:
        self.flags = flags

    def __reduce__(self) -> tuple:
        return np.dtype, ("V8", False, True), (3, "|", None, None, None, 8, 1, self.flags)


class _ArrayOf:
    """Pickles as NumPy's ``_reconstruct`` of an array whose state carries ``dtype`` and ``data``."""

    def __init__(self, dtype: Any, data: Any) -> None:
        self.dtype, self.data = dtype, data

    def __reduce__(self) -> tuple:
        from numpy._core.multiarray import _reconstruct

        return _reconstruct, (np.ndarray, (0,), b"b"), (1, (1,), self.dtype, False, self.data)


@pytest.mark.parametrize(
    "data, flags",
    [(struct.pack("<Q", 0x4141414141414141), 0x3D), (["hello"], 0x3F)],
    ids=["bytes-as-pointers", "list-of-objects"],
)
def test_a_doctored_dtype_never_reaches_an_array(data: Any, flags: int) -> None:
    """The reviewer's pickles: before, the first gave an ndarray of dtype |V8 with hasobject True (its
    bytes taken for object pointers), the second a SystemError out of ndarray.__setstate__."""
    from minires import safe_pickle

    doctored = _Doctored(flags)
    blob = pickle.dumps([doctored, _ArrayOf(doctored, data)], protocol=2)
    with pytest.raises(UnsafePickleError, match=r"gives the NumPy dtype \|V8 the state .* refused"):
        safe_pickle.loads(blob)
    with pytest.raises(UnsafePickleError, match="gives a NumPy array data of type list"):
        safe_pickle.loads(pickle.dumps(_ArrayOf(np.dtype("V8"), ["hello"]), protocol=2))
    with pytest.raises(UnsafePickleError, match="sets the state of a list"):
        safe_pickle.loads(b"\x80\x02](K\x01e}b.")  # BUILD on a list


def test_numpy_s_own_pickles_still_read_back() -> None:
    """What BUILD may do is what NumPy's pickles do: byte orders, structured and aligned dtypes with
    titles, sub-arrays, datetime units, Fortran order, protocols 2 and 5, value for value."""
    from minires import safe_pickle

    titled = np.dtype(
        {"names": ["a", "b"], "formats": ["u1", "f4"], "offsets": [0, 4], "titles": ["A", None]}
    )
    arrays = [
        np.arange(6, dtype=">f4").reshape(2, 3),
        np.array([(1, (2, 3)), (4, (5, 6))], [("a", "u1"), ("b", ">i2", (2,))]),
        np.ones(2, np.dtype([("a", "u1"), ("b", "<f8")], align=True)),
        np.ones(2, titled),
        np.arange(2).astype("M8[3s]"),
        np.asfortranarray(np.arange(6.0).reshape(2, 3)),
        np.array(["ab", "c"]),
    ]
    for array in arrays:
        for protocol in (2, 5):
            blob = pickle.dumps(array, protocol=protocol)
            got, want = safe_pickle.loads(blob), pickle.loads(blob)
            assert type(got) is np.ndarray and got.dtype == want.dtype and got.dtype.str == want.dtype.str
            np.testing.assert_array_equal(got, want)


def test_every_unreadable_format_is_named_with_what_to_do(tmp_path: Path, torch: Any) -> None:
    cases: dict[str, tuple[bytes, str]] = {}
    buffer = io.BytesIO()
    torch.save({"w": torch.ones(2)}, buffer, _use_new_zipfile_serialization=False)
    cases["legacy.pth"] = (
        buffer.getvalue(),
        r"a PyTorch file in the legacy format.*torch\.save\(torch\.load",
    )
    cases["plain.pkl"] = (
        pickle.dumps({"w": [1.0]}),
        r"a Python pickle \(protocol \d\), which minires never unpickles",
    )
    np.savez(tmp_path / "npz", w=np.ones(2))
    cases["foreign.npz"] = (
        (tmp_path / "npz.npz").read_bytes(),
        r"an \.npz archive but not a minires.*numpy\.load",
    )
    cases["model.h5"] = (b"\x89HDF\r\n\x1a\n" + bytes(100), "an HDF5 file.*h5py")
    cases["data.bin"] = (b"\x00\x01garbage" * 4, r"an unknown format.*mr\.load reads minires checkpoints")
    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w") as zf:
        zf.writestr("config.json", "{}")
    cases["model.keras"] = (zipped.getvalue(), r"a zip archive that is not.*members: config\.json")
    good = io.BytesIO()
    torch.save({"w": torch.ones(2)}, good)
    cases["cut.pth"] = (good.getvalue()[:-30], "the zip archive is truncated or corrupt")
    for name, (content, message) in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(ValueError, match=rf"load: cannot load '.*{name}': {message}"):
            mr.load(tmp_path / name)


def test_safetensors_without_the_package_says_how_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, safetensors: Any
) -> None:
    safetensors.save_file({"w": np.ones(2, np.float32)}, str(tmp_path / "w.safetensors"))
    monkeypatch.setitem(sys.modules, "safetensors", None)
    monkeypatch.setitem(sys.modules, "safetensors.numpy", None)
    with pytest.raises(
        ImportError, match=r"w\.safetensors'.*needs the safetensors package: pip install 'minires\[interop\]'"
    ):
        mr.load(tmp_path / "w.safetensors")
    with pytest.raises(ImportError, match="writing a .safetensors file needs the safetensors package"):
        mr.save({"w": np.ones(2)}, tmp_path / "v.safetensors")
    assert not (tmp_path / "v.safetensors").exists()


# ----- safetensors ---------------------------------------------------------------------------------------
def test_safetensors_both_ways_with_torch(tmp_path: Path, torch: Any, safetensors: Any) -> None:
    from safetensors.torch import load_file, save_file

    mr.manual_seed(0)
    model = mr.models.resnet18(num_classes=10)
    mr.save(model.state_dict(), tmp_path / "mine.safetensors")
    theirs = load_file(str(tmp_path / "mine.safetensors"))
    assert sorted(theirs) == sorted(model.state_dict())
    for key, value in model.state_dict().items():
        assert theirs[key].dtype == torch.from_numpy(value).dtype
        np.testing.assert_array_equal(theirs[key].numpy(), value, err_msg=key)

    from tests.torch_twins import resnet18 as torch_resnet18

    twin = torch_resnet18(num_classes=10)
    state = dict(
        twin.state_dict(), extra_bf16=torch.randn(3).bfloat16(), extra_u8=torch.arange(4, dtype=torch.uint8)
    )
    save_file(state, str(tmp_path / "theirs.safetensors"))
    got = mr.load(tmp_path / "theirs.safetensors")
    for key, value in state.items():
        want = (value.float() if value.dtype == torch.bfloat16 else value).numpy()
        assert got[key].dtype == want.dtype and type(got[key]) is mr.Tensor and got[key].data.flags.owndata, (
            key
        )
        np.testing.assert_array_equal(got[key], want, err_msg=key)
    fresh = mr.models.resnet18(num_classes=10)
    fresh.load_state_dict({k: v for k, v in got.items() if not k.startswith("extra")})
    np.testing.assert_array_equal(fresh.fc.weight.numpy(), twin.fc.weight.detach().numpy())


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"model": {"w": np.ones(2)}}, r"holds only arrays, but obj\['model'\] is a dict"),
        ([np.ones(2)], "holds a dict of str -> array"),
        ({1: np.ones(2)}, "needs str keys, got int key 1"),
        ({"s": np.array(["a"])}, "dtype <U1, which a .safetensors file cannot hold"),
    ],
)
def test_safetensors_holds_a_flat_dict_of_arrays(tmp_path: Path, bad: Any, message: str) -> None:
    with pytest.raises(TypeError, match=message):
        mr.save(bad, tmp_path / "w.safetensors")
    assert os.listdir(tmp_path) == []


def test_a_damaged_safetensors_file(tmp_path: Path, safetensors: Any) -> None:
    mr.save({"w": np.ones(100, np.float32)}, tmp_path / "w.safetensors")
    data = (tmp_path / "w.safetensors").read_bytes()
    (tmp_path / "w.safetensors").write_bytes(data[:-8])
    with pytest.raises(ValueError, match=r"w\.safetensors': a damaged safetensors file"):
        mr.load(tmp_path / "w.safetensors")


# ----- transfer learning without torch ----------------------------------------------------------------------
def test_fine_tuning_a_torchvision_resnet18_without_torch(
    tmp_path: Path, torch: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ResNet tutorials' recipe: torchvision's weights, a new ``fc``, two param groups; torch itself
    is made unimportable while minires reads the file and trains."""
    from tests.torch_twins import resnet18 as torch_resnet18

    torch.manual_seed(0)
    torch.save(torch_resnet18(num_classes=1000).state_dict(), tmp_path / "resnet18.pth")
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now raises ImportError

    mr.manual_seed(0)
    model = mr.models.resnet18()
    model.load_state_dict(mr.load(tmp_path / "resnet18.pth"))
    model.fc = nn.Linear(model.fc.in_features, 3)
    backbone = [p for name, p in model.named_parameters() if not name.startswith("fc.")]
    opt = optim.SGD(
        [{"params": backbone, "lr": 1e-3}, {"params": model.fc.parameters(), "lr": 1e-2}], momentum=0.9
    )
    rng = np.random.default_rng(0)
    labels = np.arange(12) % 3
    images = (rng.standard_normal((12, 3, 32, 32)) * 0.5 + labels[:, None, None, None] * 0.5).astype(
        np.float32
    )
    x, y = mr.tensor(images), mr.tensor(labels)
    model.train()
    losses = []
    for _ in range(8):
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] / 3, losses


def test_a_safetensors_file_reads_back_through_a_stream(tmp_path: Path, safetensors: Any) -> None:
    """mr.save to a file object named .safetensors, and mr.load from it or from a BytesIO of it."""
    import io

    from minires.serialization import load, save

    sd = {"w": np.arange(6, dtype=np.float32).reshape(2, 3)}
    path = tmp_path / "m.safetensors"
    with open(path, "wb") as f:
        save(sd, f)
    with open(path, "rb") as f:
        np.testing.assert_array_equal(load(f)["w"].numpy(), sd["w"])
    np.testing.assert_array_equal(load(io.BytesIO(path.read_bytes()))["w"].numpy(), sd["w"])
