"""Solution: max pooling's backward with ties, PyTorch's subgradient."""

import numpy as np


def maxpool_tie_backward(x: np.ndarray, g: np.ndarray, kernel_size: int, stride: int) -> np.ndarray:
    r"""Where a window's maximum is unique, y = x[a*] near x (a small change of x does not change which
    element is largest), so dy/dx is 1 at the argmax a* and 0 elsewhere. At a tie the max has a kink: its
    subdifferential is every convex combination of the tied elements' indicators, and any of them is a
    valid "gradient". PyTorch picks the first maximal element in row-major window order, so one element
    gets all of g and the others nothing (not g/2 each, which would also be a subgradient).

    To find that element, scan the K*K offsets in row-major order keeping a running maximum, and replace
    it only on a strictly greater value: on a tie the earlier offset keeps it. Then scatter-add g to the
    chosen positions: np.add.at, because with S < K one element can be the choice of several windows, and
    plain fancy-index assignment would keep only one of their gradients.
    """
    N, C, H, W = x.shape
    K, S = kernel_size, stride
    OH, OW = (H - K) // S + 1, (W - K) // S + 1
    best = np.full((N, C, OH, OW), -np.inf)
    arg_h = np.zeros((N, C, OH, OW), dtype=np.int64)  # the offset (kh, kw) of the chosen element
    arg_w = np.zeros((N, C, OH, OW), dtype=np.int64)
    for kh in range(K):
        for kw in range(K):
            window = x[:, :, kh : kh + S * (OH - 1) + 1 : S, kw : kw + S * (OW - 1) + 1 : S]  # (N, C, OH, OW)
            better = window > best  # strict: a tie keeps the earlier offset
            best = np.where(better, window, best)
            arg_h = np.where(better, kh, arg_h)
            arg_w = np.where(better, kw, arg_w)
    n, c, oh, ow = np.indices((N, C, OH, OW))
    dx = np.zeros_like(x)
    np.add.at(dx, (n, c, oh * S + arg_h, ow * S + arg_w), g)
    return dx
