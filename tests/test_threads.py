"""minires's CPU threads (minires/threads.py): the pool runs a convolution's batch chunks concurrently,
BLAS is held to one thread, results are deterministic for a thread count and agree across counts."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

import minires as mr
import minires.nn.functional as F
from minires import threads
from minires.ops import norm


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
    assert sorted(names) == sorted([threading.current_thread().name, "minires_0"])  # the caller and a worker


def test_an_error_in_a_chunk_is_raised_by_the_caller_and_the_pool_goes_on() -> None:
    mr.set_num_threads(2)

    def work(i: int) -> int:
        if i == 3:
            raise ValueError(f"chunk {i} failed")
        return i

    for _ in range(20):  # whichever thread runs chunk 3
        with pytest.raises(ValueError, match="chunk 3 failed"):
            threads.parallel_map(work, list(range(10)))
    assert threads.parallel_map(lambda i: i * 2, list(range(10))) == list(range(0, 20, 2))


def test_one_thread_runs_on_the_caller() -> None:
    mr.set_num_threads(1)
    seen = threads.parallel_map(lambda _: threading.current_thread(), [0, 1, 2])
    assert all(t is threading.current_thread() for t in seen)


def test_blas_is_held_to_one_thread_once_the_pool_has_run() -> None:
    threadpoolctl = pytest.importorskip("threadpoolctl")
    mr.set_num_threads(2)
    threads.parallel_map(lambda i: i, [0, 1])
    np.ones((64, 64)) @ np.ones((64, 64))  # BLAS loaded
    # NumPy's BLAS, the one minires's products call. SciPy brings its own OpenBLAS (loaded by erf, after
    # the pool may have run); minires calls no product through it, so its threads never wake.
    numpy_dir = os.path.dirname(os.path.dirname(np.__file__))
    blas = [
        i
        for i in threadpoolctl.threadpool_info()
        if i["user_api"] == "blas" and os.path.dirname(i["filepath"]).startswith(numpy_dir + os.sep + "numpy")
    ]
    assert blas and all(i["num_threads"] == 1 for i in blas), blas


def test_the_chunks_give_every_thread_the_same_share() -> None:
    mr.set_num_threads(2)
    assert threads.balanced_chunks(5, 5) == [slice(0, 2), slice(2, 5)]  # one chunk fits: one per thread
    assert threads.balanced_chunks(1, 4) == [slice(0, 1)]  # one item cannot be split
    quarters = [slice(16 * i, 16 * (i + 1)) for i in range(4)]
    assert threads.balanced_chunks(64, 25) == quarters  # four of 16, not 25, 25 and 14
    assert threads.balanced_chunks(4, 1) == [slice(i, i + 1) for i in range(4)]
    assert threads.balanced_chunks(0, 3) == []  # an empty batch has no chunk
    mr.set_num_threads(3)
    sizes = [c.stop - c.start for c in threads.balanced_chunks(100, 40)]
    assert len(sizes) == 3 and sum(sizes) == 100 and max(sizes) - min(sizes) <= 1
    mr.set_num_threads(1)
    assert threads.balanced_chunks(5, 5) == [slice(0, 5)]
    assert threads.balanced_chunks(64, 25) == [slice(0, 21), slice(21, 42), slice(42, 64)]  # as few as fit


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


# ----- the memory-bound ops, a batch chunk at a time ------------------------------------------------------
def test_batch_chunks_depend_on_the_sizes_only() -> None:
    per_item = threads.BATCH_CHUNK_BYTES // 3
    chunks = threads.batch_chunks(10, per_item)
    assert chunks == [slice(0, 3), slice(3, 6), slice(6, 9), slice(9, 10)]
    assert threads.batch_chunks(2, 10 * threads.BATCH_CHUNK_BYTES) == [slice(0, 1), slice(1, 2)]
    mr.set_num_threads(1)
    assert threads.batch_chunks(10, per_item) == chunks


@pytest.mark.parametrize("n", [1, 2, 3])
def test_ordered_sum_adds_in_item_order_as_the_parts_come(n: int) -> None:
    """ordered_sum gives the bits of sum_in_order over the parts in item order on any thread count, the
    first item finishing last included (the others wait for it, then are added in order), and None for no
    items; float32 parts of very different sizes, whose sum depends on the order."""
    mr.set_num_threads(n)
    rng = np.random.default_rng(0)
    parts = [(rng.standard_normal(1000) * 10.0 ** rng.integers(-6, 6)).astype(np.float32) for _ in range(9)]
    never = threading.Event()

    def part(i: int) -> np.ndarray:
        if i == 0 and n > 1:
            never.wait(0.2)  # item 0 finishes last: the others are held, then added after it
        return parts[i].copy()

    total = threads.ordered_sum(part, range(9))
    np.testing.assert_array_equal(total, threads.sum_in_order(parts))
    assert not np.array_equal(total, threads.sum_in_order(parts[::-1]))  # the order shows in the bits
    assert threads.ordered_sum(part, []) is None


def test_each_chunk_covers_the_batch_in_order_on_the_pool() -> None:
    mr.set_num_threads(2)
    x = np.zeros((10, threads.BATCH_CHUNK_BYTES // 8 // 2))  # float64: two items a chunk, five chunks
    barrier = threading.Barrier(2, timeout=10)  # the chunks at items 0 and 4 meet: two threads run at once

    def visit(c: slice) -> tuple[slice, str]:
        if c.start in (0, 4):
            barrier.wait()
        return c, threading.current_thread().name

    seen = threads.each_chunk(np, visit, x)
    assert [c for c, _ in seen] == [slice(i, i + 2) for i in range(0, 10, 2)]
    names = {name for _, name in seen}
    assert names == {threading.current_thread().name, "minires_0"}, names  # the caller and the worker
    # one call over the whole array: an empty batch, a 0-d array, and any array module but NumPy
    for a, xp in ((np.zeros((0, 3)), np), (np.float32(1.0).reshape(()), np), (x, object())):
        assert threads.each_chunk(xp, lambda c: c, a) == [...]


def _chunked_cases() -> list[tuple[str, Callable[[], list[np.ndarray]]]]:
    """Each case: a function computing an op's forward and backward on a fixed input, through the public
    API, returning every array (y, the input's gradient, the parameters' gradients, running stats)."""
    rs = np.random.default_rng(3)

    def batch_norm(dtype: Any, channels_last: bool, affine: bool, training: bool) -> Callable:
        x0 = (rs.standard_normal((7, 5, 6, 4)) * 3 + 2).astype(dtype)
        g0 = rs.standard_normal((7, 5, 6, 4)).astype(dtype)

        def run() -> list[np.ndarray]:
            data = (
                np.ascontiguousarray(x0.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2) if channels_last else x0
            )
            x = mr.tensor(data.copy(), requires_grad=True)
            w = mr.tensor(np.linspace(0.5, 2, 5).astype(dtype), requires_grad=True) if affine else None
            b = mr.tensor(np.linspace(-1, 1, 5).astype(dtype), requires_grad=True) if affine else None
            rm, rv = mr.tensor(np.full(5, 0.5, dtype)), mr.tensor(np.full(5, 2.0, dtype))
            y = F.batch_norm(x, rm, rv, w, b, training=training)
            y.backward(mr.tensor(g0))
            grads = [w.grad.numpy(), b.grad.numpy()] if affine else []
            return [y.numpy(), x.grad.numpy(), rm.numpy(), rv.numpy(), *grads]

        return run

    def relu() -> Callable:
        x0 = rs.standard_normal((9, 3, 5, 5)).astype(np.float32)
        x0[0, 0, 0, :3] = [np.nan, -np.inf, np.inf]
        g0 = rs.standard_normal(x0.shape).astype(np.float32)

        def run() -> list[np.ndarray]:
            x = mr.tensor(x0, requires_grad=True)
            y = F.relu(x)
            y.backward(mr.tensor(g0))
            return [y.numpy(), x.grad.numpy()]

        return run

    def max_pool(kernel: int, stride: int, padding: int, dilation: int, ceil: bool) -> Callable:
        x0 = rs.standard_normal((6, 3, 9, 8)).astype(np.float32)
        x0[2, 1, 4, 4] = np.nan
        x0[4, 0, :2, :2] = 1.0  # ties

        def run() -> list[np.ndarray]:
            x = mr.tensor(x0, requires_grad=True)
            y, idx = F.max_pool2d(x, kernel, stride, padding, dilation, ceil, return_indices=True)
            y.backward(mr.tensor(np.arange(y.numel(), dtype=np.float32).reshape(y.shape) % 7))
            return [y.numpy(), idx.numpy(), x.grad.numpy()]

        return run

    cases = [
        (f"batch_norm-{np.dtype(dt).name}-{'nhwc' if cl else 'nchw'}-{'affine' if a else 'plain'}-{mode}", fn)
        for dt in (np.float32, np.float64)
        for cl in (False, True)
        for a in (True, False)
        for mode, fn in (
            ("train", batch_norm(dt, cl, a, True)),
            ("eval", batch_norm(dt, cl, a, False)),
        )
    ]

    def residual_add(a_channels_last: bool, b_channels_last: bool) -> Callable:
        a0, b0 = (rs.standard_normal((9, 4, 5, 3)).astype(np.float32) for _ in range(2))

        def layout(v: np.ndarray, channels_last: bool) -> np.ndarray:
            return np.ascontiguousarray(v.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2) if channels_last else v

        def run() -> list[np.ndarray]:
            a = mr.tensor(layout(a0, a_channels_last), requires_grad=True)
            b = mr.tensor(layout(b0, b_channels_last), requires_grad=True)
            y = a + b
            assert a.data.flags.c_contiguous != a_channels_last  # the layouts asked for
            assert y.data.strides == a.data.strides  # a's memory order, as PyTorch
            np.testing.assert_array_equal(y.data, a0 + b0)
            y.backward(mr.tensor(a0 * b0))
            return [y.numpy(), a.grad.numpy(), b.grad.numpy()]

        return run

    cases.append(("relu", relu()))
    for a_last, b_last in ((False, False), (True, False), (False, True), (True, True)):
        cases.append(
            (
                f"add-{'nhwc' if a_last else 'nchw'}+{'nhwc' if b_last else 'nchw'}",
                residual_add(a_last, b_last),
            )
        )
    for geometry in ((3, 2, 1, 1, False), (2, 2, 0, 1, True), (3, 1, 1, 2, False), (3, 3, 1, 1, True)):
        cases.append((f"max_pool-{geometry}", max_pool(*geometry)))
    return cases


CHUNKED_CASES = _chunked_cases()


@pytest.mark.parametrize(("name", "run"), CHUNKED_CASES, ids=[name for name, _ in CHUNKED_CASES])
def test_an_op_chunk_by_chunk_on_two_threads_computes_what_it_computes_at_once(
    name: str, run: Callable[[], list[np.ndarray]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Batch norm, ReLU, max pooling and the residual sum, forward and backward, with the batch as one
    chunk, as one chunk per image on one thread, and so on two threads: the same values (batch norm's
    channel sums are added chunk by chunk, so to rounding there; the others exactly), and the same bits on
    one and on two threads for the same chunks (the chunks depend on the sizes, not on the thread count)."""
    monkeypatch.setattr(threads, "BATCH_CHUNK_BYTES", 1 << 30)
    mr.set_num_threads(1)
    whole = run()
    monkeypatch.setattr(threads, "BATCH_CHUNK_BYTES", 1)  # one image a chunk
    one_thread = run()
    mr.set_num_threads(2)
    two_threads, again = run(), run()
    for a, b in zip(two_threads, one_thread, strict=True):
        np.testing.assert_array_equal(a, b, err_msg=name)
    for a, b in zip(two_threads, again, strict=True):
        np.testing.assert_array_equal(a, b, err_msg=name)
    for i, (a, b) in enumerate(zip(two_threads, whole, strict=True)):
        if name.startswith("batch_norm"):
            tol = 1e-12 if "float64" in name else 2e-5
            np.testing.assert_allclose(a, b, rtol=tol, atol=tol * np.abs(b).max(), err_msg=f"{name} [{i}]")
        else:
            np.testing.assert_array_equal(a, b, err_msg=f"{name} [{i}]")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_batch_norm_by_rows_and_by_broadcast_agree(dtype: Any) -> None:
    """NCHW x and g go row by row in that order, channels-last x and g row by row in theirs
    (memory_order.channel_rows); a g in the other memory order is copied into x's first (in_order_of), and a
    strided view broadcasts per channel. Every combination gives the same y, gradients and running
    statistics, the outputs in x's memory order."""
    rs = np.random.default_rng(5)
    x0, g0 = (
        (rs.standard_normal((6, 4, 5, 3)) * 2 + 1).astype(dtype),
        rs.standard_normal((6, 4, 5, 3)).astype(dtype),
    )

    def channels_last(a: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(a.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)

    def run(x_data: np.ndarray, g_data: np.ndarray) -> list[np.ndarray]:
        x = mr.tensor(x_data, requires_grad=True)
        w, b = mr.tensor(np.linspace(0.5, 2, 4).astype(dtype), requires_grad=True), mr.zeros(4, dtype=dtype)
        b.requires_grad_(True)
        rm, rv = mr.zeros(4, dtype=dtype), mr.ones(4, dtype=dtype)
        y = F.batch_norm(x, rm, rv, w, b, training=True)
        y.backward(mr.tensor(g_data))
        return [y.numpy(), x.grad.numpy(), w.grad.numpy(), b.grad.numpy(), rm.numpy(), rv.numpy()]

    reference = run(x0, g0)
    tol = 1e-12 if dtype == np.float64 else 1e-5
    for x_data, g_data in (
        (channels_last(x0), g0),
        (x0, channels_last(g0)),
        (channels_last(x0), channels_last(g0)),
    ):
        got = run(x_data, g_data)
        for a, b in zip(got, reference, strict=True):
            np.testing.assert_allclose(a, b, rtol=tol, atol=tol * np.abs(b).max())
        assert got[0].strides == x_data.strides  # y keeps x's memory order
    assert (
        norm.channel_rows(x0, g0) == "first"
        and norm.channel_rows(channels_last(x0), channels_last(g0)) == "last"
    )
    assert norm.channel_rows(x0, channels_last(g0)) is None and norm.channel_rows(x0[:, :, :, ::2]) is None
    x5 = rs.standard_normal((2, 3, 4, 2, 5))  # 3d: channels last is (N, D, H, W, C)
    last5 = np.ascontiguousarray(np.moveaxis(x5, 1, -1))
    assert norm.channel_rows(np.moveaxis(last5, -1, 1)) == "last"
    rows = norm.as_rows(np.moveaxis(last5, -1, 1), "last")
    np.testing.assert_array_equal(norm.from_rows(rows, x5, "last"), x5)


@pytest.mark.parametrize("geometry", [(3, 2, 1, 1, False), (2, 1, 0, 2, True), (3, 3, 1, 1, True)])
def test_max_pool_without_a_gradient_takes_the_max_alone(geometry: tuple) -> None:
    """Under no_grad (and for an input that needs no gradient) max pooling tracks no argmax: the same y as
    with the argmax, NaNs and -inf included, and no indices kept; return_indices still gets them."""
    rs = np.random.default_rng(6)
    x0 = rs.standard_normal((5, 3, 9, 8)).astype(np.float32)
    x0[1, 2, 3, 3], x0[2, 0, :2, :2] = np.nan, -np.inf
    x = mr.tensor(x0, requires_grad=True)
    tracked = F.max_pool2d(x, *geometry)
    with mr.no_grad():
        y = F.max_pool2d(x, *geometry)
        _, idx = F.max_pool2d(x, *geometry, return_indices=True)
    np.testing.assert_array_equal(y.numpy(), tracked.numpy())
    np.testing.assert_array_equal(F.max_pool2d(mr.tensor(x0), *geometry).numpy(), tracked.numpy())
    _, idx_tracked = F.max_pool2d(x, *geometry, return_indices=True)
    np.testing.assert_array_equal(idx.numpy(), idx_tracked.numpy())
    assert y.grad_fn is None and tracked.grad_fn is not None


def test_batch_norm_runs_its_chunks_on_both_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    """The first two chunks meet at a barrier: they can only both pass if two threads run them at once."""
    mr.set_num_threads(2)
    import minires.ops.norm as norm

    barrier, met, names = threading.Barrier(2, timeout=10), threading.Event(), set()

    def meeting(fn: Callable) -> Callable:
        def chunk(c: Any) -> Any:
            if not met.is_set():
                barrier.wait()
                met.set()
            names.add(threading.current_thread().name)
            return fn(c)

        return chunk

    monkeypatch.setattr(norm, "each_chunk", lambda xp, fn, a: threads.each_chunk(xp, meeting(fn), a))
    x = mr.randn(64, 8, threads.BATCH_CHUNK_BYTES // (8 * 4 * 4 * 16), 4, requires_grad=True)  # 4 chunks
    F.batch_norm(x, None, None, training=True).sum().backward()
    assert names == {threading.current_thread().name, "minires_0"}, names


# ----- glibc's malloc keeps freed blocks (allocator.py) ---------------------------------------------------
_FAULTS = """
import resource
import numpy as np
from minires import allocator
took = allocator.keep_freed_memory()
def step():  # as a training step: arrays of a few sizes, 80 MiB in all, made, written, then all freed
    arrays = [np.ones((i % 7 + 1) << 17, np.float32) for i in range(40)]  # 0.5 to 3.5 MiB each
    del arrays
step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    step()
print(took, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(env: dict[str, str]) -> tuple[str, int]:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", _FAULTS],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env},
    )
    assert done.returncode == 0, done.stderr
    took, faults = done.stdout.split()
    return took, int(faults)


def test_freed_blocks_are_reused_without_page_faults() -> None:
    """Ten steps that each make and free 80 MiB of arrays: with glibc's defaults the freed top of the heap
    goes back to the kernel and the next step faults its pages in again (about 200,000 faults here); once
    keep_freed_memory has run, the blocks are reused without a fault. MINIRES_MALLOC=system leaves malloc
    alone."""
    import platform

    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        pytest.skip(f"glibc's mallopt only: this is {platform.system()} {platform.libc_ver()}")
    took, kept = _faults({})
    assert took == "True"
    assert kept < 200, kept
    took, default = _faults({"MINIRES_MALLOC": "system"})
    assert took == "False"
    assert default > 10 * 20480 // 4, default  # at least a quarter of the 10 x 20480 pages faulted again
