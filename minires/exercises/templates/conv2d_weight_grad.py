import numpy as np


def conv2d_weight_grad(
    x: np.ndarray, g: np.ndarray, kernel_size: int, stride: int, padding: int
) -> np.ndarray:
    """A convolution's weight gradient, as a correlation of the input with the output gradient.

    Forward (cross-correlation, as F.conv2d; stride S, zero padding P, a K x K kernel, no bias):
        y[n, f, oh, ow] = sum over c, kh, kw of w[f, c, kh, kw] * x_pad[n, c, oh*S + kh, ow*S + kw]

    Inputs: x (N, C, H, W); g = dL/dy (N, F, OH, OW); kernel_size K, stride S, padding P (ints).
    Return dw = dL/dw (F, C, K, K).

    Loop over the K*K kernel offsets; each dw[:, :, kh, kw] is one sum over n, oh and ow.
    """
    raise NotImplementedError("write conv2d_weight_grad")
