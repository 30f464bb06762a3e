"""How much each framework's step gains from its threads: one thread and all of them, taking turns.

    python benchmarks/thread_scaling.py                # cifar_resnet20 1x28x28 N128, training and inference
    python benchmarks/thread_scaling.py --only "infer cifar_resnet20 1x28x28 N128" --rounds 8

Each framework runs in a Python process of its own, as in bench.py (its "Processes": minires's malloc
settings are process-wide). In it, round after round, bench.py's step for the row runs on 1 thread and on N
(``minires.set_num_threads``, ``torch.set_num_threads``; N the usable cores, or ``--threads``), the order
swapped every round, each timed step after an untimed one at the same count. Printed: the median of each,
and the speedup. Both take turns in one process because the machine's speed drifts: a VM's, by tens of
percent within minutes (benchmarks/README.md).

The ratio of bench.py's table is the product of two things: how fast each framework is on one thread, and
how much it gains from the others. Issue 23's fifteenth round used this to find where cifar_resnet(20)'s
ratio comes from (README, "Speed against PyTorch"): on a 2-core Zen 4 VM minires's training step was not
slower than PyTorch's on one thread (442 ms against 508) and gained 1.31-1.41x from the second, PyTorch's
1.74-1.77x.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench  # noqa: E402 - puts minires (and the tests' torch twins) on sys.path

import minires as mr  # noqa: E402


def set_threads(framework: str, n: int) -> None:
    if framework == "torch":
        bench.torch.set_num_threads(n)
    else:
        mr.set_num_threads(n)


def measure(w: bench.Workload, framework: str, threads: int, rounds: int) -> dict[int, float]:
    """Median seconds of ``w``'s step for ``framework`` on 1 and on ``threads`` threads, the two taking
    turns over ``rounds`` rounds in this process (the order swapped each round, one untimed step at a
    count before its timed one); the framework's thread count is left at ``threads``."""
    step = bench.make_step(w, framework, "cpu")
    counts = (1, threads)
    times: dict[int, list[float]] = {n: [] for n in counts}
    try:
        for n in counts:  # a warm-up at each count
            set_threads(framework, n)
            step()
        for r in range(rounds):
            for n in counts if r % 2 == 0 else counts[::-1]:
                set_threads(framework, n)
                step()
                start = time.perf_counter()
                step()
                times[n].append((time.perf_counter() - start) / w.inner)
    finally:
        set_threads(framework, threads)
    return {n: statistics.median(ts) for n, ts in times.items()}


def format_scaling(name: str, threads: int, medians: dict[str, dict[int, float]]) -> str:
    lines = [f"{name}: ms a step on 1 and {threads} threads, taking turns in one process per framework"]
    for framework, m in medians.items():
        one, many = m[1], m[threads]
        lines.append(
            f"  {framework:8s} 1 thread {one * 1e3:8.1f}   {threads} threads {many * 1e3:8.1f}   "
            f"speedup {one / many:.2f}"
        )
    if {"minires", "torch"} <= medians.keys():
        mine, theirs = medians["minires"], medians["torch"]
        lines.append(
            f"  minires / torch: {mine[1] / theirs[1]:.2f} on 1 thread, "
            f"{mine[threads] / theirs[threads]:.2f} on {threads}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only", default="cifar_resnet20 1x28x28 N128", help="the rows of bench.py's table holding this"
    )
    parser.add_argument("--rounds", type=int, default=8, help="timed steps at each count (default 8)")
    parser.add_argument("--threads", type=int, help="the larger count (default: the usable cores)")
    parser.add_argument("--quick", action="store_true", help="bench.py's quick rows (batches / 8)")
    parser.add_argument("--framework", choices=bench.FRAMEWORKS, help=argparse.SUPPRESS)  # one process's part
    args = parser.parse_args(argv)
    threads = args.threads or len(os.sched_getaffinity(0))
    if args.rounds < 1 or threads < 1:
        parser.error(f"--rounds and --threads: expected counts >= 1, got {args.rounds} and {threads}")
    rows = bench.model_rows(args.only, args.quick)
    if not rows:
        parser.error(f"no training or inference row of bench.py matches {args.only!r}")
    if args.framework:  # run by main below, in a process of its own: one JSON line per row
        for w in rows:
            print(json.dumps({"row": w.name, "medians": measure(w, args.framework, threads, args.rounds)}))
        return 0
    frameworks = bench.FRAMEWORKS if bench.torch is not None else ("minires",)
    results: dict[str, dict[str, dict[int, float]]] = {w.name: {} for w in rows}
    for framework in frameworks:
        command = [sys.executable, __file__, "--framework", framework, "--only", args.only]
        command += ["--rounds", str(args.rounds), "--threads", str(threads)] + (
            ["--quick"] if args.quick else []
        )
        run = subprocess.run(command, capture_output=True, text=True, check=False)
        if run.returncode != 0:
            raise SystemExit(f"thread_scaling: {framework} failed:\n{run.stderr[-2000:]}")
        for line in run.stdout.splitlines():
            row = json.loads(line)
            results[row["row"]][framework] = {int(n): s for n, s in row["medians"].items()}
    for name, medians in results.items():
        print(format_scaling(name, threads, medians))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
