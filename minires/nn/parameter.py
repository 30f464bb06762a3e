"""``Parameter``: a Tensor that a Module registers as one of its learnable weights; and the uninitialized
parameters and buffers of the lazy layers (``UninitializedParameter``, ``UninitializedBuffer``).

A Parameter is an ordinary leaf Tensor (``requires_grad=True`` by default) whose type tells ``Module``'s
attribute assignment to file it under ``_parameters``, so that it shows up in ``parameters()`` and in the
``state_dict()``. Ops on a Parameter give plain Tensors.

An uninitialized one (torch.nn.parameter's semantics) has a dtype, a device and ``requires_grad``, but no
shape and no data yet: it holds an empty placeholder array that only carries the dtype and device (so that
``model.double()`` or ``model.to("cuda")`` before the first forward is remembered). Reading its ``data``
or ``shape``, and so any op on it, raises ``UninitializedParameterError``. ``materialize(shape)`` gives it
zeros of that shape and turns the very same object into a plain ``Parameter`` (or ``Tensor``), so that
whatever holds it (a module, an optimizer built before the dry run) holds the materialized one.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import backend
from ..errors import DTypeError
from ..tensor import Tensor, zeros


class Parameter(Tensor):
    """``Parameter(data=None, requires_grad=True)``, as ``torch.nn.Parameter``.

    ``data`` (a Tensor or an array) is shared, not copied, as PyTorch shares the storage; ``None`` gives
    an empty float32 tensor. The result is always a leaf, even when ``data`` came out of an op.
    """

    def __init__(self, data: Any = None, requires_grad: bool = True) -> None:
        if data is None:
            data = np.empty(0, dtype=np.float32)
        super().__init__(data.data if isinstance(data, Tensor) else data, requires_grad=requires_grad)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()


class UninitializedParameterError(ValueError, RuntimeError):
    """An uninitialized parameter or buffer (a lazy layer's, before its first forward) was used.

    PyTorch raises RuntimeError for its shape and ValueError for an op on it; this is both."""


class UninitializedTensorMixin:
    """What ``UninitializedParameter`` and ``UninitializedBuffer`` share (torch's class of the same name).

    The placeholder array lives in the instance ``__dict__`` under ``"data"``, where ``Tensor`` keeps its
    array; while the object is uninitialized the ``data`` property below hides it, and once
    ``materialize`` has changed the class, ``Tensor``'s plain attribute lookup finds the real array there.
    """

    cls_to_become: type = Tensor
    _owner: str = ""  # "LazyConv2d.weight", set by the lazy module that holds it (for the error messages)

    def _uninitialized_error(self, what: str) -> UninitializedParameterError:
        kind = "parameter" if isinstance(self, Parameter) else "buffer"
        owner = f" {self._owner}" if self._owner else ""
        return UninitializedParameterError(
            f"Can't access {what} of the uninitialized {kind}{owner}: a lazy module infers the shapes of its "
            "parameters and buffers from its first input. Run a forward pass first (a dry run such as "
            "net(x) on one batch) to initialize them, then use them. (This also happens in "
            "load_state_dict when an uninitialized entry is loaded into an initialized model.)"
        )

    @property
    def data(self) -> Any:
        raise self._uninitialized_error("the data")

    @data.setter
    def data(self, value: Any) -> None:
        self.__dict__["data"] = value

    @property
    def _placeholder(self) -> Any:
        """The empty array that carries the dtype and device this tensor will have."""
        return self.__dict__["data"]

    @property
    def shape(self) -> tuple[int, ...]:
        raise self._uninitialized_error("the shape")

    @property
    def dtype(self) -> np.dtype:
        return self._placeholder.dtype

    @property
    def device(self) -> str:
        return backend.device_of(self._placeholder)

    @property
    def requires_grad(self) -> bool:
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, flag: bool) -> None:
        if flag and self.dtype.kind not in "fc":
            raise DTypeError(
                f"requires_grad: only floating-point tensors can require gradients, got {self.dtype}"
            )
        self._requires_grad = bool(flag)

    def _convert(self, fn: Any) -> None:
        """Apply ``fn`` (array -> array, as in ``Module._apply``) to the placeholder: a new dtype or device
        for the data this tensor will get."""
        self.__dict__["data"] = fn(self._placeholder)

    def materialize(self, shape: tuple[int, ...], device: Any = None, dtype: Any = None) -> None:
        """Give this tensor zeros of ``shape`` (with its own dtype and device unless given) and make it a
        plain ``Parameter`` / ``Tensor``, in place: the object stays the same."""
        dtype = self.dtype if dtype is None else dtype
        device = self.device if device is None else device
        self.__dict__["data"] = zeros(tuple(shape), dtype=dtype, device=device).data
        self.__dict__.pop("_owner", None)
        self.__class__ = self.cls_to_become  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<{type(self).__name__}>"


def is_lazy(param: Any) -> bool:
    """Whether ``param`` is an ``UninitializedParameter`` or an ``UninitializedBuffer``."""
    return isinstance(param, UninitializedTensorMixin)


class UninitializedParameter(UninitializedTensorMixin, Parameter):
    """``UninitializedParameter(requires_grad=True, device=None, dtype=None)``, as torch's: a parameter
    whose shape is not known yet. Only its dtype, device and ``requires_grad`` can be read or changed
    (``Module.to``, ``double()``, ``requires_grad_``); ``materialize(shape)`` makes it a ``Parameter``."""

    cls_to_become = Parameter

    def __init__(self, requires_grad: bool = True, device: Any = None, dtype: Any = None) -> None:
        super().__init__(zeros(0, dtype=dtype, device=device), requires_grad=requires_grad)


class UninitializedBuffer(UninitializedTensorMixin, Tensor):
    """``UninitializedBuffer(requires_grad=False, device=None, dtype=None, persistent=True)``, as torch's:
    a buffer whose shape is not known yet; ``materialize(shape)`` makes it a plain ``Tensor``."""

    cls_to_become = Tensor

    def __init__(
        self, requires_grad: bool = False, device: Any = None, dtype: Any = None, persistent: bool = True
    ) -> None:
        super().__init__(zeros(0, dtype=dtype, device=device).data, requires_grad=requires_grad)
        self.persistent = persistent
