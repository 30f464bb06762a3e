"""Solution: a whole BasicBlock's backward, from the other exercises' pieces."""

import numpy as np

from minires.exercises.solutions.batchnorm_backward import batchnorm_backward
from minires.exercises.solutions.col2im import col2im
from minires.exercises.solutions.conv2d_weight_grad import conv2d_weight_grad

EPS = 1e-5


def im2col(x: np.ndarray, K: int, P: int) -> np.ndarray:
    """cols[(c, kh, kw), (n, oh, ow)] = x_pad[n, c, oh + kh, ow + kw] for stride 1: (C*K*K, N*OH*OW)."""
    N, C, H, W = x.shape
    x_pad = np.pad(x, ((0, 0), (0, 0), (P, P), (P, P)))
    OH, OW = H + 2 * P - K + 1, W + 2 * P - K + 1
    cols = np.empty((C, K, K, N, OH, OW), dtype=x.dtype)
    for kh in range(K):
        for kw in range(K):
            cols[:, kh, kw] = x_pad[:, :, kh : kh + OH, kw : kw + OW].transpose(1, 0, 2, 3)
    return cols.reshape(C * K * K, N * OH * OW)


def conv(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """3x3, stride 1, padding 1, no bias: Y = W cols, (F, N*H*W) put back as (N, F, H, W)."""
    N, _, H, W = x.shape
    F = w.shape[0]
    y = w.reshape(F, -1) @ im2col(x, 3, 1)  # (F, N*H*W)
    return y.reshape(F, N, H, W).transpose(1, 0, 2, 3)


def conv_dx(g: np.ndarray, w: np.ndarray, x_shape: tuple) -> np.ndarray:
    """dcols = W^T dY, then folded back: col2im (the adjoint of the im2col in ``conv``)."""
    F = w.shape[0]
    dY = g.transpose(1, 0, 2, 3).reshape(F, -1)  # (F, N*H*W), columns (n, oh, ow)
    return col2im(w.reshape(F, -1).T @ dY, x_shape, 3, 1, 1)


def bn(h: np.ndarray, gamma: np.ndarray, beta: np.ndarray) -> np.ndarray:
    mu = h.mean(axis=(0, 2, 3), keepdims=True)
    var = h.var(axis=(0, 2, 3), keepdims=True)
    return gamma.reshape(1, -1, 1, 1) * (h - mu) / np.sqrt(var + EPS) + beta.reshape(1, -1, 1, 1)


def basic_block_backward(x: np.ndarray, params: dict, g: np.ndarray) -> dict:
    r"""Backward is the forward read bottom-up, each line replaced by its local backward:

        forward                          backward (d = dL/d of that value)
        h1 = conv(x, w1)                 dw1 = corr(x, dh1);   dx_branch = col2im(w1^T dh1)
        a1 = bn(h1, gamma1, beta1)       dh1, dgamma1, dbeta1 = batchnorm_backward(h1, gamma1, da1)
        r1 = relu(a1)                    da1 = dr1 * [a1 > 0]
        h2 = conv(r1, w2)                dw2 = corr(r1, dh2);  dr1 = col2im(w2^T dh2)
        a2 = bn(h2, gamma2, beta2)       dh2, dgamma2, dbeta2 = batchnorm_backward(h2, gamma2, da2)
        s  = a2 + x                      da2 = ds;  the shortcut's share of dx is ds
        y  = relu(s)                     ds = g * [s > 0]

    x is used twice (conv1 and the shortcut), so dx = ds + dx_branch: the fan-out of the residual add.
    The forward values the backward needs (h1, a1, r1, h2, s) are recomputed first: that is what the
    autograd engine would have saved.
    """
    w1, w2 = params["conv1.weight"], params["conv2.weight"]
    gamma1, beta1 = params["bn1.weight"], params["bn1.bias"]
    gamma2, beta2 = params["bn2.weight"], params["bn2.bias"]
    # forward
    h1 = conv(x, w1)
    a1 = bn(h1, gamma1, beta1)
    r1 = np.maximum(a1, 0)
    h2 = conv(r1, w2)
    s = bn(h2, gamma2, beta2) + x
    # backward, bottom-up
    ds = g * (s > 0)
    dh2, dgamma2, dbeta2 = batchnorm_backward(h2, gamma2, ds, EPS)
    dw2 = conv2d_weight_grad(r1, dh2, 3, 1, 1)
    da1 = conv_dx(dh2, w2, r1.shape) * (a1 > 0)
    dh1, dgamma1, dbeta1 = batchnorm_backward(h1, gamma1, da1, EPS)
    dw1 = conv2d_weight_grad(x, dh1, 3, 1, 1)
    dx = ds + conv_dx(dh1, w1, x.shape)  # shortcut + branch
    return {
        "x": dx,
        "conv1.weight": dw1,
        "bn1.weight": dgamma1,
        "bn1.bias": dbeta1,
        "conv2.weight": dw2,
        "bn2.weight": dgamma2,
        "bn2.bias": dbeta2,
    }
