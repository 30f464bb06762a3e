"""Bad input fails early and clearly, driven by the op table's ``bad`` cases (tests/op_table.py).

Each case is a call that must raise its exception class (ShapeError, DTypeError, ... from
minires/errors.py, or a ValueError/TypeError/IndexError that minires raises itself) with the op's name
and the offending shape or value in the message. No raw NumPy (or CuPy) error may escape: the exception
must be raised by minires's own code, of one of those classes, with the op named.
"""

from __future__ import annotations

import os
import traceback
from typing import Any

import numpy as np
import pytest
from op_table import OPS, OPS_BY_NAME, BadInput

import minires
from minires import errors

MINIRES_DIR = os.path.dirname(os.path.abspath(minires.__file__))
# Built-in classes that minires may raise directly (its own classes derive from them, and from RuntimeError).
BUILTIN_OK = (ValueError, TypeError, IndexError)


def _problem(case: BadInput, device: str) -> str | None:
    """What is wrong with how ``case`` fails, or None when it fails as it should."""
    try:
        case.call(device)
        if device == "cuda":  # checks of device values are deferred to the next synchronization
            minires.cuda.synchronize()
    except Exception as exc:  # noqa: BLE001 - every exception is inspected below
        kind, message = type(exc), str(exc)
        shown = f"{kind.__module__}.{kind.__name__}: {message}"
        if not isinstance(exc, case.exc):
            return f"raised {shown}; expected {case.exc.__name__}"
        if kind.__module__ != errors.__name__ and kind not in BUILTIN_OK:
            return f"raised {shown}: not one of minires's errors (a raw library error escaped)"
        frame = traceback.extract_tb(exc.__traceback__)[-1]
        if not os.path.abspath(frame.filename).startswith(MINIRES_DIR + os.sep):
            return f"raised {shown} in {frame.filename}:{frame.lineno}, not by minires"
        missing = [m for m in case.match if m not in message]
        if missing:
            return f"raised {shown}; the message lacks {missing}"
        return None
    return f"raised nothing; expected {case.exc.__name__} naming {list(case.match)}"


@pytest.mark.parametrize("name", [row.name for row in OPS if row.bad])
def test_bad_input(name: str, backend: str) -> None:
    problems = [f"{case.what}: {p}" for case in OPS_BY_NAME[name].bad if (p := _problem(case, backend))]
    assert not problems, f"{name}:\n  " + "\n  ".join(problems)


@pytest.mark.parametrize(
    "index",
    [[3], (slice(None), [0, -4]), (Ellipsis, [5])],
    ids=["list", "tuple with a list", "ellipsis then a list"],
)
@pytest.mark.parametrize("as_tensor", [False, True], ids=["raw", "tensor"])
def test_setitem_refuses_an_index_past_the_axis(backend: str, index: Any, as_tensor: bool) -> None:
    """``x[index] = v`` raises IndexError, as NumPy and PyTorch do, where CuPy would wrap the index
    around the axis and write the wrong element."""
    x = minires.zeros(3, 3, device=backend)
    if as_tensor:  # each list as an integer tensor on the device
        as_tensor_index = lambda i: minires.tensor(i, device=backend) if isinstance(i, list) else i  # noqa: E731
        index = as_tensor_index(index) if isinstance(index, list) else tuple(map(as_tensor_index, index))
    with pytest.raises(IndexError, match="out of bounds for axis"):
        x[index] = 1.0
    assert not x.numpy().any()


# Required by the issue: each of these must be one of the table's cases.
REQUIRED = {
    "conv2d": [
        "input channels differ from the weight's",
        "groups do not divide the input channels",
        "kernel larger than the padded input",
        "stride 0",
    ],
    "linear": ["in_features mismatch"],
    "add": ["shapes that do not broadcast", "backward on a non-scalar without gradient"],
    "mul": ["shapes that do not broadcast"],
    "matmul": ["inner sizes differ"],
    "cross_entropy": ["a target past the last class", "float targets"],
    "reshape": ["wrong number of elements"],
    "sum": ["dim out of range"],
    "mean": ["dim out of range"],
    "softmax": ["dim out of range"],
    "log_softmax": ["dim out of range"],
    "batch_norm": ["running_mean of the wrong size"],
    "dropout": ["p above 1", "p below 0"],
    "max_pool2d": ["padding over half the kernel"],
    "avg_pool2d": ["padding over half the kernel"],
}


def test_required_cases_are_in_the_table() -> None:
    missing = [
        f"{name}: {what}"
        for name, whats in REQUIRED.items()
        for what in whats
        if what not in {case.what for case in OPS_BY_NAME[name].bad}
    ]
    assert not missing, missing


def test_the_checker_rejects_a_raw_numpy_error() -> None:
    """An error raised outside minires, a message that lacks what it must name, no error: all caught."""
    raw = BadInput("raw", lambda d: np.ones(3) + np.ones(4), ValueError, ("add",))
    assert "not by minires" in (_problem(raw, "cpu") or "")
    vague = BadInput("vague", lambda d: minires.ones(2, 3).reshape(4, 2), ValueError, ("reshape", "(9, 9)"))
    assert "lacks" in (_problem(vague, "cpu") or "")
    silent = BadInput("silent", lambda d: minires.ones(2, 3).reshape(3, 2), ValueError, ("reshape",))
    assert "raised nothing" in (_problem(silent, "cpu") or "")
