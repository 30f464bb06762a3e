import numpy as np


def basic_block_backward(x: np.ndarray, params: dict, g: np.ndarray) -> dict:
    """A whole ResNet BasicBlock's backward (torchvision's block, stride 1, no downsample, training mode).

    Forward, with conv a 3x3 convolution with padding 1 and no bias, and bn batch norm over (N, H, W)
    with batch statistics (biased variance, eps = 1e-5):
        h1 = conv(x, conv1.weight);   a1 = bn(h1, bn1.weight, bn1.bias);   r1 = relu(a1)
        h2 = conv(r1, conv2.weight);  a2 = bn(h2, bn2.weight, bn2.bias)
        y  = relu(a2 + x)

    Inputs: x (N, C, H, W); params a dict with "conv1.weight", "conv2.weight" (C, C, 3, 3) and
    "bn1.weight", "bn1.bias", "bn2.weight", "bn2.bias" (C,); g = dL/dy (N, C, H, W).
    Return a dict of gradients with the keys "x" and the six parameter names, each the shape of its
    tensor.

    Go backward through the forward lines in reverse. You may reuse your answers to the other exercises
    (batchnorm_backward, col2im, conv2d_weight_grad): copy them into this file.
    """
    raise NotImplementedError("write basic_block_backward")
