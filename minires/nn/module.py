"""``Module``: the base class of every layer and network, with PyTorch's registration rules.

Assigning a ``Parameter`` to an attribute files it in ``self._parameters``, a ``Module`` in ``self._modules``;
``register_buffer`` files a Tensor that is state but not learned (BatchNorm's running statistics) in
``self._buffers``. Each of the three is an ordered dict, and every walk over a network goes through them in
registration order: ``named_parameters()``, ``state_dict()``, ``train()``, ``to()``. So the names are the
attribute paths PyTorch gives (``layer1.0.conv1.weight``, ``Sequential`` children ``0``, ``1``, ...), and a
PyTorch ``state_dict`` loads unchanged.

``module(x)`` runs ``forward(x)`` directly when the module has no hooks (the common case costs one
attribute test); hooks are run by ``_call_with_hooks``, with the backward hooks of ``hooks.py``.

The walks call a method of the module that owns each tensor for the step on that tensor:
``_apply_to_tensor`` (``to``, ``double``), ``_save_to_state_dict``, ``_checkpoint_entry`` and
``_copy_loaded`` (``load_state_dict``). The lazy layers (modules/lazy.py) override these four for their
uninitialized parameters, which have no data yet.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict, namedtuple
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np

from .. import backend
from ..autograd import zero_grads
from ..errors import DTypeError
from ..tensor import Tensor, as_dtype, float32, float64
from .hooks import BackwardHook, RemovableHandle
from .parameter import Parameter, is_lazy


class _IncompatibleKeys(namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])):
    """What ``load_state_dict`` returns, as torch's: the two lists, and a repr that says when both are
    empty."""

    __slots__ = ()

    def __repr__(self) -> str:
        if not self.missing_keys and not self.unexpected_keys:
            return "<All keys matched successfully>"
        return f"_IncompatibleKeys(missing_keys={self.missing_keys}, unexpected_keys={self.unexpected_keys})"


def _addindent(s: str, num_spaces: int) -> str:
    """Indent every line of ``s`` but the first (a child's repr inside its parent's)."""
    lines = s.split("\n")
    if len(lines) == 1:
        return s
    return lines[0] + "\n" + "\n".join(" " * num_spaces + line for line in lines[1:])


def _checkpoint_array(value: Any) -> np.ndarray | None:
    """A checkpoint entry (NumPy array, minires Tensor, torch tensor, CuPy array, number) as a NumPy
    array, or None when it is not array-like."""
    if isinstance(value, Tensor):
        return backend.to_numpy(value.data)
    try:
        if hasattr(value, "detach") and hasattr(value, "cpu") and hasattr(value, "numpy"):  # a torch tensor
            value = value.detach().cpu().numpy()
        arr = backend.to_numpy(value) if hasattr(value, "shape") else np.asarray(value)
    except Exception:  # noqa: BLE001 - anything NumPy cannot read is "not array-like"
        return None
    return arr if arr.dtype.kind in "biufc" else None


def _is_uninitialized_entry(value: Any) -> bool:
    """Whether a checkpoint entry is an uninitialized parameter or buffer: minires's, or torch's (from the
    state_dict of a torch model with lazy layers not run yet), which has no data to read either."""
    return is_lazy(value) or (hasattr(value, "materialize") and hasattr(value, "cls_to_become"))


def _checkpoint_array_or_error(key: str, value: Any, errors: list[str]) -> np.ndarray | None:
    """``_checkpoint_array(value)``, or None with the reason appended to ``errors``."""
    arr = _checkpoint_array(value)
    if arr is None:
        errors.append(
            f'While copying the parameter named "{key}", expected a NumPy array or Tensor-like '
            f"object from checkpoint but received {type(value)}"
        )
    return arr


def _forward_unimplemented(self: Module, *args: Any, **kwargs: Any) -> Any:
    raise NotImplementedError(f'Module [{type(self).__name__}] is missing the required "forward" function')


class Module:
    """Base class of every layer and network; subclasses set their sub-modules and parameters in
    ``__init__`` (after ``super().__init__()``) and define ``forward``."""

    _version: int = 1  # written into state_dict()._metadata, as PyTorch does
    training: bool
    forward: Callable[..., Any] = _forward_unimplemented

    def __init__(self) -> None:
        sa = object.__setattr__  # the registries themselves are plain attributes
        sa(self, "training", True)
        sa(self, "_parameters", OrderedDict())
        sa(self, "_buffers", OrderedDict())
        sa(self, "_non_persistent_buffers_set", set())
        sa(self, "_modules", OrderedDict())
        sa(self, "_forward_pre_hooks", OrderedDict())
        sa(self, "_forward_pre_hooks_with_kwargs", OrderedDict())
        sa(self, "_forward_hooks", OrderedDict())
        sa(self, "_forward_hooks_with_kwargs", OrderedDict())
        sa(self, "_backward_hooks", OrderedDict())

    # ----- calling -----------------------------------------------------------------------------------
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self._forward_hooks or self._forward_pre_hooks or self._backward_hooks:
            return self._call_with_hooks(args, kwargs)
        return self.forward(*args, **kwargs)

    def _call_with_hooks(self, args: tuple, kwargs: dict) -> Any:
        """PyTorch's order: forward pre-hooks, backward-hook wrapping of the inputs, forward, forward
        hooks (each may replace the output), backward-hook wrapping of the output."""
        for hook_id, hook in list(self._forward_pre_hooks.items()):
            if hook_id in self._forward_pre_hooks_with_kwargs:
                result = hook(self, args, kwargs)
                if result is not None:
                    if not (isinstance(result, tuple) and len(result) == 2):
                        raise RuntimeError(
                            f"forward pre-hook must return None or a tuple of (new_args, new_kwargs), "
                            f"got {result!r}"
                        )
                    args, kwargs = result
            else:
                result = hook(self, args)
                if result is not None:
                    args = result if isinstance(result, tuple) else (result,)
        bw_hook = None
        if self._backward_hooks:
            bw_hook = BackwardHook(self, list(self._backward_hooks.values()))
            args = bw_hook.setup_input_hook(args)
        result = self.forward(*args, **kwargs)
        for hook_id, hook in list(self._forward_hooks.items()):
            if hook_id in self._forward_hooks_with_kwargs:
                hook_result = hook(self, args, kwargs, result)
            else:
                hook_result = hook(self, args, result)
            if hook_result is not None:
                result = hook_result
        if bw_hook is not None:
            result = bw_hook.setup_output_hook(result)
        return result

    # ----- hooks -------------------------------------------------------------------------------------
    @staticmethod
    def _add_hook(hooks: OrderedDict, flags: OrderedDict, hook: Callable, prepend: bool, flag: bool) -> Any:
        handle = RemovableHandle(hooks, flags)
        hooks[handle.id] = hook
        if flag:
            flags[handle.id] = True
        if prepend:
            hooks.move_to_end(handle.id, last=False)
        return handle

    def register_forward_pre_hook(
        self, hook: Callable[..., Any], *, prepend: bool = False, with_kwargs: bool = False
    ) -> RemovableHandle:
        """``hook(module, args)`` before each ``forward``; a non-None result replaces ``args`` (a single
        value is wrapped in a tuple). With ``with_kwargs``: ``hook(module, args, kwargs)`` returning None
        or ``(args, kwargs)``."""
        return self._add_hook(
            self._forward_pre_hooks, self._forward_pre_hooks_with_kwargs, hook, prepend, with_kwargs
        )

    def register_forward_hook(
        self, hook: Callable[..., Any], *, prepend: bool = False, with_kwargs: bool = False
    ) -> RemovableHandle:
        """``hook(module, args, output)`` after each ``forward``; a non-None result replaces the output.
        With ``with_kwargs``: ``hook(module, args, kwargs, output)``."""
        return self._add_hook(
            self._forward_hooks, self._forward_hooks_with_kwargs, hook, prepend, with_kwargs
        )

    def register_full_backward_hook(self, hook: Callable[..., Any], prepend: bool = False) -> RemovableHandle:
        """``hook(module, grad_input, grad_output)`` when the gradients of a call's inputs are computed:
        ``grad_input`` has one entry per positional argument (all None when no input requires grad, as
        for a network's first layer), ``grad_output`` one per output. A non-None result replaces
        ``grad_input``. See hooks.py for the details, which are PyTorch's."""
        return self._add_hook(self._backward_hooks, OrderedDict(), hook, prepend, False)

    # ----- registration ------------------------------------------------------------------------------
    def _check_name(self, kind: str, name: Any, registry: str) -> None:
        if registry not in self.__dict__:
            raise AttributeError(f"cannot assign {kind} before Module.__init__() call")
        if not isinstance(name, str):
            raise TypeError(f"{kind} name should be a string. Got {type(name).__name__}")
        if "." in name:
            raise KeyError(f'{kind} name can\'t contain ".", got: {name}')
        if name == "":
            raise KeyError(f'{kind} name can\'t be empty string ""')
        if hasattr(self, name) and name not in self.__dict__[registry]:
            raise KeyError(f"attribute '{name}' already exists")

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        """Add ``param`` (a Parameter, or None for an absent one such as ``bias=False``) as ``name``."""
        self._check_name("parameter", name, "_parameters")
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(
                f"cannot assign '{type(param).__name__}' object to parameter '{name}' "
                "(minires.nn.Parameter or None required)"
            )
        if param is not None and param.grad_fn is not None:
            raise ValueError(
                f"Cannot assign non-leaf Tensor to parameter '{name}'. Model parameters must be created "
                "explicitly. To express '{name}' as a function of another Tensor, compute the value in "
                "the forward() method."
            )
        self._parameters[name] = param

    def register_buffer(self, name: str, tensor: Tensor | None, persistent: bool = True) -> None:
        """Add ``tensor`` as state that is not a parameter (saved in ``state_dict`` unless not persistent)."""
        self._check_name("buffer", name, "_buffers")
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(
                f"cannot assign '{type(tensor).__name__}' object to buffer '{name}' (Tensor or None required)"
            )
        self._buffers[name] = tensor
        if persistent:
            self._non_persistent_buffers_set.discard(name)
        else:
            self._non_persistent_buffers_set.add(name)

    def add_module(self, name: str, module: Module | None) -> None:
        """Add ``module`` as the child ``name`` (also reachable as ``self.<name>``)."""
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"{type(module).__name__} is not a Module subclass")
        self._check_name("module", name, "_modules")
        self._modules[name] = module

    register_module = add_module

    def __setattr__(self, name: str, value: Any) -> None:
        d = self.__dict__

        def remove_from(*dicts_or_sets: Any) -> None:
            for ds in dicts_or_sets:
                if name in ds:
                    if isinstance(ds, dict):
                        del ds[name]
                    else:
                        ds.discard(name)

        params = d.get("_parameters")
        if isinstance(value, Parameter):
            if params is None:
                raise AttributeError("cannot assign parameters before Module.__init__() call")
            remove_from(d, self._buffers, self._modules, self._non_persistent_buffers_set)
            self.register_parameter(name, value)
        elif params is not None and name in params:
            if value is not None:
                raise TypeError(
                    f"cannot assign '{type(value).__name__}' as parameter '{name}' "
                    "(minires.nn.Parameter or None expected)"
                )
            self.register_parameter(name, value)
        else:
            modules = d.get("_modules")
            if isinstance(value, Module):
                if modules is None:
                    raise AttributeError("cannot assign module before Module.__init__() call")
                remove_from(d, self._parameters, self._buffers, self._non_persistent_buffers_set)
                modules[name] = value
            elif modules is not None and name in modules:
                if value is not None:
                    raise TypeError(
                        f"cannot assign '{type(value).__name__}' as child module '{name}' "
                        "(minires.nn.Module or None expected)"
                    )
                modules[name] = value
            else:
                buffers = d.get("_buffers")
                if buffers is not None and name in buffers:
                    if value is not None and not isinstance(value, Tensor):
                        raise TypeError(
                            f"cannot assign '{type(value).__name__}' as buffer '{name}' "
                            "(Tensor or None expected)"
                        )
                    buffers[name] = value
                else:
                    object.__setattr__(self, name, value)

    def __getattr__(self, name: str) -> Any:
        # Only reached when normal lookup fails: registered names live in the three registries.
        d = self.__dict__
        for registry in ("_parameters", "_buffers", "_modules"):
            if registry in d and name in d[registry]:
                return d[registry][name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name: str) -> None:
        if name in self._parameters:
            del self._parameters[name]
        elif name in self._buffers:
            del self._buffers[name]
            self._non_persistent_buffers_set.discard(name)
        elif name in self._modules:
            del self._modules[name]
        else:
            object.__delattr__(self, name)

    def __dir__(self) -> list[str]:
        keys = list(object.__dir__(self))
        keys += list(self._parameters) + list(self._buffers) + list(self._modules)
        return sorted(set(k for k in keys if not k[0].isdigit()))

    def get_submodule(self, target: str) -> Module:
        """The module at the dotted path ``target`` ("" is ``self``), as ``torch.nn.Module.get_submodule``."""
        mod = self
        for item in target.split(".") if target else []:
            if not isinstance(mod, Module) or item not in mod._modules:
                raise AttributeError(f"{mod._get_name()} has no attribute `{item}`")
            mod = mod._modules[item]
            if mod is None:
                raise AttributeError(f"`{item}` is None, not an nn.Module")
        return mod

    # ----- walking the tree --------------------------------------------------------------------------
    def named_modules(
        self, memo: set | None = None, prefix: str = "", remove_duplicate: bool = True
    ) -> Iterator[tuple[str, Module]]:
        """``(path, module)`` for ``self`` (path ``prefix``) and every descendant, depth first, each module
        once unless ``remove_duplicate=False``."""
        if memo is None:
            memo = set()
        if self in memo:
            return
        if remove_duplicate:
            memo.add(self)
        yield prefix, self
        for name, module in self._modules.items():
            if module is None:
                continue
            sub_prefix = prefix + ("." if prefix else "") + name
            yield from module.named_modules(memo, sub_prefix, remove_duplicate)

    def modules(self) -> Iterator[Module]:
        for _, module in self.named_modules():
            yield module

    def named_children(self) -> Iterator[tuple[str, Module]]:
        memo = set()
        for name, module in self._modules.items():
            if module is not None and module not in memo:
                memo.add(module)
                yield name, module

    def children(self) -> Iterator[Module]:
        for _, module in self.named_children():
            yield module

    def _named_members(
        self, registry: str, prefix: str, recurse: bool, remove_duplicate: bool
    ) -> Iterator[tuple[str, Tensor]]:
        """Parameters or buffers with their dotted names; a tensor shared by several modules (tied weights)
        comes once, under its first name, unless ``remove_duplicate=False``."""
        seen: set[int] = set()
        modules = (
            self.named_modules(prefix=prefix, remove_duplicate=remove_duplicate)
            if recurse
            else [(prefix, self)]
        )
        for module_prefix, module in modules:
            for name, value in module.__dict__[registry].items():
                if value is None or id(value) in seen:
                    continue
                if remove_duplicate:
                    seen.add(id(value))
                yield module_prefix + ("." if module_prefix else "") + name, value

    def named_parameters(
        self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True
    ) -> Iterator[tuple[str, Parameter]]:
        yield from self._named_members("_parameters", prefix, recurse, remove_duplicate)

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        for _, param in self.named_parameters(recurse=recurse):
            yield param

    def named_buffers(
        self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True
    ) -> Iterator[tuple[str, Tensor]]:
        yield from self._named_members("_buffers", prefix, recurse, remove_duplicate)

    def buffers(self, recurse: bool = True) -> Iterator[Tensor]:
        for _, buf in self.named_buffers(recurse=recurse):
            yield buf

    def apply(self, fn: Callable[[Module], Any]) -> Module:
        """Call ``fn`` on every child (recursively), then on ``self``; returns ``self``."""
        for module in self.children():
            module.apply(fn)
        fn(self)
        return self

    # ----- modes, gradients, devices and dtypes ------------------------------------------------------
    def train(self, mode: bool = True) -> Module:
        """Set training mode on ``self`` and every descendant; returns ``self``."""
        if not isinstance(mode, bool):
            raise ValueError("training mode is expected to be boolean")
        self.training = mode
        for module in self.children():
            module.train(mode)
        return self

    def eval(self) -> Module:
        """``train(False)``: BatchNorm uses its running statistics, Dropout passes its input through."""
        return self.train(False)

    def requires_grad_(self, requires_grad: bool = True) -> Module:
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset every parameter's ``.grad``: to None (the default, as torch 2.x), or to zeros in place."""
        zero_grads(self.parameters(), set_to_none)

    def _apply(self, fn: Callable[[Any], Any]) -> Module:
        """Replace the array of every parameter, gradient and buffer by ``fn(array)``, in place: the Tensor
        objects stay the same, so an optimizer holding the parameters keeps working."""
        for module in self.modules():
            for t in itertools.chain(module._parameters.values(), module._buffers.values()):
                if t is not None:
                    module._apply_to_tensor(t, fn)
        return self

    def _apply_to_tensor(self, t: Tensor, fn: Callable[[Any], Any]) -> None:
        """``fn`` on the array of one of this module's own parameters or buffers, and of its gradient
        (the lazy modules' override converts an uninitialized one's placeholder instead)."""
        t.data = fn(t.data)
        if t.grad is not None:
            t.grad.data = fn(t.grad.data)

    def to(self, *args: Any, device: Any = None, dtype: Any = None, non_blocking: bool = False) -> Module:
        """``to(device)``, ``to(dtype)``, ``to(device, dtype)`` or ``to(tensor)``: move every parameter and
        buffer (and gradient) in place; a dtype applies to the floating-point ones only. Returns ``self``."""
        for a in args:
            if isinstance(a, Tensor):
                device, dtype = a.device, a.dtype
            elif isinstance(a, np.dtype) or isinstance(a, type) or (isinstance(a, str) and _is_dtype(a)):
                dtype = a
            else:
                device = a
        dev = None if device is None else backend.normalize_device(device)
        dt = as_dtype(dtype)
        if dt is not None and dt.kind not in "fc":
            raise DTypeError(f"Module.to only accepts floating point dtypes, but got desired dtype={dt}")

        def convert(a: Any) -> Any:
            if dt is not None and a.dtype.kind in "fc" and a.dtype != dt:
                a = a.astype(dt)
            return a if dev is None else backend.to_device(a, dev)

        return self._apply(convert)

    def cpu(self) -> Module:
        return self.to("cpu")

    def cuda(self, device: Any = None) -> Module:
        return self.to("cuda")

    def float(self) -> Module:
        """Cast floating-point parameters and buffers to float32 (``num_batches_tracked`` stays int64)."""
        return self.to(float32)

    def double(self) -> Module:
        """Cast floating-point parameters and buffers to float64 (``num_batches_tracked`` stays int64)."""
        return self.to(float64)

    def half(self) -> Module:
        return self.to(np.dtype("float16"))

    # ----- state_dict --------------------------------------------------------------------------------
    def state_dict(
        self, *, destination: dict | None = None, prefix: str = "", keep_vars: bool = False
    ) -> OrderedDict[str, Any]:
        """Every parameter and persistent buffer by its dotted path, as NumPy copies (or, with
        ``keep_vars``, the Tensors themselves). Shared parameters appear under each of their names."""
        if destination is None:
            destination = OrderedDict()
            destination._metadata = OrderedDict()  # type: ignore[attr-defined]
        metadata = getattr(destination, "_metadata", None)
        if metadata is not None:
            metadata[prefix[:-1]] = {"version": self._version}
        self._save_to_state_dict(destination, prefix, keep_vars)
        for name, module in self._modules.items():
            if module is not None:
                module.state_dict(destination=destination, prefix=prefix + name + ".", keep_vars=keep_vars)
        return destination

    def _save_to_state_dict(self, destination: dict, prefix: str, keep_vars: bool) -> None:
        """Put this module's own parameters and persistent buffers (not its children's) in ``destination``
        (the lazy modules' override puts an uninitialized one in as it is, having no data to copy)."""
        for name, param in self._parameters.items():
            if param is not None:
                destination[prefix + name] = param if keep_vars else param.numpy()
        for name, buf in self._buffers.items():
            if buf is not None and name not in self._non_persistent_buffers_set:
                destination[prefix + name] = buf if keep_vars else buf.numpy()

    def _upgrade_state_dict(self, state_dict: dict, prefix: str, version: int | None) -> None:
        """Fill in what older versions of this module's state lacked (BatchNorm: num_batches_tracked)."""

    def _plan_load(
        self,
        state_dict: dict,
        prefix: str,
        metadata: Mapping | None,
        plan: list,
        missing: list[str],
        unexpected: list[str],
        errors: list[str],
    ) -> None:
        """PyTorch's ``_load_from_state_dict`` for ``self`` and (recursively) its children, without
        copying anything: the copies to make go to ``plan`` as ``(module, tensor, array)``, the problems
        to the three lists."""
        local_meta = {} if metadata is None else metadata.get(prefix[:-1], {})
        self._upgrade_state_dict(state_dict, prefix, local_meta.get("version"))
        persistent = {k: v for k, v in self._buffers.items() if k not in self._non_persistent_buffers_set}
        local_state = {
            k: v for k, v in itertools.chain(self._parameters.items(), persistent.items()) if v is not None
        }
        for name, tensor in local_state.items():
            key = prefix + name
            if key not in state_dict:
                missing.append(key)
                continue
            arr = self._checkpoint_entry(key, tensor, state_dict[key], errors)
            if arr is not None:
                plan.append((self, tensor, arr))
        for key in state_dict:
            if key.startswith(prefix):
                head = key[len(prefix) :].split(".", 1)
                if (len(head) > 1 and head[0] not in self._modules) or (
                    len(head) == 1 and head[0] not in local_state
                ):
                    unexpected.append(key)
        for name, child in self._modules.items():
            if child is not None:
                child_prefix = prefix + name + "."
                child_state = {k: v for k, v in state_dict.items() if k.startswith(child_prefix)}
                child._plan_load(child_state, child_prefix, metadata, plan, missing, unexpected, errors)

    def _checkpoint_entry(self, key: str, tensor: Tensor, value: Any, errors: list[str]) -> np.ndarray | None:
        """The array to copy from the checkpoint's ``value`` into ``tensor`` (one of this module's own, filed
        under ``key``), or None with the problem appended to ``errors``: not array-like, the wrong shape,
        or an uninitialized entry (the lazy modules' override accepts what fits an uninitialized tensor)."""
        if _is_uninitialized_entry(value):
            errors.append(
                f'While copying the parameter named "{key}": the checkpoint holds an uninitialized '
                "parameter or buffer (a lazy layer's, saved before its first forward), which cannot be "
                "loaded into an initialized one. Run a forward pass on the saved model before saving it."
            )
            return None
        arr = _checkpoint_array_or_error(key, value, errors)
        if arr is None:
            return None
        if tensor.ndim == 0 and arr.shape == (1,):  # PyTorch 0.3 saved scalars as 1-d
            arr = arr.reshape(())
        if tuple(arr.shape) != tensor.shape:
            errors.append(
                f"size mismatch for {key}: copying a param with shape {tuple(arr.shape)} from "
                f"checkpoint, the shape in current model is {tensor.shape}."
            )
            return None
        return arr

    def _copy_loaded(self, tensor: Tensor, arr: np.ndarray) -> None:
        """Copy a checked checkpoint array into ``tensor`` in place, cast to its dtype and device (the
        lazy modules' override first materializes an uninitialized tensor with the array's shape)."""
        tensor.data[...] = backend.to_device(arr.astype(tensor.dtype, copy=False), tensor.device)

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True) -> Any:
        """Copy ``state_dict``'s arrays (NumPy, or anything ``numpy.asarray`` reads: torch CPU tensors,
        minires Tensors) into the parameters and buffers with the same names, cast to their dtype and
        device, in place (the Parameter objects stay the same).

        Missing and unexpected keys (with ``strict``) and shape mismatches (always) raise one RuntimeError
        naming every offending key, and then nothing at all has been changed. Returns the namedtuple
        ``(missing_keys, unexpected_keys)``.
        """
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"Expected state_dict to be dict-like, got {type(state_dict)}.")
        metadata = getattr(state_dict, "_metadata", None)
        state_dict = OrderedDict(state_dict)  # a copy: the upgrade step may add keys
        plan: list[tuple[Module, Tensor, np.ndarray]] = []
        missing: list[str] = []
        unexpected: list[str] = []
        errors: list[str] = []
        self._plan_load(state_dict, "", metadata, plan, missing, unexpected, errors)
        if strict:
            if unexpected:
                errors.insert(
                    0, "Unexpected key(s) in state_dict: {}. ".format(", ".join(f'"{k}"' for k in unexpected))
                )
            if missing:
                errors.insert(
                    0, "Missing key(s) in state_dict: {}. ".format(", ".join(f'"{k}"' for k in missing))
                )
        if errors:
            raise RuntimeError(
                "Error(s) in loading state_dict for {}:\n\t{}".format(
                    type(self).__name__, "\n\t".join(errors)
                )
            )
        for module, tensor, arr in plan:  # every check passed: now copy
            module._copy_loaded(tensor, arr)
        return _IncompatibleKeys(missing, unexpected)

    # ----- repr --------------------------------------------------------------------------------------
    def _get_name(self) -> str:
        return type(self).__name__

    def extra_repr(self) -> str:
        """The layer's own settings inside its repr's parentheses, e.g. ``in_features=4, out_features=2``."""
        return ""

    def __repr__(self) -> str:
        extra = self.extra_repr()
        extra_lines = extra.split("\n") if extra else []
        child_lines = [f"({name}): {_addindent(repr(module), 2)}" for name, module in self._modules.items()]
        lines = extra_lines + child_lines
        main = self._get_name() + "("
        if lines:
            if len(extra_lines) == 1 and not child_lines:
                main += extra_lines[0]
            else:
                main += "\n  " + "\n  ".join(lines) + "\n"
        return main + ")"


def _is_dtype(name: str) -> bool:
    try:
        as_dtype(name)
    except DTypeError:
        return False
    return name.split(":")[0] not in ("cpu", "cuda")
