"""Where a minires step goes, op by op: the wall time of each Function's forward and backward.

    python benchmarks/profile_ops.py                             # train cifar_resnet20 1x28x28 N128
    python benchmarks/profile_ops.py --only "train resnet50"     # any row of bench.py's table
    python benchmarks/profile_ops.py --only "train d2l_resnet18 1x96x96" --steps 3

Every ``Function`` subclass's ``forward`` and ``backward`` is wrapped with a clock (two perf_counter
calls a call, a few microseconds per op), the workload of bench.py (same network, batch, seed and
threads) runs ``--warmup`` steps untimed and ``--steps`` timed, and the table lists each op's time per
step and its share of the step: convolutions by input shape and unfold layout, batch norms by input shape,
the others by name (ReLU, MaxPool2d, Add, ...). What the table does not cover is the rest of the step: the
autograd engine, the optimizer, the layers' Python. The times are wall times on the calling thread: a
convolution's chunks run on every thread, and the op's time is the time until all of them are done.
``--only`` takes every training and inference row whose name holds it, or the one row named exactly so.
"""

from __future__ import annotations

import argparse
import collections
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench  # noqa: E402 - bench.py sets the thread count before NumPy loads, and puts minires on sys.path

import minires as mr  # noqa: E402
from minires.function import Function  # noqa: E402
from minires.ops.norm import BatchNorm  # noqa: E402


def _subclasses(cls: type) -> Iterator[type]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def instrument(stats: dict[str, list[float]]) -> Callable[[], None]:
    """Wrap every Function subclass's own forward and backward with a clock adding into ``stats``
    (key -> [seconds, calls]); returns the call that unwraps them."""
    undo = []
    for cls in set(_subclasses(Function)):
        for method in ("forward", "backward"):
            original = cls.__dict__.get(method)
            if original is None:
                continue

            def timed(self: Any, *args: Any, _original: Any = original, _name: str = method) -> Any:
                start = time.perf_counter()
                out = _original(self, *args)
                key = f"{type(self).__name__}.{_name}"
                layout = getattr(self, "layout", None)
                if layout is not None:  # a convolution: by input shape and unfold layout
                    key += f" {tuple(layout.x_shape)} {layout.name}"
                elif isinstance(self, BatchNorm) and args:  # a batch norm: by input (or gradient) shape
                    key += f" {tuple(args[0].shape)}"
                entry = stats.setdefault(key, [0.0, 0])
                entry[0] += time.perf_counter() - start
                entry[1] += 1
                return out

            setattr(cls, method, timed)
            undo.append((cls, method, original))

    def restore() -> None:
        for cls, method, original in undo:
            setattr(cls, method, original)

    return restore


def profile(workload: bench.Workload, warmup: int, steps: int) -> tuple[float, dict[str, list[float]]]:
    """Seconds per step, and per op key [seconds per step, calls per step]."""
    step = bench.make_step(workload, "minires", "cpu")
    for _ in range(warmup):
        step()
    stats: dict[str, list[float]] = {}
    restore = instrument(stats)
    try:
        start = time.perf_counter()
        for _ in range(steps):
            step()
        per_step = (time.perf_counter() - start) / steps
    finally:
        restore()
    return per_step, {key: [s / steps, c / steps] for key, (s, c) in stats.items()}


def format_profile(name: str, per_step: float, ops: dict[str, list[float]]) -> str:
    lines = [
        f"{name}: {per_step * 1000:.1f} ms a step, minires {mr.get_num_threads()} threads",
        f"{'ms/step':>9} {'share':>6} {'calls':>5}  op",
    ]
    for key, (seconds, calls) in sorted(ops.items(), key=lambda kv: -kv[1][0]):
        lines.append(f"{seconds * 1000:9.2f} {seconds / per_step:6.1%} {calls:5.0f}  {key}")
    by_kind: dict[str, float] = collections.defaultdict(float)
    for key, (seconds, _) in ops.items():
        by_kind[key.split(" ")[0]] += seconds
    covered = sum(by_kind.values())
    lines.append("")
    lines.append(
        "by op: "
        + ", ".join(
            f"{k} {v / per_step:.0%}"
            for k, v in sorted(by_kind.items(), key=lambda kv: -kv[1])
            if v / per_step >= 0.01
        )
    )
    lines.append(f"outside the ops (engine, optimizer, Python): {1 - covered / per_step:.0%}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only", default="train cifar_resnet20 1x28x28 N128", help="a row of bench.py's table"
    )
    parser.add_argument("--steps", type=int, default=5, help="timed steps (default 5)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first (default 2)")
    parser.add_argument("--threads", type=int, help="minires's and BLAS's threads (bench.py's flag)")
    args = parser.parse_args(argv)
    rows = bench.model_rows(args.only)
    if not rows:
        parser.error(f"no training or inference row of bench.py matches {args.only!r}")
    for w in rows:
        per_step, ops = profile(w, args.warmup, args.steps)
        print(format_profile(w.name, per_step, ops))
        print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
