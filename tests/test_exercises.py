"""The exercises: every worked solution passes its own checker and agrees with PyTorch's autograd; the
templates and deliberately wrong answers fail, with a message that says which output is wrong and how;
the command line lists, shows and checks, with exit codes 0 (pass), 1 (wrong), 2 (usage)."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from minires import exercises
from minires.exercises import checking
from minires.exercises.__main__ import main

ROOT = Path(__file__).resolve().parent.parent
NAMES = exercises.names()


def test_there_are_eight_exercises_each_with_a_template_and_a_solution() -> None:
    assert NAMES == [
        "batchnorm_backward",
        "col2im",
        "maxpool_tie_backward",
        "softmax_cross_entropy",
        "residual_fanout",
        "conv2d_weight_grad",
        "adaptive_avg_pool2d_backward",
        "basic_block_backward",
    ]
    for name in NAMES:
        template = exercises.template_path(name).read_text()
        assert f"def {name}(" in template and "Return" in template and "raise NotImplementedError" in template
        assert f"def {name}(" in exercises.solution_path(name).read_text()


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("name", NAMES)
def test_each_solution_passes_its_checker(name: str, seed: int) -> None:
    report = exercises.check(exercises.get(name), exercises.solution(name), seed=seed)
    assert report.ok, str(report)
    assert str(report).startswith(f"{name}: passed: all 3 cases agree")


@pytest.mark.parametrize("name", NAMES)
def test_each_template_is_not_written_yet(name: str) -> None:
    report = exercises.check_file(name, exercises.template_path(name))
    assert (
        not report.ok and str(report) == f"{name}: not written yet (the function raises NotImplementedError)"
    )


# ----- the solutions against PyTorch ------------------------------------------------------------------
def _t(torch: Any, a: np.ndarray, grad: bool = False) -> Any:
    return torch.tensor(a, dtype=torch.float64, requires_grad=grad)


def torch_reference(torch: Any, name: str, case: dict[str, Any]) -> dict[str, np.ndarray]:
    """The exercise computed with torch's autograd: the expected outputs, independently of minires."""
    F = torch.nn.functional
    if name == "batchnorm_backward":
        x, gamma, beta = (
            _t(torch, case["x"], True),
            _t(torch, case["gamma"], True),
            _t(torch, 0 * case["gamma"], True),
        )
        F.batch_norm(x, None, None, gamma, beta, training=True, eps=case["eps"]).backward(
            _t(torch, case["g"])
        )
        return {"dx": x.grad, "dgamma": gamma.grad, "dbeta": beta.grad}
    if name == "col2im":
        N, C, H, W = case["x_shape"]
        cols = case["cols"].reshape(case["cols"].shape[0], N, -1).transpose(1, 0, 2)  # torch's (N, C*K*K, L)
        k, s, p = case["kernel_size"], case["stride"], case["padding"]
        return {"x": F.fold(_t(torch, cols), (H, W), k, padding=p, stride=s)}
    if name == "maxpool_tie_backward":
        x = _t(torch, case["x"], True)
        F.max_pool2d(x, case["kernel_size"], case["stride"]).backward(_t(torch, case["g"]))
        return {"dx": x.grad}
    if name == "softmax_cross_entropy":
        z = _t(torch, case["logits"], True)
        loss = F.cross_entropy(z, torch.tensor(case["target"]))
        loss.backward()
        return {"loss": loss, "dlogits": z.grad}
    if name == "residual_fanout":
        x, w = _t(torch, case["x"], True), _t(torch, case["w"], True)
        (x + torch.relu(x @ w)).backward(_t(torch, case["g"]))
        return {"dx": x.grad, "dw": w.grad}
    if name == "conv2d_weight_grad":
        x, g = case["x"], case["g"]
        k = case["kernel_size"]
        w = _t(torch, np.zeros((g.shape[1], x.shape[1], k, k)), True)
        F.conv2d(_t(torch, x), w, None, case["stride"], case["padding"]).backward(_t(torch, g))
        return {"dw": w.grad}
    if name == "adaptive_avg_pool2d_backward":
        x = _t(torch, np.zeros(case["x_shape"]), True)
        F.adaptive_avg_pool2d(x, case["output_size"]).backward(_t(torch, case["g"]))
        return {"dx": x.grad}
    assert name == "basic_block_backward"
    p = {k: _t(torch, v, True) for k, v in case["params"].items()}
    x = _t(torch, case["x"], True)

    def bn(h: Any, i: int) -> Any:
        return F.batch_norm(h, None, None, p[f"bn{i}.weight"], p[f"bn{i}.bias"], training=True, eps=1e-5)

    r1 = torch.relu(bn(F.conv2d(x, p["conv1.weight"], padding=1), 1))
    torch.relu(bn(F.conv2d(r1, p["conv2.weight"], padding=1), 2) + x).backward(_t(torch, case["g"]))
    return {"x": x.grad, **{k: v.grad for k, v in p.items()}}


@pytest.mark.parametrize("name", NAMES)
def test_each_solution_agrees_with_torch(torch: Any, name: str) -> None:
    exercise, solve = exercises.get(name), exercises.solution(name)
    for case in exercise.cases(np.random.default_rng(7)):
        expected = torch_reference(torch, name, case)
        result = solve(**{k: v.copy() if isinstance(v, np.ndarray) else v for k, v in case.items()})
        if len(exercise.outputs) == 1:
            result = (result,)
        got = result if exercise.returns_dict else dict(zip(exercise.outputs, result, strict=True))
        assert set(got) == set(expected) == set(exercise.outputs)
        for key in exercise.outputs:
            np.testing.assert_allclose(
                np.asarray(got[key]),
                expected[key].detach().numpy(),
                rtol=1e-9,
                atol=1e-12,
                err_msg=f"{name}: {key}",
            )


def test_the_tie_cases_really_have_ties() -> None:
    """Otherwise the max-pool exercise would not test the subgradient at a tie."""
    exercise = exercises.get("maxpool_tie_backward")
    for case in exercise.cases(np.random.default_rng(0)):
        x, k = case["x"], case["kernel_size"]
        window = x[:, :, :k, :k].reshape(*x.shape[:2], -1)
        assert ((window == window.max(axis=-1, keepdims=True)).sum(axis=-1) > 1).any()


# ----- wrong answers are reported precisely -------------------------------------------------------------
def _scaled(name: str, factor: float) -> Callable[..., Any]:
    """The solution with its first output multiplied by ``factor``."""
    exercise, solve = exercises.get(name), exercises.solution(name)

    def wrong(**case: Any) -> Any:
        out = solve(**case)
        first = exercise.outputs[0]
        if exercise.returns_dict:
            return {**out, first: out[first] * factor}
        return (np.asarray(out[0]) * factor, *out[1:]) if len(exercise.outputs) > 1 else out * factor

    return wrong


@pytest.mark.parametrize("name", NAMES)
def test_a_scaled_first_output_is_named_with_its_factor(name: str) -> None:
    exercise = exercises.get(name)
    report = exercises.check(exercise, _scaled(name, 1.5))
    text = str(report)
    assert not report.ok
    assert text.startswith(f"{name}: FAILED on case 1 of 3 (")
    first, *rest = exercise.outputs
    assert f"output '{first}' is wrong: max |yours - expected| = " in text
    assert "times 1.5 everywhere: a constant factor is off" in text
    for other in rest:
        assert f"output '{other}' is right" in text


def test_batchnorm_without_the_mean_terms_names_dx_and_where() -> None:
    def forgot_the_mean_terms(x, gamma, g, eps):
        axes = (0, 2, 3)
        inv_std = 1 / np.sqrt(x.var(axis=axes, keepdims=True) + eps)
        x_hat = (x - x.mean(axis=axes, keepdims=True)) * inv_std
        return g * gamma.reshape(1, -1, 1, 1) * inv_std, (g * x_hat).sum(axis=axes), g.sum(axis=axes)

    report = exercises.check(exercises.get("batchnorm_backward"), forgot_the_mean_terms)
    lines = str(report).splitlines()
    assert lines[0] == (
        "batchnorm_backward: FAILED on case 1 of 3 (x (4, 3, 5, 5), gamma (3,), g (4, 3, 5, 5), eps 1e-05):"
    )
    assert lines[1].startswith("  output 'dx' is wrong: max |yours - expected| = ")
    assert " at index (" in lines[1] and "(yours " in lines[1] and "elements are off" in lines[1]
    assert lines[2:] == ["  output 'dgamma' is right", "  output 'dbeta' is right"]


def test_splitting_a_tie_evenly_is_a_subgradient_but_not_pytorchs() -> None:
    def split_evenly(x, g, kernel_size, stride):
        N, C, H, W = x.shape
        K, S = kernel_size, stride
        OH, OW = (H - K) // S + 1, (W - K) // S + 1
        y = np.full((N, C, OH, OW), -np.inf)
        for kh in range(K):
            for kw in range(K):
                y = np.maximum(y, x[:, :, kh : kh + S * (OH - 1) + 1 : S, kw : kw + S * (OW - 1) + 1 : S])
        count = np.zeros_like(y)
        for kh in range(K):
            for kw in range(K):
                count += x[:, :, kh : kh + S * (OH - 1) + 1 : S, kw : kw + S * (OW - 1) + 1 : S] == y
        dx = np.zeros_like(x)
        for kh in range(K):
            for kw in range(K):
                window = x[:, :, kh : kh + S * (OH - 1) + 1 : S, kw : kw + S * (OW - 1) + 1 : S]
                dx[:, :, kh : kh + S * (OH - 1) + 1 : S, kw : kw + S * (OW - 1) + 1 : S] += (
                    (window == y) * g / count
                )
        return dx

    text = str(exercises.check(exercises.get("maxpool_tie_backward"), split_evenly))
    assert "output 'dx' is wrong" in text and "constant factor" not in text


def test_a_wrong_shape_a_nan_a_wrong_count_and_an_exception() -> None:
    conv = exercises.get("conv2d_weight_grad")
    solve = exercises.solution("conv2d_weight_grad")
    text = str(exercises.check(conv, lambda **c: solve(**c).transpose(1, 0, 2, 3)))
    assert "output 'dw' has shape (3, 4, 3, 3), expected (4, 3, 3, 3)" in text
    text = str(exercises.check(conv, lambda **c: solve(**c).T))
    assert "(the axes reversed: a missing transpose?)" in text

    fanout = exercises.get("residual_fanout")

    def with_nan(x, w, g):
        dx, dw = exercises.solution("residual_fanout")(x, w, g)
        dw[1, 2] = np.nan
        return dx, dw

    assert "output 'dw' has 1 NaN values, the first at index (1, 2)" in str(exercises.check(fanout, with_nan))
    text = str(exercises.check(fanout, lambda x, w, g: g))
    assert "returned a ndarray, expected a tuple (dx, dw)" in text
    text = str(exercises.check(fanout, lambda x, w, g: (g, g, g)))
    assert "returned 3 values, expected 2: (dx, dw)" in text

    def raises(x, w, g):
        return x @ g  # (N, D) @ (N, D): a shape error

    text = str(exercises.check(fanout, raises))
    assert "raised ValueError: matmul" in text and "line" in text and "return x @ g" in text


def test_a_block_answer_missing_a_key_says_which() -> None:
    solve = exercises.solution("basic_block_backward")

    def no_bn2_bias(**case: Any) -> dict:
        out = solve(**case)
        del out["bn2.bias"]
        return out

    text = str(exercises.check(exercises.get("basic_block_backward"), no_bn2_bias))
    assert "the dict has no key 'bn2.bias'" in text and "output 'conv1.weight' is right" in text


def test_the_checker_does_not_let_the_learner_change_the_inputs() -> None:
    def in_place(x, w, g):
        x *= 0  # would spoil the reference if it shared the arrays
        return exercises.solution("residual_fanout")(x, w, g)

    assert "output 'dw' is wrong" in str(exercises.check(exercises.get("residual_fanout"), in_place))


# ----- the command line ----------------------------------------------------------------------------------
def test_list_prints_one_name_a_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--list"]) == 0
    assert capsys.readouterr().out.splitlines() == NAMES


def test_show_then_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", "residual_fanout"]) == 0
    template = capsys.readouterr().out
    assert template == exercises.template_path("residual_fanout").read_text()
    mine = tmp_path / "mine.py"
    mine.write_text(template)
    assert main(["check", "residual_fanout", str(mine)]) == 1
    assert "not written yet" in capsys.readouterr().out
    mine.write_text(
        template.replace('raise NotImplementedError("write residual_fanout")', "return g, x.T @ g")
    )
    assert main(["check", "residual_fanout", str(mine)]) == 1
    out = capsys.readouterr().out
    assert "output 'dx' is wrong" in out and "output 'dw' is wrong" in out
    mine.write_text(exercises.solution_path("residual_fanout").read_text())
    assert main(["check", "residual_fanout", str(mine)]) == 0
    assert "passed" in capsys.readouterr().out
    assert main(["solution", "col2im"]) == 0 and "adjoint" in capsys.readouterr().out


def test_usage_errors_exit_2_and_broken_files_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check", "Col2im", str(tmp_path / "x.py")]) == 2
    assert "did you mean col2im?" in capsys.readouterr().err
    assert main(["check", "col2im", str(tmp_path / "missing.py")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main([]) == 2
    with pytest.raises(SystemExit) as info:
        main(["check", "col2im"])
    assert info.value.code == 2
    capsys.readouterr()
    broken = tmp_path / "broken.py"
    broken.write_text("import numpy as np\n1 / 0\n")
    assert main(["check", "col2im", str(broken)]) == 1
    assert "raised ZeroDivisionError when run" in capsys.readouterr().err
    other = tmp_path / "other.py"
    other.write_text("def col2img(cols):\n    return cols\n")
    assert main(["check", "col2im", str(other)]) == 1
    assert "defines no function col2im(...); it defines ['col2img']" in capsys.readouterr().err


def test_python_dash_m_checks_a_solution_file() -> None:
    env = {**os.environ, "PYTHONWARNINGS": "error"}
    path = exercises.solution_path("basic_block_backward")
    done = subprocess.run(
        [sys.executable, "-m", "minires.exercises", "check", "basic_block_backward", str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "basic_block_backward: passed" in done.stdout


def test_the_package_never_imports_torch() -> None:
    for path in Path(exercises.__file__).parent.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                mods = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                assert not any(m.split(".")[0] == "torch" for m in mods), f"{path} imports torch"


def test_compare_output_tolerates_rounding_only() -> None:
    expected = np.linspace(-1, 1, 12).reshape(3, 4)
    assert checking.compare_output("y", expected + 1e-13, expected) is None
    assert "is wrong" in checking.compare_output("y", expected + 1e-4, expected)
    assert "sign flipped" in checking.compare_output("y", -expected, expected)
