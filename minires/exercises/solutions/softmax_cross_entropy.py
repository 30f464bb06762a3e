"""Solution: softmax cross-entropy, its gradient, and log-sum-exp."""

import numpy as np


def softmax_cross_entropy(logits: np.ndarray, target: np.ndarray) -> tuple:
    r"""For one row z with target t: loss_n = -log p_t = -z_t + log sum_j exp(z_j). So
        d loss_n / d z_j = -[j = t] + exp(z_j) / sum_k exp(z_k) = p_j - onehot(t)_j,
    and the mean over the N rows divides by N:  dlogits = (p - onehot) / N.
    The gradient of each row sums to zero and is bounded: p can only move probability between classes.

    Overflow: exp(1000) is inf in float64. Subtracting the row's max M changes nothing,
        log sum_j exp(z_j) = M + log sum_j exp(z_j - M),
    and now every exponent is <= 0 and the largest term is exactly 1, so the sum lies in [1, C]: no overflow,
    and the log of it is never log(0). p = exp(z - M - logsumexp(z - M)) is computed the same way.
    """
    N = logits.shape[0]
    shifted = logits - logits.max(axis=1, keepdims=True)  # (N, C), every row's max is 0
    log_sum = np.log(np.exp(shifted).sum(axis=1, keepdims=True))  # (N, 1), in [0, log C]
    log_p = shifted - log_sum  # log softmax
    rows = np.arange(N)
    loss = -log_p[rows, target].mean()
    dlogits = np.exp(log_p)
    dlogits[rows, target] -= 1.0
    return loss, dlogits / N
