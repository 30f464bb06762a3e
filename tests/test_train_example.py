"""examples/train_fashion_mnist.py end to end, on a tiny synthetic IDX dataset the test writes: the run
folder, the log, resume giving the numbers of an uninterrupted run, the NaN stop, --target-acc; and a short
run on the real Fashion-MNIST files where they are installed.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest
from scripts import load_script

import minires as mr
from minires.data import idx_bytes

REAL_DIR = Path("/usr/share/datasets/fashion-mnist")


example = load_script("examples/train_fashion_mnist.py")


@pytest.fixture(scope="module")
def idx_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Ten classes, each a blocky random template plus noise, as uint8 IDX files: learnable in seconds."""
    root = tmp_path_factory.mktemp("idx")
    rng = np.random.default_rng(0)
    templates = np.kron(rng.standard_normal((10, 7, 7)), np.ones((4, 4)))  # (10, 28, 28)

    def split(n: int) -> tuple[np.ndarray, np.ndarray]:
        labels = rng.integers(0, 10, size=n).astype(np.uint8)
        images = 110 + 60 * templates[labels] + 40 * rng.standard_normal((n, 28, 28))
        return np.clip(images, 0, 255).astype(np.uint8), labels

    for prefix, n in (("train", 384), ("t10k", 128)):
        images, labels = split(n)
        (root / f"{prefix}-images-idx3-ubyte").write_bytes(idx_bytes(images))
        (root / f"{prefix}-labels-idx1-ubyte").write_bytes(idx_bytes(labels))
    return root


def quick_args(root: Path, out: Path, *extra: str) -> list[str]:
    return [
        "--dataset=idx",
        f"--data-root={root}",
        "--model=cifar_resnet20",
        "--batch-size=32",
        "--lr=0.1",
        "--warmup-epochs=0.5",
        "--augment=none",
        f"--out={out}",
        "--no-progress",
        *extra,
    ]


def read_metrics(run: Path) -> list[dict[str, str]]:
    with open(run / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_a_run_writes_its_folder_and_learns(
    idx_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    run = tmp_path / "run"
    assert example.main(quick_args(idx_root, run, "--epochs=4", "--target-acc=0.5")) == 0
    out = capsys.readouterr().out
    assert sorted(p for p in os.listdir(run) if not p.startswith(".")) == sorted(
        ["best.npz", "checkpoint.npz", "config.json", "metrics.csv"]
        + (["curves.png"] if "wrote" in out and "curves.png" in out else [])
    )
    rows = read_metrics(run)
    assert [r["epoch"] for r in rows] == ["1", "2", "3", "4"]
    assert list(rows[0]) == list(example.METRICS)
    assert float(rows[-1]["train_loss"]) < 0.5 * float(rows[0]["train_loss"])  # the loss falls at least 2x
    assert float(rows[-1]["test_acc"]) >= 0.5  # chance is 0.1
    assert out.count("train loss") == 4 and "per-class test accuracy" in out and "confusion matrix" in out
    assert "final test accuracy" in out
    config = json.loads((run / "config.json").read_text())
    assert config["model"] == "cifar_resnet20" and config["epochs"] == 4 and config["batch_size"] == 32
    checkpoint = mr.load(run / "checkpoint.npz")
    assert checkpoint["epoch"] == 4 and set(checkpoint) >= {
        "model",
        "optimizer",
        "scheduler",
        "rng",
        "train_loader",
    }
    best = mr.load(run / "best.npz")
    assert best["test_acc"] == max(float(r["test_acc"]) for r in rows)


def test_resume_gives_the_numbers_of_an_uninterrupted_run(idx_root: Path, tmp_path: Path) -> None:
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    augment = "--augment=crop+flip"  # the augmentation's draws must replay too
    assert example.main(quick_args(idx_root, whole, "--epochs=3", augment)) == 0
    assert example.main(quick_args(idx_root, parts, "--epochs=3", "--stop-after=1", augment)) == 0
    assert len(read_metrics(parts)) == 1
    assert example.main(["--resume", str(parts), "--no-progress"]) == 0
    columns = ["epoch", "train_loss", "train_acc", "test_loss", "test_acc", "lr"]
    a = [[r[c] for c in columns] for r in read_metrics(whole)]
    b = [[r[c] for c in columns] for r in read_metrics(parts)]
    assert a == b
    final_whole, final_parts = mr.load(whole / "checkpoint.npz"), mr.load(parts / "checkpoint.npz")
    for key, value in final_whole["model"].items():
        np.testing.assert_array_equal(final_parts["model"][key], value, err_msg=key)


def test_a_nan_loss_stops_the_run_naming_the_step(idx_root: Path, tmp_path: Path, capsys) -> None:
    run = tmp_path / "nan"
    code = example.main(quick_args(idx_root, run, "--epochs=2", "--lr=1e30", "--warmup-epochs=0"))
    err = capsys.readouterr().err
    assert code == 1
    assert "stopping: the loss is" in err and "at epoch 1, step" in err
    assert not (run / "checkpoint.npz").exists()  # nothing non-finite was checkpointed


def test_target_acc_fails_the_run(idx_root: Path, tmp_path: Path, capsys) -> None:
    assert example.main(quick_args(idx_root, tmp_path / "t", "--epochs=1", "--target-acc=1.01")) == 1
    assert "below --target-acc 1.01" in capsys.readouterr().err


def test_presets_and_flags(tmp_path: Path) -> None:
    config, _ = example.parse_args(["--preset", "d2l"])
    d2l = {
        "model": "d2l_resnet18",
        "lr": 0.05,
        "epochs": 10,
        "batch_size": 256,
        "resize": 96,
        "init": "xavier",
    }
    d2l |= {"augment": "none", "momentum": 0, "weight_decay": 0, "label_smoothing": 0, "warmup_epochs": 0}
    d2l |= {"schedule": "constant", "normalize": False, "drop_last": False, "optimizer": "sgd"}
    assert {key: config[key] for key in d2l} == d2l
    config, _ = example.parse_args(["--preset", "d2l", "--epochs", "2"])  # a flag overrides the preset
    assert config["epochs"] == 2 and config["lr"] == 0.05
    with pytest.raises(SystemExit):
        example.parse_args(["--lr", "-1"])
    model = example.build_model("d2l_resnet18", 1, 10, "xavier")
    weight = model[0][0].weight.numpy()  # xavier_uniform_: bound sqrt(6 / (fan_in + fan_out))
    assert np.abs(weight).max() <= np.sqrt(6 / (49 + 64 * 49)) + 1e-7
    with pytest.raises(SystemExit, match="unknown --model"):
        example.build_model("resnet9000", 1, 10, "kaiming")


@pytest.mark.skipif(
    not REAL_DIR.is_dir(), reason="Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)"
)
def test_a_short_real_run_beats_chance_widely(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MINIRES_DATA", raising=False)
    args = [
        "--limit-train=3000",
        "--limit-test=1000",
        "--epochs=2",
        "--batch-size=64",
        "--model=cifar_resnet20",
    ]
    assert example.main([*args, f"--out={tmp_path / 'real'}", "--no-progress", "--no-download"]) == 0
    assert float(read_metrics(tmp_path / "real")[-1]["test_acc"]) >= 0.6  # chance is 0.1
