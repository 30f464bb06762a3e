"""Lazy layers, as ``torch.nn.modules.lazy``: ``LazyConv2d``, ``LazyBatchNorm2d`` and ``LazyLinear`` infer
``in_channels``, ``num_features`` and ``in_features`` from their first input.

Until that first forward their parameters (and LazyBatchNorm2d's running statistics) are
``UninitializedParameter`` / ``UninitializedBuffer`` objects (see ``parameter.py``): they have a dtype and
a device but no shape, and reading their data raises. The d2l book's flow::

    net = nn.Sequential(nn.LazyConv2d(64, 7, 2, 3), nn.LazyBatchNorm2d(), ..., nn.LazyLinear(10))
    net.double()                        # optional: dtype and device are remembered for later
    net(torch.zeros(1, 1, 96, 96))      # the dry run: every lazy layer sees its input, then becomes plain
    net.apply(init_cnn)                 # type(m) == nn.Conv2d holds now
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)

At the first call a forward pre-hook (``_infer_parameters``) reads the size off the input, materializes
each parameter in place with that shape (the object stays the same), runs the plain layer's
``reset_parameters`` (the same random draws, so with the same ``mr.manual_seed`` a lazy layer equals the
plain layer built with the inferred size), removes the hook and changes the instance's class to
``cls_to_become``: afterwards ``type(m) is nn.Conv2d``, and calls take the plain, hook-free path.

Because materializing keeps the Parameter objects, an optimizer built before the dry run holds the
materialized parameters afterwards and works, as in PyTorch (its ``step`` skips them until they have a
gradient); building it after the dry run, as torch's documentation recommends, is the clearer order.

``state_dict()`` of an uninitialized layer holds the uninitialized objects themselves (they have no data
to copy), as torch's does. ``load_state_dict`` into an uninitialized layer materializes each entry with
the loaded shape, once every key has been checked (torch's ``_lazy_load_hook``); an uninitialized entry
leaves an uninitialized tensor as it is, and cannot be loaded into an initialized one. The class changes
at the next forward, as in torch.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from ...errors import ShapeError
from ...tensor import Tensor, int64, tensor
from ..module import Module, _checkpoint_array_or_error, _is_uninitialized_entry
from ..parameter import UninitializedBuffer, UninitializedParameter, is_lazy
from .conv import Conv2d
from .linear import Linear
from .norm import BatchNorm2d, _BatchNorm


class LazyModuleMixin:
    """The lazy part of a lazy layer, as ``torch.nn.modules.lazy.LazyModuleMixin``; the layer class
    (``LazyConv2d(LazyModuleMixin, Conv2d)``) sets ``cls_to_become`` and defines
    ``initialize_parameters(input)``, which materializes the uninitialized tensors and resets them."""

    cls_to_become: type[Module] | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._initialize_hook = self.register_forward_pre_hook(self._infer_parameters, with_kwargs=True)

    def __setattr__(self, name: str, value: Any) -> None:
        if is_lazy(value):  # so that its errors can say whose it is
            value._owner = f"{type(self).__name__}.{name}"
        super().__setattr__(name, value)

    def has_uninitialized_params(self) -> bool:
        """Whether a parameter or buffer of this module (not of its children) is still uninitialized."""
        return any(is_lazy(t) for t in itertools.chain(self._parameters.values(), self._buffers.values()))

    def initialize_parameters(self, *args: Any, **kwargs: Any) -> None:
        """Materialize and initialize the parameters from the first input (each lazy layer defines it)."""
        raise NotImplementedError(f"initialize_parameters is not implemented for {type(self).__name__}")

    def _infer_parameters(self, module: Module, args: tuple, kwargs: dict | None = None) -> None:
        """The forward pre-hook of the first call: initialize, then become ``cls_to_become``."""
        module.initialize_parameters(*args, **(kwargs or {}))
        if module.has_uninitialized_params():
            raise RuntimeError(f"module {self._get_name()} has not been fully initialized")
        module._initialize_hook.remove()
        delattr(module, "_initialize_hook")
        if module.cls_to_become is not None:
            module.__class__ = module.cls_to_become

    def _materialize_and_reset(self, shapes: dict[str, tuple[int, ...]]) -> None:
        """Materialize the uninitialized tensors among ``shapes`` (name -> shape), then run the plain
        layer's ``reset_parameters``. What ``load_state_dict(strict=False)`` loaded already (part of the
        layer) keeps its loaded values; torch fails there."""
        tensors = [t for t in (getattr(self, name) for name in shapes) if t is not None]
        loaded = [(t, t.data.copy()) for t in tensors if not is_lazy(t)]
        for name, shape in shapes.items():
            t = getattr(self, name)
            if is_lazy(t):
                t.materialize(shape)
        self.reset_parameters()
        for t, arr in loaded:
            t.data[...] = arr

    # ----- Module's per-tensor steps, for the uninitialized tensors -----------------------------------
    def _apply_to_tensor(self, t: Tensor, fn: Any) -> None:
        """``Module.to`` / ``double()`` before the first forward: the dtype and device are remembered."""
        if is_lazy(t):
            t._convert(fn)
        else:
            super()._apply_to_tensor(t, fn)

    def _save_to_state_dict(self, destination: dict, prefix: str, keep_vars: bool) -> None:
        """As Module's, with an uninitialized tensor put in as it is (it has no data to copy)."""
        for name, param in self._parameters.items():
            if param is not None:
                destination[prefix + name] = param if keep_vars or is_lazy(param) else param.numpy()
        for name, buf in self._buffers.items():
            if buf is not None and name not in self._non_persistent_buffers_set:
                destination[prefix + name] = buf if keep_vars or is_lazy(buf) else buf.numpy()

    def _checkpoint_entry(self, key: str, tensor: Tensor, value: Any, errors: list[str]) -> np.ndarray | None:
        """An uninitialized tensor takes an array of any shape (it is materialized with that shape when
        the copies are made); an uninitialized entry leaves it uninitialized."""
        if not is_lazy(tensor):
            return super()._checkpoint_entry(key, tensor, value, errors)
        if _is_uninitialized_entry(value):
            return None
        return _checkpoint_array_or_error(key, value, errors)

    def _copy_loaded(self, tensor: Tensor, arr: np.ndarray) -> None:
        if is_lazy(tensor):
            tensor.materialize(arr.shape)
        super()._copy_loaded(tensor, arr)


class LazyConv2d(LazyModuleMixin, Conv2d):
    """A ``Conv2d`` whose ``in_channels`` is ``input.shape[1]`` of its first input (``input.shape[0]``
    for an unbatched (C, H, W) one), as ``torch.nn.LazyConv2d``; it becomes a ``Conv2d`` then.
    The other arguments are Conv2d's (padding_mode "zeros" only, as minires's Conv2d)."""

    cls_to_become = Conv2d

    def __init__(
        self,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] | str = 0,
        dilation: int | tuple[int, int] = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        # Conv2d checks the arguments; bias=False: no tensor that would be replaced at once.
        super().__init__(
            0,
            out_channels,
            kernel_size,
            stride,
            padding,
            dilation,
            groups,
            False,
            padding_mode,
            device,
            dtype,
        )
        self.weight = UninitializedParameter(device=device, dtype=dtype)
        if bias:
            self.bias = UninitializedParameter(device=device, dtype=dtype)

    def reset_parameters(self) -> None:
        if not self.has_uninitialized_params() and self.in_channels != 0:
            super().reset_parameters()

    def initialize_parameters(self, input: Tensor, *args: Any, **kwargs: Any) -> None:  # noqa: A002
        if input.ndim not in (3, 4):
            raise ShapeError(
                f"Expected 3D (unbatched) or 4D (batched) input to {type(self).__name__}, "
                f"but got input of size: {input.shape}"
            )
        in_channels = input.shape[1] if input.ndim == 4 else input.shape[0]
        if self.has_uninitialized_params():
            if in_channels % self.groups != 0:
                raise ValueError(
                    f"{type(self).__name__}: in_channels must be divisible by groups, got in_channels="
                    f"{in_channels} (input of shape {input.shape}) and groups={self.groups}"
                )
            self.in_channels = in_channels
            self._materialize_and_reset(
                {
                    "weight": (self.out_channels, in_channels // self.groups, *self.kernel_size),
                    "bias": (self.out_channels,),
                }
            )
        elif self.in_channels == 0:  # loaded by load_state_dict before the first forward
            self.in_channels = self.weight.shape[1] * self.groups


class LazyLinear(LazyModuleMixin, Linear):
    """A ``Linear`` whose ``in_features`` is ``input.shape[-1]`` of its first input, as
    ``torch.nn.LazyLinear``; it becomes a ``Linear`` then."""

    cls_to_become = Linear

    def __init__(self, out_features: int, bias: bool = True, device: Any = None, dtype: Any = None) -> None:
        super().__init__(0, out_features, False, device, dtype)
        self.weight = UninitializedParameter(device=device, dtype=dtype)
        if bias:
            self.bias = UninitializedParameter(device=device, dtype=dtype)

    def reset_parameters(self) -> None:
        if not self.has_uninitialized_params() and self.in_features != 0:
            super().reset_parameters()

    def initialize_parameters(self, input: Tensor) -> None:  # noqa: A002 - PyTorch's name
        if self.has_uninitialized_params():
            self.in_features = input.shape[-1]
            self._materialize_and_reset(
                {"weight": (self.out_features, self.in_features), "bias": (self.out_features,)}
            )
        if self.in_features == 0:  # loaded by load_state_dict before the first forward
            if input.shape[-1] != self.weight.shape[-1]:
                raise ShapeError(
                    f"The in_features inferred from input: {input.shape[-1]} is not equal to in_features "
                    f"from self.weight: {self.weight.shape[-1]}"
                )
            self.in_features = input.shape[-1]


class _LazyNormBase(LazyModuleMixin, _BatchNorm):
    """A batch norm whose ``num_features`` is ``input.shape[1]`` of its first input."""

    def __init__(
        self,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        device: Any = None,
        dtype: Any = None,
        *,
        bias: bool = True,
    ) -> None:
        # affine and track_running_stats False: no tensors that would be replaced at once
        super().__init__(0, eps, momentum, False, False, device, dtype, bias=False)
        self.affine, self.track_running_stats = affine, track_running_stats
        if affine:
            self.weight = UninitializedParameter(device=device, dtype=dtype)
            if bias:
                self.bias = UninitializedParameter(device=device, dtype=dtype)
        if track_running_stats:
            self.running_mean = UninitializedBuffer(device=device, dtype=dtype)
            self.running_var = UninitializedBuffer(device=device, dtype=dtype)
            self.num_batches_tracked = tensor(0, dtype=int64, device=device)

    def reset_parameters(self) -> None:
        if not self.has_uninitialized_params() and self.num_features != 0:
            super().reset_parameters()

    def initialize_parameters(self, input: Tensor) -> None:  # noqa: A002 - PyTorch's name
        self._check_input_dim(input)
        if self.has_uninitialized_params():
            c = self.num_features = input.shape[1]
            shapes = {"weight": (c,), "bias": (c,), "running_mean": (c,), "running_var": (c,)}
            self._materialize_and_reset({**shapes, "num_batches_tracked": ()})
        elif self.num_features == 0:  # loaded by load_state_dict before the first forward
            self.num_features = input.shape[1]


class LazyBatchNorm2d(_LazyNormBase):
    """A ``BatchNorm2d`` whose ``num_features`` is ``input.shape[1]`` of its first (N, C, H, W) input, as
    ``torch.nn.LazyBatchNorm2d``; it becomes a ``BatchNorm2d`` then."""

    cls_to_become = BatchNorm2d
    _expected_ndim = (4,)
