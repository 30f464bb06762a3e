"""``python -m minires.explain``: every op it lists prints its derivation and passes its gradcheck; every
row of the op table has an entry (or is an alias of one); and a wrong backward is reported as one."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from op_table import OPS

import minires as mr
from minires import explain
from minires.function import Function
from minires.ops import registry
from minires.ops.registry import Entry, Registry

ROOT = Path(__file__).resolve().parent.parent


def _listed(capsys: pytest.CaptureFixture[str]) -> list[str]:
    assert explain.main(["--list"]) == 0
    return [line.split()[0] for line in capsys.readouterr().out.splitlines()]


def test_list_names_every_entry_and_alias(capsys: pytest.CaptureFixture[str]) -> None:
    assert _listed(capsys) == [*registry.names(), *registry.aliases()]


def test_every_op_table_row_has_an_entry() -> None:
    missing = [row.name for row in OPS if registry.find(row.name) is None]
    assert not missing, f"op-table rows without an entry in minires/ops/registry.py: {missing}"


def test_every_alias_names_an_entry() -> None:
    assert all(target in registry.names() for target in registry.aliases().values()), registry.aliases()


@pytest.mark.parametrize("name", [*registry.names(), *registry.aliases()])
def test_each_listed_op_prints_its_derivation_and_passes(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert explain.main([name]) == 0
    out = capsys.readouterr().out
    entry = registry.get(name)
    for source in entry.sources:
        assert explain.docstring(source) in out
    assert any(re.search(r"backward|dy/dx", explain.docstring(s), re.I) for s in entry.sources), (
        "no derivation"
    )
    diffs = [float(v) for v in re.findall(r"max \|analytic - numerical\| = (\S+),", out)]
    assert diffs and max(diffs) < 1e-6, out
    assert "passed" in out


# ----- a wrong backward is reported -------------------------------------------------------------------
class _WrongSigmoid(Function):
    """y = 1 / (1 + e^(-x)); the backward forgets a factor: dx = g * y (should be g * y * (1 - y))."""

    def forward(self, x: Any) -> Any:
        self.y = 1 / (1 + np.exp(-x))
        return self.y

    def backward(self, g: Any) -> Any:
        return g * self.y


BROKEN = Registry(
    [
        Entry(
            "wrong_sigmoid",
            (_WrongSigmoid,),
            "_WrongSigmoid()(x), x (3, 4)",
            lambda rng: (
                lambda x: _WrongSigmoid()(x),
                [mr.tensor(rng.standard_normal((3, 4)), requires_grad=True)],
            ),
        )
    ]
)


def test_a_wrong_backward_fails_with_a_large_difference(capsys: pytest.CaptureFixture[str]) -> None:
    assert explain.main(["wrong_sigmoid"], registry=BROKEN) == 1
    out = capsys.readouterr().out
    assert "forgets a factor" in out  # the derivation is printed first
    relative = float(re.search(r"relative to max \|numerical\| \(\S+\) = (\S+)", out)[1])
    assert relative > 0.5, out  # y instead of y (1 - y): off by a factor 1 / (1 - y) > 1
    assert "FAILED" in out and "gradcheck: input 0" in out


def test_compare_measures_the_difference() -> None:
    fn, inputs = BROKEN.get("wrong_sigmoid").sample(np.random.default_rng([0, 1]))
    (report,) = explain.compare(fn, inputs)
    assert report.shape == (3, 4) and report.max_rel_diff > 0.5
    fn, inputs = registry.get("sigmoid").sample(np.random.default_rng([0, 1]))
    (report,) = explain.compare(fn, inputs)
    assert report.max_rel_diff < 1e-8


def test_an_unknown_op_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert explain.main(["no_such_op"]) == 2
    assert "--list" in capsys.readouterr().err


def test_python_dash_m() -> None:
    """The module runs as ``python -m minires.explain``."""
    env = {**os.environ, "PYTHONWARNINGS": "error"}
    done = subprocess.run(
        [sys.executable, "-m", "minires.explain", "relu"], cwd=ROOT, capture_output=True, text=True, env=env
    )
    assert done.returncode == 0, done.stderr
    assert "ReLU" in done.stdout and "passed" in done.stdout
