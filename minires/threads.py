"""The CPU's threads: minires runs the batch chunks of a convolution on every usable core, itself.

NumPy computes on one core except inside BLAS, whose own threads then wait for the next GEMM by spinning
(OpenBLAS busy-waits after each call), competing with the single-threaded NumPy work between the GEMMs:
im2col copies, batch norm, ReLU, pooling, the optimizer. So minires owns the threads instead: BLAS runs
on one thread per call (threadpoolctl, once, at the first parallel call), and the calling thread with a
small pool of workers, one thread per usable core in all (``os.sched_getaffinity``), each runs whole
chunks of a convolution (unfold, GEMM, fold) at once. NumPy releases the GIL in its copies, ufuncs and
matmul, so the chunks overlap.

    mr.set_num_threads(1)     # the knob: everything on the calling thread (BLAS still on one thread)
    mr.get_num_threads()      # the threads: the usable cores, or MINIRES_NUM_THREADS when set

The memory-bound ops (batch norm, ReLU, max pooling) run the same way, a batch chunk of about
``BATCH_CHUNK_BYTES`` at a time (``batch_chunks``, ``each_chunk``): a chunk stays in its core's cache
between the few passes that an op makes over it.

Results are deterministic for a given thread count: each chunk is computed by one thread, on one BLAS
thread, and sums over chunks (a convolution's dw, batch norm's channel sums) are added in chunk order. The
elementwise chunks depend on the array's size only, so those sums are the same on any number of threads.
A convolution's chunks are sized by the cache (ops/conv_layouts.py) and counted in multiples of the
threads (``balanced_chunks``), so another thread count can change its results in their last bits (a GEMM
of other shapes rounds differently), as torch's can.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import numpy as np

from .allocator import keep_freed_memory

T = TypeVar("T")

# One chunk of an elementwise op's array: 1 MiB, the best of 128 KiB to 2 MiB for batch norm and ReLU
# (measured, AVX2; smaller chunks cost more calls than the cache saves, with 512 KiB of L2 a core here).
BATCH_CHUNK_BYTES = 1 << 20

_lock = threading.Lock()
_num_threads: int | None = None  # None: not yet chosen (the usable cores, or MINIRES_NUM_THREADS)
_pool: ThreadPoolExecutor | None = None
_cpu_taken = False  # _take_the_cpu has run: BLAS limited, malloc told (once per process)
_worker = threading.local()  # .active: this thread is one of the pool's (never nest the pool)


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def get_num_threads() -> int:
    """The number of threads that minires's CPU kernels use (torch's ``get_num_threads``)."""
    global _num_threads
    if _num_threads is None:
        env = os.environ.get("MINIRES_NUM_THREADS")
        _num_threads = int(env) if env else _usable_cores()
        if _num_threads < 1:
            raise ValueError(f"MINIRES_NUM_THREADS: expected a positive int, got {env!r}")
    return _num_threads


def set_num_threads(n: int) -> None:
    """Run minires's CPU kernels on ``n`` threads (torch's ``set_num_threads``); 1 runs everything on the
    calling thread. BLAS stays on one thread per call either way (from minires's first convolution on).
    The setting is the process's, for every thread (a DataLoader worker that calls it changes it for the
    main thread's convolutions too: unlike torch's worker processes, minires's workers are threads)."""
    global _num_threads, _pool
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"set_num_threads: expected a positive int, got {n!r}")
    with _lock:
        _num_threads = n
        if _pool is not None:
            _pool.shutdown(wait=False)  # work already handed to it finishes; new work goes to a new pool
            _pool = None


def _take_the_cpu() -> None:
    """Once, at minires's first CPU kernel: BLAS on one thread per call (its idle threads would otherwise
    spin against ours), and glibc's malloc told to keep freed blocks (allocator.py)."""
    global _cpu_taken
    if _cpu_taken:
        return
    _cpu_taken = True
    keep_freed_memory()
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # a dependency; without it BLAS keeps its threads, and the pool still works
        return
    threadpool_limits(limits=1, user_api="blas")


def _mark_worker() -> None:
    _worker.active = True


def parallel_map(fn: Callable[[Any], T], items: Sequence[Any]) -> list[T]:
    """``[fn(item) for item in items]``, the items shared out among the calling thread and the pool's
    threads as each becomes free (one hand-off to each worker per call: waking a thread costs about as
    much as a small op, so the caller starts at once and a late worker takes fewer items); results in
    order. Serial when there is one thread, one item, or when called from a worker (no nested pools)."""
    _take_the_cpu()
    n = min(get_num_threads(), len(items))
    if n <= 1 or getattr(_worker, "active", False):
        return [fn(item) for item in items]
    fp_errors = np.geterr()  # NumPy's floating-point error handling is per thread: the caller's holds
    results: list[Any] = [None] * len(items)
    failures: list[BaseException] = []
    next_index = iter(range(len(items)))
    counts = [0, 0]  # items taken, items finished
    progress = threading.Condition()

    def drain() -> None:  # run items until none is left (or one has failed)
        with np.errstate(**fp_errors):
            while True:
                with progress:
                    i = None if failures else next(next_index, None)
                    if i is None:
                        return
                    counts[0] += 1
                try:
                    results[i] = fn(items[i])
                except BaseException as exc:  # noqa: BLE001 - re-raised by the caller below
                    failures.append(exc)
                finally:
                    with progress:
                        counts[1] += 1
                        progress.notify_all()

    global _pool
    with _lock:  # set_num_threads from another thread must not shut the pool between get and submit
        if _pool is None:
            workers = max(1, get_num_threads() - 1)  # the caller is the other thread
            _pool = ThreadPoolExecutor(workers, thread_name_prefix="minires", initializer=_mark_worker)
        for _ in range(n - 1):
            _pool.submit(drain)
    _worker.active = True  # the caller is one of the threads now: what it runs does not nest the pool
    try:
        drain()
    finally:
        _worker.active = False
    with progress:  # every item is taken (or one failed): wait for those still running, not for a worker
        progress.wait_for(lambda: counts[1] == counts[0])  # that has not even woken up (it finds none)
    if failures:
        raise failures[0]
    return results


def balanced_chunks(n_items: int, per_chunk: int) -> list[slice]:
    """Slices of a batch of ``n_items``, at most ``per_chunk`` items each, as equal as they can be and as
    many as a multiple of the threads (on the calling thread alone, or inside a worker, as few as fit): so
    that every thread gets the same share of the work. Three chunks of 25, 25 and 14 images on two
    threads keep one thread busy for 39 images and the other for 25; four of 16 end together (measured,
    AVX-512: d2l_resnet18 training 5-8% faster a step, cifar_resnet20 unchanged)."""
    count = -(-n_items // max(1, per_chunk))  # the fewest chunks that fit
    n = get_num_threads()
    if n > 1 and not getattr(_worker, "active", False):
        count = -(-count // n) * n  # a multiple of the threads
    count = min(count, n_items)
    if count == 0:  # an empty batch
        return []
    bounds = [n_items * i // count for i in range(count + 1)]
    return [slice(bounds[i], bounds[i + 1]) for i in range(count)]


def batch_chunks(n_items: int, item_bytes: int) -> list[slice]:
    """Slices of the batch axis (``n_items`` items of ``item_bytes`` each) of about BATCH_CHUNK_BYTES, at
    least one item each: the unit of the CPU's elementwise work. They depend on the sizes only (not on
    the thread count), so a sum taken chunk by chunk is the same on any number of threads."""
    per_chunk = max(1, BATCH_CHUNK_BYTES // max(1, item_bytes))
    return [slice(i, min(i + per_chunk, n_items)) for i in range(0, n_items, per_chunk)]


def each_chunk(xp: Any, fn: Callable[[Any], T], x: Any) -> list[T]:
    """``fn(chunk)`` for the batch chunks of ``x`` (slices of its first axis, ``batch_chunks``), results in
    chunk order. On the CPU the chunks are shared out among the threads (``parallel_map``); on the GPU
    (``xp`` not NumPy), and for an empty or 0-d ``x``, one call over the whole array, ``fn(...)``
    (``x[...]`` is all of x)."""
    if xp is not np or x.ndim == 0 or x.shape[0] == 0:
        return [fn(...)]
    return parallel_map(fn, batch_chunks(x.shape[0], x.nbytes // max(1, x.shape[0])))


def ordered_sum(fn: Callable[[Any], Any], items: Sequence[Any]) -> Any | None:
    """``sum_in_order([fn(item) for item in items])``, the same bits (None for no items), on the threads
    as ``parallel_map`` shares them out, but each part is added as soon as the parts before it are, so
    that only the parts that finished early wait (about one per thread) instead of one per item: a
    convolution's per-chunk shares of dW are as large as its weights, and a layer has a dozen chunks.
    ``fn`` must return a new array each call (it is added to in place)."""
    lock = threading.Lock()
    pending: dict[int, Any] = {}
    state: dict[str, Any] = {"next": 0, "total": None}

    def run(i: int) -> None:
        part = fn(items[i])
        with lock:
            pending[i] = part
            while state["next"] in pending:
                part = pending.pop(state["next"])
                if state["total"] is None:
                    state["total"] = part
                else:
                    state["total"] += part  # the same bits as total = total + part
                state["next"] += 1

    parallel_map(run, range(len(items)))
    return state["total"]


def sum_in_order(parts: list[Any]) -> Any:
    """The sum of ``parts`` (per-chunk partial sums) added left to right: the same bits on any thread
    count, since the chunks are."""
    total = parts[0]
    for part in parts[1:]:
        total = total + part
    return total
