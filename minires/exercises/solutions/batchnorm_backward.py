"""Solution: batch norm's backward, staged, then simplified."""

import numpy as np


def batchnorm_backward(x: np.ndarray, gamma: np.ndarray, g: np.ndarray, eps: float) -> tuple:
    r"""Per channel, with m = N*H*W and every sum and mean over (n, h, w):

    Stage 2. y = gamma * x_hat + beta is linear in beta and gamma:
        dbeta = sum(g),   dgamma = sum(g * x_hat)
    Stage 3. dx_hat = gamma * g.
    Stage 4. x_hat = (x - mu) * inv_std, inv_std = (var + eps)^(-1/2), var = mean((x - mu)^2):
        dvar = sum(dx_hat * (x - mu)) * (-1/2) (var + eps)^(-3/2)
        dmu  = -inv_std * sum(dx_hat) + dvar * mean(-2 (x - mu)) = -inv_std * sum(dx_hat)
               (the second term vanishes: the deviations from the mean sum to zero)
    Stage 5. d var/dx = 2 (x - mu) / m and d mu/dx = 1/m, so
        dx = dx_hat * inv_std + dvar * 2 (x - mu) / m + dmu / m.
    Simplified, with (x - mu) = x_hat / inv_std:
        dx = inv_std * (dx_hat - mean(dx_hat) - x_hat * mean(dx_hat * x_hat))
    The gradient loses its mean and its component along x_hat: the two directions in which batch norm's
    output cannot move (shifting or scaling x within a channel leaves x_hat as it was).
    """
    axes = (0, 2, 3)
    # Stage 1: the forward again
    mu = x.mean(axis=axes, keepdims=True)  # (1, C, 1, 1)
    var = ((x - mu) ** 2).mean(axis=axes, keepdims=True)
    inv_std = 1.0 / np.sqrt(var + eps)
    x_hat = (x - mu) * inv_std  # (N, C, H, W)
    # Stage 2
    dbeta = g.sum(axis=axes)  # (C,)
    dgamma = (g * x_hat).sum(axis=axes)
    # Stage 3
    dx_hat = g * gamma.reshape(1, -1, 1, 1)
    # Stages 4 and 5, simplified
    dx = inv_std * (
        dx_hat
        - dx_hat.mean(axis=axes, keepdims=True)
        - x_hat * (dx_hat * x_hat).mean(axis=axes, keepdims=True)
    )
    return dx, dgamma, dbeta
