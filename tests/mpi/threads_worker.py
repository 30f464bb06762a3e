"""Each rank prints its usable cores and minires's thread count after init_process_group
(tests/test_threads.py)."""

import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))

import minires as mr  # noqa: E402
from minires import threads  # noqa: E402

mr.distributed.init_process_group("mpi")
local = os.environ.get("OMPI_COMM_WORLD_LOCAL_SIZE") or os.environ.get("MPI_LOCALNRANKS") or "1"
print(json.dumps({"cores": threads._usable_cores(), "threads": mr.get_num_threads(), "local": int(local)}))
mr.distributed.destroy_process_group()
