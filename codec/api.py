"""The library API: bytes in, results out. The CLI is a thin shell over these functions."""

from __future__ import annotations

import io
import os
from typing import BinaryIO, Union

from .bitstream.container import describe
from .bitstream.errors import CodecError

Source = Union[bytes, bytearray, memoryview, BinaryIO]


def info(data: Source) -> dict:
    """Describe a `.lc` file after verifying every chunk.

    ``data`` is the file's bytes (or a binary file object). The result holds at least
    ``media`` ("image", "video" or "audio"), ``version`` (the format version, "major.minor"),
    ``model`` and the geometry (image: ``width``, ``height``, ...). Raises :class:`CodecError`
    for anything that is not a valid file.
    """
    if isinstance(data, (bytes, bytearray, memoryview)):
        return describe(io.BytesIO(bytes(data)))
    if isinstance(data, (str, os.PathLike)):
        raise TypeError("info() takes the file's bytes; open the file first, or use info_file()")
    return describe(data)


def info_file(path: Union[str, os.PathLike]) -> dict:
    """:func:`info` for a file on disk; errors name the file."""
    try:
        with open(path, "rb") as stream:
            return describe(stream)
    except CodecError as error:
        raise error.with_source(os.fspath(path))
