"""examples/gradient_flow.py: a plain net's gradient vanishes on its way to the input, a ResNet's does not."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scripts import load_script

gf = load_script("examples/gradient_flow.py")
SMALL = dict(blocks=4, channels=4, steps=3, batch_size=8)  # 9 conv layers; well under a second


def test_the_residual_net_keeps_its_first_layer_gradient() -> None:
    """Layer 1's gradient norm over layer 9's: in the plain net at least 100 times smaller than in the
    ResNet (measured: about 1e-4 against 1), at every step."""
    runs = gf.run(**SMALL)
    plain, res = runs["plain"].norms, runs["resnet"].norms
    assert plain.shape == res.shape == (SMALL["steps"], 2 * SMALL["blocks"] + 1)
    for step in range(SMALL["steps"]):
        plain_ratio, res_ratio = gf.first_to_last(plain[step]), gf.first_to_last(res[step])
        assert plain_ratio < res_ratio / 100, (step, plain_ratio, res_ratio)
        assert res_ratio > 0.1, (step, res_ratio)
    assert np.all(np.isfinite(runs["resnet"].losses))


def test_the_same_weights_at_the_start() -> None:
    """The two nets differ only by their skip connections: built from one seed, their weights are equal."""
    plain = gf.build_net(2, 4, residual=False)
    res = gf.build_net(2, 4, residual=True)
    for (name, p), (_, r) in zip(plain.named_parameters(), res.named_parameters(), strict=True):
        assert np.array_equal(p.numpy(), r.numpy()), name


def test_main_prints_the_table_and_saves_the_plot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "flow.png"
    argv = ["--blocks", "2", "--channels", "4", "--steps", "2", "--batch-size", "4", "--out", str(out)]
    assert gf.main(argv) == 0
    printed = capsys.readouterr().out
    assert "first/last" in printed and "resnet: loss" in printed
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert "plot skipped" in printed and not out.exists()
    else:
        assert out.exists() and out.stat().st_size > 1000


def test_the_default_picture_goes_to_a_new_run_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without --out or --docs the picture lands in runs/gradient_flow-<time>/, never over docs/."""
    pytest.importorskip("matplotlib")
    monkeypatch.chdir(tmp_path)
    assert gf.main(["--blocks", "1", "--channels", "2", "--steps", "1", "--batch-size", "2"]) == 0
    saved = list((tmp_path / "runs").glob("gradient_flow-*/gradient_flow.png"))
    assert len(saved) == 1 and f"saved {saved[0].relative_to(tmp_path)}" in capsys.readouterr().out
    assert not (tmp_path / "docs").exists()
    assert gf.DOCS_OUT == "docs/gradient_flow.png"
    with pytest.raises(SystemExit):
        gf.main(["--docs", "--out", "x.png"])


def test_the_first_batch_is_the_one_of_step_1() -> None:
    """first_batch (what tools/sync_guide.py measures the guide's table on) is what train draws first:
    its gradient norms at init are those of the script's step 1."""
    images, labels = gf.synthetic_data(64, 8, seed=3)
    net = gf.build_net(2, 4, residual=True, seed=3)
    x, y = gf.first_batch(images, labels, 8, seed=3)
    import minires as mr

    at_init = gf.gradient_norms_at_init(net, mr.tensor(x), mr.tensor(y))
    net = gf.build_net(2, 4, residual=True, seed=3)
    step_1 = gf.train(net, images, labels, steps=1, batch_size=8, lr=0.02, seed=3).norms[0]
    np.testing.assert_allclose(at_init, step_1, rtol=1e-6)


def test_fashion_mnist_when_present() -> None:
    """The optional data: runs when minires.data and the files are there (no download here)."""
    try:
        from minires.data import FashionMNIST

        FashionMNIST(root=None, train=True, download=False)
    except Exception as exc:  # noqa: BLE001 - any failure means "not available here"
        pytest.skip(f"Fashion-MNIST not available: {exc}")
    runs = gf.run(**SMALL, data="fashion-mnist")
    assert gf.first_to_last(runs["plain"].norms[0]) < gf.first_to_last(runs["resnet"].norms[0]) / 100
