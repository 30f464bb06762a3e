"""minires against PyTorch, taking turns: training step, inference and single conv layers.

    python benchmarks/bench.py                      # the whole table (a few minutes on 2 cores)
    python benchmarks/bench.py --quick --only cifar  # a smoke run
    python benchmarks/bench.py --json results.json   # every number as JSON too (--json alone: to stdout)

Both frameworks run the same network (the PyTorch twin's weights are copied into the minires model by
state_dict), on the same batch, in float32, with the same thread count: torch.set_num_threads is set to the
number of threads NumPy's BLAS uses. ``--threads N`` sets both, through OMP/OPENBLAS/MKL_NUM_THREADS before
NumPy is imported. Each framework runs in a Python process of its own, as its users run it, a new one for
each row (``StepProcess``: minires's malloc settings are process-wide and would speed PyTorch up, and
glibc's own thresholds follow what a process ran before; ``--keep-processes`` keeps one per framework for
the whole run, ``--same-process`` times both in this one). Each sample of one framework is followed by a
sample of the other (interleaved), so that a machine that slows down or speeds up during the run moves both
alike; the ratio reported is the median of the per-pair ratios, the images/s come from each framework's
median time. Each turn starts with an untimed step of its framework (``--settle``, ``time_interleaved``),
so that no sample pays for the other framework's lingering threads.

A training step is zero_grad, forward, cross_entropy, backward and an SGD step (lr 0.01, momentum 0.9);
inference is an eval-mode forward under no_grad. FLOP counts and the memory measurement are explained in
``model_macs`` and ``measure_memory``. The targets are issue 23's (see README.md): every training step and
inference at most 1.3x PyTorch's time, peak memory at most 1.2x, and steady (minires's per-step times
within 10% of their median; the model rows take 20 timed steps for it, as ``--repeats`` may change).
"""

from __future__ import annotations

import argparse
import ctypes
import functools
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any


def _threads_flag(argv: list[str]) -> str | None:
    """The value of ``--threads N`` / ``--threads=N`` in argv, read before NumPy is imported."""
    for i, arg in enumerate(argv):
        if arg == "--threads" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--threads="):
            return arg.split("=", 1)[1]
    return None


# BLAS reads its thread count once, when NumPy loads it: set it before NumPy (and torch) are imported.
if (_threads := _threads_flag(sys.argv)) is not None:
    for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "MINIRES_NUM_THREADS"):
        os.environ[_var] = _threads

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # minires from this checkout; tests/torch_twins.py

import minires as mr  # noqa: E402
import minires.nn.functional as F  # noqa: E402

try:
    import torch
    import torch.nn.functional as TF
    import torch_twins
except ImportError:
    torch = TF = torch_twins = None

LR, MOMENTUM = 0.01, 0.9
NUM_CLASSES = 10
FRAMEWORKS = ("minires", "torch")

# ----- workloads ----------------------------------------------------------------------------------------

# Each builder takes the module that holds the zoo: minires.models, or tests/torch_twins.py.
MODELS: dict[str, Callable[[ModuleType], Any]] = {
    "d2l_resnet18": lambda zoo: zoo.d2l_resnet18(in_channels=1, num_classes=NUM_CLASSES),
    "cifar_resnet20": lambda zoo: zoo.cifar_resnet(20, num_classes=NUM_CLASSES, in_channels=1),
    "resnet50": lambda zoo: zoo.resnet50(num_classes=NUM_CLASSES, in_channels=3),
}


@dataclass(frozen=True)
class Conv:
    """One conv2d layer: input (N, C_in, H, W), weight (C_out, C_in, K, K), no bias. ``input_grad``: the
    input requires a gradient (False for a network's first conv, as in the models)."""

    c_out: int
    k: int
    stride: int = 1
    padding: int = 0
    input_grad: bool = True


@dataclass(frozen=True)
class Target:
    """Issue 23's targets for one row (the GEMM-peak one is issue 4's); None where the row has none."""

    max_time_ratio: float | None = None  # minires time / PyTorch time
    min_peak_fraction: float | None = None  # minires GFLOP/s / measured GEMM peak
    max_memory_ratio: float | None = None  # minires peak memory / PyTorch's
    max_spread: float | None = None  # max |t - median| / median of minires's per-step times


@dataclass(frozen=True)
class Workload:
    """kind "train" (a training step), "infer" (a forward under no_grad) or "conv" (one conv2d layer,
    forward and backward, ``label`` naming it). ``input`` is (C, H, W); ``inner`` steps are timed together
    as one sample (for the fast batch-1 rows)."""

    kind: str
    batch: int
    input: tuple[int, int, int]
    target: Target
    model: str = ""
    conv: Conv | None = None
    label: str = ""
    inner: int = 1

    @property
    def name(self) -> str:
        """ "train d2l_resnet18 1x28x28 N256", "conv 3x3 64->64 (issue) 64x28x28 N128", ..."""
        c, h, w = self.input
        return f"{self.kind} {self.model or self.label} {c}x{h}x{w} N{self.batch}"


def workloads(quick: bool = False) -> list[Workload]:
    """Every row of the table, in order. ``quick`` divides the batches by 8 (the shapes stay)."""

    def n(batch: int) -> int:
        return max(1, batch // 8) if quick else batch

    rows = []
    for model, chw, batch in (
        ("d2l_resnet18", (1, 28, 28), 256),
        ("d2l_resnet18", (1, 96, 96), 64),
        ("cifar_resnet20", (1, 28, 28), 128),
        ("resnet50", (3, 64, 64), 32),
    ):
        train = Target(1.3, max_memory_ratio=1.2, max_spread=0.10)
        rows.append(Workload("train", n(batch), chw, train, model))
        rows.append(Workload("infer", n(batch), chw, Target(1.3, max_spread=0.10), model))
    # Python overhead: one image at a time; reported, with no target of its own.
    for kind in ("train", "infer"):
        rows.append(Workload(kind, 1, (1, 28, 28), Target(), "cifar_resnet20", inner=2 if quick else 10))
    # Single layers at the models' shapes: the issue's 3x3 layer, each model's stem, a few body layers.
    # The 50%-of-GEMM-peak target is the for 3x3 layers; stems (1 or 3 input channels, so a
    # GEMM with K <= 147) and 1x1 layers are reported only. A stem's input needs no gradient.
    three, none = Target(min_peak_fraction=0.5), Target()
    for label, batch, chw, conv, target in (
        ("3x3 64->64 (issue)", 128, (64, 28, 28), Conv(64, 3, padding=1), three),
        ("d2l stem 7x7/2 1->64", 256, (1, 28, 28), Conv(64, 7, 2, 3, input_grad=False), none),
        ("d2l stem 7x7/2 1->64", 64, (1, 96, 96), Conv(64, 7, 2, 3, input_grad=False), none),
        ("d2l b2 3x3 64->64", 64, (64, 24, 24), Conv(64, 3, padding=1), three),
        ("d2l b3 3x3 128->128", 256, (128, 4, 4), Conv(128, 3, padding=1), three),
        ("cifar stem 3x3 1->16", 128, (1, 28, 28), Conv(16, 3, padding=1, input_grad=False), none),
        ("cifar layer1 3x3 16->16", 128, (16, 28, 28), Conv(16, 3, padding=1), three),
        ("cifar layer3 3x3 64->64", 128, (64, 7, 7), Conv(64, 3, padding=1), three),
        ("resnet50 stem 7x7/2 3->64", 32, (3, 64, 64), Conv(64, 7, 2, 3, input_grad=False), none),
        ("resnet50 layer1 3x3 64->64", 32, (64, 16, 16), Conv(64, 3, padding=1), three),
        ("resnet50 layer1 1x1 256->64", 32, (256, 16, 16), Conv(64, 1), none),
    ):
        rows.append(Workload("conv", n(batch), chw, target, conv=conv, label=label))
    return rows


def model_rows(only: str, quick: bool = False) -> list[Workload]:
    """The training and inference rows whose name holds ``only`` (profile_ops.py, thread_scaling.py); the one
    row named exactly ``only`` where there is one ("... N1" names that row, not the "... N128" one too)."""
    rows = [w for w in workloads(quick) if only in w.name and w.kind in ("train", "infer")]
    exact = [w for w in rows if w.name == only]
    return exact or rows


# ----- FLOPs --------------------------------------------------------------------------------------------


def conv_out(size: int, k: int, stride: int, padding: int, dilation: int = 1) -> int:
    """Output height (or width) of a conv or pool: floor((size + 2p - d(k-1) - 1) / s) + 1."""
    return (size + 2 * padding - dilation * (k - 1) - 1) // stride + 1


def conv_macs(batch: int, chw: tuple[int, int, int], conv: Conv) -> int:
    """Multiply-accumulates of one conv2d forward: N * C_out * OH * OW * C_in * K * K."""
    c, h, w = chw
    oh, ow = conv_out(h, conv.k, conv.stride, conv.padding), conv_out(w, conv.k, conv.stride, conv.padding)
    return batch * conv.c_out * oh * ow * c * conv.k * conv.k


def model_macs(model: Any, chw: tuple[int, int, int]) -> int:
    """Multiply-accumulates of one forward pass of ``model`` (a minires module) on one (C, H, W) image,
    counted analytically from the shapes of its conv and linear layers:

        Conv2d  N * C_out * OH * OW * (C_in / groups) * KH * KW
        Linear  (elements of the output) * in_features

    The output shapes come from one eval-mode, no_grad forward on a zero image, with a forward hook on
    every Conv2d and Linear; the hooks are removed and the training flags restored afterwards.

    How the FLOP counts use it: a multiply-accumulate is 2 FLOPs, so a forward is 2 * MACs. The backward
    of a conv or linear is two GEMMs of the forward's size (dX = dY W^T, dW = X^T dY), so a training
    step counts 3 forwards, 6 * MACs; a model's first conv needs no dX, so this overstates a step by a
    third of the stem's share of the MACs (under 1% for each model here). A single conv layer
    counts 6 * MACs forward+backward, 4 * MACs when its input needs no gradient. BatchNorm, ReLU,
    pooling, the loss and the optimizer are left out: they are memory-bound, and a few % of the FLOPs.
    The same count divides both frameworks' times, so it cannot move the ratio."""
    total = 0

    def count(module: Any, args: tuple, output: Any) -> None:
        nonlocal total
        if type(module).__name__ == "Conv2d":
            kh, kw = module.kernel_size
            total += output.numel() * (module.in_channels // module.groups) * kh * kw
        else:  # Linear
            total += output.numel() * module.in_features

    layers = [m for m in model.modules() if type(m).__name__ in ("Conv2d", "Linear")]
    handles = [m.register_forward_hook(count) for m in layers]
    flags = [(m, m.training) for m in model.modules()]
    try:
        model.eval()
        with mr.no_grad():
            model(mr.zeros(1, *chw, device=_device_of(model)))
    finally:
        for handle in handles:
            handle.remove()
        for m, flag in flags:
            m.training = flag
    return total


@functools.cache
def macs_per_image(model_name: str, chw: tuple[int, int, int]) -> int:
    """``model_macs`` of the zoo model ``model_name`` (a key of MODELS), built once per input shape."""
    return model_macs(MODELS[model_name](mr.models), chw)


def workload_flops(w: Workload, model_macs_per_image: int = 0) -> float:
    """FLOPs of one step of ``w`` (see ``model_macs``): train 6 * MACs, infer 2 * MACs, conv 6 or 4."""
    if w.kind == "conv":
        assert w.conv is not None
        return (6 if w.conv.input_grad else 4) * conv_macs(w.batch, w.input, w.conv)
    return (6 if w.kind == "train" else 2) * model_macs_per_image * w.batch


# ----- building one framework's step --------------------------------------------------------------------


def _device_of(model: Any) -> str:
    return next(iter(model.parameters())).device


def _sync(framework: str, device: str) -> None:
    """Wait for the GPU, so that the clock reads the work done and not the work queued."""
    if device == "cuda" and framework == "minires":
        mr.cuda.synchronize()
    elif device == "cuda":
        torch.cuda.synchronize()


def _sgd() -> type:
    """minires.optim.SGD; a clear error when this checkout has none yet."""
    try:
        from minires.optim import SGD
    except ImportError as exc:
        raise SystemExit(f"bench: minires.optim.SGD is needed for the training step ({exc})") from exc
    return SGD


def make_step(w: Workload, framework: str, device: str, seed: int = 0) -> Callable[[], None]:
    """Set up ``w`` for ``framework`` ("minires" or "torch") on ``device`` and return one step of it, a
    call that returns when the work is done (GPU included). The same seed gives both frameworks the same
    weights (the twin's, copied by state_dict) and the same data."""
    rng = np.random.default_rng(seed)
    x_np = rng.standard_normal((w.batch, *w.input), dtype=np.float32)
    is_mr = framework == "minires"

    def as_tensor(a: np.ndarray, requires_grad: bool = False) -> Any:
        if is_mr:
            return mr.tensor(a, device=device, requires_grad=requires_grad)
        return torch.tensor(a, device=device, requires_grad=requires_grad)

    if w.kind == "conv":
        assert w.conv is not None
        c = w.conv
        weight_np = rng.standard_normal((c.c_out, w.input[0], c.k, c.k), dtype=np.float32) * 0.05
        oh, ow = (
            conv_out(w.input[1], c.k, c.stride, c.padding),
            conv_out(w.input[2], c.k, c.stride, c.padding),
        )
        dy_np = rng.standard_normal((w.batch, c.c_out, oh, ow), dtype=np.float32)
        x, weight, dy = as_tensor(x_np, c.input_grad), as_tensor(weight_np, True), as_tensor(dy_np)
        conv2d = F.conv2d if is_mr else TF.conv2d

        def conv_step() -> None:
            x.grad = weight.grad = None
            conv2d(x, weight, None, c.stride, c.padding).backward(dy)
            _sync(framework, device)

        return conv_step

    twin = None
    if torch is not None:  # the twin's initialization gives both frameworks their weights
        torch.manual_seed(seed)
        twin = MODELS[w.model](torch_twins)
    if is_mr:
        mr.manual_seed(seed)
        model = MODELS[w.model](mr.models)
        if twin is not None:
            model.load_state_dict(twin.state_dict())
        model.to(device)
    else:
        model = twin.to(device)
    x = as_tensor(x_np)
    if w.kind == "infer":
        model.eval()
        no_grad = mr.no_grad if is_mr else torch.no_grad

        def infer_step() -> None:
            for _ in range(w.inner):
                with no_grad():
                    model(x)
            _sync(framework, device)

        return infer_step

    model.train()
    y = as_tensor(rng.integers(0, NUM_CLASSES, w.batch))
    optimizer = (_sgd() if is_mr else torch.optim.SGD)(model.parameters(), lr=LR, momentum=MOMENTUM)
    cross_entropy = F.cross_entropy if is_mr else TF.cross_entropy

    def train_step() -> None:
        for _ in range(w.inner):
            optimizer.zero_grad()
            cross_entropy(model(x), y).backward()
            optimizer.step()
        _sync(framework, device)

    return train_step


# ----- timing -------------------------------------------------------------------------------------------


class InProcess:
    """A framework's step run in this process. ``time(settle)``: ``settle`` untimed steps, then one timed;
    its seconds."""

    def __init__(self, step: Callable[[], None]) -> None:
        self.step = step

    def time(self, settle: int) -> float:
        for _ in range(settle):
            self.step()
        start = time.perf_counter()
        self.step()
        return time.perf_counter() - start


class StepProcess:
    """A framework's steps in a Python process of its own (``bench.py --serve FRAMEWORK``), a new one per
    framework for each row (``--keep-processes``: one for the whole run), driven line by line over its stdin
    and stdout: ``load(w)`` builds w's step there, ``time(settle)`` runs ``settle`` untimed steps and one
    timed, timed in that process (the pipe's round trip is not in it). While one framework's process steps,
    the other's waits on its pipe, asleep.

    Why apart (the default; ``--same-process`` runs both here, as before): minires tunes glibc's malloc
    for the whole process (allocator.py: freed blocks are kept and reused instead of going back to the
    kernel), and PyTorch, in the same process, then ran with it too: measured on 2 cores of an AMD EPYC
    Zen 5, cifar_resnet(20)'s training step 121 against 104 ms and its inference 30-45 against 25-26 ms,
    the page faults 19,000 and 3,200 a step against 240 and 160. Alone, as its users run it, PyTorch
    keeps glibc's defaults; so does minires's own process keep its settings. Each process reports whether
    minires's malloc settings are in force in it (``malloc_kept``).

    Why a new one for each row: glibc's defaults are not a fixed state. Its mmap threshold is dynamic (a
    freed block larger than the threshold, up to 32 MiB, raises it to that block's size, and the trim
    threshold to twice that), so what a process ran before decides how often a step's arrays come back
    from the kernel as fresh pages. Measured on 2 cores of an AMD EPYC Zen 3 (AVX2): PyTorch's
    cifar_resnet(20) inference at batch 128 took 62-65 ms a step in a process that had run the training
    row before it, 0 page faults a step, and 69-102 ms in a process of its own, 4,000-17,000 page faults a
    step (from one run to the next); the row's ratio was 1.50-1.54 in two whole runs the first way, 1.05-1.23
    in two with a process per row, 1.11-1.12 run alone (``--only``), minires's times the same throughout.
    So a row's figures depended on the rows before it; in a process of its own per row they do not, and
    each row measures what a process that runs only that workload gets. ``--keep-processes`` runs the
    tenth round's way, a process per framework for the whole run."""

    def __init__(self, framework: str, device: str, quick: bool) -> None:
        self.framework = framework
        command = [sys.executable, __file__, "--serve", framework, "--device", device]
        command += ["--quick"] if quick else []
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self._ask(None, "ready")

    def _ask(self, line: str | None, expect: str | None = None) -> str:
        process = self.process
        assert process.stdin is not None and process.stdout is not None
        if line is not None:
            process.stdin.write(line + "\n")
            process.stdin.flush()
        reply = process.stdout.readline().strip()
        if not reply or (expect is not None and reply != expect):
            process.kill()
            raise RuntimeError(
                f"bench: the {self.framework} process answered {reply!r} to {line!r} "
                f"(exit code {process.wait()}; its errors are above)"
            )
        return reply

    def load(self, w: Workload) -> None:
        self._ask(f"load {w.name}", "loaded")

    def time(self, settle: int) -> float:
        return float(self._ask(f"time {settle}"))

    def malloc_kept(self) -> bool:
        return self._ask("malloc") == "True"

    def close(self) -> None:
        """Close its stdin (it ends its loop) and wait for it; killed after a minute."""
        assert self.process.stdin is not None
        try:
            self.process.stdin.close()
        except BrokenPipeError:  # it has ended already
            pass
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()


def serve(framework: str, device: str, quick: bool) -> None:
    """The loop of a ``StepProcess``: one command a line on stdin, one answer a line on the stdout it was
    started with ("load NAME" -> "loaded", "time SETTLE" -> seconds, "malloc" -> whether minires's malloc
    settings are in force here), until stdin closes. Whatever else writes to stdout (a library's
    message) goes to stderr, so that the answers stay whole."""
    answers = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    sys.stdout.flush()
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    by_name = {w.name: w for w in workloads(quick)}
    step: InProcess | None = None
    print("ready", file=answers)
    for line in sys.stdin:
        command, _, argument = line.strip().partition(" ")
        if command == "load":
            step = None
            gc.collect()
            step = InProcess(make_step(by_name[argument], framework, device))
            print("loaded", file=answers)
        elif command == "time" and step is not None:
            print(repr(step.time(int(argument))), file=answers)
        elif command == "malloc":
            from minires import allocator

            print(bool(allocator.kept), file=answers)
        else:
            raise SystemExit(f"bench --serve: unexpected command {line.strip()!r}")


def time_interleaved(
    steps: dict[str, Callable[[], None] | InProcess | StepProcess], warmup: int, repeats: int, settle: int = 1
) -> dict[str, list[float]]:
    """Seconds per sample of each step (a function run here, or an ``InProcess`` or ``StepProcess``), the
    frameworks taking turns: a, b, a, b, ... (warm-up untimed).
    Each turn runs its framework's step ``settle`` times untimed before the timed one, so that a sample
    follows a step of its own framework, as in a training loop, not one of the other's. PyTorch's
    OpenMP threads keep spinning for a few milliseconds after its step (libgomp's GOMP_SPINCOUNT), taking
    a core from whatever runs next, and either step leaves the caches full of its own arrays. Measured on 2
    cores of an AMD EPYC Zen 5 VM (12 rounds, the two ways taking turns): in the network rows minires's
    step right after PyTorch's took 0-6% longer than right after its own (d2l_resnet18 at 28x28 4% in
    training, 6% in inference; cifar_resnet(20) inference 6%; resnet50 inference 4%; the 200-460 ms
    training steps of cifar_resnet(20) and resnet50 within 1%), PyTorch's after minires's within 2% (minires's
    pool sleeps when idle); in the single-conv rows (3-75 ms steps) minires's 10-49% longer, PyTorch's -7% to
    +75%. The spinning is most of it there: with ``OMP_WAIT_POLICY=PASSIVE`` (PyTorch's threads sleep at
    once) minires's 16-channel conv row took 11.2 ms right after PyTorch's step, as long as after its own,
    against 15.2 ms with the default. ``settle`` 0: strict alternation, each sample right after the other
    framework's."""
    timers = {name: InProcess(s) if callable(s) else s for name, s in steps.items()}
    for _ in range(warmup):
        for timer in timers.values():
            timer.time(0)
    times: dict[str, list[float]] = {name: [] for name in timers}
    for _ in range(repeats):
        for name, timer in timers.items():
            times[name].append(timer.time(settle))
    return times


def gemm_peak(device: str, sizes: tuple[int, ...] = (1024, 2048), repeats: int = 5) -> dict[str, float]:
    """Float32 GEMM GFLOP/s (2 n^3 FLOPs per n x n matmul), best of ``repeats`` per size, best size wins:
    {"numpy" ("cupy" on cuda): ..., "torch": ... (when it is there)}. The first is the peak the table's
    "% peak" is measured against, for both frameworks."""
    peaks = {}
    libs: dict[str, tuple[Any, Callable[[], None]]] = {}
    if device == "cuda":
        import cupy

        libs["cupy"] = (cupy, lambda: cupy.cuda.Device().synchronize())
    else:
        libs["numpy"] = (np, lambda: None)
    if torch is not None:
        libs["torch"] = (torch, torch.cuda.synchronize if device == "cuda" else lambda: None)
    for name, (lib, sync) in libs.items():
        best = 0.0
        for n in sizes:
            rng = np.random.default_rng(0)
            a_np, b_np = (rng.standard_normal((n, n), dtype=np.float32) for _ in range(2))
            if lib is torch:
                a, b = torch.from_numpy(a_np).to(device), torch.from_numpy(b_np).to(device)
            else:
                a, b = lib.asarray(a_np), lib.asarray(b_np)
            lib.matmul(a, b)
            sync()
            for _ in range(repeats):
                start = time.perf_counter()
                lib.matmul(a, b)
                sync()
                best = max(best, 2 * n**3 / (time.perf_counter() - start) / 1e9)
        peaks[name] = best
    return peaks


def spread_of(times: list[float]) -> float:
    """The steadiness target's measure: the largest deviation of ``times`` from their median, over it."""
    median = statistics.median(times)
    return max(abs(t - median) for t in times) / median


NOISE_COPY_MIB = 64  # the machine-noise probe's memory-bound array: past the 32 MiB L3 of the VMs here


def machine_noise(
    repeats: int = 20, seconds: float = 0.05, copy_mib: int = NOISE_COPY_MIB
) -> dict[str, float]:
    """The machine's own steadiness, to read the rows' spreads against: ``spread_of`` ``repeats`` samples
    of about ``seconds`` each of two fixed NumPy workloads, one after the other. "gemm": float32 1024 x
    1024 matmuls on BLAS's threads (compute-bound, in the cache); "copy": copies of a ``copy_mib`` MiB
    array on one thread (memory-bound, past any cache). A row's work mixes the two kinds; where the
    machine's memory alone spreads past the target, so will any memory-heavy step. Measured on 2 cores of
    an AMD EPYC Zen 4 VM in four runs: GEMM 7-54%, copy 13-22% (issue 23's fifteenth round)."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((1024, 1024), dtype=np.float32)
    src = np.ones(copy_mib << 18, dtype=np.float32)  # copy_mib MiB of float32
    dst = np.empty_like(src)
    work = {"gemm": lambda: np.matmul(a, a), "copy": lambda: np.copyto(dst, src)}
    spreads = {}
    for name, fn in work.items():
        fn()
        start = time.perf_counter()
        fn()
        count = max(1, round(seconds / max(time.perf_counter() - start, 1e-6)))  # calls per sample
        samples = []
        for _ in range(repeats):
            start = time.perf_counter()
            for _ in range(count):
                fn()
            samples.append(time.perf_counter() - start)
        spreads[name] = spread_of(samples)
    return spreads


# ----- memory -------------------------------------------------------------------------------------------


def _proc_status_kb(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


def _twice(step: Callable[[], None]) -> None:
    step()
    step()


def probe_memory(w: Workload, framework: str, device: str) -> float:
    """In this (fresh) process: MB that two training steps add at their peak over the memory held once
    the model and the batch exist. On CPU: the peak resident set size (VmHWM, reset through
    /proc/self/clear_refs) minus the resident size before the first step; on cuda: the growth of the
    caching allocator's reserved bytes (CuPy's memory pool, PyTorch's max_memory_reserved)."""
    step = make_step(w, framework, device)
    gc.collect()
    if device == "cuda":
        if framework == "minires":
            import cupy

            pool = cupy.get_default_memory_pool()
            base = pool.total_bytes()
            _twice(step)
            return (pool.total_bytes() - base) / 2**20
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_reserved()
        _twice(step)
        return (torch.cuda.max_memory_reserved() - base) / 2**20
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets VmHWM to the current resident size (Linux >= 4.0)
    base = _proc_status_kb("VmRSS")
    _twice(step)
    return (_proc_status_kb("VmHWM") - base) / 2**10


def measure_memory(w: Workload, framework: str, device: str, quick: bool) -> float | None:
    """Peak memory of ``w``'s training step for ``framework``, in MB, from a fresh Python process.

    Why a process of its own: PyTorch's allocations are invisible to tracemalloc, so one method has to
    serve both, and the resident set size does; a process per framework and workload keeps one
    framework's freed memory from being counted for, or reused by, the other. The process runs with
    MALLOC_MMAP_THRESHOLD_=1 MiB so that glibc maps every large array on its own and returns it on free:
    the resident size then follows the live arrays. What is counted (``probe_memory``): everything two
    training steps allocate beyond the weights and the batch, so activations, saved buffers, gradients,
    the optimizer's momentum, im2col workspaces and the frameworks' own caches. None when it fails."""
    command = [sys.executable, __file__, "--probe-memory", framework, w.name, "--device", device]
    command += ["--quick"] if quick else []
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_=str(2**20))
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    if result.returncode != 0:
        print(f"  memory probe {framework} failed: {result.stderr.strip()[-500:]}", file=sys.stderr)
        return None
    return float(result.stdout.strip().splitlines()[-1])


# ----- the machine --------------------------------------------------------------------------------------


def _openblas() -> ctypes.CDLL | None:
    """The OpenBLAS library NumPy loaded (found in /proc/self/maps), or None (another BLAS, or no Linux)."""
    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if "openblas" in line.lower() and "/" in line}
        return ctypes.CDLL(sorted(paths)[0]) if paths else None
    except OSError:
        return None


def _openblas_call(lib: ctypes.CDLL | None, name: str, restype: Any) -> Any:
    """openblas_<name>, under any of the prefixes and suffixes NumPy's builds use; None if not there."""
    for symbol in (
        f"scipy_openblas_{name}64_",
        f"openblas_{name}64_",
        f"scipy_openblas_{name}",
        f"openblas_{name}",
    ):
        if lib is not None and hasattr(lib, symbol):
            fn = getattr(lib, symbol)
            fn.restype = restype
            return fn()
    return None


def blas_threads() -> tuple[int, str]:
    """The number of threads NumPy's BLAS runs with, and how it was found (threadpoolctl's method,
    without threadpoolctl: ask OpenBLAS; else the environment variables it reads; else the usable cores)."""
    n = _openblas_call(_openblas(), "get_num_threads", ctypes.c_int)
    if n:
        return int(n), "openblas_get_num_threads"
    for var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS"):
        if os.environ.get(var, "").isdigit():
            return int(os.environ[var]), var
    return len(os.sched_getaffinity(0)), "usable cores"


def _core_text(corename: bytes | None) -> str:
    """ " (core Haswell)": the kernels OpenBLAS runs, and whether OPENBLAS_CORETYPE in the environment chose
    them instead of the CPU (on a CPU with AVX-512, "Haswell" kernels use half its vector width)."""
    if not corename:
        return ""
    forced = os.environ.get("OPENBLAS_CORETYPE")
    return f" (core {corename.decode()}" + (f", set by OPENBLAS_CORETYPE={forced})" if forced else ")")


# The environment variables that hold PyTorch's CPU kernels below the CPU's ISA: its own kernels (ATen),
# oneDNN's convolutions and MKL's GEMMs. Set together they give an AVX2 comparison on an AVX-512 machine.
TORCH_ISA_LIMITS = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS")


def _torch_kernels() -> str | None:
    """ "AVX512": the vector ISA of PyTorch's CPU kernels, and the variables that set it, if any (None
    without torch)."""
    if torch is None:
        return None
    limits = [f"{name}={os.environ[name]}" for name in TORCH_ISA_LIMITS if name in os.environ]
    capability = torch.backends.cpu.get_cpu_capability()
    return capability + (f", set by {', '.join(limits)}" if limits else "")


def machine_info(device: str, threads: int, thread_source: str) -> dict[str, Any]:
    """What the numbers were measured on: CPU, cores, library versions, BLAS, threads, GPU."""
    try:
        with open("/proc/cpuinfo") as f:
            cpuinfo = dict(line.split(":", 1) for line in f if ":" in line)  # the last CPU's lines
    except OSError:
        cpuinfo = {}
    cpuinfo = {k.strip(): v.strip() for k, v in cpuinfo.items()}
    cpu, flags = cpuinfo.get("model name") or platform.processor() or "unknown", cpuinfo.get("flags", "")
    # The generation: AMD's Zen 3 and Zen 4 are family 25, Zen 5 family 26.
    if "cpu family" in cpuinfo and "model" in cpuinfo:
        cpu += f" (family {cpuinfo['cpu family']} model {cpuinfo['model']})"
    blas = np.show_config(mode="dicts").get("Build Dependencies", {}).get("blas", {})
    corename = _openblas_call(_openblas(), "get_corename", ctypes.c_char_p)
    info = {
        "cpu": cpu,
        "avx512f": "avx512f" in flags.split(),
        "isa": "AVX-512" if "avx512f" in flags.split() else "AVX2" if "avx2" in flags.split() else "no AVX2",
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "blas": f"{blas.get('name', '?')} {blas.get('version', '')}".strip() + _core_text(corename),
        "minires": mr.__version__,
        "torch": torch.__version__ if torch is not None else None,
        "torch_kernels": _torch_kernels(),
        "threads": threads,
        "threads_from": thread_source,
        "torch_threads": torch.get_num_threads() if torch is not None else None,
        "minires_threads": mr.get_num_threads(),
        "device": device,
    }
    if device == "cuda":
        import cupy

        info["gpu"] = cupy.cuda.runtime.getDeviceProperties(0)["name"].decode()
    return info


# ----- one row ------------------------------------------------------------------------------------------


@dataclass
class Result:
    """One workload's numbers; ``frameworks`` maps "minires"/"torch" to the per-framework numbers
    (times_s, median_s, images_per_s, gflops, peak_fraction, memory_mb)."""

    workload: Workload
    flops: float
    frameworks: dict[str, dict[str, Any]] = field(default_factory=dict)
    ratio: float | None = None  # median over the interleaved pairs of minires time / PyTorch time
    memory_ratio: float | None = None
    spread: float | None = None  # max |t - median| / median of minires's per-step times
    torch_spread: float | None = None  # the same of torch's: the machine's own noise, to read spread against
    verdicts: dict[str, str] = field(default_factory=dict)  # "time", "gemm", "memory", "steady": PASS/MISS
    memory_seconds: float = 0.0  # how long the memory probes took


def judge(r: Result) -> dict[str, str]:
    """PASS or MISS for each target of the row that has the numbers it needs."""
    t, mine = r.workload.target, r.frameworks.get("minires", {})
    verdicts = {}
    if t.max_time_ratio is not None and r.ratio is not None:
        verdicts["time"] = "PASS" if r.ratio <= t.max_time_ratio else "MISS"
    if t.min_peak_fraction is not None and mine.get("peak_fraction") is not None:
        verdicts["gemm"] = "PASS" if mine["peak_fraction"] >= t.min_peak_fraction else "MISS"
    if t.max_memory_ratio is not None and r.memory_ratio is not None:
        verdicts["memory"] = "PASS" if r.memory_ratio <= t.max_memory_ratio else "MISS"
    if t.max_spread is not None and r.spread is not None:
        verdicts["steady"] = "PASS" if r.spread <= t.max_spread else "MISS"
    return verdicts


def run_workload(
    w: Workload,
    frameworks: tuple[str, ...],
    args: argparse.Namespace,
    peak: float,
    processes: dict[str, StepProcess] | None = None,
) -> Result:
    """Time ``w`` for each framework (interleaved), each in its ``StepProcess`` (here where ``processes`` is
    None: ``--same-process``), then measure memory in subprocesses if asked."""
    macs = macs_per_image(w.model, w.input) if w.model else 0
    result = Result(w, workload_flops(w, macs))
    if processes is None:  # --same-process
        steps: dict[str, InProcess | StepProcess] = {
            fw: InProcess(make_step(w, fw, args.device)) for fw in frameworks
        }
    else:
        steps = {fw: processes[fw] for fw in frameworks}
        for process in processes.values():
            process.load(w)
    repeats = args.repeats or (2 if args.quick else 20 if w.target.max_spread is not None else 5)
    times = time_interleaved(steps, args.warmup, repeats, args.settle)
    del steps
    gc.collect()
    for fw, ts in times.items():
        per_step = statistics.median(ts) / w.inner
        gflops = result.flops / per_step / 1e9
        result.frameworks[fw] = {
            "times_s": [t / w.inner for t in ts],
            "median_s": per_step,
            "images_per_s": w.batch / per_step,
            "gflops": gflops,
            "peak_fraction": gflops / peak if peak else None,
            "memory_mb": None,
        }
    if "torch" in times:
        result.ratio = statistics.median(a / b for a, b in zip(times["minires"], times["torch"], strict=True))
    for fw, ts in times.items():
        spread = spread_of(ts)
        if fw == "minires":
            result.spread = spread
        else:
            result.torch_spread = spread
    if args.memory and w.kind == "train" and w.batch > 1:
        probe_start = time.perf_counter()
        for fw in frameworks:
            result.frameworks[fw]["memory_mb"] = measure_memory(w, fw, args.device, args.quick)
        mems = [result.frameworks[fw]["memory_mb"] for fw in FRAMEWORKS if fw in frameworks]
        if len(mems) == 2 and None not in mems and mems[1] > 0:
            result.memory_ratio = mems[0] / mems[1]
        result.memory_seconds = time.perf_counter() - probe_start
    result.verdicts = judge(result)
    return result


# ----- output -------------------------------------------------------------------------------------------


def _fmt(value: float | None, spec: str) -> str:
    return "--" if value is None else format(value, spec)


def target_text(t: Target) -> str:
    """The row's targets, short: "t<=1.5 m<=1.5", ">=50% pk", or "report" (none)."""
    parts = []
    if t.max_time_ratio is not None:
        parts.append(f"t<={t.max_time_ratio:g}")
    if t.min_peak_fraction is not None:
        parts.append(f">={t.min_peak_fraction:.0%} pk")
    if t.max_memory_ratio is not None:
        parts.append(f"m<={t.max_memory_ratio:g}")
    if t.max_spread is not None:
        parts.append(f"s<={t.max_spread:.0%}")
    return " ".join(parts) or "report"


def format_table(results: list[Result], info: dict[str, Any], peaks: dict[str, float]) -> str:
    """The header (machine, threads, GEMM peak) and one line per workload."""
    lines = [
        f"machine: {info['cpu']}, {info['cores']} cores ({info['usable_cores']} usable)"
        f", {info['isa']}; device {info['device']}" + (f" ({info['gpu']})" if "gpu" in info else ""),
        f"python {info['python']}, numpy {info['numpy']} ({info['blas']}), minires {info['minires']}, "
        + (
            f"torch {info['torch']}"
            + (f" (kernels {info['torch_kernels']})" if info.get("torch_kernels") else "")
            if info.get("torch_timed", True)
            else f"torch {info['torch'] or 'not installed'}: not timed (minires alone, no ratios)"
        ),
        f"threads: {info['threads']} (BLAS, from {info['threads_from']}); torch.set_num_threads "
        f"{info['torch_threads'] if info['torch_threads'] is not None else '--'}; minires "
        f"{info['minires_threads']} (its pool, BLAS on one thread per call)",
        "float32 GEMM peak: "
        + ", ".join(f"{name} {value:.0f} GFLOP/s" for name, value in peaks.items())
        + f" (% peak below is of {next(iter(peaks))}'s)",
    ]
    if info.get("noise"):
        noise = info["noise"]
        lines.append(
            f"machine noise (spread of {noise['repeats']} samples of fixed NumPy work, as the rows' spread): "
            f"float32 GEMM {noise['gemm']:.0%}, {noise['copy_mib']} MiB copies {noise['copy']:.0%}"
        )
    lines.append("")
    rows = [[title for title, _ in COLUMNS], [sub for _, sub in COLUMNS]] + [_cells(r) for r in results]
    widths = [max(len(row[k]) for row in rows) for k in range(len(COLUMNS))]
    left = {0, len(COLUMNS) - 2, len(COLUMNS) - 1}  # workload, target, verdict

    def line(row: list[str]) -> str:
        pairs = enumerate(zip(row, widths, strict=True))
        cells = [c.ljust(wd) if k in left else c.rjust(wd) for k, (c, wd) in pairs]
        return "  ".join(cells).rstrip()

    lines += [line(rows[0]), line(rows[1]), "-" * len(line(rows[1]))] + [line(row) for row in rows[2:]]
    lines += [
        "",
        "time mr/pt: median over interleaved pairs of minires time / PyTorch time (>1: minires slower); "
        + (
            f"each timed step after {info['settle']} untimed of its own framework (--settle)."
            if info.get("settle")
            else "each timed step right after the other framework's (--settle 0)."
        ),
        (
            "both frameworks timed in this process (--same-process): PyTorch ran with minires's malloc "
            "settings."
            if info.get("same_process")
            else "each framework timed in a process of its own, "
            + (
                "one for the whole run (--keep-processes)"
                if info.get("keep_processes")
                else "new for each row"
            )
            + ", taking turns (StepProcess); minires's malloc settings in force: "
            + ", ".join(f"{fw} {'yes' if kept else 'no'}" for fw, kept in info.get("malloc_kept", {}).items())
            + "."
        ),
        "GFLOP/s: convs and linears, 2*MACs forward, 6*MACs per training step (4 or 6 per conv layer).",
        "peak MB: peak memory growth over two training steps, each framework in a process of its own.",
        "target: t<= time ratio, m<= memory ratio, >=50% pk minires's share of the GEMM peak, s<= steadiness "
        "(spread: minires's largest per-step deviation from its median; torch's beside it, and the machine "
        "noise above, are the machine's own).",
    ]
    return "\n".join(lines)


COLUMNS = (
    ("", "workload"),
    ("img/s", "minires"),
    ("img/s", "torch"),
    ("time", "mr/pt"),
    ("GFLOP/s", "minires"),
    ("GFLOP/s", "torch"),
    ("% peak", "minires"),
    ("% peak", "torch"),
    ("peak MB", "minires"),
    ("peak MB", "torch"),
    ("memory", "mr/pt"),
    ("spread", "minires"),
    ("spread", "torch"),
    ("", "target"),
    ("", "verdict"),
)


def _cells(r: Result) -> list[str]:
    """One table line's cells, in the order of COLUMNS."""
    mine, theirs = r.frameworks.get("minires", {}), r.frameworks.get("torch", {})
    cells = [r.workload.name]
    for key, spec in (("images_per_s", ".1f"), ("gflops", ".1f"), ("peak_fraction", ".0%")):
        cells += [_fmt(mine.get(key), spec), _fmt(theirs.get(key), spec)]
        if key == "images_per_s":
            cells.append(_fmt(r.ratio, ".2f"))
    cells += [_fmt(mine.get("memory_mb"), ".0f"), _fmt(theirs.get("memory_mb"), ".0f")]
    cells += [_fmt(r.memory_ratio, ".2f"), _fmt(r.spread, ".0%"), _fmt(r.torch_spread, ".0%")]
    cells.append(target_text(r.workload.target))
    cells.append(" ".join(f"{k} {v}" for k, v in r.verdicts.items()))
    return cells


def to_json(results: list[Result], info: dict[str, Any], peaks: dict[str, float], settings: dict) -> str:
    """Every number of the run as JSON: machine, settings, GEMM peaks and each workload's results."""
    rows = []
    for r in results:
        row = asdict(r)
        row["workload"]["name"] = r.workload.name
        row["target"] = row["workload"].pop("target")
        rows.append(row)
    return json.dumps(
        {"machine": info, "settings": settings, "gemm_peak_gflops": peaks, "results": rows}, indent=1
    )


# ----- main ---------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument(
        "--quick", action="store_true", help="batches / 8, 1 warm-up, 2 repeats, no settle steps, no memory"
    )
    p.add_argument("--only", default=None, help="run the workloads whose name contains this")
    p.add_argument(
        "--repeats",
        type=int,
        default=None,
        help="timed samples per framework (default 20 for the models, 5 else)",
    )
    p.add_argument("--warmup", type=int, default=None, help="untimed samples first (default 2)")
    p.add_argument(
        "--settle",
        type=int,
        default=None,
        help="untimed steps of a framework before each timed one (default 1; 0: strict a, b, a, b)",
    )
    p.add_argument("--threads", type=int, default=None, help="BLAS and torch threads (default: BLAS's)")
    p.add_argument("--no-torch", action="store_true", help="time minires alone")
    p.add_argument(
        "--memory", action=argparse.BooleanOptionalAction, default=None, help="measure peak memory"
    )
    p.add_argument(
        "--json", nargs="?", const="-", default=None, metavar="PATH", help="write JSON (- : stdout)"
    )
    p.add_argument(
        "--same-process",
        action="store_true",
        help="time both frameworks in this process (default: each in a process of its own; see StepProcess)",
    )
    p.add_argument(
        "--keep-processes",
        action="store_true",
        help="one process per framework for the whole run (default: a new one for each row; see StepProcess)",
    )
    p.add_argument("--probe-memory", nargs=2, metavar=("FRAMEWORK", "WORKLOAD"), help=argparse.SUPPRESS)
    p.add_argument("--serve", choices=FRAMEWORKS, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    # args.repeats stays None unless given: each row then takes its own (20 for the steadiness target, else 5)
    args.warmup = args.warmup if args.warmup is not None else (1 if args.quick else 2)
    args.settle = args.settle if args.settle is not None else (0 if args.quick else 1)
    if args.same_process and args.keep_processes:
        p.error("--same-process and --keep-processes: choose one (the first runs no process to keep)")
    if args.warmup < 0 or args.settle < 0:
        p.error(f"--warmup and --settle: expected counts >= 0, got {args.warmup} and {args.settle}")
    args.memory = (not args.quick) if args.memory is None else args.memory
    return args


def _close_all(processes: dict[str, StepProcess]) -> None:
    """Close every process of ``processes`` and empty it."""
    for process in processes.values():
        process.close()
    processes.clear()


def main(argv: list[str] | None = None) -> int:
    start = time.perf_counter()
    args = parse_args(argv)
    threads, thread_source = blas_threads()
    if args.threads is not None and args.threads != threads:
        print(
            f"bench: --threads {args.threads}, but NumPy's BLAS runs {threads}; using {threads}",
            file=sys.stderr,
        )
    if torch is not None:
        torch.set_num_threads(threads)
    if args.probe_memory:
        framework, name = args.probe_memory
        (w,) = [w for w in workloads(args.quick) if w.name == name]
        print(probe_memory(w, framework, args.device))
        return 0
    if args.serve:
        serve(args.serve, args.device, args.quick)
        return 0

    frameworks = FRAMEWORKS if torch is not None and not args.no_torch else ("minires",)
    rows = [w for w in workloads(args.quick) if args.only is None or args.only in w.name]
    if not rows:
        raise SystemExit(f"bench: no workload name contains {args.only!r}")
    log = sys.stderr
    if "torch" not in frameworks:
        reason = "--no-torch" if torch is not None else "PyTorch is not installed"
        print(f"bench: {reason}: timing minires alone, no ratios", file=log)
    info = machine_info(args.device, threads, thread_source)
    sizes = (4096, 8192) if args.device == "cuda" else (1024, 2048)
    peaks = gemm_peak(args.device, sizes[:1] if args.quick else sizes, 3 if args.quick else 10)
    if args.device == "cpu":
        repeats = 5 if args.quick else 20
        noise = machine_noise(repeats, 0.01 if args.quick else 0.05, NOISE_COPY_MIB)
        info["noise"] = {"repeats": repeats, "copy_mib": NOISE_COPY_MIB, **noise}
    info["torch_timed"] = "torch" in frameworks
    info["settle"] = args.settle
    info["same_process"] = args.same_process
    if "torch" not in frameworks:
        peaks.pop("torch", None)
    info["keep_processes"] = args.keep_processes
    results = []
    processes: dict[str, StepProcess] | None = None if args.same_process else {}
    try:
        for w in rows:
            print(f"bench: {w.name} ...", file=log, flush=True)
            if processes is not None and not processes:  # new ones for each row, or one set for the run
                processes.update((fw, StepProcess(fw, args.device, args.quick)) for fw in frameworks)
            results.append(run_workload(w, frameworks, args, next(iter(peaks.values())), processes))
            if processes is not None:  # whether minires's malloc settings were in force where each one ran
                info["malloc_kept"] = {fw: process.malloc_kept() for fw, process in processes.items()}
                if not args.keep_processes:
                    _close_all(processes)
    finally:
        _close_all(processes or {})
    elapsed = time.perf_counter() - start
    probes = sum(r.memory_seconds for r in results)
    table = (
        format_table(results, info, peaks) + f"\nwhole run: {elapsed:.0f} s (memory probes {probes:.0f} s)"
    )
    print(table, file=log if args.json == "-" else sys.stdout)
    if args.json is not None:
        settings = {
            k: getattr(args, k)
            for k in (
                "device",
                "quick",
                "only",
                "repeats",
                "warmup",
                "settle",
                "memory",
                "same_process",
                "keep_processes",
            )
        }
        settings["seconds"], settings["memory_seconds"] = elapsed, probes
        text = to_json(results, info, peaks, settings)
        if args.json == "-":
            print(text)
        else:
            Path(args.json).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
