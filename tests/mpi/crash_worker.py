"""A rank that raises while the others wait in a collective: the job must end, with a non-zero exit.

    mpiexec -n K [python -m mpi4py] tests/mpi/crash_worker.py

Rank 1 raises; every other rank enters an all-reduce that rank 1 never joins. Under ``-m mpi4py`` the
exception aborts the job; without it, the hook that ``init_process_group`` installs does.
"""

from __future__ import annotations

import numpy as np

import minires.distributed as dist

dist.init_process_group("mpi")
if dist.get_rank() == 1:
    raise RuntimeError("rank 1 fails on purpose")
dist.all_reduce(np.ones(3))
print("unreachable: the all-reduce completed without rank 1", flush=True)
