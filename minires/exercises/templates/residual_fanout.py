import numpy as np


def residual_fanout(x: np.ndarray, w: np.ndarray, g: np.ndarray) -> tuple:
    """A residual connection's backward: x feeds both the shortcut and the branch.

        h = x @ w,  y = x + relu(h)

    Inputs: x (N, D); w (D, D); g = dL/dy (N, D).
    Return the tuple (dx, dw): dx (N, D), dw (D, D).

    x is used twice: the chain rule sums the gradients that reach it along each path.
    """
    raise NotImplementedError("write residual_fanout")
