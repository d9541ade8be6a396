#!/usr/bin/env python3
"""Regenerate the conformance vectors of the shipped image models (an explicit, reviewed act).

For every image model in the registry's shipped table, ``testdata/sample.png`` is coded at a few
qualities into ``testdata/conformance/<model>-q<quality>.lc``, and a top-left crop whose sides are
not multiples of 16 or 64 (the latent grid then covers part of the hyper-latent's) into
``<model>-crop-q4.lc``; ``models.json`` records the
weights' digest, the SHA-256 of the decoded latent grid (int32 little-endian, exact on every
machine) and the bpp and PSNR of the float reconstruction. Rerun whenever shipped weights change.

    python tools/make_model_vectors.py
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from codec.evaluation import psnr  # noqa: E402
from codec.image import decode_image, decode_image_latents, encode_image, read_image  # noqa: E402
from codec.models import registry  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "testdata" / "conformance"
SAMPLE = ROOT / "testdata" / "sample.png"
QUALITIES = (1.0, 4.0, 8.0)
CROP = (200, 150)   # width, height of the odd-size vector


def latent_digest(data: bytes) -> tuple[str, list[int]]:
    """SHA-256 of the decoded latent grid as int32 LE, and its shape."""
    latent = decode_image_latents(data).numpy()
    return hashlib.sha256(latent.astype("<i4").tobytes()).hexdigest(), list(latent.shape)


def main() -> None:
    pixels = read_image(SAMPLE)
    entries = []
    width, height = CROP
    cases = [(f"q{quality:g}", pixels, quality, None) for quality in QUALITIES]
    cases.append(("crop-q4", pixels[:height, :width], 4.0, [width, height]))
    for info in registry.shipped("image"):
        for label, source, quality, crop in cases:
            data = encode_image(source, quality, model=info.model_id)
            name = f"{info.model_id}-{label}.lc"
            (OUT / name).write_bytes(data)
            digest, shape = latent_digest(data)
            entries.append({"file": name, "model": info.model_id, "weights_sha256": info.sha256,
                            "quality": quality, "crop": crop, "latent_sha256": digest,
                            "latent_shape": shape,
                            "bpp": len(data) * 8 / (source.shape[0] * source.shape[1]),
                            "psnr": psnr(source, decode_image(data))})
            print(f"{name}: {entries[-1]['bpp']:.3f} bpp, {entries[-1]['psnr']:.2f} dB")
    (OUT / "models.json").write_text(json.dumps({"sample": "testdata/sample.png",
                                                 "vectors": entries}, indent=1) + "\n")


if __name__ == "__main__":
    main()
