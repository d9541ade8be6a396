"""tools/train_image.py: a few steps on tiny synthetic images, checkpoint, exact resume, errors."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def train_image():
    spec = importlib.util.spec_from_file_location("train_image", ROOT / "tools" / "train_image.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """Eight small images, png and jpg, one in a subfolder, one smaller than the crop."""
    folder = tmp_path_factory.mktemp("images")
    (folder / "sub").mkdir()
    rng = np.random.default_rng(0)
    sizes = [(80, 72), (96, 100), (70, 130), (40, 50), (128, 96), (72, 72), (64, 90), (88, 64)]
    for index, (height, width) in enumerate(sizes):
        y, x = np.mgrid[0:height, 0:width]
        base = np.stack([x * 255 / width, y * 255 / height, (x + y) * 127 / (width + height)], -1)
        pixels = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
        image = Image.fromarray(pixels)
        image.save(folder / "sub" / f"{index}.jpg" if index % 3 == 0 else folder / f"{index}.png")
    return folder


def run(module, data: Path, directory: Path, steps: int, *extra: str) -> int:
    return module.main(["--data", str(data), "--checkpoint-dir", str(directory),
                        "--steps", str(steps), "--batch", "2", "--crop", "64",
                        "--holdout", "2", "--log-every", "1", "--eval-every", "2",
                        "--save-every", "100", "--device", "cpu", *extra])


def records(directory: Path, kind: str) -> list[dict]:
    lines = (directory / "log.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["type"] == kind]


def test_train_save_resume_exactly_and_init(train_image, data, tmp_path, capsys):
    import torch

    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    exported = tmp_path / "w.safetensors"
    assert run(train_image, data, straight, 3, "--export", str(exported)) == 0
    assert run(train_image, data, resumed, 2) == 0
    state = torch.load(resumed / "last.pt", weights_only=True)
    assert state["step"] == 2 and state["batch_in_epoch"] == 2  # mid-epoch (6 images, batch 2)
    assert run(train_image, data, resumed, 3) == 0
    assert torch.load(resumed / "last.pt", weights_only=True)["step"] == 3

    train = records(straight, "train")
    assert [r["step"] for r in train] == [1, 2, 3]
    assert all(math.isfinite(r[k]) for r in train for k in ("loss", "bpp", "psnr", "aux"))
    evaluation = records(straight, "eval")[0]["results"]
    assert set(evaluation) == {"q1", "q4.5", "q8"}
    assert all(math.isfinite(v["bpp"]) and math.isfinite(v["psnr"]) for v in evaluation.values())
    # The resumed run continues the step count and reproduces the uninterrupted run exactly.
    again = records(resumed, "train")
    assert [r["step"] for r in again] == [1, 2, 3]
    assert [r["loss"] for r in again] == pytest.approx([r["loss"] for r in train], rel=1e-5)
    assert [r["resumed"] for r in records(resumed, "start")] == [False, True]

    capsys.readouterr()
    if exported.exists():  # codec.models.weights is present: start again from its export
        assert run(train_image, data, tmp_path / "init", 5, "--init", str(exported), "--qat",
                   "--eval-every", "0") == 0
        assert "init: " in capsys.readouterr().out
        continued = records(tmp_path / "init", "train")
        assert [r["step"] for r in continued] == [4, 5]  # the export's count goes on
        assert continued[0]["qat"] is True


@pytest.mark.parametrize("argv, message", [
    (["--crop", "100"], "--crop 100 is not a positive multiple of 64"),
    (["--data", "MISSING"], "does not exist"),
    (["--data", "EMPTY"], "no .png/.jpg images found"),
    (["--holdout", "8"], "leaves no training images"),
    (["--rate-balance", "1.5"], "--rate-balance must be in [0, 1]"),
])
def test_clear_errors(train_image, data, tmp_path, capsys, argv, message):
    (tmp_path / "empty").mkdir()
    argv = [str(tmp_path / "missing") if a == "MISSING" else
            str(tmp_path / "empty") if a == "EMPTY" else a for a in argv]
    if "--data" not in argv:
        argv = ["--data", str(data), *argv]
    assert train_image.main(["--checkpoint-dir", str(tmp_path / "ck"), "--device", "cpu",
                             *argv]) == 1
    error = capsys.readouterr().err
    assert error.startswith("error: ") and message in error
    assert not (tmp_path / "ck" / "last.pt").exists()


def test_rate_balance_weights_lift_the_low_qualities(train_image):
    import torch
    quality = torch.tensor([1.0, 2.0, 4.5, 8.0])
    assert torch.equal(train_image.balance_weights(quality, 0.0), torch.ones(4))
    weights = train_image.balance_weights(quality, 0.5)
    assert weights[0] == 1 and bool((weights[1:] < weights[:-1]).all())
    # λ spans 0.0018 .. 0.18 over the ladder: α = 0.5 gives the top sqrt(1/100) of the bottom
    assert math.isclose(float(weights[-1]), 0.1, rel_tol=1e-5)


def test_write_holdout_copies_exactly_the_images_training_skips(train_image, data, tmp_path):
    out = tmp_path / "holdout"
    assert train_image.main(["--data", str(data), "--holdout", "3", "--checkpoint-dir",
                             str(tmp_path / "ck"), "--write-holdout", str(out)]) == 0
    train, holdout = train_image.split_holdout(train_image.find_images([data]), 3)
    copied = sorted(p.name for p in out.iterdir())
    assert copied == sorted(p.name for p in holdout) and len(copied) == 3
    assert not {p.name for p in train} & set(copied)
    for path in holdout:
        assert (out / path.name).read_bytes() == path.read_bytes()
    assert not (tmp_path / "ck").exists()  # nothing trained


@pytest.mark.parametrize("native_bf16", [False, True])
def test_auto_precision_follows_the_cpu(train_image, data, tmp_path, capsys, monkeypatch,
                                        native_bf16):
    """--precision auto uses bf16 transforms on a CPU only where it has native bf16."""
    monkeypatch.setattr(train_image, "cpu_has_bf16", lambda: native_bf16)
    assert run(train_image, data, tmp_path / "ck", 1, "--eval-every", "0") == 0
    banner = next(line for line in capsys.readouterr().out.splitlines()
                  if line.startswith("device cpu"))
    assert ("bf16 transforms" in banner) is native_bf16
    assert math.isfinite(records(tmp_path / "ck", "train")[0]["loss"])


def test_compiled_transforms_train_like_eager(train_image, data, tmp_path, capsys):
    """--compile changes speed, not the model: same losses (to float tolerance), same keys."""
    import torch

    eager, compiled = tmp_path / "eager", tmp_path / "compiled"
    common = ("--precision", "fp32", "--eval-every", "0")
    assert run(train_image, data, eager, 2, *common) == 0
    assert run(train_image, data, compiled, 2, *common, "--compile") == 0
    assert "fp32 (compiled)" in capsys.readouterr().out
    losses = [[r["loss"] for r in records(d, "train")] for d in (eager, compiled)]
    assert losses[1] == pytest.approx(losses[0], rel=1e-3)
    states = [torch.load(d / "last.pt", weights_only=True)["model"] for d in (eager, compiled)]
    assert list(states[1]) == list(states[0])


def test_torchrun_trains_identical_replicas_and_resumes(data, tmp_path):
    """Two DDP processes (gloo on the CPU, as NCCL would on GPUs) end with identical weights,
    which the script itself checks, and a rerun resumes their checkpoint."""
    import torch

    directory = tmp_path / "ddp"

    def torchrun(steps: int) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                   "--nproc-per-node", "2", str(ROOT / "tools" / "train_image.py"),
                   "--data", str(data), "--checkpoint-dir", str(directory), "--steps", str(steps),
                   "--batch", "1", "--crop", "64", "--holdout", "2", "--log-every", "1",
                   "--eval-every", "0", "--device", "cpu"]
        return subprocess.run(command, capture_output=True, text=True, timeout=600,
                              env={**os.environ, "OMP_NUM_THREADS": "1"})

    first = torchrun(2)
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
    assert "device cpu ×2" in first.stdout
    assert "replicas: 2 identical at step 2" in first.stdout
    state = torch.load(directory / "last.pt", weights_only=True)
    assert state["step"] == 2 and state["world_size"] == 2
    second = torchrun(3)
    assert second.returncode == 0, second.stdout[-2000:] + second.stderr[-2000:]
    assert "replicas: 2 identical at step 3" in second.stdout
    assert [r["step"] for r in records(directory, "train")] == [1, 2, 3]
    assert [r["world_size"] for r in records(directory, "start")] == [2, 2]
