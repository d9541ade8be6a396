"""Layers of the entropy-parameter path: trained with fake quantisation, run in exact integers.

Following Ballé, Johnston and Minnen, "Integer networks for data compression with latent-variable
models" (ICLR 2019): the networks that predict entropy parameters must give bit-identical outputs
on every machine, or decoding breaks. Each layer here has int8 weights (per output channel),
fixed-point activations (integers with a per-layer number of fraction bits) and a requantisation
by integer multiply and shift. The integer forward evaluates convolutions as a GEMM in float64
on integer-valued operands: every product and partial sum is an integer below 2^53, hence exact
whatever the summation order, thread count, batch size or device.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

WEIGHT_MAX = 127          # int8 weights
REQUANT_SHIFT = 20        # fraction bits of the requantisation multiplier
ACTIVATION_MAX = 32767    # hidden activations are 15-bit unsigned after ReLU


def ste_round(x: Tensor) -> Tensor:
    """Round in the forward pass, identity gradient (straight-through estimator)."""
    return x + (torch.round(x) - x).detach()


def fake_fixed(x: Tensor, fraction_bits: int, low: float, high: float) -> Tensor:
    """Snap ``x`` to the grid 2^-fraction_bits within [low, high] (integers), straight-through."""
    scale = float(1 << fraction_bits)
    return torch.clamp(ste_round(x * scale), low, high) / scale


def exact_conv2d(x: Tensor, weight: Tensor, padding: int, positions: Tensor | None = None,
                 block_bytes: int = 64 << 20) -> Tensor:
    """Convolution of integer tensors, exact: im2col then a float64 matrix product.

    ``x`` (B, C, H, W) and ``weight`` (O, C, k, k) hold integers; returns int64 (B, O, H', W'),
    or (B, O, P, 1) for the P output positions where the boolean (H', W') ``positions`` is set,
    in row-major order. Input channels that are zero everywhere are left out of the product, and
    large inputs are done in bands of output rows so the im2col buffer stays under
    ``block_bytes``; the arithmetic being exact, neither can change the result.
    """
    live = (x != 0).any(dim=(0, 2, 3))
    if not bool(live.all()):  # dead channels (ReLU, unused hyper-latents) add only zeros
        x, weight = x[:, live], weight[:, live]
    batch, channels, height, width = x.shape
    out_channels, _, k, _ = weight.shape
    out_h, out_w = height + 2 * padding - k + 1, width + 2 * padding - k + 1
    if positions is None:
        shape = (batch, out_channels, out_h, out_w)
    else:
        shape = (batch, out_channels, int(positions.sum()), 1)
    if channels == 0:
        return torch.zeros(shape, dtype=torch.int64, device=x.device)
    kernel = weight.reshape(out_channels, -1).to(torch.float64)
    if k == 1 and padding == 0:  # a plain matrix product: no padding or im2col needed
        columns = x.reshape(batch, channels, -1).to(torch.float64)
        if positions is not None:
            columns = columns[:, :, positions.reshape(-1)]
        return (kernel @ columns).reshape(shape).to(torch.int64)
    padded = F.pad(x.to(torch.float64), (padding,) * 4)
    rows = max(1, block_bytes // (8 * batch * channels * k * k * out_w))
    bands = []
    for top in range(0, out_h, rows):
        bottom = min(top + rows, out_h)
        columns = F.unfold(padded[:, :, top:bottom + k - 1], k)      # (B, C*k*k, L)
        if positions is not None:
            columns = columns[:, :, positions[top:bottom].reshape(-1)]
        bands.append(kernel @ columns)
    return torch.cat(bands, dim=2).reshape(shape).to(torch.int64)


class QuantConv2d(nn.Module):
    """Stride-1 'same' convolution with int8 weights and fixed-point input/output.

    ``in_bits`` / ``out_bits`` are the fraction bits of the input and output grids; ``relu``
    clamps the output to [0, ACTIVATION_MAX], otherwise it is clamped to ±``out_limit`` (grid
    units). ``upscale`` > 1 appends a pixel shuffle (sub-pixel convolution), which stays exact.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, in_bits: int,
                 out_bits: int, relu: bool = True, out_limit: int = ACTIVATION_MAX,
                 upscale: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels * upscale * upscale, kernel_size,
                              padding=kernel_size // 2)
        self.in_bits, self.out_bits, self.relu = in_bits, out_bits, relu
        self.out_limit, self.upscale = out_limit, upscale
        self.quantised = False  # fake quantisation on (QAT) or off (float pre-training)

    def _weight_scale(self) -> Tensor:
        return self.conv.weight.detach().abs().amax(dim=(1, 2, 3)).clamp_min(1e-8) / WEIGHT_MAX

    def _range(self) -> tuple[float, float]:
        return (0.0, float(ACTIVATION_MAX)) if self.relu else (-float(self.out_limit),
                                                                float(self.out_limit))

    def forward(self, x: Tensor) -> Tensor:
        weight = self.conv.weight
        if self.quantised:
            scale = self._weight_scale().view(-1, 1, 1, 1)
            weight = torch.clamp(ste_round(weight / scale), -WEIGHT_MAX, WEIGHT_MAX) * scale
        y = F.conv2d(x, weight, self.conv.bias, padding=self.conv.padding)
        if self.relu:
            y = F.relu(y)
        if self.quantised:
            y = fake_fixed(y, self.out_bits, *self._range())
        if self.upscale > 1:
            y = F.pixel_shuffle(y, self.upscale)
        return y

    @torch.no_grad()
    def integer_parameters(self) -> dict[str, Tensor]:
        """int8 weights, int64 per-channel multiplier and bias of the integer forward."""
        scale = self._weight_scale()
        weight = torch.clamp(torch.round(self.conv.weight / scale.view(-1, 1, 1, 1)),
                             -WEIGHT_MAX, WEIGHT_MAX).to(torch.int8)
        gain = scale.double() * 2.0 ** (self.out_bits - self.in_bits + REQUANT_SHIFT)
        bias = self.conv.bias.double() * 2.0 ** (self.out_bits + REQUANT_SHIFT)
        if gain.abs().max() >= 2.0 ** 27 or bias.abs().max() >= 2.0 ** 61:
            raise ValueError("integer layer out of the range SPEC.md 8.2 allows (|multiplier| "
                             "< 2^27, |bias| < 2^61): the weights have diverged")
        return {"weight": weight, "multiplier": torch.round(gain).to(torch.int64),
                "bias": torch.round(bias).to(torch.int64)}


def integer_conv(x: Tensor, params: dict[str, Tensor], layer: QuantConv2d,
                 positions: Tensor | None = None) -> Tensor:
    """The exact integer forward of ``layer``: int64 grid values in, int64 grid values out
    (at the ``positions`` only, as a (B, O, P, 1) column, where given)."""
    weight = params["weight"]
    acc = exact_conv2d(x, weight, weight.shape[-1] // 2, positions)
    multiplier = params["multiplier"].view(1, -1, 1, 1)
    bias = params["bias"].view(1, -1, 1, 1)
    y = (acc * multiplier + bias + (1 << (REQUANT_SHIFT - 1))) >> REQUANT_SHIFT
    low, high = layer._range()
    y = torch.clamp(y, int(low), int(high))
    if layer.upscale > 1:
        y = F.pixel_shuffle(y, layer.upscale)
    return y
