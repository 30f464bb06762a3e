"""Solution: a convolution's dW as a correlation."""

import numpy as np


def conv2d_weight_grad(
    x: np.ndarray, g: np.ndarray, kernel_size: int, stride: int, padding: int
) -> np.ndarray:
    r"""y[n, f, oh, ow] = sum_{c, kh, kw} w[f, c, kh, kw] x_pad[n, c, oh*S + kh, ow*S + kw] is linear in w,
    with d y[n, f, oh, ow] / d w[f, c, kh, kw] = x_pad[n, c, oh*S + kh, ow*S + kw]. One weight is used at
    every output position and every image, so its gradient sums over all of them:
        dw[f, c, kh, kw] = sum_{n, oh, ow} g[n, f, oh, ow] x_pad[n, c, oh*S + kh, ow*S + kw]
    For fixed (kh, kw) that is the correlation of g with the input shifted by (kh, kw) and subsampled by S:
    the slice x_pad[:, :, kh : kh + S*(OH-1) + 1 : S, kw : ...] (N, C, OH, OW) against g (N, F, OH, OW),
    contracted over n, oh and ow, a (F, C) matrix product. (Across all offsets at once this is
    dW = dY @ cols^T with im2col's cols: the same sum.)
    """
    N, C, H, W = x.shape
    F, OH, OW = g.shape[1:]
    K, S, P = kernel_size, stride, padding
    x_pad = np.pad(x, ((0, 0), (0, 0), (P, P), (P, P)))
    dw = np.empty((F, C, K, K), dtype=x.dtype)
    for kh in range(K):
        for kw in range(K):
            patch = x_pad[
                :, :, kh : kh + S * (OH - 1) + 1 : S, kw : kw + S * (OW - 1) + 1 : S
            ]  # (N, C, OH, OW)
            dw[:, :, kh, kw] = np.einsum("nfhw,nchw->fc", g, patch)
    return dw
