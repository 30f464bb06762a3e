"""Running a learner's function on an exercise's cases and saying precisely what is wrong.

``check(exercise, fn)`` calls ``fn`` on each random case (fresh copies of the inputs: ``fn`` may write
into them), compares what it returns with minires's own backward on the same inputs, output by output,
and stops at the first case where something differs. The report names the case (its input shapes), and
for each output whether it is right, and if not: a missing output, a wrong shape, a NaN, or the largest
error with its index and both values, how many elements are off, and a hint when the error has a simple
form (a constant factor, a flipped sign, a transpose).
"""

from __future__ import annotations

import importlib.util
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .catalog import Exercise

RTOL, ATOL = 1e-6, 1e-9  # float64 throughout: a right answer is off by rounding only


@dataclass
class Report:
    """The verdict on one learner function: ``ok`` and the lines that explain it."""

    name: str
    ok: bool = True
    lines: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return "\n".join(self.lines)


def describe(case: dict[str, Any]) -> str:
    """``x (4, 3, 5, 5), gamma (3,), eps 1e-05``: arrays by shape, the rest by value."""
    return ", ".join(
        f"{k} {tuple(v.shape)}" if isinstance(v, np.ndarray) else f"{k} {v!r}" for k, v in case.items()
    )


def _copy(case: dict[str, Any]) -> dict[str, Any]:
    return {k: v.copy() if isinstance(v, np.ndarray) else v for k, v in case.items()}


def _as_outputs(result: Any, names: tuple[str, ...], as_dict: bool) -> tuple[dict[str, Any], list[str]]:
    """The learner's result as {output name: value}, and the problems with its form."""
    if as_dict:
        if not isinstance(result, dict):
            return {}, [f"returned a {type(result).__name__}, expected a dict with keys {list(names)}"]
        missing = [n for n in names if n not in result]
        extra = [k for k in result if k not in names]
        problems = [f"the dict has no key {n!r}" for n in missing]
        problems += [f"the dict has a key {k!r} that is not an output ({list(names)})" for k in extra]
        return {n: result[n] for n in names if n in result}, problems
    if len(names) == 1:
        result = (result,) if not isinstance(result, tuple) else result
    if not isinstance(result, tuple | list):
        return {}, [f"returned a {type(result).__name__}, expected a tuple ({', '.join(names)})"]
    if len(result) != len(names):
        return {}, [f"returned {len(result)} values, expected {len(names)}: ({', '.join(names)})"]
    return dict(zip(names, result, strict=True)), []


def _hint(yours: np.ndarray, expected: np.ndarray) -> str:
    """A guess at the kind of mistake, when the error has a simple form."""
    scale = float(np.abs(expected).max(initial=0.0))
    if scale == 0.0:
        return ""
    if np.allclose(yours, -expected, rtol=1e-6, atol=1e-9 * scale):
        return " (yours is the expected value with its sign flipped)"
    big = np.abs(expected) > 1e-3 * scale
    ratio = yours[big] / expected[big]
    if (
        ratio.size
        and np.allclose(ratio, ratio.flat[0], rtol=1e-6)
        and np.allclose(yours, ratio.flat[0] * expected)
    ):
        return (
            f" (yours is the expected value times {ratio.flat[0]:.6g} everywhere: a constant factor is off)"
        )
    return ""


def compare_output(name: str, yours: Any, expected: np.ndarray) -> str | None:
    """None when ``yours`` equals ``expected`` up to rounding; else what is wrong, in one line."""
    try:
        yours = np.asarray(yours, dtype=np.float64)
    except (TypeError, ValueError):
        return f"output {name!r} is a {type(yours).__name__}, not an array of numbers"
    if yours.shape != expected.shape:
        hint = ""
        if yours.ndim == expected.ndim and yours.shape == expected.shape[::-1] and yours.ndim > 1:
            hint = " (the axes reversed: a missing transpose?)"
        elif yours.size == expected.size:
            hint = " (the same number of elements: a reshape or transpose in the wrong order?)"
        return f"output {name!r} has shape {yours.shape}, expected {expected.shape}{hint}"
    nan = np.isnan(yours) & ~np.isnan(expected)
    if nan.any():
        where = tuple(int(i) for i in np.argwhere(nan)[0])
        return f"output {name!r} has {int(nan.sum())} NaN values, the first at index {where}"
    error = np.abs(yours - expected)
    allowed = ATOL + RTOL * np.abs(expected) + ATOL * float(np.abs(expected).max(initial=0.0))
    off = error > allowed
    if not off.any():
        return None
    worst = np.unravel_index(int(np.argmax(np.where(off, error, -1.0))), expected.shape)
    where = tuple(int(i) for i in worst)
    return (
        f"output {name!r} is wrong: max |yours - expected| = {float(error[worst]):.3e} at index {where} "
        f"(yours {float(yours[worst]):.6g}, expected {float(expected[worst]):.6g}); "
        f"{int(off.sum())} of {off.size} elements are off{_hint(yours, expected)}"
    )


def check(exercise: Exercise, fn: Callable[..., Any], seed: int = 0) -> Report:
    """Run ``fn`` on every case of ``exercise`` against minires's backward; the report of the first case
    that fails, or of the pass."""
    report = Report(exercise.name)
    cases = exercise.cases(np.random.default_rng(seed))
    worst = 0.0
    for number, case in enumerate(cases, 1):
        where = f"case {number} of {len(cases)} ({describe(case)})"
        expected = exercise.reference(**_copy(case))
        try:
            result = fn(**_copy(case))
        except NotImplementedError:
            report.ok = False
            report.lines.append(f"{exercise.name}: not written yet (the function raises NotImplementedError)")
            return report
        except Exception as exc:  # the learner's bug, reported with the line it came from
            report.ok = False
            frame = traceback.extract_tb(exc.__traceback__)[-1]
            report.lines.append(
                f"{exercise.name}: {where}: raised {type(exc).__name__}: {exc} "
                f"(at {Path(frame.filename).name}, line {frame.lineno}: {frame.line})"
            )
            return report
        outputs, problems = _as_outputs(result, exercise.outputs, exercise.returns_dict)
        verdicts = {n: compare_output(n, outputs[n], expected[n]) for n in exercise.outputs if n in outputs}
        if problems or any(verdicts.values()):
            report.ok = False
            report.lines.append(f"{exercise.name}: FAILED on {where}:")
            report.lines += [f"  {p}" for p in problems]
            report.lines += [f"  {wrong or f'output {n!r} is right'}" for n, wrong in verdicts.items()]
            return report
        for n in exercise.outputs:
            worst = max(
                worst, float(np.abs(np.asarray(outputs[n], dtype=np.float64) - expected[n]).max(initial=0.0))
            )
    report.lines.append(
        f"{exercise.name}: passed: all {len(cases)} cases agree with minires's backward "
        f"(largest difference {worst:.1e}; outputs {', '.join(exercise.outputs)})"
    )
    return report


class LearnerFileError(Exception):
    """The learner's file cannot be run: missing, or it raised when imported, or lacks the function."""

    def __init__(self, message: str, usage: bool = False) -> None:
        super().__init__(message)
        self.usage = usage  # a missing file is a usage error (exit 2); a broken one is a wrong answer


def load_function(path: str | Path, name: str) -> Callable[..., Any]:
    """The function ``name`` defined in the Python file at ``path``."""
    path = Path(path)
    if not path.is_file():
        raise LearnerFileError(f"no such file: {path}", usage=True)
    spec = importlib.util.spec_from_file_location(f"_learner_{name}", path)
    if spec is None or spec.loader is None:
        raise LearnerFileError(f"{path} cannot be loaded as a Python module (is it a .py file?)", usage=True)
    module: ModuleType = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise LearnerFileError(f"{path} raised {type(exc).__name__} when run: {exc}") from exc
    fn = getattr(module, name, None)
    if not callable(fn):
        defined = sorted(k for k, v in vars(module).items() if callable(v) and not k.startswith("_"))
        raise LearnerFileError(f"{path} defines no function {name}(...); it defines {defined or 'none'}")
    return fn
