"""Shared test setup: hypothesis profiles, the `torch` fixture, the `backend` fixture (NumPy, the CuPy
stand-in, real CuPy), `http_root` for download tests, and GPU skipping.

Environment:
    HYPOTHESIS_PROFILE     "ci" or "dev"; default "dev", or "ci" when CI is set (as CI runs do).
    MINIRES_REQUIRE_TORCH  "1" makes a missing torch fail the tests that compare with it instead of skipping.
    MINIRES_REQUIRE_GPU    "1" makes the GPU tests fail, naming why, where the GPU cannot be used.
"""

from __future__ import annotations

import functools
import http.server
import importlib
import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import HealthCheck, settings

# ci: fixed examples (the same ones every run), few of them, and the blob to reproduce a failure.
settings.register_profile(
    "ci",
    derandomize=True,
    max_examples=25,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
# dev: fresh random examples each run, more of them.
settings.register_profile("dev", max_examples=200, deadline=None)


def _running_in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if _running_in_ci() else "dev"))


def _gpu_available() -> bool:
    """True when minires sees CuPy and a GPU; minires is imported here, not at the top of this file."""
    try:
        from minires.backend import cuda_available
    except ImportError:  # the tests themselves report a broken package
        return False
    return cuda_available()


@pytest.fixture(scope="session")
def torch() -> ModuleType:
    """The torch module, the reference the PyTorch comparisons check against.

    Skips the test when torch is not installed, or fails it when MINIRES_REQUIRE_TORCH=1 (as in CI),
    so that a broken install cannot turn the comparisons into silent skips.
    """
    try:
        return importlib.import_module("torch")
    except ImportError as exc:
        reason = str(exc)
    if os.environ.get("MINIRES_REQUIRE_TORCH") == "1":
        pytest.fail(
            f"torch is required (MINIRES_REQUIRE_TORCH=1) but cannot be imported: {reason}. "
            "Install the test extra: pip install -e '.[test]'",
            pytrace=False,
        )
    pytest.skip(f"torch not installed ({reason})")


@pytest.fixture(
    scope="session",
    params=["numpy", "standin", pytest.param("cupy", marks=pytest.mark.gpu)],
)
def backend(request: pytest.FixtureRequest) -> Iterator[str]:
    """The device each test runs on: "cpu" (NumPy); "cuda" on the CuPy stand-in (tests/cupy_standin.py,
    installed around each test by `_standin_device`); then "cuda" (real CuPy) where a GPU is there."""
    if request.param == "cupy":
        if not _gpu_available():
            _skip_or_fail_gpu()
        yield "cuda"
    elif request.param == "standin":
        yield "cuda"
    else:
        yield "cpu"


@pytest.fixture(autouse=True)
def _standin_device(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """For the tests of the "standin" backend: minires's CuPy is the stand-in, for this one test.

    Function-scoped, so that it is undone after each test (the session-scoped `backend` stays set while
    other tests run). It is autouse, which hypothesis's check of function-scoped fixtures passes over.
    minires asks `backend.cupy` at each call, and erf imports cupyx.
    """
    callspec = getattr(request.node, "callspec", None)
    if callspec is None or callspec.params.get("backend") != "standin":
        return
    from cupy_standin import standin, standin_cupyx

    import minires.backend
    import minires.rng

    monkeypatch.setattr(minires.backend, "cupy", standin)
    monkeypatch.setattr(minires.backend, "_unavailable_reason", "")
    monkeypatch.setattr(minires.backend, "_deferred", [])  # no deferred check outlives its test
    monkeypatch.setitem(sys.modules, "cupyx", standin_cupyx)
    monkeypatch.setitem(sys.modules, "cupyx.scipy", standin_cupyx.scipy)
    monkeypatch.setitem(sys.modules, "cupyx.scipy.special", standin_cupyx.scipy.special)


def _gpu_reason() -> str:
    from minires.backend import cuda_unavailable_reason

    return cuda_unavailable_reason()


def _skip_or_fail_gpu() -> None:
    """Skip a GPU test here, saying why the GPU cannot be used; with MINIRES_REQUIRE_GPU=1, fail it."""
    if os.environ.get("MINIRES_REQUIRE_GPU") == "1":
        pytest.fail(f"MINIRES_REQUIRE_GPU=1, but the GPU cannot be used: {_gpu_reason()}", pytrace=False)
    pytest.skip(f"needs CuPy and an NVIDIA GPU: {_gpu_reason()}")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip the tests marked gpu on a machine without one, saying why (CI there skips them cleanly); with
    MINIRES_REQUIRE_GPU=1 (make test-gpu) they run and fail instead, so that a GPU machine whose CuPy
    cannot reach the GPU does not pass by skipping everything."""
    gpu_items = [item for item in items if item.get_closest_marker("gpu") is not None]
    if not gpu_items or _gpu_available() or os.environ.get("MINIRES_REQUIRE_GPU") == "1":
        return
    skip_gpu = pytest.mark.skip(reason=f"needs CuPy and an NVIDIA GPU: {_gpu_reason()}")
    for item in gpu_items:
        item.add_marker(skip_gpu)


@pytest.fixture
def http_root(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A directory served over HTTP on localhost, for the download tests; yields (directory, base URL)."""
    served = tmp_path / "served"
    served.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield served, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
