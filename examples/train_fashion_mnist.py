"""Train a small conv net with minires's functional API, end to end.

This is a placeholder until the Fashion-MNIST pipeline lands: it trains on synthetic data (10 classes of
1x28x28 images, each class a fixed random template plus Gaussian noise, so the task is learnable) using
nothing but tensors, autograd and `minires.nn.functional`, with plain SGD written inline.

    python examples/train_fashion_mnist.py --epochs 3 --batch-size 64 --lr 0.1

Prints one line per epoch and exits non-zero if the final test accuracy is below MIN_TEST_ACC.
"""

from __future__ import annotations

import argparse
import math
import sys
import time

import numpy as np

import minires as mr
import minires.nn.functional as F

try:
    from tqdm import tqdm
except ImportError:  # the progress bar is optional
    tqdm = None

# ---- defaults (each one a command-line flag) ----
EPOCHS = 3
BATCH_SIZE = 64
LR = 0.1
SEED = 0
LIMIT_TRAIN = None  # use only the first N training images
DEVICE = "cpu"  # or "cuda" with CuPy and a GPU
# ---- synthetic data ----
NUM_CLASSES = 10
N_TRAIN, N_TEST = 2048, 512
NOISE_STD = 3.0  # per pixel, against templates of unit variance
MIN_TEST_ACC = 0.5  # below this the run counts as failed


def make_data(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Images (N, 1, 28, 28) float32 and labels (N,) int64: a class's template plus noise."""
    rng = np.random.default_rng(seed)
    # Blocky templates (7x7 random values, each a 4x4 patch) survive 3x3 convs and 2x2 pooling.
    coarse = rng.standard_normal((NUM_CLASSES, 1, 7, 7))  # (10, 1, 7, 7)
    templates = np.kron(coarse, np.ones((1, 1, 4, 4)))  # (10, 1, 28, 28)

    def sample(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = rng.integers(0, NUM_CLASSES, size=n)  # (n,)
        x = templates[y] + NOISE_STD * rng.standard_normal((n, 1, 28, 28))  # (n, 1, 28, 28)
        return x.astype(np.float32), y.astype(np.int64)

    x_train, y_train = sample(N_TRAIN)
    x_test, y_test = sample(N_TEST)
    return x_train, y_train, x_test, y_test


def kaiming(*shape: int, fan_in: int, device: str) -> mr.Tensor:
    """A leaf parameter drawn from N(0, 2 / fan_in) (He et al. 2015, for ReLU nets)."""
    w = mr.randn(*shape, device=device, requires_grad=True)
    w.data *= math.sqrt(2.0 / fan_in)  # scale the raw array in place, so w stays a leaf
    return w


def init_model(device: str) -> tuple[dict[str, mr.Tensor], dict[str, mr.Tensor]]:
    """Parameters (trained) and BatchNorm running statistics (updated in place by F.batch_norm)."""
    params = {
        "conv_w": kaiming(8, 1, 3, 3, fan_in=1 * 3 * 3, device=device),
        "conv_b": mr.zeros(8, device=device, requires_grad=True),
        "bn_gamma": mr.ones(8, device=device, requires_grad=True),
        "bn_beta": mr.zeros(8, device=device, requires_grad=True),
        "fc_w": kaiming(10, 8 * 14 * 14, fan_in=8 * 14 * 14, device=device),
        "fc_b": mr.zeros(10, device=device, requires_grad=True),
    }
    stats = {"running_mean": mr.zeros(8, device=device), "running_var": mr.ones(8, device=device)}
    return params, stats


def forward(x: mr.Tensor, params: dict[str, mr.Tensor], stats: dict[str, mr.Tensor], training: bool):
    h = F.conv2d(x, params["conv_w"], params["conv_b"], padding=1)  # (N, 8, 28, 28)
    h = F.batch_norm(
        h,
        stats["running_mean"],
        stats["running_var"],
        params["bn_gamma"],
        params["bn_beta"],
        training=training,
    )
    h = F.relu(h)
    h = F.max_pool2d(h, 2)  # (N, 8, 14, 14)
    h = mr.flatten(h, 1)  # (N, 8*14*14)
    return F.linear(h, params["fc_w"], params["fc_b"])  # (N, 10)


def evaluate(x: np.ndarray, y: np.ndarray, params, stats, batch_size: int, device: str) -> float:
    correct = 0
    with mr.no_grad():
        for i in range(0, len(x), batch_size):
            logits = forward(mr.tensor(x[i : i + batch_size], device=device), params, stats, training=False)
            correct += int((logits.argmax(1).numpy() == y[i : i + batch_size]).sum())
    return correct / len(x)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE)
    parser.add_argument("--lr", type=float, default=LR)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--limit-train", type=int, default=LIMIT_TRAIN, help="use only N training images")
    parser.add_argument("--device", default=DEVICE, choices=["cpu", "cuda"])
    args = parser.parse_args(argv)

    mr.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    x_train, y_train, x_test, y_test = make_data(args.seed)
    if args.limit_train is not None:
        x_train, y_train = x_train[: args.limit_train], y_train[: args.limit_train]
    params, stats = init_model(args.device)
    n = len(x_train)
    print(f"synthetic data: {n} train / {len(x_test)} test, {NUM_CLASSES} classes, device {args.device}")

    test_acc = 0.0
    for epoch in range(1, args.epochs + 1):
        t0 = time.perf_counter()
        order = rng.permutation(n)
        starts = range(0, n, args.batch_size)
        if tqdm is not None:
            starts = tqdm(starts, desc=f"epoch {epoch}", leave=False, disable=None)
        loss_sum, correct = 0.0, 0
        for i in starts:
            idx = order[i : i + args.batch_size]
            xb = mr.tensor(x_train[idx], device=args.device)  # (B, 1, 28, 28)
            yb = mr.tensor(y_train[idx], device=args.device)  # (B,)
            logits = forward(xb, params, stats, training=True)  # (B, 10)
            loss = F.cross_entropy(logits, yb)
            loss.backward()
            with mr.no_grad():  # plain SGD: p <- p - lr * dL/dp
                for p in params.values():
                    p.data -= args.lr * p.grad.data
                    p.grad = None
            loss_sum += loss.item() * len(idx)
            correct += int((logits.argmax(1).numpy() == y_train[idx]).sum())
        test_acc = evaluate(x_test, y_test, params, stats, args.batch_size, args.device)
        seconds = time.perf_counter() - t0
        print(
            f"epoch {epoch}: train loss {loss_sum / n:.4f}, train acc {correct / n:.3f}, "
            f"test acc {test_acc:.3f}, {seconds:.1f}s"
        )

    if test_acc < MIN_TEST_ACC:
        print(f"final test accuracy {test_acc:.3f} is below {MIN_TEST_ACC}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
