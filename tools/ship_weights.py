#!/usr/bin/env python3
"""Turn a training export into shipped weights: fp16 floats, a completed card, a loss check.

The integer entropy path and the frequency tables are stored exactly either way; fp16 only
touches the float transforms (g_a, h_a, g_s) and the gains. The script codes a few images with
both files and prints the bpp and PSNR differences, so "fp16 loses nothing" is measured, and
the registry line to paste into ``codec/models/registry.py``.

    python tools/ship_weights.py runs/image-cpu.safetensors \
        --out codec/models/weights/image-mref-v1.safetensors \
        --hardware "2-core CPU" --schedule "..." --check ../shared/data/images/kodak
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from codec.evaluation import psnr  # noqa: E402
from codec.image import decode_image, encode_image, read_image  # noqa: E402
from codec.models import registry  # noqa: E402
from codec.models.weights import card_of, load_model, save_model  # noqa: E402

CHECK_QUALITIES = (1.0, 4.0, 8.0)


def measure(path: Path, model_id: str, images: list[np.ndarray]) -> list[tuple[float, float]]:
    """(bpp, PSNR) per image and quality, coded with the weights at ``path``."""
    registry.register_file(path, model_id=model_id)
    results = []
    for pixels in images:
        for quality in CHECK_QUALITIES:
            data = encode_image(pixels, quality, model=model_id)
            decoded = decode_image(data)
            results.append((len(data) * 8 / (pixels.shape[0] * pixels.shape[1]),
                            psnr(pixels, decoded)))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path, help="fp32 export of tools/train_image.py")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--hardware", default="", help="where the steps ran, for the card")
    parser.add_argument("--schedule", default="", help="runs and settings, for the card")
    parser.add_argument("--steps", type=int, default=None,
                        help="total steps (default: the export card's step)")
    parser.add_argument("--check", type=Path, default=None,
                        help="folder of images: compare fp32 and fp16 on its first --count")
    parser.add_argument("--count", type=int, default=2)
    args = parser.parse_args()

    model, _ = load_model(args.source)
    card = card_of(args.source)
    card["steps"] = args.steps if args.steps is not None else card.get("step")
    card["config"] = model.config
    for key in ("hardware", "schedule"):
        if getattr(args, key):
            card[key] = getattr(args, key)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    digest = save_model(model, args.out, card, half=True)
    print(f"wrote {args.out} ({args.out.stat().st_size / 2**20:.1f} MiB), sha256 {digest}")

    if args.check is not None:
        paths = sorted(p for p in args.check.iterdir() if p.suffix.lower() == ".png")
        images = [read_image(p) for p in paths[:args.count]]
        full = measure(args.source, "check-fp32", images)
        half = measure(args.out, "check-fp16", images)
        bpp = max(abs(a[0] - b[0]) / a[0] for a, b in zip(full, half))
        quality = max(abs(a[1] - b[1]) for a, b in zip(full, half))
        print(json.dumps({"images": len(images), "qualities": CHECK_QUALITIES,
                          "max_relative_bpp_change": bpp, "max_psnr_change_db": quality}))
    print(f'register(ModelInfo("{args.out.stem}", "image", "{args.out.name}",\n'
          f'                   "{digest}", "..."))')


if __name__ == "__main__":
    main()
