"""``Conv2d``: 2-d convolution (cross-correlation) with PyTorch's constructor and default initialization;
``ZeroPad2d`` and ``ConstantPad2d``, the padding a convolution would otherwise do, as layers."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ...tensor import Tensor, zeros
from .. import functional as F
from .. import init
from ..module import Module
from ..parameter import Parameter


def _pair(x: Any) -> tuple:
    """3 -> (3, 3); an iterable stays as it is, as a tuple (PyTorch's _pair)."""
    return tuple(x) if isinstance(x, Iterable) else (x, x)


class Conv2d(Module):
    """y = conv2d(x, W) + b as ``torch.nn.Conv2d``, W of shape (out_channels, in_channels / groups, KH, KW).

    ``padding`` is an int, a pair, "valid" or "same" (stride 1 only); only padding_mode="zeros" is
    supported. Default initialization as PyTorch's: W ~ kaiming_uniform_(a=sqrt(5)), i.e.
    U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with fan_in = in_channels / groups * KH * KW, and b ~ the same.
    """

    def __init__(
        self,
        in_channels: int,
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
        super().__init__()
        if groups <= 0:
            raise ValueError(f"Conv2d: groups must be a positive integer, got groups={groups}")
        if in_channels % groups != 0:
            raise ValueError(
                f"Conv2d: in_channels must be divisible by groups, got {in_channels} and {groups}"
            )
        if out_channels % groups != 0:
            raise ValueError(
                f"Conv2d: out_channels must be divisible by groups, got {out_channels} and {groups}"
            )
        self.kernel_size, self.stride, self.dilation = _pair(kernel_size), _pair(stride), _pair(dilation)
        if isinstance(padding, str):
            if padding not in ("same", "valid"):
                raise ValueError(
                    f"Conv2d: invalid padding string {padding!r}, should be one of 'same', 'valid'"
                )
            if padding == "same" and any(s != 1 for s in self.stride):
                raise ValueError("Conv2d: padding='same' is not supported for strided convolutions")
            self.padding: tuple | str = padding
        else:
            self.padding = _pair(padding)
        if padding_mode in ("reflect", "replicate", "circular"):
            raise NotImplementedError(
                f"Conv2d: padding_mode={padding_mode!r} is not supported by minires; only 'zeros' is"
            )
        if padding_mode != "zeros":
            raise ValueError(
                "Conv2d: padding_mode must be one of 'zeros', 'reflect', 'replicate', 'circular' "
                f"(minires supports 'zeros'), but got padding_mode={padding_mode!r}"
            )
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.padding_mode = padding_mode
        self.transposed, self.output_padding = False, (0, 0)
        kh, kw = self.kernel_size
        self.weight = Parameter(
            zeros(out_channels, in_channels // groups, kh, kw, dtype=dtype, device=device)
        )
        if bias:
            self.bias = Parameter(zeros(out_channels, dtype=dtype, device=device))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init.default_weight_and_bias_(self.weight, self.bias, draw_bias_without_fan_in=False)

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002 - PyTorch's name
        return F.conv2d(input, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)

    def extra_repr(self) -> str:
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0,) * len(self.padding):
            s += f", padding={self.padding}"
        if self.dilation != (1,) * len(self.dilation):
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        return s


def _quad(padding: Any) -> tuple[int, int, int, int]:
    """3 -> (3, 3, 3, 3); (left, right, top, bottom) stays as it is."""
    if isinstance(padding, Iterable):
        padding = tuple(padding)
        if len(padding) != 4:
            raise ValueError(f"expected padding (left, right, top, bottom), got {padding!r}")
        return padding
    return (padding,) * 4


class ConstantPad2d(Module):
    """``ConstantPad2d(padding, value)`` as ``torch.nn.ConstantPad2d``: ``value`` added around the last two
    dims of a (N, C, H, W) or (C, H, W) input; ``padding`` an int or (left, right, top, bottom), negative
    amounts crop. The math is ``F.pad`` (minires/ops/shape.py)."""

    def __init__(self, padding: int | tuple[int, int, int, int], value: float) -> None:
        super().__init__()
        self.padding, self.value = _quad(padding), value

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002 - PyTorch's name
        return F.pad(input, self.padding, "constant", self.value)

    def extra_repr(self) -> str:
        return f"padding={self.padding}, value={self.value}"


class ZeroPad2d(ConstantPad2d):
    """``ZeroPad2d(padding)`` as ``torch.nn.ZeroPad2d``: ``ConstantPad2d(padding, 0.0)``."""

    def __init__(self, padding: int | tuple[int, int, int, int]) -> None:
        super().__init__(padding, 0.0)

    def extra_repr(self) -> str:
        return f"{self.padding}"
