"""Argument checks shared by the ops: one place for each rule, each error naming the op.

    int_pair("max_pool2d", "stride", 2)          -> (2, 2)
    pair(3), padding4(((1, 2), (0, 0)))          -> the im2col helpers' forms, unchecked
    check_vector("batch_norm", "weight", w, n, x) -> a Tensor of shape (n,) with x's dtype and device, or None

The ops raise the errors PyTorch raises as ``RuntimeError`` as minires's ``ShapeError``, ``DTypeError`` and
``DeviceError`` (each a subclass of the Python error a user would catch), with the expected and actual
shapes or values in the message.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import DeviceError, DTypeError, ShapeError
from ..tensor import Tensor

Pair = tuple[int, int]
Padding = tuple[Pair, Pair]  # ((top, bottom), (left, right))


def pair(value: int | tuple[int, ...]) -> Pair:
    """3 -> (3, 3); (3,) -> (3, 3); (3, 5) -> (3, 5). Unchecked: for values already checked."""
    if isinstance(value, (tuple, list)):
        return (int(value[0]), int(value[-1]))
    return (int(value), int(value))


def padding4(padding: int | tuple) -> Padding:
    """int, (ph, pw) or ((top, bottom), (left, right)) -> ((top, bottom), (left, right)). Unchecked."""
    if isinstance(padding, (tuple, list)) and len(padding) == 2 and isinstance(padding[0], (tuple, list)):
        return (int(padding[0][0]), int(padding[0][1])), (int(padding[1][0]), int(padding[1][1]))
    ph, pw = pair(padding)
    return (ph, ph), (pw, pw)


def int_pair(op: str, name: str, value: Any) -> Pair:
    """An int or a sequence of 1 or 2 ints as a pair, else a ShapeError naming ``op`` and ``name``."""
    seq = tuple(value) if isinstance(value, (tuple, list)) else (value,)
    if len(seq) not in (1, 2) or not all(hasattr(v, "__index__") and not isinstance(v, bool) for v in seq):
        raise ShapeError(f"{op}: expected {name} to be an int or a pair of ints, got {value!r}")
    return pair(seq)


def check_vector(op: str, name: str, t: Any, n: int, input: Tensor, per: str = "channel") -> Tensor | None:  # noqa: A002
    """``t`` is None, or a Tensor of shape (n,) (one value per ``per`` of ``input``) with input's dtype
    and device; otherwise a TypeError, ShapeError, DTypeError or DeviceError naming ``op`` and ``name``."""
    return check_like(op, name, t, input, (n,), lambda: f"one per {per} of input {input.shape}")


def check_like(
    op: str,
    name: str,
    t: Any,
    input: Tensor,  # noqa: A002
    shape: tuple[int, ...],
    what: str | Callable[[], str],
) -> Tensor | None:
    """``t`` is None, or a Tensor of ``shape`` (``what`` says why, in the error: a string, or a call that
    makes it, so that a check that passes formats nothing) with input's dtype and device; otherwise a
    TypeError, ShapeError, DTypeError or DeviceError naming ``op`` and ``name``."""
    if t is None:
        return None
    if not isinstance(t, Tensor):
        raise TypeError(f"{op}: expected {name} to be a Tensor or None, got {type(t).__name__}")
    if t.shape != tuple(shape):
        why = what() if callable(what) else what
        raise ShapeError(
            f"{op}: expected {name} of shape {tuple(shape)}, {why}, got {name} of shape {t.shape}"
        )
    if t.dtype != input.dtype:
        raise DTypeError(f"{op}: {name} dtype {t.dtype} does not match input dtype {input.dtype}")
    if t.device != input.device:
        raise DeviceError(f"{op}: {name} is on {t.device} but input is on {input.device}")
    return t
