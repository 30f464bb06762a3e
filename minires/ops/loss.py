"""Classification losses: cross_entropy (log-softmax and negative log-likelihood fused) and nll_loss.

Notation: x the input (N, C, *) of logits (cross_entropy) or log-probabilities (nll_loss), class axis 1;
t the target, class indices (N, *) or class probabilities (N, C, *); w (C,) the class weights (all 1 when
not given); eps the label smoothing; i runs over the N * prod(*) samples. An unbatched input (C,) with a
0-d target is the case N = 1 with the batch axis dropped again at the end.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from ..backend import defer_check, get_array_module
from ..errors import DeviceError, DTypeError, ShapeError, TargetIndexError
from ..function import Function
from ..tensor import Tensor
from .args import check_vector

_REDUCTIONS = ("none", "mean", "sum")


def _class_index_q(
    xp: Any, t: Any, valid: Any, w: Any | None, C: int, eps: float, dtype: Any
) -> tuple[Any, Any]:
    r"""The weighted target distribution of class-index targets, and the weight w_t of each sample:
        q_ic = [i not ignored] * ((1 - eps) w_{t_i} [c = t_i] + (eps / C) w_c),
        w_t_i = [i not ignored] * w_{t_i}.
    Shapes: t, valid (N, *) with ignored targets already replaced by 0; q (N, C, *); w_t (N, *).
    """
    valid_f = valid.astype(dtype)
    w_t = valid_f if w is None else w[t] * valid_f  # (N, *)
    one_hot = xp.arange(C).reshape((1, C) + (1,) * (t.ndim - 1)) == t[:, None]  # (N, C, *)
    q = one_hot * ((1 - eps) * w_t)[:, None]  # (N, C, *)
    if eps > 0:
        w_c = 1 if w is None else w.reshape((1, C) + (1,) * (t.ndim - 1))  # (1, C, 1, ...)
        q += (eps / C) * w_c * valid_f[:, None]
    return q, w_t


def _reduce(loss: Any, reduction: str, denom: Any) -> Any:
    """loss (N, *) as it is ("none"), summed ("sum"), or summed and divided by ``denom`` ("mean")."""
    if reduction == "none":
        return loss
    total = loss.sum()
    return total if reduction == "sum" else total / denom


def _sample_scale(xp: Any, g: Any, reduction: str, denom: Any, valid: Any) -> Any:
    """s_i = dL/dloss_i: g_i ("none"), g ("sum") or g / denom ("mean"), and 0 for ignored samples."""
    if reduction == "mean":
        g = g / denom
    return xp.where(valid, g, 0).astype(g.dtype, copy=False)  # (N, *)


# Where PyTorch quietly gives inf or NaN (a "mean" over no target, -inf logits), so do we, without NumPy's
# RuntimeWarnings (CuPy does not warn).
_like_torch = np.errstate(divide="ignore", invalid="ignore", over="ignore")


class CrossEntropy(Function):
    r"""loss_i = -sum_c q_ic log p_ic,  log p_i = log_softmax(x_i) = (x_i - m_i) - log sum_c e^(x_ic - m_i),
    m_i = max_c x_ic (the shift keeps exp from overflowing and cancels in log p), where q_i is the weighted,
    smoothed target distribution:
        class indices:  q_ic = (1 - eps) w_{t_i} [c = t_i] + (eps / C) w_c   (0 for ignored samples),
        probabilities:  q_ic = w_c ((1 - eps) t_ic + eps / C).
    With eps = 0 and no weights this is -log p_{i, t_i}. Reduction "none" gives loss_i, "sum" sum_i loss_i,
    "mean" sum_i loss_i / D with D = sum_i w_{t_i} over non-ignored samples (class indices) or D = the
    number of samples (probabilities), PyTorch's rules.

    Backward, with s_i = dL/dloss_i (g_i, g, or g / D): d(-log p_ic)/dx_ik = p_ik - [c = k], so
        dx_ik = s_i sum_c q_ic (p_ik - [c = k]) = s_i (p_ik sum_c q_ic - q_ik),
    the "softmax minus one-hot" result p - onehot(t) when sum_c q_ic = 1 (no weights, any eps); no
    log p or 1/p appears, so the gradient is as stable as the softmax. For probability targets also
    dt_ic = -s_i (1 - eps) w_c log p_ic. The class weights are constants (no gradient), as in PyTorch.
    Shapes: x (N, C, *); t (N, *) or (N, C, *); w (C,); loss (N, *) or ().
    """

    saved = ("unbatched", "probabilities", "log_p", "q", "valid", "denom", "w_c")

    def __init__(self, weight: Any | None, ignore_index: int, reduction: str, label_smoothing: float) -> None:
        self.w, self.ignore_index, self.reduction, self.eps = weight, ignore_index, reduction, label_smoothing

    @_like_torch
    def forward(self, x: Any, t: Any) -> Any:
        xp = get_array_module(x)
        self.unbatched = x.ndim == 1
        if self.unbatched:
            x, t = x[None], t[None]  # (1, C), target (1,) or (1, C)
        C, eps, w = x.shape[1], self.eps, self.w
        shifted = x - x.max(axis=1, keepdims=True)  # (N, C, *)
        log_p = shifted - xp.log(xp.exp(shifted).sum(axis=1, keepdims=True))  # (N, C, *)
        self.probabilities = t.dtype.kind == "f"
        if self.probabilities:
            w_c = 1 if w is None else w.reshape((1, C) + (1,) * (x.ndim - 2))  # (1, C, 1, ...)
            q = w_c * ((1 - eps) * t + eps / C)  # (N, C, *)
            valid = xp.ones(x.shape[:1] + x.shape[2:], dtype=bool)  # (N, *)
            denom = x.size // C if C else 0
            self.w_c = w_c
            loss = -(q * log_p).sum(axis=1)  # (N, *)
        else:
            valid = t != self.ignore_index  # (N, *)
            t = xp.where(valid, t, 0)  # ignored targets point at class 0, with weight 0
            q, w_t = _class_index_q(xp, t, valid, w, C, eps, x.dtype)
            denom = w_t.sum()
            # -sum_c q_ic log p_ic with the one-hot part gathered, so that 0 * log 0 never appears:
            log_p_t = xp.where(valid, xp.take_along_axis(log_p, t[:, None], axis=1)[:, 0], 0)  # (N, *)
            loss = -(1 - eps) * w_t * log_p_t  # (N, *)
            if eps > 0:
                w_c = 1 if w is None else w.reshape((1, C) + (1,) * (x.ndim - 2))  # (1, C, 1, ...)
                loss -= (eps / C) * xp.where(valid, (w_c * log_p).sum(axis=1), 0)
        self.log_p, self.q, self.valid, self.denom = log_p, q, valid, denom
        y = _reduce(loss, self.reduction, denom)
        return y.reshape(()) if self.unbatched and self.reduction == "none" else y

    @_like_torch
    def backward(self, g: Any) -> tuple[Any, Any]:
        xp = get_array_module(g)
        log_p, q = self.log_p, self.q
        if self.unbatched and self.reduction == "none":
            g = g.reshape(1)
        s = _sample_scale(xp, g, self.reduction, self.denom, self.valid)[:, None]  # (N, 1, *)
        dx = dt = None
        if self.needs_input_grad[0]:
            p = xp.exp(log_p)  # softmax(x)
            dx = s * (p * q.sum(axis=1, keepdims=True) - q)  # (N, C, *)
        if self.needs_input_grad[1]:
            dt = (-(1 - self.eps) * s) * self.w_c * log_p  # (N, C, *)
        if self.unbatched:
            dx = None if dx is None else dx.reshape(dx.shape[1:])
            dt = None if dt is None else dt.reshape(dt.shape[1:])
        return dx, dt


class NLLLoss(Function):
    r"""loss_i = -w_{t_i} x_{i, t_i} (0 for ignored samples) for log-probabilities x; reduction as in
    CrossEntropy ("mean" divides by D = sum_i w_{t_i} over non-ignored samples).
    In the notation of CrossEntropy with eps = 0: q_ic = w_{t_i} [c = t_i], loss_i = -sum_c q_ic x_ic.

    Backward: dloss_i/dx_ik = -q_ik, so dx_ik = -s_i q_ik with s_i = dL/dloss_i (g_i, g or g / D).
    Shapes: x (N, C, *); t (N, *); w (C,); loss (N, *) or ().
    """

    saved = ("unbatched", "q", "valid", "denom")

    def __init__(self, weight: Any | None, ignore_index: int, reduction: str) -> None:
        self.w, self.ignore_index, self.reduction = weight, ignore_index, reduction

    @_like_torch
    def forward(self, x: Any, t: Any) -> Any:
        xp = get_array_module(x)
        self.unbatched = x.ndim == 1
        if self.unbatched:
            x, t = x[None], t[None]  # (1, C), (1,)
        valid = t != self.ignore_index  # (N, *)
        t = xp.where(valid, t, 0)  # ignored targets point at class 0, with weight 0
        q, w_t = _class_index_q(xp, t, valid, self.w, x.shape[1], 0.0, x.dtype)
        x_t = xp.where(valid, xp.take_along_axis(x, t[:, None], axis=1)[:, 0], 0)  # (N, *)
        loss = -w_t * x_t  # (N, *)
        self.q, self.valid, self.denom = q, valid, w_t.sum()
        y = _reduce(loss, self.reduction, self.denom)
        return y.reshape(()) if self.unbatched and self.reduction == "none" else y

    @_like_torch
    def backward(self, g: Any) -> tuple[Any, None]:
        xp = get_array_module(g)
        if self.unbatched and self.reduction == "none":
            g = g.reshape(1)
        s = _sample_scale(xp, g, self.reduction, self.denom, self.valid)[:, None]  # (N, 1, *)
        dx = -s * self.q  # (N, C, *)
        return (dx.reshape(dx.shape[1:]) if self.unbatched else dx), None


def _check_common(op: str, input: Any, weight: Any, reduction: str) -> int:  # noqa: A002
    """Check input, weight and reduction; return the number of classes C."""
    if not isinstance(input, Tensor):
        raise TypeError(f"{op}: expected input to be a Tensor, got {type(input).__name__}")
    if input.ndim == 0:
        raise ShapeError(f"{op}: expected input of shape (C,), (N, C) or (N, C, d1, ...), got a 0-d input")
    if input.dtype.kind != "f":
        raise DTypeError(f"{op}: expected a floating-point input, got {input.dtype}")
    if reduction not in _REDUCTIONS:
        raise ValueError(
            f"{op}: {reduction!r} is not a valid value for reduction (expected 'none', 'mean' or 'sum')"
        )
    C = input.shape[0] if input.ndim == 1 else input.shape[1]
    if C == 0:
        raise ShapeError(f"{op}: expected at least one class, got input of shape {input.shape}")
    check_vector(op, "weight", weight, C, input, per="class")
    return C


def _check_class_index_target(op: str, input: Tensor, target: Tensor, C: int, ignore_index: int) -> None:
    """Integer target of input's shape without the class axis, each value in [0, C) or ignore_index."""
    expected = () if input.ndim == 1 else input.shape[:1] + input.shape[2:]
    if target.dtype.kind not in "iu":
        hint = ""
        if target.dtype.kind == "f" and op == "cross_entropy":
            hint = f" (a float target means class probabilities only with the input's shape {input.shape})"
        raise DTypeError(
            f"{op}: expected class-index targets of an integer dtype with shape {expected}, "
            f"got a {target.dtype} target of shape {target.shape}{hint}"
        )
    if target.shape != expected:
        raise ShapeError(
            f"{op}: expected target of shape {expected} for input of shape {input.shape} "
            f"(the input's shape without the class dimension), got target of shape {target.shape}"
        )
    t = target.data
    xp = get_array_module(t)
    bad = (t != ignore_index) & ((t < 0) | (t >= C))

    def error(where: str = "") -> TargetIndexError:
        value = int(t[bad].ravel()[0])
        return TargetIndexError(
            f"{op}: target {value} is out of bounds: class indices must lie in [0, {C}) for input of shape "
            f"{input.shape} (or equal ignore_index={ignore_index}); "
            f"{int(xp.count_nonzero(bad))} target(s) are out of bounds{where}"
        )

    if xp is np:
        if bad.any():
            raise error()
    else:  # CuPy would wrap the index silently; reading the check now would wait for the device each call
        where = " (checked on the GPU; raised at the first read of a value from it after the call)"
        defer_check(bad.any(), lambda: error(where))


def _check_target(op: str, input: Tensor, target: Any) -> None:
    if not isinstance(target, Tensor):
        raise TypeError(f"{op}: expected target to be a Tensor, got {type(target).__name__}")
    if target.device != input.device:
        raise DeviceError(f"{op}: target is on {target.device} but input is on {input.device}")


def cross_entropy(
    input: Tensor,  # noqa: A002 - PyTorch's name
    target: Tensor,
    weight: Tensor | None = None,
    *,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> Tensor:
    """Cross-entropy between softmax(input) along the class dim and ``target``, as torch.nn.functional.

    ``target`` holds class indices (an integer tensor of input's shape without the class dim) or class
    probabilities (a float tensor of input's shape; ``ignore_index`` does not apply to them).
    """
    op = "cross_entropy"
    C = _check_common(op, input, weight, reduction)
    _check_target(op, input, target)
    if isinstance(label_smoothing, bool) or not isinstance(label_smoothing, numbers.Real):
        raise TypeError(f"{op}: label_smoothing must be a float, got {label_smoothing!r}")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"{op}: label_smoothing must be between 0.0 and 1.0, got {label_smoothing}")
    if target.dtype.kind == "f" and target.shape == input.shape:  # class probabilities
        if target.dtype != input.dtype:
            raise DTypeError(
                f"{op}: class-probability target dtype {target.dtype} does not match "
                f"input dtype {input.dtype}"
            )
        if ignore_index >= 0:
            raise ValueError(
                f"{op}: ignore_index={ignore_index} is not supported for class-probability targets"
            )
    else:
        _check_class_index_target(op, input, target, C, ignore_index)
    w = None if weight is None else weight.data
    return CrossEntropy(w, int(ignore_index), reduction, float(label_smoothing))(input, target)


def nll_loss(
    input: Tensor,  # noqa: A002 - PyTorch's name
    target: Tensor,
    weight: Tensor | None = None,
    *,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> Tensor:
    """Negative log-likelihood of class-index ``target`` under log-probabilities ``input``, as torch."""
    op = "nll_loss"
    C = _check_common(op, input, weight, reduction)
    _check_target(op, input, target)
    _check_class_index_target(op, input, target, C, ignore_index)
    w = None if weight is None else weight.data
    return NLLLoss(w, int(ignore_index), reduction)(input, target)
