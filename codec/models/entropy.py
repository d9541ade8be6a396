"""Entropy models of the image codec: the scale table, Gaussian integer tables, likelihoods.

Scales are indexed on a log-spaced table (as in CompressAI's GaussianConditional); each index
owns an integer frequency table of a zero-mean discretised Gaussian, built once at export and
shipped with the weights, so the coder never evaluates a float distribution.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

SCALE_MIN, SCALE_MAX, SCALE_LEVELS = 0.11, 256.0, 64
LIKELIHOOD_BOUND = 1e-9
TAIL_SIGMAS = 5.0
MAX_HALF_WIDTH = 1500


def scale_table() -> np.ndarray:
    return np.exp(np.linspace(math.log(SCALE_MIN), math.log(SCALE_MAX), SCALE_LEVELS))


_LOG_MIN = math.log(SCALE_MIN)
_LOG_STEP = (math.log(SCALE_MAX) - math.log(SCALE_MIN)) / (SCALE_LEVELS - 1)


def scale_from_code(code: Tensor) -> Tensor:
    """Scale for a (rounded, clamped) scale code: the table's entry, differentiable in code.

    The clamp passes gradients through (straight-through), so a code that has left the table
    is still pulled back by the rate instead of sitting at the edge with no gradient.
    """
    clamped = code + (code.clamp(0, SCALE_LEVELS - 1) - code).detach()
    return torch.exp(_LOG_MIN + clamped * _LOG_STEP)


def gaussian_likelihood(residual: Tensor, scale: Tensor) -> Tensor:
    """P(round(residual)) under N(0, scale²) on unit bins, in a form stable in the tails."""
    factor = 1.0 / (scale.clamp_min(SCALE_MIN) * math.sqrt(2))
    distance = residual.abs()
    high = 0.5 * torch.erfc((distance - 0.5) * factor)   # Phi((0.5 - |r|) / s)
    low = 0.5 * torch.erfc((distance + 0.5) * factor)    # Phi((-0.5 - |r|) / s)
    return (high - low).clamp_min(LIKELIHOOD_BOUND)


def gaussian_pmfs() -> tuple[list[np.ndarray], list[int]]:
    """Probability vectors (escape mass last) and offsets for every scale of the table."""
    pmfs, offsets = [], []
    for scale in scale_table():
        half = int(min(max(1, math.ceil(scale * TAIL_SIGMAS)), MAX_HALF_WIDTH))
        edges = (np.arange(-half, half + 2) - 0.5) / (scale * math.sqrt(2))
        cdf = np.array([0.5 * math.erfc(-e) for e in edges])
        pmf = np.diff(cdf)
        pmfs.append(np.append(pmf, max(1.0 - pmf.sum(), 1e-12)))
        offsets.append(-half)
    return pmfs, offsets
