"""Conformance vectors of the shipped image models (testdata/conformance/models.json): the
library and the independent reference decoder both reproduce each recorded latent exactly, and
the float reconstruction keeps its recorded quality."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from codec.evaluation import psnr
from codec.image import decode_image, decode_image_latents, read_image
from codec.models import registry

from .conftest import ROOT, VECTORS
from .reference_image import decode_image_latent

MANIFEST = json.loads((VECTORS / "models.json").read_text())
VECTOR_NAMES = [entry["file"] for entry in MANIFEST["vectors"]]


def entry_of(name: str) -> dict:
    return next(entry for entry in MANIFEST["vectors"] if entry["file"] == name)


def test_every_shipped_image_model_has_vectors():
    shipped = {info.model_id for info in registry.shipped("image")}
    assert shipped, "no image model is shipped"
    assert shipped == {entry["model"] for entry in MANIFEST["vectors"]}


@pytest.mark.parametrize("name", VECTOR_NAMES)
def test_model_vector_decodes_to_its_recorded_latent(name):
    entry = entry_of(name)
    info = registry.resolve(entry["model"])
    assert info.sha256 == entry["weights_sha256"], "weights changed: rerun make_model_vectors"
    data = (VECTORS / name).read_bytes()
    library = decode_image_latents(data).numpy()
    reference = decode_image_latent(data, str(info.path))
    for latent in (library, reference):
        assert list(latent.shape) == entry["latent_shape"]
        assert hashlib.sha256(latent.astype("<i4").tobytes()).hexdigest() == entry["latent_sha256"]
    original = read_image(ROOT / MANIFEST["sample"])
    if entry.get("crop"):       # a top-left crop of the sample: [width, height]
        width, height = entry["crop"]
        original = original[:height, :width]
    assert abs(psnr(original, decode_image(data)) - entry["psnr"]) < 0.05


def test_shipped_weights_keep_their_constant_buffers():
    """fp16 storage must not flush small constants (likelihood bound, GDN pedestal) to zero:
    training resumed from shipped weights would meet log(0)."""
    from codec.models.image_model import ImageModel
    from codec.models.weights import load_model

    for info in registry.shipped("image"):
        model, _ = load_model(info.path)
        fresh = dict(ImageModel(**model.config).named_buffers())
        for name, buffer in model.named_buffers():
            assert buffer.dtype == fresh[name].dtype, name
            if name.endswith(("bound", "pedestal")):
                assert np.array_equal(buffer.numpy(), fresh[name].numpy()), name
