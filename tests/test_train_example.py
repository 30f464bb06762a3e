"""examples/train_fashion_mnist.py end to end, on a tiny synthetic IDX dataset the test writes: the run
folder, the log, resume giving the numbers of an uninterrupted run, the NaN stop, --target-acc; and a short
run on the real Fashion-MNIST files where they are installed.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scripts import ROOT, load_script

import minires as mr
from minires.data import idx_bytes

REAL_DIR = Path("/usr/share/datasets/fashion-mnist")


SCRIPT = ROOT / "examples" / "train_fashion_mnist.py"
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
    files = "train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte"
    assert f"data files: {files} in {idx_root}; checked: IDX structure only, no checksum pinned" in out
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
    assert "stopping: the loss is" in err and "at epoch 1, step" in err and "no checkpoint yet" in err
    assert not run.exists()  # nothing non-finite was checkpointed, and no folder to --resume is left


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


# ----- the other datasets: CIFAR-10 and MNIST, on small synthetic copies in the official formats ---------
def learnable(rng: np.random.Generator, shape: tuple[int, ...], n: int) -> tuple[np.ndarray, np.ndarray]:
    """n uint8 images of ``shape``: ten blocky class templates plus noise, learnable in a few epochs."""
    templates = np.kron(
        rng.standard_normal((10, *shape[:-2], shape[-2] // 4, shape[-1] // 4)), np.ones((4, 4))
    )
    labels = rng.integers(0, 10, size=n).astype(np.uint8)
    images = 110 + 60 * templates[labels] + 40 * rng.standard_normal((n, *shape))
    return np.clip(images, 0, 255).astype(np.uint8), labels


@pytest.fixture(scope="module")
def cifar_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """cifar-10-binary.tar.gz with the official layout, 64 records per batch file."""
    import io
    import tarfile

    root = tmp_path_factory.mktemp("cifar")
    rng = np.random.default_rng(1)
    all_images, all_labels = learnable(rng, (3, 32, 32), 6 * 64)
    with tarfile.open(root / "cifar-10-binary.tar.gz", "w:gz") as tar:
        names = [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]
        for k, name in enumerate(names):
            images, labels = all_images[64 * k : 64 * (k + 1)], all_labels[64 * k : 64 * (k + 1)]
            content = np.concatenate([labels[:, None], images.reshape(64, -1)], axis=1).tobytes()
            members = [(name, content)]
            if k == 0:
                members.append(("batches.meta.txt", "\n".join(mr.data.CIFAR10_CLASSES).encode()))
            for member, blob in members:
                info = tarfile.TarInfo(f"cifar-10-batches-bin/{member}")
                info.size = len(blob)
                tar.addfile(info, io.BytesIO(blob))
    return root


def test_cifar10_trains_through_the_example(
    cifar_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    archive = cifar_root / "cifar-10-binary.tar.gz"
    monkeypatch.setattr(mr.data.CIFAR10, "records_per_file", 64)
    monkeypatch.setattr(mr.data.CIFAR10, "archive_size", archive.stat().st_size)
    monkeypatch.setattr(mr.data.CIFAR10, "archive_md5", mr.data.store.file_md5(archive))
    run = tmp_path / "cifar"
    args = ["--dataset=cifar10", "--model=cifar_resnet20", f"--data-root={cifar_root}", "--epochs=5"]
    args += ["--batch-size=32", "--warmup-epochs=0.5", "--optimizer=adam", "--lr=0.003", "--weight-decay=0"]
    assert example.main([*args, f"--out={run}", "--no-progress", "--no-download"]) == 0
    out = capsys.readouterr().out
    assert "320 training and 64 test images of shape (3, 32, 32)" in out
    assert f"augment crop+flip, relu; data cifar10 (archive {archive})" in out
    assert f"data files: archive {archive}; checked: the official MD5" in out
    assert "airplane" in out and "truck" in out  # the per-class report names CIFAR-10's classes
    rows = read_metrics(run)
    assert float(rows[-1]["train_loss"]) < 0.5 * float(rows[0]["train_loss"])
    assert float(rows[-1]["test_acc"]) >= 0.5  # chance is 0.1


def test_cifar_loader_crops_with_padding_4_and_normalizes_per_channel(cifar_root: Path, monkeypatch) -> None:
    config, _ = example.parse_args(["--preset", "cifar", f"--data-root={cifar_root}"])
    assert (
        config["dataset"] == "cifar10"
        and config["optimizer"] == "adam"
        and config["model"] == "cifar_resnet20"
    )
    assert example.augmentation(config) == "crop+flip"
    spec = example.DATASETS["cifar10"]
    monkeypatch.setattr(mr.data.CIFAR10, "records_per_file", 64)
    monkeypatch.setattr(mr.data.CIFAR10, "archive_size", None)
    monkeypatch.setattr(mr.data.CIFAR10, "archive_md5", None)
    train, test = example.load_data(config, download=False)
    train_loader, test_loader = example.make_loaders(train, test, config, "cpu")
    crop, flip, normalize = train_loader.transform.transforms
    assert crop.padding == 4 and crop.size == (32, 32) and flip.p == 0.5
    x, _ = next(iter(test_loader))  # the test loader only normalizes, per channel
    raw = test.data[: x.shape[0]].transpose(0, 3, 1, 2) / np.float32(255)
    mean, std = np.array(spec["mean"])[:, None, None], np.array(spec["std"])[:, None, None]
    np.testing.assert_allclose(x.numpy(), (raw - mean) / std, rtol=1e-5, atol=1e-5)
    model = example.build_model(config["model"], 3, 10, "kaiming")
    assert model.conv1.weight.shape == (16, 3, 3, 3)


def test_mnist_trains_with_gelu_through_the_example(
    idx_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """--preset mnist: MNIST (here the synthetic IDX files, gzipped and pinned by their MD5 as the real
    ones are), the CIFAR ResNet-20 with every ReLU replaced by GELU, SGD with momentum."""
    import gzip
    import hashlib

    root = tmp_path / "mnist-root"
    root.mkdir()
    md5 = {}
    for name in (
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    ):
        blob = gzip.compress((idx_root / name).read_bytes(), mtime=0)
        (root / f"{name}.gz").write_bytes(blob)
        md5[name] = hashlib.md5(blob).hexdigest()
    monkeypatch.setattr(mr.data.MNIST, "gz_md5", md5)
    monkeypatch.setattr(mr.data.MNIST, "split_sizes", {True: None, False: None})
    run = tmp_path / "mnist"
    args = ["--preset=mnist", f"--data-root={root}", "--epochs=4", "--batch-size=32", "--lr=0.05"]
    assert example.main([*args, f"--out={run}", "--no-progress", "--no-download"]) == 0
    out = capsys.readouterr().out
    assert "augment crop, gelu; data mnist" in out
    assert "train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz" in out
    assert f"t10k-labels-idx1-ubyte.gz in {root}; checked: official .gz MD5\n" in out
    rows = read_metrics(run)
    assert float(rows[-1]["train_loss"]) < 0.5 * float(rows[0]["train_loss"])
    assert float(rows[-1]["test_acc"]) >= 0.5


def test_gelu_swaps_every_relu_module_and_refuses_functional_blocks() -> None:
    model = example.build_model("cifar_resnet20", 1, 10, "kaiming", activation="gelu")
    kinds = [type(m).__name__ for m in model.modules()]
    assert "ReLU" not in kinds and kinds.count("GELU") == 1 + 9  # the stem and one per BasicBlock
    x = mr.randn(2, 1, 28, 28)
    assert model(x).shape == (2, 10)
    for name in ("d2l_resnet18", "preact_resnet18"):
        with pytest.raises(SystemExit, match="--activation gelu needs a model whose activations are nn.ReLU"):
            example.build_model(name, 1, 10, "kaiming", activation="gelu")


# ----- data parallel: the example under mpiexec -------------------------------------------------------
# Each launch is `mpiexec -n K --allow-run-as-root --bind-to none python -m mpi4py train_fashion_mnist.py`
# on 128 training and 64 test images with cifar_resnet20, about 5 s each on 2 cores.
MPI_TIMEOUT = 120  # seconds for one job; it takes about 5
MPI_SMALL = ["--limit-train=128", "--limit-test=64", "--augment=none", "--lr=0.05", "--epochs=2"]


def launch_example(k: int, *args: str) -> subprocess.CompletedProcess:
    """The example as a K-rank MPI job (one BLAS thread per rank), inside a timeout."""
    from test_distributed import _mpiexec

    mpiexec = _mpiexec()
    version = subprocess.run([mpiexec, "--version"], capture_output=True, text=True, timeout=30).stdout
    flags = ["--allow-run-as-root", "--bind-to", "none", "--oversubscribe"] if "Open MPI" in version else []
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    command = [mpiexec, "-n", str(k), *flags, sys.executable, "-m", "mpi4py", str(SCRIPT), *args]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=MPI_TIMEOUT, env=env)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{' '.join(command)} did not finish in {MPI_TIMEOUT} s (a hang?): {exc.stderr!r}")
    assert done.returncode == 0, f"{' '.join(command)}: exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="module")
def mpi_runs(idx_root: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Five jobs: two ranks with SyncBatchNorm for 2 epochs; the same stopped after epoch 1 and resumed;
    one rank with the global batch; two ranks with plain BatchNorm (stopped after epoch 1)."""
    from test_distributed import _need_mpi

    _need_mpi()
    base = tmp_path_factory.mktemp("mpi")
    runs: dict[str, Any] = {"base": base}
    common = ["--dataset=idx", f"--data-root={idx_root}", "--model=cifar_resnet20", "--no-progress"]
    common += MPI_SMALL
    per_rank = [*common, "--batch-size=16"]
    runs["whole"] = launch_example(2, *per_rank, "--sync-bn", f"--out={base / 'whole'}").stdout
    runs["parts"] = launch_example(2, *per_rank, "--sync-bn", "--stop-after=1", f"--out={base / 'parts'}")
    shutil.copytree(base / "parts", base / "parts-copy")
    runs["resumed"] = launch_example(2, "--resume", str(base / "parts"), "--no-progress").stdout
    runs["one"] = launch_example(1, *common, "--batch-size=32", "--stop-after=1", f"--out={base / 'one'}")
    runs["plain"] = launch_example(2, *per_rank, "--stop-after=1", f"--out={base / 'plain'}")
    return runs


def test_two_ranks_write_one_run_folder_and_only_rank_0_logs(mpi_runs: dict[str, Any]) -> None:
    base = mpi_runs["base"]
    whole = base / "whole"
    assert {"config.json", "metrics.csv", "checkpoint.npz", "best.npz"} <= set(os.listdir(whole))
    assert [r["epoch"] for r in read_metrics(whole)] == ["1", "2"]
    out = mpi_runs["whole"]
    assert out.count("train loss") == 2 and out.count("final test accuracy") == 1  # rank 0 alone
    assert "of 4 batches of 16 x 2 processes (global batch 32, SyncBatchNorm)" in out
    assert json.loads((whole / "config.json").read_text())["world_size"] == 2
    confusion_rows = out.split("columns: predicted):\n")[1].splitlines()[1:11]
    assert sum(int(v) for row in confusion_rows for v in row.split()[2:]) == 64  # each test image once


def test_two_ranks_match_one_process_on_the_global_batch(mpi_runs: dict[str, Any]) -> None:
    """The same global batches (DistributedSampler's order, rank r taking every second index) and averaged
    gradients: with SyncBatchNorm the two runs compute the same thing, float32 sums in another order
    (rtol 1e-5 on the first epoch's loss). With plain BatchNorm each rank normalizes by its own 16 images,
    another function: close (rtol 1e-2), not equal."""
    base = mpi_runs["base"]
    one = float(read_metrics(base / "one")[0]["train_loss"])
    sync = float(read_metrics(base / "whole")[0]["train_loss"])
    plain = float(read_metrics(base / "plain")[0]["train_loss"])
    assert sync == pytest.approx(one, rel=1e-5)
    assert plain == pytest.approx(one, rel=1e-2)
    assert json.loads((base / "one" / "config.json").read_text())["world_size"] == 1


def test_a_resumed_two_rank_run_equals_the_uninterrupted_one(mpi_runs: dict[str, Any]) -> None:
    base = mpi_runs["base"]
    columns = ["epoch", "train_loss", "train_acc", "test_loss", "test_acc", "lr"]
    whole = [[r[c] for c in columns] for r in read_metrics(base / "whole")]
    parts = [[r[c] for c in columns] for r in read_metrics(base / "parts")]
    assert whole == parts
    assert "resuming" in mpi_runs["resumed"] and mpi_runs["resumed"].count("train loss") == 1
    final_whole, final_parts = (
        mr.load(base / "whole" / "checkpoint.npz"),
        mr.load(base / "parts" / "checkpoint.npz"),
    )
    for key, value in final_whole["model"].items():
        np.testing.assert_array_equal(final_parts["model"][key], value, err_msg=key)


def test_resuming_with_another_world_size_says_so(mpi_runs: dict[str, Any], capsys) -> None:
    """The stopped 2-rank run, resumed by one process (this one): it trains on; the log names the change."""
    assert example.main(["--resume", str(mpi_runs["base"] / "parts-copy"), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "the run started with 2 process(es) and resumes with 1: the global batch is now 16" in out
    assert [r["epoch"] for r in read_metrics(mpi_runs["base"] / "parts-copy")] == ["1", "2"]


# ----- when things go wrong ---------------------------------------------------------------------------
# The script run as ``python SCRIPT ARGS``, with Ctrl-C's default handler put back first: a test suite
# started in the background of a non-interactive shell (``make test &``) inherits SIGINT ignored, and
# Python then installs no KeyboardInterrupt handler of its own (the example itself must not override that).
_WITH_CTRL_C = (
    "import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')"
)


def start_example(*args: str) -> subprocess.Popen:
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    command = [sys.executable, "-c", _WITH_CTRL_C, str(SCRIPT), *args]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def interrupt_after(child: subprocess.Popen, marker: str) -> tuple[str, str]:
    """Read the child's log until a line starting with ``marker``, then send SIGINT (Ctrl-C)."""
    seen = []
    for line in child.stdout:
        seen.append(line)
        if line.startswith(marker):
            break
    child.send_signal(signal.SIGINT)
    try:
        out, err = child.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        child.kill()
        pytest.fail(f"no exit 60 s after SIGINT: {''.join(seen)}")
    return "".join(seen) + out, err


def test_ctrl_c_prints_one_line_with_the_resume_command_and_exits_130(idx_root: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    child = start_example(*quick_args(idx_root, run, "--epochs=3", "--limit-train=192", "--warmup-epochs=0"))
    out, err = interrupt_after(child, "epoch   1/3")  # the first checkpoint is written before this line
    assert child.returncode == 130
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert re.match(r"interrupted (in epoch 2|after epoch 1); the last checkpoint is", err), err
    assert f"{run}/checkpoint.npz (epoch 1); continue with: " in err
    command = err.split("continue with: ")[1].split()
    assert command[-2:] == ["--resume", str(run)] and command[-3].endswith("train_fashion_mnist.py")
    assert example.main(["--resume", str(run), "--no-progress"]) == 0  # what it says works
    assert [r["epoch"] for r in read_metrics(run)] == ["1", "2", "3"]


def test_ctrl_c_in_the_first_epoch_leaves_no_folder(idx_root: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    child = start_example(*quick_args(idx_root, run, "--epochs=3"))
    out, err = interrupt_after(child, "data files:")  # the line before the first step
    assert child.returncode == 130, (out, err)
    assert err.strip() == "interrupted in epoch 1; no checkpoint yet, nothing kept"
    assert not run.exists()


def test_runs_that_fail_before_training_leave_no_folder(idx_root: Path, tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    with pytest.raises(SystemExit, match="unknown --model"):
        example.main(quick_args(idx_root, run, "--model=resnet9000"))
    assert not run.exists()
    if not mr.cuda.is_available():
        with pytest.raises(SystemExit, match="--device cuda, but the GPU cannot be used"):
            example.main(quick_args(idx_root, run, "--device=cuda"))
        assert not run.exists()
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(SystemExit) as exit_info:  # an --out that cannot be written (even by root)
        example.main(quick_args(idx_root, blocker / "run"))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"train_fashion_mnist: cannot write the run folder {blocker / 'run'}:")
    assert len(err.strip().splitlines()) == 1


def test_resume_without_a_checkpoint_says_so_and_starts_from_epoch_1(
    idx_root: Path, tmp_path: Path, capsys
) -> None:
    assert example.main(["--resume", str(tmp_path / "nothing"), "--no-progress"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"train_fashion_mnist: --resume {tmp_path / 'nothing'}: not a run folder (it has no config.json)"
    )
    config, _ = example.parse_args(quick_args(idx_root, tmp_path / "run", "--epochs=1", "--limit-train=64"))
    run = tmp_path / "killed"  # what a run killed (SIGKILL) in its first epoch leaves
    run.mkdir()
    (run / "config.json").write_text(json.dumps(dict(config, out=str(run))))
    assert example.main(["--resume", str(run), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert f"{run} has no checkpoint (it stopped in its first epoch): starting it from epoch 1" in out
    assert [r["epoch"] for r in read_metrics(run)] == ["1"]


def test_resume_of_a_finished_run_and_more_epochs(idx_root: Path, tmp_path: Path, capsys) -> None:
    """A finished run says so; --epochs 3 extends a 2-epoch run: the cosine rebuilt for 3 epochs and
    continued at step 2 * steps, the lr where a 3-epoch run has it; ignored flags named."""
    run = tmp_path / "run"
    args = quick_args(idx_root, run, "--epochs=2", "--limit-train=96", "--limit-test=32")
    assert example.main(args) == 0
    capsys.readouterr()
    assert example.main(["--resume", str(run), "--no-progress"]) == 0
    assert capsys.readouterr().out.strip() == (
        f"{run} is finished: 2 of 2 epochs, final test accuracy "
        f"{float(read_metrics(run)[-1]['test_acc']):.4f} (best "
        f"{max(float(r['test_acc']) for r in read_metrics(run)):.4f}); to train longer: --resume {run} "
        "--epochs N with N > 2"
    )
    assert (
        example.main(["--resume", str(run), "--epochs=3", "--lr=0.3", "--batch-size=8", "--no-progress"]) == 0
    )
    out = capsys.readouterr().out
    assert "--resume keeps the run's config.json; ignored: --batch-size 8 (the run's: 32), --lr 0.3 " in out
    config, _ = example.parse_args(args[:-1] + ["--epochs=3"])
    steps = 96 // 32
    reference = mr.optim.SGD([mr.nn.Parameter(mr.zeros(1))], lr=config["lr"])
    sched = example.make_scheduler(reference, config, steps)
    for _ in range(2 * steps):
        sched.step()
    want = reference.param_groups[0]["lr"]
    assert f"continues at its step {2 * steps} (lr 0 -> {want:.4g})" in out, out
    assert "the run was scheduled for 2 epochs; its cosine schedule is rebuilt for 3 epochs" in out
    assert [r["epoch"] for r in read_metrics(run)] == ["1", "2", "3"]
    assert json.loads((run / "config.json").read_text())["epochs"] == 3
    assert example.main(["--resume", str(run), "--no-progress"]) == 0  # now finished at 3
    assert "is finished: 3 of 3 epochs" in capsys.readouterr().out


def test_a_short_run_plots_steps_and_says_why_its_accuracy_is_near_chance(
    idx_root: Path, tmp_path: Path, capsys
) -> None:
    run = tmp_path / "run"
    assert example.main(quick_args(idx_root, run, "--epochs=1", "--limit-train=128", "--lr=0.05")) == 0
    out = capsys.readouterr().out
    steps = mr.load(run / "checkpoint.npz")["steps"]  # (x in epochs, loss) at every step on the CPU
    np.testing.assert_allclose(steps[:, 0], [0.25, 0.5, 0.75, 1.0])
    assert np.all(np.isfinite(steps[:, 1]))
    epoch_line = next(line for line in out.splitlines() if line.startswith("epoch"))
    if float(read_metrics(run)[0]["test_acc"]) < 0.2:  # near chance (0.1) after 4 steps
        assert "(near chance; BatchNorm statistics from 4 steps)" in epoch_line
        assert "after 4 steps their start (mean 0, variance 1) still weighs 0.9^4 = 66%" in out
    pytest.importorskip("matplotlib")
    assert (run / "curves.png").stat().st_size > 0


def test_plot_has_a_step_line_and_integer_epoch_ticks(tmp_path: Path, monkeypatch) -> None:
    plt = pytest.importorskip("matplotlib.pyplot")
    figures = []
    monkeypatch.setattr(plt, "close", figures.append)  # keep the figure to look at
    history = [dict(epoch=1, train_loss=2.0, train_acc=0.2, test_loss=2.1, test_acc=0.1)]
    steps = np.array([[0.25, 2.3], [0.5, 2.2], [0.75, 2.0], [1.0, 1.9]])
    assert example.plot_curves(str(tmp_path), history, 0.0, steps).startswith("wrote")
    ax_loss, ax_acc = figures[0].axes
    assert any(len(line.get_xdata()) == 4 for line in ax_loss.get_lines())  # the per-step line
    for ax in (ax_loss, ax_acc):
        ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
        assert ticks and all(float(t).is_integer() for t in ticks)


def test_make_train_installs_the_plot_extra_and_make_test_the_test_tools(tmp_path: Path) -> None:
    """Dry runs (make -n) against an empty venv folder: train needs .[plot] only; test, even after a
    train install (its stamp present and newer than setup.cfg), installs .[test,plot]."""
    make = shutil.which("make")
    if make is None:
        pytest.skip("make is not installed")
    venv = tmp_path / "venv"

    def dry(target: str, *extra: str) -> str:
        return subprocess.run(
            [make, "-n", f"VENV={venv}", target, *extra], cwd=ROOT, capture_output=True, text=True, timeout=30
        ).stdout

    train = dry("train", "ARGS=--epochs 1 --limit-train 512")
    assert "-m venv" in train and "pip install -e '.[plot]'" in train and "[test" not in train
    assert "examples/train_fashion_mnist.py --epochs 1 --limit-train 512" in train
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").touch()
    stamp = venv / ".installed-train"
    stamp.touch()
    os.utime(stamp, (2**31, 2**31))  # newer than setup.cfg: make train installs nothing more
    assert "pip install" not in dry("train")
    assert "pip install -e '.[test,plot]'" in dry("test")


def test_ctrl_c_ends_every_rank_of_a_distributed_run(idx_root: Path, tmp_path: Path) -> None:
    """SIGINT to mpiexec (what Ctrl-C sends it) after epoch 1: the job ends, no rank is left running, and
    the checkpoint of epoch 1 is there to resume. (mpiexec ends the ranks with SIGTERM, which the example
    takes as Ctrl-C; Open MPI's own exit status is then 1, and rank 0's line may be cut off by it.)"""
    from test_distributed import _mpiexec, _need_mpi

    _need_mpi()
    run = tmp_path / "run"
    args = ["--dataset=idx", f"--data-root={idx_root}", "--model=cifar_resnet20", "--no-progress"]
    args += ["--augment=none", "--epochs=3", "--batch-size=16", f"--out={run}"]
    flags = ["--allow-run-as-root", "--bind-to", "none", "--oversubscribe"]
    command = [_mpiexec(), "-n", "2", *flags, sys.executable, "-u", "-m", "mpi4py", str(SCRIPT), *args]
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    out, err = interrupt_after(child, "epoch   1/3")
    assert child.returncode != 0
    assert "Traceback" not in err
    left = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):
            if str(run).encode() in cmdline.read_bytes():
                left.append(cmdline.parent.name)
    assert not left, f"ranks still running: {left}"
    assert mr.load(run / "checkpoint.npz")["epoch"] >= 1
