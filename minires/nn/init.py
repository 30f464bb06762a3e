"""``minires.nn.init``: fill a weight in place with PyTorch's initialization schemes.

Every function writes into ``tensor.data`` (outside the graph, as under ``torch.no_grad()``), draws from
``minires.rng.generator(device)`` (so ``mr.manual_seed`` makes it reproducible), and returns the tensor.

Fans, as PyTorch computes them for a weight of shape (out, in, *kernel):
    fan_in = in * prod(kernel),   fan_out = out * prod(kernel).
Kaiming (He et al. 2015) keeps the variance of the activations (mode "fan_in") or of the gradients
("fan_out") through a layer followed by the nonlinearity:  std = gain / sqrt(fan), with gain
sqrt(2 / (1 + a^2)) for (leaky) ReLU. Xavier (Glorot and Bengio 2010):
    std = gain * sqrt(2 / (fan_in + fan_out)).
A uniform U(-bound, bound) has std bound / sqrt(3), hence bound = sqrt(3) * std.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

from .. import rng
from ..tensor import Tensor

__all__ = [
    "calculate_gain",
    "constant_",
    "kaiming_normal_",
    "kaiming_uniform_",
    "normal_",
    "ones_",
    "trunc_normal_",
    "uniform_",
    "xavier_normal_",
    "xavier_uniform_",
    "zeros_",
]

_LINEAR_FNS = (
    "linear",
    "conv1d",
    "conv2d",
    "conv3d",
    "conv_transpose1d",
    "conv_transpose2d",
    "conv_transpose3d",
)


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """The factor by which ``nonlinearity`` scales the standard deviation that keeps activations stable:
    1 for linear/conv/sigmoid, 5/3 for tanh, sqrt(2) for relu, sqrt(2 / (1 + slope^2)) for leaky_relu
    (slope ``param``, default 0.01), 3/4 for selu."""
    if nonlinearity in _LINEAR_FNS or nonlinearity == "sigmoid":
        return 1
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            negative_slope = 0.01
        elif not isinstance(param, bool) and isinstance(param, (int, float)):
            negative_slope = param
        else:
            raise ValueError(f"negative_slope {param} not a valid number")
        return math.sqrt(2.0 / (1 + negative_slope**2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"Unsupported nonlinearity {nonlinearity}")


def _calculate_fan_in_and_fan_out(tensor: Tensor) -> tuple[int, int]:
    if tensor.ndim < 2:
        raise ValueError(
            "Fan in and fan out can not be computed for tensor with fewer than 2 dimensions, "
            f"got shape {tensor.shape}"
        )
    receptive_field_size = math.prod(tensor.shape[2:])
    return tensor.shape[1] * receptive_field_size, tensor.shape[0] * receptive_field_size


def _calculate_correct_fan(tensor: Tensor, mode: str) -> int:
    mode = mode.lower()
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"Mode {mode} not supported, please use one of ['fan_in', 'fan_out']")
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return fan_in if mode == "fan_in" else fan_out


def _sample_dtype(tensor: Tensor) -> Any:
    """The dtype to draw in: the tensor's own for float32/float64 (no float64 detour for float32)."""
    return tensor.dtype if tensor.dtype.name in ("float32", "float64") else "float64"


def _write(tensor: Tensor, values: Any) -> Tensor:
    tensor.data[...] = values
    return tensor


def uniform_(tensor: Tensor, a: float = 0.0, b: float = 1.0) -> Tensor:
    """Fill with U(a, b)."""
    u = rng.generator(tensor.device).random(tensor.shape, dtype=_sample_dtype(tensor))
    return _write(tensor, u * (b - a) + a)


def normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0) -> Tensor:
    """Fill with N(mean, std^2)."""
    z = rng.generator(tensor.device).standard_normal(tensor.shape, dtype=_sample_dtype(tensor))
    return _write(tensor, z * std + mean)


def trunc_normal_(
    tensor: Tensor, mean: float = 0.0, std: float = 1.0, a: float = -2.0, b: float = 2.0
) -> Tensor:
    """Fill with N(mean, std^2) conditioned on [a, b] (absolute bounds, as PyTorch's): values that fall
    outside are drawn again until none is left (a few rounds when [a, b] holds most of the mass)."""
    gen = rng.generator(tensor.device)
    dtype = _sample_dtype(tensor)
    values = gen.standard_normal(tensor.shape, dtype=dtype) * std + mean
    for _ in range(1000):
        outside = (values < a) | (values > b)
        n = int(outside.sum())
        if n == 0:
            break
        values[outside] = gen.standard_normal(n, dtype=dtype) * std + mean
    return _write(tensor, values.clip(a, b))


def constant_(tensor: Tensor, val: float) -> Tensor:
    return _write(tensor, val)


def ones_(tensor: Tensor) -> Tensor:
    return _write(tensor, 1)


def zeros_(tensor: Tensor) -> Tensor:
    return _write(tensor, 0)


def _no_elements(tensor: Tensor) -> bool:
    if 0 in tensor.shape:
        warnings.warn("Initializing zero-element tensors is a no-op", stacklevel=3)
        return True
    return False


def kaiming_uniform_(
    tensor: Tensor, a: float = 0, mode: str = "fan_in", nonlinearity: str = "leaky_relu"
) -> Tensor:
    """Fill with U(-bound, bound), bound = gain * sqrt(3 / fan) (He et al. 2015)."""
    if _no_elements(tensor):
        return tensor
    std = calculate_gain(nonlinearity, a) / math.sqrt(_calculate_correct_fan(tensor, mode))
    bound = math.sqrt(3.0) * std
    return uniform_(tensor, -bound, bound)


def kaiming_normal_(
    tensor: Tensor, a: float = 0, mode: str = "fan_in", nonlinearity: str = "leaky_relu"
) -> Tensor:
    """Fill with N(0, std^2), std = gain / sqrt(fan) (He et al. 2015; the ResNet paper uses mode="fan_out",
    nonlinearity="relu")."""
    if _no_elements(tensor):
        return tensor
    std = calculate_gain(nonlinearity, a) / math.sqrt(_calculate_correct_fan(tensor, mode))
    return normal_(tensor, 0.0, std)


def xavier_uniform_(tensor: Tensor, gain: float = 1.0) -> Tensor:
    """Fill with U(-bound, bound), bound = gain * sqrt(6 / (fan_in + fan_out)) (Glorot and Bengio 2010)."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    std = gain * math.sqrt(2.0 / float(fan_in + fan_out))
    return uniform_(tensor, -math.sqrt(3.0) * std, math.sqrt(3.0) * std)


def xavier_normal_(tensor: Tensor, gain: float = 1.0) -> Tensor:
    """Fill with N(0, std^2), std = gain * sqrt(2 / (fan_in + fan_out)) (Glorot and Bengio 2010)."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    std = gain * math.sqrt(2.0 / float(fan_in + fan_out))
    return normal_(tensor, 0.0, std)


def default_weight_and_bias_(weight: Tensor, bias: Tensor | None, draw_bias_without_fan_in: bool) -> None:
    """The default initialization of PyTorch's Conv2d and Linear, in place: W ~ kaiming_uniform_(a=sqrt(5)),
    i.e. U(-1/sqrt(fan_in), 1/sqrt(fan_in)), and b ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)). When fan_in is 0
    (no input channels), Linear still draws b from U(0, 0) and Conv2d leaves it alone, as torch's two
    ``reset_parameters`` do (``draw_bias_without_fan_in``): the generator's later draws stay torch's."""
    kaiming_uniform_(weight, a=math.sqrt(5))
    if bias is None:
        return
    fan_in, _ = _calculate_fan_in_and_fan_out(weight)
    if fan_in > 0 or draw_bias_without_fan_in:
        bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
        uniform_(bias, -bound, bound)
