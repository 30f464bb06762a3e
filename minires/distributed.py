"""``minires.distributed``: several processes training one model, as ``torch.distributed``.

Each process (a *rank*, 0 .. world_size - 1) holds a whole copy of the model and sees its own share of
the data; the ranks agree through *collectives*, calls that every rank makes in the same order:

    all_reduce(t)      t <- t_0 + t_1 + ... + t_{R-1} on every rank (or the product, min, max, mean)
    broadcast(t, src)  t <- t_src on every rank
    barrier()          no rank leaves before every rank has arrived

Two backends carry them. ``"mpi"`` (the ``distributed`` extra: mpi4py with Open MPI or MPICH) runs on
CPUs and across machines; ``"nccl"`` (CuPy's NCCL bindings) all-reduces CuPy arrays between GPUs, one rank
per GPU, and uses MPI only to start (to spread NCCL's unique id). Launch either with

    mpiexec -n 2 python -m mpi4py train.py

(``-m mpi4py`` makes a rank that raises abort the whole job instead of leaving the others waiting). One
process started without ``mpiexec`` is a world of size 1, where every collective returns its input.

The collectives take a ``Tensor`` (its ``.data`` is updated in place) or a NumPy/CuPy array. The module
sits in the lowest layer (it knows arrays, not Tensors), so that the ops and ``nn`` can call it.
"""

from __future__ import annotations

import enum
import os
import sys
from typing import Any

import numpy as np

from . import backend as array_backend
from . import threads


class ReduceOp(enum.Enum):
    """How ``all_reduce`` combines the ranks' values, elementwise (torch.distributed.ReduceOp)."""

    SUM = "sum"
    AVG = "avg"  # the sum divided by the world size (floating-point arrays only)
    PRODUCT = "product"
    MIN = "min"
    MAX = "max"


class _Group:
    """The default process group: the backend's communicator, this process's rank, the world size."""

    def __init__(self, backend_name: str, comm: Any) -> None:
        self.backend, self.comm = backend_name, comm
        self.rank, self.size = comm.rank, comm.size
        self.undo: list[Any] = []  # what init changed in the process, undone by destroy_process_group


_group: _Group | None = None


def _not_initialized() -> ValueError:
    return ValueError(
        "Default process group has not been initialized, please make sure to call init_process_group "
        "(minires.distributed.init_process_group('mpi'))"
    )


def _the_group() -> _Group:
    if _group is None:
        raise _not_initialized()
    return _group


# ----- the MPI backend -----------------------------------------------------------------------------------
def _import_mpi() -> Any:
    try:
        from mpi4py import MPI
    except ImportError as exc:
        raise RuntimeError(
            f"minires.distributed: the 'mpi' backend needs mpi4py and an MPI library ({exc}); install them "
            "with pip install 'minires[distributed]' (mpi4py and Open MPI)"
        ) from exc
    return MPI


class _MPIComm:
    """Collectives over MPI's buffer interface (``Allreduce``, ``Bcast``), never the pickling ones.

    MPI reads host memory: a CuPy array is copied to the host and back (an MPI built CUDA-aware could
    read it in place; the NCCL backend is the fast path between GPUs).
    """

    def __init__(self) -> None:
        self.MPI = MPI = _import_mpi()
        self.world = MPI.COMM_WORLD.Dup()  # a communicator of our own: no clash with the user's messages
        self.rank, self.size = self.world.Get_rank(), self.world.Get_size()
        self._ops = {
            ReduceOp.SUM: MPI.SUM,
            ReduceOp.AVG: MPI.SUM,
            ReduceOp.PRODUCT: MPI.PROD,
            ReduceOp.MIN: MPI.MIN,
            ReduceOp.MAX: MPI.MAX,
        }

    def all_reduce(self, array: Any, op: ReduceOp) -> None:
        with _host_buffer(array) as buf:
            self.world.Allreduce(self.MPI.IN_PLACE, buf, op=self._ops[op])

    def broadcast(self, array: Any, src: int) -> None:
        with _host_buffer(array) as buf:
            self.world.Bcast(buf, root=src)

    def barrier(self) -> None:
        self.world.Barrier()

    def abort(self, code: int) -> None:
        self.MPI.COMM_WORLD.Abort(code)

    def free(self) -> None:
        self.world.Free()


class _host_buffer:  # noqa: N801 - used as a context manager, like open()
    """A C-contiguous host array with the data of ``array``, written back into ``array`` on exit when it
    is a copy (a CuPy array, or a non-contiguous view)."""

    def __init__(self, array: Any) -> None:
        self.array = array
        xp = array_backend.get_array_module(array)
        if xp is np:
            self.buf = np.ascontiguousarray(array)
        else:
            self.buf = xp.asnumpy(array)

    def __enter__(self) -> np.ndarray:
        return self.buf

    def __exit__(self, *exc: Any) -> None:
        if self.buf is not self.array:
            xp = array_backend.get_array_module(self.array)
            self.array[...] = self.buf if xp is np else xp.asarray(self.buf)


# ----- the NCCL backend ----------------------------------------------------------------------------------
class _NCCLComm:
    """Collectives between GPUs with NCCL (``cupy.cuda.nccl.NcclCommunicator``), one rank per GPU.

    Startup: MPI gives the rank and world size; each rank takes the GPU of its rank among the ranks of its
    machine (``MPI.COMM_TYPE_SHARED``); rank 0 draws NCCL's unique id and broadcasts it over MPI; every rank
    then joins the NCCL communicator with it. The collectives are queued on CuPy's current stream, in
    place on contiguous CuPy arrays (other arrays go through a device copy).
    """

    def __init__(self) -> None:
        cupy = array_backend.cupy
        if cupy is None:
            raise RuntimeError(
                "minires.distributed: the 'nccl' backend needs CuPy and an NVIDIA GPU: "
                + array_backend.cuda_unavailable_reason()
            )
        try:
            from cupy.cuda import nccl
        except ImportError as exc:
            raise RuntimeError(
                f"minires.distributed: the 'nccl' backend needs CuPy built with NCCL ({exc}); install NCCL "
                "(pip install nvidia-nccl-cu13) or use init_process_group('mpi')"
            ) from exc
        self.cupy, self.nccl, self.mpi = cupy, nccl, _MPIComm()
        self.rank, self.size = self.mpi.rank, self.mpi.size
        try:
            local = self.mpi.world.Split_type(self.mpi.MPI.COMM_TYPE_SHARED)
            local_rank = local.Get_rank()
            local.Free()
            cupy.cuda.Device(local_rank % cupy.cuda.runtime.getDeviceCount()).use()
            uid = np.zeros(128, dtype=np.int64)  # NCCL_UNIQUE_ID_BYTES signed chars
            if self.rank == 0:
                uid[:] = nccl.get_unique_id()
            self.mpi.broadcast(uid, 0)
            self.comm = nccl.NcclCommunicator(self.size, tuple(int(v) for v in uid), self.rank)
        except BaseException:
            self.mpi.free()  # the MPI communicator it duplicated does not outlive a failed start
            raise
        self._ops = {
            ReduceOp.SUM: nccl.NCCL_SUM,
            ReduceOp.AVG: nccl.NCCL_SUM,
            ReduceOp.PRODUCT: nccl.NCCL_PROD,
            ReduceOp.MIN: nccl.NCCL_MIN,
            ReduceOp.MAX: nccl.NCCL_MAX,
        }
        self._dtypes = {
            np.dtype(np.float16): nccl.NCCL_FLOAT16,
            np.dtype(np.float32): nccl.NCCL_FLOAT32,
            np.dtype(np.float64): nccl.NCCL_FLOAT64,
            np.dtype(np.int32): nccl.NCCL_INT32,
            np.dtype(np.int64): nccl.NCCL_INT64,
            np.dtype(np.uint8): nccl.NCCL_UINT8,
        }

    def _on_device(self, array: Any, what: str, collective: Any) -> None:
        """Run ``collective(buf)`` on a contiguous device buffer with the data of ``array``: the array
        itself when it is a contiguous CuPy array, else a copy (a host array, as DDP's shape check sends,
        goes to the GPU and back), written back into ``array`` afterwards."""
        cupy = self.cupy
        if array.dtype not in self._dtypes:
            raise TypeError(f"{what}: the 'nccl' backend cannot reduce {array.dtype}")
        on_device = isinstance(array, cupy.ndarray)
        buf = cupy.ascontiguousarray(array) if on_device else cupy.asarray(np.ascontiguousarray(array))
        collective(buf)
        if buf is not array:
            array[...] = buf if on_device else cupy.asnumpy(buf)  # asnumpy waits for the stream

    def all_reduce(self, array: Any, op: ReduceOp) -> None:
        def run(a: Any) -> None:
            stream = self.cupy.cuda.get_current_stream().ptr
            self.comm.allReduce(a.data.ptr, a.data.ptr, a.size, self._dtypes[a.dtype], self._ops[op], stream)

        self._on_device(array, "all_reduce", run)

    def broadcast(self, array: Any, src: int) -> None:
        def run(a: Any) -> None:
            stream = self.cupy.cuda.get_current_stream().ptr
            self.comm.bcast(a.data.ptr, a.size, self._dtypes[a.dtype], src, stream)

        self._on_device(array, "broadcast", run)

    def barrier(self) -> None:
        self.cupy.cuda.get_current_stream().synchronize()
        self.mpi.barrier()

    def abort(self, code: int) -> None:
        self.mpi.abort(code)

    def free(self) -> None:
        self.comm.destroy()
        self.mpi.free()


_BACKENDS = {"mpi": _MPIComm, "nccl": _NCCLComm}


# ----- the public functions ------------------------------------------------------------------------------
def is_available() -> bool:
    """True: the package is there (whether a backend can start is known at ``init_process_group``)."""
    return True


def is_initialized() -> bool:
    """Whether ``init_process_group`` has run (and ``destroy_process_group`` has not)."""
    return _group is not None


def is_mpi_available() -> bool:
    """Whether mpi4py (and so the 'mpi' backend) can be imported."""
    try:
        _import_mpi()
    except RuntimeError:
        return False
    return True


def is_nccl_available() -> bool:
    """Whether CuPy sees a GPU and was built with NCCL."""
    if array_backend.cupy is None:
        return False
    try:
        from cupy.cuda import nccl  # noqa: F401
    except ImportError:
        return False
    return True


def init_process_group(
    backend: str | None = None,
    init_method: str | None = None,
    world_size: int = -1,
    rank: int = -1,
    **kwargs: Any,
) -> None:
    """Join the default process group. ``backend`` is ``"mpi"`` (the default) or ``"nccl"``.

    The rank and world size come from the MPI launcher (``mpiexec``); ``world_size`` and ``rank``, when
    given, must agree with them. ``init_method`` and torch's other keywords (``timeout``, ...) are
    accepted and unused: MPI does the rendezvous. With more than one rank, an exception that reaches the
    top level of a rank aborts the whole job (``MPI_Abort``) after printing its traceback, so the other
    ranks do not wait forever in their next collective.
    """
    global _group
    if _group is not None:
        raise ValueError("trying to initialize the default process group twice!")
    name = "mpi" if backend is None else str(backend).lower()
    if name not in _BACKENDS:
        raise ValueError(
            f"init_process_group: unknown backend {backend!r}; minires has 'mpi' (CPUs) and 'nccl' (GPUs)"
        )
    comm = _BACKENDS[name]()
    for what, given, actual in (("world_size", world_size, comm.size), ("rank", rank, comm.rank)):
        if given is not None and given != -1 and given != actual:
            comm.free()
            raise ValueError(
                f"init_process_group: {what}={given} was given, but the MPI launcher started this process "
                f"with {what} {actual}"
            )
    _group = _Group(name, comm)
    if comm.size > 1:
        _group.undo.append(_abort_on_uncaught_exception(comm))
        _group.undo.append(_share_the_cores())


def _share_the_cores() -> Any:
    """Each rank's minires threads (threads.py): its share of the cores it may use, split among the ranks
    of its machine (as the launcher says: Open MPI's OMPI_COMM_WORLD_LOCAL_SIZE, MPICH's MPI_LOCALNRANKS),
    so that two ranks on two cores do not start two threads each. MINIRES_NUM_THREADS, when set, wins."""
    before = threads.get_num_threads()
    if not os.environ.get("MINIRES_NUM_THREADS"):
        local = os.environ.get("OMPI_COMM_WORLD_LOCAL_SIZE") or os.environ.get("MPI_LOCALNRANKS") or "1"
        threads.set_num_threads(max(1, threads._usable_cores() // max(1, int(local))))
    return lambda: threads.set_num_threads(before)


def _abort_on_uncaught_exception(comm: Any) -> Any:
    """Make an uncaught exception print its traceback, then abort every rank (what ``-m mpi4py`` does);
    returns what puts the previous hook back."""
    previous = sys.excepthook

    def hook(exc_type: Any, exc: BaseException, tb: Any) -> None:
        previous(exc_type, exc, tb)
        sys.stderr.flush()
        comm.abort(1)

    sys.excepthook = hook

    def restore() -> None:
        if sys.excepthook is hook:
            sys.excepthook = previous

    return restore


def destroy_process_group(group: Any = None) -> None:
    """Leave the default process group (MPI itself is finalized when the process exits), and undo what
    init_process_group changed in the process: the abort-on-error hook, the thread count."""
    global _group
    if _group is None:
        raise _not_initialized()
    g, _group = _group, None
    for undo in reversed(g.undo):
        undo()
    g.comm.free()


def get_backend(group: Any = None) -> str:
    return _the_group().backend


def get_rank(group: Any = None) -> int:
    """This process's rank, 0 .. world_size - 1."""
    return _the_group().rank


def get_world_size(group: Any = None) -> int:
    """The number of processes in the group."""
    return _the_group().size


def _array_of(tensor: Any, what: str) -> Any:
    is_array = isinstance(tensor, np.ndarray) or hasattr(tensor, "__cuda_array_interface__")
    array = tensor if is_array else getattr(tensor, "data", None)  # a Tensor's array is its .data
    if not isinstance(array, np.ndarray) and not hasattr(array, "__cuda_array_interface__"):
        raise TypeError(f"{what}: expected a Tensor or an array, got {type(tensor).__name__}")
    return array


def all_reduce(tensor: Any, op: ReduceOp = ReduceOp.SUM, group: Any = None, async_op: bool = False) -> None:
    """Reduce ``tensor`` over all ranks, in place: afterwards every rank holds the same result."""
    g = _the_group()
    array = _array_of(tensor, "all_reduce")
    if not isinstance(op, ReduceOp):
        raise TypeError(f"all_reduce: op must be a ReduceOp (ReduceOp.SUM, ...), got {op!r}")
    if op is ReduceOp.AVG and array.dtype.kind != "f":
        raise TypeError(f"all_reduce: ReduceOp.AVG needs a floating-point tensor, got {array.dtype}")
    if async_op:
        raise NotImplementedError("all_reduce: async_op=True is not supported; the call completes in place")
    if g.size == 1:
        return None
    g.comm.all_reduce(array, op)
    if op is ReduceOp.AVG:
        array /= g.size
    return None


def broadcast(tensor: Any, src: int, group: Any = None, async_op: bool = False) -> None:
    """Copy rank ``src``'s ``tensor`` into ``tensor`` on every rank, in place."""
    g = _the_group()
    array = _array_of(tensor, "broadcast")
    if not 0 <= src < g.size:
        raise ValueError(f"broadcast: src={src} is not a rank of a world of size {g.size}")
    if async_op:
        raise NotImplementedError("broadcast: async_op=True is not supported; the call completes in place")
    if g.size > 1:
        g.comm.broadcast(array, src)


def barrier(group: Any = None) -> None:
    """Wait until every rank has called ``barrier``."""
    g = _the_group()
    if g.size > 1:
        g.comm.barrier()
