"""The Module system against PyTorch's: registration, names, state_dict keys and values, load_state_dict
(from torch tensors, round trip, strict errors that change nothing), to/float/double, train/eval,
zero_grad, containers and repr.

Every tree is built twice from one builder, once with minires.nn and once with torch.nn, so that the two
can be compared name for name.
"""

from __future__ import annotations

import copy
import pickle
from collections import OrderedDict
from types import ModuleType, SimpleNamespace
from typing import Any

import numpy as np
import pytest

import minires as mr
import minires.nn as nn
import minires.nn.functional as F

# ----- twin trees ------------------------------------------------------------------------------------


def _libs(torch: ModuleType) -> list[SimpleNamespace]:
    """The two libraries behind one name space each: nn, F and the tensor factories."""
    return [
        SimpleNamespace(nn=nn, F=F, ones=mr.ones, zeros=mr.zeros),
        SimpleNamespace(nn=torch.nn, F=torch.nn.functional, ones=torch.ones, zeros=torch.zeros),
    ]


def custom_net(lib: SimpleNamespace) -> Any:
    """A network exercising every naming rule: attribute paths, Sequential from modules and from an
    OrderedDict, nested Sequential, ModuleList, ModuleDict, a None child, a shared (tied) Linear, a
    persistent and a non-persistent buffer, BatchNorm buffers, bias=False."""
    tnn, tF = lib.nn, lib.F

    class Block(tnn.Module):
        def __init__(self, c: int, use_conv3: bool) -> None:
            super().__init__()
            self.conv1 = tnn.Conv2d(c, c, 3, padding=1, bias=False)
            self.bn1 = tnn.BatchNorm2d(c)
            self.conv3 = tnn.Conv2d(c, c, 1) if use_conv3 else None
            self.shortcut = tnn.Sequential()

        def forward(self, x: Any) -> Any:
            y = tF.relu(self.bn1(self.conv1(x)))
            if self.conv3:  # d2l's idiom: a Module is truthy, None is not
                x = self.conv3(x)
            return y + self.shortcut(x)

    class Net(tnn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem = tnn.Sequential(
                OrderedDict(conv=tnn.Conv2d(3, 4, 3, stride=2), bn=tnn.BatchNorm2d(4), relu=tnn.ReLU())
            )
            self.blocks = tnn.ModuleList([Block(4, False), Block(4, True)])
            self.pool = tnn.AdaptiveAvgPool2d((1, 1))
            self.head = tnn.Sequential(tnn.Flatten(), tnn.Sequential(tnn.Linear(4, 4), tnn.ReLU()))
            self.heads = tnn.ModuleDict({"cls": tnn.Linear(4, 3), "aux": tnn.Linear(4, 2, bias=False)})
            self.tied = self.heads["cls"]  # the same module under a second name
            self.register_buffer("scale", lib.ones(1) * 2)
            self.register_buffer("scratch", lib.zeros(3), persistent=False)

        def forward(self, x: Any) -> Any:
            x = self.stem(x)
            for block in self.blocks:
                x = block(x)
            x = self.head(self.pool(x)) * self.scale
            return self.heads["cls"](x) + self.tied(x), self.heads["aux"](x)

    return Net()


def twins(torch: ModuleType, builder: Any = custom_net, dtype: str = "float64") -> tuple[Any, Any]:
    """(minires module, torch module) from the same builder, the minires one loaded with torch's weights."""
    m_lib, t_lib = _libs(torch)
    t = builder(t_lib)
    t = t.double() if dtype == "float64" else t
    m = builder(m_lib)
    m = m.double() if dtype == "float64" else m
    m.load_state_dict(t.state_dict())
    return m, t


def snapshot(m: nn.Module) -> dict[str, np.ndarray]:
    return {k: v.copy() for k, v in m.state_dict().items()}


# ----- names and keys --------------------------------------------------------------------------------
def test_names_and_state_dict_keys_equal_torch(torch: ModuleType) -> None:
    m, t = twins(torch)
    assert [k for k, _ in m.named_parameters()] == [k for k, _ in t.named_parameters()]
    assert [k for k, _ in m.named_parameters(remove_duplicate=False)] == [
        k for k, _ in t.named_parameters(remove_duplicate=False)
    ]
    assert [k for k, _ in m.named_buffers()] == [k for k, _ in t.named_buffers()]
    assert [k for k, _ in m.named_modules()] == [k for k, _ in t.named_modules()]
    assert [k for k, _ in m.named_children()] == [k for k, _ in t.named_children()]
    assert [type(c).__name__ for c in m.children()] == [type(c).__name__ for c in t.children()]
    assert [type(c).__name__ for c in m.modules()] == [type(c).__name__ for c in t.modules()]
    assert list(m.state_dict()) == list(t.state_dict())
    assert "scratch" not in m.state_dict() and "scratch" in dict(m.named_buffers())
    assert [k for k, _ in m.blocks.named_parameters(prefix="blocks")] == [
        k for k, _ in t.blocks.named_parameters(prefix="blocks")
    ]
    assert [k for k, _ in m.named_parameters(recurse=False)] == []
    assert [k for k, _ in m.heads.cls.named_parameters(recurse=False)] == ["weight", "bias"]


def test_shared_parameters_are_listed_once(torch: ModuleType) -> None:
    m, t = twins(torch)
    assert len(list(m.parameters())) == len(list(t.parameters()))
    assert sum(p.numel() for p in m.parameters()) == sum(p.numel() for p in t.parameters())
    ids = [id(p) for p in m.parameters()]
    assert len(ids) == len(set(ids))
    assert m.tied.weight is m.heads["cls"].weight
    # the state_dict lists a tied tensor under every name, as PyTorch's
    assert "tied.weight" in m.state_dict() and "heads.cls.weight" in m.state_dict()


def test_state_dict_values_are_numpy_copies_with_torch_dtypes(torch: ModuleType) -> None:
    m, t = twins(torch)
    sd, tsd = m.state_dict(), t.state_dict()
    for k, v in sd.items():
        assert isinstance(v, np.ndarray), k
        np.testing.assert_array_equal(v, tsd[k].numpy(), err_msg=k)
        assert v.dtype == tsd[k].numpy().dtype, k
    assert sd["stem.bn.num_batches_tracked"].dtype == np.int64
    assert sd["stem.bn.num_batches_tracked"].shape == ()
    sd["stem.conv.weight"][...] = 123.0  # a copy: the live weight does not change
    assert not np.any(m.stem.conv.weight.numpy() == 123.0)
    kept = m.state_dict(keep_vars=True)
    assert kept["stem.conv.weight"] is m.stem.conv.weight


def test_forward_after_load_equals_torch(torch: ModuleType) -> None:
    m, t = twins(torch)
    x = np.random.default_rng(0).standard_normal((2, 3, 9, 9))
    out_m = m(mr.tensor(x))
    out_t = t(torch.tensor(x))
    for a, b in zip(out_m, out_t, strict=True):
        np.testing.assert_allclose(a.numpy(), b.detach().numpy(), rtol=1e-10, atol=1e-12)
    # and the running statistics moved the same way (training mode)
    for k, v in m.state_dict().items():
        np.testing.assert_allclose(v, t.state_dict()[k].numpy(), rtol=1e-10, atol=1e-12, err_msg=k)


# ----- load_state_dict -------------------------------------------------------------------------------
def test_load_from_torch_and_back_round_trip(torch: ModuleType) -> None:
    m, t = twins(torch)
    for k, v in m.state_dict().items():
        np.testing.assert_array_equal(v, t.state_dict()[k].numpy(), err_msg=k)
    # minires -> torch: a fresh torch twin loads minires's arrays unchanged
    t2 = custom_net(_libs(torch)[1]).double()
    t2.load_state_dict({k: torch.from_numpy(v) for k, v in m.state_dict().items()})
    for k, v in t2.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), m.state_dict()[k], err_msg=k)
    # minires -> minires, bit for bit
    m2 = custom_net(_libs(torch)[0]).double()
    m2.load_state_dict(m.state_dict())
    for k, v in m2.state_dict().items():
        np.testing.assert_array_equal(v, m.state_dict()[k], err_msg=k)


def test_load_casts_into_the_parameter_and_keeps_the_objects(torch: ModuleType) -> None:
    m = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))  # float32
    params = list(m.parameters())
    arrays = [p.data for p in params]
    sd = {k: np.asarray(v, dtype=np.float64) + 0.5 for k, v in m.state_dict().items()}
    sd["1.num_batches_tracked"] = np.array(7.0)  # a float for the int64 buffer
    m.load_state_dict(sd)
    assert [id(p) for p in m.parameters()] == [id(p) for p in params]
    assert all(p.data is a for p, a in zip(m.parameters(), arrays, strict=True))  # copied in place
    assert all(p.dtype == np.float32 for p in m.parameters())
    np.testing.assert_array_equal(m[0].weight.numpy(), sd["0.weight"].astype(np.float32))
    assert m[1].num_batches_tracked.dtype == np.int64 and m[1].num_batches_tracked.item() == 7
    # lists and torch tensors of another dtype are accepted too
    m.load_state_dict({**m.state_dict(), "0.bias": [1.0, 2.0], "1.weight": torch.tensor([3.0, 4.0]).double()})
    np.testing.assert_array_equal(m[0].bias.numpy(), [1.0, 2.0])
    np.testing.assert_array_equal(m[1].weight.numpy(), [3.0, 4.0])


def test_strict_load_errors_name_every_key_and_change_nothing(torch: ModuleType) -> None:
    m, t = twins(torch)
    before = snapshot(m)
    bad = OrderedDict((k, v.clone()) for k, v in t.state_dict().items())
    del bad["blocks.1.conv3.weight"], bad["stem.bn.running_var"]
    bad["blocks.0.extra"] = torch.zeros(1)
    bad["nothere.weight"] = torch.zeros(1)
    bad["head.1.0.weight"] = torch.zeros(5, 4)  # wrong shape
    bad["stem.conv.weight"] += 1.0  # a valid entry that must not be copied either
    with pytest.raises(RuntimeError) as info:
        m.load_state_dict(bad)
    msg = str(info.value)
    assert msg.startswith("Error(s) in loading state_dict for Net:")
    for key in ("blocks.1.conv3.weight", "stem.bn.running_var", "blocks.0.extra", "nothere.weight"):
        assert f'"{key}"' in msg, key
    assert "Missing key(s)" in msg and "Unexpected key(s)" in msg
    assert "size mismatch for head.1.0.weight: copying a param with shape (5, 4)" in msg
    after = snapshot(m)
    assert all(np.array_equal(before[k], after[k]) for k in before)
    # torch reports the same keys, in the same order
    with pytest.raises(RuntimeError) as tinfo:
        copy.deepcopy(t).load_state_dict(bad)
    for line_m, line_t in zip(msg.split("\n\t")[1:3], str(tinfo.value).split("\n\t")[1:3], strict=True):
        assert line_m == line_t


def test_non_strict_load_returns_the_keys_as_torch(torch: ModuleType) -> None:
    m, t = twins(torch)
    sd = t.state_dict()
    partial = {k: v + 1 for k, v in sd.items() if not k.startswith("heads.")}
    partial["extra.weight"] = torch.zeros(2)
    result = m.load_state_dict(partial, strict=False)
    t_result = t.load_state_dict(partial, strict=False)
    assert result.missing_keys == t_result.missing_keys and result.unexpected_keys == t_result.unexpected_keys
    assert result.missing_keys == ["heads.cls.weight", "heads.cls.bias", "heads.aux.weight"]
    missing, unexpected = result  # a namedtuple
    assert unexpected == ["extra.weight"]
    assert repr(result) == repr(t_result) and type(result).__name__ == type(t_result).__name__
    assert repr(m.load_state_dict(sd)) == repr(t.load_state_dict(sd)) == "<All keys matched successfully>"
    np.testing.assert_array_equal(m.stem.conv.weight.numpy(), partial["stem.conv.weight"].numpy())
    # a shape mismatch raises even when not strict, and changes nothing
    before = snapshot(m)
    with pytest.raises(RuntimeError, match="size mismatch for stem.conv.weight"):
        m.load_state_dict({"stem.conv.weight": np.zeros((1, 1, 1, 1)), "pool.x": np.zeros(1)}, strict=False)
    assert all(np.array_equal(v, snapshot(m)[k]) for k, v in before.items())


def test_load_rejects_non_arrays_and_non_mappings() -> None:
    m = nn.Linear(2, 2)
    with pytest.raises(TypeError, match="dict-like"):
        m.load_state_dict([("weight", np.zeros((2, 2)))])
    with pytest.raises(RuntimeError, match='parameter named "weight"'):
        m.load_state_dict({"weight": "not an array", "bias": np.zeros(2)})


def test_num_batches_tracked_version_rule_as_torch(torch: ModuleType) -> None:
    """A state_dict without version metadata (a plain dict, an old checkpoint) may lack
    num_batches_tracked; one made by state_dict() (version 2) may not. As torch."""
    m, t = nn.BatchNorm2d(3), torch.nn.BatchNorm2d(3)
    plain = {k: v for k, v in t.state_dict().items() if k != "num_batches_tracked"}
    assert m.load_state_dict(plain).missing_keys == t.load_state_dict(plain).missing_keys == []
    versioned = m.state_dict()
    del versioned["num_batches_tracked"]
    with pytest.raises(RuntimeError, match='Missing key.*"num_batches_tracked"'):
        m.load_state_dict(versioned)
    t_versioned = t.state_dict()
    del t_versioned["num_batches_tracked"]
    with pytest.raises(RuntimeError, match='Missing key.*"num_batches_tracked"'):
        t.load_state_dict(t_versioned)


# ----- registration ----------------------------------------------------------------------------------
def test_registration_by_assignment_and_none() -> None:
    class M(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = nn.Parameter(mr.ones(2))
            self.sub = nn.Linear(2, 2)
            self.register_buffer("buf", mr.zeros(2))
            self.plain = 3

    m = M()
    assert list(m._parameters) == ["w"] and list(m._modules) == ["sub"] and list(m._buffers) == ["buf"]
    assert m.plain == 3 and "plain" not in m.state_dict()
    m.w = None
    m.sub = None
    m.buf = None
    assert m.w is None and m.sub is None and m.buf is None
    assert list(m.state_dict()) == [] and list(m.parameters()) == []
    assert list(m._parameters) == ["w"]  # still registered, as None
    m.buf = mr.ones(3)
    assert list(m.state_dict()) == ["buf"]
    m.w = nn.Parameter(mr.zeros(1))
    m.sub = nn.ReLU()
    assert [k for k, _ in m.named_parameters()] == ["w"] and isinstance(m.sub, nn.ReLU)
    del m.w
    assert "w" not in m._parameters
    assert not hasattr(m, "w")
    # a name moves between registries when re-assigned with another kind
    m.plain = nn.Parameter(mr.ones(1))
    assert "plain" in m._parameters and "plain" not in m.__dict__


def test_registration_errors_as_torch(torch: ModuleType) -> None:
    m, t = nn.Linear(2, 2), torch.nn.Linear(2, 2)
    with pytest.raises(TypeError, match="cannot assign 'Tensor' as parameter 'weight'"):
        m.weight = mr.ones(2, 2)
    with pytest.raises(TypeError):
        t.weight = torch.ones(2, 2)
    seq = nn.Sequential(nn.ReLU())
    with pytest.raises(TypeError, match="as child module '0'"):
        setattr(seq, "0", mr.ones(1))
    with pytest.raises(AttributeError) as info:
        _ = m.foo
    with pytest.raises(AttributeError) as tinfo:
        _ = t.foo
    assert str(info.value) == str(tinfo.value) == "'Linear' object has no attribute 'foo'"
    with pytest.raises(KeyError, match="already exists"):
        m.register_buffer("weight", mr.ones(1))
    with pytest.raises(KeyError, match="contain"):
        m.register_parameter("a.b", None)
    with pytest.raises(TypeError, match="Parameter or None"):
        m.register_parameter("c", mr.ones(1))
    with pytest.raises(TypeError, match="is not a Module subclass"):
        m.add_module("c", 3)

    class Forgot(nn.Module):
        def __init__(self) -> None:
            self.w = nn.Parameter(mr.ones(1))

    with pytest.raises(AttributeError, match=r"before Module.__init__\(\) call"):
        Forgot()
    with pytest.raises(NotImplementedError, match='missing the required "forward"'):
        nn.Module()(mr.ones(1))


def test_module_truthiness_and_no_len() -> None:
    """d2l writes ``if self.conv3:``: a Module is always truthy (no __len__/__bool__ on Module)."""
    assert bool(nn.Linear(1, 1)) and bool(nn.ReLU())
    assert not hasattr(nn.Module, "__len__") and not hasattr(nn.Module, "__bool__")


def test_parameter() -> None:
    data = mr.tensor([1.0, 2.0])
    p = nn.Parameter(data)
    assert isinstance(p, mr.Tensor) and p.requires_grad and p.is_leaf and p.data is data.data
    assert repr(p) == "Parameter containing:\ntensor([1., 2.], requires_grad=True)"
    assert not nn.Parameter(data, requires_grad=False).requires_grad
    assert nn.Parameter().shape == (0,)
    y = p * 2
    assert type(y) is mr.Tensor and not isinstance(y, nn.Parameter)
    assert type(p.detach()) is mr.Tensor
    q = nn.Parameter(y)  # a Parameter made from a non-leaf is a leaf
    assert q.is_leaf and q.grad_fn is None
    with pytest.raises(mr.DTypeError):
        nn.Parameter(mr.tensor([1, 2]))


def test_get_submodule_apply_and_deepcopy(torch: ModuleType) -> None:
    m, t = twins(torch)
    assert m.get_submodule("blocks.1.bn1") is m.blocks[1].bn1
    assert m.get_submodule("") is m
    with pytest.raises(AttributeError):
        m.get_submodule("blocks.7")
    seen_m: list[str] = []
    seen_t: list[str] = []
    m.apply(lambda mod: seen_m.append(type(mod).__name__))
    t.apply(lambda mod: seen_t.append(type(mod).__name__))
    assert seen_m == seen_t
    c = copy.deepcopy(m)
    assert list(c.state_dict()) == list(m.state_dict())
    assert c.stem.conv.weight is not m.stem.conv.weight
    assert c.tied.weight is c.heads["cls"].weight  # sharing survives the copy
    c.stem.conv.weight.data[...] = 0
    assert m.stem.conv.weight.numpy().any()
    s = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2))
    p = pickle.loads(pickle.dumps(s))
    assert all(np.array_equal(v, s.state_dict()[k]) for k, v in p.state_dict().items())


# ----- modes, gradients, devices and dtypes ----------------------------------------------------------
def test_train_eval_propagate_and_return_self(torch: ModuleType) -> None:
    m, _ = twins(torch)
    assert m.training and all(mod.training for mod in m.modules())
    assert m.eval() is m
    assert not any(mod.training for mod in m.modules())
    assert m.blocks[0].train() is m.blocks[0]
    assert [mod.training for mod in m.modules()].count(True) == len(list(m.blocks[0].modules()))
    assert m.train() is m and all(mod.training for mod in m.modules())
    with pytest.raises(ValueError, match="boolean"):
        m.train("no")


def test_zero_grad(torch: ModuleType) -> None:
    m, _ = twins(torch)
    out, aux = m(mr.randn(2, 3, 9, 9, dtype=mr.float64))
    (out.sum() + aux.sum()).backward()
    assert all(p.grad is not None for p in m.parameters())
    grads = [p.grad for p in m.parameters()]
    m.zero_grad(set_to_none=False)
    assert all(p.grad is g and not g.numpy().any() for p, g in zip(m.parameters(), grads, strict=True))
    m.zero_grad()
    assert all(p.grad is None for p in m.parameters())


def test_float_double_to_keep_objects_and_int_buffers(torch: ModuleType) -> None:
    m = custom_net(_libs(torch)[0])
    params = list(m.parameters())
    assert all(p.dtype == np.float32 for p in params)
    out, aux = m(mr.randn(2, 3, 9, 9))
    (out.sum() + aux.sum()).backward()
    assert m.double() is m
    assert [id(p) for p in m.parameters()] == [id(p) for p in params]
    assert all(p.dtype == np.float64 and p.grad.dtype == np.float64 for p in m.parameters())
    assert all(b.dtype == np.float64 for k, b in m.named_buffers() if "num_batches" not in k)
    assert m.stem.bn.num_batches_tracked.dtype == np.int64
    assert m.float() is m and all(p.dtype == np.float32 for p in m.parameters())
    assert m.stem.bn.num_batches_tracked.dtype == np.int64
    assert m.to(mr.float64) is m and m.stem.conv.weight.dtype == np.float64
    assert m.to("cpu") is m and m.to("cpu", mr.float32) is m and m.stem.conv.weight.dtype == np.float32
    assert m.to(mr.zeros(1, dtype=mr.float64)) is m and m.stem.conv.weight.dtype == np.float64
    assert m.cpu() is m and all(p.device == "cpu" for p in m.parameters())
    with pytest.raises(mr.DTypeError):
        m.to(mr.int64)


def test_to_device(backend: str) -> None:
    m = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2))
    w = m[0].weight
    m(mr.randn(2, 1, 5, 5)).sum().backward()
    assert m.to(backend) is m and m[0].weight is w
    assert all(t.device == backend for t in [*m.parameters(), *m.buffers()])
    assert all(p.grad.device == backend for p in m.parameters())
    y = m(mr.randn(2, 1, 5, 5, device=backend))
    assert y.device == backend
    m.cpu()
    assert all(t.device == "cpu" for t in [*m.parameters(), *m.buffers()])


@pytest.mark.skipif(mr.cuda.is_available(), reason="checks the error raised without a GPU")
def test_to_cuda_without_gpu_is_a_clear_error() -> None:
    with pytest.raises(mr.DeviceError, match="cuda"):
        nn.Linear(2, 2).to("cuda")


# ----- containers ------------------------------------------------------------------------------------
def test_sequential_indexing_as_torch(torch: ModuleType) -> None:
    for lib_nn in (nn, torch.nn):
        s = lib_nn.Sequential(OrderedDict(a=lib_nn.Linear(2, 3), b=lib_nn.ReLU(), c=lib_nn.Linear(3, 1)))
        assert isinstance(s[-1], lib_nn.Linear) and s[-1] is s[2] and s[0] is s.a
        assert isinstance(s[1:], lib_nn.Sequential) and list(s[1:].state_dict()) == ["c.weight", "c.bias"]
        assert len(s) == 3 and [type(x).__name__ for x in s] == ["Linear", "ReLU", "Linear"]
        with pytest.raises(IndexError):
            s[3]
    s = nn.Sequential(nn.Linear(2, 3), nn.ReLU())
    assert s.append(nn.Linear(3, 1)) is s and list(s.state_dict()) == [
        "0.weight",
        "0.bias",
        "2.weight",
        "2.bias",
    ]
    s.insert(0, nn.Identity())
    assert [type(x).__name__ for x in s] == ["Identity", "Linear", "ReLU", "Linear"]
    s.extend([nn.ReLU()])
    assert isinstance(s.pop(-1), nn.ReLU) and len(s) == 4
    del s[0]
    assert list(s._modules) == ["0", "1", "2"]
    s[1] = nn.GELU()
    assert isinstance(s[1], nn.GELU)
    y = s(mr.ones(4, 2))
    assert y.shape == (4, 1)
    assert len(nn.Sequential()) == 0 and nn.Sequential()(mr.ones(1)).shape == (1,)


def test_module_list_and_dict(torch: ModuleType) -> None:
    ml = nn.ModuleList([nn.Linear(2, 2) for _ in range(3)])
    tl = torch.nn.ModuleList([torch.nn.Linear(2, 2) for _ in range(3)])
    for lst in (ml, tl):
        lst.append(type(lst[0])(2, 4))
        lst.extend([type(lst[0])(4, 4)])
        lst.insert(1, type(lst[0])(2, 1))
        del lst[0]
        lst += [type(lst[0])(1, 1)]
    assert list(ml.state_dict()) == list(tl.state_dict())
    assert [m.weight.shape for m in ml] == [tuple(m.weight.shape) for m in tl]
    assert len(ml) == 6 and ml[-1] is ml[5] and isinstance(ml[1:3], nn.ModuleList) and len(ml[1:3]) == 2
    with pytest.raises(IndexError):
        ml[6]
    with pytest.raises(NotImplementedError):
        ml(mr.ones(1))
    md = nn.ModuleDict({"a": nn.ReLU(), "b": nn.Linear(1, 1)})
    md["c"] = nn.Tanh()
    assert (
        list(md) == ["a", "b", "c"]
        and "b" in md
        and len(md) == 3
        and list(md.state_dict()) == ["b.weight", "b.bias"]
    )
    assert isinstance(md.pop("a"), nn.ReLU) and list(md.keys()) == ["b", "c"]


# ----- repr ------------------------------------------------------------------------------------------
def reprs_equal(torch: ModuleType, builder: Any) -> None:
    m_lib, t_lib = _libs(torch)
    assert repr(builder(m_lib)) == repr(builder(t_lib))


@pytest.mark.parametrize(
    "builder",
    [
        lambda lib: lib.nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False),
        lambda lib: lib.nn.Conv2d(4, 8, (3, 5), padding="same", dilation=2, groups=4),
        lambda lib: lib.nn.Conv2d(4, 8, 1, padding="valid"),
        lambda lib: lib.nn.BatchNorm2d(64),
        lambda lib: lib.nn.BatchNorm2d(3, eps=1e-3, momentum=None, affine=False, track_running_stats=False),
        lambda lib: lib.nn.BatchNorm1d(5),
        lambda lib: lib.nn.Linear(512, 10),
        lambda lib: lib.nn.Linear(5, 1, bias=False),
        lambda lib: lib.nn.ReLU(inplace=True),
        lambda lib: lib.nn.GELU("tanh"),
        lambda lib: lib.nn.Softmax(dim=-1),
        lambda lib: lib.nn.MaxPool2d(3, 2, 1),
        lambda lib: lib.nn.AvgPool2d(2),
        lambda lib: lib.nn.AdaptiveAvgPool2d((1, 1)),
        lambda lib: lib.nn.Dropout(0.3),
        lambda lib: lib.nn.CrossEntropyLoss(label_smoothing=0.1),
        lambda lib: lib.nn.ModuleList([lib.nn.Linear(2, 2), lib.nn.Linear(2, 2), lib.nn.ReLU()]),
        custom_net,
    ],
)
def test_repr_equals_torch(torch: ModuleType, builder: Any) -> None:
    reprs_equal(torch, builder)
