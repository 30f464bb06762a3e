"""Which device minires can use, and why not: the reason CuPy could not be used is kept and said (by
``mr.cuda.unavailable_reason()``, by the error of ``device="cuda"``, by the example's ``--device cuda`` and
by the GPU tests' skip reason); ``MINIRES_REQUIRE_GPU=1`` turns those skips into failures; ``cuda:N`` that
is not CuPy's current device is refused instead of silently meaning it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from scripts import load_script

import minires as mr
from minires import backend
from minires.errors import DeviceError

ROOT = Path(__file__).resolve().parents[1]


def fake_cupy(count: int = 1, current: int = 0, fail: Exception | None = None) -> SimpleNamespace:
    def get_device_count() -> int:
        if fail is not None:
            raise fail
        return count

    runtime = SimpleNamespace(getDeviceCount=get_device_count, getDevice=lambda: current)
    return SimpleNamespace(
        __version__="14.2.0", cuda=SimpleNamespace(runtime=runtime), ndarray=type("nd", (), {})
    )


@pytest.mark.parametrize(
    "module, expected",
    [
        (None, "CuPy is not installed"),
        (
            fake_cupy(fail=RuntimeError("cudaErrorInsufficientDriver")),
            "cannot reach a GPU (RuntimeError: cudaErr",
        ),
        (fake_cupy(count=0), "sees no GPU (getDeviceCount() is 0)"),
    ],
)
def test_the_reason_is_kept(monkeypatch: pytest.MonkeyPatch, module, expected: str) -> None:
    monkeypatch.setitem(sys.modules, "cupy", module)  # None in sys.modules makes the import fail
    cupy, reason = backend._probe_cupy()
    assert cupy is None and expected in reason


def test_a_usable_gpu_has_no_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "cupy", fake_cupy(count=2))
    cupy, reason = backend._probe_cupy()
    assert cupy is sys.modules["cupy"] and reason == ""


@pytest.mark.skipif(mr.cuda.is_available(), reason="checks the messages of a machine without a usable GPU")
def test_asking_for_cuda_without_a_gpu_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    reason = mr.cuda.unavailable_reason()
    assert reason and not mr.cuda.is_available()
    with pytest.raises(DeviceError) as info:
        mr.zeros(2, device="cuda")
    assert "the GPU cannot be used: " + reason in str(info.value)
    example = load_script("examples/train_fashion_mnist.py")
    with pytest.raises(SystemExit, match="--device cuda, but the GPU cannot be used: "):
        example.pick_device("cuda")
    assert example.pick_device("auto") == "cpu"


def test_cuda_index_other_than_the_current_device_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backend, "cupy", fake_cupy(count=2, current=0))
    assert backend.normalize_device("cuda") == "cuda"
    assert backend.normalize_device("cuda:0") == "cuda"
    assert backend.normalize_device(mr.device("cuda", 0)) == "cuda"
    for device in ("cuda:1", mr.device("cuda:1"), mr.device("cuda", 1)):
        with pytest.raises(
            DeviceError, match=r"one GPU, CuPy's current device cuda:0; got .*cupy.cuda.Device\(1\)"
        ):
            backend.normalize_device(device)
    monkeypatch.setattr(backend, "cupy", fake_cupy(count=2, current=1))
    assert backend.normalize_device("cuda:1") == "cuda"
    with pytest.raises(DeviceError, match="expected 'cpu', 'cuda' or 'cuda:N'"):
        backend.normalize_device("cuda:x")
    assert backend.normalize_device("cpu:0") == "cpu"
    with pytest.raises(DeviceError, match="the CPU is device 'cpu'"):
        backend.normalize_device("cpu:1")


def test_module_to_refuses_another_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backend, "cupy", fake_cupy(count=2, current=0))
    with pytest.raises(DeviceError, match="got 'cuda:1'"):
        mr.nn.Linear(2, 2).to("cuda:1")


@pytest.mark.skipif(mr.cuda.is_available(), reason="on a GPU machine the GPU tests run and pass")
def test_require_gpu_turns_the_skips_into_failures() -> None:
    env = dict(os.environ, MINIRES_REQUIRE_GPU="1", PYTHONPATH=str(ROOT))
    args = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "tests/test_autograd.py",
        "-m",
        "gpu",
    ]
    required = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert required.returncode == 1, required.stdout[-2000:]
    assert "MINIRES_REQUIRE_GPU=1, but the GPU cannot be used: " in required.stdout
    env.pop("MINIRES_REQUIRE_GPU")
    skipped = subprocess.run([*args, "-rs"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert skipped.returncode == 0 and "needs CuPy and an NVIDIA GPU: " in skipped.stdout
