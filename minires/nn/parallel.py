"""``DistributedDataParallel``: one model replicated on every rank, its gradients averaged after backward,
as ``torch.nn.parallel.DistributedDataParallel``.

    dist.init_process_group("mpi")
    model = DistributedDataParallel(model)           # rank 0's parameters and buffers, on every rank
    loss = F.cross_entropy(model(x_local), y_local)  # each rank its own share of the global batch
    loss.backward()                                  # p.grad = the mean over the ranks of their p.grad
    opt.step()                                       # the same step everywhere: the replicas stay equal

Why the mean is right: with R ranks each holding B samples and the loss a mean over the batch,
(1/R) sum_r dL_r/dp = (1/(R B)) sum over all R B samples, the gradient one process would compute on the
whole global batch. The averaged gradients are the same on every rank, so the same optimizer step keeps
the replicas identical.

How (the bucketed all-reduce):
- Construction: the ranks compare their parameter shapes, then rank 0 broadcasts its parameters and
  buffers. The parameters are grouped, in reverse order of ``module.parameters()`` (roughly the order
  backward reaches them), into buckets of about ``bucket_cap_mb`` MiB, one flat array per bucket.
- Backward: a hook on each parameter copies its gradient into its slot of the bucket. When every slot of a
  bucket is filled, the bucket is ready; ready buckets are all-reduced strictly in bucket order (so that
  every rank issues the same collectives in the same order), divided by R, and copied back to the ``.grad``
  of their parameters. One all-reduce per bucket instead of one per parameter: fewer, larger messages.
- ``no_sync()``: backward passes whose forward ran inside it only accumulate ``.grad`` locally; the first
  synchronized backward after it averages the accumulated sums.
- Forward: with ``broadcast_buffers=True`` (the default) rank 0's buffers (BatchNorm's running
  statistics) are broadcast before the forward, after a forward that synchronized, as torch does.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np

from .. import distributed
from ..backend import get_array_module
from ..function import Function
from ..grad_mode import is_grad_enabled
from ..tensor import Tensor
from .module import Module


def _broadcast_coalesced(arrays: list[Any], src: int) -> None:
    """Broadcast each array from rank ``src`` in place, as one flat message per dtype and device."""
    groups: dict[tuple[Any, Any], list[Any]] = {}
    for a in arrays:
        groups.setdefault((a.dtype, get_array_module(a)), []).append(a)
    for (_, xp), group in groups.items():
        flat = xp.concatenate([a.reshape(-1) for a in group])  # (total,)
        distributed.broadcast(flat, src)
        offset = 0
        for a in group:
            a[...] = flat[offset : offset + a.size].reshape(a.shape)
            offset += a.size


def _check_same_shapes(named: list[tuple[str, Tensor]], what: str) -> None:
    """Raise, on every rank alike, when some rank's tensors differ in number or shape from rank 0's.

    Rank 0 broadcasts its shapes as one int64 signature, [count, ndim_1, *shape_1, ndim_2, *shape_2, ...];
    each rank finds the first tensor whose shape differs from rank 0's, and an all-reduce (MIN) of that
    index makes every rank raise about the same tensor (no rank is left waiting in a collective).
    """
    rank = distributed.get_rank()
    mine = [tuple(t.shape) for _, t in named]
    signature = np.asarray([len(mine)] + [v for s in mine for v in (len(s), *s)], dtype=np.int64)
    length = np.asarray([signature.size], dtype=np.int64)
    distributed.broadcast(length, 0)
    received = signature.copy() if rank == 0 else np.zeros(int(length[0]), dtype=np.int64)
    distributed.broadcast(received, 0)
    theirs, pos = [], 1  # rank 0's shapes, read back from its signature
    for _ in range(int(received[0])):
        ndim = int(received[pos])
        theirs.append(tuple(int(v) for v in received[pos + 1 : pos + 1 + ndim]))
        pos += 1 + ndim
    first = next((i for i, (a, b) in enumerate(zip(mine, theirs, strict=False)) if a != b), None)
    if first is None and len(mine) != len(theirs):
        first = min(len(mine), len(theirs))
    nothing = 2**62
    bad = np.asarray([nothing if first is None else first], dtype=np.int64)
    distributed.all_reduce(bad, distributed.ReduceOp.MIN)
    index = int(bad[0])
    if index == nothing:
        return
    if index >= len(mine) or index >= len(theirs):
        raise RuntimeError(
            f"DistributedDataParallel: the module has {len(mine)} {what} on rank {rank} and {len(theirs)} on "
            "rank 0, or some rank differs in their number: every rank must build the same model"
        )
    here = f"{mine[index]} on rank {rank}" if mine[index] != theirs[index] else "another on some rank"
    raise RuntimeError(
        f"DistributedDataParallel: {what[:-1]} {named[index][0]!r} does not have the same shape on every "
        f"rank: {theirs[index]} on rank 0, {here} (every rank must build the same model)"
    )


class _Bucket:
    """Parameters whose gradients travel in one all-reduce: a flat array and each parameter's slot."""

    def __init__(self, params: list[Any]) -> None:
        self.params = params
        self.offsets = []
        total = 0
        for p in params:
            self.offsets.append(total)
            total += p.numel()
        xp = get_array_module(params[0].data)
        self.flat = xp.zeros(total, dtype=params[0].dtype)  # (sum of the parameters' sizes,)
        self.ready = [False] * len(params)
        self.reduced = False

    def slot(self, i: int) -> Any:
        o = self.offsets[i]
        return self.flat[o : o + self.params[i].numel()]

    def reset(self) -> None:
        self.ready = [False] * len(self.params)
        self.reduced = False


class DistributedDataParallel(Module):
    """``DistributedDataParallel(module, device_ids=None, output_device=None, dim=0, broadcast_buffers=True,
    init_sync=True, process_group=None, bucket_cap_mb=None, find_unused_parameters=False)``.

    Needs ``minires.distributed.init_process_group`` first. ``.module`` is the wrapped model; the
    wrapper's ``state_dict`` keys carry the ``module.`` prefix, as torch's (save ``model.module.state_dict()``
    for a checkpoint that loads into the bare model). ``bucket_cap_mb`` (default 25) is the size of a
    gradient bucket. Every parameter that requires grad must get a gradient in each synchronized backward,
    unless ``find_unused_parameters=True``, which walks the graph after each forward and lets the parameters
    it does not reach contribute zeros (their ``.grad`` is then set to the average of the ranks' gradients
    even where it is zero everywhere; torch leaves a parameter unused on every rank at None).
    ``device_ids`` and ``output_device`` are accepted for torch's scripts: the module must already be on
    this rank's device.
    """

    def __init__(
        self,
        module: Module,
        device_ids: Any = None,
        output_device: Any = None,
        dim: int = 0,
        broadcast_buffers: bool = True,
        init_sync: bool = True,
        process_group: Any = None,
        bucket_cap_mb: float | None = None,
        find_unused_parameters: bool = False,
    ) -> None:
        super().__init__()
        if not isinstance(module, Module):
            raise TypeError(f"DistributedDataParallel: expected a Module, got {type(module).__name__}")
        if dim != 0:
            raise ValueError(f"DistributedDataParallel: only dim=0 is supported, got {dim}")
        self.world_size = distributed.get_world_size()  # raises when init_process_group has not run
        self.module = module
        self.broadcast_buffers = bool(broadcast_buffers)
        self.find_unused_parameters = bool(find_unused_parameters)
        self.bucket_cap_mb = 25.0 if bucket_cap_mb is None else float(bucket_cap_mb)
        if self.bucket_cap_mb <= 0:
            raise ValueError(f"DistributedDataParallel: bucket_cap_mb must be positive, got {bucket_cap_mb}")
        named = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
        if not named:
            raise RuntimeError(
                "DistributedDataParallel is not needed when a module doesn't have any parameter that "
                "requires a gradient."
            )
        self.require_backward_grad_sync = True  # False inside no_sync()
        self.require_forward_param_sync = True  # the last forward synchronized: broadcast buffers next
        self._expect_reduction = False  # the last forward asked the next backward to reduce
        _check_same_shapes(list(module.named_parameters()), "parameters")
        _check_same_shapes(list(module.named_buffers()), "buffers")
        if init_sync and self.world_size > 1:
            tensors = list(module.parameters()) + list(module.buffers())
            _broadcast_coalesced([t.data for t in tensors], 0)
        self._names = {id(p): n for n, p in named}
        self._buckets = self._make_buckets([p for _, p in reversed(named)])
        self._next_bucket = 0  # the next bucket to all-reduce, in order
        self._hook_handles = []
        for b, bucket in enumerate(self._buckets):
            for i, p in enumerate(bucket.params):
                self._hook_handles.append(p.register_post_accumulate_grad_hook(self._make_hook(b, i)))

    # ----- buckets -----------------------------------------------------------------------------------
    def _make_buckets(self, params: list[Any]) -> list[_Bucket]:
        """Consecutive parameters of one dtype and device, closed once they reach ``bucket_cap_mb``."""
        cap = self.bucket_cap_mb * 2**20
        buckets, current, size, key = [], [], 0, None
        for p in params:
            k = (p.dtype, p.device)
            if current and (k != key or size >= cap):
                buckets.append(_Bucket(current))
                current, size = [], 0
            current.append(p)
            size += p.numel() * p.dtype.itemsize
            key = k
        if current:
            buckets.append(_Bucket(current))
        return buckets

    @property
    def bucket_sizes(self) -> list[int]:
        """The number of parameters in each bucket, in all-reduce order."""
        return [len(b.params) for b in self._buckets]

    def _make_hook(self, b: int, i: int) -> Any:
        def hook(p: Tensor) -> None:
            self._on_grad(b, i)

        return hook

    def _on_grad(self, b: int, i: int) -> None:
        """Parameter ``i`` of bucket ``b`` has its ``.grad`` of this backward (a post-accumulate hook, so
        ``mr.autograd.grad`` never lands here, as in torch): copy it into its slot and all-reduce the buckets
        that are now ready, in order; a reduced bucket's average is written back into each ``.grad``."""
        if not self._expect_reduction:
            return
        bucket = self._buckets[b]
        p = bucket.params[i]
        if bucket.ready[i]:
            raise RuntimeError(
                f"DistributedDataParallel: parameter {self._names[id(p)]!r} received its gradient twice "
                "in one backward (a second backward through the same forward?): call the model again "
                "before each backward, or run the extra backward passes under no_sync()"
            )
        bucket.slot(i)[...] = p.grad.data.reshape(-1)
        bucket.ready[i] = True
        self._reduce_ready_buckets()

    def _reduce_ready_buckets(self) -> None:
        while self._next_bucket < len(self._buckets) and all(self._buckets[self._next_bucket].ready):
            b = self._next_bucket
            bucket = self._buckets[b]
            distributed.all_reduce(bucket.flat)
            bucket.flat /= self.world_size
            bucket.reduced = True
            for i, p in enumerate(bucket.params):
                avg = bucket.slot(i).reshape(p.shape)
                if p.grad is None:
                    p.grad = Tensor._wrap(avg.copy())
                else:
                    p.grad.data[...] = avg
            self._next_bucket += 1
        if self._next_bucket == len(self._buckets):
            self._expect_reduction = False

    def _prepare_for_forward(self) -> None:
        """Check that the last synchronized backward reduced every bucket, then clear the buckets."""
        if self._expect_reduction and any(any(b.ready) for b in self._buckets):
            ready = {id(p) for b in self._buckets for p, r in zip(b.params, b.ready, strict=True) if r}
            missing = [name for key, name in self._names.items() if key not in ready]  # in module order
            raise RuntimeError(
                "DistributedDataParallel: Expected to have finished reduction in the prior iteration before "
                "starting a new one: these parameters got no gradient in the last backward: "
                f"{missing}. Make sure every parameter takes part in the loss, or pass "
                "find_unused_parameters=True"
            )
        for bucket in self._buckets:
            bucket.reset()
        self._next_bucket = 0

    def _mark_unused(self, output: Any) -> None:
        """``find_unused_parameters``: the parameters the output's graph does not reach are ready now,
        with their accumulated ``.grad`` (or zeros) as their contribution."""
        reached: set[int] = set()
        stack = [t.grad_fn for t in _tensors_in(output) if t.grad_fn is not None]
        reached |= {id(t) for t in _tensors_in(output) if t.grad_fn is None}
        seen: set[int] = set()
        while stack:
            node = stack.pop()
            if id(node) in seen:
                continue
            seen.add(id(node))
            for nxt in node.next_nodes:
                if isinstance(nxt, Function):
                    stack.append(nxt)
                elif nxt is not None:
                    reached.add(id(nxt))
        for bucket in self._buckets:
            for i, p in enumerate(bucket.params):
                if id(p) not in reached:
                    bucket.slot(i)[...] = 0 if p.grad is None else p.grad.data.reshape(-1)
                    bucket.ready[i] = True
        self._reduce_ready_buckets()

    # ----- forward and no_sync -----------------------------------------------------------------------
    def forward(self, *inputs: Any, **kwargs: Any) -> Any:
        sync = is_grad_enabled() and self.require_backward_grad_sync
        if sync:
            self._prepare_for_forward()
        if self.require_forward_param_sync and self.broadcast_buffers and self.world_size > 1:
            buffers = [t.data for t in self.module.buffers()]
            if buffers:
                _broadcast_coalesced(buffers, 0)
        output = self.module(*inputs, **kwargs)
        self.require_forward_param_sync = sync
        self._expect_reduction = sync
        if sync and self.find_unused_parameters:
            self._mark_unused(output)
        return output

    @contextlib.contextmanager
    def no_sync(self) -> Iterator[None]:
        """Backward passes of forwards run inside this context accumulate ``.grad`` locally, without any
        communication; the first synchronized backward after it averages the accumulated gradients."""
        old = self.require_backward_grad_sync
        self.require_backward_grad_sync = False
        try:
            yield
        finally:
            self.require_backward_grad_sync = old


def _tensors_in(obj: Any) -> Iterator[Tensor]:
    """The Tensors in a forward's output: itself, or those in its tuples, lists and dicts."""
    if isinstance(obj, Tensor):
        yield obj
    elif isinstance(obj, tuple | list):
        for o in obj:
            yield from _tensors_in(o)
    elif isinstance(obj, dict):
        for o in obj.values():
            yield from _tensors_in(o)
