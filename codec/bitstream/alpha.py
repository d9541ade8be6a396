"""The alpha plane of an image (SPEC.md Section 4.4, ``ALPH``): 8-bit samples coded losslessly.

Method 0 is a zlib stream (RFC 1950) of the samples in raster order. Inflating is bounded by
the image size before any output is kept, so a small chunk cannot expand into a large buffer.
"""

from __future__ import annotations

import zlib

import numpy as np

from .errors import FormatError

METHOD_ZLIB = 0
ZLIB_LEVEL = 9


def pack_alpha(plane: np.ndarray) -> bytes:
    """``ALPH`` payload of an H×W uint8 alpha plane (0 transparent, 255 opaque)."""
    plane = np.ascontiguousarray(plane, dtype=np.uint8)
    if plane.ndim != 2:
        raise ValueError(f"an alpha plane is H×W, got shape {plane.shape}")
    return bytes((METHOD_ZLIB,)) + zlib.compress(plane.tobytes(), ZLIB_LEVEL)


def unpack_alpha(payload: bytes, width: int, height: int) -> np.ndarray:
    """The H×W uint8 alpha plane of an ``ALPH`` payload for a ``width`` × ``height`` image;
    FormatError for an unknown method or a stream that is not exactly that many samples."""
    if not payload:
        raise FormatError("ALPH payload is empty")
    if payload[0] != METHOD_ZLIB:
        raise FormatError(f"ALPH coding method {payload[0]} is unknown (0 is zlib)")
    size = width * height
    inflater = zlib.decompressobj()
    try:
        samples = inflater.decompress(payload[1:], size + 1)  # one more reveals a long stream
    except zlib.error as error:
        raise FormatError(f"ALPH zlib stream is invalid ({error})") from None
    if len(samples) != size or not inflater.eof:
        raise FormatError(f"ALPH holds {'more' if len(samples) > size else 'fewer'} than the "
                          f"{size} samples of a {width}x{height} image")
    if inflater.unused_data:
        raise FormatError(f"{len(inflater.unused_data)} bytes follow the ALPH zlib stream")
    return np.frombuffer(samples, dtype=np.uint8).reshape(height, width)
