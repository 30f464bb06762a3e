import numpy as np


def adaptive_avg_pool2d_backward(x_shape: tuple, g: np.ndarray, output_size: tuple) -> np.ndarray:
    """Adaptive average pooling's backward, where the windows are uneven and may overlap.

    Forward (as F.adaptive_avg_pool2d): output row i averages input rows start(i) <= r < end(i), with
        start(i) = floor(i * H / OH),  end(i) = ceil((i + 1) * H / OH)
    and likewise for columns with W and OW. For H = 7, OH = 3 the windows are rows [0, 3), [2, 5), [4, 7):
    rows 2 and 4 are in two windows each.

    Inputs: x_shape = (N, C, H, W); g = dL/dy (N, C, OH, OW); output_size = (OH, OW).
    Return dx (N, C, H, W).

    Hint: the forward is y = A x B^T per plane, with A (OH, H) and B (OW, W) averaging matrices.
    """
    raise NotImplementedError("write adaptive_avg_pool2d_backward")
