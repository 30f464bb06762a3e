"""The exercises: for each, its random cases and the expected answer, computed by minires's own backward.

Each ``Exercise`` names the function the learner writes (the template, ``templates/<name>.py``, states
the task; ``solutions/<name>.py`` is a worked answer), the outputs it returns, ``cases(rng)``, a few
small float64 inputs as keyword arguments (odd sizes, so that a swapped axis shows), and
``reference(**case)``, the expected outputs: the same computation run through minires's ops and
``backward``, or the library routine the learner rewrites (col2im).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import models
from ..nn import functional as F
from ..ops.im2col import col2im
from ..tensor import Tensor, tensor

Case = dict[str, Any]


@dataclass(frozen=True)
class Exercise:
    """One exercise: the learner's function ``name`` returns ``outputs`` (a tuple in that order, or a dict
    with those keys when ``returns_dict``) for each case."""

    name: str
    title: str
    outputs: tuple[str, ...]
    cases: Callable[[np.random.Generator], list[Case]]
    reference: Callable[..., dict[str, np.ndarray]]
    returns_dict: bool = False


def _leaf(a: np.ndarray) -> Tensor:
    return tensor(np.asarray(a, dtype=np.float64), requires_grad=True)


def _grads(**tensors: Tensor) -> dict[str, np.ndarray]:
    return {name: t.grad.numpy() for name, t in tensors.items()}


# ----- 1. batch norm ---------------------------------------------------------------------------------------
def _batchnorm_cases(rng: np.random.Generator) -> list[Case]:
    cases = []
    for n, c, h, w in [(4, 3, 5, 5), (2, 5, 3, 4), (8, 1, 1, 1)]:
        cases.append(
            {
                "x": rng.standard_normal((n, c, h, w)) * 2 + 1,
                "gamma": rng.uniform(0.5, 2.0, c),
                "g": rng.standard_normal((n, c, h, w)),
                "eps": 1e-5,
            }
        )
    return cases


def _batchnorm_reference(
    x: np.ndarray, gamma: np.ndarray, g: np.ndarray, eps: float
) -> dict[str, np.ndarray]:
    xt, gt, bt = _leaf(x), _leaf(gamma), _leaf(np.zeros_like(gamma))
    F.batch_norm(xt, None, None, gt, bt, training=True, eps=eps).backward(tensor(g))
    return {"dx": xt.grad.numpy(), "dgamma": gt.grad.numpy(), "dbeta": bt.grad.numpy()}


# ----- 2. col2im -------------------------------------------------------------------------------------------
def _col2im_cases(rng: np.random.Generator) -> list[Case]:
    cases = []
    for (n, c, h, w), k, s, p in [((2, 3, 5, 6), 3, 1, 1), ((1, 2, 7, 5), 3, 2, 1), ((2, 1, 4, 4), 2, 2, 0)]:
        oh, ow = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
        cols = rng.standard_normal((c * k * k, n * oh * ow))
        cases.append({"cols": cols, "x_shape": (n, c, h, w), "kernel_size": k, "stride": s, "padding": p})
    return cases


def _col2im_reference(
    cols: np.ndarray, x_shape: tuple[int, ...], kernel_size: int, stride: int, padding: int
) -> dict[str, np.ndarray]:
    """minires's fold, the one Conv2d's backward uses for dx (one group: cols with a leading axis of 1)."""
    return {"x": col2im(cols[None], x_shape, kernel_size, stride, padding)}


# ----- 3. max pool at a tie --------------------------------------------------------------------------------
def _maxpool_cases(rng: np.random.Generator) -> list[Case]:
    cases = []
    for shape, k, s in [((2, 2, 5, 5), 3, 1), ((1, 3, 6, 7), 2, 2), ((2, 1, 7, 6), 3, 2)]:
        x = rng.integers(0, 3, shape).astype(np.float64)  # three values only: ties in almost every window
        oh, ow = (shape[2] - k) // s + 1, (shape[3] - k) // s + 1
        cases.append({"x": x, "g": rng.standard_normal((*shape[:2], oh, ow)), "kernel_size": k, "stride": s})
    return cases


def _maxpool_reference(x: np.ndarray, g: np.ndarray, kernel_size: int, stride: int) -> dict[str, np.ndarray]:
    xt = _leaf(x)
    F.max_pool2d(xt, kernel_size, stride).backward(tensor(g))
    return {"dx": xt.grad.numpy()}


# ----- 4. softmax cross-entropy ----------------------------------------------------------------------------
def _ce_cases(rng: np.random.Generator) -> list[Case]:
    cases = []
    for n, c, scale in [(4, 5, 2.0), (7, 3, 1.0), (3, 10, 30.0)]:  # the last: large logits, exp overflows
        cases.append({"logits": rng.standard_normal((n, c)) * scale, "target": rng.integers(0, c, n)})
    return cases


def _ce_reference(logits: np.ndarray, target: np.ndarray) -> dict[str, np.ndarray]:
    zt = _leaf(logits)
    loss = F.cross_entropy(zt, tensor(target))
    loss.backward()
    return {"loss": loss.numpy(), "dlogits": zt.grad.numpy()}


# ----- 5. the residual add's fan-out -----------------------------------------------------------------------
def _fanout_cases(rng: np.random.Generator) -> list[Case]:
    return [
        {
            "x": rng.standard_normal((n, d)),
            "w": rng.standard_normal((d, d)) / np.sqrt(d),
            "g": rng.standard_normal((n, d)),
        }
        for n, d in [(4, 3), (2, 6), (5, 1)]
    ]


def _fanout_reference(x: np.ndarray, w: np.ndarray, g: np.ndarray) -> dict[str, np.ndarray]:
    xt, wt = _leaf(x), _leaf(w)
    (xt + F.relu(xt @ wt)).backward(tensor(g))
    return _grads(dx=xt, dw=wt)


# ----- 6. conv dW as a correlation -------------------------------------------------------------------------
def _conv_dw_cases(rng: np.random.Generator) -> list[Case]:
    cases = []
    for (n, c, h, w), f, k, s, p in [
        ((2, 3, 5, 6), 4, 3, 1, 1),
        ((1, 2, 7, 7), 3, 3, 2, 0),
        ((3, 1, 4, 5), 2, 2, 1, 1),
    ]:
        oh, ow = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
        cases.append(
            {
                "x": rng.standard_normal((n, c, h, w)),
                "g": rng.standard_normal((n, f, oh, ow)),
                "kernel_size": k,
                "stride": s,
                "padding": p,
            }
        )
    return cases


def _conv_dw_reference(
    x: np.ndarray, g: np.ndarray, kernel_size: int, stride: int, padding: int
) -> dict[str, np.ndarray]:
    wt = _leaf(np.zeros((g.shape[1], x.shape[1], kernel_size, kernel_size)))  # dW does not depend on W
    F.conv2d(tensor(x), wt, None, stride, padding).backward(tensor(g))
    return {"dw": wt.grad.numpy()}


# ----- 7. adaptive average pooling, uneven windows ---------------------------------------------------------
def _adaptive_cases(rng: np.random.Generator) -> list[Case]:
    cases = []
    for (n, c, h, w), out in [((2, 3, 7, 5), (3, 2)), ((1, 2, 5, 9), (4, 4)), ((2, 1, 6, 6), (4, 5))]:
        cases.append({"x_shape": (n, c, h, w), "g": rng.standard_normal((n, c, *out)), "output_size": out})
    return cases


def _adaptive_reference(
    x_shape: tuple[int, ...], g: np.ndarray, output_size: tuple[int, int]
) -> dict[str, np.ndarray]:
    xt = _leaf(np.zeros(x_shape))  # the backward of a mean does not depend on x
    F.adaptive_avg_pool2d(xt, output_size).backward(tensor(g))
    return {"dx": xt.grad.numpy()}


# ----- 8. a whole BasicBlock -------------------------------------------------------------------------------
BLOCK_PARAMS = ("conv1.weight", "bn1.weight", "bn1.bias", "conv2.weight", "bn2.weight", "bn2.bias")


def _block_cases(rng: np.random.Generator) -> list[Case]:
    cases = []
    for n, c, h, w in [(2, 3, 5, 5), (3, 2, 4, 6), (2, 4, 3, 3)]:
        params = {
            "conv1.weight": rng.standard_normal((c, c, 3, 3)) / np.sqrt(9 * c),
            "bn1.weight": rng.uniform(0.5, 1.5, c),
            "bn1.bias": rng.standard_normal(c) * 0.1,
            "conv2.weight": rng.standard_normal((c, c, 3, 3)) / np.sqrt(9 * c),
            "bn2.weight": rng.uniform(0.5, 1.5, c),
            "bn2.bias": rng.standard_normal(c) * 0.1,
        }
        cases.append(
            {"x": rng.standard_normal((n, c, h, w)), "params": params, "g": rng.standard_normal((n, c, h, w))}
        )
    return cases


def _block_reference(x: np.ndarray, params: dict[str, np.ndarray], g: np.ndarray) -> dict[str, np.ndarray]:
    """minires's own BasicBlock (torchvision's), in training mode, with the case's parameters."""
    block = models.BasicBlock(x.shape[1], x.shape[1]).double().train()
    named = dict(block.named_parameters())
    for key in BLOCK_PARAMS:
        named[key].data[...] = params[key]
    xt = _leaf(x)
    block(xt).backward(tensor(g))
    return {"x": xt.grad.numpy(), **{key: named[key].grad.numpy() for key in BLOCK_PARAMS}}


EXERCISES: list[Exercise] = [
    Exercise(
        "batchnorm_backward",
        "batch norm's backward in stages: x_hat, dgamma, dbeta, then dx through mean and variance",
        ("dx", "dgamma", "dbeta"),
        _batchnorm_cases,
        _batchnorm_reference,
    ),
    Exercise(
        "col2im",
        "fold patch columns back onto the image, adding where patches overlap (conv's dx)",
        ("x",),
        _col2im_cases,
        _col2im_reference,
    ),
    Exercise(
        "maxpool_tie_backward",
        "max pooling's backward when a window holds its maximum twice: which element gets the gradient",
        ("dx",),
        _maxpool_cases,
        _maxpool_reference,
    ),
    Exercise(
        "softmax_cross_entropy",
        "the mean cross-entropy of softmax(logits) and its gradient (softmax - onehot) / N, overflow-safe",
        ("loss", "dlogits"),
        _ce_cases,
        _ce_reference,
    ),
    Exercise(
        "residual_fanout",
        "y = x + relu(x @ w): x feeds two branches, so its gradient is the sum of both",
        ("dx", "dw"),
        _fanout_cases,
        _fanout_reference,
    ),
    Exercise(
        "conv2d_weight_grad",
        "a convolution's dW as the correlation of the padded input with the output gradient",
        ("dw",),
        _conv_dw_cases,
        _conv_dw_reference,
    ),
    Exercise(
        "adaptive_avg_pool2d_backward",
        "adaptive average pooling's backward, with uneven and overlapping windows",
        ("dx",),
        _adaptive_cases,
        _adaptive_reference,
    ),
    Exercise(
        "basic_block_backward",
        "a whole ResNet BasicBlock's backward: conv, batch norm, ReLU, twice, and the residual add",
        ("x", *BLOCK_PARAMS),
        _block_cases,
        _block_reference,
        returns_dict=True,
    ),
]
