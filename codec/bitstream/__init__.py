"""The `.lc` container and its entropy coding (SPEC.md). Knows nothing of networks or torch."""

from .chunks import FORMAT_MAJOR, FORMAT_MINOR, FORMAT_VERSION
from .container import ContainerReader, ContainerWriter, describe, read_frame_at, read_index
from .errors import (ChecksumError, CodecError, FormatError, LimitError, ModelMismatchError,
                     PayloadError, TruncatedError, UnsupportedVersionError)
from .header import (AudioGeometry, Colour, Header, ImageGeometry, Media, PixelFormat,
                     SampleFormat, VideoGeometry)
from .rans import SymbolDecoder, SymbolEncoder, decode_groups, encode_groups, set_num_threads
from .tables import TableSet
from .units import Frame, FrameType, Segment

__all__ = [
    "FORMAT_MAJOR", "FORMAT_MINOR", "FORMAT_VERSION", "ContainerReader", "ContainerWriter",
    "describe", "read_frame_at", "read_index", "ChecksumError", "CodecError", "FormatError",
    "LimitError", "ModelMismatchError", "PayloadError", "TruncatedError",
    "UnsupportedVersionError", "AudioGeometry", "Colour", "Header", "ImageGeometry", "Media",
    "PixelFormat", "SampleFormat", "VideoGeometry", "SymbolDecoder", "SymbolEncoder",
    "decode_groups", "encode_groups", "set_num_threads", "TableSet", "Frame", "FrameType",
    "Segment",
]
