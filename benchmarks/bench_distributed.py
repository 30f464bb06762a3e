"""Data-parallel training throughput: one rank against two, and the share of a step spent communicating.

    python benchmarks/bench_distributed.py              # the table (about a minute on 2 cores)
    python benchmarks/bench_distributed.py --steps 3    # a smoke run

The workload is a training step (zero_grad, forward, cross_entropy, backward, SGD with momentum) of
cifar_resnet(20) on 1x28x28 images, float32, wrapped in DistributedDataParallel, for one global batch
(``--batch``, default 128) split over the ranks. Each configuration runs as its own ``mpiexec`` job with
its BLAS thread count set per rank before NumPy loads (OMP/OPENBLAS/MKL_NUM_THREADS):

    1 rank  x 2 BLAS threads   the whole machine in one process (the baseline)
    1 rank  x 1 BLAS thread    one core: what each rank of the next row gets
    2 ranks x 1 BLAS thread    the same global batch, half on each rank

images/s = global batch / median step time. "comm" is the time per step inside minires.distributed's
collectives (the gradient all-reduce and the buffer broadcast before each forward), waiting for the slower
rank included; "all-reduce alone" times the same gradient all-reduce outside training, so the difference
is time spent waiting for the other rank.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = [(1, 2), (1, 1), (2, 1)]  # (ranks, BLAS threads per rank)


# ----- one rank --------------------------------------------------------------------------------------------
def worker(out: Path, batch: int, steps: int, warmup: int) -> None:
    import numpy as np

    import minires as mr
    import minires.distributed as dist
    import minires.nn.functional as F
    from minires.models import cifar_resnet
    from minires.nn.parallel import DistributedDataParallel

    dist.init_process_group("mpi")
    rank, world = dist.get_rank(), dist.get_world_size()
    comm_time = [0.0]

    def timed(fn: Any) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                comm_time[0] += time.perf_counter() - start

        return call

    all_reduce = dist.all_reduce
    dist.all_reduce, dist.broadcast = timed(dist.all_reduce), timed(dist.broadcast)  # what DDP calls

    mr.manual_seed(0)
    model = DistributedDataParallel(cifar_resnet(20, in_channels=1))
    opt = mr.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    local = batch // world
    rng = np.random.default_rng(rank)
    x = mr.tensor(rng.random((local, 1, 28, 28), dtype=np.float32))
    y = mr.tensor(rng.integers(0, 10, size=local))
    step_times, comm_times = [], []
    for i in range(warmup + steps):
        dist.barrier()  # start together: a step's time is the global step's
        comm_time[0] = 0.0
        start = time.perf_counter()
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
        elapsed = time.perf_counter() - start
        if i >= warmup:
            step_times.append(elapsed)
            comm_times.append(comm_time[0])
    grads = np.zeros(sum(p.numel() for p in model.parameters()), dtype=np.float32)
    alone = []
    for _ in range(10):
        dist.barrier()
        start = time.perf_counter()
        all_reduce(grads)
        alone.append(time.perf_counter() - start)
    result = {
        "ranks": world,
        "threads": os.environ.get("OPENBLAS_NUM_THREADS", "?"),
        "batch": batch,
        "step_s": statistics.median(step_times),
        "comm_s": statistics.median(comm_times),
        "allreduce_alone_s": statistics.median(alone),
        "grad_mb": grads.nbytes / 2**20,
    }
    if rank == 0:
        out.write_text(json.dumps(result))
    dist.destroy_process_group()


# ----- the launcher ----------------------------------------------------------------------------------------
def mpiexec() -> str:
    found = Path(sys.executable).parent / "mpiexec"
    path = str(found) if found.exists() else shutil.which("mpiexec")
    if path is None:
        sys.exit("mpiexec not found: pip install 'minires[distributed]'")
    return path


def run(ranks: int, threads: int, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    exe = mpiexec()
    version = subprocess.run([exe, "--version"], capture_output=True, text=True).stdout
    # Open MPI pins each rank to a core by default: a rank with 2 BLAS threads would run them on one core
    flags = ["--allow-run-as-root", "--oversubscribe", "--bind-to", "none"] if "Open MPI" in version else []
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(threads)
    command = [exe, "-n", str(ranks), *flags, sys.executable, "-m", "mpi4py", __file__, "--worker", str(out)]
    command += ["--batch", str(args.batch), "--steps", str(args.steps), "--warmup", str(args.warmup)]
    subprocess.run(command, check=True, env=env, timeout=600)
    return json.loads(out.read_text())


def isa() -> str:
    try:
        flags = next(line for line in open("/proc/cpuinfo") if line.startswith("flags")).split()
    except (OSError, StopIteration):
        return "unknown"
    return next((name.upper() for name in ("avx512f", "avx2", "avx", "sse4_2") if name in flags), "unknown")


def cpu_name() -> str:
    try:
        line = next(line for line in open("/proc/cpuinfo") if line.startswith("model name"))
        return line.split(":", 1)[1].strip()
    except (OSError, StopIteration):
        return platform.processor() or "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=128, help="global batch, split over the ranks")
    parser.add_argument("--steps", type=int, default=10, help="timed steps")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:
        worker(args.worker, args.batch, args.steps, args.warmup)
        return
    import mpi4py
    import numpy as np

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, (ranks, threads) in enumerate(CONFIGS):
            rows.append(run(ranks, threads, args, Path(tmp) / f"{i}.json"))
    print(f"machine: {cpu_name()}, {os.cpu_count()} cores, ISA {isa()}")
    print(f"python {platform.python_version()}, numpy {np.__version__}, mpi4py {mpi4py.__version__}")
    print(
        f"workload: train cifar_resnet20 1x28x28 float32, global batch {args.batch}, DDP, SGD momentum 0.9; "
        f"median of {args.steps} steps after {args.warmup} warm-up"
    )
    print(f"gradients: {rows[0]['grad_mb']:.2f} MiB float32, one bucket (bucket_cap_mb=25)\n")
    header = (
        f"{'ranks x threads':>15} {'img/s':>8} {'speedup':>8} {'step ms':>8} {'comm ms':>8} {'comm %':>7} "
        f"{'all-reduce alone ms':>20}"
    )
    print(header)
    print("-" * len(header))
    base = rows[0]["step_s"]
    for r in rows:
        step, comm = r["step_s"], r["comm_s"]
        cells = [
            f"{r['ranks']:>7} x {r['threads']:<5}",
            f"{r['batch'] / step:>8.1f}",
            f"{base / step:>8.2f}",
            f"{1e3 * step:>8.1f}",
            f"{1e3 * comm:>8.1f}",
            f"{100 * comm / step:>6.1f}%",
            f"{1e3 * r['allreduce_alone_s']:>20.2f}",
        ]
        print(" ".join(cells))


if __name__ == "__main__":
    main()
