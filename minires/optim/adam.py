"""``Adam`` and ``AdamW``: adaptive moment estimation, with L2 or decoupled weight decay, as torch."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .. import backend
from ..backend import get_array_module
from .optimizer import Optimizer


class Adam(Optimizer):
    r"""``Adam(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False, *,
    maximize=False, decoupled_weight_decay=False)``, ``torch.optim.Adam``'s rule, with gamma = lr,
    lambda = weight_decay:

        m_0 <- 0, v_0 <- 0, v_0^max <- 0
        for t = 1, 2, ...:
            g_t <- -grad f_t(theta_{t-1})  if maximize  else  grad f_t(theta_{t-1})
            if lambda != 0:
                if decoupled:  theta_{t-1} <- theta_{t-1} * (1 - gamma * lambda)     (AdamW)
                else:          g_t <- g_t + lambda * theta_{t-1}                        (L2, Adam)
            m_t <- beta_1 * m_{t-1} + (1 - beta_1) * g_t
            v_t <- beta_2 * v_{t-1} + (1 - beta_2) * g_t^2
            m_hat_t <- m_t / (1 - beta_1^t)
            if amsgrad:  v_t^max <- max(v_{t-1}^max, v_t),  v_hat_t <- v_t^max / (1 - beta_2^t)
            else:        v_hat_t <- v_t / (1 - beta_2^t)
            theta_t <- theta_{t-1} - gamma * m_hat_t / (sqrt(v_hat_t) + eps)

    eps sits outside the square root and after the bias correction: the code computes, as torch does,
        denom = sqrt(v_t) / sqrt(1 - beta_2^t) + eps,
        theta_t = theta_{t-1} - (gamma / (1 - beta_1^t)) * m_t / denom,
    and m_t as torch's ``lerp``: m_{t-1} + (1 - beta_1)(g_t - m_{t-1}) (or, for 1 - beta_1 >= 1/2,
    g_t - beta_1 (g_t - m_{t-1})), equal to the line above but for rounding.
    ``t`` counts the steps at which the parameter had a gradient. State per parameter: ``step`` (t, a
    float), ``exp_avg`` (m_t), ``exp_avg_sq`` (v_t) and, with amsgrad, ``max_exp_avg_sq`` (v_t^max).
    Parameters whose ``.grad`` is None are skipped.
    """

    def __init__(
        self,
        params: Any,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
        decoupled_weight_decay: bool = False,
    ) -> None:
        name = type(self).__name__
        if not lr >= 0.0:
            raise ValueError(f"{name}: invalid learning rate lr={lr!r}; expected lr >= 0")
        if not eps >= 0.0:
            raise ValueError(f"{name}: invalid eps={eps!r}; expected eps >= 0")
        if len(betas) != 2:
            raise ValueError(f"{name}: betas must be a pair (beta1, beta2), got {betas!r}")
        for i, beta in enumerate(betas):
            if not 0.0 <= beta < 1.0:
                raise ValueError(
                    f"{name}: invalid beta parameter at index {i}: betas={betas!r}; expected [0, 1)"
                )
        if not weight_decay >= 0.0:
            raise ValueError(f"{name}: invalid weight_decay={weight_decay!r}; expected weight_decay >= 0")
        defaults = {
            "lr": lr,
            "betas": (float(betas[0]), float(betas[1])),
            "eps": eps,
            "weight_decay": weight_decay,
            "amsgrad": amsgrad,
            "maximize": maximize,
            "decoupled_weight_decay": decoupled_weight_decay,
        }
        super().__init__(params, defaults)

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        loss = self._closure_loss(closure)
        jobs = []  # the parameters the reference code updates (``_update``), after the loop
        for group in self.param_groups:
            lr, eps, lam = float(group["lr"]), float(group["eps"]), float(group["weight_decay"])
            beta1, beta2 = float(group["betas"][0]), float(group["betas"][1])
            amsgrad, maximize = group["amsgrad"], group["maximize"]
            decoupled = group["decoupled_weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                theta = p.data
                xp = get_array_module(theta)
                state = self.state[p]
                if not state:
                    state["step"] = 0.0
                    state["exp_avg"] = xp.zeros_like(theta)
                    state["exp_avg_sq"] = xp.zeros_like(theta)
                    if amsgrad:
                        state["max_exp_avg_sq"] = xp.zeros_like(theta)
                state["step"] += 1.0
                t = state["step"]
                m, v = state["exp_avg"], state["exp_avg_sq"]
                if xp is not np and not amsgrad and 1 - beta1 < 0.5:  # the GPU: one fused kernel, same rule
                    f = theta.dtype.type  # the scalars in the arrays' dtype, as the reference computes
                    decay = 1 - lr * lam if decoupled and lam != 0 else 1.0
                    self._fused(adam_step)(
                        theta, p.grad.data, m, v, f(decay), f(-1.0 if maximize else 1.0),
                        f(0.0 if decoupled else lam), f(1 - beta1), f(beta2), f(1 - beta2),
                        f(lr / (1 - beta1**t)), f((1 - beta2**t) ** 0.5), f(eps),
                    )  # fmt: skip
                    continue
                hyper = (lr, lam, beta1, beta2, eps, t, decoupled, maximize)
                v_max = state["max_exp_avg_sq"] if amsgrad else None
                jobs.append(((theta, p.grad.data, m, v, v_max), (hyper,)))
        self._in_pieces(self._update, jobs)
        return loss

    def _update(self, theta: Any, grad: Any, m: Any, v: Any, v_max: Any | None, hyper: tuple) -> None:
        """One step of the rule (the class docstring) on the arrays of one parameter, or on matching pieces
        of them (``_in_pieces``): theta, m, v and v_max (None without amsgrad) in place; grad is never
        written. The temporaries are the calling thread's scratch (``_scratch``)."""
        lr, lam, beta1, beta2, eps, t, decoupled, maximize = hyper
        xp = get_array_module(theta)
        if lam != 0 and decoupled:
            theta *= 1 - lr * lam  # theta_{t-1} (1 - gamma lambda)
        g = self._effective_grad(grad, theta, 0.0 if decoupled else lam, maximize)  # grad or scratch slot 0
        tmp = self._scratch(1, theta)

        # m_t = beta1 m_{t-1} + (1 - beta1) g_t, as torch's exp_avg.lerp_(g, 1 - beta1)
        w = 1 - beta1
        xp.subtract(g, m, out=tmp)  # g_t - m_{t-1}
        if w < 0.5:
            m += xp.multiply(tmp, w, out=tmp)
        else:
            xp.subtract(g, xp.multiply(tmp, 1 - w, out=tmp), out=m)
        # v_t = beta2 v_{t-1} + (1 - beta2) g_t^2, as torch's mul_(beta2).addcmul_(g, g, 1 - beta2)
        v *= beta2
        v += xp.multiply(xp.multiply(g, 1 - beta2, out=tmp), g, out=tmp)

        bias_correction1 = 1 - beta1**t
        bias_correction2 = 1 - beta2**t
        step_size = lr / bias_correction1
        if v_max is not None:  # amsgrad
            xp.maximum(v_max, v, out=v_max)
            v = v_max
        # denom = sqrt(v_t) / sqrt(1 - beta2^t) + eps;  theta_t = theta_{t-1} - step_size m_t / denom
        denom = xp.sqrt(v, out=tmp)
        denom /= bias_correction2**0.5
        denom += eps
        update = self._scratch(0, theta)  # g_t is no longer needed: slot 0 is free
        theta += xp.divide(xp.multiply(m, -step_size, out=update), denom, out=update)


class AdamW(Adam):
    r"""``AdamW(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False, *,
    maximize=False)``: ``torch.optim.AdamW``, Adam with decoupled weight decay (Loshchilov & Hutter):

        theta_{t-1} <- theta_{t-1} * (1 - gamma * lambda)        before the moments, which never see lambda
        m_t, v_t, m_hat_t, v_hat_t, theta_t                       as in ``Adam`` with g_t the raw gradient

    i.e. ``Adam(..., decoupled_weight_decay=True)``; see ``Adam`` for the whole rule and the state.
    """

    def __init__(
        self,
        params: Any,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
    ) -> None:
        super().__init__(
            params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize, decoupled_weight_decay=True
        )

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """As ``Optimizer.load_state_dict``; the groups stay decoupled (an Adam state dict loads too)."""
        super().load_state_dict(state_dict)
        for group in self.param_groups:
            group["decoupled_weight_decay"] = True


# ----- the same rule as one fused kernel per parameter, for the GPU (Optimizer._fused) --------------------
def adam_step(
    theta: Any, grad: Any, m: Any, v: Any, decay: Any, sign: Any, lam: Any, w: Any, beta2: Any,
    one_minus_beta2: Any, step_size: Any, sqrt_bias_correction2: Any, eps: Any,
) -> None:  # fmt: skip
    """One Adam step, elementwise, in the operation order of the reference code above (w = 1 - beta1 <
    0.5, no amsgrad): decay = 1 - gamma lambda for AdamW (1 otherwise), g = sign * grad + lam * theta."""
    theta *= decay
    g = sign * grad + lam * theta
    m += (g - m) * w
    v *= beta2
    v += g * one_minus_beta2 * g
    theta += (m * -step_size) / (backend.cupy.sqrt(v) / sqrt_bias_correction2 + eps)
