"""Each rank prints its usable cores and minires's thread count after init_process_group, and whether
destroy_process_group put the thread count and sys.excepthook back (tests/test_threads.py)."""

import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))

import minires as mr  # noqa: E402
from minires import threads  # noqa: E402

before, hook = mr.get_num_threads(), sys.excepthook
mr.distributed.init_process_group("mpi")
local = os.environ.get("OMPI_COMM_WORLD_LOCAL_SIZE") or os.environ.get("MPI_LOCALNRANKS") or "1"
during = {"cores": threads._usable_cores(), "threads": mr.get_num_threads(), "local": int(local)}
during["abort_hook"] = sys.excepthook is not hook
mr.distributed.destroy_process_group()
during["restored"] = mr.get_num_threads() == before and sys.excepthook is hook
print(json.dumps(during))
