"""The Tensor class: creation and its dtype rules, properties, conversions, shape methods, indexing,
operators with Tensors/arrays/scalars on either side, dtype promotion, in-place updates and repr.

Where the behaviour is PyTorch's, each test computes the same thing with torch and compares value,
dtype and gradient.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import minires as mr

RNG = np.random.default_rng(1234)


def torch_dtype(torch: Any, dtype: Any) -> Any:
    """torch's dtype of the same name as a NumPy dtype (float32 -> torch.float32, bool -> torch.bool)."""
    return getattr(torch, np.dtype(dtype).name)


def dtype_name(dtype: Any) -> str:
    """ "float32" for np.float32, mr.float32 and torch.float32 alike."""
    return str(dtype).removeprefix("torch.")


def pair(torch: Any, array: np.ndarray, backend: str = "cpu", requires_grad: bool = False) -> tuple[Any, Any]:
    """The same data as a minires Tensor (on ``backend``) and a torch tensor."""
    return (
        mr.tensor(array, device=backend, requires_grad=requires_grad),
        torch.tensor(array, requires_grad=requires_grad),
    )


def assert_same(mine: mr.Tensor, ref: Any, rtol: float = 1e-6, atol: float = 1e-6) -> None:
    """Same shape, dtype and values as the torch tensor ``ref``."""
    assert isinstance(mine, mr.Tensor)
    assert mine.shape == tuple(ref.shape)
    assert dtype_name(mine.dtype) == dtype_name(ref.dtype)
    np.testing.assert_allclose(mine.numpy(), ref.detach().numpy(), rtol=rtol, atol=atol)


# ----- creation and dtype rules -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (1.5, "float32"),
        ([1.0, 2.0], "float32"),
        ([[1.0, 2.0], [3.0, 4.0]], "float32"),
        ([1, 2.5], "float32"),
        ([], "float32"),
        (3, "int64"),
        ([[1, 2], [3, 4]], "int64"),
        (True, "bool"),
        ([True, False], "bool"),
        (np.array([1.0, 2.0]), "float64"),
        (np.array([1.0, 2.0], dtype=np.float32), "float32"),
        (np.array([1, 2]), "int64"),
        (np.array([1, 2], dtype=np.int32), "int32"),
        (np.array([True]), "bool"),
    ],
    ids=lambda v: repr(v) if not isinstance(v, np.ndarray) else f"ndarray-{v.dtype}",
)
def test_tensor_default_dtype_matches_torch(torch: Any, data: Any, expected: str) -> None:
    t = mr.tensor(data)
    assert dtype_name(t.dtype) == expected
    assert dtype_name(torch.tensor(data).dtype) == expected
    np.testing.assert_array_equal(t.numpy(), np.asarray(data))
    assert t.shape == tuple(torch.tensor(data).shape)


@pytest.mark.parametrize(
    "scalar",
    [np.float64(1.5), np.float32(1.5), np.int32(3), np.int64(3)],
    ids=lambda s: type(s).__name__,
)
def test_tensor_from_numpy_scalar_keeps_its_dtype_as_torch(torch: Any, scalar: Any) -> None:
    # A NumPy scalar (what arr.mean() or arr[0] gives) carries a dtype, as an array does.
    t = mr.tensor(scalar)
    assert t.shape == ()
    assert dtype_name(t.dtype) == dtype_name(torch.tensor(scalar).dtype)


@pytest.mark.parametrize("dtype", ["float64", np.float64, mr.float64, np.dtype("float64")], ids=repr)
def test_tensor_dtype_argument_forms(dtype: Any) -> None:
    for data in ([1, 2, 3], [1.5, 2.5], np.array([1.0, 2.0], dtype=np.float32), 2):
        t = mr.tensor(data, dtype=dtype)
        assert t.dtype == mr.float64
        np.testing.assert_array_equal(t.numpy(), np.asarray(data, dtype=np.float64))


def test_tensor_dtype_argument_converts_like_torch(torch: Any) -> None:
    data = [1.7, -1.2, 0.0]
    for dtype in (mr.int64, mr.int32, mr.float32, mr.bool_):
        mine = mr.tensor(data, dtype=dtype)
        ref = torch.tensor(data, dtype=torch_dtype(torch, dtype))
        assert dtype_name(mine.dtype) == dtype_name(ref.dtype)
        np.testing.assert_array_equal(mine.numpy(), ref.numpy())


def test_tensor_always_copies() -> None:
    src = np.array([1.0, 2.0, 3.0])
    for dtype in (None, np.float64, np.float32):
        t = mr.tensor(src, dtype=dtype)
        src[0] = 100.0
        assert t.numpy()[0] == 1.0
        src[0] = 1.0
    original = mr.tensor([1.0, 2.0])
    copy = mr.tensor(original)
    copy.data[0] = 5.0
    assert original.numpy().tolist() == [1.0, 2.0]
    assert not np.shares_memory(copy.data, original.data)


def test_tensor_requires_grad_argument() -> None:
    t = mr.tensor([1.0, 2.0], requires_grad=True)
    assert t.requires_grad and t.is_leaf and t.grad is None and t.grad_fn is None


@pytest.mark.parametrize(
    "make",
    [
        lambda: mr.tensor([1, 2], requires_grad=True),
        lambda: mr.tensor([True], requires_grad=True),
        lambda: mr.zeros(2, dtype=mr.int64, requires_grad=True),
        lambda: mr.ones(2, dtype="int32", requires_grad=True),
        lambda: mr.tensor([1, 2]).requires_grad_(),
    ],
)
def test_requires_grad_on_non_float_raises(make: Callable[[], Any]) -> None:
    with pytest.raises(mr.DTypeError, match="float"):
        make()


def test_requires_grad_setter_on_int_tensor_raises_runtime_error_like_torch(torch: Any) -> None:
    t = mr.tensor([1, 2])
    with pytest.raises(RuntimeError):
        t.requires_grad = True
    with pytest.raises(RuntimeError):
        torch.tensor([1, 2]).requires_grad = True
    assert not t.requires_grad


@pytest.mark.parametrize("name", ["zeros", "ones", "randn", "rand"])
@pytest.mark.parametrize(
    ("args", "shape"),
    [((2, 3), (2, 3)), (((2, 3),), (2, 3)), (([4, 1, 2],), (4, 1, 2)), ((5,), (5,)), (((),), ())],
)
def test_factory_shapes_and_default_dtype(torch: Any, name: str, args: tuple, shape: tuple) -> None:
    t = getattr(mr, name)(*args)
    assert t.shape == shape == tuple(getattr(torch, name)(*args).shape)
    assert t.dtype == mr.float32
    assert not t.requires_grad and t.is_leaf and t.device == "cpu"


@pytest.mark.parametrize("name", ["zeros", "ones", "randn", "rand"])
def test_factory_dtype_and_requires_grad(backend: str, name: str) -> None:
    fn = getattr(mr, name)
    t = fn(3, 2, dtype=mr.float64, device=backend, requires_grad=True)
    assert t.dtype == mr.float64 and t.shape == (3, 2) and t.device == backend
    assert t.requires_grad and t.is_leaf and t.grad_fn is None
    assert fn(2, dtype="float64").dtype == mr.float64
    assert fn(2, dtype=np.float64).dtype == mr.float64


def test_zeros_ones_values_and_int_dtype(torch: Any) -> None:
    assert_same(mr.zeros(2, 3), torch.zeros(2, 3))
    assert_same(mr.ones(2, 3), torch.ones(2, 3))
    assert_same(mr.zeros(4, dtype=mr.int64), torch.zeros(4, dtype=torch.int64))
    assert_same(mr.ones((2, 2), dtype=mr.bool_), torch.ones((2, 2), dtype=torch.bool))


def test_rand_and_randn_distribution() -> None:
    mr.manual_seed(0)
    u = mr.rand(20000).numpy()
    assert u.min() >= 0.0 and u.max() < 1.0
    assert abs(u.mean() - 0.5) < 0.02
    z = mr.randn(20000, dtype=mr.float64).numpy()
    assert z.dtype == np.float64
    assert abs(z.mean()) < 0.05 and abs(z.std() - 1.0) < 0.05


@pytest.mark.parametrize("name", ["randn", "rand"])
def test_random_factories_reject_integer_dtype(name: str) -> None:
    with pytest.raises(RuntimeError):
        getattr(mr, name)(3, dtype=mr.int64)


def test_manual_seed_reproducibility() -> None:
    mr.manual_seed(42)
    a, b = mr.randn(3, 4), mr.rand(5)
    mr.manual_seed(42)
    a2, b2 = mr.randn(3, 4), mr.rand(5)
    np.testing.assert_array_equal(a.numpy(), a2.numpy())
    np.testing.assert_array_equal(b.numpy(), b2.numpy())
    c = mr.randn(3, 4)
    assert not np.array_equal(a.numpy(), c.numpy())  # the stream moves on
    mr.manual_seed(43)
    assert not np.array_equal(a.numpy(), mr.randn(3, 4).numpy())


@pytest.mark.parametrize("name", ["zeros_like", "ones_like"])
def test_like_factories(torch: Any, name: str) -> None:
    src = mr.tensor(RNG.standard_normal((2, 3)), requires_grad=True)  # float64
    like = getattr(mr, name)(src)
    ref = getattr(torch, name)(torch.tensor(src.numpy(), requires_grad=True))
    assert_same(like, ref)
    assert not like.requires_grad and like.is_leaf  # requires_grad is not copied, as in torch
    ints = getattr(mr, name)(mr.tensor([[1, 2, 3]]))
    assert ints.dtype == mr.int64 and ints.shape == (1, 3)
    as32 = getattr(mr, name)(src, dtype=mr.float32)
    assert as32.dtype == mr.float32 and as32.shape == (2, 3)
    assert getattr(mr, name)(src, requires_grad=True).requires_grad


# ----- properties and conversions -----------------------------------------------------------------------
def test_properties_of_a_leaf_and_a_result() -> None:
    data = np.arange(6, dtype=np.float32).reshape(2, 3)
    x = mr.tensor(data, requires_grad=True)
    assert isinstance(x.data, np.ndarray)
    np.testing.assert_array_equal(x.data, data)
    assert x.grad is None
    assert x.shape == (2, 3) and type(x.shape) is tuple
    assert x.ndim == 2
    assert x.dtype == mr.float32 == np.float32
    assert x.device == "cpu"
    assert x.requires_grad is True
    assert x.grad_fn is None and x.is_leaf
    y = x * 2
    assert y.grad_fn is not None and not y.is_leaf and y.requires_grad
    z = mr.tensor([1.0]) * 2  # no input requires grad: a leaf, as in torch
    assert z.grad_fn is None and z.is_leaf and not z.requires_grad


def test_numpy_returns_a_copy() -> None:
    x = mr.tensor([[1.0, 2.0], [3.0, 4.0]])
    a = x.numpy()
    assert isinstance(a, np.ndarray) and a.dtype == np.float32
    a[0, 0] = 100.0
    assert x.numpy()[0, 0] == 1.0
    assert not np.shares_memory(x.numpy(), x.data)


def test_item() -> None:
    v = mr.tensor([[2.5]]).item()
    assert v == 2.5 and type(v) is float
    n = mr.tensor(7).item()
    assert n == 7 and type(n) is int
    b = mr.tensor([True]).item()
    assert b is True


def test_item_of_many_elements_raises_runtime_error_like_torch(torch: Any) -> None:
    with pytest.raises(RuntimeError):
        torch.tensor([1.0, 2.0]).item()
    with pytest.raises(RuntimeError, match=r"2"):
        mr.tensor([1.0, 2.0]).item()


def test_size_and_numel(torch: Any) -> None:
    x, ref = mr.zeros(2, 3, 4), torch.zeros(2, 3, 4)
    assert x.size() == tuple(ref.size()) == (2, 3, 4)
    for dim in (0, 1, 2, -1, -3):
        assert x.size(dim) == ref.size(dim)
    assert x.numel() == ref.numel() == 24
    assert mr.tensor(3.0).numel() == 1
    assert mr.zeros(0, 3).numel() == 0


def test_detach_shares_data_but_cuts_the_graph(torch: Any) -> None:
    x = mr.tensor([1.0, 2.0, 3.0], requires_grad=True)
    xd = x.detach()
    assert not xd.requires_grad and xd.is_leaf
    xd.data[0] = 10.0  # shares storage, as torch's detach does
    assert x.numpy()[0] == 10.0
    y = x * 2
    d = y.detach()
    assert not d.requires_grad and d.grad_fn is None and d.is_leaf
    assert np.shares_memory(d.data, y.data)
    (d * x).sum().backward()  # the path through d is not differentiated
    tx = torch.tensor([10.0, 2.0, 3.0], requires_grad=True)
    (((tx * 2).detach()) * tx).sum().backward()
    assert_same(x.grad, tx.grad)


def test_to_cpu_and_float_are_no_ops_when_nothing_changes() -> None:
    x = mr.tensor([1.0, 2.0], requires_grad=True)
    assert x.to("cpu") is x
    assert x.cpu() is x
    assert x.float() is x
    assert x.to(mr.float32) is x
    d = mr.tensor(np.array([1.0]))
    assert d.double() is d


@pytest.mark.parametrize(
    "convert",
    [
        lambda t: t.to(mr.float64),
        lambda t: t.to(np.float64),
        lambda t: t.to("float64"),
        lambda t: t.to("cpu", mr.float64),
        lambda t: t.to(device="cpu", dtype=mr.float64),
        lambda t: t.double(),
    ],
)
def test_to_float64(convert: Callable[[mr.Tensor], mr.Tensor]) -> None:
    x = mr.tensor([1.5, -2.25])
    y = convert(x)
    assert y.dtype == mr.float64 and y.device == "cpu"
    np.testing.assert_array_equal(y.numpy(), [1.5, -2.25])
    assert x.dtype == mr.float32


@pytest.mark.parametrize(
    ("src", "method"), [("float32", "double"), ("float64", "float"), ("float32", "to_float64")]
)
def test_casts_are_differentiable_and_grad_keeps_source_dtype(torch: Any, src: str, method: str) -> None:
    data = RNG.standard_normal((2, 3)).astype(src)
    x, tx = pair(torch, data, requires_grad=True)

    def cast(t: Any) -> Any:
        if method == "to_float64":
            return t.to(mr.float64 if isinstance(t, mr.Tensor) else torch.float64)
        return getattr(t, method)()

    y, ty = cast(x), cast(tx)
    assert_same(y, ty)
    assert y.grad_fn is not None
    (y * y).sum().backward()
    (ty * ty).sum().backward()
    assert x.grad.dtype == np.dtype(src)
    assert_same(x.grad, tx.grad, rtol=1e-5)


@pytest.mark.skipif(mr.cuda.is_available(), reason="checks the error raised without a GPU")
def test_to_cuda_without_gpu_raises_device_error() -> None:
    with pytest.raises(mr.DeviceError, match="cuda"):
        mr.ones(2).to("cuda")
    with pytest.raises(mr.DeviceError):
        mr.ones(2, device="cuda")


# ----- shape methods and indexing, forward and backward against torch -----------------------------------
SHAPE_METHODS: list[tuple[str, Callable[[Any], Any]]] = [
    ("reshape", lambda t: t.reshape(4, 6)),
    ("reshape_tuple", lambda t: t.reshape((6, 4))),
    ("reshape_minus1", lambda t: t.reshape(-1)),
    ("reshape_minus1_mid", lambda t: t.reshape(2, -1, 2)),
    ("view", lambda t: t.view(2, -1)),
    ("flatten", lambda t: t.flatten()),
    ("flatten_1", lambda t: t.flatten(1)),
    ("flatten_start_dim", lambda t: t.flatten(start_dim=-2)),
    ("permute", lambda t: t.permute(2, 0, 1)),
    ("permute_tuple", lambda t: t.permute((1, 2, 0))),
    ("permute_negative", lambda t: t.permute(-1, -3, -2)),
    ("transpose", lambda t: t.transpose(0, 2)),
    ("transpose_negative", lambda t: t.transpose(-1, 1)),
    ("getitem_int", lambda t: t[1]),
    ("getitem_negative", lambda t: t[-1, -2]),
    ("getitem_slices", lambda t: t[:, 1:3, ::2]),
    ("getitem_none_ellipsis", lambda t: t[None, ..., 1]),
    ("getitem_int_list_repeats", lambda t: t[[0, 1, 1, 0]]),
    ("getitem_int_array_repeats", lambda t: t[:, np.array([2, 0, 2])]),
    ("getitem_mixed", lambda t: t[1, [0, 2, 2], 1:]),
    ("getitem_mask", lambda t: t[t > 0]),
    ("getitem_two_lists", lambda t: t[[0, 1, 0], [2, 2, 2]]),
]


@pytest.mark.parametrize("method", [m for _, m in SHAPE_METHODS], ids=[n for n, _ in SHAPE_METHODS])
def test_shape_methods_and_indexing_match_torch(
    torch: Any, backend: str, method: Callable[[Any], Any]
) -> None:
    data = RNG.standard_normal((2, 3, 4))
    x, tx = pair(torch, data, backend, requires_grad=True)
    y, ty = method(x), method(tx)
    assert_same(y, ty, rtol=0, atol=0)
    g = RNG.standard_normal(tuple(ty.shape))
    y.backward(mr.tensor(g, device=backend))
    ty.backward(torch.tensor(g))
    assert_same(x.grad, tx.grad, rtol=0, atol=0)


@pytest.mark.parametrize("dim", [None, 0, 1, -1])
@pytest.mark.parametrize("keepdim", [False, True])
def test_argmax_matches_torch(torch: Any, dim: int | None, keepdim: bool) -> None:
    data = RNG.permutation(12).reshape(3, 4).astype(np.float32)  # no ties
    x, tx = pair(torch, data, requires_grad=True)
    mine, ref = x.argmax(dim, keepdim=keepdim), tx.argmax(dim, keepdim=keepdim)
    assert_same(mine, ref, rtol=0, atol=0)
    assert mine.dtype == mr.int64 and not mine.requires_grad and mine.grad_fn is None
    if dim is not None:
        assert_same(x.argmax(dim), tx.argmax(dim), rtol=0, atol=0)  # positional dim, as in torch


@pytest.mark.parametrize("dim", [0, 1, -1])
@pytest.mark.parametrize("keepdim", [False, True])
def test_max_dim_returns_values_and_indices_like_torch(torch: Any, dim: int, keepdim: bool) -> None:
    data = RNG.permutation(12).reshape(3, 4).astype(np.float64)
    x, tx = pair(torch, data, requires_grad=True)
    out, ref = x.max(dim, keepdim=keepdim), tx.max(dim, keepdim=keepdim)
    values, indices = out  # unpacks as a pair
    assert values is out.values and indices is out.indices
    assert_same(values, ref.values)
    assert_same(indices, ref.indices, rtol=0, atol=0)
    assert indices.dtype == mr.int64 and not indices.requires_grad
    g = RNG.standard_normal(tuple(ref.values.shape))
    values.backward(mr.tensor(g))
    ref.values.backward(torch.tensor(g))
    assert_same(x.grad, tx.grad)


def test_max_over_all_elements_matches_torch(torch: Any) -> None:
    data = RNG.permutation(12).reshape(3, 4).astype(np.float32)
    x, tx = pair(torch, data, requires_grad=True)
    m, tm = x.max(), tx.max()
    assert_same(m, tm)
    m.backward()
    tm.backward()
    assert_same(x.grad, tx.grad)


# ----- operators ----------------------------------------------------------------------------------------
BINARY_OPS = {
    "add": operator.add,
    "sub": operator.sub,
    "mul": operator.mul,
    "truediv": operator.truediv,
    "pow": operator.pow,
}


def _operand(kind: str, array: np.ndarray, backend: str, torch: Any) -> tuple[Any, Any]:
    """One operand for minires and the same one for torch; Tensor operands require grad."""
    if kind == "tensor":
        return pair(torch, array, backend, requires_grad=True)
    if kind == "array":
        return array, torch.tensor(array)
    value = float(array.reshape(-1)[0])
    return value, value


def _host_array_on_the_gpu(backend: str, left: str, right: str, call: Callable) -> bool:
    """On the GPU a NumPy array operand is refused, as PyTorch refuses it there (it cannot turn a CUDA
    tensor into a NumPy one); on the CPU it is taken. True when the case was the refused one."""
    if backend == "cpu" or "array" not in (left, right):
        return False
    with pytest.raises(mr.errors.DeviceError, match=r"NumPy array of shape .* \(host memory\)"):
        call()
    return True


@pytest.mark.parametrize("op", list(BINARY_OPS.values()), ids=list(BINARY_OPS))
@pytest.mark.parametrize(
    ("left", "right"),
    [
        ("tensor", "tensor"),
        ("tensor", "array"),
        ("array", "tensor"),
        ("tensor", "scalar"),
        ("scalar", "tensor"),
    ],
)
def test_binary_operators_match_torch(torch: Any, backend: str, op: Callable, left: str, right: str) -> None:
    # positive values in (0.5, 2): fine for division and for the base of a power
    a_data = RNG.uniform(0.5, 2.0, (3, 4)).astype(np.float32)
    b_data = RNG.uniform(0.5, 2.0, (1, 4)).astype(np.float32)
    a, ta = _operand(left, a_data, backend, torch)
    b, tb = _operand(right, b_data, backend, torch)
    if _host_array_on_the_gpu(backend, left, right, lambda: op(a, b)):
        return
    y, ty = op(a, b), op(ta, tb)
    assert isinstance(y, mr.Tensor)  # also for `ndarray op Tensor`
    assert y.device == backend
    assert_same(y, ty, rtol=1e-6)
    y.sum().backward()
    ty.sum().backward()
    for mine, ref in ((a, ta), (b, tb)):
        if isinstance(mine, mr.Tensor):
            assert_same(mine.grad, ref.grad, rtol=1e-5)


@pytest.mark.parametrize(("left", "right"), [("tensor", "tensor"), ("tensor", "array"), ("array", "tensor")])
def test_matmul_operator_matches_torch(torch: Any, backend: str, left: str, right: str) -> None:
    a, ta = _operand(left, RNG.standard_normal((2, 3, 4)), backend, torch)
    b, tb = _operand(right, RNG.standard_normal((4, 5)), backend, torch)
    if _host_array_on_the_gpu(backend, left, right, lambda: a @ b):
        return
    y, ty = a @ b, ta @ tb
    assert isinstance(y, mr.Tensor)
    assert_same(y, ty, rtol=1e-10)
    g = RNG.standard_normal((2, 3, 5))
    y.backward(mr.tensor(g, device=backend))
    ty.backward(torch.tensor(g))
    for mine, ref in ((a, ta), (b, tb)):
        if isinstance(mine, mr.Tensor):
            assert_same(mine.grad, ref.grad, rtol=1e-10)


@pytest.mark.parametrize("left", ["array", "scalar"])
@pytest.mark.parametrize("op", [operator.add, operator.sub, operator.mul, operator.truediv, operator.pow])
def test_reflected_operators_return_tensors(left: str, op: Callable) -> None:
    x = mr.tensor([[1.0, 2.0], [3.0, 4.0]])
    other = np.full((2, 2), 2.0, dtype=np.float32) if left == "array" else 2.0
    y = op(other, x)
    assert isinstance(y, mr.Tensor) and y.dtype == mr.float32
    np.testing.assert_allclose(y.numpy(), op(np.full((2, 2), 2.0), x.numpy()), rtol=1e-6)


def test_unary_minus_matches_torch(torch: Any, backend: str) -> None:
    data = RNG.standard_normal((2, 3)).astype(np.float32)
    x, tx = pair(torch, data, backend, requires_grad=True)
    y, ty = -x, -tx
    assert_same(y, ty, rtol=0, atol=0)
    (y * mr.tensor(data, device=backend)).sum().backward()
    (ty * torch.tensor(data)).sum().backward()
    assert_same(x.grad, tx.grad, rtol=0, atol=0)
    assert_same(-mr.tensor([1, -2]), -torch.tensor([1, -2]), rtol=0, atol=0)


COMPARISONS = [operator.eq, operator.ne, operator.lt, operator.le, operator.gt, operator.ge]


@pytest.mark.parametrize("op", COMPARISONS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("other_kind", ["tensor", "array", "scalar", "reflected_array", "reflected_scalar"])
def test_comparisons_give_bool_tensors_without_grad(torch: Any, op: Callable, other_kind: str) -> None:
    data = np.array([[0.0, 1.0, 2.0], [3.0, 1.0, -1.0]], dtype=np.float32)
    other_data = np.array([[1.0, 1.0, 0.0]], dtype=np.float32)
    x, tx = pair(torch, data, requires_grad=True)
    if other_kind == "tensor":
        o, to = pair(torch, other_data, requires_grad=True)
    elif other_kind.endswith("array"):
        o, to = other_data, torch.tensor(other_data)
    else:
        o = to = 1.0
    if other_kind.startswith("reflected"):
        y, ty = op(o, x), op(to, tx)
    else:
        y, ty = op(x, o), op(tx, to)
    assert isinstance(y, mr.Tensor)
    assert_same(y, ty, rtol=0, atol=0)
    assert y.dtype == mr.bool_
    assert not y.requires_grad and y.grad_fn is None and y.is_leaf


@pytest.mark.parametrize(
    ("left", "right"),
    [
        (np.ones(3, np.float32), 2.5),
        (np.ones(3, np.float32), 2),
        (np.ones(3, np.float64), 2.5),
        (np.ones(3, np.float32), np.ones(3, np.float64)),
        (np.ones(3, np.float64), np.ones(3, np.float32)),
        (np.ones(3, np.int64), 2.5),
        (2.5, np.ones(3, np.int64)),
        (np.ones(3, np.int64), 2),
        (np.ones(3, np.int64), np.ones(3, np.float32)),
        (np.ones(3, np.int64), np.ones(3, np.float64)),
        (np.ones(3, np.int32), 5),
        (np.ones(3, np.int32), np.ones(3, np.int64)),
        (np.ones(3, np.uint8), np.ones(3, np.int8)),
        (np.ones(3, bool), 1),
        (np.ones(3, bool), 1.5),
        (np.ones(3, bool), np.ones(3, bool)),
        (np.ones(3, np.float32), np.float64(2.5)),
    ],
    ids=lambda v: f"{v.dtype}{list(v.shape)}" if isinstance(v, np.ndarray) else f"{type(v).__name__}",
)
@pytest.mark.parametrize("op", [operator.add, operator.mul], ids=lambda f: f.__name__)
def test_dtype_promotion_matches_torch(torch: Any, left: Any, right: Any, op: Callable) -> None:
    def make(v: Any, lib: Any) -> Any:
        if isinstance(v, np.ndarray):
            return mr.tensor(v) if lib is mr else torch.tensor(v)
        return v

    assert_same(
        op(make(left, mr), make(right, mr)), op(make(left, torch), make(right, torch)), rtol=0, atol=0
    )


@pytest.mark.parametrize(
    ("left", "right"),
    [
        (np.ones(3, np.int64), np.full(3, 2, np.int64)),
        (np.ones(3, np.int64), 2),
        (3, np.full(3, 2, np.int64)),
        (np.ones(3, np.int32), np.full(3, 2, np.int32)),
        (np.ones(3, np.float64), np.full(3, 2, np.int64)),
    ],
    ids=["int64/int64", "int64/int", "int/int64", "int32/int32", "float64/int64"],
)
def test_true_division_dtype_matches_torch(torch: Any, left: Any, right: Any) -> None:
    def make(v: Any, lib: Any) -> Any:
        if isinstance(v, np.ndarray):
            return mr.tensor(v) if lib is mr else torch.tensor(v)
        return v

    assert_same(make(left, mr) / make(right, mr), make(left, torch) / make(right, torch))


@pytest.mark.parametrize(
    ("left", "right"),
    [
        (np.ones(3, np.float32), np.array(2.0)),  # a 0-d float64 tensor does not widen a float32 one
        (np.array(2.0), np.ones(3, np.float32)),
        (np.ones(3, np.int64), np.array(2.5)),  # but a 0-d float tensor does float an integer one
        (np.ones(3, np.int32), np.array(7)),
        (np.array(2.0, np.float32), np.array(3.0)),  # two 0-d tensors: ordinary promotion
    ],
    ids=["f32[3]+f64[]", "f64[]+f32[3]", "i64[3]+f64[]", "i32[3]+i64[]", "f32[]+f64[]"],
)
def test_zero_dim_tensor_promotion_matches_torch(torch: Any, left: np.ndarray, right: np.ndarray) -> None:
    # PyTorch: a 0-d tensor takes part in promotion only when it is of a higher kind than the others.
    assert_same(mr.tensor(left) + mr.tensor(right), torch.tensor(left) + torch.tensor(right), rtol=0, atol=0)


def test_mixed_dtype_gradients_come_back_in_each_inputs_dtype(torch: Any) -> None:
    a_data = RNG.standard_normal((2, 3)).astype(np.float32)
    b_data = RNG.standard_normal((2, 3))
    a, ta = pair(torch, a_data, requires_grad=True)
    b, tb = pair(torch, b_data, requires_grad=True)
    y, ty = a * b, ta * tb
    assert_same(y, ty)
    y.sum().backward()
    ty.sum().backward()
    assert_same(a.grad, ta.grad)
    assert_same(b.grad, tb.grad)


def test_power_dtypes_match_torch(torch: Any) -> None:
    i, ti = mr.tensor([2, 3]), torch.tensor([2, 3])
    for mine, ref in ((i**2, ti**2), (i**0.5, ti**0.5), (2**i, 2**ti), (2.0**i, 2.0**ti)):
        assert_same(mine, ref)


# ----- in-place updates ---------------------------------------------------------------------------------
def test_inplace_ops_inside_no_grad_match_torch(torch: Any) -> None:
    data = RNG.standard_normal((2, 3)).astype(np.float32)
    other = RNG.standard_normal((2, 3)).astype(np.float32)
    x, tx = pair(torch, data, requires_grad=True)
    with mr.no_grad():
        assert x.add_(mr.tensor(other)) is x
        assert x.mul_(2.0) is x
        assert x.add_(mr.tensor(other), alpha=-0.5) is x
        x.mul_(mr.tensor(other))
    with torch.no_grad():
        tx.add_(torch.tensor(other))
        tx.mul_(2.0)
        tx.add_(torch.tensor(other), alpha=-0.5)
        tx.mul_(torch.tensor(other))
    assert_same(x, tx, rtol=1e-6)
    assert x.requires_grad and x.is_leaf and x.grad_fn is None
    with mr.no_grad():
        assert x.zero_() is x
    assert np.all(x.numpy() == 0) and x.dtype == mr.float32


@pytest.mark.parametrize(
    "inplace",
    [lambda t: t.zero_(), lambda t: t.add_(1.0), lambda t: t.mul_(2.0), lambda t: t.add_(mr.ones(3))],
    ids=["zero_", "add_", "mul_", "add_tensor"],
)
def test_inplace_on_leaf_requiring_grad_outside_no_grad_raises(torch: Any, inplace: Callable) -> None:
    x = mr.tensor([1.0, 2.0, 3.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="in place|in-place|inplace"):
        inplace(x)
    with pytest.raises(mr.GraphError):
        inplace(x)
    assert x.numpy().tolist() == [1.0, 2.0, 3.0]  # unchanged
    with pytest.raises(RuntimeError):
        torch.tensor([1.0, 2.0, 3.0], requires_grad=True).add_(1.0)


def test_inplace_on_tensor_not_requiring_grad_works_anywhere() -> None:
    x = mr.tensor([1.0, 2.0, 3.0])
    x.add_(1.0).mul_(2.0)
    assert x.numpy().tolist() == [4.0, 6.0, 8.0]
    x.zero_()
    assert x.numpy().tolist() == [0.0, 0.0, 0.0]


INPLACE_OPERATORS = {
    "+=": operator.iadd,
    "-=": operator.isub,
    "*=": operator.imul,
    "/=": operator.itruediv,
}


@pytest.mark.parametrize("op", list(INPLACE_OPERATORS))
def test_inplace_operator_under_no_grad_is_the_manual_sgd_step(torch: Any, op: str) -> None:
    """``p -= lr * p.grad`` inside no_grad: the same object, the same array, torch's values."""
    fn = INPLACE_OPERATORS[op]
    data = RNG.uniform(0.5, 2.0, (3, 4))
    other = RNG.uniform(0.5, 2.0, (4,))  # broadcast along the first dimension
    p, tp = pair(torch, data, requires_grad=True)
    array = p.data
    with mr.no_grad():
        q = fn(p, mr.tensor(other))
        q = fn(q, 0.5)
    with torch.no_grad():
        fn(fn(tp, torch.tensor(other)), 0.5)
    assert q is p and p.data is array and p.is_leaf and p.requires_grad
    assert_same(p, tp, rtol=0, atol=0)


@pytest.mark.parametrize("op", list(INPLACE_OPERATORS))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_inplace_operator_on_non_leaf_is_recorded_like_torch(torch: Any, op: str, dtype: str) -> None:
    """``Y += X`` in a residual block's forward: every alias of Y sees the new value and the gradients of
    both inputs are torch's, the saved inputs of earlier ops untouched."""
    fn = INPLACE_OPERATORS[op]
    a_data = RNG.uniform(0.5, 2.0, (2, 3)).astype(dtype)
    b_data = RNG.uniform(0.5, 2.0, (2, 3)).astype(dtype)
    results = []
    for lib in (mr, torch):
        a = lib.tensor(a_data, requires_grad=True)
        b = lib.tensor(b_data, requires_grad=True)
        y = a * a  # saves a; y is a non-leaf
        alias = y
        y = fn(y, b)
        assert y is alias
        z = (y * y).sum() + y.sum()
        z.backward()
        results.append((y.detach().numpy().copy(), a.grad.numpy(), b.grad.numpy()))
    (y_m, ga_m, gb_m), (y_t, ga_t, gb_t) = results
    tol = 1e-6 if dtype == "float32" else 1e-13
    for mine, ref in ((y_m, y_t), (ga_m, ga_t), (gb_m, gb_t)):
        assert mine.dtype == ref.dtype
        np.testing.assert_allclose(mine, ref, rtol=tol, atol=tol)


def test_inplace_operator_into_a_tensor_that_needs_no_grad_joins_the_graph(torch: Any) -> None:
    """``acc = zeros(); acc += x`` with x requiring grad: acc joins the graph, as in torch."""
    x_data = RNG.standard_normal((2, 2))
    x, tx = pair(torch, x_data, requires_grad=True)
    acc, tacc = mr.zeros(2, 2, dtype=mr.float64), torch.zeros(2, 2, dtype=torch.float64)
    acc += x * 3
    tacc += tx * 3
    acc *= x
    tacc *= tx
    assert acc.requires_grad and not acc.is_leaf and acc.grad_fn is not None
    acc.sum().backward()
    tacc.sum().backward()
    assert_same(x.grad, tx.grad, rtol=1e-13, atol=1e-13)


def test_inplace_operator_errors() -> None:
    leaf = mr.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(mr.GraphError, match="add: a leaf tensor that requires grad"):
        leaf += 1.0
    assert leaf.numpy().tolist() == [1.0, 2.0]
    ints = mr.tensor([1, 2])
    with pytest.raises(mr.DTypeError, match="div: the result cannot be stored in place.*int64"):
        ints /= 2
    ints += 3  # integer arithmetic stays integer, as in torch
    assert ints.numpy().tolist() == [4, 5] and ints.dtype == mr.int64
    small = mr.zeros(3)
    with pytest.raises(
        mr.ShapeError, match=r"add: an operand of shape \(2, 3\) cannot be broadcast in place"
    ):
        small += mr.ones(2, 3)
    y = mr.tensor([1.0, 2.0, 3.0], requires_grad=True) * 2
    with pytest.raises(mr.ShapeError, match=r"mul: an operand of shape \(2, 3\)"):
        y *= mr.ones(2, 3)


# ----- repr ---------------------------------------------------------------------------------------------
def test_repr_matches_torch_for_plain_tensors(torch: Any) -> None:
    for data in ([1.0, 2.0], [[1, 2], [3, 4]], [True, False]):
        assert repr(mr.tensor(data)) == repr(torch.tensor(data))
    assert repr(mr.tensor([1.0, 2.0], requires_grad=True)) == repr(
        torch.tensor([1.0, 2.0], requires_grad=True)
    )


def test_repr_names_dtype_grad_fn_and_requires_grad() -> None:
    r = repr(mr.tensor(np.array([1.0, 2.0])))
    assert r.startswith("tensor([1., 2.]") and "float64" in r
    x = mr.tensor([1.0, 2.0], requires_grad=True)
    assert "requires_grad=True" in repr(x)
    y = x * 3
    r = repr(y)
    assert r.startswith("tensor([3., 6.]") and "grad_fn=" in r and "Mul" in r
    assert "grad_fn" not in repr(y.detach()) and "requires_grad" not in repr(y.detach())


NESTED_DATA = [
    [1.0, 2.0],
    [1, 2],
    [True, 2],
    [1, 2.5],
    [np.float64(1.0), 2.0],
    [np.float32(1.0), 2.0],
    [np.int32(1)],
    [np.int32(1), 2],
    [np.ones(2), np.ones(2)],
    [np.ones(2, np.float32), np.ones(2, np.float32)],
    [[1, 2], [3, 4.0]],
    [[np.float64(1.0)], [2.0]],
    [np.float16(1), 2.0],
    [np.uint8(1), np.int8(2)],
    (1.0, 2.0),
    [],
    [[]],
]


@pytest.mark.parametrize("data", NESTED_DATA, ids=repr)
def test_tensor_of_nested_data_takes_torchs_dtype(torch: Any, data: Any) -> None:
    """torch.tensor's inference: Python floats the default float32, ints int64, NumPy scalars and arrays
    in a list their own dtype, all promoted by category (a float64 NumPy value makes float64, a Python
    int beside a float stays float32)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's note that a list of arrays converts slowly
        ref = torch.tensor(data)
    mine = mr.tensor(data)
    assert dtype_name(mine.dtype) == dtype_name(ref.dtype)
    np.testing.assert_array_equal(mine.numpy(), ref.numpy())


def test_tensor_of_unsupported_data_names_its_dtype() -> None:
    for data in (["a"], [1 + 2j], [None]):
        with pytest.raises(mr.DTypeError, match="tensor: cannot make a tensor from data of dtype"):
            mr.tensor(data)


@pytest.mark.parametrize("join", ["cat", "stack"])
def test_cat_and_stack_promote_dtypes_as_torch(torch: Any, join: str) -> None:
    """torch.cat and torch.stack promote by category, not by NumPy's result_type: int64 with float32 is
    float32, uint8 with int8 int16; the gradient reaches each input in its own dtype."""
    names = ["bool", "uint8", "int8", "int32", "int64", "float16", "float32", "float64"]
    for a in names:
        for b in names:
            ta, tb = torch.ones(2, dtype=getattr(torch, a)), torch.ones(2, dtype=getattr(torch, b))
            ref = getattr(torch, join)([ta, tb])
            got = getattr(mr, join)([mr.tensor(np.ones(2, a)), mr.tensor(np.ones(2, b))])
            assert dtype_name(got.dtype) == dtype_name(ref.dtype), (a, b)
    x = mr.tensor([1, 2])
    w = mr.tensor([0.5, 1.5], requires_grad=True)
    y = getattr(mr, join)([x, w])
    assert y.dtype == mr.float32
    (y * mr.tensor(np.arange(4.0, dtype=np.float32).reshape(y.shape))).sum().backward()
    assert w.grad.dtype == mr.float32 and w.grad.shape == (2,)


@pytest.mark.parametrize("dim", [(), []])
@pytest.mark.parametrize("keepdim", [False, True])
@pytest.mark.parametrize("op", ["sum", "mean"])
def test_sum_and_mean_over_no_dims_reduce_every_dim(torch: Any, op: str, dim: Any, keepdim: bool) -> None:
    """dim=() (or []) means every dim in torch's sum and mean, not none of them."""
    data = RNG.standard_normal((2, 3, 4)).astype(np.float32)
    x, tx = pair(torch, data, requires_grad=True)
    y, ty = getattr(x, op)(dim=dim, keepdim=keepdim), getattr(tx, op)(dim=dim, keepdim=keepdim)
    assert y.shape == tuple(ty.shape)
    y.sum().backward()
    ty.sum().backward()
    assert_same(y, ty)
    assert_same(x.grad, tx.grad)


def test_size_of_a_dim_out_of_range_says_so_as_torch(torch: Any) -> None:
    for shape, dim in (((2, 3), 2), ((2, 3), -3), ((), 0), ((4,), 1)):
        with pytest.raises(IndexError) as theirs:
            torch.zeros(shape).size(dim)
        with pytest.raises(IndexError, match="Dimension") as mine:
            mr.zeros(shape).size(dim)
        assert str(mine.value) == str(theirs.value)
    assert mr.zeros(2, 3).size(-2) == 2 and mr.zeros(2, 3).size() == (2, 3)


def test_is_floating_point_as_torch(torch: Any) -> None:
    for dtype in ("bool", "uint8", "int32", "int64", "float16", "float32", "float64"):
        assert (
            mr.zeros(2, dtype=dtype).is_floating_point()
            == torch.zeros(2, dtype=getattr(torch, dtype)).is_floating_point()
        )


def _inplace_cases(lib: Any, w: Any, a: Any) -> dict[str, Any]:
    """The same in-place writes in either library: into a tensor that needs no grad of a value that does,
    and into a non-leaf; each case's result, to be summed and backpropagated."""
    out = {}
    buf = lib.zeros(2, 3, dtype=w.dtype)
    buf[0] = w * 2  # a leaf that needs no grad takes a value that does: it becomes a node
    out["setitem into zeros"] = buf
    acc = lib.zeros(3, dtype=w.dtype)
    acc.add_(w * 2, alpha=0.5)
    out["add_ with alpha"] = acc
    c = lib.ones(3, dtype=w.dtype)
    c.copy_(w)
    out["copy_"] = c
    y = a * 2
    y[0, 1:] = w[:2]  # into a non-leaf, a slice of it
    y.mul_(3)
    y.sub_(w)  # broadcast over rows
    out["non-leaf setitem, mul_, sub_"] = y
    z = a * a  # (torch refuses this after exp, whose backward reads its output; minires keeps values)
    z[a > 0] = 0.0  # a mask
    out["boolean mask"] = z
    f = a * 1
    f.fill_(w[0])  # a 0-d value that requires grad
    out["fill_"] = f
    zz = a * 1
    zz.zero_()
    out["zero_"] = zz
    return out


def test_inplace_writes_are_recorded_in_the_graph_as_torch(torch: Any) -> None:
    """PyTorch records an in-place write when the tensor or the value written requires grad: the gradient
    reaches the value, and the tensor's earlier value gets none where it was overwritten."""
    w0 = RNG.standard_normal(3)
    a0 = RNG.standard_normal((2, 3))
    w, a = mr.tensor(w0, requires_grad=True), mr.tensor(a0, requires_grad=True)
    tw, ta = torch.tensor(w0, requires_grad=True), torch.tensor(a0, requires_grad=True)
    mine, theirs = _inplace_cases(mr, w, a), _inplace_cases(torch, tw, ta)
    for (name, m), t in zip(mine.items(), theirs.values(), strict=True):
        assert m.requires_grad and m.grad_fn is not None and not m.is_leaf, name
        np.testing.assert_allclose(m.numpy(), t.detach().numpy(), rtol=1e-12, err_msg=name)
        weights = RNG.standard_normal(m.shape)
        for x, tx in ((w, tw), (a, ta)):
            x.grad = None
            tx.grad = None
        (m * mr.tensor(weights)).sum().backward()
        (t * torch.tensor(weights)).sum().backward()
        for x, tx, label in ((w, tw, "w"), (a, ta, "a")):
            expected = tx.grad
            got = x.grad
            if expected is None:
                assert got is None or not got.numpy().any(), f"{name}: {label}"
            else:
                np.testing.assert_allclose(
                    got.numpy(), expected.numpy(), rtol=1e-12, err_msg=f"{name}: {label}"
                )


def test_inplace_writes_into_a_leaf_that_requires_grad_are_refused(torch: Any) -> None:
    w = mr.tensor([1.0, 2.0], requires_grad=True)
    for write in (
        lambda: w.add_(1.0),
        lambda: w.mul_(2.0),
        lambda: w.zero_(),
        lambda: w.copy_(mr.ones(2)),
        lambda: w.__setitem__(0, 5.0),
    ):
        with pytest.raises(mr.GraphError, match="leaf tensor that requires grad"):
            write()
    np.testing.assert_array_equal(w.numpy(), [1.0, 2.0])
    with mr.no_grad():  # the optimizer's and init's way: the data itself
        w.mul_(2.0)
        w[0] = 0.0
    np.testing.assert_array_equal(w.numpy(), [0.0, 4.0])
    assert w.is_leaf and w.grad_fn is None


def test_set_item_gradcheck() -> None:
    """SetItem's backward against central differences: basic, advanced and boolean indices, a value
    broadcast over the indexed block."""
    x = mr.tensor(RNG.standard_normal((3, 4)), requires_grad=True)
    for index, v_shape in (((0, slice(1, 3)), (2,)), ((slice(None), 1), (1,)), (([0, 2], [1, 3]), (2,))):
        v = mr.tensor(RNG.standard_normal(v_shape), requires_grad=True)
        assert mr.gradcheck(lambda x, v, index=index: x._set_item(index, v) * 1.5, (x, v))
    mask = mr.tensor(RNG.standard_normal((3, 4)) > 0)
    v = mr.tensor(RNG.standard_normal(()), requires_grad=True)
    assert mr.gradcheck(lambda x, v: x._set_item(mask, v), (x, v))


def test_squeeze_takes_a_tuple_of_dims_as_torch(torch: Any) -> None:
    data = np.zeros((1, 3, 1, 4))
    x, tx = mr.tensor(data), torch.tensor(data)
    for dim in ((0, 2), (), (0, 1), [-2], 0, 1, (-1,)):
        assert x.squeeze(dim).shape == tuple(tx.squeeze(dim).shape), dim
    for bad in ((0, 0), (5,)):
        with pytest.raises(mr.ShapeError, match="squeeze"):
            x.squeeze(bad)
    assert mr.zeros(()).squeeze((0,)).shape == ()
    w = mr.tensor(RNG.standard_normal((1, 3, 1)), requires_grad=True)
    w.squeeze((0, 2)).sum().backward()
    assert w.grad.shape == (1, 3, 1)


@pytest.mark.parametrize("op", ["max", "min", "argmax", "argmin"])
def test_max_and_argmax_refuse_a_tuple_of_dims_as_torch(torch: Any, op: str) -> None:
    """torch.max(x, (0, 1)) is a TypeError; it must not reduce over the first dim alone."""
    data = np.arange(12.0).reshape(3, 4)
    with pytest.raises(TypeError):
        getattr(torch.tensor(data), op)((0, 1))
    with pytest.raises(TypeError, match=f"{op}: expected dim to be an int"):
        getattr(mr.tensor(data), op)((0, 1))
    got = getattr(mr.tensor(data), op)(np.int64(1))  # a NumPy int is an int
    ref = getattr(torch.tensor(data), op)(1)
    np.testing.assert_array_equal(
        (got.values if op in ("max", "min") else got).numpy(),
        (ref.values if op in ("max", "min") else ref).numpy(),
    )


@pytest.mark.parametrize("bounds", ["both", "min", "max", "crossed"])
def test_clamp_with_tensor_bounds_as_torch(torch: Any, bounds: str) -> None:
    """torch.clamp(x, min=lo, max=hi) with tensor bounds, broadcast: values and PyTorch's gradients to x
    and to each bound (ties at a bound included; where lo > hi the output is hi)."""
    rng = np.random.default_rng(5)
    x0, lo0, hi0 = (
        rng.standard_normal((3, 4)),
        rng.standard_normal(4) - 0.5,
        rng.standard_normal((3, 1)) + 0.5,
    )
    x0[0, 0], x0[1, 1] = lo0[0], hi0[1, 0]  # ties
    if bounds == "crossed":
        lo0, hi0 = hi0.reshape(3, 1) + 1.0, lo0
    kw = {"both": ("min", "max"), "min": ("min",), "max": ("max",), "crossed": ("min", "max")}[bounds]
    mine = [mr.tensor(a, requires_grad=True) for a in (x0, lo0, hi0)]
    theirs = [torch.tensor(a, requires_grad=True) for a in (x0, lo0, hi0)]
    y = mr.clamp(mine[0], **{k: mine[1 + ("min", "max").index(k)] for k in kw})
    ty = torch.clamp(theirs[0], **{k: theirs[1 + ("min", "max").index(k)] for k in kw})
    g = rng.standard_normal(tuple(ty.shape))
    y.backward(mr.tensor(g))
    ty.backward(torch.tensor(g))
    np.testing.assert_array_equal(y.numpy(), ty.detach().numpy())
    for m, t in zip(mine, theirs, strict=True):
        if t.grad is None:
            assert m.grad is None
        else:
            np.testing.assert_allclose(m.grad.numpy(), t.grad.numpy(), rtol=1e-12)
    x, lo = (mr.tensor(rng.standard_normal(s), requires_grad=True) for s in ((2, 3), (3,)))
    assert mr.gradcheck(lambda x, lo: x.clamp(min=lo, max=lo + 0.7), (x, lo))


def test_an_inplace_write_into_a_view_in_the_graph_is_refused_not_lost(torch: Any) -> None:
    """A recorded in-place op gives the tensor a new array, which the tensor it views would not see; torch
    tracks views (CopySlices), minires refuses them loudly rather than lose the write. Outside the graph a
    view's write reaches its base, as NumPy's does."""
    w = mr.tensor([1.0, 2.0], requires_grad=True)
    y = w * 2
    for write in (
        lambda: y[:1].mul_(10.0),
        lambda: y[:1].add_(w[:1]),
        lambda: y.reshape(2, 1).fill_(0.0),
        lambda: y.detach().copy_(w),
    ):
        with pytest.raises(mr.GraphError, match="view of another tensor"):
            write()
    np.testing.assert_array_equal(y.numpy(), [2.0, 4.0])
    buf = mr.zeros(2, 2)
    with pytest.raises(mr.GraphError, match="view of another tensor"):
        buf[0][1] = w[0] * 3  # chained indexing: write into buf itself, buf[0, 1] = ...
    buf[0, 1] = w[0] * 3
    assert buf.requires_grad and buf.numpy()[0, 1] == 3.0
    base = mr.zeros(3)
    base[1:].add_(mr.ones(2))  # no grad anywhere: the view writes through
    view = base.reshape(3)
    view.mul_(2.0)
    np.testing.assert_array_equal(base.numpy(), [0.0, 2.0, 2.0])


def test_set_item_takes_a_value_with_leading_ones_as_torch(torch: Any) -> None:
    """torch drops a value's leading 1s when it is written into a smaller block; the gradient comes back
    in the value's own shape."""
    for slot, shape in ((slice(0, 2), (1, 2)), (1, (1, 1)), (slice(None), (1, 1, 3))):
        w0 = RNG.standard_normal(shape)
        w, tw = mr.tensor(w0, requires_grad=True), torch.tensor(w0, requires_grad=True)
        buf, tbuf = mr.zeros(3, dtype="float64"), torch.zeros(3, dtype=torch.float64)
        buf[slot] = w * 2
        tbuf[slot] = tw * 2
        np.testing.assert_array_equal(buf.numpy(), tbuf.detach().numpy())
        (buf * mr.tensor([1.0, 2.0, 3.0])).sum().backward()
        (tbuf * torch.tensor([1.0, 2.0, 3.0])).sum().backward()
        assert w.grad.shape == shape
        np.testing.assert_array_equal(w.grad.numpy(), tw.grad.numpy())


def test_clamp_with_a_tensor_and_a_number_bound_keeps_x_dtype() -> None:
    assert mr.clamp(mr.tensor(1.0), 0.5, mr.tensor(2.0)).dtype == mr.float32
    assert mr.clamp(mr.tensor([1.0, 3.0]), mr.tensor([0.0, 0.0]), 2.5).dtype == mr.float32
