"""Which torch device the networks run on: CPU, or a CUDA GPU when asked for.

Any device decodes the same latents (the entropy-parameter path is exact integer arithmetic,
done as float64 products), so only devices with exact float64 matrix products are offered.
"""

from __future__ import annotations

import torch

DEVICE_CHOICES = "cpu, cuda, cuda:N or auto"


def resolve_device(spec: str | torch.device | None = None) -> torch.device:
    """The torch device for ``spec``: None or "cpu" -> CPU, "auto" -> the first CUDA GPU if
    there is one, else CPU, "cuda" / "cuda:N" -> that GPU. Raises ValueError, saying why, for
    anything else or for a GPU this machine does not have."""
    if spec is None:
        return torch.device("cpu")
    if isinstance(spec, str) and spec.strip().lower() == "auto":
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(spec.strip().lower() if isinstance(spec, str) else spec)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(f"unknown device {spec!r} (use {DEVICE_CHOICES})") from None
    if device.type == "cpu":
        return torch.device("cpu")
    if device.type != "cuda":
        raise ValueError(f"device {spec!r} is not supported: the integer entropy path needs "
                         f"exact float64 arithmetic, which only CPU and CUDA offer here "
                         f"(use {DEVICE_CHOICES})")
    if not torch.cuda.is_available():
        build = "" if torch.version.cuda else ", a CPU-only build"
        raise ValueError(f"device {spec!r}: CUDA is not available on this machine (torch "
                         f"{torch.__version__}{build})")
    index = 0 if device.index is None else device.index
    if index >= torch.cuda.device_count():
        raise ValueError(f"device {spec!r}: this machine has {torch.cuda.device_count()} CUDA "
                         f"device(s), numbered from 0")
    return torch.device("cuda", index)
