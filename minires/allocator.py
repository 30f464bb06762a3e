"""glibc's malloc, told to keep the large blocks that minires frees, so that the next step reuses them.

A training step allocates and frees the same few dozen activation-sized arrays, step after step. By
default glibc serves a block above its mmap threshold (128 KiB at first, rising with the blocks freed, at
most 32 MiB) with fresh pages from the kernel and gives them back on free (munmap, or by trimming the top
of the heap). The next step's array of the same size then starts as untouched pages, each one faulted in
and zero-filled by the kernel on first write: measured about 20,000 page faults (80 MB) per cifar_resnet20
training step, and about 12% of the step's time on 2 cores (AVX2), more with two threads, whose faults
contend for the process's memory map.

``keep_freed_memory()`` (called once, at minires's first CPU kernel: threads.py) raises the mmap threshold
to 1 GiB (32 MiB where glibc refuses more) and the trim threshold to 2 GiB (the largest mallopt takes):
freed blocks stay in the heap and are reused as they are. The price is that the process keeps its peak
memory once it has reached it (which a training loop reaches again every step anyway). It is
process-wide, as glibc's settings are, and does nothing where malloc is not glibc's (macOS, Windows,
musl). ``MINIRES_MALLOC=system`` in the environment, read at that first kernel, leaves malloc as it is.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import threading

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's malloc.h
MMAP_THRESHOLD = 1 << 30  # blocks up to 1 GiB come from the heap and go back to it
FALLBACK_MMAP_THRESHOLD = 32 << 20  # glibc's documented largest, where 1 GiB is refused
TRIM_THRESHOLD = 2**31 - 1  # the heap's top goes back to the kernel only past 2 GiB free (an int's most)

_lock = threading.Lock()
_done = False
kept: bool | None = None  # after the first call: whether glibc took the settings


def keep_freed_memory() -> bool:
    """Set glibc's thresholds once per process (see the module docstring); True if malloc took them."""
    global _done, kept
    with _lock:
        if _done:
            return bool(kept)
        _done = True
        kept = False
        if os.environ.get("MINIRES_MALLOC", "").lower() == "system":
            return False
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            mallopt = libc.mallopt
        except (OSError, AttributeError):  # no C library by that name, or not glibc's malloc
            return False
        mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
        # Some glibc versions refuse an mmap threshold above 32 MiB (HEAP_MAX_SIZE / 2): then 32 MiB, which
        # still keeps every array below it in the heap.
        mmap_set = any(mallopt(M_MMAP_THRESHOLD, size) for size in (MMAP_THRESHOLD, FALLBACK_MMAP_THRESHOLD))
        trim_set = bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
        kept = mmap_set and trim_set
        return kept
