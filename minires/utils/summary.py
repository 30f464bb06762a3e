"""``summary(model, input_shape)``: each layer's output shape and parameter count, as torchsummary prints.

One forward pass on an all-zero input (zeros, so the global random stream is not consumed), in eval mode
and under ``no_grad``, with a forward pre-hook and a forward hook on every module: the pre-hook opens a
row when a module is called (so rows come in call order, a container before what it calls), the hook
fills in the output's shape. Afterwards every hook is removed and every module's training flag is put
back as it was, also when the forward pass fails. The table is printed and returned as a ``Summary``
(``s.rows``, ``s.total_params``, ``s.trainable_params``; ``str(s)`` is the table).

    >>> s = mr.utils.summary(mr.models.d2l_resnet18(), (1, 224, 224))  # prints the table     # doctest: +SKIP
    -------------------------------------------------------------
    Layer (type)                   Output Shape           Param #
    =============================================================
    (Sequential)                   (1, 10)                      0
      0 (Sequential)               (1, 64, 56, 56)              0
        0.0 (Conv2d)               (1, 64, 112, 112)        3,200
        0.1 (BatchNorm2d)          (1, 64, 112, 112)          128
    ...
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..grad_mode import no_grad
from ..tensor import Tensor, as_dtype, zeros

Shape = tuple[int, ...]


@dataclass
class LayerRow:
    """One call of one module.

    name:          the module's qualified name in the model (``"layer1.0.conv1"``; ``""`` for the model)
    type:          its class name (``"Conv2d"``)
    depth:         how deeply the call is nested: 0 for the model, 1 for what its forward calls, ...
    output_shape:  the output's shape; a list of shapes for a tuple or list of Tensors; None otherwise
    params:        the number of parameters the module owns itself (its children's are on their rows)
    repeated:      True from the second call on of a module called several times (a shared ReLU): its
                   parameters are counted on its first row only
    """

    name: str
    type: str
    depth: int
    output_shape: Shape | list[Shape] | None
    params: int
    repeated: bool = False

    @property
    def label(self) -> str:
        """``"layer1.0.conv1 (Conv2d)"``, or ``"(Conv2d)"`` for the model itself."""
        return f"{self.name} ({self.type})" if self.name else f"({self.type})"


@dataclass
class Summary:
    """What ``summary`` returns; ``str(s)`` (and ``print(s)``, and the REPL) shows the table.

    rows:                  one ``LayerRow`` per module call, in call order, the model's own first
    input_shape:           the shape of the input the model was run on, batch included
    output_shape:          the model's output shape (a list of shapes for several outputs)
    total_params:          ``sum(p.numel() for p in model.parameters())`` (shared parameters once)
    trainable_params:      the same over the parameters with ``requires_grad``
    non_trainable_params:  the rest
    params_bytes:          the memory the parameters take
    """

    rows: list[LayerRow]
    input_shape: Shape
    output_shape: Shape | list[Shape] | None
    total_params: int
    trainable_params: int
    non_trainable_params: int
    params_bytes: int

    def __str__(self) -> str:
        labels = ["  " * row.depth + row.label for row in self.rows]
        shapes = [_format_shape(row.output_shape) for row in self.rows]
        counts = ["(recursive)" if row.repeated and row.params else f"{row.params:,}" for row in self.rows]
        header = ("Layer (type)", "Output Shape", "Param #")
        w0 = max(len(s) for s in [header[0], *labels]) + 4
        w1 = max(len(s) for s in [header[1], *shapes]) + 4
        w2 = max(len(s) for s in [header[2], *counts])
        width = w0 + w1 + w2
        lines = ["-" * width, f"{header[0]:<{w0}}{header[1]:<{w1}}{header[2]:>{w2}}", "=" * width]
        lines += [f"{a:<{w0}}{b:<{w1}}{c:>{w2}}" for a, b, c in zip(labels, shapes, counts, strict=True)]
        lines += [
            "=" * width,
            f"Total params: {self.total_params:,}",
            f"Trainable params: {self.trainable_params:,}",
            f"Non-trainable params: {self.non_trainable_params:,}",
            "-" * width,
            f"Input shape: {_format_shape(self.input_shape)}",
            f"Output shape: {_format_shape(self.output_shape)}",
            f"Params size (MB): {self.params_bytes / 2**20:,.2f}",
            "-" * width,
        ]
        return "\n".join(lines)

    __repr__ = __str__


def summary(
    model: Any,
    input_shape: Sequence[int],
    batch_size: int | None = None,
    dtype: Any = None,
    device: Any = None,
    verbose: bool = True,
) -> Summary:
    """Run ``model`` once on zeros of ``input_shape``; print its table (as torchsummary and torchinfo do,
    unless ``verbose=False``) and return it as a ``Summary`` (``str()`` of which is the table).

    input_shape:  four entries are the whole batch ``(N, C, H, W)``, as torchinfo takes it; any other
                  length is one sample, ``(C, H, W)`` or ``(features,)``, as torchsummary takes it, and
                  ``batch_size`` samples (default 1) are put in front.
    batch_size:   the batch to prepend to a one-sample shape (with a four-entry shape: None or N).
    dtype:        the input's dtype; default the dtype of the model's first floating-point parameter
                  (float32 when it has none).
    device:       the input's device; default the device of the model's first parameter ("cpu" without).
    verbose:      print the table.

    The model runs in eval mode under ``no_grad``; its modules' training flags are restored afterwards.
    """
    shape = _full_shape(input_shape, batch_size)
    params = list(model.parameters())
    if dtype is None:
        dtype = next((p.dtype for p in params if p.dtype.kind == "f"), "float32")
    if device is None:
        device = params[0].device if params else "cpu"
    x = zeros(*shape, dtype=as_dtype(dtype), device=device)

    named = list(model.named_modules())
    rows: list[LayerRow] = []
    stack: list[LayerRow] = []  # the rows of the calls now running, innermost last
    seen: set[int] = set()

    def make_hooks(name: str, module: Any) -> tuple[Any, Any]:
        def pre_hook(mod: Any, args: tuple) -> None:
            row = LayerRow(
                name=name,
                type=type(mod).__name__,
                depth=len(stack),
                output_shape=None,
                params=sum(p.numel() for p in mod.parameters(recurse=False)),
                repeated=id(mod) in seen,
            )
            seen.add(id(mod))
            rows.append(row)
            stack.append(row)

        def hook(mod: Any, args: tuple, output: Any) -> None:
            stack.pop().output_shape = _shape_of(output)

        return pre_hook, hook

    training = [(module, module.training) for _, module in named]
    handles = []
    try:
        for name, module in named:
            pre_hook, hook = make_hooks(name, module)
            handles.append(module.register_forward_pre_hook(pre_hook))
            handles.append(module.register_forward_hook(hook))
        model.eval()
        with no_grad():
            try:
                output = model(x)
            except Exception as exc:
                if stack and hasattr(exc, "add_note"):  # Python 3.11+
                    row = stack[-1]
                    exc.add_note(
                        f"summary: the forward pass failed in layer {row.label}, model input {shape}"
                    )
                raise
    finally:
        for handle in handles:
            handle.remove()
        for module, flag in training:
            module.training = flag

    trainable = sum(p.numel() for p in params if p.requires_grad)
    total = sum(p.numel() for p in params)
    result = Summary(
        rows=rows,
        input_shape=shape,
        output_shape=_shape_of(output),
        total_params=total,
        trainable_params=trainable,
        non_trainable_params=total - trainable,
        params_bytes=sum(p.data.nbytes for p in params),
    )
    if verbose:
        print(result)
    return result


def _full_shape(input_shape: Sequence[int], batch_size: int | None) -> Shape:
    try:
        shape = tuple(int(n) for n in input_shape)
        ok = all(n > 0 and n == m for n, m in zip(shape, input_shape, strict=True)) and len(shape) > 0
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(
            f"summary: input_shape must be a non-empty tuple of positive ints, got {input_shape!r}"
        )
    if batch_size is not None and (not isinstance(batch_size, int) or batch_size <= 0):
        raise ValueError(f"summary: batch_size must be a positive int, got {batch_size!r}")
    if len(shape) == 4:
        if batch_size is not None and batch_size != shape[0]:
            raise ValueError(
                f"summary: input_shape {shape} already holds the batch (N={shape[0]}), "
                f"but batch_size={batch_size} was given; pass (C, H, W) with a batch_size, or (N, C, H, W)"
            )
        return shape
    return (1 if batch_size is None else batch_size, *shape)


def _shape_of(output: Any) -> Shape | list[Shape] | None:
    if isinstance(output, Tensor):
        return tuple(output.shape)
    if isinstance(output, (tuple, list)) and output and all(isinstance(o, Tensor) for o in output):
        return [tuple(o.shape) for o in output]
    return None


def _format_shape(shape: Shape | list[Shape] | None) -> str:
    if shape is None:
        return "--"
    if isinstance(shape, list):
        return ", ".join(str(s) for s in shape)
    return str(shape)
