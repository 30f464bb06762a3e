"""Every layer of minires.nn against the torch.nn layer of the same name, weights copied over by
state_dict: forward values, the input gradient and every parameter gradient, float32 and float64, on
each backend; BatchNorm in train and eval over several steps (running statistics, num_batches_tracked,
momentum None); CrossEntropyLoss's options; default initialization and minires.nn.init's statistics.
"""

from __future__ import annotations

import math
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minires as mr
import minires.nn as nn
from minires.nn import init

RTOL = {"float32": 1e-4, "float64": 1e-9}


def assert_close(actual: np.ndarray, expected: np.ndarray, dtype: str, what: str) -> None:
    """Relative to the size of the values: |a - e| <= rtol * (|e| + max(1, max |e|) * 1e-2)."""
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape}, torch's {expected.shape}"
    rtol = RTOL[dtype]
    scale = max(1.0, float(np.abs(expected).max()) if expected.size else 1.0)
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * scale * 1e-2, err_msg=what)


def run_twins(
    torch: ModuleType,
    make: Any,
    x: np.ndarray,
    dtype: str,
    backend: str = "cpu",
    train: bool = True,
    m: Any = None,
    t: Any = None,
    seed: int = 1,
) -> tuple[Any, Any]:
    """One forward and backward of the minires and torch layers built by ``make(nn_module)`` on ``x``,
    with the same random upstream gradient; compares output, input gradient, every parameter gradient,
    and every buffer afterwards. Returns the two layers (to run further steps)."""
    if t is None:
        t = make(torch.nn).to(getattr(torch, dtype))
        m = make(nn).to(dtype)
        m.load_state_dict(t.state_dict())
        m.to(backend)
    m.train(train)
    t.train(train)
    m.zero_grad()
    t.zero_grad()
    xm = mr.tensor(x.astype(dtype), device=backend, requires_grad=True)
    xt = torch.tensor(x.astype(dtype), requires_grad=True)
    ym, yt = m(xm), t(xt)
    assert ym.dtype == np.dtype(dtype), f"output dtype {ym.dtype} for a {dtype} layer"
    assert_close(ym.numpy(), yt.detach().numpy(), dtype, "output")
    g = np.random.default_rng(seed).standard_normal(tuple(yt.shape)).astype(dtype)
    ym.backward(mr.tensor(g, device=backend))
    yt.backward(torch.tensor(g))
    assert_close(xm.grad.numpy(), xt.grad.numpy(), dtype, "input gradient")
    t_params = dict(t.named_parameters())
    for name, p in m.named_parameters():
        assert_close(p.grad.numpy(), t_params[name].grad.numpy(), dtype, f"gradient of {name}")
    t_buffers = dict(t.named_buffers())
    assert [k for k, _ in m.named_buffers()] == list(t_buffers)
    for name, b in m.named_buffers():
        assert b.dtype == t_buffers[name].numpy().dtype, name
        assert_close(b.numpy(), t_buffers[name].numpy(), dtype, f"buffer {name}")
    return m, t


def randn(*shape: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape)


LAYERS = {
    "conv": (lambda nn_: nn_.Conv2d(3, 8, 3), (2, 3, 9, 9)),
    "conv_stride_pad_nobias": (
        lambda nn_: nn_.Conv2d(3, 8, 3, stride=2, padding=1, bias=False),
        (2, 3, 9, 8),
    ),
    "conv_dilation_groups": (
        lambda nn_: nn_.Conv2d(4, 6, (3, 5), stride=(2, 1), padding=(1, 2), dilation=(2, 1), groups=2),
        (2, 4, 11, 9),
    ),
    "conv_depthwise": (lambda nn_: nn_.Conv2d(4, 4, 3, padding=1, groups=4), (3, 4, 6, 6)),
    "conv_same": (lambda nn_: nn_.Conv2d(2, 3, 4, padding="same", dilation=2), (2, 2, 9, 9)),
    "conv_1x1_stride2": (lambda nn_: nn_.Conv2d(4, 8, 1, stride=2, bias=False), (2, 4, 7, 7)),
    "conv_unbatched": (lambda nn_: nn_.Conv2d(3, 4, 3), (3, 6, 6)),
    "linear": (lambda nn_: nn_.Linear(5, 3), (4, 5)),
    "linear_3d_nobias": (lambda nn_: nn_.Linear(5, 3, bias=False), (2, 4, 5)),
    "relu": (lambda nn_: nn_.ReLU(), (3, 4, 5)),
    "relu_inplace": (lambda nn_: nn_.Sequential(nn_.Linear(5, 5), nn_.ReLU(inplace=True)), (3, 5)),
    "gelu": (lambda nn_: nn_.GELU(), (3, 4, 5)),
    "gelu_tanh": (lambda nn_: nn_.GELU(approximate="tanh"), (3, 4, 5)),
    "sigmoid": (lambda nn_: nn_.Sigmoid(), (3, 4)),
    "tanh": (lambda nn_: nn_.Tanh(), (3, 4)),
    "softmax": (lambda nn_: nn_.Softmax(dim=1), (3, 4, 2)),
    "log_softmax": (lambda nn_: nn_.LogSoftmax(dim=-1), (3, 4)),
    "max_pool": (lambda nn_: nn_.MaxPool2d(3, 2, 1), (2, 3, 9, 9)),
    "max_pool_2": (lambda nn_: nn_.MaxPool2d(2), (2, 3, 8, 7)),
    "max_pool_ceil_dilation": (lambda nn_: nn_.MaxPool2d(3, 2, 1, dilation=2, ceil_mode=True), (2, 3, 10, 9)),
    "avg_pool": (lambda nn_: nn_.AvgPool2d(3, 2, 1), (2, 3, 9, 9)),
    "avg_pool_no_pad_count": (lambda nn_: nn_.AvgPool2d(3, 2, 1, count_include_pad=False), (2, 3, 8, 9)),
    "adaptive_avg_pool_1": (lambda nn_: nn_.AdaptiveAvgPool2d((1, 1)), (2, 3, 7, 7)),
    "adaptive_avg_pool_uneven": (lambda nn_: nn_.AdaptiveAvgPool2d((3, 2)), (2, 3, 7, 5)),
    "adaptive_avg_pool_int": (lambda nn_: nn_.AdaptiveAvgPool2d(4), (2, 3, 9, 6)),
    "flatten": (lambda nn_: nn_.Flatten(), (2, 3, 4, 5)),
    "flatten_dims": (lambda nn_: nn_.Flatten(0, 2), (2, 3, 4, 5)),
    "identity": (lambda nn_: nn_.Identity(54, unused="x"), (2, 3)),
    "bn2d": (lambda nn_: nn_.BatchNorm2d(3), (4, 3, 5, 5)),
    "bn1d_2d_input": (lambda nn_: nn_.BatchNorm1d(6), (8, 6)),
    "bn1d_3d_input": (lambda nn_: nn_.BatchNorm1d(3), (4, 3, 7)),
    "stack": (
        lambda nn_: nn_.Sequential(
            nn_.Conv2d(3, 4, 3, padding=1, bias=False),
            nn_.BatchNorm2d(4),
            nn_.ReLU(),
            nn_.MaxPool2d(2),
            nn_.AdaptiveAvgPool2d(1),
            nn_.Flatten(),
            nn_.Dropout(0.5),  # eval mode below: the identity
            nn_.Linear(4, 3),
        ),
        (2, 3, 8, 8),
    ),
}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", list(LAYERS))
def test_layer_matches_torch(name: str, dtype: str, backend: str, torch: ModuleType) -> None:
    make, shape = LAYERS[name]
    x = randn(*shape)
    run_twins(torch, make, x, dtype, backend, train=name != "stack")
    run_twins(torch, make, x, dtype, backend, train=False)


@settings(max_examples=min(40, settings.default.max_examples), deadline=None)
@given(data=st.data())
def test_conv2d_and_pool_arguments_match_torch(data: st.DataObject, torch: ModuleType) -> None:
    """Random constructor arguments (ints or pairs), float64: the layer passes them on as torch's does."""
    pair = lambda lo, hi: st.one_of(st.integers(lo, hi), st.tuples(st.integers(lo, hi), st.integers(lo, hi)))  # noqa: E731
    groups = data.draw(st.sampled_from([1, 2, 3]), "groups")
    cin, cout = (
        groups * data.draw(st.integers(1, 3), "cin/g"),
        groups * data.draw(st.integers(1, 3), "cout/g"),
    )
    kwargs = {
        "kernel_size": data.draw(pair(1, 4), "kernel_size"),
        "stride": data.draw(pair(1, 3), "stride"),
        "padding": data.draw(pair(0, 2), "padding"),
        "dilation": data.draw(pair(1, 2), "dilation"),
        "groups": groups,
        "bias": data.draw(st.booleans(), "bias"),
    }
    pool_kernel = data.draw(st.integers(1, 3), "pool kernel")
    pool = data.draw(st.sampled_from(["max", "avg", "adaptive"]), "pool")

    def make(nn_: Any) -> Any:
        layers = [nn_.Conv2d(cin, cout, **kwargs)]
        if pool == "max":
            layers.append(nn_.MaxPool2d(pool_kernel, stride=1, padding=pool_kernel // 2))
        elif pool == "avg":
            layers.append(nn_.AvgPool2d(pool_kernel, stride=1, padding=pool_kernel // 2))
        else:
            layers.append(nn_.AdaptiveAvgPool2d((pool_kernel, None)))
        return nn_.Sequential(*layers)

    x = randn(2, cin, 11, 10, seed=data.draw(st.integers(0, 100), "seed"))
    run_twins(torch, make, x, "float64")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"momentum": None},
        {"momentum": 0.3, "eps": 1e-3},
        {"affine": False},
        {"track_running_stats": False},
        {"affine": False, "track_running_stats": False, "momentum": None},
    ],
    ids=["default", "momentum_none", "momentum_eps", "no_affine", "no_running_stats", "bare"],
)
def test_batchnorm_steps_match_torch(kwargs: dict, dtype: str, backend: str, torch: ModuleType) -> None:
    """Several training steps (running statistics and num_batches_tracked after each, momentum None as a
    cumulative average), then eval (running statistics, or the batch's when there are none)."""
    make = lambda nn_: nn_.BatchNorm2d(3, **kwargs)  # noqa: E731
    m = t = None
    for step in range(4):
        x = randn(5, 3, 4, 4, seed=step) * (step + 1) + step  # statistics that change from step to step
        m, t = run_twins(torch, make, x, dtype, backend, train=True, m=m, t=t, seed=step)
    if kwargs.get("track_running_stats", True):
        assert m.num_batches_tracked.item() == t.num_batches_tracked.item() == 4
    else:
        assert m.running_mean is None and m.num_batches_tracked is None and list(m.buffers()) == []
    for step in range(2):
        run_twins(torch, make, randn(2, 3, 4, 4, seed=10 + step), dtype, backend, train=False, m=m, t=t)
    if kwargs.get("track_running_stats", True):
        assert m.num_batches_tracked.item() == 4  # eval does not count


def test_batchnorm_input_checks_and_defaults(torch: ModuleType) -> None:
    with pytest.raises(ValueError, match=r"expected 4D input \(got 3D input"):
        nn.BatchNorm2d(3)(mr.randn(2, 3, 4))
    with pytest.raises(ValueError, match=r"expected 2D or 3D input \(got 4D input"):
        nn.BatchNorm1d(3)(mr.randn(2, 3, 4, 4))
    bn = nn.BatchNorm2d(4)
    assert bn.weight.numpy().tolist() == [1] * 4 and bn.bias.numpy().tolist() == [0] * 4
    assert bn.running_mean.numpy().tolist() == [0] * 4 and bn.running_var.numpy().tolist() == [1] * 4
    assert bn.num_batches_tracked.dtype == np.int64 and bn.num_batches_tracked.item() == 0
    assert bn.weight.dtype == np.float32 and bn.running_var.dtype == np.float32
    bn(mr.randn(2, 4, 3, 3))
    bn.reset_running_stats()
    assert bn.num_batches_tracked.item() == 0 and bn.running_var.numpy().tolist() == [1] * 4
    assert nn.BatchNorm2d(2, bias=False).bias is None


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"reduction": "sum"},
        {"reduction": "none"},
        {"label_smoothing": 0.2},
        {"ignore_index": 2},
        {"weight": [0.5, 1.0, 2.0, 1.5]},
        {"weight": [0.5, 1.0, 2.0, 1.5], "label_smoothing": 0.1, "ignore_index": 0, "reduction": "mean"},
    ],
    ids=["mean", "sum", "none", "smoothing", "ignore", "weight", "all"],
)
def test_cross_entropy_loss_matches_torch(kwargs: dict, dtype: str, backend: str, torch: ModuleType) -> None:
    logits = randn(6, 4)
    target = np.array([0, 1, 2, 3, 2, 1])
    weight = kwargs.pop("weight", None)
    m_loss = nn.CrossEntropyLoss(
        weight=None if weight is None else mr.tensor(weight, dtype=dtype, device=backend), **kwargs
    )
    t_loss = torch.nn.CrossEntropyLoss(
        weight=None if weight is None else torch.tensor(weight, dtype=getattr(torch, dtype)), **kwargs
    )
    xm = mr.tensor(logits.astype(dtype), device=backend, requires_grad=True)
    xt = torch.tensor(logits.astype(dtype), requires_grad=True)
    lm = m_loss(xm, mr.tensor(target, device=backend))
    lt = t_loss(xt, torch.tensor(target))
    assert_close(lm.numpy(), lt.detach().numpy(), dtype, "loss")
    g = np.random.default_rng(0).standard_normal(tuple(lt.shape)).astype(dtype)
    lm.backward(mr.tensor(g, device=backend))
    lt.backward(torch.tensor(g))
    assert_close(xm.grad.numpy(), xt.grad.numpy(), dtype, "input gradient")
    assert list(m_loss.state_dict()) == list(t_loss.state_dict())  # the class weight is a buffer


def test_nll_loss_matches_torch(torch: ModuleType) -> None:
    logp = np.log(np.random.default_rng(0).dirichlet(np.ones(5), size=4))
    target = np.array([4, 0, 1, 1])
    lm = nn.NLLLoss()(mr.tensor(logp), mr.tensor(target))
    lt = torch.nn.NLLLoss()(torch.tensor(logp), torch.tensor(target))
    np.testing.assert_allclose(lm.item(), lt.item(), rtol=1e-12)


def test_dropout() -> None:
    d = nn.Dropout(0.25)
    x = mr.ones(200, 100, requires_grad=True)
    mr.manual_seed(3)
    y = d(x)
    kept = y.numpy() != 0
    assert abs(1 - kept.mean() - 0.25) < 0.01
    np.testing.assert_allclose(y.numpy()[kept], 1 / 0.75, rtol=1e-6)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy() != 0, kept)
    mr.manual_seed(3)
    np.testing.assert_array_equal(d(x).numpy(), y.numpy())  # the seed fixes the mask
    d.eval()
    assert d(x) is x
    assert nn.Dropout(0.0)(x) is x
    with pytest.raises(ValueError, match="between 0 and 1"):
        nn.Dropout(1.5)


@pytest.mark.parametrize("dtype", ["float32", "float64", "int64"])
def test_relu_inplace_outside_the_graph_overwrites_the_input_as_torch(dtype: str, torch: ModuleType) -> None:
    """Inside no_grad (and on a tensor that needs no grad anywhere) ``inplace=True`` writes max(x, 0)
    into x's own array and returns x, as torch's does: values, signed zeros, NaN and the object."""
    data = np.random.default_rng(1).standard_normal((4, 3, 5, 6)) * 3
    if dtype == "int64":
        data = np.round(data)
    else:
        data.flat[:4] = [0.0, -0.0, np.nan, -np.inf]
    data = data.astype(dtype)
    for grad_mode, requires_grad in ((mr.no_grad, dtype != "int64"), (mr.enable_grad, False)):
        x = mr.tensor(data, requires_grad=requires_grad)
        tx = torch.tensor(data, requires_grad=requires_grad)
        array = x.data
        with grad_mode():
            y = nn.ReLU(inplace=True)(x)
        with torch.no_grad():
            torch.nn.ReLU(inplace=True)(tx)
        assert y is x and x.data is array and x.is_leaf and x.requires_grad == requires_grad
        np.testing.assert_array_equal(x.numpy(), tx.detach().numpy())
        np.testing.assert_array_equal(np.signbit(x.numpy()), np.signbit(tx.detach().numpy()))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_relu_inplace_in_the_graph_is_recorded_as_torch(dtype: str, torch: ModuleType) -> None:
    """In the graph ``inplace=True`` on a non-leaf: the same object now holds the ReLU (every alias sees
    it) and the gradients are torch's; the array an earlier op saved (here Mul's, for its backward) keeps
    its values; a retain_grad made before it gives the gradient of the new value. On a leaf that requires
    grad it is refused, as torch refuses it."""
    rng = np.random.default_rng(2)
    a_data, b_data = rng.standard_normal((3, 7)).astype(dtype), rng.standard_normal((3, 7)).astype(dtype)
    results = []
    for lib in (mr, torch):
        a = lib.tensor(a_data, requires_grad=True)
        b = lib.tensor(b_data, requires_grad=True)
        h = a * b  # a non-leaf
        h.retain_grad()  # moves to the ReLU: h.grad is the gradient of h's new value
        alias = h
        out = lib.nn.functional.relu(h, inplace=True)
        assert out is alias
        (out * b).sum().backward()
        results.append((h.detach().numpy().copy(), h.grad.numpy(), a.grad.numpy(), b.grad.numpy()))
    for mine, ref in zip(results[0], results[1], strict=True):
        np.testing.assert_allclose(mine, ref, rtol=RTOL[dtype], atol=0)
    a = mr.tensor(a_data, requires_grad=True)
    before = a * 2
    saved = before * before  # Mul saves before's array
    mr.nn.functional.relu(before, inplace=True)
    saved.sum().backward()  # d(before^2)/da = 8 a, from the array as it was: negative entries too
    np.testing.assert_allclose(a.grad.numpy(), 8 * a_data, rtol=RTOL[dtype])
    leaf = mr.tensor(a_data, requires_grad=True)
    with pytest.raises(mr.GraphError, match="relu: a leaf tensor that requires grad"):
        nn.ReLU(inplace=True)(leaf)
    np.testing.assert_array_equal(leaf.numpy(), a_data)  # unchanged
    with pytest.raises(RuntimeError, match="leaf"):
        torch.nn.ReLU(inplace=True)(torch.tensor(a_data, requires_grad=True))
    with pytest.raises(mr.DTypeError, match="relu: expected a numeric tensor, got dtype bool"):
        nn.ReLU(inplace=True)(mr.tensor([True, False]))


def test_constructor_errors() -> None:
    with pytest.raises(NotImplementedError, match="padding_mode='reflect'"):
        nn.Conv2d(1, 1, 3, padding_mode="reflect")
    with pytest.raises(ValueError, match="padding_mode"):
        nn.Conv2d(1, 1, 3, padding_mode="mirror")
    with pytest.raises(ValueError, match="in_channels must be divisible by groups"):
        nn.Conv2d(3, 4, 3, groups=2)
    with pytest.raises(ValueError, match="out_channels must be divisible by groups"):
        nn.Conv2d(4, 3, 3, groups=2)
    with pytest.raises(ValueError, match="strided"):
        nn.Conv2d(1, 1, 3, stride=2, padding="same")
    with pytest.raises(ValueError, match="approximate"):
        nn.GELU("erf")
    with pytest.raises(mr.ShapeError, match="conv2d"):
        nn.Conv2d(3, 4, 3)(mr.randn(1, 2, 5, 5))
    with pytest.raises(mr.DTypeError):  # a float32 layer on float64 input, as torch refuses it
        nn.Linear(2, 2)(mr.randn(1, 2, dtype=mr.float64))


def test_constructor_signatures_equal_torch(torch: ModuleType) -> None:
    import inspect

    for name in ["Conv2d", "Linear", "BatchNorm2d", "BatchNorm1d", "ReLU", "GELU", "Softmax", "LogSoftmax",
                 "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d", "Flatten", "Dropout", "CrossEntropyLoss",
                 "NLLLoss"]:  # fmt: skip
        ours = inspect.signature(getattr(nn, name).__init__).parameters
        theirs = inspect.signature(getattr(torch.nn, name).__init__).parameters
        assert [(p.name, p.default, p.kind) for p in ours.values()] == [
            (p.name, p.default, p.kind) for p in theirs.values()
        ], name


def test_module_gradcheck_through_layers() -> None:
    """Finite differences through a stack of layers (BatchNorm in training mode), float64."""
    mr.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(2, 3, 3, padding=1),
        nn.BatchNorm2d(3),
        nn.GELU(),
        nn.AvgPool2d(2),
        nn.Flatten(),
        nn.Linear(12, 2),
    ).double()
    x = mr.randn(3, 2, 4, 4, dtype=mr.float64, requires_grad=True)
    assert mr.gradcheck(lambda t: net(t), [x])


# ----- initialization --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "make",
    [
        lambda nn_: nn_.Conv2d(16, 32, 3),
        lambda nn_: nn_.Conv2d(8, 16, (1, 5), groups=4),
        lambda nn_: nn_.Linear(300, 200),
    ],
    ids=["conv", "conv_groups", "linear"],
)
def test_default_init_matches_torch_bounds(make: Any, torch: ModuleType) -> None:
    """kaiming_uniform_(a=sqrt(5)) weights and U(+-1/sqrt(fan_in)) bias, as torch: same bound, and a
    sample spread as a uniform on that bound is."""
    m, t = make(nn), make(torch.nn)
    fan_in = math.prod(t.weight.shape[1:])
    bound = 1 / math.sqrt(fan_in)
    for name in ("weight", "bias"):
        w, tw = getattr(m, name).numpy(), getattr(t, name).detach().numpy()
        assert w.dtype == np.float32 and w.shape == tw.shape
        assert np.abs(w).max() <= bound and np.abs(tw).max() <= bound
        if w.size > 1000:
            assert np.abs(w).max() > 0.99 * bound
            assert abs(w.std() / (bound / math.sqrt(3)) - 1) < 0.05
            assert abs(w.mean()) < 5 * bound / math.sqrt(3 * w.size)


def test_default_init_is_seeded() -> None:
    mr.manual_seed(7)
    a = nn.Conv2d(3, 4, 3).state_dict()
    mr.manual_seed(7)
    b = nn.Conv2d(3, 4, 3).state_dict()
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(nn.Conv2d(3, 4, 3).weight.numpy(), a["weight"])


def test_calculate_gain_and_fans_equal_torch(torch: ModuleType) -> None:
    cases = [("linear", None), ("conv2d", None), ("sigmoid", None), ("tanh", None), ("relu", None)]
    cases += [("leaky_relu", None), ("leaky_relu", 0.2), ("leaky_relu", math.sqrt(5)), ("selu", None)]
    for nl, param in cases:
        assert init.calculate_gain(nl, param) == torch.nn.init.calculate_gain(nl, param), nl
    with pytest.raises(ValueError):
        init.calculate_gain("swish")
    for shape in [(5, 3), (8, 4, 3, 3), (6, 2, 1, 5), (4, 3, 2)]:
        ours = init._calculate_fan_in_and_fan_out(mr.zeros(*shape))
        assert ours == torch.nn.init._calculate_fan_in_and_fan_out(torch.zeros(*shape)), shape
    with pytest.raises(ValueError, match="fewer than 2 dimensions"):
        init.kaiming_normal_(mr.zeros(5))
    with pytest.raises(ValueError, match="fan_avg"):
        init.kaiming_normal_(mr.zeros(5, 5), mode="fan_avg")


SHAPE = (256, 128, 3, 3)  # 294,912 samples: a std estimate is good to about 0.2%
FAN_IN, FAN_OUT = 128 * 9, 256 * 9


@pytest.mark.parametrize(
    "fill, std, bound",
    [
        (lambda t: init.kaiming_normal_(t), math.sqrt(2 / (1 + 0.01**2)) / math.sqrt(FAN_IN), None),
        (
            lambda t: init.kaiming_normal_(t, mode="fan_out", nonlinearity="relu"),
            math.sqrt(2 / FAN_OUT),
            None,
        ),
        (
            lambda t: init.kaiming_uniform_(t, a=math.sqrt(5)),
            1 / math.sqrt(3 * FAN_IN),
            1 / math.sqrt(FAN_IN),
        ),
        (
            lambda t: init.kaiming_uniform_(t, mode="fan_out", nonlinearity="relu"),
            math.sqrt(2 / FAN_OUT),
            math.sqrt(6 / FAN_OUT),
        ),
        (
            lambda t: init.xavier_uniform_(t),
            math.sqrt(2 / (FAN_IN + FAN_OUT)),
            math.sqrt(6 / (FAN_IN + FAN_OUT)),
        ),
        (lambda t: init.xavier_normal_(t, gain=2.0), 2 * math.sqrt(2 / (FAN_IN + FAN_OUT)), None),
        (lambda t: init.normal_(t, 0.0, 0.02), 0.02, None),
        (lambda t: init.uniform_(t, -0.3, 0.3), 0.6 / math.sqrt(12), 0.3),
    ],
    ids=[
        "kaiming_normal",
        "kaiming_normal_fan_out_relu",
        "kaiming_uniform_a5",
        "kaiming_uniform_fan_out",
        "xavier_uniform",
        "xavier_normal_gain2",
        "normal",
        "uniform",
    ],  # fmt: skip
)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_init_statistics(fill: Any, std: float, bound: float | None, dtype: str) -> None:
    p = nn.Parameter(mr.zeros(*SHAPE, dtype=dtype))
    data = p.data
    assert fill(p) is p
    assert p.data is data and p.dtype == np.dtype(dtype) and p.grad_fn is None and p.requires_grad
    w = p.numpy().astype(np.float64)
    n = w.size
    assert abs(w.std() / std - 1) < 0.01, (w.std(), std)
    assert abs(w.mean()) < 5 * std / math.sqrt(n)
    if bound is not None:
        assert np.abs(w).max() <= bound and np.abs(w).max() > 0.999 * bound


def test_init_shift_fill_and_truncation() -> None:
    from scipy import stats

    t = mr.zeros(200_000, dtype=mr.float64)
    init.normal_(t, mean=3.0, std=0.5)
    assert (
        abs(t.numpy().mean() - 3.0) < 5 * 0.5 / math.sqrt(t.numel()) and abs(t.numpy().std() / 0.5 - 1) < 0.01
    )
    init.uniform_(t, 2.0, 5.0)
    assert t.numpy().min() >= 2.0 and t.numpy().max() < 5.0 and abs(t.numpy().mean() - 3.5) < 0.01
    init.trunc_normal_(t, mean=0.5, std=1.0, a=-1.0, b=1.5)
    ref = stats.truncnorm(-1.5, 1.0, loc=0.5, scale=1.0)
    w = t.numpy()
    assert w.min() >= -1.0 and w.max() <= 1.5
    assert (
        abs(w.mean() - ref.mean()) < 5 * ref.std() / math.sqrt(w.size) and abs(w.std() / ref.std() - 1) < 0.01
    )
    assert init.constant_(t, 0.25) is t and np.all(t.numpy() == 0.25)
    assert np.all(init.ones_(t).numpy() == 1) and np.all(init.zeros_(t).numpy() == 0)
    mr.manual_seed(11)
    a = init.kaiming_normal_(mr.zeros(4, 5)).numpy()
    mr.manual_seed(11)
    np.testing.assert_array_equal(init.kaiming_normal_(mr.zeros(4, 5)).numpy(), a)


@pytest.mark.parametrize(
    "layout", [None, "nchw", "rows", "rows_stacked", "nhwc", "winograd", "winograd3", "winograd4", "taps"]
)
def test_an_empty_batch_goes_through_convs_and_pools(torch: ModuleType, layout: Any) -> None:
    """A batch of no images: conv2d in every layout, max pooling with its argmax (return_indices, and a
    gradient), average and adaptive pooling give PyTorch's empty outputs and empty gradients."""
    from minires.grad_mode import conv_layout

    x_np = np.zeros((0, 4, 8, 8), dtype=np.float32)
    w_np = np.ones((4, 4, 3, 3), dtype=np.float32)
    x, w = mr.tensor(x_np, requires_grad=True), mr.tensor(w_np, requires_grad=True)
    with conv_layout(layout):
        y = mr.nn.functional.conv2d(x, w, padding=1)
    pooled, indices = mr.nn.functional.max_pool2d(y, 3, 2, 1, return_indices=True)
    out = mr.nn.functional.avg_pool2d(pooled, 2) + mr.nn.functional.adaptive_avg_pool2d(pooled, 2)
    out.sum().backward()
    xt, wt = torch.tensor(x_np, requires_grad=True), torch.tensor(w_np, requires_grad=True)
    yt = torch.nn.functional.conv2d(xt, wt, padding=1)
    pt, it = torch.nn.functional.max_pool2d(yt, 3, 2, 1, return_indices=True)
    ot = torch.nn.functional.avg_pool2d(pt, 2) + torch.nn.functional.adaptive_avg_pool2d(pt, 2)
    ot.sum().backward()
    for a, b in ((y, yt), (pooled, pt), (indices, it), (out, ot), (x.grad, xt.grad), (w.grad, wt.grad)):
        assert a.shape == tuple(b.shape)
    np.testing.assert_array_equal(w.grad.numpy(), wt.grad.numpy())  # zeros: no image contributes
