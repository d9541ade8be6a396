"""codec: learned image, video and audio compression in one deterministic `.lc` format.

Public API: :func:`encode_image`, :func:`decode_image`, :func:`info` and :class:`CodecError`;
video and audio add their ``encode_*``/``decode_*`` as they arrive. Importing this package does
not import torch; the codecs load it on first use.
"""

from __future__ import annotations

__version__ = "0.1.0"

from .api import info
from .bitstream.errors import CodecError

__all__ = ["__version__", "info", "CodecError", "encode_image", "decode_image"]


def __getattr__(name: str):
    """Media codecs load on first use, so ``import codec`` stays light (no torch)."""
    if name in ("encode_image", "decode_image"):
        from . import image

        return getattr(image, name)
    raise AttributeError(f"module 'codec' has no attribute {name!r}")
