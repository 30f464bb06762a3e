"""``Optimizer``: the base class of ``SGD``, ``Adam`` and ``AdamW``, with ``torch.optim.Optimizer``'s API.

An optimizer holds ``param_groups``, a list of dicts, each with a ``"params"`` list and every hyperparameter
(``"lr"``, ``"momentum"``, ...; the constructor's values fill what a group leaves out), and ``state``, a
dict from each parameter to its own dict of buffers (momentum, moments, step count), filled lazily at the
first step that parameter has a gradient. A subclass writes ``step()``: for each group, for each parameter
whose ``.grad`` is not None, update ``p.data`` in place.

The updates work on the raw arrays (``p.data``, ``p.grad.data``) with ufuncs writing into ``out=``: nothing
passes through autograd, no array is allocated per step but the scratch buffers below (made once), and a
float32 parameter stays float32 (hyperparameters are Python floats, which NumPy 2 and CuPy cast to the array's
dtype). ``_scratch(slot, like)`` hands out a view of a flat buffer per (slot, device, dtype, thread), as large
as the largest array seen, for the temporaries of an update (``_in_pieces`` shares the updates out among
minires's threads in pieces of about 1 MiB, each thread with its own buffers).

``state_dict()`` has torch's layout, of plain values that ``mr.save`` writes::

    {"state": {0: {"momentum_buffer": ndarray}, 1: {...}},          keyed by the index of the parameter
     "param_groups": [{"lr": 0.1, "momentum": 0.9, ..., "params": [0, 1]}, ...]}

Parameters are numbered in the order of ``param_groups``, as torch numbers them. ``load_state_dict``
accepts that (or one of torch's, with its tensors turned into NumPy arrays; int or str keys) and copies
each buffer to the dtype and device of its parameter.
"""

from __future__ import annotations

import copy
import threading
import warnings
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import numpy as np

from .. import backend, threads
from ..autograd import zero_grads
from ..backend import get_array_module
from ..grad_mode import enable_grad
from ..tensor import Tensor

_FUSED: dict[tuple, Callable[..., None]] = {}  # see Optimizer._fused


class Optimizer:
    """``Optimizer(params, defaults)``: ``params`` an iterable of Tensors, of ``(name, Tensor)`` pairs, or
    of dicts (param groups, each with a ``"params"`` entry); ``defaults`` the hyperparameters a group
    does not set. Raises as torch does: ``TypeError`` for a single Tensor, a set or a non-Tensor,
    ``ValueError`` for an empty list, a non-leaf Tensor or a parameter in two groups (a parameter twice in
    one group only warns)."""

    def __init__(self, params: Any, defaults: dict[str, Any]) -> None:
        self.defaults = defaults
        self.state: defaultdict[Tensor, dict[str, Any]] = defaultdict(dict)
        self.param_groups: list[dict[str, Any]] = []
        self._buffers: dict[tuple, Any] = {}  # scratch space, see _scratch; not part of the state
        name = type(self).__name__
        if isinstance(params, Tensor):
            raise TypeError(
                f"{name}: params should be an iterable of Tensors or dicts, but got a single Tensor; "
                "pass [tensor] or model.parameters()"
            )
        param_groups = list(params)
        if len(param_groups) == 0:
            raise ValueError(f"{name}: optimizer got an empty parameter list")
        if not isinstance(param_groups[0], dict):
            param_groups = [{"params": param_groups}]
        for group in param_groups:
            self.add_param_group(group)

    # ----- parameter groups -------------------------------------------------------------------------
    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Append a group (a dict with ``"params"``; other keys override ``defaults``), as torch does."""
        name = type(self).__name__
        if not isinstance(param_group, dict):
            raise TypeError(f"{name}: param_group must be a dict, but got {type(param_group).__name__}")
        param_group = dict(param_group)
        params = param_group["params"]
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, set):
            raise TypeError(
                f"{name}: optimizer parameters need to be organized in ordered collections, but the "
                "ordering of tensors in sets will change between runs. Please use a list instead."
            )
        tensors, names = [], []
        for p in params:
            if isinstance(p, tuple):  # named_parameters(): (name, Parameter)
                names.append(p[0])
                p = p[1]
            tensors.append(p)
        if names and len(names) != len(tensors):
            raise ValueError(f"{name}: all params should be with or without names; some names are missing")
        for p in tensors:
            if not isinstance(p, Tensor):
                raise TypeError(
                    f"{name}: optimizer can only optimize Tensors, but one of the params is "
                    f"{type(p).__module__}.{type(p).__qualname__}"
                )
            if not p.is_leaf:
                raise ValueError(f"{name}: can't optimize a non-leaf Tensor (shape {p.shape})")
        param_group["params"] = tensors
        if names:
            param_group["param_names"] = names
        for key, default in self.defaults.items():
            param_group.setdefault(key, default)
        if len({id(p) for p in tensors}) != len(tensors):
            warnings.warn(
                f"{name}: optimizer contains a parameter group with duplicate parameters; "
                "in future, this will cause an error",
                UserWarning,
                stacklevel=3,
            )
        seen = {id(p) for group in self.param_groups for p in group["params"]}
        if any(id(p) in seen for p in tensors):
            raise ValueError(f"{name}: some parameters appear in more than one parameter group")
        for group in self.param_groups:
            if ("param_names" in group) != ("param_names" in param_group):
                raise ValueError(
                    f"{name}: all optimizer param groups should be with or without names; cannot add a "
                    f"param group {'with' if names else 'without'} names to the optimizer"
                )
        self.param_groups.append(param_group)

    # ----- gradients and steps ------------------------------------------------------------------------
    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset every parameter's ``.grad``: to None (the default, as torch 2.x), or to zeros in place."""
        zero_grads((p for group in self.param_groups for p in group["params"]), set_to_none)

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One update of every parameter that has a gradient; returns ``closure()``'s loss, if given."""
        raise NotImplementedError

    def _closure_loss(self, closure: Callable[[], Any] | None) -> Any:
        if closure is None:
            return None
        with enable_grad():
            return closure()

    def _scratch(self, slot: int, like: Any) -> Any:
        """A scratch array shaped and typed as ``like``: a view of one flat buffer per (slot, device, dtype,
        thread), grown to the largest array it was asked for (a parameter, or a piece of one when the
        update is shared out among threads: ``_in_pieces``). Its contents are garbage; slots 0 and 1 never
        overlap."""
        xp = get_array_module(like)
        key = (slot, xp.__name__, like.dtype.str, threading.get_ident())
        flat = self._buffers.get(key)
        if flat is None or flat.size < like.size:
            flat = xp.empty(like.size, dtype=like.dtype)
            self._buffers[key] = flat
        return flat[: like.size].reshape(like.shape)

    @staticmethod
    def _fused(update: Callable[..., None]) -> Callable[..., None]:
        """On the GPU, ``update`` (one step of one parameter, elementwise, written with in-place operators
        on its array arguments) fused by ``cupy.fuse`` into one kernel: a step costs one launch per
        parameter instead of one per operation. Cached per (array module, update), as CuPy asks that a
        fused function be made once. The NumPy path runs the unfused reference code instead."""
        cupy = backend.cupy
        key = (id(cupy), update)
        fused = _FUSED.get(key)
        if fused is None:
            fused = _FUSED[key] = cupy.fuse(kernel_name=f"minires_{update.__name__}")(update)
        return fused

    @staticmethod
    def _in_pieces(update: Callable[..., None], jobs: list[tuple[tuple, tuple]]) -> None:
        """``update(*arrays, *rest)`` for each job ``(arrays, rest)`` (a parameter's arrays, all of its shape:
        theta, its grad and its state buffers, None for one it has not; then its scalars). On the CPU in
        pieces of about threads.BATCH_CHUNK_BYTES of each (flat slices of contiguous arrays; a parameter
        stored otherwise is one piece) shared out among minires's threads: the same bits as whole arrays,
        the rules being elementwise (a parameter listed twice is updated twice, one update after the
        other, as torch does). On the GPU one parameter at a time on the calling thread. Measured
        (2 cores, AVX-512): SGD with momentum, d2l_resnet18's 11.2M parameters 6.2 -> 4.7 ms a step,
        resnet50's 23.5M 12.4 -> 9.4 ms; Adam 20.4 -> 10.9 ms and 42.4 -> 22.6 ms (PyTorch's 17.0 and
        31.6 ms)."""
        rounds: list[list] = []  # a parameter listed twice (torch warns, and updates it twice in turn):
        seen: dict[int, int] = {}  # its second update in a second round, after the first has run
        for arrays, rest in jobs:
            theta = arrays[0]
            n = seen[id(theta)] = seen.get(id(theta), -1) + 1
            if n == len(rounds):
                rounds.append([])
            pieces = rounds[n]
            present = [a for a in arrays if a is not None]
            if get_array_module(theta) is not np or not all(a.flags.c_contiguous for a in present):
                pieces.append((*arrays, *rest))  # whole (a GPU parameter: on the calling thread, below)
            else:
                flat = [None if a is None else a.reshape(-1) for a in arrays]  # views: contiguous arrays
                size = max(1, threads.BATCH_CHUNK_BYTES // theta.itemsize)
                for start in range(0, theta.size, size):
                    part = [None if a is None else a[start : start + size] for a in flat]
                    pieces.append((*part, *rest))
        for pieces in rounds:
            on_cpu = [piece for piece in pieces if get_array_module(piece[0]) is np]
            for piece in pieces:
                if get_array_module(piece[0]) is not np:
                    update(*piece)
            threads.parallel_map(lambda piece: update(*piece), on_cpu)

    def _effective_grad(self, grad: Any, theta: Any, weight_decay: float, maximize: bool) -> Any:
        """g_t = -grad if maximize else grad, then g_t + weight_decay * theta (L2 decay, torch's order:
        ``grad.add(param, alpha=weight_decay)``), for a parameter's arrays (or matching pieces of them).
        ``grad`` itself is never written: the result is ``grad`` or scratch slot 0."""
        if weight_decay != 0:
            xp = get_array_module(theta)
            g = xp.multiply(theta, weight_decay, out=self._scratch(0, theta))  # lambda * theta
            (xp.subtract if maximize else xp.add)(g, grad, out=g)  # +-grad + lambda * theta
            return g
        if maximize:
            return get_array_module(grad).negative(grad, out=self._scratch(0, grad))
        return grad

    # ----- state_dict -------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """``{"state": {index: {name: array or number}}, "param_groups": [{..., "params": [index]}]}``,
        torch's layout: parameters numbered in group order, the arrays themselves (not copies, as torch)."""
        index: dict[int, int] = {}
        start = 0
        param_groups = []
        for group in self.param_groups:
            packed = {k: v for k, v in group.items() if k != "params"}
            for i, p in enumerate(group["params"], start):
                index.setdefault(id(p), i)
            packed["params"] = [index[id(p)] for p in group["params"]]
            start += len(packed["params"])
            param_groups.append(packed)
        state = {index[id(p)]: dict(s) for p, s in self.state.items() if id(p) in index}
        return {"state": state, "param_groups": param_groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a ``state_dict()`` (this optimizer's, one read back by ``mr.load``, or torch's with its
        tensors as NumPy arrays). Checks the number and sizes of the groups; copies every array to the
        dtype (floating-point parameters) and device of its parameter; ``"step"`` becomes a float."""
        name = type(self).__name__
        saved_groups = copy.deepcopy(list(state_dict["param_groups"]))
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(
                f"{name}.load_state_dict: loaded state dict has {len(saved_groups)} parameter groups, "
                f"but the optimizer has {len(self.param_groups)}"
            )
        for i, (group, saved) in enumerate(zip(self.param_groups, saved_groups, strict=True)):
            if len(group["params"]) != len(saved["params"]):
                raise ValueError(
                    f"{name}.load_state_dict: loaded state dict contains a parameter group ({i}) of "
                    f"{len(saved['params'])} parameters that doesn't match the size of optimizer's group "
                    f"({len(group['params'])} parameters)"
                )
        id_map = {
            int(saved_id): p
            for saved, group in zip(saved_groups, self.param_groups, strict=True)
            for saved_id, p in zip(saved["params"], group["params"], strict=True)
        }
        state: defaultdict[Tensor, dict[str, Any]] = defaultdict(dict)
        for key, value in state_dict["state"].items():
            if int(key) not in id_map:
                raise ValueError(f"{name}.load_state_dict: state for parameter {key!r}, which no group lists")
            p = id_map[int(key)]
            state[p] = {k: _cast_state(p, k, v) for k, v in value.items()}
        for group, saved in zip(self.param_groups, saved_groups, strict=True):
            saved["params"] = group["params"]
            if "param_names" in group and "param_names" not in saved:
                saved["param_names"] = group["param_names"]
            for key, default in self.defaults.items():
                saved.setdefault(key, default)  # a state dict from before an option existed
        self.state = state
        self.param_groups = saved_groups

    def __repr__(self) -> str:
        lines = [type(self).__name__ + " ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines.extend(f"    {k}: {group[k]}" for k in sorted(group) if k != "params")
        lines.append(")")
        return "\n".join(lines)


def _cast_state(p: Tensor, key: str, value: Any) -> Any:
    """A loaded state entry as this optimizer keeps it: ``step`` a float; an array (NumPy, CuPy, Tensor, or
    anything else ``numpy.asarray`` reads: a torch CPU tensor of torch's own state dict, as
    ``Module.load_state_dict`` takes them) a fresh copy on ``p``'s device, with ``p``'s dtype when ``p`` is
    floating-point; anything else as is."""
    if isinstance(value, Tensor):
        value = value.data
    elif hasattr(value, "__array__") and not isinstance(value, (np.ndarray, np.generic)):
        if backend.cupy is None or not isinstance(value, backend.cupy.ndarray):
            value = np.asarray(value)  # a torch tensor, or another array type NumPy can read
    is_array = isinstance(value, np.ndarray) or (
        backend.cupy is not None and isinstance(value, backend.cupy.ndarray)
    )
    if key == "step":
        return float(value)
    if not is_array:
        return value
    xp = get_array_module(p.data)
    value = backend.to_device(value, backend.device_of(p.data))
    dtype = p.dtype if p.data.dtype.kind in "fc" else value.dtype
    return xp.array(value, dtype=dtype, copy=True)
