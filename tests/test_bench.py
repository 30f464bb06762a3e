"""benchmarks/bench.py: its FLOP counts against analytic and published numbers, its verdicts, its table and
JSON, and one quick run end to end (a few seconds: one small model, two repeats, no memory probes); and the
two tools beside it, profile_ops.py and thread_scaling.py."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

import minires as mr
from minires import nn

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import bench  # noqa: E402


def test_conv_macs_is_the_analytic_count() -> None:
    # 3x32x32 -> 8x16x16 (stride 2, padding 1): each of the 2*8*16*16 outputs sums 3*3*3 products
    assert bench.conv_macs(2, (3, 32, 32), bench.Conv(8, 3, stride=2, padding=1)) == 2 * 8 * 16 * 16 * 27
    assert (
        bench.conv_out(28, 7, 2, 3) == 14
        and bench.conv_out(7, 3, 1, 1) == 7
        and bench.conv_out(5, 1, 2, 0) == 3
    )


def test_model_macs_counts_convs_and_linears_and_restores_the_mode() -> None:
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(8 * 16 * 16, 10),
    )
    model.train()
    assert bench.model_macs(model, (3, 32, 32)) == 8 * 16 * 16 * 27 + 10 * 8 * 16 * 16
    assert all(m.training for m in model.modules())


def test_model_macs_matches_torchvisions_published_count() -> None:
    # torchvision's ResNet18_Weights.IMAGENET1K_V1 lists 1.814 G "ops" (multiply-accumulates) at 224x224
    assert round(bench.model_macs(mr.models.resnet18(), (3, 224, 224)) / 1e9, 3) == 1.814


def test_workload_flops() -> None:
    conv = bench.Workload("conv", 4, (16, 8, 8), bench.Target(), conv=bench.Conv(16, 3, padding=1), label="x")
    macs = 4 * 16 * 8 * 8 * 16 * 9
    assert bench.workload_flops(conv) == 6 * macs  # forward, dX and dW
    stem = bench.Workload(
        "conv", 4, (16, 8, 8), bench.Target(), conv=bench.Conv(16, 3, 1, 1, False), label="x"
    )
    assert bench.workload_flops(stem) == 4 * macs  # no dX
    train = bench.Workload("train", 8, (1, 28, 28), bench.Target(), model="cifar_resnet20")
    assert bench.workload_flops(train, 1000) == 6 * 1000 * 8
    assert (
        bench.workload_flops(bench.Workload("infer", 8, (1, 28, 28), bench.Target(), "m"), 1000) == 2 * 8000
    )


def _result(ratio: float, peak_fraction: float, memory_ratio: float, spread: float = 0.05) -> bench.Result:
    target = bench.Target(1.3, 0.5, 1.2, max_spread=0.10)
    w = bench.Workload("train", 256, (1, 28, 28), target, model="d2l_resnet18")
    numbers = {"images_per_s": 500.0, "gflops": 50.0, "peak_fraction": peak_fraction, "memory_mb": 300.0}
    torch_numbers = dict(numbers, images_per_s=500.0 * ratio, memory_mb=300.0 / memory_ratio)
    frameworks = {"minires": numbers, "torch": torch_numbers}
    return bench.Result(w, 1e9, frameworks, ratio, memory_ratio, spread, torch_spread=0.07)


@pytest.mark.parametrize(
    ("ratio", "fraction", "memory", "spread", "expected"),
    [
        (1.3, 0.5, 1.2, 0.10, {"time": "PASS", "gemm": "PASS", "memory": "PASS", "steady": "PASS"}),
        (1.31, 0.49, 1.21, 0.11, {"time": "MISS", "gemm": "MISS", "memory": "MISS", "steady": "MISS"}),
    ],
)
def test_judge_at_the_targets(
    ratio: float, fraction: float, memory: float, spread: float, expected: dict
) -> None:
    assert bench.judge(_result(ratio, fraction, memory, spread)) == expected


def test_every_model_row_has_issue_23s_targets() -> None:
    for w in bench.workloads():
        if w.kind in ("train", "infer") and w.batch > 1:
            assert w.target.max_time_ratio == 1.3 and w.target.max_spread == 0.10, w.name
            assert w.target.max_memory_ratio == (1.2 if w.kind == "train" else None), w.name


def test_table_and_json_hold_every_number() -> None:
    r = _result(1.66, 0.2, 1.2)
    r.verdicts = bench.judge(r)
    info = bench.machine_info("cpu", 2, "test")
    peaks = {"numpy": 250.0}
    table = bench.format_table([r], info, peaks)
    line = next(s for s in table.splitlines() if s.startswith("train d2l_resnet18 1x28x28 N256"))
    assert "1.66" in line and "time MISS" in line and "memory PASS" in line and "20%" in line
    assert "steady PASS" in line and "s<=10%" in line and "7%" in line  # minires's spread 5%, torch's 7%
    assert "GEMM peak: numpy 250 GFLOP/s" in table
    if info["torch"]:  # the vector ISA of PyTorch's kernels, which the ratios depend on
        assert f"(kernels {info['torch_kernels']})" in table
    data = json.loads(bench.to_json([r], info, peaks, {"repeats": 5}))
    (row,) = data["results"]
    assert row["workload"]["name"] == r.workload.name and row["ratio"] == 1.66
    assert row["target"]["max_time_ratio"] == 1.3 and row["frameworks"]["torch"]["memory_mb"] == 250.0
    assert data["gemm_peak_gflops"] == peaks and data["machine"]["threads"] == 2


def test_time_interleaved_takes_turns_and_times_the_settled_step() -> None:
    """Turns a, b, a, b after the warm-up; with ``settle`` each turn's timed sample is the step that follows
    one of its own framework's, so a step slowed by the other framework's previous step (here: by 20 ms,
    a stand-in for PyTorch's spinning threads) is never the one timed; with 0 every sample is."""
    calls: list[str] = []

    def step(name: str) -> Any:
        def run() -> None:
            if calls and calls[-1] != name:
                time.sleep(0.02)
            calls.append(name)

        return run

    steps = {"a": step("a"), "b": step("b")}
    times = bench.time_interleaved(steps, warmup=1, repeats=3, settle=1)
    assert calls == ["a", "b"] + ["a", "a", "b", "b"] * 3
    assert all(len(ts) == 3 and max(ts) < 0.015 for ts in times.values())
    calls.clear()
    times = bench.time_interleaved(steps, warmup=0, repeats=3, settle=0)
    assert calls == ["a", "b"] * 3
    assert min(times["b"]) >= 0.02
    assert min(times["a"][1:]) >= 0.02  # the first sample of a follows no step at all


@pytest.mark.slow  # about 10 s: two Python processes that import minires and PyTorch
def test_step_processes_time_each_framework_apart() -> None:
    """Each framework steps in a process of its own (StepProcess), taking turns; minires's malloc settings
    (process-wide) are in force in minires's process only, and a command that fails there is reported."""
    from minires import allocator

    frameworks = ("minires", "torch") if bench.torch is not None else ("minires",)
    processes = {fw: bench.StepProcess(fw, "cpu", quick=True) for fw in frameworks}
    try:
        (w,) = [w for w in bench.workloads(quick=True) if w.name == "infer cifar_resnet20 1x28x28 N16"]
        for process in processes.values():
            process.load(w)
        times = bench.time_interleaved(processes, warmup=1, repeats=2, settle=1)
        assert all(len(ts) == 2 and min(ts) > 0 for ts in times.values())
        kept = {fw: process.malloc_kept() for fw, process in processes.items()}
        assert kept["minires"] is allocator.keep_freed_memory()  # True under glibc, as in this process
        if "torch" in kept:
            assert kept["torch"] is False  # PyTorch's process never ran a minires kernel
        with pytest.raises(RuntimeError, match="the minires process answered"):
            processes["minires"].load(replace(w, batch=3))  # no such workload: the process ends
        assert processes["minires"].process.poll() not in (None, 0)
    finally:
        for process in processes.values():
            process.close()
    if "torch" in processes:
        assert processes["torch"].process.returncode == 0  # stdin closed: it ends its loop


def test_settle_defaults_and_refuses_negative_counts() -> None:
    assert bench.parse_args([]).settle == 1 and bench.parse_args(["--quick"]).settle == 0
    assert not bench.parse_args([]).same_process and bench.parse_args(["--same-process"]).same_process
    assert not bench.parse_args([]).keep_processes and bench.parse_args(["--keep-processes"]).keep_processes
    with pytest.raises(SystemExit):  # nothing to keep when both run here
        bench.parse_args(["--same-process", "--keep-processes"])
    assert bench.parse_args(["--settle", "3"]).settle == 3
    for flag in ("--settle", "--warmup"):
        with pytest.raises(SystemExit):
            bench.parse_args([flag, "-1"])


@pytest.mark.parametrize("keep", [False, True])
def test_each_row_gets_processes_of_its_own_unless_kept(monkeypatch: pytest.MonkeyPatch, keep: bool) -> None:
    """By default each row starts a new process per framework and closes it after the row (a framework's
    process state, glibc's malloc thresholds among it, does not carry over from the rows before);
    --keep-processes starts one per framework for the whole run. StepProcess and the timing are faked."""
    started: list[Any] = []
    closed: list[Any] = []
    rows_seen: list[dict[str, Any]] = []

    class FakeProcess:
        def __init__(self, framework: str, device: str, quick: bool) -> None:
            self.framework = framework
            started.append(self)

        def malloc_kept(self) -> bool:
            return self.framework == "minires"

        def close(self) -> None:
            closed.append(self)

    def fake_run(w: Any, frameworks: Any, args: Any, peak: float, processes: Any) -> bench.Result:
        assert set(processes) == set(frameworks) and not set(processes.values()) & set(closed)
        rows_seen.append(dict(processes))
        return bench.Result(w, 0.0)

    monkeypatch.setattr(bench, "StepProcess", FakeProcess)
    monkeypatch.setattr(bench, "run_workload", fake_run)
    monkeypatch.setattr(bench, "gemm_peak", lambda *args: {"numpy": 100.0})
    monkeypatch.setattr(bench, "format_table", lambda *args: "")
    flags = ["--only", "cifar_resnet20 1x28x28 N128", "--no-memory"] + (["--keep-processes"] if keep else [])
    assert bench.main(flags) == 0
    assert len(rows_seen) == 2  # its training and inference rows
    n_frameworks = len(rows_seen[0])
    if keep:
        assert rows_seen[0] == rows_seen[1] and len(started) == n_frameworks
    else:
        assert not set(rows_seen[0].values()) & set(rows_seen[1].values())
        assert len(started) == 2 * n_frameworks
    assert sorted(map(id, started)) == sorted(map(id, closed))  # every one closed, once


def test_machine_noise_is_the_spread_of_fixed_work(monkeypatch: pytest.MonkeyPatch) -> None:
    assert bench.spread_of([1.0, 2.0, 4.0]) == 1.0  # |4 - 2| / 2
    assert bench.spread_of([3.0, 3.0]) == 0.0
    samples = []
    monkeypatch.setattr(bench, "spread_of", lambda times: samples.append(times) or 0.5)
    assert bench.machine_noise(repeats=4, seconds=0.002, copy_mib=1) == {"gemm": 0.5, "copy": 0.5}
    assert [len(times) for times in samples] == [4, 4] and all(t > 0 for times in samples for t in times)
    info = dict(
        bench.machine_info("cpu", 2, "test"), noise={"repeats": 4, "copy_mib": 64, "gemm": 0.07, "copy": 0.22}
    )
    table = bench.format_table([], info, {"numpy": 250.0})
    assert "machine noise (spread of 4 samples" in table and "GEMM 7%, 64 MiB copies 22%" in table


@pytest.mark.slow  # about 10 s: imports, a GEMM peak, two rows of a small model
def test_quick_run_writes_the_table_and_json(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    cmd = [sys.executable, str(BENCHMARKS / "bench.py"), "--quick", "--only", "cifar_resnet20 1x28x28 N16"]
    run = subprocess.run([*cmd, "--json", str(out)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "train cifar_resnet20 1x28x28 N16" in run.stdout and "GEMM peak" in run.stdout
    data = json.loads(out.read_text())
    assert [row["workload"]["name"] for row in data["results"]] == [
        "train cifar_resnet20 1x28x28 N16",
        "infer cifar_resnet20 1x28x28 N16",
    ]
    assert data["settings"]["same_process"] is False and data["settings"]["keep_processes"] is False
    assert data["machine"]["keep_processes"] is False
    assert data["machine"]["noise"]["repeats"] == 5 and "machine noise" in run.stdout
    assert data["machine"]["noise"]["gemm"] >= 0 and data["machine"]["noise"]["copy"] >= 0
    if data["machine"]["torch"]:
        assert data["machine"]["malloc_kept"]["torch"] is False
    for row in data["results"]:
        mine = row["frameworks"]["minires"]
        assert len(mine["times_s"]) == 2 and mine["images_per_s"] > 0 and mine["gflops"] > 0
        assert row["spread"] is not None and row["spread"] >= 0
        if data["machine"]["torch"]:
            assert row["ratio"] > 0 and row["frameworks"]["torch"]["images_per_s"] > 0
            times = row["frameworks"]["torch"]["times_s"]  # torch's spread: its own deviation from its median
            median = statistics.median(times)
            assert row["torch_spread"] == pytest.approx(max(abs(t - median) for t in times) / median)


def test_model_rows_take_a_row_by_its_exact_name() -> None:
    """--only of profile_ops.py and thread_scaling.py: a part of a name takes every row holding it, a whole
    name its one row (the batch-1 row's name is a prefix of the batch-128 row's)."""
    names = [w.name for w in bench.model_rows("cifar_resnet20 1x28x28 N1")]
    assert "infer cifar_resnet20 1x28x28 N1" in names and "infer cifar_resnet20 1x28x28 N128" in names
    exact = bench.model_rows("infer cifar_resnet20 1x28x28 N1")
    assert [w.name for w in exact] == ["infer cifar_resnet20 1x28x28 N1"]


def test_profile_ops_times_each_op_and_unwraps_them_after() -> None:
    """benchmarks/profile_ops.py on a small training step: every conv is keyed by shape and layout, the
    ops' times add up to at most the step's, and the Functions are unwrapped afterwards."""
    import profile_ops

    from minires.ops.norm import BatchNorm, BatchNormReLU

    before = BatchNorm.__dict__["forward"], BatchNormReLU.__dict__["backward"]
    (w,) = [w for w in bench.workloads(quick=True) if w.name == "train cifar_resnet20 1x28x28 N16"]
    per_step, ops = profile_ops.profile(w, warmup=1, steps=1)
    assert (BatchNorm.__dict__["forward"], BatchNormReLU.__dict__["backward"]) == before
    # calls per step: each of the 19 batch norms with the ReLU after it (and the residual sum) as one op,
    # keyed by input shape (7, 6 and 6 in the three stages)
    for op in ("forward", "backward"):
        calls = [ops[f"BatchNormReLU.{op} (16, {c}, {s}, {s})"][1] for c, s in ((16, 28), (32, 14), (64, 7))]
        assert calls == [7, 6, 6]
    assert not any(key.startswith(("ReLU.", "BatchNorm.")) for key in ops)
    assert ops["Conv2d.forward (16, 1, 28, 28) rows"][1] == 1  # the stem
    assert sum(seconds for seconds, _ in ops.values()) <= per_step
    table = profile_ops.format_profile(w.name, per_step, ops)
    assert "Conv2d.backward (16, 16, 28, 28) rows" in table and "outside the ops" in table


def test_thread_scaling_takes_turns_at_one_and_all_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    """benchmarks/thread_scaling.py: a warm-up at each count, then 1 and N threads taking turns (the order
    swapped each round), medians per count, and the framework left at N threads."""
    import thread_scaling

    counts: list[int] = []
    original = thread_scaling.set_threads
    monkeypatch.setattr(thread_scaling, "set_threads", lambda fw, n: (counts.append(n), original(fw, n)))
    before = mr.get_num_threads()
    try:
        (w,) = [w for w in bench.workloads(quick=True) if w.name == "infer cifar_resnet20 1x28x28 N16"]
        medians = thread_scaling.measure(w, "minires", 2, rounds=2)
        assert counts == [1, 2, 1, 2, 2, 1, 2] and mr.get_num_threads() == 2
        assert set(medians) == {1, 2} and all(s > 0 for s in medians.values())
    finally:
        mr.set_num_threads(before)
    text = thread_scaling.format_scaling(
        "train x", 2, {"minires": {1: 0.4, 2: 0.2}, "torch": {1: 0.2, 2: 0.1}}
    )
    assert "minires  1 thread    400.0   2 threads    200.0   speedup 2.00" in text
    assert "minires / torch: 2.00 on 1 thread, 2.00 on 2" in text


@pytest.mark.slow  # about 10 s: a process per framework, two small rows
def test_thread_scaling_runs_each_framework_in_a_process_of_its_own() -> None:
    cmd = [
        sys.executable,
        str(BENCHMARKS / "thread_scaling.py"),
        "--quick",
        "--rounds",
        "1",
        "--threads",
        "2",
    ]
    run = subprocess.run(
        [*cmd, "--only", "cifar_resnet20 1x28x28 N16"], capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0].startswith("train cifar_resnet20 1x28x28 N16: ms a step on 1 and 2 threads")
    assert any(line.startswith("infer cifar_resnet20 1x28x28 N16") for line in lines)
    assert sum("minires  1 thread" in line for line in lines) == 2
    if bench.torch is not None:
        assert sum("torch    1 thread" in line for line in lines) == 2
        assert sum("minires / torch:" in line for line in lines) == 2
