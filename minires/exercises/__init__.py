"""Exercises: write a backward pass by hand, and have it checked against minires's own.

    python -m minires.exercises --list                      the exercises, one name a line
    python -m minires.exercises show NAME                   the file to start from: the task in a docstring
    python -m minires.exercises check NAME yourfile.py      run your function against minires's backward
    python -m minires.exercises solution NAME               a worked solution, with its derivation

Each exercise is one function on NumPy arrays (the template, ``templates/NAME.py``, states its inputs,
their shapes and what to return). ``check`` runs it on a few random float64 cases and compares every
output with what minires's ops and ``backward`` compute on the same inputs; it names the first output
that differs and how: a wrong shape, a NaN, or the largest error, where it is and both values. Exit status
0 when it passes, 1 when it does not, 2 for a usage error (an unknown exercise, a missing file).

The solutions (``solutions/NAME.py``) are NumPy only, as a learner would write them; each docstring holds
the derivation. In the order of the list: batch norm, col2im, the max-pool subgradient at a tie, softmax
cross-entropy, the residual add's fan-out, conv's dW, adaptive pooling, and a whole BasicBlock.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from .catalog import EXERCISES, Exercise
from .checking import LearnerFileError, Report, check, load_function

HERE = Path(__file__).resolve().parent


def names() -> list[str]:
    """The exercises' names, in order."""
    return [e.name for e in EXERCISES]


def get(name: str) -> Exercise:
    """The exercise called ``name``; KeyError naming the exercises otherwise."""
    for exercise in EXERCISES:
        if exercise.name == name:
            return exercise
    raise KeyError(f"no exercise {name!r}; the exercises are {names()}")


def template_path(name: str) -> Path:
    """The file a learner starts from."""
    return HERE / "templates" / f"{get(name).name}.py"


def solution_path(name: str) -> Path:
    """The worked solution."""
    return HERE / "solutions" / f"{get(name).name}.py"


def solution(name: str) -> Any:
    """The solution's function."""
    module = importlib.import_module(f"{__name__}.solutions.{get(name).name}")
    return getattr(module, name)


def check_file(name: str, path: str | Path, seed: int = 0) -> Report:
    """``check`` of the function ``name`` defined in the file at ``path``."""
    return check(get(name), load_function(path, name), seed=seed)


__all__ = [
    "EXERCISES",
    "Exercise",
    "LearnerFileError",
    "Report",
    "check",
    "check_file",
    "get",
    "load_function",
    "names",
    "solution",
    "solution_path",
    "template_path",
]
