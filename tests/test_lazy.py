"""The lazy layers against PyTorch's: the d2l book's ResNet-18 (section 8.6, written with LazyConv2d,
LazyBatchNorm2d and LazyLinear) run from one source text under torch's imports and under minires's,
value for value in float64 through a dry run, two SGD steps and the init flow; each lazy layer alone on
random arguments; and the lazy semantics: the class change, UninitializedParameter's errors, dtype and
device before the first forward, state_dict both ways, repr, summary and optimizers.
"""

from __future__ import annotations

import copy
import inspect
import math
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minires as mr
import minires.nn as nn
import minires.optim as optim
from minires.nn.modules.lazy import LazyModuleMixin
from minires.nn.parameter import UninitializedBuffer, UninitializedParameter, UninitializedParameterError


@pytest.fixture(scope="module")
def torch(torch: ModuleType) -> Iterator[ModuleType]:
    """conftest's ``torch``, running on one thread during these tests: their tensors are small, and on a
    machine with few cores busy with other work torch's thread pool waits more than it computes (50
    float64 BatchNorm calls on a loaded two-core machine: 1.8 s with two threads, 4 ms with one)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield torch
    torch.set_num_threads(threads)


# ----- the d2l ResNet, one source text for both frameworks ---------------------------------------------

# Dive into Deep Learning, section 8.6 (PyTorch), as the book writes it; d2l.Classifier becomes nn.Module
# (whose forward is the book's d2l.Module.forward), and init_cnn is the book's.
D2L_RESNET = """
class Residual(nn.Module):
    \"\"\"The Residual block of ResNet models.\"\"\"
    def __init__(self, num_channels, use_1x1conv=False, strides=1):
        super().__init__()
        self.conv1 = nn.LazyConv2d(num_channels, kernel_size=3, padding=1,
                                   stride=strides)
        self.conv2 = nn.LazyConv2d(num_channels, kernel_size=3, padding=1)
        if use_1x1conv:
            self.conv3 = nn.LazyConv2d(num_channels, kernel_size=1,
                                       stride=strides)
        else:
            self.conv3 = None
        self.bn1 = nn.LazyBatchNorm2d()
        self.bn2 = nn.LazyBatchNorm2d()

    def forward(self, X):
        Y = F.relu(self.bn1(self.conv1(X)))
        Y = self.bn2(self.conv2(Y))
        if self.conv3:
            X = self.conv3(X)
        Y += X
        return F.relu(Y)


def init_cnn(module):
    \"\"\"Initialize weights for CNNs.\"\"\"
    if type(module) == nn.Linear or type(module) == nn.Conv2d:
        nn.init.xavier_uniform_(module.weight)


class ResNet(nn.Module):
    def b1(self):
        return nn.Sequential(
            nn.LazyConv2d(64, kernel_size=7, stride=2, padding=3),
            nn.LazyBatchNorm2d(), nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2, padding=1))

    def block(self, num_residuals, num_channels, first_block=False):
        blk = []
        for i in range(num_residuals):
            if i == 0 and not first_block:
                blk.append(Residual(num_channels, use_1x1conv=True, strides=2))
            else:
                blk.append(Residual(num_channels))
        return nn.Sequential(*blk)

    def __init__(self, arch, lr=0.1, num_classes=10):
        super(ResNet, self).__init__()
        self.net = nn.Sequential(self.b1())
        for i, b in enumerate(arch):
            self.net.add_module(f'b{i+2}', self.block(*b, first_block=(i==0)))
        self.net.add_module('last', nn.Sequential(
            nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(),
            nn.LazyLinear(num_classes)))
        self.net.apply(init_cnn)

    def forward(self, X):
        return self.net(X)


class ResNet18(ResNet):
    def __init__(self, lr=0.1, num_classes=10):
        super().__init__(((2, 64), (2, 128), (2, 256), (2, 512)),
                       lr, num_classes)
"""
TORCH_IMPORTS = "import torch\nfrom torch import nn\nfrom torch.nn import functional as F\n"
MINIRES_IMPORTS = "import minires as torch\nfrom minires import nn\nfrom minires.nn import functional as F\n"


def d2l_namespace(imports: str) -> dict[str, Any]:
    """The book's code executed under ``imports``: its classes and functions by name."""
    namespace: dict[str, Any] = {}
    exec(compile(imports + D2L_RESNET, "<d2l section 8.6>", "exec"), namespace)  # noqa: S102
    return namespace


def assert_close(actual: Any, expected: Any, what: str, rtol: float = 1e-10) -> None:
    """Agreement relative to the size of the values: |a - e| <= rtol * (|e| + max(1, max |e|)), so that
    entries near zero (sums of many terms taken in another order, such as the gradient of a bias that
    BatchNorm follows, zero but for rounding) are judged against the scale of the array or of the loss."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape}, torch's {expected.shape}"
    scale = max(1.0, float(np.abs(expected).max()) if expected.size else 1.0)
    if not np.all(np.abs(actual - expected) <= rtol * (np.abs(expected) + scale)):  # fast path first
        np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * scale, err_msg=what)


def type_names(net: Any) -> list[str]:
    return [type(m).__name__ for m in net.modules()]


def check_init_cnn(ns: dict[str, Any], net: Any) -> None:
    """The book's init flow after the dry run: ``net.apply(init_cnn)`` redraws every Conv2d and Linear
    weight from Xavier's uniform and leaves the biases alone (``ns``: the book's code under one
    framework's imports)."""
    tnn = ns["nn"]
    layers = [m for m in net.modules() if type(m) in (tnn.Conv2d, tnn.Linear)]
    assert len(layers) == 21  # the stem, 16 3x3 and 3 1x1 (shortcut) convolutions, and the Linear
    before = {id(m): (m.weight.detach().numpy().copy(), m.bias.detach().numpy().copy()) for m in layers}
    net.apply(ns["init_cnn"])
    for m in layers:
        w = m.weight.detach().numpy()
        receptive = int(np.prod(w.shape[2:]))
        fan_in, fan_out = w.shape[1] * receptive, w.shape[0] * receptive
        bound = math.sqrt(6.0 / (fan_in + fan_out))
        default_bound = 1 / math.sqrt(fan_in)  # the default init's U(-bound, bound)
        assert np.abs(w).max() <= bound and not np.array_equal(w, before[id(m)][0])
        if w.size > 5000 and bound > 1.1 * default_bound:
            assert np.abs(w).max() > default_bound, "drawn from Xavier's wider interval"
        np.testing.assert_array_equal(m.bias.detach().numpy(), before[id(m)][1])


def test_d2l_resnet18_with_lazy_layers_is_an_import_swap(torch: ModuleType) -> None:
    """ResNet18 of the book in both frameworks: init_cnn applied in __init__ finds no Conv2d or Linear
    (all still lazy), the dry run makes them plain, init_cnn applied then redraws the weights. Then
    torch's weights are copied over and two training steps (SGD lr 0.1, momentum 0.9, weight_decay 5e-4)
    run in float64: outputs, losses, every parameter gradient, the input gradient, BatchNorm's running
    statistics and the updated parameters agree."""
    tns, mns = d2l_namespace(TORCH_IMPORTS), d2l_namespace(MINIRES_IMPORTS)
    assert mns["torch"] is mr and tns["torch"] is torch
    t_net, m_net = tns["ResNet18"](), mns["ResNet18"]()
    assert type_names(m_net) == type_names(t_net)
    assert "LazyConv2d" in type_names(m_net) and "Conv2d" not in type_names(m_net)
    assert not any(type(m) in (nn.Conv2d, nn.Linear) for m in m_net.modules())
    assert list(m_net.state_dict()) == list(t_net.state_dict())
    t_net.double()
    m_net.double()  # before the dry run: the parameters are made float64 when they materialize
    t_net(torch.zeros(2, 1, 32, 32, dtype=torch.float64))  # the dry runs
    m_net(mr.zeros(2, 1, 32, 32, dtype=mr.float64))
    assert type_names(m_net) == type_names(t_net)
    assert not any("Lazy" in name for name in type_names(m_net))
    check_init_cnn(tns, t_net)
    check_init_cnn(mns, m_net)
    m_net.load_state_dict(t_net.state_dict())  # torch's weights, running statistics and counts

    rng = np.random.default_rng(0)
    t_opt = torch.optim.SGD(t_net.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    m_opt = optim.SGD(m_net.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    t_params, t_buffers = dict(t_net.named_parameters()), dict(t_net.named_buffers())
    for step in range(2):
        x = rng.standard_normal((4, 1, 32, 32))
        y = rng.integers(0, 10, 4)
        xt = torch.tensor(x, requires_grad=True)
        xm = mr.tensor(x, requires_grad=True)
        t_opt.zero_grad()
        m_opt.zero_grad()
        t_out, m_out = t_net(xt), m_net(xm)
        assert_close(m_out.numpy(), t_out.detach().numpy(), f"step {step}: output")
        t_loss = torch.nn.functional.cross_entropy(t_out, torch.tensor(y))
        m_loss = mr.nn.functional.cross_entropy(m_out, mr.tensor(y))
        assert_close(m_loss.item(), t_loss.item(), f"step {step}: loss")
        t_loss.backward()
        m_loss.backward()
        assert_close(xm.grad.numpy(), xt.grad.numpy(), f"step {step}: input gradient")
        for name, p in m_net.named_parameters():
            assert_close(p.grad.numpy(), t_params[name].grad.numpy(), f"step {step}: gradient of {name}")
        for name, b in m_net.named_buffers():
            assert_close(b.numpy(), t_buffers[name].numpy(), f"step {step}: buffer {name}")
        t_opt.step()
        m_opt.step()
        for name, p in m_net.named_parameters():
            assert_close(p.numpy(), t_params[name].detach().numpy(), f"step {step}: {name} after SGD")
    assert int(m_net.net[0][1].num_batches_tracked.item()) == 3  # the dry run and two steps


# ----- each lazy layer alone against torch's --------------------------------------------------------


def compare_first_forward(torch: ModuleType, t_layer: Any, m_layer: Any, x: np.ndarray, dtype: str) -> None:
    """Forward ``x`` through both lazy layers (``m_layer`` still uninitialized: it may have been loaded),
    then backward one random upstream gradient: output, input gradient, parameter gradients, buffers."""
    xt = torch.tensor(x.astype(dtype), requires_grad=True)
    xm = mr.tensor(x.astype(dtype), requires_grad=True)
    yt, ym = t_layer(xt), m_layer(xm)
    rtol = 1e-4 if dtype == "float32" else 1e-10
    assert ym.dtype == np.dtype(dtype)
    assert type(m_layer).__name__ == type(t_layer).__name__
    assert_close(ym.numpy(), yt.detach().numpy(), "output", rtol)
    g = np.random.default_rng(1).standard_normal(tuple(yt.shape)).astype(dtype)
    yt.backward(torch.tensor(g))
    ym.backward(mr.tensor(g))
    assert_close(xm.grad.numpy(), xt.grad.numpy(), "input gradient", rtol)
    t_params = dict(t_layer.named_parameters())
    assert [k for k, _ in m_layer.named_parameters()] == list(t_params)
    for name, p in m_layer.named_parameters():
        assert p.dtype == np.dtype(dtype)
        assert_close(p.grad.numpy(), t_params[name].grad.numpy(), f"gradient of {name}", rtol)
    t_buffers = dict(t_layer.named_buffers())
    assert [k for k, _ in m_layer.named_buffers()] == list(t_buffers)
    for name, b in m_layer.named_buffers():
        assert_close(b.numpy(), t_buffers[name].numpy(), f"buffer {name}", rtol)
    for attr in ("in_channels", "out_channels", "in_features", "out_features", "num_features"):
        assert getattr(m_layer, attr, None) == getattr(t_layer, attr, None), attr


@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_lazy_conv2d_matches_torch(data: st.DataObject, torch: ModuleType) -> None:
    """Random arguments: torch's layer runs first, its weights are loaded into the uninitialized minires
    layer, whose first forward must then give torch's first forward."""
    pair = lambda lo, hi: st.one_of(st.integers(lo, hi), st.tuples(st.integers(lo, hi), st.integers(lo, hi)))  # noqa: E731
    groups = data.draw(st.sampled_from([1, 2, 3]), "groups")
    cin = groups * data.draw(st.integers(1, 3), "cin/g")
    cout = groups * data.draw(st.integers(1, 3), "cout/g")
    kwargs = {
        "kernel_size": data.draw(pair(1, 3), "kernel_size"),
        "stride": data.draw(pair(1, 2), "stride"),
        "padding": data.draw(pair(0, 2), "padding"),
        "dilation": data.draw(pair(1, 2), "dilation"),
        "groups": groups,
        "bias": data.draw(st.booleans(), "bias"),
    }
    dtype = data.draw(st.sampled_from(["float32", "float64"]), "dtype")
    x = np.random.default_rng(data.draw(st.integers(0, 99), "seed")).standard_normal((2, cin, 7, 6))
    t_layer = torch.nn.LazyConv2d(cout, **kwargs).to(getattr(torch, dtype))
    t_layer(torch.tensor(x.astype(dtype)))
    m_layer = nn.LazyConv2d(cout, **kwargs, dtype=dtype)
    m_layer.load_state_dict(t_layer.state_dict())
    assert type(m_layer) is nn.LazyConv2d  # loaded, but the class changes at the first forward
    t_layer.zero_grad()
    compare_first_forward(torch, t_layer, m_layer, x, dtype)
    assert m_layer.extra_repr() == t_layer.extra_repr()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(("shape", "bias"), [((3, 5), True), ((2, 4, 7), False), ((6,), True)])
def test_lazy_linear_matches_torch(shape: tuple[int, ...], bias: bool, dtype: str, torch: ModuleType) -> None:
    x = np.random.default_rng(sum(shape)).standard_normal(shape)
    t_layer = torch.nn.LazyLinear(4, bias=bias).to(getattr(torch, dtype))
    t_layer(torch.tensor(x.astype(dtype)))
    t_layer.zero_grad()
    m_layer = nn.LazyLinear(4, bias=bias).to(dtype)
    m_layer.load_state_dict(t_layer.state_dict())
    compare_first_forward(torch, t_layer, m_layer, x, dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"momentum": None},
        {"affine": False},
        {"track_running_stats": False},
        {"eps": 1e-3, "momentum": 0.3},
    ],
    ids=["default", "momentum_none", "no_affine", "no_running_stats", "eps_momentum"],
)
def test_lazy_batchnorm2d_matches_torch(kwargs: dict, dtype: str, torch: ModuleType) -> None:
    """Both fresh (BatchNorm's initial state is not random): the first forward in training mode, its
    backward, the running statistics; then a second step in eval mode."""
    x = np.random.default_rng(3).standard_normal((3, 5, 4, 2)) * 2 + 1
    t_layer = torch.nn.LazyBatchNorm2d(**kwargs).to(getattr(torch, dtype))
    m_layer = nn.LazyBatchNorm2d(**kwargs).to(dtype)
    compare_first_forward(torch, t_layer, m_layer, x, dtype)
    assert type(m_layer) is nn.BatchNorm2d and repr(m_layer) == repr(t_layer)
    t_layer.eval()
    m_layer.eval()
    t_layer.zero_grad()
    m_layer.zero_grad()
    compare_first_forward(torch, t_layer, m_layer, x[:, :, ::-1].copy(), dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_lazy_layer_draws_what_the_plain_layer_draws(dtype: str) -> None:
    """With one seed, a lazy layer initialized by its first forward equals the plain layer built with
    the inferred size: the same random draws, in the same order."""
    cases = [
        (lambda: nn.LazyConv2d(6, 3, stride=2, groups=2, dtype=dtype), lambda: nn.Conv2d(4, 6, 3, 2, groups=2, dtype=dtype), (2, 4, 9, 9)),  # noqa: E501
        (lambda: nn.LazyLinear(3, dtype=dtype), lambda: nn.Linear(5, 3, dtype=dtype), (2, 5)),
        (lambda: nn.LazyBatchNorm2d(dtype=dtype), lambda: nn.BatchNorm2d(4, dtype=dtype), (2, 4, 3, 3)),
    ]  # fmt: skip
    for make_lazy, make_plain, shape in cases:
        mr.manual_seed(7)
        plain = make_plain()
        mr.manual_seed(7)
        lazy = make_lazy()
        lazy(mr.zeros(*shape, dtype=dtype))
        assert type(lazy) is type(plain) and repr(lazy) == repr(plain)
        plain.train()(mr.zeros(*shape, dtype=dtype))  # the same running statistics update
        for (k, a), (k2, b) in zip(lazy.state_dict().items(), plain.state_dict().items(), strict=True):
            assert k == k2 and a.dtype == b.dtype
            np.testing.assert_array_equal(a, b, err_msg=k)


def test_constructor_signatures_equal_torch(torch: ModuleType) -> None:
    for name in ["LazyConv2d", "LazyLinear", "LazyBatchNorm2d"]:
        ours = inspect.signature(getattr(nn, name).__init__).parameters
        theirs = inspect.signature(getattr(torch.nn, name).__init__).parameters
        assert [(p.name, p.default, p.kind) for p in ours.values()] == [
            (p.name, p.default, p.kind) for p in theirs.values()
        ], name
    assert inspect.signature(UninitializedParameter.__init__).parameters.keys() == {
        "self", "requires_grad", "device", "dtype"
    }  # fmt: skip


# ----- the lazy semantics ---------------------------------------------------------------------------


def small_net(lib: Any) -> Any:
    """A network with one of each lazy layer, built from ``lib.nn`` (minires's or torch's)."""
    return lib.nn.Sequential(
        lib.nn.LazyConv2d(4, 3, padding=1, bias=False),
        lib.nn.LazyBatchNorm2d(),
        lib.nn.ReLU(),
        lib.nn.Flatten(),
        lib.nn.LazyLinear(2),
    )


def test_the_class_becomes_plain_at_the_first_forward() -> None:
    net = small_net(mr)
    conv, bn, linear = net[0], net[1], net[4]
    assert isinstance(conv, nn.Conv2d) and isinstance(linear, nn.Linear)  # as torch's lazy classes
    assert not isinstance(bn, nn.BatchNorm2d)  # torch's LazyBatchNorm2d derives from _BatchNorm only
    assert all(m.has_uninitialized_params() for m in (conv, bn, linear))
    params_before = list(net.parameters())
    assert [type(p) for p in params_before] == [UninitializedParameter] * 5
    assert [type(b) for b in net.buffers()] == [UninitializedBuffer, UninitializedBuffer, mr.Tensor]
    net(mr.randn(2, 3, 5, 5))
    assert [type(m) for m in net] == [nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.Flatten, nn.Linear]
    assert not any(isinstance(m, LazyModuleMixin) for m in net)
    assert (conv.in_channels, bn.num_features, linear.in_features) == (3, 4, 100)
    assert not conv._forward_pre_hooks and not hasattr(conv, "_initialize_hook")
    params_after = list(net.parameters())
    assert all(a is b for a, b in zip(params_before, params_after, strict=True))  # the same objects
    assert [type(p) for p in params_after] == [nn.Parameter] * 5
    assert [p.shape for p in params_after] == [(4, 3, 3, 3), (4,), (4,), (2, 100), (2,)]
    assert all(p.requires_grad and p.is_leaf for p in params_after)
    assert net(mr.randn(2, 3, 5, 5)).shape == (2, 2)
    with pytest.raises(mr.ShapeError):  # initialized for 3 input channels now
        net(mr.randn(2, 5, 5, 5))


def test_initialize_parameters_directly() -> None:
    """As torch's: it materializes and initializes, and the class changes at the next forward."""
    layer = nn.LazyLinear(3)
    mr.manual_seed(0)
    layer.initialize_parameters(mr.randn(2, 5))
    assert type(layer) is nn.LazyLinear and not layer.has_uninitialized_params()
    assert layer.in_features == 5 and layer.weight.shape == (3, 5) and type(layer.weight) is nn.Parameter
    weight = layer.weight.numpy()
    layer(mr.randn(2, 5))
    assert type(layer) is nn.Linear
    np.testing.assert_array_equal(layer.weight.numpy(), weight)  # not drawn again


def test_uninitialized_parameter_errors() -> None:
    conv = nn.LazyConv2d(4, 3)
    w = conv.weight
    assert repr(w) == "<UninitializedParameter>" and repr(conv.bias) == "<UninitializedParameter>"
    assert (w.dtype, w.device, w.requires_grad, w.is_leaf, w.grad) == (mr.float32, "cpu", True, True, None)
    attempts = {
        "data": lambda: w.data,
        "shape": lambda: w.shape,
        "numpy": lambda: w.numpy(),
        "add": lambda: w + 1,
        "conv2d": lambda: mr.nn.functional.conv2d(mr.randn(1, 2, 5, 5), w),
        "init": lambda: nn.init.xavier_uniform_(w),
        "sum": lambda: w.sum(),
    }
    for what, attempt in attempts.items():
        with pytest.raises(UninitializedParameterError, match="LazyConv2d.weight") as info:
            attempt()
        assert "uninitialized parameter" in str(info.value) and "forward" in str(info.value), what
        assert isinstance(info.value, RuntimeError) and isinstance(info.value, ValueError)
    with pytest.raises(UninitializedParameterError, match="uninitialized buffer LazyBatchNorm2d.running_var"):
        nn.LazyBatchNorm2d().running_var.numpy()
    with pytest.raises(ValueError, match="in_channels must be divisible by groups"):
        nn.LazyConv2d(4, 3, groups=2)(mr.randn(1, 3, 5, 5))
    with pytest.raises(ValueError, match="out_channels must be divisible by groups"):
        nn.LazyConv2d(5, 3, groups=2)
    with pytest.raises(mr.ShapeError, match="LazyConv2d"):
        nn.LazyConv2d(4, 3)(mr.randn(5, 5))
    with pytest.raises(mr.ShapeError, match="4D"):
        nn.LazyBatchNorm2d()(mr.randn(2, 3))
    with pytest.raises(NotImplementedError, match="padding_mode"):
        nn.LazyConv2d(4, 3, padding_mode="reflect")
    bad = nn.LazyConv2d(4, 3)
    with pytest.raises(mr.ShapeError):  # a failed first forward leaves the layer lazy
        bad(mr.randn(4))
    assert type(bad) is nn.LazyConv2d and bad.has_uninitialized_params()


@pytest.mark.parametrize("convert", ["double", "to_dtype", "constructor", "float_after_double"])
def test_dtype_before_the_first_forward_is_remembered(convert: str, torch: ModuleType) -> None:
    """As torch's: the uninitialized parameters carry a dtype, which Module.to changes and which they
    materialize with; a float32 layer refuses float64 input."""
    expected = {"double": "float64", "to_dtype": "float64", "constructor": "float64"}.get(convert, "float32")
    for lib in (mr, torch):
        net = small_net(lib)
        if convert == "double":
            net.double()
        elif convert == "to_dtype":
            net.to(lib.float64)
        elif convert == "constructor":
            net = lib.nn.Sequential(lib.nn.LazyConv2d(4, 3, dtype=lib.float64), lib.nn.LazyLinear(2).double())
        else:
            net.double().float()
        assert all(str(p.dtype).endswith(expected) for p in net.parameters())
        out = net(lib.ones(2, 3, 5, 5, dtype=getattr(lib, expected)))
        assert str(out.dtype).endswith(expected)
        assert all(str(p.dtype).endswith(expected) for p in net.parameters())
    with pytest.raises(mr.DTypeError):
        nn.LazyLinear(2)(mr.randn(1, 3, dtype=mr.float64))


def test_device_and_requires_grad_before_the_first_forward(backend: str) -> None:
    net = small_net(mr).to(backend)
    net.requires_grad_(False)
    assert all(t.device == backend for t in [*net.parameters(), *net.buffers()])
    assert not any(p.requires_grad for p in net.parameters())
    out = net(mr.randn(2, 3, 4, 4, device=backend))
    assert out.device == backend and out.shape == (2, 2)
    assert all(t.device == backend for t in [*net.parameters(), *net.buffers()])
    assert not any(p.requires_grad for p in net.parameters())


def test_state_dict_of_an_uninitialized_model(torch: ModuleType) -> None:
    """Its entries are the uninitialized objects, under torch's keys, as torch's state_dict has them."""
    sd, tsd = small_net(mr).state_dict(), small_net(torch).state_dict()
    assert list(sd) == list(tsd)
    for key, value in sd.items():
        if key.endswith("num_batches_tracked"):
            assert value.dtype == np.int64 and value == 0
        else:
            assert type(value).__name__ == type(tsd[key]).__name__, key
    keep = small_net(mr).state_dict(keep_vars=True)
    assert isinstance(keep["0.weight"], UninitializedParameter)


def test_an_initialized_state_dict_loads_into_an_uninitialized_model(torch: ModuleType) -> None:
    """Loading materializes every entry with its loaded shape (torch's _lazy_load_hook); the class
    changes at the next forward, which gives the source model's output."""
    x = np.random.default_rng(0).standard_normal((2, 3, 5, 5)).astype(np.float32)
    source = small_net(mr)
    source(mr.tensor(x))
    source.eval()
    target = small_net(mr)
    result = target.load_state_dict(source.state_dict())
    assert list(result.missing_keys) == [] and list(result.unexpected_keys) == []
    assert type(target[0]) is nn.LazyConv2d and not target[0].has_uninitialized_params()
    for (k, a), b in zip(target.state_dict().items(), source.state_dict().values(), strict=True):
        np.testing.assert_array_equal(a, b, err_msg=k)
    target.eval()
    np.testing.assert_array_equal(target(mr.tensor(x)).numpy(), source(mr.tensor(x)).numpy())
    assert [type(m) for m in target] == [type(m) for m in source]
    assert (target[0].in_channels, target[1].num_features, target[4].in_features) == (3, 4, 100)

    # a torch model's state, into an uninitialized minires one
    t_source = small_net(torch).double()
    t_source(torch.tensor(x, dtype=torch.float64))
    t_source.eval()
    m_target = small_net(mr).double()
    m_target.load_state_dict(t_source.state_dict())
    m_target.eval()
    assert_close(
        m_target(mr.tensor(x, dtype=mr.float64)).numpy(),
        t_source(torch.tensor(x, dtype=torch.float64)).detach().numpy(),
        "output after loading torch's state",
    )


def test_load_state_dict_errors_and_uninitialized_entries(torch: ModuleType) -> None:
    initialized = small_net(mr)
    initialized(mr.randn(2, 3, 5, 5))
    good = initialized.state_dict()

    # strict: missing and unexpected keys are still reported by name, and nothing is loaded
    target = small_net(mr)
    broken = dict(good)
    del broken["4.bias"]
    broken["4.extra"] = np.zeros(2)
    with pytest.raises(RuntimeError, match=r'Missing key\(s\) in state_dict: "4.bias"') as info:
        target.load_state_dict(broken)
    assert '"4.extra"' in str(info.value)
    assert all(isinstance(p, UninitializedParameter) for p in target.parameters())
    # not strict: what is there is loaded, the rest stays uninitialized until the first forward, which
    # initializes it and keeps what was loaded
    result = target.load_state_dict(broken, strict=False)
    assert result.missing_keys == ["4.bias"] and result.unexpected_keys == ["4.extra"]
    assert isinstance(target[4].bias, UninitializedParameter) and target[4].weight.shape == (2, 100)
    target(mr.randn(2, 3, 5, 5))
    assert type(target[4]) is nn.Linear and target[4].bias.shape == (2,)
    np.testing.assert_array_equal(target[4].weight.numpy(), good["4.weight"])
    assert np.abs(target[4].bias.numpy()).max() <= 0.1  # drawn: U(-1/sqrt(100), 1/sqrt(100))

    # uninitialized into uninitialized: it stays so (also from torch's uninitialized state)
    for uninitialized in (small_net(mr).state_dict(), small_net(torch).state_dict()):
        target = small_net(mr)
        result = target.load_state_dict(uninitialized)
        assert result.missing_keys == [] and result.unexpected_keys == []
        assert all(isinstance(p, UninitializedParameter) for p in target.parameters())

    # uninitialized into initialized: an error naming the key, nothing changed
    before = [p.numpy() for p in initialized.parameters()]
    with pytest.raises(RuntimeError, match='"0.weight".*uninitialized'):
        initialized.load_state_dict(small_net(mr).state_dict())
    for p, b in zip(initialized.parameters(), before, strict=True):
        np.testing.assert_array_equal(p.numpy(), b)

    # the shape of the model is still checked once it is initialized
    wider = nn.Sequential(nn.LazyConv2d(4, 3, padding=1, bias=False))
    wider(mr.randn(1, 6, 5, 5))
    with pytest.raises(RuntimeError, match="size mismatch for 0.weight"):
        initialized.load_state_dict(wider.state_dict(), strict=False)


def test_repr_and_summary_of_an_uninitialized_model(torch: ModuleType) -> None:
    assert repr(small_net(mr)) == repr(small_net(torch))
    assert repr(nn.LazyConv2d(64, 7, 2, 3)) == repr(torch.nn.LazyConv2d(64, 7, 2, 3))
    assert (
        repr(nn.LazyConv2d(64, 7, 2, 3))
        == "LazyConv2d(0, 64, kernel_size=(7, 7), stride=(2, 2), padding=(3, 3))"
    )
    for make in (
        lambda lib: lib.nn.LazyLinear(3, bias=False),
        lambda lib: lib.nn.LazyBatchNorm2d(affine=False),
    ):
        assert repr(make(mr)) == repr(make(torch))
    mr.manual_seed(0)
    s = mr.utils.summary(small_net(mr), (3, 5, 5), verbose=False)  # its forward pass is the dry run
    assert s.total_params == 4 * 27 + 8 + 2 * 100 + 2
    types = ["Sequential", "Conv2d", "BatchNorm2d", "ReLU", "Flatten", "Linear"]
    assert [row.type for row in s.rows] == types


@pytest.mark.parametrize("make_optimizer", [
    lambda params: optim.SGD(params, lr=0.1, momentum=0.9, weight_decay=5e-4),
    lambda params: optim.Adam(params, lr=0.01),
])  # fmt: skip
def test_an_optimizer_built_before_the_dry_run(make_optimizer: Any) -> None:
    """As in torch, it holds the very parameter objects that materialize at the dry run, so it works
    and takes the same steps as one built afterwards (the order torch's documentation recommends)."""
    nets = []
    for build_first in (True, False):
        mr.manual_seed(3)
        net = small_net(mr)
        opt = make_optimizer(net.parameters()) if build_first else None
        if opt is not None:
            opt.step()  # no parameter has a gradient yet: nothing to do
        net(mr.zeros(2, 3, 5, 5))  # the dry run
        if opt is None:
            opt = make_optimizer(net.parameters())
        for seed in range(2):
            opt.zero_grad()
            net(mr.randn(2, 3, 5, 5, dtype=mr.float32) + seed).sum().backward()
            opt.step()
        nets.append(net)
    for (k, a), b in zip(nets[0].state_dict().items(), nets[1].state_dict().values(), strict=True):
        np.testing.assert_array_equal(a, b, err_msg=k)


def test_deepcopy_of_an_uninitialized_model() -> None:
    net = small_net(mr)
    twin = copy.deepcopy(net)
    twin(mr.randn(2, 3, 5, 5))
    assert type(twin[0]) is nn.Conv2d and type(net[0]) is nn.LazyConv2d
    assert isinstance(net[0].weight, UninitializedParameter)
    net(mr.randn(2, 3, 4, 4))
    assert net[4].in_features == 64 and twin[4].in_features == 100
