"""codec: learned image, video and audio compression in one deterministic `.lc` format.

Public API: :func:`info` and :class:`CodecError`; the media codecs add ``encode_*`` and
``decode_*`` functions as they arrive. Importing this package does not import torch.
"""

from __future__ import annotations

__version__ = "0.1.0"

from .api import info
from .bitstream.errors import CodecError

__all__ = ["__version__", "info", "CodecError"]
