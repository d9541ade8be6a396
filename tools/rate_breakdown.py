#!/usr/bin/env python3
"""Where the image model's rate goes, and what each reference of the entropy model saves.

For each quality: the ideal rate (float entropy path, rounded residuals, as the eval forward)
split into the hyper-latent z and, per channel slice, the anchor and non-anchor halves of the
checkerboard; the number of z channels that carry information; then the rate with one
reference removed at a time (hyperprior: z set to its medians; spatial: no anchor context for
the second pass; channel: earlier slices zeroed). A reference that saves little is one the
training has not learnt to use; one that costs a lot when removed may only mean the network
sees inputs it never saw (removal is out of distribution), so compare checkpoints rather than
read the figures as savings. Beside the PSNR of the eval forward it prints the transforms'
own bound, g_s(g_a(x)) with no quantisation: where the two are close, more rate cannot buy
quality and the transforms are the limit. A diagnosis tool for training runs, not a benchmark.

    python tools/rate_breakdown.py --weights runs/image.safetensors [--data DIR] [--limit 4]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from integer_cost import add_sample_arguments  # noqa: E402  (a sibling script in tools/)
from codec.evaluation import list_images, load_image  # noqa: E402
from codec.image import _padded_tensor  # noqa: E402
from codec.models import registry  # noqa: E402
from codec.models.entropy import gaussian_likelihood, scale_from_code  # noqa: E402
from codec.models.image_model import ImageModel, anchor_mask  # noqa: E402

ABLATIONS = ("hyperprior", "spatial", "channel")


def _bits(likelihood: Tensor) -> float:
    return float(-torch.log2(likelihood).sum())


def _squared_error(x_hat: Tensor, x: Tensor, height: int, width: int) -> float:
    return float((x_hat.clamp(0, 1) - x)[:, :, :height, :width].pow(2).sum() * 255 ** 2)


def _psnr(squared_error: float, values: int) -> float:
    return 10 * float(np.log10(255 ** 2 * values / squared_error))


@torch.no_grad()
def y_bits(model: ImageModel, y: Tensor, z: Tensor, without: str | None = None
           ) -> tuple[list[tuple[float, float]], Tensor]:
    """Bits of the gained latent y per slice as (anchor, non-anchor), given its hyper-latent z
    (``ImageModel.analyse``), with one reference removed if asked; also the decoded y."""
    if without == "hyperprior":
        medians = model.entropy_bottleneck._get_medians().view(1, -1, 1, 1)
        z = torch.round(medians).expand_as(z)
    # z covers whole hyper-latent positions; keep the part over y's grid, as coding does
    features = model._hyper_synthesis(z)[:, :, :y.shape[2], :y.shape[3]]
    mask = anchor_mask(y.shape[2], y.shape[3])
    decoded, bits = [], []
    for index, (start, size) in enumerate(zip(model.starts, model.slices)):
        y_slice = y[:, start:start + size]
        earlier = [torch.zeros_like(d) for d in decoded] if without == "channel" else decoded
        base = model._base_inputs(index, features, earlier)
        no_context = torch.zeros_like(base[:, :1]).expand(-1, model.config["context"], -1, -1)
        mean_a, code_a = model._slice_parameters(index, base, no_context)
        anchors = (torch.round(y_slice - mean_a) + mean_a) * mask
        spatial = no_context if without == "spatial" else model.spatial_context[index](anchors)
        mean_n, code_n = model._slice_parameters(index, base, spatial)
        mean = torch.where(mask, mean_a, mean_n)
        code = torch.where(mask, code_a, code_n)
        residual = torch.round(y_slice - mean)
        decoded.append(residual + mean)
        likelihood = gaussian_likelihood(residual, scale_from_code(torch.round(code)))
        bits.append((_bits(likelihood[:, :, mask]), _bits(likelihood[:, :, ~mask])))
    return bits, torch.cat(decoded, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_sample_arguments(parser)
    args = parser.parse_args()
    torch.set_grad_enabled(False)

    network, _ = registry.load(registry.register_file(args.weights))
    images = [load_image(path) for path in list_images(args.data, args.limit)]
    pixels = sum(image.shape[0] * image.shape[1] for image in images)
    inputs = [_padded_tensor(image) for image in images]
    analysed = [network.g_a(x) for x in inputs]  # g_a does not depend on the quality
    print(f"{len(images)} images from {args.data}; bpp summed over them; float entropy path")
    for quality in (float(q) for q in args.qualities.split(",")):
        slices = np.zeros((len(network.slices), 2))
        ablated = dict.fromkeys(ABLATIONS, 0.0)
        z_bits, z_channel_bits = 0.0, 0.0
        coded_error, bound_error = 0.0, 0.0
        inverse_gain = network._interpolate(network.inverse_gain, torch.tensor([quality]))
        for image, x, features in zip(images, inputs, analysed):
            height, width = image.shape[:2]
            y, z = network.analyse(x, quality, features)
            z = z.float()
            bits, y_hat = y_bits(network, y, z)
            coded_error += _squared_error(network.g_s(y_hat * inverse_gain), x, height, width)
            bound_error += _squared_error(network.g_s(y * inverse_gain), x, height, width)
            slices += np.array(bits)
            _, z_likelihood = network.entropy_bottleneck(z, training=False)
            z_bits += _bits(z_likelihood)
            z_channel_bits = z_channel_bits + (-torch.log2(z_likelihood)).sum((0, 2, 3))
            for name in ABLATIONS:
                ablated[name] += float(np.sum(y_bits(network, y, z, without=name)[0]))
        y_total = slices.sum()
        active = int((z_channel_bits > 0.01 * len(images)).sum())
        print(f"\nq{quality:g}: y {y_total / pixels:.4f} bpp, z {z_bits / pixels:.4f} bpp "
              f"({active} of {len(z_channel_bits)} z channels carry > 0.01 bit per image)")
        print(f"  PSNR {_psnr(coded_error, 3 * pixels):.2f} dB; transforms alone (no "
              f"quantisation) {_psnr(bound_error, 3 * pixels):.2f} dB")
        for size, (anchor, non_anchor) in zip(network.slices, slices):
            print(f"  slice of {size:>3} channels: anchors {anchor / pixels:.4f}, "
                  f"non-anchors {non_anchor / pixels:.4f} bpp")
        for name in ABLATIONS:
            print(f"  without the {name} reference: y {ablated[name] / pixels:.4f} bpp "
                  f"({100 * (ablated[name] / y_total - 1):+.1f}%)")


if __name__ == "__main__":
    main()
