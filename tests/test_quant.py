"""The exact integer convolution of the entropy-parameter path against a plain float64 one."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from codec.models.quant import exact_conv2d


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), channels=st.integers(1, 6),
       kernel=st.sampled_from([1, 3, 5]), height=st.integers(1, 9), width=st.integers(1, 9),
       dead=st.floats(0.0, 1.0),
       gather=st.booleans(), block_bytes=st.sampled_from([1, 4096, 64 << 20]))
def test_exact_conv2d_matches_float64_convolution(seed, channels, kernel, height, width, dead,
                                                  gather, block_bytes):
    """Dead input channels skipped, selected output positions and row bands give the same
    integers as one plain convolution: the fast paths cannot change a decoded file."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randint(-32767, 32768, (2, channels, height, width), generator=generator)
    x[:, torch.rand(channels, generator=generator) < dead] = 0
    weight = torch.randint(-127, 128, (4, channels, kernel, kernel), generator=generator,
                           dtype=torch.int8)
    padding = kernel // 2
    expected = F.conv2d(x.double(), weight.double(), padding=padding).to(torch.int64)
    positions = torch.rand(height, width, generator=generator) < 0.5 if gather else None
    result = exact_conv2d(x, weight, padding, positions, block_bytes=block_bytes)
    if positions is not None:
        expected = expected[:, :, positions].unsqueeze(-1)
    assert result.dtype == torch.int64 and torch.equal(result, expected)
