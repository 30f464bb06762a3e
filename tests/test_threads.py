"""minires's CPU threads (minires/threads.py): the pool runs a convolution's batch chunks concurrently,
BLAS is held to one thread, results are deterministic for a thread count and agree across counts."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator

import numpy as np
import pytest

import minires as mr
import minires.nn.functional as F
from minires import threads


@pytest.fixture(autouse=True)
def _restore_threads() -> Iterator[None]:
    before = mr.get_num_threads()
    yield
    mr.set_num_threads(before)


def test_the_default_is_the_usable_cores_and_the_knob_checks_its_value() -> None:
    assert threads._usable_cores() >= 1
    mr.set_num_threads(3)
    assert mr.get_num_threads() == 3
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="set_num_threads: expected a positive int"):
            mr.set_num_threads(bad)


def test_chunks_run_concurrently_on_the_pool_and_in_order() -> None:
    """Two chunks meet at a barrier: they can only both pass if two threads run them at once."""
    mr.set_num_threads(2)
    barrier = threading.Barrier(2, timeout=10)
    names = []

    def work(i: int) -> int:
        barrier.wait()
        names.append(threading.current_thread().name)
        return i * i

    assert threads.parallel_map(work, [3, 4]) == [9, 16]
    assert len(set(names)) == 2 and all(n.startswith("minires") for n in names)


def test_one_thread_runs_on_the_caller() -> None:
    mr.set_num_threads(1)
    seen = threads.parallel_map(lambda _: threading.current_thread(), [0, 1, 2])
    assert all(t is threading.current_thread() for t in seen)


def test_blas_is_held_to_one_thread_once_the_pool_has_run() -> None:
    threadpoolctl = pytest.importorskip("threadpoolctl")
    mr.set_num_threads(2)
    threads.parallel_map(lambda i: i, [0, 1])
    np.ones((64, 64)) @ np.ones((64, 64))  # BLAS loaded
    blas = [i for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]
    assert blas and all(i["num_threads"] == 1 for i in blas), blas


def test_the_split_gives_every_thread_a_chunk() -> None:
    mr.set_num_threads(2)
    assert threads.split_for_threads(5, [slice(0, 5)]) == [slice(0, 2), slice(2, 5)]
    assert threads.split_for_threads(1, [slice(0, 1)]) == [slice(0, 1)]
    many = [slice(i, i + 1) for i in range(4)]
    assert threads.split_for_threads(4, many) == many
    mr.set_num_threads(1)
    assert threads.split_for_threads(5, [slice(0, 5)]) == [slice(0, 5)]


@pytest.mark.parametrize("n", [1, 3, 64])
@pytest.mark.parametrize("geometry", [(1, 1, 1, 1), (2, 1, 1, 1), (1, 2, 2, 2)])
def test_a_conv_gives_the_same_result_on_one_and_on_two_threads(n: int, geometry: tuple) -> None:
    """The same values to float32 rounding (a batch with fewer chunks than threads is split by thread, and
    a GEMM of other shapes rounds differently), and the same bits again on a second run with two threads:
    deterministic for a thread count."""
    stride, padding, dilation, groups = geometry
    rs = np.random.default_rng(0)
    x = rs.standard_normal((n, 8, 20, 20)).astype(np.float32)
    w = rs.standard_normal((8, 8 // groups, 3, 3)).astype(np.float32)

    def run(num_threads: int) -> list[np.ndarray]:
        mr.set_num_threads(num_threads)
        xt, wt = mr.tensor(x, requires_grad=True), mr.tensor(w, requires_grad=True)
        y = F.conv2d(xt, wt, None, stride, padding, dilation, groups)
        (y * y).sum().backward()
        return [y.numpy(), xt.grad.numpy(), wt.grad.numpy()]

    one, two, again = run(1), run(2), run(2)
    for name, a, b in zip(("y", "dx", "dw"), two, one, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5 * np.abs(b).max(), err_msg=name)
    for a, b in zip(two, again, strict=True):
        np.testing.assert_array_equal(a, b)


def test_ranks_on_one_machine_share_its_cores() -> None:
    """Two MPI ranks on this machine: each runs on its share of the cores it may use, not all of them,
    until destroy_process_group gives the count (and sys.excepthook) back."""
    from test_distributed import _need_mpi, launch

    _need_mpi()
    env_before = os.environ.pop("MINIRES_NUM_THREADS", None)
    try:
        done = launch(2, "tests/mpi/threads_worker.py")
    finally:
        if env_before is not None:
            os.environ["MINIRES_NUM_THREADS"] = env_before
    assert done.returncode == 0, done.stderr
    ranks = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert len(ranks) == 2, done.stdout
    for rank in ranks:
        assert rank["local"] == 2 and rank["threads"] == max(1, rank["cores"] // 2), rank
        assert rank["abort_hook"] and rank["restored"], rank  # destroy_process_group undoes both


def test_the_callers_floating_point_error_handling_holds_in_the_workers() -> None:
    """np.errstate is per thread: an overflow that the caller ignores is ignored in the pool too, and one
    that the caller raises on raises there too."""
    mr.set_num_threads(2)
    big = [np.full(4, 3e38, np.float32), np.full(4, 3e38, np.float32)]
    with np.errstate(over="ignore"):
        out = threads.parallel_map(lambda a: a * np.float32(10), big)
    assert all(np.isinf(a).all() for a in out)
    with np.errstate(over="raise"), pytest.raises(FloatingPointError):
        threads.parallel_map(lambda a: a * np.float32(10), big)


def test_changing_the_count_while_another_thread_computes_is_safe() -> None:
    """set_num_threads from one thread while another runs parallel_map in a loop: no 'cannot schedule new
    futures after shutdown', and every result right."""
    mr.set_num_threads(2)
    stop, errors = threading.Event(), []

    def compute() -> None:
        while not stop.is_set():
            try:
                assert threads.parallel_map(lambda i: i + 1, [1, 2, 3]) == [2, 3, 4]
            except Exception as exc:  # noqa: BLE001 - collected for the assertion below
                errors.append(exc)
                return

    worker = threading.Thread(target=compute)
    worker.start()
    for i in range(200):
        mr.set_num_threads(1 + i % 2)
    stop.set()
    worker.join(timeout=30)
    assert not errors, errors
