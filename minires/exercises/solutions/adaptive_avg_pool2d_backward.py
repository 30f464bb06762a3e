"""Solution: adaptive average pooling's backward, with averaging matrices."""

import numpy as np


def _averaging_matrix(size: int, out: int) -> np.ndarray:
    """A (out, size): row i is 1/len on the window floor(i*size/out) <= r < ceil((i+1)*size/out)."""
    A = np.zeros((out, size))
    for i in range(out):  # one window per output row: a loop over OH, not over pixels
        start, end = (i * size) // out, -((-(i + 1) * size) // out)  # floor, ceil
        A[i, start:end] = 1.0 / (end - start)
    return A


def adaptive_avg_pool2d_backward(x_shape: tuple, g: np.ndarray, output_size: tuple) -> np.ndarray:
    r"""Each output is the mean of its window: y[i, j] = sum_{r, s} A[i, r] x[r, s] B[j, s] with A (OH, H)
    and B (OW, W) averaging matrices (row i of A is 1/len(window i) on the window's rows). Per plane,
    y = A x B^T, linear in x, so its backward is the transpose of the same map:
        dx = A^T g B,  (H, W) = (H, OH) (OH, OW) (OW, W)
    Entry-wise: dx[r, s] = sum over the windows (i, j) containing (r, s) of g[i, j] / (len_i len_j).
    An input row in two windows (rows 2 and 4 for H = 7, OH = 3) receives from both; since the windows have
    different lengths, the weights differ from window to window: not a uniform upsampling of g.
    """
    N, C, H, W = x_shape
    OH, OW = output_size
    A, B = _averaging_matrix(H, OH), _averaging_matrix(W, OW)  # (OH, H), (OW, W)
    return np.einsum("ih,ncij,jw->nchw", A, g, B)  # A^T g B for every plane
