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


# ----- the configuration to check ---------------------------------------------------------------------
def _checked(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith("checked: ")]


def test_conv2d_in_a_given_configuration_prints_it_and_its_shapes(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["conv2d", "--stride", "2,1", "--padding", "0", "--dilation", "2", "--groups", "2", "--seed", "3"]
    assert explain.main(argv) == 0
    out = capsys.readouterr().out
    assert _checked(out) == [
        "checked: F.conv2d(x, w, b, stride=(2, 1), padding=(0, 0), dilation=(2, 2), groups=2)"
    ]
    shapes = re.search(
        r"inputs x \((.*?)\) float64, w \((.*?)\) float64, b \((\d+),\) float64 -> output \((.*?)\)", out
    )
    N, C, H, W = map(int, shapes[1].split(", "))
    OC, Cg, KH, KW = map(int, shapes[2].split(", "))
    assert (C, Cg, OC % 2, int(shapes[3])) == (4, 2, 0, OC)  # groups=2: C/G input channels per filter
    # the printed output shape is torch's formula for this configuration
    assert tuple(map(int, shapes[4].split(", "))) == (
        N,
        OC,
        (H - 2 * 2 - 1) // 2 + 1,
        (W - 2 * 2 - 1) // 1 + 1,
    )
    assert "seed 3" in out and "passed" in out


@pytest.mark.parametrize(
    "argv",
    [
        ["max_pool2d", "--kernel-size", "2", "--stride", "1", "--dilation", "2", "--padding", "1"],
        ["avg_pool2d", "--kernel-size", "3,2", "--stride", "1", "--padding", "1"],
        ["conv2d", "--groups", "3", "--kernel-size", "1"],
    ],
)
def test_pools_and_convs_pass_in_other_configurations(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert explain.main(argv) == 0
    out = capsys.readouterr().out
    assert len(_checked(out)) == 1 and "passed" in out


def test_a_wrong_backward_in_one_configuration_fails(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A max-pool backward that ignores the dilation passes the default check and fails the dilated one."""
    from minires.ops import pool

    right = pool.MaxPool2d.backward

    def forgets_dilation(self, g):
        if self.dilation != (1, 1):
            return right(self, g) * 0 + right(self, g).mean()  # wrong in every element
        return right(self, g)

    monkeypatch.setattr(pool.MaxPool2d, "backward", forgets_dilation)
    assert explain.main(["max_pool2d"]) == 0
    assert explain.main(["max_pool2d", "--dilation", "2"]) == 1
    out = capsys.readouterr().out
    assert "dilation=(2, 2)" in _checked(out)[-1] and "FAILED" in out


def test_each_gelu_form_is_checked_on_its_own(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from minires.ops import activation

    right = activation.GELU.backward
    monkeypatch.setattr(
        activation.GELU,
        "backward",
        lambda self, g: right(self, g) * (1.5 if self.approximate == "tanh" else 1.0),
    )
    assert explain.main(["gelu"]) == 1
    out = capsys.readouterr().out
    assert [c.split(",")[1] for c in _checked(out)] == [" approximate='none')", " approximate='tanh')"]
    none_part, tanh_part = out.split("approximate='tanh'), x (3, 4)\n", 1)
    assert "passed" in none_part and "FAILED" in tanh_part  # the wrong form is the one reported
    assert explain.main(["gelu", "--approximate", "none"]) == 0
    assert explain.main(["gelu", "--approximate", "tanh"]) == 1


def test_dtype_float32_compares_the_float32_backward(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert explain.main(["conv2d", "--dtype", "float32"]) == 0
    out = capsys.readouterr().out
    assert "the backward also in float32" in out
    assert len(re.findall(r"gradient dtype float32, .* \(ok", out)) == 3
    from minires.ops import activation

    right = activation.ReLU.backward

    def half_precision_in_float32(self, g):  # rounds to float16 only when run in float32
        dx = right(self, g)
        return dx.astype(np.float16).astype(np.float32) if dx.dtype == np.float32 else dx

    monkeypatch.setattr(activation.ReLU, "backward", half_precision_in_float32)
    assert explain.main(["relu"]) == 0  # float64 alone does not see it
    assert explain.main(["relu", "--dtype", "float32"]) == 1
    assert "FAILED: the float32 backward differs from the float64 one" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["relu", "--stride", "2"], "relu takes none of the configuration options; got --stride"),
        (["avg_pool2d", "--dilation", "2"], "avg_pool2d takes only --stride, --padding, --kernel-size"),
        (["gelu", "--groups", "2"], "gelu takes only --approximate; got --groups"),
        (["max_pool2d", "--padding", "3"], "padding should be at most half of kernel size"),
        (["conv2d", "--groups", "0"], "groups must be a positive int"),
    ],
)
def test_an_option_the_op_does_not_take_exits_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert explain.main(argv) == 2
    captured = capsys.readouterr()
    assert message in captured.err and captured.out == ""


def test_a_malformed_pair_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        explain.main(["conv2d", "--stride", "2,x"])
    assert info.value.code == 2 and "expected an int or a pair like 2,1" in capsys.readouterr().err


# ----- did you mean ---------------------------------------------------------------------------------------
def _keys() -> list[str]:
    return [*registry.names(), *registry.aliases(), *registry.api()]


@pytest.mark.parametrize("key", _keys())
def test_every_name_in_another_case_or_with_a_typo_is_suggested(key: str) -> None:
    assert key in explain.suggestions(key.upper(), registry.REGISTRY)
    assert key in explain.suggestions(key.capitalize() + "_", registry.REGISTRY) or len(key) < 4
    if len(key) >= 5:  # two letters swapped in the middle
        i = len(key) // 2
        typo = key[: i - 1] + key[i] + key[i - 1] + key[i + 1 :]
        assert key in explain.suggestions(typo, registry.REGISTRY), typo


def test_an_unknown_name_suggests_the_close_ones(capsys: pytest.CaptureFixture[str]) -> None:
    assert explain.main(["Conv2d"]) == 2
    err = capsys.readouterr().err
    assert "unknown op 'Conv2d'; did you mean conv2d" in err and "--list" in err
    assert explain.main(["max_pool"]) == 2
    assert "did you mean max_pool2d" in capsys.readouterr().err
    assert explain.main(["zzzzzz"]) == 2
    assert "did you mean" not in capsys.readouterr().err
