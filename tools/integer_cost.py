#!/usr/bin/env python3
"""Rate cost of running the entropy-parameter path in integers.

For each image and quality: the float model's ideal rate (eval forward, rounded residuals,
float entropy path), and the size of the real `.lc` file written through the integer path
and integer tables. Prints both and the relative cost (target: under 1%).

    python tools/integer_cost.py --weights runs/image.safetensors [--data DIR] [--limit 4]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from codec.evaluation import list_images, load_image  # noqa: E402
from codec.image import _padded_tensor, encode_image  # noqa: E402
from codec.models import registry  # noqa: E402


def add_sample_arguments(parser: argparse.ArgumentParser) -> None:
    """--weights, and the sample to measure on: the first --limit images of --data at each of
    --qualities (shared with tools/rate_breakdown.py)."""
    parser.add_argument("--weights", type=Path, required=True)
    parser.add_argument("--data", type=Path,
                        default=Path(__file__).resolve().parents[2] / "shared/data/images/kodak")
    parser.add_argument("--limit", type=int, default=4)
    parser.add_argument("--qualities", default="1,4,8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_sample_arguments(parser)
    args = parser.parse_args()

    info = registry.register_file(args.weights)
    network, _ = registry.load(info)
    costs = []
    print(f"{'image':<14}{'q':>4}{'float bpp':>11}{'coded bpp':>11}{'cost':>8}")
    for image_path in list_images(args.data, args.limit):
        pixels = load_image(image_path)
        pixel_count = pixels.shape[0] * pixels.shape[1]
        for quality in (float(q) for q in args.qualities.split(",")):
            with torch.no_grad():
                out = network(_padded_tensor(pixels), torch.tensor([quality]))
            bits = sum(float(-torch.log2(lik).sum()) for lik in out["likelihoods"].values())
            ideal = bits / pixel_count
            coded = 8 * len(encode_image(pixels, quality, "candidate")) / pixel_count
            costs.append(coded / ideal - 1)
            print(f"{image_path.name:<14}{quality:>4g}{ideal:>11.4f}{coded:>11.4f}"
                  f"{100 * costs[-1]:>7.2f}%")
    print(f"median cost of integerisation (incl. container and coder overhead): "
          f"{100 * statistics.median(costs):.2f}%, mean {100 * np.mean(costs):.2f}%")


if __name__ == "__main__":
    main()
