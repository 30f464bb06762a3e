"""Checking a backward against the definition of the derivative.

For a function f and a fixed random weight v of f's output shape, let L(x) = <v, f(x)>. Backward gives
the vector-Jacobian product dL/dx = J^T v analytically; central differences give it numerically,
element by element:

    dL/dx_i ~ (L(x + eps e_i) - L(x - eps e_i)) / (2 eps),   error O(eps^2).

``gradcheck`` compares the two for every element of every input that requires grad, in float64 (in
float32 the rounding error of L, about 1e-7 |L| / eps, would swamp the difference). A random v weights
every output element, so a wrong entry anywhere in the Jacobian shows up (with probability 1).

``directional_gradcheck`` compares one number per random direction u instead, <dL/dx, u> against
(L(x + eps u) - L(x - eps u)) / (2 eps): two evaluations of f however large x is.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .backend import get_array_module, to_numpy
from .grad_mode import enable_grad, no_grad
from .tensor import Tensor, float64


class GradcheckError(RuntimeError):
    """The analytic gradient of some input differs from the numerical one; the message names where."""


def _float64_inputs(inputs: Any) -> list[Any]:
    if isinstance(inputs, Tensor):
        inputs = (inputs,)
    out = []
    for t in inputs:
        if isinstance(t, Tensor):
            data = t.data.astype(float64, copy=True) if t.dtype.kind == "f" else t.data
            out.append(Tensor(data, requires_grad=t.requires_grad))
        else:
            out.append(t)
    return out


def _weight_like(y: Tensor, seed: int) -> Any:
    xp = get_array_module(y.data)
    v = np.random.default_rng(seed).standard_normal(y.shape)
    return xp.asarray(v, dtype=y.dtype)


def _objective(fn: Callable[..., Tensor], xs: list[Any], v: Any) -> float:
    """L(x) = <v, fn(x)> as a Python float."""
    with no_grad():
        y = fn(*xs)
    return float((y.data * v).sum())


def _analytic(fn: Callable[..., Tensor], xs: list[Any], seed: int) -> tuple[Any, list[Any]]:
    with enable_grad():
        y = fn(*xs)
    if not isinstance(y, Tensor):
        raise TypeError(f"gradcheck: fn must return a Tensor, got {type(y).__name__}")
    v = _weight_like(y, seed)
    if y.requires_grad:
        y.backward(Tensor._wrap(v))
    grads = []
    for t in xs:
        if isinstance(t, Tensor) and t.requires_grad:
            grads.append(t.grad.data if t.grad is not None else get_array_module(t.data).zeros_like(t.data))
    return v, grads


def gradient_pairs(
    fn: Callable[..., Tensor], inputs: Any, eps: float = 1e-6, seed: int = 0
) -> list[tuple[int, Tensor, np.ndarray, np.ndarray]]:
    """For every input with requires_grad: (its position, its float64 copy, the analytic dL/dx and the
    central-difference dL/dx, both flat float64 NumPy arrays), with L = <v, fn(*inputs)>, v ~ N(0, 1)
    drawn from ``seed``. ``gradcheck`` judges these pairs; ``python -m minires.explain`` prints them."""
    xs = _float64_inputs(inputs)
    v, analytic = _analytic(fn, xs, seed)
    checked = [(i, t) for i, t in enumerate(xs) if isinstance(t, Tensor) and t.requires_grad]
    pairs = []
    for (pos, t), a in zip(checked, analytic, strict=True):
        flat = t.data.reshape(-1)  # a view: writing it perturbs the input in place
        numeric = np.empty(flat.size)
        for i in range(flat.size):
            old = float(flat[i])
            flat[i] = old + eps
            f_plus = _objective(fn, xs, v)
            flat[i] = old - eps
            f_minus = _objective(fn, xs, v)
            flat[i] = old
            numeric[i] = (f_plus - f_minus) / (2 * eps)
        pairs.append((pos, t, to_numpy(a).reshape(-1).astype(np.float64), numeric))
    return pairs


def gradcheck(
    fn: Callable[..., Tensor],
    inputs: Any,
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    seed: int = 0,
) -> bool:
    """Check backward against central differences for every element of every input with requires_grad.

    ``inputs`` is a Tensor or a sequence of Tensors (and other arguments, passed through). Tensor inputs
    are copied to float64 first. An element fails when |analytic - numerical| > atol + rtol |numerical|.
    Returns True, or raises ``GradcheckError`` naming the input, the worst element and both values.
    """
    pairs = gradient_pairs(fn, inputs, eps, seed)
    if not pairs:
        raise ValueError("gradcheck: no input has requires_grad=True; nothing to check")
    for pos, t, analytic_np, numeric in pairs:
        excess = np.abs(analytic_np - numeric) - (atol + rtol * np.abs(numeric))
        if excess.size and excess.max() > 0:
            worst = int(excess.argmax())
            where = np.unravel_index(worst, t.shape) if t.ndim else ()
            raise GradcheckError(
                f"gradcheck: input {pos} (shape {t.shape}) element {tuple(int(k) for k in where)}: "
                f"analytic gradient {float(analytic_np[worst])!r} vs numerical {float(numeric[worst])!r} "
                f"(difference {abs(analytic_np[worst] - numeric[worst]):.3e}, allowed "
                f"{atol + rtol * abs(numeric[worst]):.3e})"
            )
    return True


def directional_gradcheck(
    fn: Callable[..., Tensor],
    inputs: Sequence[Any] | Tensor,
    n_directions: int = 3,
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    seed: int = 0,
) -> bool:
    """Check <dL/dx, u> against a central difference along random directions u (all inputs at once).

    Costs two evaluations of ``fn`` per direction, so it scales to whole networks. Raises
    ``GradcheckError`` with both values for the first direction that fails.
    """
    xs = _float64_inputs(inputs)
    v, analytic = _analytic(fn, xs, seed)
    checked = [t for t in xs if isinstance(t, Tensor) and t.requires_grad]
    if not checked:
        raise ValueError("directional_gradcheck: no input has requires_grad=True; nothing to check")
    rng = np.random.default_rng(seed + 1)
    originals = [t.data.copy() for t in checked]
    for k in range(n_directions):
        dirs = [get_array_module(t.data).asarray(rng.standard_normal(t.shape)) for t in checked]
        predicted = sum(float((a * u).sum()) for a, u in zip(analytic, dirs, strict=True))
        for t, x0, u in zip(checked, originals, dirs, strict=True):
            t.data[...] = x0 + eps * u
        f_plus = _objective(fn, xs, v)
        for t, x0, u in zip(checked, originals, dirs, strict=True):
            t.data[...] = x0 - eps * u
        f_minus = _objective(fn, xs, v)
        for t, x0 in zip(checked, originals, strict=True):
            t.data[...] = x0
        numeric = (f_plus - f_minus) / (2 * eps)
        if abs(predicted - numeric) > atol + rtol * abs(numeric):
            raise GradcheckError(
                f"directional_gradcheck: direction {k}: analytic {float(predicted)!r} "
                f"vs numerical {float(numeric)!r} "
                f"(difference {abs(predicted - numeric):.3e})"
            )
    return True
