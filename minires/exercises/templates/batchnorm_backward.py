import numpy as np


def batchnorm_backward(x: np.ndarray, gamma: np.ndarray, g: np.ndarray, eps: float) -> tuple:
    """Batch norm's backward, in training mode, in stages.

    Forward (per channel c, statistics over the m = N*H*W values of that channel):
        mu = mean(x),  var = mean((x - mu)^2)  (biased),  inv_std = 1 / sqrt(var + eps)
        x_hat = (x - mu) * inv_std,  y = gamma * x_hat + beta

    Inputs: x (N, C, H, W); gamma (C,); g = dL/dy (N, C, H, W); eps a float.
    Return the tuple (dx, dgamma, dbeta): dx (N, C, H, W), dgamma (C,), dbeta (C,).

    Work through the graph one stage at a time:
      1. recompute mu, var, inv_std and x_hat from x;
      2. dbeta and dgamma (y is linear in beta and gamma);
      3. dx_hat = dL/dx_hat;
      4. dvar and dmu: var and mu each depend on every x of the channel;
      5. dx = dx_hat * inv_std + dvar * d var/dx + dmu * d mu/dx.
    Then simplify: dx fits on one line.
    """
    raise NotImplementedError("write batchnorm_backward")
