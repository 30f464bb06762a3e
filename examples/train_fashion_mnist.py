"""Train a ResNet on Fashion-MNIST (or MNIST, or CIFAR-10) with minires: progress bars, one log line per
epoch, a run folder with metrics, curves, config and checkpoints, and resume.

    python examples/train_fashion_mnist.py                    # the default run (what `make train` runs)
    python examples/train_fashion_mnist.py --preset d2l       # the d2l book's recipe, exactly
    python examples/train_fashion_mnist.py --preset best      # the recipe aiming at >= 0.95 test accuracy
    python examples/train_fashion_mnist.py --preset cifar     # CIFAR-10, the CIFAR ResNet-20 with Adam
    python examples/train_fashion_mnist.py --preset mnist     # MNIST, a small GELU ResNet with SGD momentum
    python examples/train_fashion_mnist.py --dataset cifar10 --model cifar_resnet20   # any model, any data
    python examples/train_fashion_mnist.py --resume runs/X    # continue a stopped run where it stopped
    python examples/train_fashion_mnist.py --epochs 1 --limit-train 2000   # a quick look
    mpiexec -n 2 python -m mpi4py examples/train_fashion_mnist.py --sync-bn  # data parallel, 2 processes

The run folder (``--out``, default ``runs/<model>-<date>-<time>``) holds ``config.json``, ``metrics.csv``
(one row per epoch), ``curves.png`` (with matplotlib), ``checkpoint.npz`` (model, optimizer, scheduler,
data-loader and RNG state, written atomically after every epoch) and ``best.npz`` (the weights with the
best test accuracy so far). Exit status: 0 on success, 1 when the final test accuracy is below
``--target-acc`` or the loss went NaN or infinite, 2 for bad arguments or an ``--out`` that cannot be
written, 130 on Ctrl-C (one line: the last checkpoint and the ``--resume`` command). A run that ends
before its first checkpoint leaves no folder. ``--resume RUN`` keeps RUN's config.json (other flags are
named in the log as ignored) except ``--device``, ``--data-root`` and ``--epochs``: a larger
``--epochs`` trains on, its schedule rebuilt for the new length at the step reached.

Data parallel: started by ``mpiexec`` (as root, Open MPI wants ``--allow-run-as-root``, and ``--bind-to
none`` so that a rank is not pinned to one core), each rank trains a replica wrapped in
``DistributedDataParallel`` on its ``DistributedSampler`` share of each epoch; ``--batch-size`` is per
rank, as in PyTorch's DDP examples, so the global batch is ``batch_size * world_size`` (the log says it).
The train metrics are the ranks' sums of loss * n, right answers and counts, added by one float64
all-reduce per epoch. Each rank evaluates the test images ``rank, rank + R, rank + 2R, ...`` (no padding,
so every test image counts exactly once; a DistributedSampler would repeat some to even the shares) with
rank 0's BatchNorm statistics, and the sums and the confusion matrix are all-reduced. Rank 0 alone prints
and writes the run folder. Random augmentation draws, per rank, from a generator seeded by (seed, rank,
epoch), and so does minires's generator (dropout), so a run is reproducible for a fixed seed and world
size, and ``--resume`` replays it.
Started without ``mpiexec`` it is the one-process run (and needs no mpi4py).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import math
import os
import signal
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import numpy as np

import minires as mr
import minires.distributed as dist
import minires.nn as nn
import minires.nn.functional as F
import minires.optim as optim
from minires.data import CIFAR10, MNIST, DataLoader, DistributedSampler, FashionMNIST, IDXDataset
from minires.data.transforms import Compose, Normalize, RandomCrop, RandomHorizontalFlip, Resize
from minires.fileio import atomic_open
from minires.nn.parallel import DistributedDataParallel

try:
    from tqdm import tqdm
except ImportError:  # tqdm is a dependency of minires; without it there is no bar, only the epoch lines
    tqdm = None

# ---- defaults: the default run, sized for a laptop CPU (each one is a flag) ----
MODEL = "d2l_resnet18"  # any name of minires.models' zoo, or cifar_resnet20/32/44/56/110
EPOCHS = 8
BATCH_SIZE = 128
LR = 0.1  # peak learning rate, after the warmup
OPTIMIZER = "sgd"  # sgd | nesterov | adam | adamw
MOMENTUM = 0.9
WEIGHT_DECAY = 5e-4  # on conv and linear weights only, not on biases and batch-norm parameters
SCHEDULE = "cosine"  # cosine | step | constant, stepped every batch, after the warmup
WARMUP_EPOCHS = 1.0  # linear warmup from lr/10
LABEL_SMOOTHING = 0.1
AUGMENT = "auto"  # auto | none | flip | crop | crop+flip (auto: the dataset's own, see DATASETS)
ACTIVATION = "relu"  # relu | gelu (gelu replaces every nn.ReLU of the model by nn.GELU)
READ_EVERY_ON_GPU = 20  # steps between reads of the running loss from the GPU (each read waits for it)
RESIZE = 0  # 0 keeps 28x28; the d2l recipe resizes to 96
INIT = "kaiming"  # kaiming (the model's own), xavier (the d2l book's), or torch (layer defaults)
DEVICE = "auto"  # auto picks the GPU when CuPy sees one
SEED = 0
DATASET = "fashion-mnist"  # fashion-mnist | mnist | cifar10 | idx (four IDX files in --data-root, unchecked)
DATA_ROOT = None  # None: $MINIRES_DATA, ~/.cache/minires, /usr/share/datasets (see minires.data)
NORMALIZE = True  # subtract the training set's per-channel mean, divide by its std (DATASETS below)
DROP_LAST = True  # drop the last, smaller training batch of each epoch
EVAL_BATCH_SIZE = 500

# Each dataset: its class, image shape, training-set per-channel mean and std, crop padding and the
# augmentation "auto" stands for (no flips for digits: a mirrored 2 is no digit).
DATASETS: dict[str, dict[str, Any]] = {
    "fashion-mnist": dict(
        cls=FashionMNIST, shape=(1, 28, 28), mean=(0.2860,), std=(0.3530,), padding=2, augment="flip"
    ),
    "mnist": dict(cls=MNIST, shape=(1, 28, 28), mean=(0.1307,), std=(0.3081,), padding=2, augment="crop"),
    "cifar10": dict(
        cls=CIFAR10,
        shape=(3, 32, 32),
        mean=(0.4914, 0.4822, 0.4465),
        std=(0.2470, 0.2435, 0.2616),
        padding=4,
        augment="crop+flip",
    ),
    "idx": dict(cls=IDXDataset, shape=(1, 28, 28), mean=(0.2860,), std=(0.3530,), padding=2, augment="flip"),
}

PRESETS: dict[str, dict[str, Any]] = {
    # d2l.ai, section 8.6: d2l_resnet18, plain SGD lr 0.05, 10 epochs, batch 256, images resized to 96,
    # Xavier-uniform init of conv and linear weights, no augmentation, no schedule, no weight decay.
    "d2l": dict(
        model="d2l_resnet18",
        epochs=10,
        batch_size=256,
        lr=0.05,
        optimizer="sgd",
        momentum=0.0,
        weight_decay=0.0,
        schedule="constant",
        warmup_epochs=0.0,
        label_smoothing=0.0,
        augment="none",
        resize=96,
        init="xavier",
        normalize=False,  # the book's loader is ToTensor() and Resize only
        drop_last=False,
    ),
    # The ResNet training recipe (He et al.; Goyal et al.; Szegedy et al.): Nesterov momentum, weight
    # decay, Kaiming init, linear warmup then cosine, label smoothing, random crop and flip, long enough.
    "best": dict(
        model="d2l_resnet18",
        epochs=30,
        batch_size=128,
        lr=0.1,
        optimizer="nesterov",
        momentum=0.9,
        weight_decay=5e-4,
        schedule="cosine",
        warmup_epochs=1.0,
        label_smoothing=0.1,
        augment="crop+flip",
        resize=0,
        init="kaiming",
    ),
    # He et al.'s CIFAR ResNet-20 on CIFAR-10, trained with Adam as the CIFAR seed program does: per-channel
    # normalization, random crop with 4 pixels of padding and flips, cosine schedule.
    "cifar": dict(
        dataset="cifar10",
        model="cifar_resnet20",
        epochs=30,
        batch_size=128,
        lr=1e-3,
        optimizer="adam",
        weight_decay=1e-4,
        schedule="cosine",
        warmup_epochs=1.0,
        label_smoothing=0.0,
        augment="crop+flip",
        resize=0,
        init="kaiming",
    ),
    # The MNIST seed program: a small ResNet (ResNet-20 of the CIFAR family, 28x28, one channel) with GELU
    # activations, SGD with momentum, random crops and no flips.
    "mnist": dict(
        dataset="mnist",
        model="cifar_resnet20",
        activation="gelu",
        epochs=5,
        batch_size=128,
        lr=0.1,
        optimizer="sgd",
        momentum=0.9,
        weight_decay=5e-4,
        schedule="cosine",
        warmup_epochs=0.5,
        label_smoothing=0.0,
        augment="crop",
        resize=0,
        init="kaiming",
    ),
}
DEFAULTS = dict(
    model=MODEL,
    epochs=EPOCHS,
    batch_size=BATCH_SIZE,
    lr=LR,
    optimizer=OPTIMIZER,
    momentum=MOMENTUM,
    weight_decay=WEIGHT_DECAY,
    schedule=SCHEDULE,
    warmup_epochs=WARMUP_EPOCHS,
    label_smoothing=LABEL_SMOOTHING,
    augment=AUGMENT,
    activation=ACTIVATION,
    resize=RESIZE,
    init=INIT,
    normalize=NORMALIZE,
    drop_last=DROP_LAST,
    eval_batch_size=EVAL_BATCH_SIZE,
    device=DEVICE,
    seed=SEED,
    dataset=DATASET,
    data_root=DATA_ROOT,
    limit_train=None,
    limit_test=None,
    out=None,
    preset=None,
    sync_bn=False,
)
METRICS = ("epoch", "train_loss", "train_acc", "test_loss", "test_acc", "lr", "seconds")


def parse_args(argv: list[str] | None) -> tuple[dict[str, Any], argparse.Namespace]:
    """The run's config (defaults, then the preset, then the flags given) and the raw arguments."""
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    p.add_argument(
        "--preset", choices=sorted(PRESETS), help="a named recipe; flags given as well override it"
    )
    p.add_argument("--model", help=f"a model of minires.models (default {MODEL})")
    p.add_argument("--epochs", type=int, help=f"default {EPOCHS}")
    p.add_argument("--batch-size", type=int, help=f"default {BATCH_SIZE}")
    p.add_argument("--lr", type=float, help=f"peak learning rate (default {LR})")
    p.add_argument("--optimizer", choices=["sgd", "nesterov", "adam", "adamw"], help=f"default {OPTIMIZER}")
    p.add_argument("--momentum", type=float, help=f"default {MOMENTUM}")
    p.add_argument("--weight-decay", type=float, help=f"default {WEIGHT_DECAY}")
    p.add_argument("--schedule", choices=["cosine", "step", "constant"], help=f"default {SCHEDULE}")
    p.add_argument("--warmup-epochs", type=float, help=f"default {WARMUP_EPOCHS}")
    p.add_argument("--label-smoothing", type=float, help=f"default {LABEL_SMOOTHING}")
    p.add_argument(
        "--augment", choices=["auto", "none", "flip", "crop", "crop+flip"], help=f"default {AUGMENT}"
    )
    p.add_argument("--activation", choices=["relu", "gelu"], help=f"default {ACTIVATION}")
    p.add_argument("--resize", type=int, help="resize the images to this size, 0 for none (default 0)")
    p.add_argument("--init", choices=["kaiming", "xavier", "torch"], help=f"default {INIT}")
    p.add_argument("--normalize", action=argparse.BooleanOptionalAction, help=f"default {NORMALIZE}")
    p.add_argument("--drop-last", action=argparse.BooleanOptionalAction, help=f"default {DROP_LAST}")
    p.add_argument("--eval-batch-size", type=int, help=f"default {EVAL_BATCH_SIZE}")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], help=f"default {DEVICE}")
    p.add_argument("--seed", type=int, help=f"default {SEED}")
    p.add_argument("--dataset", choices=sorted(DATASETS), help=f"default {DATASET}")
    p.add_argument("--data-root", help="where the dataset's files are (default: see minires.data)")
    p.add_argument("--limit-train", type=int, help="train on the first N training images only")
    p.add_argument("--limit-test", type=int, help="evaluate on the first N test images only")
    p.add_argument("--out", help="the run folder (default runs/<model>-<date>-<time>)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR with its own config")
    p.add_argument("--stop-after", type=int, metavar="EPOCH", help="stop (resumably) after this epoch")
    p.add_argument("--target-acc", type=float, help="exit with status 1 if the final test accuracy is below")
    p.add_argument("--no-download", action="store_true", help="never download the dataset")
    p.add_argument("--no-progress", action="store_true", help="no progress bars, only the epoch lines")
    p.add_argument(
        "--sync-bn",
        action=argparse.BooleanOptionalAction,
        help="under mpiexec: BatchNorm statistics over the global batch (SyncBatchNorm; default off)",
    )
    args = p.parse_args(argv)
    config = dict(DEFAULTS)
    if args.preset:
        config.update(PRESETS[args.preset], preset=args.preset)
    for key in DEFAULTS:
        value = getattr(args, key, None)
        if value is not None:
            config[key] = value
    for key, low in (
        ("epochs", 1),
        ("batch_size", 1),
        ("eval_batch_size", 1),
        ("limit_train", 1),
        ("limit_test", 1),
    ):
        if config[key] is not None and config[key] < low:
            p.error(f"--{key.replace('_', '-')} must be >= {low}, got {config[key]}")
    if not math.isfinite(config["lr"]) or config["lr"] <= 0:
        p.error(f"--lr must be a positive number, got {config['lr']}")
    if not 0 <= config["label_smoothing"] <= 1:
        p.error(f"--label-smoothing must lie in [0, 1], got {config['label_smoothing']}")
    return config, args


# ----- the pieces of a run ------------------------------------------------------------------------------
def build_model(
    name: str, in_channels: int, num_classes: int, init: str, activation: str = "relu"
) -> nn.Module:
    """A model of the zoo for ``in_channels`` and ``num_classes``, initialized as ``init`` says, with
    ``activation`` (``gelu`` swaps each ``nn.ReLU`` module for an ``nn.GELU``)."""
    if name.startswith("cifar_resnet") and name[len("cifar_resnet") :].isdigit():
        model = mr.models.cifar_resnet(int(name[len("cifar_resnet") :]), num_classes, in_channels)
    elif (
        name in mr.models.__all__ and name[0].islower() and name not in ("conv1x1", "conv3x3", "resnet_block")
    ):
        model = getattr(mr.models, name)(num_classes=num_classes, in_channels=in_channels)
    else:
        zoo = [n for n in mr.models.__all__ if n.startswith(("resnet", "resnext", "wide", "d2l", "preact"))]
        zoo = [n for n in zoo if n != "resnet_block"] + ["cifar_resnet20", "cifar_resnet32", "cifar_resnet56"]
        raise SystemExit(f"train_fashion_mnist: unknown --model {name!r}; choose one of {', '.join(zoo)}")
    if init != "kaiming":  # "kaiming": keep the model's own (He) initialization
        for module in model.modules():
            if isinstance(module, nn.Conv2d | nn.Linear):
                if init == "xavier":
                    nn.init.xavier_uniform_(module.weight)  # the d2l book's init_cnn
                else:
                    module.reset_parameters()  # torch's layer defaults
    if activation == "gelu":
        use_gelu(model, name)
    return model


def use_gelu(model: nn.Module, name: str) -> None:
    """Replace every ``nn.ReLU`` module by ``nn.GELU()`` (the exact erf form). Models whose blocks call
    ``F.relu`` in ``forward`` (the d2l and pre-activation blocks) are refused: half of their activations
    would stay ReLU."""
    functional = [
        type(m).__name__ for m in model.modules() if isinstance(m, mr.models.Residual | mr.models.PreActBlock)
    ]
    if functional:
        raise SystemExit(
            f"train_fashion_mnist: --activation gelu needs a model whose activations are nn.ReLU modules; "
            f"{name}'s {functional[0]} blocks call F.relu. Use cifar_resnet20/32/56, resnet18/34/50, ..."
        )
    for parent in list(model.modules()):
        for child_name, child in list(parent.named_children()):
            if isinstance(child, nn.ReLU):
                setattr(parent, child_name, nn.GELU())


def make_optimizer(model: nn.Module, config: dict[str, Any]) -> optim.Optimizer:
    """Weight decay on the conv and linear weights only: decaying batch-norm scales and biases only
    fights the normalization. Two param groups, as a PyTorch recipe would write them."""
    decay = [p for n, p in model.named_parameters() if p.ndim > 1]
    no_decay = [p for n, p in model.named_parameters() if p.ndim <= 1]
    groups = [
        {"params": decay, "weight_decay": config["weight_decay"]},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    lr, name = config["lr"], config["optimizer"]
    if name in ("sgd", "nesterov"):
        nesterov = name == "nesterov" and config["momentum"] > 0
        return optim.SGD(groups, lr=lr, momentum=config["momentum"], nesterov=nesterov)
    if name == "adam":
        return optim.Adam(groups, lr=lr)
    return optim.AdamW(groups, lr=lr)


def make_scheduler(opt: optim.Optimizer, config: dict[str, Any], steps_per_epoch: int) -> Any:
    """Stepped once per batch: a linear warmup from lr/10 over ``warmup_epochs``, then the schedule."""
    total = config["epochs"] * steps_per_epoch
    warmup = min(int(round(config["warmup_epochs"] * steps_per_epoch)), total - 1)
    rest = total - warmup
    if config["schedule"] == "cosine":
        main = optim.lr_scheduler.CosineAnnealingLR(opt, T_max=rest)
    elif config["schedule"] == "step":  # x0.1 at half and at three quarters of the run
        milestones = [rest // 2, (3 * rest) // 4]
        main = optim.lr_scheduler.MultiStepLR(opt, milestones=milestones, gamma=0.1)
    else:
        main = optim.lr_scheduler.LinearLR(opt, start_factor=1.0, end_factor=1.0, total_iters=1)
    if warmup == 0:
        return main
    ramp = optim.lr_scheduler.LinearLR(opt, start_factor=0.1, end_factor=1.0, total_iters=warmup)
    return optim.lr_scheduler.SequentialLR(opt, [ramp, main], milestones=[warmup])


def load_data(config: dict[str, Any], download: bool) -> tuple[Any, Any]:
    cls = DATASETS[config["dataset"]]["cls"]
    if cls is IDXDataset and config["data_root"] is None:
        raise SystemExit("train_fashion_mnist: --dataset idx needs --data-root")
    train = cls(config["data_root"], train=True, download=download)
    test = cls(config["data_root"], train=False, download=download)
    for dataset, limit in ((train, config["limit_train"]), (test, config["limit_test"])):
        if limit is not None:
            dataset.images, dataset.labels = dataset.images[:limit], dataset.labels[:limit]
    return train, test


def augmentation(config: dict[str, Any]) -> str:
    """``--augment`` with ``auto`` resolved to the dataset's own."""
    return DATASETS[config["dataset"]]["augment"] if config["augment"] == "auto" else config["augment"]


def make_loaders(
    train: Any, test: Any, config: dict[str, Any], device: str, rank: int = 0, world: int = 0
) -> tuple[DataLoader, DataLoader]:
    """The training loader (``batch_size`` images a step) and the test loader. ``world`` > 0 (a run
    under mpiexec): rank ``rank`` of ``world`` trains on its DistributedSampler share and evaluates the
    test images rank, rank + world, ... (each image on exactly one rank, no padding)."""
    spec = DATASETS[config["dataset"]]
    augment, kinds = [], augmentation(config)
    if "crop" in kinds:
        augment.append(RandomCrop(spec["shape"][1:], padding=spec["padding"]))
    if "flip" in kinds:
        augment.append(RandomHorizontalFlip())
    resize = [Resize(config["resize"])] if config["resize"] else []
    normalize = [Normalize(spec["mean"], spec["std"])] if config["normalize"] else []
    order: dict[str, Any] = dict(shuffle=True)
    test_order: dict[str, Any] = {}
    if world:  # the same shuffle (seed + epoch) on every rank, each rank its share
        order = dict(sampler=DistributedSampler(train, world, rank, shuffle=True, seed=config["seed"]))
        test_order = dict(sampler=range(rank, len(test), world))
    train_loader = DataLoader(
        train,
        config["batch_size"],
        drop_last=config["drop_last"],
        seed=config["seed"] + rank,
        transform=Compose(augment + resize + normalize),
        device=device,
        **order,
    )
    test_loader = DataLoader(
        test, config["eval_batch_size"], transform=Compose(resize + normalize), device=device, **test_order
    )
    return train_loader, test_loader


def sum_over_ranks(values: list[float] | np.ndarray) -> np.ndarray:
    """``values`` as float64, added elementwise over the ranks by one all-reduce (alone: unchanged)."""
    array = np.array(values, dtype=np.float64)
    if dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(array)
    return array


def launched_by_mpi() -> bool:
    """Whether an MPI launcher started this process (Open MPI, MPICH's Hydra and PMIx launchers set these)."""
    return any(key in os.environ for key in ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"))


def start_ranks() -> tuple[int, int]:
    """(rank, world size) of a run under mpiexec, joining minires.distributed's group; (0, 0) alone."""
    if not launched_by_mpi():
        return 0, 0
    if not dist.is_mpi_available():
        raise SystemExit(
            "train_fashion_mnist: started by mpiexec, but mpi4py cannot be imported "
            "(pip install 'minires[distributed]')"
        )
    if not dist.is_initialized():
        dist.init_process_group("mpi")
    # Ctrl-C reaches mpiexec, which ends the ranks with SIGTERM: take it as the KeyboardInterrupt it is.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    return dist.get_rank(), dist.get_world_size()


def evaluate(model: nn.Module, loader: DataLoader, num_classes: int) -> tuple[float, float, np.ndarray]:
    """Mean loss, accuracy and the confusion matrix (rows: true class, columns: predicted)."""
    model.eval()
    losses, predicted, truth = [], [], []  # kept on the device, read once at the end
    with mr.no_grad():
        for x, y in loader:
            logits = model(x)  # (B, classes)
            losses.append(F.cross_entropy(logits, y, reduction="sum"))
            predicted.append(logits.argmax(1))
            truth.append(y)
        total_loss = mr.stack(losses).sum().item() if losses else 0.0
    confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
    if truth:
        np.add.at(confusion, (mr.cat(truth).numpy(), mr.cat(predicted).numpy()), 1)
    # Under mpiexec each rank saw its own test images: one all-reduce adds the loss and the matrix.
    sums = sum_over_ranks(np.concatenate([[total_loss], confusion.ravel()]))
    total_loss, confusion = float(sums[0]), np.rint(sums[1:]).astype(np.int64).reshape(confusion.shape)
    n = max(int(confusion.sum()), 1)
    return total_loss / n, float(np.trace(confusion)) / n, confusion


class NonFiniteLoss(RuntimeError):
    pass


def train_epoch(model, loader, opt, sched, config, epoch, progress, curve=None) -> tuple[float, float]:
    """One pass over the training set: mean loss and accuracy of the batches as they were trained.
    ``curve``, a list, gets ``(epoch - 1 + step / steps, mean loss)`` at each read of the sums: every step
    on the CPU, every READ_EVERY_ON_GPU steps on the GPU (this rank's batches)."""
    model.train()
    loss_sum, correct, seen, window_seen = 0.0, 0, 0, 0
    bar = None
    if progress and tqdm is not None:
        bar = tqdm(
            total=len(loader),
            desc=f"epoch {epoch}/{config['epochs']}",
            unit="batch",
            leave=False,
            disable=None,
        )
    start = time.perf_counter()
    # Each read of a value from the GPU waits for it to finish its queued work, so there the loss and the
    # count of right answers are summed on the device and read together every READ_EVERY_ON_GPU steps;
    # on the CPU reading is free and they are read every step (a NaN is named by its exact step).
    read_every = 1 if loader.device == "cpu" else READ_EVERY_ON_GPU
    window, first = None, 1  # the device sums [loss * batch, right answers] of steps first..step
    # Overflow in a diverging step is not a warning here: the loss check names the step and stops the run.
    with np.errstate(over="ignore", invalid="ignore"), closing_bar(bar):
        for step, (x, y) in enumerate(loader, 1):
            logits = model(x)  # (B, classes)
            loss = F.cross_entropy(logits, y, label_smoothing=config["label_smoothing"])
            with mr.no_grad():
                sums = mr.stack([loss * len(y), (logits.argmax(1) == y).sum().to(loss.dtype)])  # (2,)
                window = sums if window is None else window + sums
            window_seen += len(y)
            if step % read_every == 0 or step == len(loader):
                window_loss, window_correct = window.tolist()  # the one wait for the device
                if not math.isfinite(window_loss):
                    steps = f"step {step}" if first == step else f"steps {first}-{step}"
                    raise NonFiniteLoss(
                        f"the loss is {window_loss} at epoch {epoch}, {steps} of {len(loader)}"
                    )
                loss_sum += window_loss
                correct += int(window_correct)
                if curve is not None:
                    curve.append((epoch - 1 + step / len(loader), window_loss / window_seen))
                window, first, window_seen = None, step + 1, 0
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            seen += len(y)
            if bar is not None:
                if window is None:  # the sums were read at this step
                    rate = seen / (time.perf_counter() - start)
                    bar.set_postfix_str(
                        f"loss {loss_sum / seen:.4f} acc {correct / seen:.4f} {rate:.0f} img/s", refresh=False
                    )
                bar.update()
    # Under mpiexec: the ranks' sums, added by one float64 all-reduce (on the host, once an epoch).
    loss_sum, correct, seen = sum_over_ranks([loss_sum, correct, seen])
    return float(loss_sum / max(seen, 1)), float(correct / max(seen, 1))


@contextlib.contextmanager
def closing_bar(bar: Any) -> Iterator[None]:
    """Close the progress bar however the epoch ends (a NaN, Ctrl-C), so that it leaves no half line."""
    try:
        yield
    finally:
        if bar is not None:
            bar.close()


# ----- the run folder -----------------------------------------------------------------------------------
def write_text(path: str, text: str) -> None:
    with atomic_open(path, "w", encoding="utf-8", newline="") as f:
        f.write(text)


def write_metrics(run_dir: str, history: list[dict[str, Any]]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=METRICS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(history)
    write_text(os.path.join(run_dir, "metrics.csv"), buffer.getvalue())


def plot_curves(
    run_dir: str, history: list[dict[str, Any]], label_smoothing: float, steps: np.ndarray | None = None
) -> str:
    """curves.png: the training loss at every read step (a thin line, so that a one-epoch run shows its
    descent) and per epoch, the test loss per epoch; accuracy per epoch, train and test. Epochs on the x
    axis, integer ticks. Returns what was done, for the log. The train loss is the label-smoothed loss
    the model was trained on; the test loss is plain."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import MaxNLocator
    except ImportError:
        return "curves.png skipped: matplotlib is not installed (pip install matplotlib, or minires[plot])"
    epochs = [int(row["epoch"]) for row in history]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    smoothed = f"train (label smoothing {label_smoothing:g})" if label_smoothing else "train"
    if steps is not None and len(steps):
        ax_loss.plot(steps[:, 0], steps[:, 1], lw=0.8, alpha=0.5, color="C0", label=f"{smoothed}, per step")
    for key, label in (("train", f"{smoothed}, epoch mean"), ("test", "test")):
        ax_loss.plot(epochs, [float(row[f"{key}_loss"]) for row in history], marker="o", label=label)
        ax_acc.plot(epochs, [float(row[f"{key}_acc"]) for row in history], marker="o", label=key)
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
    for ax in (ax_loss, ax_acc):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlim(0, max(epochs, default=1) + 0.2)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    path = os.path.join(run_dir, "curves.png")
    with atomic_open(path, "wb") as f:
        fig.savefig(f, format="png", dpi=100)
    plt.close(fig)
    return f"wrote {path}"


def report(confusion: np.ndarray, classes: tuple[str, ...]) -> str:
    """Per-class accuracy with the class names, then the confusion matrix."""
    per_class = confusion.diagonal() / np.maximum(confusion.sum(axis=1), 1)
    width = max(len(c) for c in classes)
    lines = ["per-class test accuracy:"]
    lines += [f"  {name:<{width}}  {acc:.4f}" for name, acc in zip(classes, per_class, strict=True)]
    lines.append("confusion matrix (rows: true class, columns: predicted):")
    lines.append(" " * (width + 3) + " ".join(f"{i:>5}" for i in range(len(classes))))
    for i, (name, row) in enumerate(zip(classes, confusion, strict=True)):
        lines.append(f"{name:>{width}} {i:>1}" + " ".join(f"{v:>5}" for v in row))
    return "\n".join(lines)


def data_source(dataset: Any) -> str:
    """Where the data was read from, for the first log line."""
    if hasattr(dataset, "source"):
        return f"{dataset.source[0]} {dataset.source[1]}"
    files = getattr(dataset, "files", None)
    return os.path.dirname(next(iter(files.values()))) if files else "?"


def describe_data(*datasets: Any) -> str:
    """The log's line on the data files: the folder (or archive), the files, and how they were checked
    (minires.data verifies the official files by their MD5 or SHA-256 before use; IDXDataset, --dataset
    idx, checks the IDX structure only)."""
    if hasattr(datasets[0], "source"):  # CIFAR10: an archive or a folder of batch files
        kind, path = datasets[0].source
        cls = type(datasets[0])
        pinned = cls.archive_md5 if kind == "archive" else getattr(cls, "py_md5", None)
        check = "the official MD5" if pinned else "structure only, no checksum pinned"
        return f"data files: {kind} {path}; checked: {check}"
    paths = [p for d in datasets for p in getattr(d, "files", {}).values()]
    if not paths:
        return "data files: ?"
    folders = sorted({os.path.dirname(p) for p in paths})
    checks = []
    for dataset in datasets:
        for name, path in dataset.files.items():
            if path.endswith(".gz") and dataset.gz_md5.get(name):
                checks.append("official .gz MD5")
            elif dataset.resources.get(name):
                checks.append("SHA-256 of the content")
            else:
                checks.append("IDX structure only, no checksum pinned")
    names = ", ".join(os.path.basename(p) for p in paths)
    return f"data files: {names} in {', '.join(folders)}; checked: {'; '.join(sorted(set(checks)))}"


def pick_device(device: str) -> str:
    if device == "auto":
        return "cuda" if mr.cuda.is_available() else "cpu"
    if device == "cuda" and not mr.cuda.is_available():
        raise SystemExit(
            f"train_fashion_mnist: --device cuda, but the GPU cannot be used: {mr.cuda.unavailable_reason()}"
        )
    return device


# ----- main ---------------------------------------------------------------------------------------------
# Flags that --resume honours: how long to train and how to run on this machine. Every other flag is the
# run's recipe, kept from its config.json; given with --resume, it is named in the log as ignored.
RESUME_FLAGS = ("epochs", "device", "data_root")


class Run:
    """What the way out (Ctrl-C, an error) needs to know: the folder, whether this process created it,
    the last epoch checkpointed, the epoch running, the ranks."""

    def __init__(self) -> None:
        self.dir: str | None = None
        self.created = False
        self.saved_epoch = 0
        self.epoch = 0
        self.rank, self.world = 0, 0

    def resume_command(self) -> str:
        python = os.path.relpath(sys.executable)
        python = python if not python.startswith("..") else "python"
        script = os.path.relpath(os.path.abspath(__file__))
        launch = f"mpiexec -n {self.world} {python} -m mpi4py" if self.world else python
        return f"{launch} {script} --resume {self.dir}"


def main(argv: list[str] | None = None) -> int:
    """Train, or continue a run; Ctrl-C ends it with one line and exit status 130. A run stopped before
    its first checkpoint (an error, Ctrl-C, a NaN in epoch 1) leaves no folder behind."""
    run = Run()
    try:
        return train(argv, run)
    except KeyboardInterrupt:
        if run.rank == 0:
            if run.saved_epoch:
                where = (
                    f"the last checkpoint is {os.path.join(run.dir, 'checkpoint.npz')} "
                    f"(epoch {run.saved_epoch}); continue with: {run.resume_command()}"
                )
            else:
                where = "no checkpoint yet, nothing kept"
            when = (
                f"after epoch {run.epoch}"
                if run.saved_epoch and run.saved_epoch == run.epoch
                else f"in epoch {run.epoch or 1}"
            )
            print(f"interrupted {when}; {where}", file=sys.stderr, flush=True)
        return 130
    finally:
        if run.created and not os.path.exists(os.path.join(run.dir, "checkpoint.npz")):
            remove_run_dir(run.dir)


def remove_run_dir(run_dir: str) -> None:
    """Remove the folder of a run that never checkpointed: only what this script writes, then the folder
    if that left it empty."""
    for name in ("config.json", "metrics.csv", "curves.png", "best.npz", "checkpoint.npz"):
        with contextlib.suppress(OSError):
            os.remove(os.path.join(run_dir, name))
    with contextlib.suppress(OSError):
        os.rmdir(run_dir)


def train(argv: list[str] | None, run: Run) -> int:
    config, args = parse_args(argv)
    run.rank, run.world = rank, world = start_ranks()  # world 0: one process, not started by mpiexec
    say = print if rank == 0 else (lambda *a, **k: None)  # rank 0 alone logs
    notes: list[str] = []  # said after the first log line
    state = None
    if args.resume:
        run_dir = args.resume
        run.dir = run_dir
        if not os.path.isfile(os.path.join(run_dir, "config.json")):
            return error(rank, f"--resume {run_dir}: not a run folder (it has no config.json)")
        with open(os.path.join(run_dir, "config.json"), encoding="utf-8") as f:
            config = dict(DEFAULTS, **json.load(f))  # a key added since the run started takes its default
        ignored = [
            f"--{key.replace('_', '-')} {getattr(args, key)} (the run's: {config.get(key)})"
            for key in DEFAULTS
            if getattr(args, key, None) is not None and key not in RESUME_FLAGS and key != "out"
        ]
        if args.out is not None:
            ignored.append(f"--out {args.out} (the run's folder is {run_dir})")
        if ignored:
            notes.append("--resume keeps the run's config.json; ignored: " + ", ".join(ignored))
        for key in ("device", "data_root"):
            if getattr(args, key) is not None and getattr(args, key) != config[key]:
                notes.append(f"--{key.replace('_', '-')} {getattr(args, key)} (the run used {config[key]})")
                config[key] = getattr(args, key)
        checkpoint = os.path.join(run_dir, "checkpoint.npz")
        if os.path.isfile(checkpoint):
            state = mr.load(checkpoint)
            run.saved_epoch = state["epoch"]
        else:
            say(f"{run_dir} has no checkpoint (it stopped in its first epoch): starting it from epoch 1")
        new_epochs = args.epochs if args.epochs is not None else config["epochs"]
        if state is not None and new_epochs < state["epoch"]:
            return error(
                rank, f"--epochs {new_epochs}: {run_dir} has already trained {state['epoch']} epochs"
            )
        if state is not None and new_epochs == state["epoch"]:
            final = state["history"][-1]
            say(
                f"{run_dir} is finished: {state['epoch']} of {config['epochs']} epochs, final test accuracy "
                f"{float(final['test_acc']):.4f} (best {state['best_acc']:.4f}); to train longer: "
                f"--resume {run_dir} --epochs N with N > {state['epoch']}"
            )
            return 0
        scheduled = state.get("epochs", config["epochs"]) if state is not None else new_epochs
        extend_from = scheduled if new_epochs != scheduled else None  # the schedule's length changes
        config["epochs"] = new_epochs
    else:
        started = sum_over_ranks([time.time() if rank == 0 else 0.0])[0]  # rank 0's clock names the folder
        stamp = datetime.fromtimestamp(started).strftime("%Y%m%d-%H%M%S")
        run_dir = config["out"] or os.path.join("runs", f"{config['model']}-{stamp}")
        config["out"], config["world_size"] = run_dir, max(world, 1)
        extend_from = None
    progress = not args.no_progress and rank == 0
    device = pick_device(config["device"])
    mr.manual_seed(config["seed"])
    if rank == 0 and (not args.resume or extend_from is not None or state is None):
        run.dir = run_dir
        run.created = make_run_dir(run_dir, config)  # before the data: an unwritable --out fails at once

    if rank > 0:  # rank 0 downloads (where allowed and needed) before the others read
        dist.barrier()
    train_set, test_set = load_data(config, download=not args.no_download and rank == 0)
    if rank == 0 and world > 1:
        dist.barrier()
    classes = tuple(getattr(train_set, "classes", [str(i) for i in range(10)]))
    train_loader, test_loader = make_loaders(train_set, test_set, config, device, rank, world)
    spec = DATASETS[config["dataset"]]
    image = train_loader.transform(np.zeros((1, *spec["shape"]), np.float32), np.random.default_rng(0)).shape[
        1:
    ]
    model = build_model(
        config["model"], spec["shape"][0], len(classes), init=config["init"], activation=config["activation"]
    )
    if world and config["sync_bn"]:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    model = model.to(device)
    opt = make_optimizer(model, config)
    sched = make_scheduler(opt, config, len(train_loader))
    checkpoint_path, best_path = os.path.join(run_dir, "checkpoint.npz"), os.path.join(run_dir, "best.npz")

    history: list[dict[str, Any]] = []
    steps = np.zeros((0, 2))  # (x in epochs, training loss) at each read, for the curves
    best_acc, first_epoch = -1.0, 1
    if state is not None:  # on every rank: the weights before DDP wraps the model, the optimizer everywhere
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        if extend_from is None:
            sched.load_state_dict(state["scheduler"])
        else:
            done = int(state["scheduler"].get("last_epoch", state["epoch"] * len(train_loader)))
            before = opt.param_groups[0]["lr"]
            sched = extended_scheduler(opt, config, len(train_loader), done)
            notes.append(
                f"--epochs {config['epochs']}: the run was scheduled for {extend_from} epochs; its "
                f"{config['schedule']} schedule is rebuilt for {config['epochs']} epochs and continues at "
                f"its step {done} (lr {before:.4g} -> {opt.param_groups[0]['lr']:.4g}), as if the run had "
                f"been started with --epochs {config['epochs']}"
            )
        if not world:  # under mpiexec each rank's draws come from (seed, rank, epoch) instead
            train_loader.load_state_dict(state["train_loader"])
        mr.rng.set_state(state["rng"])
        history, best_acc, first_epoch = list(state["history"]), state["best_acc"], state["epoch"] + 1
        steps = np.asarray(state.get("steps", steps), dtype=np.float64).reshape(-1, 2)
        say(f"resuming {run_dir} after epoch {state['epoch']} (config from its config.json)")
        started_with = config.get("world_size", 1)
        if max(world, 1) != started_with:
            notes.append(
                f"the run started with {started_with} process(es) and resumes with {max(world, 1)}: "
                f"the global batch is now {config['batch_size'] * max(world, 1)} "
                f"({len(train_loader)} steps an epoch), the shuffle and augmentation draws differ from "
                f"an uninterrupted run"
            )
    trained = model  # what the steps call: under mpiexec the DDP wrapper, which averages the gradients
    if world:
        trained = DistributedDataParallel(model)  # broadcasts rank 0's parameters and buffers

    n_params = sum(p.numel() for p in model.parameters())
    ranks = ""
    if world:
        ranks = (
            f" x {world} processes (global batch {config['batch_size'] * world}"
            f"{', SyncBatchNorm' if config['sync_bn'] else ', BatchNorm statistics per process'})"
        )
    say(
        f"{config['model']} ({n_params:,} parameters) on {device}, {len(train_set)} training and "
        f"{len(test_set)} test images of shape {tuple(image)}, {config['epochs']} epochs "
        f"of {len(train_loader)} batches of {config['batch_size']}{ranks}; {config['optimizer']} lr "
        f"{config['lr']}, {config['schedule']} schedule, augment {augmentation(config)}, "
        f"{config['activation']}; data {config['dataset']} ({data_source(train_set)}); run folder {run_dir}"
    )
    say(describe_data(train_set, test_set))
    for note in notes:
        say(f"note: {note}")
    momentum = next(
        (m.momentum for m in model.modules() if getattr(m, "running_mean", None) is not None), None
    )
    confusion, explained = None, False
    for epoch in range(first_epoch, config["epochs"] + 1):
        run.epoch = epoch
        start = time.perf_counter()
        if world:  # the epoch's shuffle, the same on every rank; this rank's augmentation and dropout draws
            train_loader.sampler.set_epoch(epoch)
            train_loader.generator = np.random.default_rng([config["seed"], rank, epoch])
            mr.manual_seed(int(np.random.SeedSequence([config["seed"], rank, epoch]).generate_state(1)[0]))
        curve: list[tuple[float, float]] = []
        try:
            train_loss, train_acc = train_epoch(
                trained, train_loader, opt, sched, config, epoch, progress, curve
            )
        except NonFiniteLoss as exc:
            kept = (
                f"the last good checkpoint is {checkpoint_path} (epoch {run.saved_epoch})"
                if run.saved_epoch
                else "no checkpoint yet, nothing kept"
            )
            print(f"stopping: {exc}{f' (rank {rank})' if world else ''}; {kept}", file=sys.stderr, flush=True)
            if world > 1:  # the other ranks wait in a collective: end them all
                if run.created and not run.saved_epoch:
                    remove_run_dir(run_dir)
                abort_job(1)
            return 1
        steps = np.concatenate([steps, np.asarray(curve, dtype=np.float64).reshape(-1, 2)])
        if world > 1:  # rank 0's BatchNorm statistics, the ones its checkpoint holds
            for buffer in model.buffers():
                dist.broadcast(buffer, 0)
        test_loss, test_acc, confusion = evaluate(model, test_loader, len(classes))
        seconds = time.perf_counter() - start
        lr = opt.param_groups[0]["lr"]
        history.append(
            dict(
                epoch=epoch,
                train_loss=round(train_loss, 6),
                train_acc=round(train_acc, 6),
                test_loss=round(test_loss, 6),
                test_acc=round(test_acc, 6),
                lr=f"{lr:.6g}",
                seconds=round(seconds, 1),
            )
        )
        if test_acc > best_acc:
            best_acc = test_acc
            if rank == 0:
                mr.save({"model": model.state_dict(), "epoch": epoch, "test_acc": test_acc}, best_path)
        if rank == 0:
            mr.save(
                {
                    "model": model.state_dict(),
                    "optimizer": opt.state_dict(),
                    "scheduler": sched.state_dict(),
                    "train_loader": train_loader.state_dict(),
                    "rng": mr.rng.get_state(),
                    "epoch": epoch,
                    "best_acc": best_acc,
                    "history": history,
                    "steps": steps,
                    "epochs": config["epochs"],  # the length the schedule was built for
                },
                checkpoint_path,
            )
            write_metrics(run_dir, history)
        run.saved_epoch = epoch
        # The epoch's line once its checkpoint is written: a Ctrl-C after it keeps this epoch.
        few = few_steps_note(momentum, epoch * len(train_loader), test_acc, len(classes))
        say(
            f"epoch {epoch:>3}/{config['epochs']}  train loss {train_loss:.4f} acc {train_acc:.4f}  "
            f"test loss {test_loss:.4f} acc {test_acc:.4f}{few[0]}  lr {lr:.4g}  {seconds:.1f} s",
            flush=True,
        )
        if few[1] and not explained:
            say(few[1])
            explained = True
        if args.stop_after is not None and epoch >= args.stop_after and epoch < config["epochs"]:
            say(f"stopped after epoch {epoch} as asked; continue with: {run.resume_command()}")
            return 0

    final_acc = history[-1]["test_acc"]
    if rank == 0:
        print(plot_curves(run_dir, history, config["label_smoothing"], steps))
    say(report(confusion, classes))
    total = sum(float(row["seconds"]) for row in history)
    say(
        f"final test accuracy {final_acc:.4f} (best {best_acc:.4f}) after {len(history)} epochs, "
        f"{total / 60:.1f} min"
    )
    if args.target_acc is not None and final_acc < args.target_acc:
        if rank == 0:
            print(f"test accuracy {final_acc:.4f} is below --target-acc {args.target_acc}", file=sys.stderr)
        return 1
    return 0


def error(rank: int, message: str, code: int = 2) -> int:
    """One line on stderr (rank 0's), no traceback; returns the exit status."""
    if rank == 0:
        print(f"train_fashion_mnist: {message}", file=sys.stderr, flush=True)
    return code


def make_run_dir(run_dir: str, config: dict[str, Any]) -> bool:
    """Create the run folder and write config.json; whether the folder was created (False: it existed).
    A place that cannot be written ends the run with one line and exit status 2."""
    existed = os.path.isdir(run_dir)
    try:
        os.makedirs(run_dir, exist_ok=True)
        write_text(os.path.join(run_dir, "config.json"), json.dumps(config, indent=2) + "\n")
    except OSError as exc:
        print(
            f"train_fashion_mnist: cannot write the run folder {run_dir}: {exc}", file=sys.stderr, flush=True
        )
        raise SystemExit(2) from None
    return not existed


def extended_scheduler(opt: optim.Optimizer, config: dict[str, Any], steps_per_epoch: int, done: int) -> Any:
    """The schedule of a run of ``config["epochs"]`` epochs, advanced by the ``done`` steps already
    trained: what timm and most PyTorch recipes do when a run is resumed with more epochs (the cosine is
    stretched over the new total; the lr rises from the old run's end to where the new curve is)."""
    for group in opt.param_groups:
        group["lr"] = group.get("initial_lr", config["lr"])  # the schedule starts from the peak lr
    sched = make_scheduler(opt, config, steps_per_epoch)
    for _ in range(done):
        sched.step()
    return sched


def few_steps_note(momentum: float | None, steps: int, test_acc: float, classes: int) -> tuple[str, str]:
    """Beside an accuracy near chance after few steps: BatchNorm's running statistics (what evaluation
    normalizes with) still hold much of their start (mean 0, variance 1) after k steps, a share
    (1 - momentum)^k. Returns the mark for the epoch line and the line that explains it ('' when not)."""
    if momentum is None or not momentum or test_acc >= 2 / classes:
        return "", ""
    left = (1 - momentum) ** steps
    if left < 0.05:
        return "", ""
    return (
        f" (near chance; BatchNorm statistics from {steps} steps)",
        f"note: evaluation normalizes with BatchNorm's running statistics, updated with momentum "
        f"{momentum:g} each training step; after {steps} steps their start (mean 0, variance 1) still weighs "
        f"{1 - momentum:g}^{steps} = {left:.0%}, so this test accuracy says little about the weights (train "
        f"longer, or take more steps with a smaller --batch-size)",
    )


def abort_job(code: int) -> None:
    """End every rank of the MPI job with ``code`` (a rank that just returned would leave the others
    waiting forever in their next all-reduce)."""
    from mpi4py import MPI

    sys.stdout.flush()
    sys.stderr.flush()
    MPI.COMM_WORLD.Abort(code)


if __name__ == "__main__":
    sys.exit(main())
