import numpy as np


def maxpool_tie_backward(x: np.ndarray, g: np.ndarray, kernel_size: int, stride: int) -> np.ndarray:
    """Max pooling's backward when windows hold their maximum more than once.

    Forward: y[n, c, oh, ow] = max of x[n, c, oh*S : oh*S + K, ow*S : ow*S + K] (no padding), so
    OH = (H - K) // S + 1, and likewise OW.

    The max is not differentiable where two elements of a window tie; any convex combination of the tied
    elements' indicator vectors is a subgradient. PyTorch (and minires) pick one: the FIRST maximal element
    of the window in row-major order (smallest kh, then smallest kw). Windows overlap when S < K: an
    element that is the chosen maximum of several windows collects all their gradients.

    Inputs: x (N, C, H, W) with many ties (its values are 0, 1 and 2); g = dL/dy (N, C, OH, OW);
    kernel_size K, stride S (ints).
    Return dx (N, C, H, W).

    Loop over the K*K offsets of the window, not over pixels.
    """
    raise NotImplementedError("write maxpool_tie_backward")
