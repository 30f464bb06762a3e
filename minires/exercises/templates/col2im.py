import numpy as np


def col2im(cols: np.ndarray, x_shape: tuple, kernel_size: int, stride: int, padding: int) -> np.ndarray:
    """Fold patch columns back onto the image: the adjoint of im2col, and the last step of conv's dx.

    im2col (stride S, padding P, a K x K kernel) copies each patch of the zero-padded x into a column:
        cols[(c, kh, kw), (n, oh, ow)] = x_pad[n, c, oh*S + kh, ow*S + kw]
    rows ordered c, then kh, then kw; columns ordered n, then oh, then ow; OH = (H + 2P - K) // S + 1.

    Inputs: cols (C*K*K, N*OH*OW) (a gradient with respect to the columns); x_shape = (N, C, H, W);
    kernel_size K, stride S, padding P (ints).
    Return x (N, C, H, W): each pixel's entry is the sum of the cols entries that were copied from it
    (a pixel lies in several patches when S < K), the padding cropped off.

    No loop over pixels or images: loop over the K*K kernel offsets (kh, kw), each one a strided slice.
    """
    raise NotImplementedError("write col2im")
