"""Encoder-side latent refinement: search the latents that minimise rate + λ·distortion.

The analysis transform is amortised: one network guesses the latents of every image, and its
guess is not the best for any one image. The encoder can improve it by gradient descent on the
cost the model was trained on, through the model's own fake-quantised entropy path and its
synthesis, with rounding relaxed by stochastic Gumbel annealing (Yang, Bamler and Mandt,
"Improving Inference for Neural Image Compression", NeurIPS 2020). Only the coded symbols
change: the bitstream, the decoder and its determinism are untouched, so a refined file decodes
with any decoder, bit for bit as any other file.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor
from torch.nn import functional as F

from .image_model import HYPER_STRIDE, LATENT_STRIDE, ImageModel, tiles
from .quant import ste_round

LEARNING_RATE = 0.01   # Adam step on latents whose quantisation step is 1; 0.02 diverges
TEMPERATURE = 0.5      # initial annealing temperature, falling linearly to 0
HARD_FRACTION = 0.05   # last steps round hard (straight-through), as the coder will
SEED = 0               # the annealing noise is seeded: the same input gives the same file


def soft_round(x: Tensor, temperature: float, generator: torch.Generator | None = None) -> Tensor:
    """A relaxed random choice between floor and ceiling of x, favouring the nearer one (SGA);
    at temperature 0, rounding with a straight-through gradient."""
    if temperature <= 0:
        return ste_round(x)
    floor = torch.floor(x).detach()
    fraction = (x - floor).clamp(1e-4, 1 - 1e-4)
    logits = torch.stack([-torch.atanh(fraction), -torch.atanh(1 - fraction)], -1) / temperature
    uniform = torch.rand(logits.shape, generator=generator, device=x.device).clamp(1e-10, 1.0)
    gumbel = -torch.log(-torch.log(uniform))
    weights = torch.softmax((logits + gumbel) / 0.5, dim=-1)
    return floor + weights[..., 1]


def coded_rate(model: ImageModel, y: Tensor, z: Tensor, quality: float, temperature: float = 0.0,
               generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """(bits, synthesis input) of coding latents (y, z), rounding relaxed by ``temperature``.

    Mirrors :meth:`ImageModel.code_latents`: z rounded to integers, each slice's residual from
    its predicted mean rounded, the rate read off the discretised Gaussians.
    """
    q = torch.full((1,), float(quality), device=y.device)
    z_hat = soft_round(z, temperature, generator)
    values = z_hat.permute(1, 0, 2, 3).reshape(z_hat.shape[1], 1, -1)
    z_likelihood, _, _ = model.entropy_bottleneck._likelihood(values)
    bits = -torch.log2(z_likelihood.clamp_min(1e-9)).sum()
    features = model._hyper_synthesis(z_hat)[:, :, :y.shape[2], :y.shape[3]]

    def quantise(residual: Tensor) -> tuple[Tensor, Tensor]:
        relaxed = soft_round(residual, temperature, generator)
        return relaxed, relaxed

    y_hat, likelihoods = model.slice_pass(y, features, quantise)
    bits = bits - torch.log2(likelihoods).sum()
    return bits, y_hat * model._interpolate(model.inverse_gain, q)


def synthesis_error(model: ImageModel, y_synthesis: Tensor, x: Tensor, size: tuple[int, int],
                    backward: bool = False) -> float:
    """Summed squared error of g_s(y_synthesis) against x over the real ``size`` (height,
    width); with ``backward``, its gradient is added to ``y_synthesis.grad``.

    The synthesis runs in tiles with a margin beyond its receptive field, so memory is bounded
    by the tile whatever the image size, and the gradient is that of the whole image.
    """
    height, width = size
    latent_h, latent_w = y_synthesis.shape[2:]
    total = 0.0
    for (top, bottom, left, right), (t0, t1, l0, l1) in tiles(latent_h, latent_w):
        rows = slice(top * LATENT_STRIDE, min(bottom * LATENT_STRIDE, height))
        cols = slice(left * LATENT_STRIDE, min(right * LATENT_STRIDE, width))
        if rows.start >= rows.stop or cols.start >= cols.stop:
            continue
        with torch.set_grad_enabled(backward):
            piece = model.g_s(y_synthesis[:, :, t0:t1, l0:l1])
            piece = piece[:, :, rows.start - t0 * LATENT_STRIDE:rows.stop - t0 * LATENT_STRIDE,
                          cols.start - l0 * LATENT_STRIDE:cols.stop - l0 * LATENT_STRIDE]
            error = (piece - x[:, :, rows, cols]).square().sum()
        if backward:
            error.backward(inputs=[y_synthesis])
        total += float(error.detach())
    return total


def _lmbda(quality: float) -> float:
    return float(ImageModel.lmbda(torch.tensor([float(quality)])))


def refine_latents(model: ImageModel, x: Tensor, y: Tensor, quality: float, steps: int,
                   size: tuple[int, int] | None = None,
                   progress: Callable[[int], None] | None = None) -> tuple[Tensor, Tensor]:
    """Refined (y, integer z) for the padded image x (1×3×H×W) from the analysis guess y.

    ``steps`` iterations of Adam on λ·255²·MSE + bits per pixel, the temperature falling
    linearly to 0; ``size`` is the real image's (height, width) inside x (default: all of x);
    ``progress`` is called with 1 after every step. The model's parameters are only read.
    """
    height, width = size or (x.shape[2], x.shape[3])
    pixels = height * width
    distortion_weight = _lmbda(quality) * 255 ** 2 / (3 * pixels)
    pad_h, pad_w = -y.shape[2] % HYPER_STRIDE, -y.shape[3] % HYPER_STRIDE
    with torch.no_grad():
        z = model.h_a(F.pad(y, (0, pad_w, 0, pad_h)))
    y = y.detach().clone().requires_grad_(True)
    z = z.detach().clone().requires_grad_(True)
    optimiser = torch.optim.Adam([y, z], lr=LEARNING_RATE)
    generator = torch.Generator(device=x.device).manual_seed(SEED)
    soft_steps = max(1, round(steps * (1 - HARD_FRACTION)))
    for step in range(steps):
        temperature = TEMPERATURE * max(0.0, 1 - step / soft_steps)
        with torch.enable_grad():
            bits, y_synthesis = coded_rate(model, y, z, quality, temperature, generator)
            leaf = y_synthesis.detach().requires_grad_(True)
            synthesis_error(model, leaf, x, (height, width), backward=True)
            y.grad, z.grad = torch.autograd.grad(
                [bits / pixels, y_synthesis], [y, z],
                grad_outputs=[torch.ones_like(bits), leaf.grad * distortion_weight])
        optimiser.step()
        if progress is not None:
            progress(1)
    return y.detach(), torch.round(z.detach()).to(torch.int64)
