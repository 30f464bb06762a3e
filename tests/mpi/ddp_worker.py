"""One rank of the data-parallel checks, run by tests/test_distributed.py as

    mpiexec -n K python -m mpi4py tests/mpi/ddp_worker.py OUT_DIR

Each rank trains its share of each global batch and writes what it got to OUT_DIR/rank{r}.npz; the pytest
process compares the ranks with one another and with one process on the whole global batch, which it
computes with ``reference_*`` below (the same models, data and steps, without minires.distributed).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np

import minires as mr
import minires.distributed as dist
import minires.nn as nn
import minires.nn.functional as F
from minires.data import DataLoader, DistributedSampler
from minires.nn.parallel import DistributedDataParallel as DDP

STEPS = 20  # SGD steps of each run
LOCAL_BATCH = 2  # per rank and step in the plain runs: the global batch is LOCAL_BATCH * K
LR, MOMENTUM = 0.1, 0.9
BUCKET_MB = 0.001  # about 1 KiB: the small net's gradients travel in several buckets
DATASET_SIZE = 22  # the sampler run: 22 samples over K ranks leaves a short last batch (and padding at K=4)


def plain_net() -> nn.Module:
    mr.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(4, 6, 3, stride=2),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(6, 3),
    ).double()


def bn_net() -> nn.Module:
    mr.manual_seed(1)
    return nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1, bias=False),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Conv2d(4, 6, 3, stride=2, bias=False),
        nn.BatchNorm2d(6),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(6, 3),
    ).double()


def global_batch(step: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The global batch of ``step``: (size, 2, 6, 6) float64 images and (size,) labels in 0..2."""
    rng = np.random.default_rng(1000 + step)
    x = rng.normal(size=(size, 2, 6, 6)) + rng.normal(size=(1, 2, 1, 1))
    return x, rng.integers(0, 3, size=size)


class Dataset:
    """DATASET_SIZE samples with ``.images`` and ``.labels``, as DataLoader batches them."""

    def __init__(self) -> None:
        rng = np.random.default_rng(7)
        self.images = rng.normal(size=(DATASET_SIZE, 2, 6, 6))
        self.labels = rng.integers(0, 3, size=DATASET_SIZE)

    def __len__(self) -> int:
        return DATASET_SIZE


def sgd_step(model: nn.Module, opt: Any, x: np.ndarray, y: np.ndarray, scale: float = 1.0) -> None:
    """One step on the batch (x, y): loss = scale * mean cross-entropy."""
    opt.zero_grad()
    loss = F.cross_entropy(model(mr.tensor(x)), mr.tensor(y)) * scale
    loss.backward()
    opt.step()


def params(model: nn.Module) -> dict[str, np.ndarray]:
    return {k: v.copy() for k, v in model.state_dict().items()}


# ----- one process on the global batches (the pytest process runs these) ----------------------------------
def reference_plain(world: int) -> dict[str, Any]:
    """The plain net on the global batches: the first step's gradients, the parameters after STEPS steps
    (the last half of them with two accumulated micro-batches per step)."""
    model = plain_net()
    opt = mr.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    out: dict[str, Any] = {}
    for step in range(STEPS):
        x, y = global_batch(step, 2 * LOCAL_BATCH * world)
        sgd_step(model, opt, x, y)
        if step == 0:
            out["grads"] = [p.grad.data.copy() for p in model.parameters()]
    out["params"] = params(model)
    return out


def reference_bn(world: int, sync: bool) -> dict[str, np.ndarray]:
    """The BatchNorm net on the global batches; ``sync`` only changes nothing in one process."""
    model = bn_net()
    opt = mr.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    for step in range(STEPS):
        sgd_step(model, opt, *global_batch(step, LOCAL_BATCH * world))
    return params(model)


def uneven_sizes(world: int) -> list[int]:
    return [r + 2 for r in range(world)]  # rank r holds r + 2 samples


def reference_uneven(world: int) -> dict[str, np.ndarray]:
    model = bn_net()
    opt = mr.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    for step in range(3):
        sgd_step(model, opt, *global_batch(step, sum(uneven_sizes(world))))
    return params(model)


def sampler_batches(world: int) -> list[list[np.ndarray]]:
    """For each step of one epoch of the sampler run, the K ranks' index batches (what DataLoader with a
    DistributedSampler gives each rank, unshuffled)."""
    per_rank = [list(DistributedSampler(Dataset(), world, r, shuffle=False)) for r in range(world)]
    return [[np.asarray(indices[s : s + 4]) for indices in per_rank] for s in range(0, len(per_rank[0]), 4)]


def reference_sampler(world: int) -> dict[str, np.ndarray]:
    data = Dataset()
    model = plain_net()
    opt = mr.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    for batches in sampler_batches(world):
        union = np.concatenate(batches)
        sgd_step(model, opt, data.images[union], data.labels[union])
    return params(model)


# ----- the ranks -------------------------------------------------------------------------------------
def check_collectives(rank: int, world: int) -> dict[str, np.ndarray]:
    out = {}
    t = mr.tensor(np.full(3, rank + 1.0))
    dist.all_reduce(t)
    out["sum"] = t.numpy()
    for name, op in (("avg", dist.ReduceOp.AVG), ("max", dist.ReduceOp.MAX), ("prod", dist.ReduceOp.PRODUCT)):
        a = np.full(2, rank + 1.0)
        dist.all_reduce(a, op)
        out[name] = a
    strided = np.full((4, 4), -7.0)
    strided[:, ::2] = rank + 1  # a non-contiguous view is reduced in place; the other columns stay -7
    view = strided[:, ::2]
    dist.all_reduce(view, dist.ReduceOp.MIN)
    out["min_view"] = strided
    b = mr.tensor(np.arange(3.0) + 10 * rank)
    dist.broadcast(b, src=world - 1)
    out["bcast"] = b.numpy()
    dist.barrier()
    return out


def check_shape_mismatch(rank: int) -> str:
    """A model whose second Linear differs on rank 1: every rank must raise, naming the parameter."""
    model = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 5 if rank == 1 else 2))
    try:
        DDP(model)
    except RuntimeError as exc:
        return str(exc)
    return "no error"


def run_plain(rank: int, world: int) -> dict[str, Any]:
    net = plain_net()
    for p in net.parameters():  # other weights off rank 0: DDP must start every rank from rank 0's
        p.data += rank
    model = DDP(net, bucket_cap_mb=BUCKET_MB)
    opt = mr.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    out: dict[str, Any] = {"buckets": np.asarray(model.bucket_sizes)}
    local = slice(rank * 2 * LOCAL_BATCH, (rank + 1) * 2 * LOCAL_BATCH)
    for step in range(STEPS):
        x, y = global_batch(step, 2 * LOCAL_BATCH * world)
        x, y = x[local], y[local]
        if step < STEPS // 2:
            sgd_step(model, opt, x, y)
        else:  # two micro-batches: the first accumulates under no_sync, the second averages both
            opt.zero_grad()
            half = LOCAL_BATCH
            with model.no_sync():
                (F.cross_entropy(model(mr.tensor(x[:half])), mr.tensor(y[:half])) * 0.5).backward()
            if step == STEPS // 2:
                out["no_sync_grad"] = model.module[0].weight.grad.numpy()  # local, not yet averaged
            (F.cross_entropy(model(mr.tensor(x[half:])), mr.tensor(y[half:])) * 0.5).backward()
            opt.step()
        if step == 0:
            out["grads"] = [p.grad.numpy() for p in model.module.parameters()]
    out["params"] = params(model.module)
    out["state_keys"] = np.asarray(list(model.state_dict()))
    return out


def run_bn(rank: int, world: int, sync: bool) -> dict[str, np.ndarray]:
    net = bn_net()
    if sync:
        net = nn.SyncBatchNorm.convert_sync_batchnorm(net)
    model = DDP(net)
    opt = mr.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    local = slice(rank * LOCAL_BATCH, (rank + 1) * LOCAL_BATCH)
    for step in range(STEPS):
        x, y = global_batch(step, LOCAL_BATCH * world)
        sgd_step(model, opt, x[local], y[local])
    out = params(model.module)
    model.eval()  # a forward that changes no statistic: the ranks' buffers become rank 0's, broadcast
    model(mr.tensor(x[local]))
    out.update({f"after_forward/{k}": v for k, v in model.module.state_dict().items() if "running" in k})
    return out


def run_uneven(rank: int, world: int) -> dict[str, np.ndarray]:
    """SyncBatchNorm with rank r holding r + 2 samples; each rank's mean loss weighted by
    n_r * K / N, so that DDP's average over ranks is the mean over all N samples."""
    sizes = uneven_sizes(world)
    n, start = sum(sizes), sum(sizes[:rank])
    model = DDP(nn.SyncBatchNorm.convert_sync_batchnorm(bn_net()))
    opt = mr.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    for step in range(3):
        x, y = global_batch(step, n)
        part = slice(start, start + sizes[rank])
        sgd_step(model, opt, x[part], y[part], scale=sizes[rank] * world / n)
    return params(model.module)


def run_sampler(rank: int, world: int) -> dict[str, np.ndarray]:
    data = Dataset()
    sampler = DistributedSampler(data, shuffle=False)
    loader = DataLoader(data, batch_size=4, sampler=sampler)
    model = DDP(plain_net())
    opt = mr.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    sizes = []
    for x, y in loader:
        sizes.append(len(y))
        sgd_step(model, opt, x.numpy(), y.numpy())
    return {**params(model.module), "batch_sizes": np.asarray(sizes)}


def main(out_dir: Path) -> None:
    dist.init_process_group("mpi")
    rank, world = dist.get_rank(), dist.get_world_size()
    results: dict[str, Any] = {}
    results.update({f"coll/{k}": v for k, v in check_collectives(rank, world).items()})
    results["mismatch"] = np.asarray(check_shape_mismatch(rank))
    plain = run_plain(rank, world)
    results.update({f"plain/grad{i}": g for i, g in enumerate(plain.pop("grads"))})
    results.update({f"plain/param/{k}": v for k, v in plain.pop("params").items()})
    results.update({f"plain/{k}": v for k, v in plain.items()})
    for sync in (False, True):
        results.update({f"bn{int(sync)}/{k}": v for k, v in run_bn(rank, world, sync).items()})
    results.update({f"uneven/{k}": v for k, v in run_uneven(rank, world).items()})
    results.update({f"sampler/{k}": v for k, v in run_sampler(rank, world).items()})
    np.savez(out_dir / f"rank{rank}.npz", **results)
    dist.destroy_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
