"""Solution: the residual add's fan-out."""

import numpy as np


def residual_fanout(x: np.ndarray, w: np.ndarray, g: np.ndarray) -> tuple:
    r"""y = x + relu(h), h = x @ w. x reaches y along two paths, the shortcut and the branch, and the
    multivariable chain rule adds them: dL/dx = (dL/dx through the shortcut) + (dL/dx through the branch).

    Shortcut: y = x + ..., so it passes g through unchanged.
    Branch:   dL/dh = g * [h > 0]  (ReLU's gate);  h = x @ w gives dL/dx = dL/dh @ w^T and
              dL/dw = x^T @ dL/dh  (each entry h_nj = sum_i x_ni w_ij).
    So  dx = g + (g * [h > 0]) @ w^T,  dw = x^T @ (g * [h > 0]).

    This is why a ResNet trains at depth: whatever the branch does to the gradient, the shortcut term g
    reaches x intact, through every block down to the first.
    """
    h = x @ w  # (N, D)
    dh = g * (h > 0)  # (N, D)
    dx = g + dh @ w.T  # shortcut + branch
    dw = x.T @ dh  # (D, D)
    return dx, dw
