"""Solution: col2im, the fold that undoes im2col's copies by adding them up."""

import numpy as np


def col2im(cols: np.ndarray, x_shape: tuple, kernel_size: int, stride: int, padding: int) -> np.ndarray:
    r"""im2col is linear: cols = U x_pad, where U copies pixel x_pad[n, c, oh*S + kh, ow*S + kw] into
    entry ((c, kh, kw), (n, oh, ow)). Its adjoint U^T (the backward: dL/dx_pad = U^T dL/dcols) sends
    every entry of cols back to the pixel it was copied from and adds the entries that meet there:
        x_pad[n, c, oh*S + kh, ow*S + kw] += cols[(c, kh, kw), (n, oh, ow)]
    Check: <U x, c> = sum over entries of x[pixel(entry)] c[entry] = <x, U^T c>.

    For one offset (kh, kw) the pixels oh*S + kh (all oh) form the strided slice kh : kh + S*(OH-1) + 1 : S,
    so each offset is one slice-add of an (N, C, OH, OW) block. Different offsets hit the same pixel when
    S < K, hence += and not =. Finally the padding is cropped: the gradient that reached the zeros of the
    padding belongs to no input.
    """
    N, C, H, W = x_shape
    K, S, P = kernel_size, stride, padding
    OH, OW = (H + 2 * P - K) // S + 1, (W + 2 * P - K) // S + 1
    blocks = cols.reshape(C, K, K, N, OH, OW)  # rows (c, kh, kw), columns (n, oh, ow)
    x_pad = np.zeros((N, C, H + 2 * P, W + 2 * P), dtype=cols.dtype)
    for kh in range(K):
        for kw in range(K):
            rows = slice(kh, kh + S * (OH - 1) + 1, S)
            columns = slice(kw, kw + S * (OW - 1) + 1, S)
            x_pad[:, :, rows, columns] += blocks[:, kh, kw].transpose(1, 0, 2, 3)  # (N, C, OH, OW)
    return x_pad[:, :, P : P + H, P : P + W]
