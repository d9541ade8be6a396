"""Devices: the networks can run on a GPU, and a file decodes to the same latents whichever
device wrote it or reads it. On a machine without CUDA only the CPU runs and the cross-device
tests are skipped (say so in the report); `tools/gpu_check.sh` runs them on a GPU."""

from __future__ import annotations

import copy
import hashlib
import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from codec.cli import main
from codec.evaluation import psnr
from codec.image import decode_image, decode_image_latents, encode_image, read_image
from codec.models import registry
from codec.models.device import resolve_device

from .conftest import ROOT, VECTORS

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
MANIFEST = json.loads((VECTORS / "models.json").read_text())


def test_device_names_resolve_or_are_refused_with_the_reason():
    assert resolve_device(None) == torch.device("cpu")
    assert resolve_device(" CPU ") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="unknown device 'gpu0'"):
        resolve_device("gpu0")
    with pytest.raises(ValueError, match="exact float64"):
        resolve_device("mps")
    with pytest.raises(ValueError, match="CUDA is not available|CUDA device"):
        resolve_device("cuda:99")


def test_moving_a_model_moves_its_integer_path_too():
    """The integer parameters live outside the state dict; `.to()` must still carry them, or a
    GPU decode would mix devices."""
    model, _ = registry.load(registry.default_model("image"))
    moved = copy.deepcopy(model).to("meta")
    devices = {value.device.type for params in moved._integer.values()
               for value in params.values()}
    assert devices == {"meta"}
    assert {value.device.type for params in model._integer.values()
            for value in params.values()} == {"cpu"}
    dtypes_before = {name: {k: v.dtype for k, v in p.items()} for name, p in model._integer.items()}
    halved = copy.deepcopy(model).half()   # float conversions leave the integers alone
    assert {name: {k: v.dtype for k, v in p.items()}
            for name, p in halved._integer.items()} == dtypes_before


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", [entry["file"] for entry in MANIFEST["vectors"]])
def test_conformance_vectors_decode_identically_on_every_device(device, name):
    entry = next(e for e in MANIFEST["vectors"] if e["file"] == name)
    data = (VECTORS / name).read_bytes()
    latent = decode_image_latents(data, device=device)
    assert latent.device.type == "cpu"
    assert hashlib.sha256(latent.numpy().astype("<i4").tobytes()).hexdigest() == \
        entry["latent_sha256"]
    original = read_image(ROOT / MANIFEST["sample"])
    if entry.get("crop"):
        width, height = entry["crop"]
        original = original[:height, :width]
    assert abs(psnr(original, decode_image(data, device=device)) - entry["psnr"]) < 0.05


@pytest.mark.skipif(len(DEVICES) < 2, reason="needs a CUDA GPU beside the CPU")
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_files_written_on_any_device_decode_identically_on_every_device(seed):
    """Encode a random-sized image on each device; every file's latents are the same decoded
    on every device (the files themselves may differ: the analysis transform is float)."""
    rng = np.random.default_rng(seed)
    height, width = (int(v) for v in rng.integers(17, 200, 2))
    base = rng.integers(0, 256, (height // 8 + 1, width // 8 + 1, 3), dtype=np.uint8)
    image = np.kron(base, np.ones((8, 8, 1), dtype=np.uint8))[:height, :width]
    quality = float(rng.uniform(1, 8))
    for writer in DEVICES:
        data = encode_image(image, quality, device=writer)
        latents = [decode_image_latents(data, device=reader) for reader in DEVICES]
        for latent in latents[1:]:
            assert torch.equal(latent, latents[0]), f"written on {writer}"


def test_cli_refuses_an_unusable_device_and_writes_nothing(tmp_path):
    output = tmp_path / "out.png"
    result = CliRunner().invoke(main, ["decode", str(VECTORS / MANIFEST["vectors"][0]["file"]),
                                       "-o", str(output), "--device", "mps"])
    assert result.exit_code != 0
    assert "exact float64" in result.output
    assert not output.exists()
