"""The independent image-latent decoder (tests/reference_image.py, written from SPEC.md Section
8.2) against the library: the decoded latents must be identical."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from codec.image import decode_image_latents, encode_image
from codec.models import registry
from codec.models.weights import save_model

from .conftest import small_image_model
from .reference_decoder import ReferenceDecodeError
from .reference_image import decode_image_latent


@pytest.fixture(scope="module")
def small_model(tmp_path_factory):
    model = small_image_model()
    folder = tmp_path_factory.mktemp("weights")
    path = folder / "small.safetensors"
    digest = save_model(model, path)
    saved = (None, dict(registry.MODELS), dict(registry.DEFAULT_MODEL))
    info = registry.ModelInfo("image-test", "image", "small.safetensors", digest, "test", folder)
    registry.MODELS.clear()
    registry.register(info, default=True)
    yield info, str(path)
    registry.MODELS.clear()
    registry.MODELS.update(saved[1])
    registry.DEFAULT_MODEL.clear()
    registry.DEFAULT_MODEL.update(saved[2])
    registry._loaded.pop("image-test", None)


def smooth_image(height: int, width: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    coarse = rng.random((height // 8 + 2, width // 8 + 2, 3))
    return np.asarray(Image.fromarray((coarse * 255).astype(np.uint8)).resize((width, height)))


def library_latent(data: bytes) -> np.ndarray:
    latent = decode_image_latents(data)
    assert latent.dtype == torch.int64
    return latent.numpy()


@pytest.fixture(scope="module")
def files(small_model):
    info, _ = small_model
    out = {}
    for size in [(64, 128), (70, 90)]:         # the second is not a multiple of 16 or 64
        for quality in (2.0, 6.5):
            data = encode_image(smooth_image(*size, seed=size[0]), quality)
            out[size, quality] = (data, library_latent(data))
    return out


@pytest.mark.parametrize("size", [(64, 128), (70, 90)])
@pytest.mark.parametrize("quality", [2.0, 6.5])
def test_reference_latent_equals_library(small_model, files, size, quality):
    _, weights = small_model
    data, expected = files[size, quality]
    latent = decode_image_latent(data, weights)
    height, width = -(-size[0] // 16), -(-size[1] // 16)   # the latent grid (SPEC 8.2)
    assert latent.dtype == np.int64 and latent.shape == (1, 32, height, width)
    assert expected.shape == latent.shape
    assert np.array_equal(latent, expected)
    assert np.any(latent != latent.flat[0])        # not a trivial constant latent


@pytest.mark.parametrize("boost", [40.0, 2000.0])
def test_reference_latent_equals_library_with_large_values(small_model, tmp_path, boost):
    """The same model with g_a / h_a outputs scaled up (non-zero hyper-latent, escapes) and the
    last parameter layers scaled up (many scale tables, table number clamped at 63)."""
    model = small_image_model()
    with torch.no_grad():
        state = model.state_dict()
        state["g_a.6.weight"].mul_(30.0)
        state["h_a.4.weight"].mul_(30.0)
        for s in range(3):
            state[f"parameters_net.{s}.2.conv.weight"].mul_(boost)
            state[f"parameters_net.{s}.2.conv.bias"].mul_(boost)
    path = tmp_path / "boost.safetensors"
    digest = save_model(model, path)
    saved = (None, dict(registry.MODELS), dict(registry.DEFAULT_MODEL))
    info = registry.ModelInfo("image-boost", "image", "boost.safetensors", digest, "test",
                              tmp_path)
    registry.register(info, default=True)
    try:
        image = (np.random.default_rng(1).random((64, 90, 3)) * 255).astype(np.uint8)
        data = encode_image(image, 7.5)
        expected = library_latent(data)
    finally:
        registry.MODELS.clear()
        registry.MODELS.update(saved[1])
        registry.DEFAULT_MODEL.clear()
        registry.DEFAULT_MODEL.update(saved[2])
        registry._loaded.pop("image-boost", None)
    latent = decode_image_latent(data, str(path))
    assert np.array_equal(latent, expected)
    assert np.abs(latent).max() > 500


def _rewrite(data: bytes, edit) -> bytes:
    """Returns data with each chunk payload passed through edit(type, payload), CRCs redone."""
    out, pos = bytearray(data[:6]), 6
    while pos < len(data):
        ctype = data[pos:pos + 4]
        length = struct.unpack_from("<I", data, pos + 4)[0]
        payload = edit(ctype, data[pos + 8:pos + 8 + length])
        out += ctype + struct.pack("<I", len(payload)) + payload
        out += struct.pack("<I", zlib.crc32(ctype + payload) & 0xFFFFFFFF)
        pos += 12 + length
    return bytes(out)


def test_reference_rejects_wrong_geometry_and_digest(small_model, files, tmp_path):
    _, weights = small_model
    data, _ = files[(70, 90), 6.5]

    def wider(ctype, payload):   # 90 -> 130 pixels: more values per group than were coded
        if ctype != b"HEAD":
            return payload
        at = 2 + payload[1] + 8 + 2
        return payload[:at] + struct.pack("<I", 130) + payload[at + 4:]

    with pytest.raises(ReferenceDecodeError):
        decode_image_latent(_rewrite(data, wider), weights)
    other = tmp_path / "other.safetensors"
    other.write_bytes(open(weights, "rb").read() + b" ")
    with pytest.raises(ReferenceDecodeError, match="digest"):
        decode_image_latent(data, str(other))
