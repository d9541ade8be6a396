"""Shared fixtures: table sets and small files used across the tests."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from codec.bitstream import TableSet

ROOT = Path(__file__).resolve().parent.parent
VECTORS = ROOT / "testdata" / "conformance"


def gaussian_tables(count: int = 16, max_scale: float = 20.0) -> TableSet:
    """Zero-mean discretised Gaussians with log-spaced scales, escape mass last."""
    pmfs, offsets = [], []
    for scale in np.exp(np.linspace(math.log(0.2), math.log(max_scale), count)):
        half = int(max(2, math.ceil(scale * 5)))
        edges = (np.arange(-half, half + 2) - 0.5) / (scale * math.sqrt(2))
        pmf = np.diff([0.5 * (1 + math.erf(e)) for e in edges])
        pmfs.append(np.append(pmf, max(1 - pmf.sum(), 1e-7)))
        offsets.append(-half)
    return TableSet.from_pmfs(pmfs, offsets)


def small_image_model():
    """A tiny ImageModel with random weights, quality-dependent gains (×√2 per level) and scale
    codes starting at the bottom of the table, so that even its small random latents cost bits
    that grow with the quality."""
    import torch

    from codec.models.image_model import ImageModel

    torch.manual_seed(0)
    model = ImageModel(channels=24, latent=32, hyper=16, hyper_features=24, slices=(8, 8, 16),
                       context=8, hidden=16)
    with torch.no_grad():
        levels = torch.arange(model.gain.shape[0], dtype=torch.float32).view(-1, 1)
        model.gain.copy_(2.0 ** (levels / 2) * torch.ones_like(model.gain))
        model.inverse_gain.copy_(1 / model.gain)
        for layers in model.parameters_net:
            layers[-1].conv.bias.zero_()
    return model


@pytest.fixture(scope="session")
def tables() -> TableSet:
    return gaussian_tables()


@pytest.fixture(scope="session")
def manifest() -> dict:
    return json.loads((VECTORS / "vectors.json").read_text())
