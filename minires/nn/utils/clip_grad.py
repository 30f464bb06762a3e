"""``clip_grad_norm_``: scale the gradients of some parameters so that their joint norm is at most a bound;
``clip_grad_value_``: clamp each gradient element to a bound."""

from __future__ import annotations

import math
import types
import warnings
from typing import Any

import numpy as np

from ...backend import get_array_module
from ...tensor import Tensor


def _vector_norm(x: Any, p: float) -> Any:
    """||x||_p of all the elements of ``x``, a 0-d array of x's dtype, as ``torch.linalg.vector_norm``:
    p = inf: max |x_i|;  p = -inf: min |x_i|;  p = 0: the count of nonzeros;  else (sum |x_i|^p)^(1/p)."""
    xp = get_array_module(x)
    if x.size == 0:
        return xp.zeros((), dtype=x.dtype)
    if p == 2:
        flat = x.ravel()
        return xp.sqrt(xp.dot(flat, flat))  # no |x|^2 array: BLAS dot
    if p == math.inf:
        return xp.maximum(x.max(), -x.min())  # max |x_i| without an |x| array (nan propagates)
    if p == -math.inf:
        return xp.abs(x).min()
    if p == 0:
        return xp.asarray(xp.count_nonzero(x), dtype=x.dtype)
    if p == 1:
        return xp.abs(x).sum()
    return (xp.abs(x) ** p).sum() ** (1.0 / p)


def clip_grad_norm_(
    parameters: Tensor | Any,
    max_norm: float,
    norm_type: float = 2.0,
    error_if_nonfinite: bool = False,
    foreach: bool | None = None,
) -> Tensor:
    r"""Scale every ``p.grad`` in place by ``min(1, max_norm / (total_norm + 1e-6))``, as
    ``torch.nn.utils.clip_grad_norm_``, where

        total_norm = || (||g_1||_p, ||g_2||_p, ..., ||g_n||_p) ||_p   (= ||concat(g_1, ..., g_n)||_p)

    over the gradients that are not None, p = ``norm_type`` (``float("inf")`` for the max norm).
    ``parameters`` is a Tensor or an iterable of them. Returns ``total_norm`` as a 0-d Tensor (float32
    0.0 when no parameter has a gradient), computed before clipping. The grads are multiplied even when
    the factor is 1 (no host-device synchronisation on the GPU). ``error_if_nonfinite=True`` raises a
    ``RuntimeError`` when the total norm is nan or inf, before touching any gradient. ``foreach`` (torch's
    choice of its multi-tensor kernels) is accepted and changes nothing: the result is the same either way.
    """
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    else:
        is_generator = isinstance(parameters, types.GeneratorType)
        parameters = list(parameters)
        if is_generator and len(parameters) == 0:
            warnings.warn(
                "clip_grad_norm_: `parameters` is an empty generator, no gradient clipping will occur.",
                UserWarning,
                stacklevel=2,
            )
    norm_type = float(norm_type)
    grads = [p.grad.data for p in parameters if p.grad is not None]
    if not grads:
        return Tensor(np.zeros((), dtype=np.float32))
    xp = get_array_module(grads[0])
    norms = xp.stack([_vector_norm(g, norm_type) for g in grads])  # (n,): one norm per gradient
    total_norm = xp.asarray(_vector_norm(norms, norm_type))
    if error_if_nonfinite and not bool(xp.isfinite(total_norm)):
        raise RuntimeError(
            f"clip_grad_norm_: the total norm of order {norm_type} for gradients from `parameters` is "
            f"non-finite ({float(total_norm)}), so it cannot be clipped. To disable this error and scale the "
            "gradients by the non-finite norm anyway, set `error_if_nonfinite=False`"
        )
    with np.errstate(invalid="ignore"):  # an inf gradient times 0 is nan, silently, as in torch
        clip_coef = xp.minimum(max_norm / (total_norm + 1e-6), 1.0)  # in total_norm's dtype
        for g in grads:
            g *= clip_coef
    return Tensor(total_norm)


def clip_grad_value_(parameters: Tensor | Any, clip_value: float, foreach: bool | None = None) -> None:
    """Clamp every element of every ``p.grad`` to ``[-clip_value, clip_value]`` in place, as
    ``torch.nn.utils.clip_grad_value_``; ``parameters`` is a Tensor or an iterable of them (``foreach``
    accepted, as in clip_grad_norm_)."""
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    clip_value = float(clip_value)
    for p in parameters:
        if p.grad is not None:
            xp = get_array_module(p.grad.data)
            xp.clip(p.grad.data, -clip_value, clip_value, out=p.grad.data)
