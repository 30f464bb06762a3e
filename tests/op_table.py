"""The op table: every differentiable op of minires, once, with what the table-driven tests need to know.

Modelled on PyTorch's OpInfo and Chainer's FunctionTestCase. The ops themselves are listed in the op
registry, minires/ops/registry.py (an op's ``Function`` classes, its public names, a small example); each
row here extends the registry entry of its name with what only the tests need (tests/test_registry.py
checks that every entry has a row and every row an entry). One row (``OpInfo``) per op lists:

    name        the name of the registry entry that the row extends (``row.entry``); error messages and
                the test ids print it
    op          the minires callable, ``op(*args, **kwargs)``; a dict {spelling: callable} when the op has
                several spellings (``F.relu``, ``mr.relu``, ``Tensor.relu``): each sample picks one; the
                public spellings among them are those of the entry's ``api``
    ref         its PyTorch twin, a callable on torch tensors with the same arguments (same dict keys)
    sample      a hypothesis strategy drawing a ``Sample``: shapes, parameters and the input values
    kinks       a predicate, True when a sample lies too close to a point where the op is not
                differentiable (ReLU at 0, a tie for a max) for finite differences to be valid there;
                the tests then resample with ``assume`` (as Chainer does)
    bad         ``BadInput`` cases: a call that must fail, its exception class and message substrings
    big         (a few rows) a strategy of large samples, checked with ``mr.directional_gradcheck``
    rtol32      the float32 tolerance against torch (looser for reductions, GEMM, conv); float64 is 1e-10
    stochastic  (dropout) a predicate, True when the output is random and is checked against its mask
    moves_device  (``to``) the output is on another device than the input

The three tests that read it: ``test_op_gradcheck.py`` (float64 central differences),
``test_op_torch.py`` (forward values and every input gradient against PyTorch, float32 and float64, on
each backend) and ``test_op_bad_input.py`` (clear errors on bad input). Adding an op means adding its
registry entry and its row.

Sample values are drawn by NumPy from a seed that hypothesis draws: the shapes and parameters shrink
as hypothesis values do, and a failing example replays exactly from its seed. Arrays are kept small,
because the finite-difference check costs two forward passes per input element.
"""

from __future__ import annotations

import importlib
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import minires as mr
import minires.nn.functional as F
from minires.errors import DeviceError, DTypeError, GraphError, ShapeError
from minires.ops import registry
from minires.ops.conv import conv_layout


class _TorchName:
    """A dotted name under ``torch`` (``torch.nn.functional.conv2d``), looked up only when called.

    The twins are written as ``torch.nn.functional.conv2d``, yet this module imports without torch:
    only ``test_op_torch.py`` calls them, after its ``torch`` fixture has checked that torch is there.
    """

    def __init__(self, path: str = "torch") -> None:
        self._path = path

    def __getattr__(self, name: str) -> _TorchName:
        if name.startswith("__"):
            raise AttributeError(name)
        return _TorchName(f"{self._path}.{name}")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        obj: Any = importlib.import_module("torch")
        for part in self._path.split(".")[1:]:
            obj = getattr(obj, part)
        return obj(*args, **kwargs)

    def __repr__(self) -> str:
        return self._path


torch = _TorchName()


def _functional(name: str) -> Callable[..., Any]:
    """``minires.nn.functional.<name>`` looked up at call time (the table loads before all are exported)."""

    def call(*args: Any, **kwargs: Any) -> Any:
        return getattr(F, name)(*args, **kwargs)

    call.__name__ = f"F.{name}"
    return call


def _method(name: str) -> Callable[..., Any]:
    """``x.<name>(*args, **kwargs)``: the Tensor-method spelling, the same for minires and torch."""

    def call(x: Any, *args: Any, **kwargs: Any) -> Any:
        return getattr(x, name)(*args, **kwargs)

    call.__name__ = f"Tensor.{name}"
    return call


# ----- samples -------------------------------------------------------------------------------------------
@dataclass
class Sample:
    """One call of an op, before its arrays become tensors.

    In ``args`` (and in ``kwargs``), a float NumPy array becomes a Tensor of the test's dtype, an integer
    or bool array an int64/bool Tensor (class targets, index arrays), a tuple or list is converted element
    by element, and anything else (a Python scalar, None, a slice) is passed as it is. ``grad`` lists the
    positions in ``args`` whose Tensors require a gradient; ``variant`` picks the spelling of the op.
    """

    args: tuple
    kwargs: dict = field(default_factory=dict)
    grad: tuple[int, ...] = ()
    variant: str = ""


@dataclass(frozen=True)
class BadInput:
    """A call that must fail: ``call(device)`` raises ``exc`` with each string of ``match`` in its message."""

    what: str
    call: Callable[[str], Any]
    exc: type[Exception]
    match: tuple[str, ...]


@dataclass(frozen=True)
class OpInfo:
    """One row of the table; the module docstring describes the fields."""

    name: str
    op: Callable[..., Any] | dict[str, Callable[..., Any]]
    ref: Callable[..., Any] | dict[str, Callable[..., Any]]
    sample: st.SearchStrategy[Sample]
    kinks: Callable[[Sample], bool] | None = None
    bad: tuple[BadInput, ...] = ()
    big: st.SearchStrategy[Sample] | None = None
    rtol32: float = 1e-5  # float32 against torch; float64 uses 1e-10. atol is rtol times the values' scale
    stochastic: Callable[[Sample], bool] | None = None  # True: the output is random (dropout with 0 < p < 1)
    moves_device: bool = False  # the output is on another device than the input (``to``)

    @property
    def entry(self) -> registry.Entry:
        """The registry entry this row extends: the op's Functions, public names and example."""
        return registry.get(self.name)

    def call(self, sample: Sample, *args: Any, **kwargs: Any) -> Any:
        return (self.op[sample.variant] if isinstance(self.op, dict) else self.op)(*args, **kwargs)

    def call_ref(self, sample: Sample, *args: Any, **kwargs: Any) -> Any:
        return (self.ref[sample.variant] if isinstance(self.ref, dict) else self.ref)(*args, **kwargs)


def to_minires(
    sample: Sample, dtype: Any, device: str = "cpu", grad: tuple[int, ...] | None = None
) -> tuple[list, dict]:
    """The sample's ``(args, kwargs)`` as minires Tensors of ``dtype`` on ``device`` (see ``Sample``)."""
    grad = sample.grad if grad is None else grad

    def convert(v: Any, requires_grad: bool = False) -> Any:
        if isinstance(v, np.ndarray):
            if v.dtype.kind == "f":
                return mr.tensor(v, dtype=dtype, device=device, requires_grad=requires_grad)
            return mr.tensor(v, device=device)
        if isinstance(v, (tuple, list)):
            return type(v)(convert(e) for e in v)
        return v

    args = [convert(a, i in grad) for i, a in enumerate(sample.args)]
    return args, {k: convert(v) for k, v in sample.kwargs.items()}


def to_torch(
    torch_module: Any, sample: Sample, dtype: Any, grad: tuple[int, ...] | None = None
) -> tuple[list, dict]:
    """The sample's ``(args, kwargs)`` as CPU torch tensors of ``dtype`` (a NumPy dtype or its name)."""
    grad = sample.grad if grad is None else grad

    def convert(v: Any, requires_grad: bool = False) -> Any:
        if isinstance(v, np.ndarray):
            arr = np.array(v, dtype=dtype if v.dtype.kind == "f" else v.dtype)
            return torch_module.from_numpy(arr).requires_grad_(requires_grad)
        if isinstance(v, (tuple, list)):
            return type(v)(convert(e) for e in v)
        return v

    args = [convert(a, i in grad) for i, a in enumerate(sample.args)]
    return args, {k: convert(v) for k, v in sample.kwargs.items()}


# ----- value and shape strategies ------------------------------------------------------------------------
RNG = st.integers(0, 2**32 - 1).map(np.random.default_rng)


def normal(rng: np.random.Generator, shape: tuple[int, ...], scale: float = 1.0) -> np.ndarray:
    return np.asarray(scale * rng.standard_normal(shape), dtype=np.float64)  # an array even when 0-d


def positive(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Values in [0.5, 2]: for log, sqrt and the base of pow."""
    return np.asarray(rng.uniform(0.5, 2.0, shape), dtype=np.float64)


def away_from_zero(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Either sign, |value| in [0.5, 2]: for a denominator."""
    sign = np.where(rng.random(shape) < 0.5, -1.0, 1.0)
    return np.asarray(sign * rng.uniform(0.5, 2.0, shape), dtype=np.float64)


def shapes(min_dims: int = 0, max_dims: int = 4, min_side: int = 1, max_side: int = 4) -> st.SearchStrategy:
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side, max_side=max_side)


def _maybe_negative(draw: Any, dim: int, ndim: int) -> int:
    """``dim`` (in [0, ndim)) or its negative spelling dim - ndim."""
    return dim - ndim if draw(st.booleans()) else dim


def _int_or_pair(draw: Any, a: int, b: int) -> int | tuple[int, int]:
    return a if a == b and draw(st.booleans()) else (a, b)


# ----- kink predicates: True rejects the sample ------------------------------------------------------------
KINK = 1e-4  # distance to a kink that finite differences with eps = 1e-6 cannot cross, with a wide margin


def _near(x: np.ndarray, points: list[float]) -> bool:
    return any(bool(np.any(np.abs(x - p) < KINK)) for p in points)


def _near_tie(windows: np.ndarray, largest: bool = True) -> bool:
    """True when, along the last axis, the two largest (or smallest) finite values nearly tie."""
    if windows.shape[-1] < 2 or windows.size == 0:
        return False
    s = np.sort(windows if largest else -windows, axis=-1)
    top, second = s[..., -1], s[..., -2]
    finite = np.isfinite(second)  # -inf: padding (a max pool's window may hold a single value)
    return bool(np.any(top[finite] - second[finite] < KINK))


def _pool_windows(
    x: np.ndarray, kernel: tuple, stride: tuple, padding: tuple, dilation: tuple, ceil_mode: bool
) -> np.ndarray:
    """Every pooling window of x (N, C, H, W) padded with -inf, flattened: (N, C, OH, OW, KH*KW)."""
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel, stride, padding, dilation
    oh = pool_output_size(x.shape[2], kh, sh, ph, dh, ceil_mode)
    ow = pool_output_size(x.shape[3], kw, sw, pw, dw, ceil_mode)
    span_h, span_w = dh * (kh - 1) + 1, dw * (kw - 1) + 1
    # Extra room on the bottom/right for ceil_mode's last, partial window.
    extra_h = max(0, (oh - 1) * sh + span_h - (x.shape[2] + 2 * ph))
    extra_w = max(0, (ow - 1) * sw + span_w - (x.shape[3] + 2 * pw))
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph + extra_h), (pw, pw + extra_w)), constant_values=-np.inf)
    win = np.lib.stride_tricks.sliding_window_view(xp, (span_h, span_w), axis=(2, 3))
    win = win[:, :, ::sh, ::sw][:, :, :oh, :ow][..., ::dh, ::dw]  # (N, C, OH, OW, KH, KW)
    return win.reshape(*win.shape[:4], kh * kw)


def pool_output_size(size: int, k: int, s: int, p: int, d: int, ceil_mode: bool) -> int:
    """PyTorch's pooling output size, with its rule that the last window must start inside the input."""
    span = size + 2 * p - d * (k - 1) - 1
    out = (-(-span // s) if ceil_mode else span // s) + 1
    if ceil_mode and (out - 1) * s >= size + p:
        out -= 1
    return out


# ----- elementwise ------------------------------------------------------------------------------------
def _scalar_of(values: Callable, rng: np.random.Generator, as_int: bool) -> float | int:
    v = float(values(rng, ()))
    if as_int:
        return int(math.copysign(max(1, round(abs(v))), v))  # a nonzero int, as a denominator needs
    return v


@st.composite
def unary_samples(draw: Any, values: Callable = normal, variants: tuple[str, ...] = ("",)) -> Sample:
    x = values(draw(RNG), draw(shapes()))
    return Sample((x,), grad=(0,), variant=draw(st.sampled_from(variants)))


@st.composite
def binary_samples(draw: Any, a_values: Callable = normal, b_values: Callable = normal) -> Sample:
    """Two operands whose shapes broadcast (0-d included); at most one of them a Python scalar."""
    a_shape, b_shape = draw(
        hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=4, max_side=3)
    ).input_shapes
    rng = draw(RNG)
    a, b = a_values(rng, a_shape), b_values(rng, b_shape)
    scalar = draw(st.sampled_from(["none", "none", "a", "b"]))
    if scalar == "a":
        a = _scalar_of(a_values, rng, draw(st.booleans()))
    elif scalar == "b":
        b = _scalar_of(b_values, rng, draw(st.booleans()))
    grad = tuple(i for i, v in enumerate((a, b)) if isinstance(v, np.ndarray))
    return Sample((a, b), grad=grad)


@st.composite
def pow_samples(draw: Any) -> Sample:
    """A positive base; the exponent a tensor, a Python float or int, or the base a Python scalar."""
    a_shape, b_shape = draw(
        hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=4, max_side=3)
    ).input_shapes
    rng = draw(RNG)
    form = draw(st.sampled_from(["tensor ** tensor", "tensor ** scalar", "scalar ** tensor"]))
    a, b = positive(rng, a_shape), np.asarray(rng.uniform(-2.0, 2.0, b_shape))
    if form == "tensor ** scalar":
        b = draw(st.sampled_from([2, 3, -1, 0.5, -1.5, float(rng.uniform(-2, 2))]))
    elif form == "scalar ** tensor":
        a = float(rng.uniform(0.5, 2.0))
    grad = tuple(i for i, v in enumerate((a, b)) if isinstance(v, np.ndarray))
    variant = draw(st.sampled_from(["a ** b", "Tensor.pow"])) if form != "scalar ** tensor" else "a ** b"
    return Sample((a, b), grad=grad, variant=variant)


@st.composite
def clamp_samples(draw: Any) -> Sample:
    """Number bounds (``Clamp``), or tensor bounds whose shapes broadcast with x's, each of the three
    requiring a gradient, crossed (lo > hi) at times (``ClampTensor``); either bound may be None."""
    variant = draw(st.sampled_from(["mr.clamp", "Tensor.clamp"]))
    if draw(st.booleans()):
        x = normal(draw(RNG), draw(shapes()))
        lo = draw(st.none() | st.floats(-1.5, 0.5))
        hi = draw(st.floats(-0.5, 1.5)) if lo is None else draw(st.none() | st.floats(-0.5, 1.5))
        kwargs = {k: v for k, v in (("min", lo), ("max", hi)) if v is not None}
        return Sample((x,), kwargs, grad=(0,), variant=variant)
    x_shape = draw(shapes())
    lo_shape, hi_shape = (  # x's shape, some axes 1 and some leading ones dropped
        tuple(1 if draw(st.booleans()) else n for n in x_shape)[draw(st.integers(0, len(x_shape))) :]
        for _ in range(2)
    )
    rng = draw(RNG)  # bounds that broadcast to x's shape (torch's output is x's shape)
    x, lo, hi = (
        np.asarray(normal(rng, shape) + shift)
        for shape, shift in ((x_shape, 0), (lo_shape, -0.5), (hi_shape, 0.5))
    )
    which = draw(st.sampled_from(["both", "both", "min", "max"]))
    lo, hi = (None, hi) if which == "max" else (lo, None) if which == "min" else (lo, hi)
    args = (x, lo, hi)
    return Sample(args, grad=tuple(i for i, a in enumerate(args) if a is not None), variant=variant)


def _clamp_kinks(s: Sample) -> bool:
    """x at a bound, or the two bounds equal (where the output switches from one input to another)."""
    if len(s.args) == 1:
        return _near(s.args[0], [v for v in s.kwargs.values()])
    x, lo, hi = s.args
    pairs = [(x, b) for b in (lo, hi) if b is not None] + (
        [(lo, hi)] if lo is not None and hi is not None else []
    )
    return any(bool(np.any(np.abs(np.subtract(a, b)) < KINK)) for a, b in pairs)


@st.composite
def maximum_samples(draw: Any, spellings: tuple[str, ...]) -> Sample:
    """Two tensors whose shapes broadcast (torch.maximum takes no Python scalar), some of their values
    tied at times (each operand then gets half of g, as in PyTorch), a NaN at times."""
    a_shape, b_shape = draw(
        hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=4, max_side=3)
    ).input_shapes
    rng = draw(RNG)
    a, b = normal(rng, a_shape), normal(rng, b_shape)
    special = draw(st.sampled_from(["none", "none", "ties", "nan"]))
    if special == "ties" and np.broadcast_shapes(a_shape, b_shape) == a_shape:  # b's values copied into a
        a = np.where(rng.random(a_shape) < 0.5, np.broadcast_to(b, a_shape), a)
    if special == "nan" and a.size:
        a = a.copy()
        a.reshape(-1)[0] = np.nan
    return Sample((a, b), grad=(0, 1), variant=draw(st.sampled_from(spellings)))


def _maximum_kinks(s: Sample) -> bool:
    """Ties (no derivative there) and NaNs: compared with torch, not with finite differences."""
    a, b = s.args
    return bool(np.any(np.abs(np.subtract(a, b)) < 1e-3) or np.isnan(a).any() or np.isnan(b).any())


def _relu_kinks(s: Sample) -> bool:
    return _near(s.args[0], [0.0])


@st.composite
def gelu_samples(draw: Any) -> Sample:
    x = normal(draw(RNG), draw(shapes()), scale=2.0)
    approximate = draw(st.sampled_from([None, "none", "tanh"]))
    return Sample((x,), {} if approximate is None else {"approximate": approximate}, grad=(0,))


# ----- matmul, linear ---------------------------------------------------------------------------------
@st.composite
def matmul_samples(draw: Any, max_side: int = 4, max_batch_side: int = 3) -> Sample:
    """1-d and 2-d operands, and batches of matrices whose batch shapes broadcast."""
    a_nd, b_nd = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    batch_a, batch_b = draw(
        hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=2, max_side=max_batch_side)
    ).input_shapes
    m, k, n = (draw(st.integers(1, max_side)) for _ in range(3))
    # Trailing parts of two broadcastable batch shapes still broadcast.
    a_shape = (k,) if a_nd == 1 else batch_a[max(0, len(batch_a) - (a_nd - 2)) :] + (m, k)
    b_shape = (k,) if b_nd == 1 else batch_b[max(0, len(batch_b) - (b_nd - 2)) :] + (k, n)
    rng = draw(RNG)
    variant = draw(st.sampled_from(["mr.matmul", "a @ b", "Tensor.matmul"]))
    return Sample((normal(rng, a_shape), normal(rng, b_shape)), grad=(0, 1), variant=variant)


@st.composite
def linear_samples(
    draw: Any, max_features: int = 4, max_lead_side: int = 3, max_lead_dims: int = 2
) -> Sample:
    """Input (*, in) with 0 to 2 leading dims, weight (out, in), bias (out,) or None."""
    lead = draw(shapes(min_dims=0, max_dims=max_lead_dims, max_side=max_lead_side))
    fin, fout = draw(st.integers(1, max_features)), draw(st.integers(1, max_features))
    rng = draw(RNG)
    x, w = normal(rng, lead + (fin,)), normal(rng, (fout, fin)) / math.sqrt(fin)
    b = normal(rng, (fout,)) if draw(st.booleans()) else None
    return Sample((x, w, b), grad=(0, 1) if b is None else (0, 1, 2))


# ----- reductions -------------------------------------------------------------------------------------
@st.composite
def _dims(draw: Any, ndim: int, allow_tuple: bool = True, allow_none: bool = True) -> Any:
    """None, an int dim, or a tuple of distinct dims, each possibly negative."""
    nd = max(ndim, 1)
    kinds = ["int"] + (["none"] if allow_none else []) + (["tuple"] if allow_tuple and ndim > 0 else [])
    kind = draw(st.sampled_from(kinds))
    if kind == "none":
        return None
    if kind == "int":
        return _maybe_negative(draw, draw(st.integers(0, nd - 1)), nd)
    dims = draw(st.lists(st.integers(0, ndim - 1), min_size=1, max_size=ndim, unique=True))
    return tuple(_maybe_negative(draw, d, ndim) for d in dims)


@st.composite
def sum_mean_samples(draw: Any, spellings: tuple[str, str]) -> Sample:
    shape = draw(shapes(max_dims=4))
    x = normal(draw(RNG), shape)
    dim = draw(_dims(len(shape)))
    kwargs: dict[str, Any] = {} if dim is None else {"dim": dim}
    if draw(st.booleans()):
        kwargs.update(dim=dim, keepdim=draw(st.booleans()))  # torch wants an explicit dim=None with keepdim
    return Sample((x,), kwargs, grad=(0,), variant=draw(st.sampled_from(spellings)))


@st.composite
def max_min_samples(draw: Any, spellings: tuple[str, str]) -> Sample:
    shape = draw(shapes(max_dims=4))
    x = normal(draw(RNG), shape)
    dim = draw(_dims(len(shape), allow_tuple=False))
    kwargs: dict[str, Any] = {} if dim is None else {"dim": dim, "keepdim": draw(st.booleans())}
    return Sample((x,), kwargs, grad=(0,), variant=draw(st.sampled_from(spellings)))


def _extreme_kinks(largest: bool) -> Callable[[Sample], bool]:
    """Ties (or near-ties) for the max (min) over all elements or along ``dim``."""

    def kinks(s: Sample) -> bool:
        x, dim = s.args[0], s.kwargs.get("dim")
        if dim is None or x.ndim == 0:
            return _near_tie(x.reshape(-1), largest)
        return _near_tie(np.moveaxis(x, dim, -1), largest)

    return kinks


def _values(out: Any) -> Any:
    """The values of ``max(x, dim)``'s (values, indices) pair (minires's namedtuple or torch's structseq)."""
    return out[0] if isinstance(out, tuple) else out


def _reducer(fn: Callable[..., Any]) -> Callable[..., Any]:
    return lambda x, **kw: _values(fn(x, **kw))


@st.composite
def topk_samples(draw: Any) -> Sample:
    """Any shape with a dim to select along, k from 0 to its size, largest or smallest, dim given or not."""
    shape = draw(shapes(min_dims=1, max_dims=4))
    x = normal(draw(RNG), shape)
    d = draw(st.integers(0, len(shape) - 1))
    kwargs: dict[str, Any] = {"k": draw(st.integers(0, shape[d]))}
    if d != len(shape) - 1 or draw(st.booleans()):
        kwargs["dim"] = _maybe_negative(draw, d, len(shape))
    if draw(st.booleans()):
        kwargs["largest"] = draw(st.booleans())
    if draw(st.booleans()):
        kwargs["sorted"] = True  # sorted=False leaves torch's order open
    return Sample((x,), kwargs, grad=(0,), variant=draw(st.sampled_from(["mr.topk", "Tensor.topk"])))


def _topk_kinks(s: Sample) -> bool:
    """Two values along the dim nearly equal: the selection (or its order) could flip between them."""
    x = np.moveaxis(s.args[0], s.kwargs.get("dim", -1), -1)
    gaps = np.diff(np.sort(x, axis=-1), axis=-1)
    return bool(np.any(gaps < KINK))


# ----- softmax, log_softmax ---------------------------------------------------------------------------
@st.composite
def softmax_samples(draw: Any, spellings: tuple[str, ...]) -> Sample:
    shape = draw(shapes(max_dims=4))
    x = normal(draw(RNG), shape, scale=2.0)
    dim = draw(_dims(len(shape), allow_tuple=False, allow_none=False))
    return Sample((x,), {"dim": dim}, grad=(0,), variant=draw(st.sampled_from(spellings)))


# ----- shape ops --------------------------------------------------------------------------------------
def _prime_factors(n: int) -> list[int]:
    out, p = [], 2
    while n > 1:
        while n % p == 0:
            out.append(p)
            n //= p
        p += 1
    return out


@st.composite
def reshape_samples(draw: Any) -> Sample:
    """A target shape with the same number of elements, from a random grouping of its prime factors,
    sometimes with size-1 dims and one -1."""
    shape = draw(shapes(max_dims=4))
    x = normal(draw(RNG), shape)
    factors = _prime_factors(int(np.prod(shape)))
    ndim = draw(st.integers(1 if factors else 0, 4))
    target = [1] * ndim
    for f in factors:
        target[draw(st.integers(0, ndim - 1))] *= f
    if target and draw(st.booleans()):
        target[draw(st.integers(0, ndim - 1))] = -1
    spellings = ["Tensor.reshape(*shape)", "Tensor.reshape(shape)", "Tensor.view(*shape)", "mr.reshape"]
    return Sample((x,), {"shape": tuple(target)}, grad=(0,), variant=draw(st.sampled_from(spellings)))


@st.composite
def flatten_samples(draw: Any) -> Sample:
    shape = draw(shapes(max_dims=4))
    x = normal(draw(RNG), shape)
    nd = max(len(shape), 1)
    start = draw(st.integers(0, nd - 1))
    end = draw(st.integers(start, nd - 1))
    args: tuple = (x,)
    if draw(st.booleans()):
        args += (_maybe_negative(draw, start, nd),)
        if draw(st.booleans()):
            args += (_maybe_negative(draw, end, nd),)
    return Sample(args, grad=(0,), variant=draw(st.sampled_from(["mr.flatten", "Tensor.flatten"])))


@st.composite
def expand_samples(draw: Any) -> Sample:
    """A target shape with up to two new leading dims, each size-1 dim of x broadcast to 1 to 3, and -1
    (keep the size) at some of x's dims."""
    shape = draw(shapes(max_dims=3, max_side=3))
    target = [draw(st.integers(1, 3)) for _ in range(draw(st.integers(0, 2)))]
    for n in shape:
        target.append(-1 if draw(st.booleans()) else draw(st.integers(1, 3)) if n == 1 else n)
    x = normal(draw(RNG), shape)
    variant = draw(st.sampled_from(["Tensor.expand(*shape)", "Tensor.expand(shape)"]))
    return Sample((x,), {"shape": tuple(target)}, grad=(0,), variant=variant)


@st.composite
def permute_samples(draw: Any) -> Sample:
    shape = draw(shapes(max_dims=4))
    dims = tuple(_maybe_negative(draw, d, len(shape)) for d in draw(st.permutations(range(len(shape)))))
    spellings = ["Tensor.permute(dims)", "mr.permute"] + (["Tensor.permute(*dims)"] if dims else [])
    x = normal(draw(RNG), shape)
    return Sample((x,), {"dims": dims}, grad=(0,), variant=draw(st.sampled_from(spellings)))


@st.composite
def transpose_samples(draw: Any) -> Sample:
    shape = draw(shapes(min_dims=1, max_dims=4))
    nd = len(shape)
    d0, d1 = (_maybe_negative(draw, draw(st.integers(0, nd - 1)), nd) for _ in range(2))
    x = normal(draw(RNG), shape)
    return Sample((x, d0, d1), grad=(0,), variant=draw(st.sampled_from(["Tensor.transpose", "mr.transpose"])))


@st.composite
def unsqueeze_samples(draw: Any) -> Sample:
    shape = draw(shapes(max_dims=3))
    dim = _maybe_negative(draw, draw(st.integers(0, len(shape))), len(shape) + 1)
    x = normal(draw(RNG), shape)
    return Sample((x, dim), grad=(0,), variant=draw(st.sampled_from(["Tensor.unsqueeze", "mr.unsqueeze"])))


@st.composite
def squeeze_samples(draw: Any) -> Sample:
    shape = draw(shapes(max_dims=4, max_side=2))  # many dims of size 1
    nd = len(shape)
    args: tuple = (normal(draw(RNG), shape),)
    if draw(st.booleans()):
        args += (_maybe_negative(draw, draw(st.integers(0, max(nd, 1) - 1)), max(nd, 1)),)
    return Sample(args, grad=(0,), variant=draw(st.sampled_from(["Tensor.squeeze", "mr.squeeze"])))


@st.composite
def _basic_index(draw: Any, n: int) -> int | slice:
    """An int (negative ones too) or a slice with any bounds (out of range ones too) and a positive step."""
    if draw(st.booleans()):
        return draw(st.integers(-n, n - 1))
    bound = st.none() | st.integers(-n - 1, n + 1)
    return slice(draw(bound), draw(bound), draw(st.sampled_from([None, 1, 2, 3])))


@st.composite
def getitem_samples(draw: Any) -> Sample:
    """Basic indexing (ints, slices with steps, None, ...), integer arrays with repeats, boolean masks."""
    shape = draw(shapes(min_dims=1, max_dims=3, max_side=5))
    rng = draw(RNG)
    x = normal(rng, shape)
    kind = draw(st.sampled_from(["basic", "int array", "bool mask", "bool rows"]))
    if kind == "basic":
        k = draw(st.integers(1, len(shape)))
        index: Any = [draw(_basic_index(n)) for n in shape[:k]]
        if draw(st.booleans()):
            index.insert(draw(st.integers(0, len(index))), None)
        if draw(st.booleans()) and k < len(shape):
            index = [Ellipsis] + [draw(_basic_index(n)) for n in shape[len(shape) - k :]]
        index = tuple(index) if len(index) > 1 or draw(st.booleans()) else index[0]
    elif kind == "int array":
        d = draw(st.integers(0, len(shape) - 1))
        idx_shape = draw(shapes(min_dims=1, max_dims=2, max_side=4))
        idx = rng.integers(-shape[d], shape[d], size=idx_shape)
        idx.reshape(-1)[-1] = idx.reshape(-1)[0]  # at least one repeat when it has two entries
        index = (slice(None),) * d + (idx,) if d or draw(st.booleans()) else idx
    elif kind == "bool mask":
        index = rng.random(shape) < 0.5
    else:
        index = rng.random(shape[0]) < 0.5
    return Sample((x, index), grad=(0,))


def _without_int_arrays(s: Sample) -> bool:
    """An index of no integer array: one that names no element twice (PyTorch leaves a repeated write
    undefined)."""
    items = s.args[1] if isinstance(s.args[1], tuple) else (s.args[1],)
    return not any(isinstance(i, np.ndarray) and i.dtype.kind in "iu" for i in items)


@st.composite
def setitem_samples(draw: Any) -> Sample:
    """getitem's indices (basic, boolean masks) written with a value that broadcasts to the indexed block:
    some of its axes 1, some leading ones dropped. Both x and the value require a gradient."""
    s = draw(getitem_samples().filter(_without_int_arrays))
    x, index = s.args
    block = x[index].shape
    v_shape = tuple(1 if draw(st.booleans()) else n for n in block)[draw(st.integers(0, len(block))) :]
    return Sample((x, index, np.asarray(normal(draw(RNG), v_shape))), grad=(0, 2))


def _assign(x: Any, index: Any, v: Any) -> Any:
    """x[index] = v on a non-leaf copy of x, in either library: the write recorded in the graph."""
    y = x * 1
    y[index] = v
    return y


@st.composite
def cat_samples(draw: Any) -> Sample:
    nd = draw(st.integers(1, 3))
    base = list(draw(shapes(min_dims=nd, max_dims=nd, max_side=3)))
    dim = draw(st.integers(0, nd - 1))
    rng = draw(RNG)
    xs = []
    for _ in range(draw(st.integers(1, 4))):
        base[dim] = draw(st.integers(1, 3))
        xs.append(normal(rng, tuple(base)))
    grad = tuple(i for i in range(len(xs)) if i == 0 or draw(st.booleans()))
    kwargs = {"dim": _maybe_negative(draw, dim, nd)}
    return Sample(tuple(xs), kwargs, grad=grad, variant=draw(st.sampled_from(["list", "tuple"])))


@st.composite
def stack_samples(draw: Any) -> Sample:
    shape = draw(shapes(max_dims=3, max_side=3))
    nd = len(shape) + 1
    rng = draw(RNG)
    xs = tuple(normal(rng, shape) for _ in range(draw(st.integers(1, 4))))
    grad = tuple(i for i in range(len(xs)) if i == 0 or draw(st.booleans()))
    kwargs = {"dim": _maybe_negative(draw, draw(st.integers(0, nd - 1)), nd)}
    return Sample(xs, kwargs, grad=grad, variant=draw(st.sampled_from(["list", "tuple"])))


@st.composite
def pad_samples(draw: Any) -> Sample:
    """Widths for the last 1 to ndim dims, from -1 (a crop) to 2 on each side, never emptying a dim; the
    value left out, None or a number; mode left out or "constant"."""
    shape = draw(shapes(min_dims=1, max_dims=4, max_side=3))
    widths: list[int] = []
    for n in reversed(shape[len(shape) - draw(st.integers(1, len(shape))) :]):
        before = draw(st.integers(max(-1, 1 - n), 2))
        widths += [before, draw(st.integers(max(-1, 1 - n - before), 2))]
    kwargs: dict[str, Any] = {}
    if draw(st.booleans()):
        kwargs["mode"] = "constant"
    if draw(st.booleans()):
        kwargs["value"] = draw(st.sampled_from([None, 0.0, 1.5, -2.0]))
    return Sample((normal(draw(RNG), shape), tuple(widths)), kwargs, grad=(0,))


# ----- conv, pools ------------------------------------------------------------------------------------
@st.composite
def conv2d_samples(
    draw: Any, max_n: int = 2, max_channels: int = 4, max_k: int = 3, max_extra: int = 3, max_groups: int = 3
) -> Sample:
    """Groups dividing both channel counts, non-square kernel/stride/padding/dilation, bias or not,
    padding "same"/"valid" when the stride is 1, unbatched (C, H, W) inputs too; the padded input
    always at least as large as the dilated kernel. The Winograd layout takes only 3x3 kernels with
    stride 1, no dilation and one group: its samples are mostly those (the rest test its fallback)."""
    layout = draw(st.sampled_from(list(CONV_LAYOUTS)))
    winograd = layout.startswith("winograd") and draw(st.integers(0, 3)) > 0
    groups = 1 if winograd else draw(st.integers(1, max_groups))
    per_group = max(1, max_channels // groups)
    cin, cout = groups * draw(st.integers(1, per_group)), groups * draw(st.integers(1, per_group))
    kh, kw = (3, 3) if winograd else (draw(st.integers(1, max_k)), draw(st.integers(1, max_k)))
    sh, sw = (1, 1) if winograd else (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    ph, pw = draw(st.integers(0, 2)), draw(st.integers(0, 2))
    dh, dw = (1, 1) if winograd else (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    padding: Any = _int_or_pair(draw, ph, pw)
    if (sh, sw) == (1, 1) and draw(st.integers(0, 3)) == 0:
        padding = draw(st.sampled_from(["same", "valid"]))
        ph, pw = (0, 0) if padding == "valid" else (dh * (kh - 1) // 2, dw * (kw - 1) // 2)
    h_min, w_min = max(1, dh * (kh - 1) + 1 - 2 * ph), max(1, dw * (kw - 1) + 1 - 2 * pw)
    h, w = draw(st.integers(h_min, h_min + max_extra)), draw(st.integers(w_min, w_min + max_extra))
    batch = () if draw(st.integers(0, 4)) == 0 else (draw(st.integers(1, max_n)),)
    rng = draw(RNG)
    x = normal(rng, batch + (cin, h, w))
    weight = normal(rng, (cout, cin // groups, kh, kw), scale=1 / math.sqrt(cin // groups * kh * kw))
    bias = normal(rng, (cout,)) if draw(st.booleans()) else None
    kwargs: dict[str, Any] = {}
    if (sh, sw) != (1, 1) or draw(st.booleans()):
        kwargs["stride"] = _int_or_pair(draw, sh, sw)
    if padding not in (0, (0, 0)) or draw(st.booleans()):
        kwargs["padding"] = padding
    if (dh, dw) != (1, 1) or draw(st.booleans()):
        kwargs["dilation"] = _int_or_pair(draw, dh, dw)
    if groups > 1:
        kwargs["groups"] = groups
    return Sample((x, weight, bias), kwargs, grad=(0, 1) if bias is None else (0, 1, 2), variant=layout)


@st.composite
def pool2d_samples(
    draw: Any, max_n: int = 2, max_c: int = 3, max_k: int = 3, max_extra: int = 4, dilation: bool = False
) -> Sample:
    """Kernel, stride (None means the kernel), padding <= kernel/2, ceil_mode, (max pool) dilation;
    (N, C, H, W) and unbatched (C, H, W) inputs."""
    kh, kw = draw(st.integers(1, max_k)), draw(st.integers(1, max_k))
    stride = draw(st.none() | st.tuples(st.integers(1, 3), st.integers(1, 3)))
    ph, pw = draw(st.integers(0, kh // 2)), draw(st.integers(0, kw // 2))
    dh, dw = (draw(st.integers(1, 2)), draw(st.integers(1, 2))) if dilation else (1, 1)
    ceil_mode = draw(st.booleans())
    h_min, w_min = max(1, dh * (kh - 1) + 1 - 2 * ph), max(1, dw * (kw - 1) + 1 - 2 * pw)
    h, w = draw(st.integers(h_min, h_min + max_extra)), draw(st.integers(w_min, w_min + max_extra))
    batch = () if draw(st.integers(0, 4)) == 0 else (draw(st.integers(1, max_n)),)
    x = normal(draw(RNG), batch + (draw(st.integers(1, max_c)), h, w))
    kwargs: dict[str, Any] = {"kernel_size": _int_or_pair(draw, kh, kw)}
    if stride is not None:
        kwargs["stride"] = _int_or_pair(draw, *stride)
    if (ph, pw) != (0, 0) or draw(st.booleans()):
        kwargs["padding"] = _int_or_pair(draw, ph, pw)
    if (dh, dw) != (1, 1):
        kwargs["dilation"] = _int_or_pair(draw, dh, dw)
    if ceil_mode:
        kwargs["ceil_mode"] = True
    return Sample((x,), kwargs, grad=(0,))


CONV_LAYOUTS = {
    "per_layer": None,
    "nchw": "nchw",
    "rows": "rows",
    "rows_stacked": "rows_stacked",
    "nhwc": "nhwc",
    "winograd": "winograd",
    "winograd3": "winograd3",
    "winograd4": "winograd4",
    "taps": "taps",
}


def _conv2d_in_layout(layout: str) -> Callable[..., Any]:
    """F.conv2d with its unfold layout forced (minires.ops.conv.conv_layout); "per_layer" is the default."""

    def call(*args: Any, **kwargs: Any) -> Any:
        with conv_layout(CONV_LAYOUTS[layout]):
            return F.conv2d(*args, **kwargs)

    call.__name__ = f"F.conv2d[{layout}]"
    return call


def _torch_conv2d(*args: Any, **kwargs: Any) -> Any:
    """torch's conv2d, without its UserWarning that padding="same" with an even kernel copies the input."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Using padding='same'", category=UserWarning)
        return torch.nn.functional.conv2d(*args, **kwargs)


def _pair_of(v: int | tuple[int, int]) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else tuple(v)


def _max_pool_kinks(s: Sample) -> bool:
    """A near-tie for the max of some window (a non-differentiable point of max_pool2d), or a window
    of padding only (dilation can skip over a small input): its output is -inf, without a derivative
    (minires then gives 0, like torch's forward; torch 2.13's CPU backward aborts the process there)."""
    x = s.args[0] if s.args[0].ndim == 4 else s.args[0][None]
    kernel = _pair_of(s.kwargs["kernel_size"])
    stride = _pair_of(s.kwargs.get("stride", kernel))
    padding, dilation = _pair_of(s.kwargs.get("padding", 0)), _pair_of(s.kwargs.get("dilation", 1))
    windows = _pool_windows(x, kernel, stride, padding, dilation, s.kwargs.get("ceil_mode", False))
    return bool(np.isneginf(windows).all(axis=-1).any()) or _near_tie(windows)


@st.composite
def adaptive_pool_samples(draw: Any, max_hw: int = 7, max_n: int = 2, max_c: int = 3) -> Sample:
    """Any output size: ones that divide the input, ones that do not, ones larger than the input, None
    (keep that size); (N, C, H, W) and unbatched (C, H, W) inputs."""
    batch = () if draw(st.integers(0, 4)) == 0 else (draw(st.integers(1, max_n)),)
    h, w = draw(st.integers(1, max_hw)), draw(st.integers(1, max_hw))
    oh, ow = draw(st.integers(1, h + 2)), draw(st.integers(1, w + 2))
    x = normal(draw(RNG), batch + (draw(st.integers(1, max_c)), h, w))
    output_size: Any = _int_or_pair(draw, oh, ow)
    if isinstance(output_size, tuple) and draw(st.integers(0, 4)) == 0:
        output_size = draw(st.sampled_from([(None, ow), (oh, None)]))
    return Sample((x,), {"output_size": output_size}, grad=(0,))


# ----- batch_norm, dropout, cross_entropy -------------------------------------------------------------
@st.composite
def batch_norm_samples(draw: Any, max_n: int = 4, max_c: int = 3, max_hw: int = 3) -> Sample:
    """(N, C), (N, C, L) and (N, C, H, W) inputs; training (with or without running stats) and eval;
    affine or not."""
    training = draw(st.booleans())
    c = draw(st.integers(1, max_c))
    spatial = tuple(draw(st.integers(1, max_hw)) for _ in range(draw(st.sampled_from([0, 1, 2, 2]))))
    n_min = 2 if training and int(np.prod(spatial)) == 1 else 1  # training needs 2 values per channel
    n = draw(st.integers(n_min, max_n))
    rng = draw(RNG)
    x = 1.5 * normal(rng, (n, c) + spatial) + normal(rng, (1, c) + (1,) * len(spatial))
    stats = not training or draw(st.booleans())
    running_mean = normal(rng, (c,)) if stats else None
    running_var = positive(rng, (c,)) if stats else None
    weight = normal(rng, (c,)) if draw(st.booleans()) else None
    bias = normal(rng, (c,)) if draw(st.booleans()) else None
    kwargs: dict[str, Any] = {"training": training}
    if draw(st.booleans()):
        kwargs["momentum"] = draw(st.sampled_from([0.0, 0.5, 1.0, 0.3]))
    if draw(st.booleans()):
        kwargs["eps"] = draw(st.sampled_from([1e-3, 1e-1]))
    grad = (0,) + tuple(i for i in (3, 4) if (weight, bias)[i - 3] is not None)
    return Sample((x, running_mean, running_var, weight, bias), kwargs, grad=grad)


@st.composite
def batch_norm_relu_samples(draw: Any, max_n: int = 4, max_c: int = 3, max_hw: int = 3) -> Sample:
    """batch_norm's samples, with a residual of x's shape (requiring grad) or None after bias."""
    s = draw(batch_norm_samples(max_n, max_c, max_hw))
    x = s.args[0]
    residual = normal(draw(RNG), x.shape) if draw(st.booleans()) else None
    grad = s.grad + ((5,) if residual is not None else ())
    return Sample((*s.args, residual), s.kwargs, grad=grad)


def _batch_norm_relu(
    x: Any, running_mean: Any, running_var: Any, weight: Any, bias: Any, residual: Any, **kw: Any
) -> Any:
    """minires.ops.norm.batch_norm_relu with the residual in the arguments (so that it can require grad)."""
    from minires.ops.norm import batch_norm_relu

    return batch_norm_relu(x, running_mean, running_var, weight, bias, residual=residual, **kw)


def _torch_batch_norm_relu(
    x: Any, running_mean: Any, running_var: Any, weight: Any, bias: Any, residual: Any, **kw: Any
) -> Any:
    """Its PyTorch twin: relu(batch_norm(x, ...) + residual), the three ops."""
    y = torch.nn.functional.batch_norm(x, running_mean, running_var, weight, bias, **kw)
    return torch.relu(y if residual is None else y + residual)


def _batch_norm_relu_kinks(s: Sample) -> bool:
    """The ReLU's input, batch norm's output plus the residual (float64), near 0."""
    x, running_mean, running_var, weight, bias, residual = s.args
    eps = s.kwargs.get("eps", 1e-5)
    axes = (0, *range(2, x.ndim))
    bshape = (1, -1) + (1,) * (x.ndim - 2)
    if s.kwargs["training"]:
        mu, var = x.mean(axis=axes, keepdims=True), x.var(axis=axes, keepdims=True)
    else:
        mu, var = running_mean.reshape(bshape), running_var.reshape(bshape)
    y = (x - mu) / np.sqrt(var + eps)
    y = y * (1.0 if weight is None else weight.reshape(bshape)) + (
        0.0 if bias is None else bias.reshape(bshape)
    )
    return _near(y if residual is None else y + residual, [0.0])


@st.composite
def sync_batch_norm_samples(draw: Any, max_n: int = 4, max_c: int = 3, max_hw: int = 3) -> Sample:
    """batch_norm's training samples, for sync_batch_norm on one rank (all_reduce=None), which is then
    F.batch_norm(..., training=True)."""
    return draw(batch_norm_samples(max_n, max_c, max_hw).filter(lambda s: s.kwargs["training"]))


def _sync_batch_norm(x: Any, running_mean: Any, running_var: Any, weight: Any, bias: Any, **kw: Any) -> Any:
    """minires.ops.sync_norm.sync_batch_norm on one rank, with batch_norm's arguments (training=True)."""
    from minires.ops.sync_norm import sync_batch_norm

    assert kw.pop("training")
    return sync_batch_norm(x, running_mean, running_var, weight, bias, **kw)


@st.composite
def group_norm_samples(draw: Any, max_n: int = 3, max_per_group: int = 3, max_hw: int = 3) -> Sample:
    """(N, C), (N, C, L) and (N, C, H, W) inputs with C = groups * channels per group, at least 2 values
    per group (one value has x_hat = 0, whose gradient 0 torch's float32 rounds to 3e-5); weight and bias,
    weight only or neither (torch 2.13's backward fails for a bias without a weight)."""
    groups, per_group = draw(st.integers(1, 3)), draw(st.integers(1, max_per_group))
    spatial = tuple(draw(st.integers(1, max_hw)) for _ in range(draw(st.sampled_from([0, 1, 2, 2]))))
    if per_group * int(np.prod(spatial)) == 1:
        per_group = 2
    c = groups * per_group
    rng = draw(RNG)
    n = draw(st.integers(1, max_n))
    x = 1.5 * normal(rng, (n, c) + spatial) + normal(rng, (n, c) + (1,) * len(spatial))
    xg = x.reshape(n, groups, -1)  # spread each group to a std of at least 0.5: with a tiny variance,
    mu, sd = xg.mean(axis=2, keepdims=True), xg.std(axis=2, keepdims=True)  # torch's float32 loses digits
    x = (mu + (xg - mu) * np.where(sd < 0.5, 0.5 / np.maximum(sd, 1e-3), 1.0)).reshape(x.shape)
    weight = normal(rng, (c,)) if draw(st.booleans()) else None
    bias = normal(rng, (c,)) if weight is not None and draw(st.booleans()) else None
    kwargs: dict[str, Any] = {}
    if draw(st.booleans()):
        kwargs["eps"] = draw(st.sampled_from([1e-3, 1e-1]))
    grad = (0,) + tuple(i for i in (2, 3) if (weight, bias)[i - 2] is not None)
    return Sample((x, groups, weight, bias), kwargs, grad=grad)


@st.composite
def dropout_samples(draw: Any) -> Sample:
    """p = 0, p = 1 or training=False are deterministic (compared with torch); 0 < p < 1 is random."""
    x = normal(draw(RNG), draw(shapes(max_dims=4)))
    p = draw(st.sampled_from([0.0, 0.2, 0.5, 0.9, 1.0]))
    kwargs = {"p": p, "training": draw(st.booleans()), "seed": draw(st.integers(0, 2**16))}
    return Sample((x,), kwargs, grad=(0,))


def _dropout(x: Any, p: float, training: bool, seed: int) -> Any:
    """Dropout under ``mr.manual_seed(seed)``: the same mask on every call, as gradcheck needs."""
    mr.manual_seed(seed)
    return F.dropout(x, p=p, training=training)


def _torch_dropout(x: Any, p: float, training: bool, seed: int) -> Any:
    return torch.nn.functional.dropout(x, p=p, training=training)


@st.composite
def cross_entropy_samples(
    draw: Any,
    max_n: int = 3,
    max_c: int = 4,
    max_hw: int = 3,
    smoothing: bool = True,
    probabilities: bool = True,
) -> Sample:
    """Input (N, C), (N, C, H, W) or unbatched (C,); class-index targets (N,), (N, H, W) or () with
    class weights and ignore_index (never every target ignored), or class-probability targets of the
    input's shape (which get a gradient too); reduction none/mean/sum; label_smoothing."""
    n, c = draw(st.integers(1, max_n)), draw(st.integers(2, max_c))
    layout = draw(st.sampled_from(["(N, C)", "(N, C, H, W)", "(C,)"]))
    spatial = (draw(st.integers(1, max_hw)), draw(st.integers(1, max_hw))) if layout == "(N, C, H, W)" else ()
    shape = (c,) if layout == "(C,)" else (n, c) + spatial
    rng = draw(RNG)
    x = normal(rng, shape, scale=2.0)
    kwargs: dict[str, Any] = {}
    if probabilities and draw(st.booleans()):
        logits = normal(rng, shape, scale=2.0)
        target = np.exp(logits) / np.exp(logits).sum(axis=0 if layout == "(C,)" else 1, keepdims=True)
        grad: tuple[int, ...] = (0, 1)
    else:
        target = np.asarray(rng.integers(0, c, size=shape[:1] + shape[2:] if layout != "(C,)" else ()))
        grad = (0,)
        if draw(st.booleans()) and target.size > 1:
            flat = target.reshape(-1)
            ignore = int(flat[0])
            keep = (ignore + 1) % c  # one target that is never ignored
            target = np.where(rng.random(target.shape) < 0.4, ignore, target)
            target.reshape(-1)[0] = keep
            kwargs["ignore_index"] = ignore
    if draw(st.booleans()):
        kwargs["reduction"] = draw(st.sampled_from(["none", "mean", "sum"]))
    if smoothing and draw(st.booleans()):
        kwargs["label_smoothing"] = draw(st.sampled_from([0.0, 0.1, 0.5, 1.0]))
    if draw(st.booleans()):
        kwargs["weight"] = positive(rng, (c,))
    return Sample((x, target), kwargs, grad=grad)


# ----- bad-input helpers ------------------------------------------------------------------------------
def t(*shape: int, device: str = "cpu", dtype: Any = mr.float32, requires_grad: bool = False) -> mr.Tensor:
    """A tensor of ones of ``shape`` for the bad-input calls."""
    return mr.ones(*shape, dtype=dtype, device=device, requires_grad=requires_grad)


def labels(values: list, device: str) -> mr.Tensor:
    return mr.tensor(values, device=device)


def not_a_tensor(op: Callable[..., Any], name: str) -> BadInput:
    """A Python list where a Tensor belongs."""
    return BadInput("a list instead of a Tensor", lambda d: op([1.0, 2.0]), TypeError, (name, "list"))


def unbroadcastable(name: str, op: Callable[[Any, Any], Any]) -> BadInput:
    return BadInput(
        "shapes that do not broadcast",
        lambda d: op(t(2, 3, device=d), t(4, device=d)),
        ShapeError,
        (name, "(2, 3)", "(4,)"),
    )


def _backward_without_gradient(d: str) -> None:
    (t(2, 3, device=d, requires_grad=True) * 2).backward()


def _backward_twice(d: str) -> None:
    y = (t(2, 3, device=d, requires_grad=True) * t(2, 3, device=d)).sum()
    y.backward()
    y.backward()


# ----- the table --------------------------------------------------------------------------------------
def _binary_row(name: str, fn: Callable[[Any, Any], Any], **kw: Any) -> OpInfo:
    return OpInfo(
        name,
        fn,
        fn,
        kw.pop("sample", binary_samples()),
        bad=(unbroadcastable(name, fn),) + kw.pop("bad", ()),
        **kw,
    )


def _unary_row(name: str, spellings: dict, ref: dict, values: Callable = normal, **kw: Any) -> OpInfo:
    first = next(iter(spellings.values()))
    return OpInfo(
        name,
        spellings,
        ref,
        unary_samples(values, tuple(spellings)),
        bad=(not_a_tensor(first, name),) + kw.pop("bad", ()),
        **kw,
    )


OPS: list[OpInfo] = [
    # ----- arithmetic (Tensor operators and their reflected forms) -----
    _binary_row(
        "add",
        lambda a, b: a + b,
        bad=(
            BadInput(
                "backward on a non-scalar without gradient",
                _backward_without_gradient,
                ShapeError,
                ("backward", "(2, 3)"),
            ),
        ),
    ),
    _binary_row("sub", lambda a, b: a - b),
    _binary_row(
        "mul",
        lambda a, b: a * b,
        bad=(
            BadInput(
                "a second backward through freed buffers",
                _backward_twice,
                GraphError,
                ("mul", "second time", "retain_graph"),  # the sum saved no array: it runs again
            ),
        ),
    ),
    _binary_row("div", lambda a, b: a / b, sample=binary_samples(b_values=away_from_zero)),
    OpInfo(
        "pow",
        {"a ** b": lambda a, b: a**b, "Tensor.pow": _method("pow")},
        {"a ** b": lambda a, b: a**b, "Tensor.pow": _method("pow")},
        pow_samples(),
        bad=(unbroadcastable("pow", lambda a, b: a**b),),
    ),
    OpInfo("neg", lambda x: -x, lambda x: -x, unary_samples()),
    # ----- elementwise functions -----
    _unary_row(
        "exp",
        {"mr.exp": mr.exp, "Tensor.exp": _method("exp")},
        {"mr.exp": torch.exp, "Tensor.exp": _method("exp")},
    ),
    _unary_row(
        "log",
        {"mr.log": mr.log, "Tensor.log": _method("log")},
        {"mr.log": torch.log, "Tensor.log": _method("log")},
        positive,
    ),
    _unary_row(
        "sqrt",
        {"mr.sqrt": mr.sqrt, "Tensor.sqrt": _method("sqrt")},
        {"mr.sqrt": torch.sqrt, "Tensor.sqrt": _method("sqrt")},
        positive,
    ),
    _unary_row("erf", {"mr.erf": mr.erf}, {"mr.erf": torch.erf}),
    _unary_row(
        "abs",
        {"mr.abs": mr.abs, "abs()": abs, "Tensor.abs": _method("abs")},
        {"mr.abs": torch.abs, "abs()": abs, "Tensor.abs": _method("abs")},
        kinks=_relu_kinks,
    ),
    OpInfo(
        "maximum",
        {
            "mr.maximum": mr.maximum,
            "Tensor.maximum": _method("maximum"),
            "the max(input, other) overload": mr.max,
        },
        {
            "mr.maximum": torch.maximum,
            "Tensor.maximum": _method("maximum"),
            "the max(input, other) overload": torch.max,
        },
        maximum_samples(("mr.maximum", "Tensor.maximum", "the max(input, other) overload")),
        kinks=_maximum_kinks,
        bad=(
            BadInput("a Python scalar", lambda d: mr.maximum(t(2, device=d), 1.0), TypeError, ("maximum",)),
            BadInput(
                "unbroadcastable",
                lambda d: mr.maximum(t(2, device=d), t(3, device=d)),
                ShapeError,
                ("maximum",),
            ),
        ),
    ),
    OpInfo(
        "minimum",
        {
            "mr.minimum": mr.minimum,
            "Tensor.minimum": _method("minimum"),
            "the min(input, other) overload": mr.min,
        },
        {
            "mr.minimum": torch.minimum,
            "Tensor.minimum": _method("minimum"),
            "the min(input, other) overload": torch.min,
        },
        maximum_samples(("mr.minimum", "Tensor.minimum", "the min(input, other) overload")),
        kinks=_maximum_kinks,
        bad=(
            BadInput("a Python scalar", lambda d: mr.minimum(1.0, t(2, device=d)), TypeError, ("minimum",)),
        ),
    ),
    OpInfo(
        "clamp",
        {"mr.clamp": mr.clamp, "Tensor.clamp": _method("clamp")},
        {"mr.clamp": torch.clamp, "Tensor.clamp": _method("clamp")},
        clamp_samples(),
        kinks=_clamp_kinks,
        bad=(BadInput("neither bound", lambda d: mr.clamp(t(2, device=d)), ValueError, ("clamp", "min")),),
    ),
    # ----- activations -----
    _unary_row(
        "relu",
        {"F.relu": _functional("relu"), "mr.relu": mr.relu, "Tensor.relu": _method("relu")},
        {"F.relu": torch.nn.functional.relu, "mr.relu": torch.relu, "Tensor.relu": _method("relu")},
        kinks=_relu_kinks,
        bad=(
            BadInput(
                "bool input",
                lambda d: F.relu(mr.tensor([True, False], device=d)),
                DTypeError,
                ("relu", "bool"),
            ),
        ),
    ),
    OpInfo(
        "gelu",
        _functional("gelu"),
        torch.nn.functional.gelu,
        gelu_samples(),
        bad=(
            not_a_tensor(_functional("gelu"), "gelu"),
            BadInput(
                "unknown approximation",
                lambda d: F.gelu(t(2, device=d), approximate="fast"),
                ValueError,
                ("gelu", "fast"),
            ),
        ),
    ),
    _unary_row(
        "sigmoid",
        {"F.sigmoid": _functional("sigmoid"), "mr.sigmoid": mr.sigmoid, "Tensor.sigmoid": _method("sigmoid")},
        {"F.sigmoid": torch.sigmoid, "mr.sigmoid": torch.sigmoid, "Tensor.sigmoid": _method("sigmoid")},
    ),
    _unary_row(
        "tanh",
        {"F.tanh": _functional("tanh"), "mr.tanh": mr.tanh, "Tensor.tanh": _method("tanh")},
        {"F.tanh": torch.tanh, "mr.tanh": torch.tanh, "Tensor.tanh": _method("tanh")},
    ),
    OpInfo(
        "softmax",
        {"F.softmax": _functional("softmax"), "mr.softmax": mr.softmax, "Tensor.softmax": _method("softmax")},
        {
            "F.softmax": torch.nn.functional.softmax,
            "mr.softmax": torch.softmax,
            "Tensor.softmax": _method("softmax"),
        },
        softmax_samples(("F.softmax", "mr.softmax", "Tensor.softmax")),
        bad=(
            BadInput(
                "dim out of range",
                lambda d: F.softmax(t(2, 3, device=d), dim=2),
                ShapeError,
                ("softmax", "2", "(2, 3)"),
            ),
        ),
    ),
    OpInfo(
        "log_softmax",
        {"F.log_softmax": _functional("log_softmax"), "Tensor.log_softmax": _method("log_softmax")},
        {"F.log_softmax": torch.nn.functional.log_softmax, "Tensor.log_softmax": _method("log_softmax")},
        softmax_samples(("F.log_softmax", "Tensor.log_softmax")),
        bad=(
            BadInput(
                "dim out of range",
                lambda d: F.log_softmax(t(2, 3, device=d), dim=-3),
                ShapeError,
                ("log_softmax", "-3", "(2, 3)"),
            ),
        ),
    ),
    # ----- reductions -----
    OpInfo(
        "sum",
        {"mr.sum": mr.sum, "Tensor.sum": _method("sum")},
        {"mr.sum": torch.sum, "Tensor.sum": _method("sum")},
        sum_mean_samples(("mr.sum", "Tensor.sum")),
        bad=(
            BadInput("dim out of range", lambda d: t(2, 3, device=d).sum(dim=2), ShapeError, ("sum", "2")),
            BadInput(
                "a dim twice",
                lambda d: t(2, 3, device=d).sum(dim=(0, -2)),
                ShapeError,
                ("sum", "more than once"),
            ),
        ),
        rtol32=3e-5,
    ),
    OpInfo(
        "mean",
        {"mr.mean": mr.mean, "Tensor.mean": _method("mean")},
        {"mr.mean": torch.mean, "Tensor.mean": _method("mean")},
        sum_mean_samples(("mr.mean", "Tensor.mean")),
        bad=(
            BadInput(
                "dim out of range", lambda d: t(2, 3, device=d).mean(dim=-3), ShapeError, ("mean", "-3")
            ),
            BadInput("an integer tensor", lambda d: mr.mean(labels([1, 2], d)), TypeError, ("mean", "int64")),
        ),
        rtol32=3e-5,
    ),
    OpInfo(
        "max",
        {"mr.max": _reducer(mr.max), "Tensor.max": _reducer(_method("max"))},
        {"mr.max": _reducer(torch.max), "Tensor.max": _reducer(_method("max"))},
        max_min_samples(("mr.max", "Tensor.max")),
        kinks=_extreme_kinks(largest=True),
        bad=(
            BadInput("dim out of range", lambda d: t(2, 3, device=d).max(dim=2), ShapeError, ("max", "2")),
            BadInput(
                "empty tensor", lambda d: mr.max(mr.zeros(0, 3, device=d)), ShapeError, ("max", "(0, 3)")
            ),
        ),
    ),
    OpInfo(
        "min",
        {"mr.min": _reducer(mr.min), "Tensor.min": _reducer(_method("min"))},
        {"mr.min": _reducer(torch.min), "Tensor.min": _reducer(_method("min"))},
        max_min_samples(("mr.min", "Tensor.min")),
        kinks=_extreme_kinks(largest=False),
        bad=(
            BadInput(
                "dim out of range", lambda d: mr.min(t(2, 3, device=d), dim=-3), ShapeError, ("min", "-3")
            ),
        ),
    ),
    OpInfo(
        "topk",
        {"mr.topk": _reducer(mr.topk), "Tensor.topk": _reducer(_method("topk"))},
        {"mr.topk": _reducer(torch.topk), "Tensor.topk": _reducer(_method("topk"))},
        topk_samples(),
        kinks=_topk_kinks,
        bad=(
            BadInput("k above the size", lambda d: t(2, 3, device=d).topk(4), ShapeError, ("topk", "4", "3")),
            BadInput(
                "dim out of range", lambda d: mr.topk(t(2, 3, device=d), 1, dim=2), ShapeError, ("topk", "2")
            ),
        ),
    ),
    # ----- linear algebra -----
    OpInfo(
        "matmul",
        {"mr.matmul": mr.matmul, "a @ b": lambda a, b: a @ b, "Tensor.matmul": _method("matmul")},
        {"mr.matmul": torch.matmul, "a @ b": lambda a, b: a @ b, "Tensor.matmul": _method("matmul")},
        matmul_samples(),
        big=matmul_samples(max_side=24, max_batch_side=4),
        bad=(
            BadInput(
                "inner sizes differ",
                lambda d: t(2, 3, device=d) @ t(4, 5, device=d),
                ShapeError,
                ("matmul", "(2, 3)", "(4, 5)"),
            ),
            BadInput(
                "batch shapes do not broadcast",
                lambda d: mr.matmul(t(2, 3, 4, device=d), t(5, 4, 2, device=d)),
                ShapeError,
                ("matmul", "(2,)", "(5,)"),
            ),
            BadInput(
                "a 0-d operand",
                lambda d: mr.matmul(t(device=d), t(3, device=d)),
                ShapeError,
                ("matmul", "()"),
            ),
        ),
        rtol32=3e-5,
    ),
    OpInfo(
        "linear",
        _functional("linear"),
        torch.nn.functional.linear,
        linear_samples(),
        big=linear_samples(max_features=40, max_lead_side=16, max_lead_dims=1),
        bad=(
            BadInput(
                "in_features mismatch",
                lambda d: F.linear(t(2, 5, device=d), t(3, 4, device=d)),
                ShapeError,
                ("linear", "(2, 5)", "(3, 4)"),
            ),
            BadInput(
                "bias of the wrong size",
                lambda d: F.linear(t(2, 4, device=d), t(3, 4, device=d), t(4, device=d)),
                ShapeError,
                ("linear", "(4,)"),
            ),
            BadInput(
                "a 1-d weight",
                lambda d: F.linear(t(2, 4, device=d), t(4, device=d)),
                ShapeError,
                ("linear", "(4,)"),
            ),
            BadInput(
                "dtypes differ",
                lambda d: F.linear(t(2, 4, device=d, dtype=mr.float64), t(3, 4, device=d)),
                DTypeError,
                ("linear", "float64", "float32"),
            ),
        ),
        rtol32=3e-5,
    ),
    # ----- shape ops -----
    OpInfo(
        "reshape",
        {
            "Tensor.reshape(*shape)": lambda x, shape: x.reshape(*shape) if shape else x.reshape(shape),
            "Tensor.reshape(shape)": lambda x, shape: x.reshape(shape),
            "Tensor.view(*shape)": lambda x, shape: x.view(*shape) if shape else x.view(shape),
            "mr.reshape": lambda x, shape: mr.reshape(x, shape),
        },
        {
            "Tensor.reshape(*shape)": lambda x, shape: x.reshape(*shape) if shape else x.reshape(shape),
            "Tensor.reshape(shape)": lambda x, shape: x.reshape(shape),
            "Tensor.view(*shape)": lambda x, shape: x.view(*shape) if shape else x.view(shape),
            "mr.reshape": lambda x, shape: torch.reshape(x, shape),
        },
        reshape_samples(),
        bad=(
            BadInput(
                "wrong number of elements",
                lambda d: t(2, 3, device=d).reshape(4, 2),
                ShapeError,
                ("reshape", "(4, 2)", "(2, 3)"),
            ),
            BadInput("two -1", lambda d: t(2, 3, device=d).view(-1, -1), ShapeError, ("reshape", "(-1, -1)")),
        ),
    ),
    OpInfo(
        "flatten",
        {"mr.flatten": mr.flatten, "Tensor.flatten": _method("flatten")},
        {"mr.flatten": torch.flatten, "Tensor.flatten": _method("flatten")},
        flatten_samples(),
        bad=(
            BadInput(
                "start after end",
                lambda d: mr.flatten(t(2, 3, 4, device=d), 2, 1),
                ShapeError,
                ("flatten", "2"),
            ),
            BadInput(
                "dim out of range", lambda d: t(2, 3, device=d).flatten(3), ShapeError, ("flatten", "3")
            ),
        ),
    ),
    OpInfo(
        "permute",
        {
            "Tensor.permute(*dims)": lambda x, dims: x.permute(*dims),
            "Tensor.permute(dims)": lambda x, dims: x.permute(dims),
            "mr.permute": lambda x, dims: mr.permute(x, dims),
        },
        {
            "Tensor.permute(*dims)": lambda x, dims: x.permute(*dims),
            "Tensor.permute(dims)": lambda x, dims: x.permute(dims),
            "mr.permute": lambda x, dims: torch.permute(x, dims),
        },
        permute_samples(),
        bad=(
            BadInput(
                "not a permutation",
                lambda d: t(2, 3, device=d).permute(0, 0),
                ShapeError,
                ("permute", "(0, 0)"),
            ),
            BadInput(
                "too few dims",
                lambda d: t(2, 3, 4, device=d).permute(1, 0),
                ShapeError,
                ("permute", "(2, 3, 4)"),
            ),
        ),
    ),
    OpInfo(
        "transpose",
        {"Tensor.transpose": _method("transpose"), "mr.transpose": mr.transpose},
        {"Tensor.transpose": _method("transpose"), "mr.transpose": torch.transpose},
        transpose_samples(),
        bad=(
            BadInput(
                "dim out of range",
                lambda d: t(2, 3, device=d).transpose(0, 2),
                ShapeError,
                ("transpose", "2"),
            ),
        ),
    ),
    OpInfo(
        "unsqueeze",
        {"Tensor.unsqueeze": _method("unsqueeze"), "mr.unsqueeze": mr.unsqueeze},
        {"Tensor.unsqueeze": _method("unsqueeze"), "mr.unsqueeze": torch.unsqueeze},
        unsqueeze_samples(),
        bad=(
            BadInput(
                "dim out of range", lambda d: t(2, device=d).unsqueeze(3), ShapeError, ("unsqueeze", "3")
            ),
        ),
    ),
    OpInfo(
        "squeeze",
        {"Tensor.squeeze": _method("squeeze"), "mr.squeeze": mr.squeeze},
        {"Tensor.squeeze": _method("squeeze"), "mr.squeeze": torch.squeeze},
        squeeze_samples(),
        bad=(
            BadInput(
                "dim out of range", lambda d: t(2, 1, device=d).squeeze(-3), ShapeError, ("squeeze", "-3")
            ),
        ),
    ),
    OpInfo(
        "broadcast_to",
        {
            "Tensor.expand(*shape)": lambda x, shape: x.expand(*shape) if shape else x.expand(shape),
            "Tensor.expand(shape)": lambda x, shape: x.expand(shape),
        },
        {
            "Tensor.expand(*shape)": lambda x, shape: x.expand(*shape) if shape else x.expand(shape),
            "Tensor.expand(shape)": lambda x, shape: x.expand(shape),
        },
        expand_samples(),
        bad=(
            BadInput(
                "fewer dims than the tensor",
                lambda d: t(2, 3, device=d).expand(3),
                ShapeError,
                ("expand", "(2, 3)"),
            ),
            BadInput(
                "a size other than 1 changed",
                lambda d: t(2, 3, device=d).expand(4, 3),
                ShapeError,
                ("expand", "(2, 3)", "(4, 3)"),
            ),
        ),
        rtol32=3e-5,
    ),
    OpInfo(
        "getitem",
        lambda x, index: x[index],
        lambda x, index: x[index],
        getitem_samples(),
        bad=(
            BadInput(
                "index out of range", lambda d: t(2, 3, device=d)[:, 3], IndexError, ("getitem", "(2, 3)")
            ),
            BadInput(
                "too many indices", lambda d: t(2, 3, device=d)[0, 0, 0], IndexError, ("getitem", "(2, 3)")
            ),
            # CuPy wraps an out-of-range integer-array index around the axis; NumPy and PyTorch raise.
            BadInput(
                "int array index out of range",
                lambda d: t(2, 3, device=d)[:, mr.tensor([0, 3], device=d)],
                IndexError,
                ("getitem", "(2, 3)", "out of bounds"),
            ),
            BadInput(
                "negative int array index out of range",
                lambda d: t(2, 3, device=d)[mr.tensor([-3], device=d)],
                IndexError,
                ("getitem", "(2, 3)", "out of bounds"),
            ),
            BadInput(
                "list index out of range after a mask",
                lambda d: t(2, 3, device=d)[mr.tensor([True, False], device=d), [5]],
                IndexError,
                ("getitem", "(2, 3)", "out of bounds"),
            ),
        ),
    ),
    OpInfo(
        "setitem",
        _assign,
        _assign,
        setitem_samples(),
        bad=(
            BadInput(
                "a value that does not fit",
                lambda d: _assign(t(2, 3, device=d, requires_grad=True), 0, t(4, device=d)),
                ShapeError,
                ("__setitem__", "(4,)", "(2, 3)"),
            ),
        ),
    ),
    OpInfo(
        "cat",
        {"list": lambda *xs, dim: mr.cat(list(xs), dim=dim), "tuple": lambda *xs, dim: mr.cat(xs, dim)},
        {"list": lambda *xs, dim: torch.cat(list(xs), dim=dim), "tuple": lambda *xs, dim: torch.cat(xs, dim)},
        cat_samples(),
        bad=(
            BadInput(
                "sizes differ off the cat dim",
                lambda d: mr.cat([t(2, 3, device=d), t(2, 4, device=d)]),
                ShapeError,
                ("cat", "(2, 3)", "(2, 4)"),
            ),
            BadInput("no tensors", lambda d: mr.cat([]), ValueError, ("cat", "empty")),
            BadInput(
                "dim out of range",
                lambda d: mr.cat([t(2, device=d), t(2, device=d)], dim=1),
                ShapeError,
                ("cat", "1"),
            ),
        ),
    ),
    OpInfo(
        "stack",
        {"list": lambda *xs, dim: mr.stack(list(xs), dim=dim), "tuple": lambda *xs, dim: mr.stack(xs, dim)},
        {
            "list": lambda *xs, dim: torch.stack(list(xs), dim=dim),
            "tuple": lambda *xs, dim: torch.stack(xs, dim),
        },
        stack_samples(),
        bad=(
            BadInput(
                "shapes differ",
                lambda d: mr.stack([t(2, 3, device=d), t(3, 2, device=d)]),
                ShapeError,
                ("stack", "(2, 3)", "(3, 2)"),
            ),
            BadInput(
                "dim out of range", lambda d: mr.stack([t(2, device=d)], dim=3), ShapeError, ("stack", "3")
            ),
        ),
    ),
    OpInfo(
        "pad",
        _functional("pad"),
        torch.nn.functional.pad,
        pad_samples(),
        bad=(
            BadInput(
                "an odd number of widths",
                lambda d: F.pad(t(2, 3, device=d), (1, 1, 1)),
                ShapeError,
                ("pad", "(1, 1, 1)"),
            ),
            BadInput(
                "more widths than dims",
                lambda d: F.pad(t(3, device=d), (1, 1, 1, 1)),
                ShapeError,
                ("pad", "(1, 1, 1, 1)", "(3,)"),
            ),
            BadInput(
                "a crop past the size",
                lambda d: F.pad(t(2, 3, device=d), (-2, -2)),
                ShapeError,
                ("pad", "(-2, -2)", "(2, 3)"),
            ),
            BadInput(
                "an unknown mode",
                lambda d: F.pad(t(2, 3, device=d), (1, 1), mode="mirror"),
                ValueError,
                ("pad", "mirror"),
            ),
        ),
    ),
    OpInfo(
        "to",
        {"Tensor.to": lambda x: x.to("cpu"), "Tensor.cpu": _method("cpu")},
        {"Tensor.to": lambda x: x.to("cpu"), "Tensor.cpu": _method("cpu")},
        unary_samples(variants=("Tensor.to", "Tensor.cpu")),
        moves_device=True,
        bad=(
            BadInput(
                "unknown device", lambda d: t(2, device=d).to(device="tpu"), DeviceError, ("device", "tpu")
            ),
        ),
    ),
    # ----- nn.functional: conv, pools, norm, dropout, loss -----
    OpInfo(
        "conv2d",
        {layout: _conv2d_in_layout(layout) for layout in CONV_LAYOUTS},
        {layout: _torch_conv2d for layout in CONV_LAYOUTS},
        conv2d_samples(),
        big=conv2d_samples(max_n=4, max_channels=8, max_k=3, max_extra=12, max_groups=2),
        bad=(
            BadInput(
                "input channels differ from the weight's",
                lambda d: F.conv2d(t(2, 4, 9, 9, device=d), t(8, 3, 3, 3, device=d)),
                ShapeError,
                ("conv2d", "(2, 4, 9, 9)", "(8, 3, 3, 3)"),
            ),
            BadInput(
                "groups do not divide the input channels",
                lambda d: F.conv2d(t(1, 4, 5, 5, device=d), t(6, 1, 3, 3, device=d), groups=3),
                ShapeError,
                ("conv2d", "groups", "4"),
            ),
            BadInput(
                "groups do not divide the output channels",
                lambda d: F.conv2d(t(1, 4, 5, 5, device=d), t(5, 2, 3, 3, device=d), groups=2),
                ShapeError,
                ("conv2d", "groups", "5"),
            ),
            BadInput(
                "kernel larger than the padded input",
                lambda d: F.conv2d(t(1, 1, 3, 4, device=d), t(1, 1, 5, 5, device=d), padding=(0, 1)),
                ShapeError,
                ("conv2d", "5"),
            ),
            BadInput(
                "stride 0",
                lambda d: F.conv2d(t(1, 1, 5, 5, device=d), t(1, 1, 3, 3, device=d), stride=0),
                ValueError,
                ("conv2d", "stride", "0"),
            ),
            BadInput(
                "negative stride",
                lambda d: F.conv2d(t(1, 1, 5, 5, device=d), t(1, 1, 3, 3, device=d), stride=(1, -2)),
                ValueError,
                ("conv2d", "stride", "-2"),
            ),
            BadInput(
                "dilation 0",
                lambda d: F.conv2d(t(1, 1, 5, 5, device=d), t(1, 1, 3, 3, device=d), dilation=0),
                ValueError,
                ("conv2d", "dilation"),
            ),
            BadInput(
                "negative padding",
                lambda d: F.conv2d(t(1, 1, 5, 5, device=d), t(1, 1, 3, 3, device=d), padding=-1),
                ValueError,
                ("conv2d", "padding", "-1"),
            ),
            BadInput(
                "a 2-d input",
                lambda d: F.conv2d(t(5, 5, device=d), t(1, 1, 3, 3, device=d)),
                ShapeError,
                ("conv2d", "(5, 5)"),
            ),
            BadInput(
                "bias of the wrong size",
                lambda d: F.conv2d(t(1, 3, 5, 5, device=d), t(8, 3, 3, 3, device=d), t(4, device=d)),
                ShapeError,
                ("conv2d", "(4,)"),
            ),
            BadInput(
                "dtypes differ",
                lambda d: F.conv2d(t(1, 3, 5, 5, device=d, dtype=mr.float64), t(8, 3, 3, 3, device=d)),
                DTypeError,
                ("conv2d", "float64", "float32"),
            ),
        ),
        rtol32=1e-4,
    ),
    OpInfo(
        "max_pool2d",
        _functional("max_pool2d"),
        torch.nn.functional.max_pool2d,
        pool2d_samples(dilation=True),
        kinks=_max_pool_kinks,
        big=pool2d_samples(max_n=4, max_c=4, max_extra=12, dilation=True),
        bad=(
            BadInput(
                "padding over half the kernel",
                lambda d: F.max_pool2d(t(1, 1, 6, 6, device=d), 2, padding=2),
                ValueError,
                ("max_pool2d", "padding", "2"),
            ),
            BadInput(
                "kernel larger than the padded input",
                lambda d: F.max_pool2d(t(1, 1, 2, 2, device=d), 3),
                ShapeError,
                ("max_pool2d", "3"),
            ),
            BadInput(
                "stride 0",
                lambda d: F.max_pool2d(t(1, 1, 6, 6, device=d), 2, stride=0),
                ValueError,
                ("max_pool2d", "stride", "0"),
            ),
            BadInput(
                "kernel 0",
                lambda d: F.max_pool2d(t(1, 1, 6, 6, device=d), 0),
                ValueError,
                ("max_pool2d", "kernel", "0"),
            ),
            BadInput(
                "a 2-d input",
                lambda d: F.max_pool2d(t(6, 6, device=d), 2),
                ShapeError,
                ("max_pool2d", "(6, 6)"),
            ),
        ),
    ),
    OpInfo(
        "avg_pool2d",
        _functional("avg_pool2d"),
        torch.nn.functional.avg_pool2d,
        pool2d_samples(),
        big=pool2d_samples(max_n=4, max_c=4, max_extra=12),
        bad=(
            BadInput(
                "padding over half the kernel",
                lambda d: F.avg_pool2d(t(1, 1, 6, 6, device=d), (3, 2), padding=(1, 2)),
                ValueError,
                ("avg_pool2d", "padding", "2"),
            ),
            BadInput(
                "kernel larger than the padded input",
                lambda d: F.avg_pool2d(t(1, 1, 4, 2, device=d), (2, 3)),
                ShapeError,
                ("avg_pool2d", "3"),
            ),
            BadInput(
                "negative stride",
                lambda d: F.avg_pool2d(t(1, 1, 6, 6, device=d), 2, stride=-1),
                ValueError,
                ("avg_pool2d", "stride", "-1"),
            ),
            BadInput(
                "a 2-d input",
                lambda d: F.avg_pool2d(t(6, 6, device=d), 2),
                ShapeError,
                ("avg_pool2d", "(6, 6)"),
            ),
        ),
    ),
    OpInfo(
        "adaptive_avg_pool2d",
        _functional("adaptive_avg_pool2d"),
        torch.nn.functional.adaptive_avg_pool2d,
        adaptive_pool_samples(),
        big=adaptive_pool_samples(max_hw=20, max_n=4, max_c=4),
        bad=(
            BadInput(
                "a 2-d input",
                lambda d: F.adaptive_avg_pool2d(t(6, 6, device=d), 2),
                ShapeError,
                ("adaptive_avg_pool2d", "(6, 6)"),
            ),
            BadInput(
                "negative output size",
                lambda d: F.adaptive_avg_pool2d(t(1, 1, 6, 6, device=d), (2, -1)),
                ValueError,
                ("adaptive_avg_pool2d", "-1"),
            ),
        ),
    ),
    OpInfo(
        "batch_norm",
        _functional("batch_norm"),
        torch.nn.functional.batch_norm,
        batch_norm_samples(),
        big=batch_norm_samples(max_n=8, max_c=6, max_hw=10),
        bad=(
            BadInput(
                "running_mean of the wrong size",
                lambda d: F.batch_norm(t(2, 3, 4, 4, device=d), t(4, device=d), t(3, device=d)),
                ShapeError,
                ("batch_norm", "(4,)"),
            ),
            BadInput(
                "running_var of the wrong size",
                lambda d: F.batch_norm(t(2, 3, device=d), t(3, device=d), t(2, 3, device=d), training=True),
                ShapeError,
                ("batch_norm", "(2, 3)"),
            ),
            BadInput(
                "weight of the wrong size",
                lambda d: F.batch_norm(
                    t(2, 3, 4, 4, device=d), t(3, device=d), t(3, device=d), t(5, device=d)
                ),
                ShapeError,
                ("batch_norm", "(5,)"),
            ),
            BadInput(
                "one value per channel in training",
                lambda d: F.batch_norm(t(1, 3, device=d), None, None, training=True),
                ValueError,
                ("batch_norm", "(1, 3)"),
            ),
            BadInput(
                "a 1-d input",
                lambda d: F.batch_norm(t(3, device=d), t(3, device=d), t(3, device=d)),
                ShapeError,
                ("batch_norm", "(3,)"),
            ),
        ),
        rtol32=3e-5,
    ),
    OpInfo(
        "batch_norm_relu",
        _batch_norm_relu,
        _torch_batch_norm_relu,
        batch_norm_relu_samples(),
        kinks=_batch_norm_relu_kinks,
        big=batch_norm_relu_samples(max_n=8, max_c=6, max_hw=10),
        bad=(
            BadInput(
                "weight of the wrong size",
                lambda d: _batch_norm_relu(
                    t(2, 3, 4, 4, device=d), t(3, device=d), t(3, device=d), t(5, device=d), None, None
                ),
                ShapeError,
                ("batch_norm_relu", "(5,)"),
            ),
            BadInput(
                "residual of another shape",
                lambda d: _batch_norm_relu(
                    t(2, 3, 4, 4, device=d), None, None, None, None, t(2, 3, 4, 1, device=d), training=True
                ),
                ShapeError,
                ("batch_norm_relu", "(2, 3, 4, 4)", "(2, 3, 4, 1)"),
            ),
            BadInput(
                "residual of another dtype",
                lambda d: _batch_norm_relu(
                    t(2, 3, device=d),
                    None,
                    None,
                    None,
                    None,
                    t(2, 3, device=d, dtype=mr.float64),
                    training=True,
                ),
                DTypeError,
                ("batch_norm_relu", "float64", "float32"),
            ),
            BadInput(
                "one value per channel in training",
                lambda d: _batch_norm_relu(t(1, 3, device=d), None, None, None, None, None, training=True),
                ValueError,
                ("batch_norm_relu", "(1, 3)"),
            ),
        ),
        rtol32=3e-5,
    ),
    OpInfo(
        "sync_batch_norm",
        _sync_batch_norm,
        torch.nn.functional.batch_norm,
        sync_batch_norm_samples(),
        big=sync_batch_norm_samples(max_n=8, max_c=6, max_hw=10),
        bad=(
            BadInput(
                "weight of the wrong size",
                lambda d: _sync_batch_norm(
                    t(2, 3, 4, 4, device=d), None, None, t(5, device=d), None, training=True
                ),
                ShapeError,
                ("sync_batch_norm", "(5,)"),
            ),
            BadInput(
                "one value per channel",
                lambda d: _sync_batch_norm(t(1, 3, device=d), None, None, None, None, training=True),
                ValueError,
                ("sync_batch_norm", "(1, 3)"),
            ),
            BadInput(
                "a 1-d input",
                lambda d: _sync_batch_norm(t(3, device=d), None, None, None, None, training=True),
                ShapeError,
                ("sync_batch_norm", "(3,)"),
            ),
        ),
        rtol32=3e-5,
    ),
    OpInfo(
        "group_norm",
        _functional("group_norm"),
        torch.nn.functional.group_norm,
        group_norm_samples(),
        big=group_norm_samples(max_n=4, max_per_group=6, max_hw=8),
        bad=(
            BadInput(
                "groups do not divide the channels",
                lambda d: F.group_norm(t(2, 6, 3, 3, device=d), 4),
                ShapeError,
                ("group_norm", "6", "num_groups=4"),
            ),
            BadInput(
                "weight of the wrong size",
                lambda d: F.group_norm(t(2, 6, 3, 3, device=d), 3, t(3, device=d)),
                ShapeError,
                ("group_norm", "(3,)"),
            ),
            BadInput(
                "a 1-d input",
                lambda d: F.group_norm(t(6, device=d), 3),
                ShapeError,
                ("group_norm", "(6,)"),
            ),
            BadInput(
                "one value per group",
                lambda d: F.group_norm(t(1, 3, device=d), 3),
                ValueError,
                ("group_norm", "(1, 3)"),
            ),
        ),
        rtol32=3e-5,
    ),
    OpInfo(
        "dropout",
        _dropout,
        _torch_dropout,
        dropout_samples(),
        stochastic=lambda s: s.kwargs["training"] and 0 < s.kwargs["p"] < 1,
        bad=(
            BadInput("p above 1", lambda d: F.dropout(t(2, device=d), p=1.5), ValueError, ("dropout", "1.5")),
            BadInput(
                "p below 0", lambda d: F.dropout(t(2, device=d), p=-0.1), ValueError, ("dropout", "-0.1")
            ),
        ),
    ),
    OpInfo(
        "cross_entropy",
        _functional("cross_entropy"),
        torch.nn.functional.cross_entropy,
        cross_entropy_samples(),
        big=cross_entropy_samples(max_n=64, max_c=10, max_hw=1),
        bad=(
            BadInput(
                "a target past the last class",
                lambda d: F.cross_entropy(t(4, 3, device=d), labels([0, 1, 7, 2], d)),
                ValueError,
                ("cross_entropy", "7"),
            ),
            BadInput(
                "a negative target",
                lambda d: F.cross_entropy(t(4, 3, device=d), labels([0, -2, 1, 2], d)),
                ValueError,
                ("cross_entropy", "-2"),
            ),
            BadInput(
                "float targets",
                lambda d: F.cross_entropy(t(4, 3, device=d), t(4, device=d)),
                DTypeError,
                ("cross_entropy", "float32"),
            ),
            BadInput(
                "targets of the wrong batch size",
                lambda d: F.cross_entropy(t(4, 3, device=d), labels([0, 1, 2, 0, 1], d)),
                ShapeError,
                ("cross_entropy", "(5,)", "(4, 3)"),
            ),
            BadInput(
                "unknown reduction",
                lambda d: F.cross_entropy(t(4, 3, device=d), labels([0, 1, 2, 0], d), reduction="avg"),
                ValueError,
                ("cross_entropy", "avg"),
            ),
            BadInput(
                "label_smoothing above 1",
                lambda d: F.cross_entropy(t(4, 3, device=d), labels([0, 1, 2, 0], d), label_smoothing=1.5),
                ValueError,
                ("cross_entropy", "1.5"),
            ),
            BadInput(
                "weight of the wrong size",
                lambda d: F.cross_entropy(t(4, 3, device=d), labels([0, 1, 2, 0], d), weight=t(2, device=d)),
                ShapeError,
                ("cross_entropy", "(2,)"),
            ),
        ),
        rtol32=3e-5,
    ),
    OpInfo(
        "nll_loss",
        _functional("nll_loss"),
        torch.nn.functional.nll_loss,
        cross_entropy_samples(smoothing=False, probabilities=False),
        bad=(
            BadInput(
                "a target past the last class",
                lambda d: F.nll_loss(t(2, 3, device=d), labels([3, 0], d)),
                ValueError,
                ("nll_loss", "3"),
            ),
            BadInput(
                "float targets",
                lambda d: F.nll_loss(t(2, 3, device=d), t(2, device=d)),
                DTypeError,
                ("nll_loss", "float32"),
            ),
        ),
        rtol32=3e-5,
    ),
]

OPS_BY_NAME = {row.name: row for row in OPS}
assert len(OPS_BY_NAME) == len(OPS), "two rows with one name"
