"""``SGD``: stochastic gradient descent with momentum, dampening, Nesterov and weight decay, as torch."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..backend import get_array_module
from .optimizer import Optimizer


class SGD(Optimizer):
    r"""``SGD(params, lr=1e-3, momentum=0, dampening=0, weight_decay=0, nesterov=False, *, maximize=False)``,
    ``torch.optim.SGD``'s rule, with gamma = lr, lambda = weight_decay, mu = momentum, tau = dampening:

        for t = 1, 2, ...:
            g_t <- -grad f_t(theta_{t-1})  if maximize  else  grad f_t(theta_{t-1})
            if lambda != 0:  g_t <- g_t + lambda * theta_{t-1}
            if mu != 0:
                b_t <- mu * b_{t-1} + (1 - tau) * g_t  if t > 1  else  g_t   (a copy of g_t)
                g_t <- g_t + mu * b_t  if nesterov  else  b_t
            theta_t <- theta_{t-1} - gamma * g_t

    ``t`` counts the steps at which the parameter had a gradient: b_1 is the first gradient as it is,
    undamped. Nesterov needs mu > 0 and tau = 0. State per parameter: ``momentum_buffer`` (b_t), only
    when mu != 0. Parameters whose ``.grad`` is None are skipped (no step, no state).
    """

    def __init__(
        self,
        params: Any,
        lr: float = 1e-3,
        momentum: float = 0,
        dampening: float = 0,
        weight_decay: float = 0,
        nesterov: bool = False,
        *,
        maximize: bool = False,
    ) -> None:
        if not lr >= 0.0:
            raise ValueError(f"SGD: invalid learning rate lr={lr!r}; expected lr >= 0")
        if not momentum >= 0.0:
            raise ValueError(f"SGD: invalid momentum={momentum!r}; expected momentum >= 0")
        if not weight_decay >= 0.0:
            raise ValueError(f"SGD: invalid weight_decay={weight_decay!r}; expected weight_decay >= 0")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError(
                f"SGD: Nesterov momentum requires a momentum and zero dampening, got momentum={momentum!r} "
                f"and dampening={dampening!r}"
            )
        defaults = {
            "lr": lr,
            "momentum": momentum,
            "dampening": dampening,
            "weight_decay": weight_decay,
            "nesterov": nesterov,
            "maximize": maximize,
        }
        super().__init__(params, defaults)

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        loss = self._closure_loss(closure)
        jobs = []  # the parameters the reference code updates (``_update``), after the loop
        new_buffers = []  # (p, b_1) made this step: in the state once every parameter has read its own
        for group in self.param_groups:
            lr, mu = float(group["lr"]), float(group["momentum"])
            tau, lam = float(group["dampening"]), float(group["weight_decay"])
            nesterov, maximize = group["nesterov"], group["maximize"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                theta = p.data
                xp = get_array_module(theta)
                b = self.state[p].get("momentum_buffer") if mu != 0 else None
                if xp is not np and (mu == 0 or b is not None):  # the GPU: one fused kernel, same rule
                    f = theta.dtype.type  # the scalars in the arrays' dtype, as the reference computes
                    args = (theta, p.grad.data, f(lr), f(-1.0 if maximize else 1.0), f(lam))
                    if mu == 0:
                        self._fused(sgd_step)(*args)
                    else:
                        update = sgd_nesterov_step if nesterov else sgd_momentum_step
                        self._fused(update)(*args, b, f(mu), f(1 - tau))
                    continue
                first = mu != 0 and b is None
                if first:  # b_1 = g_1, written by _update
                    b = xp.empty_like(theta)
                    new_buffers.append((p, b))
                jobs.append(((theta, p.grad.data, b), (first, (lr, mu, tau, lam, nesterov, maximize))))
        for p, b in new_buffers:  # as torch: a parameter listed twice takes a b_1 per listing, keeps the last
            self.state[p]["momentum_buffer"] = b
        self._in_pieces(self._update, jobs)
        return loss

    def _update(self, theta: Any, grad: Any, b: Any | None, first: bool, hyper: tuple) -> None:
        """One step of the rule (the class docstring) on the arrays of one parameter, or on matching pieces
        of them (``_in_pieces``): theta and b (the momentum buffer, None when mu = 0) in place; grad is never
        written. The temporaries are the calling thread's scratch (``_scratch``: one set per thread, so
        that pieces run concurrently)."""
        lr, mu, tau, lam, nesterov, maximize = hyper
        xp = get_array_module(theta)
        g = self._effective_grad(grad, theta, lam, maximize)  # g_t: grad itself or scratch slot 0
        tmp = self._scratch(1, theta)
        if mu != 0:
            if first:
                b[...] = g  # b_1 = g_1
            else:  # b_t = mu b_{t-1} + (1 - tau) g_t
                b *= mu
                b += g if tau == 0 else xp.multiply(g, 1 - tau, out=tmp)
            if nesterov:  # g_t + mu b_t, as torch's grad.add(buf, alpha=momentum)
                g = xp.add(g, xp.multiply(b, mu, out=tmp), out=tmp)
            else:
                g = b
        # theta_t = theta_{t-1} - gamma g_t, as torch's param.add_(g, alpha=-lr)
        theta += xp.multiply(g, -lr, out=tmp)


# ----- the same rule as one fused kernel per parameter, for the GPU (Optimizer._fused) --------------------
# Elementwise, with g = sign * grad + lambda * theta (sign -1 under maximize; lambda 0 adds nothing), in the
# operation order of the reference code above, so that the results agree with it.
def sgd_step(theta: Any, grad: Any, lr: Any, sign: Any, lam: Any) -> None:
    """mu = 0: theta_t = theta_{t-1} - gamma g_t."""
    theta -= lr * (sign * grad + lam * theta)


def sgd_momentum_step(
    theta: Any, grad: Any, lr: Any, sign: Any, lam: Any, b: Any, mu: Any, one_minus_tau: Any
) -> None:
    """t > 1: b_t = mu b_{t-1} + (1 - tau) g_t, theta_t = theta_{t-1} - gamma b_t."""
    g = sign * grad + lam * theta
    b *= mu
    b += one_minus_tau * g
    theta -= lr * b


def sgd_nesterov_step(
    theta: Any, grad: Any, lr: Any, sign: Any, lam: Any, b: Any, mu: Any, one_minus_tau: Any
) -> None:
    """t > 1: b_t as above, theta_t = theta_{t-1} - gamma (g_t + mu b_t)."""
    g = sign * grad + lam * theta
    b *= mu
    b += one_minus_tau * g
    theta -= lr * (g + mu * b)
