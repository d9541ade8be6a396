"""The ``HEAD`` chunk (SPEC.md Section 3): media kind, model and weights digest, rate, geometry."""

from __future__ import annotations

import enum
import re
import struct
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from typing import Union

from .errors import FormatError, LimitError

_MODEL_ID = re.compile(rb"[a-z0-9._-]{1,64}\Z")
DIGEST_SIZE = 8
UNKNOWN_FRAMES = 0xFFFFFFFF
UNKNOWN_SAMPLES = (1 << 64) - 1
NO_MODEL = "none"
NO_MODEL_DIGEST = bytes(DIGEST_SIZE)


class Media(enum.IntEnum):
    IMAGE = 1
    VIDEO = 2
    AUDIO = 3


class PixelFormat(enum.IntEnum):
    RGB444 = 0
    YUV420 = 1
    YUV444 = 2


class SampleFormat(enum.IntEnum):
    S16 = 0
    S24 = 1
    F32 = 2


def _require(condition: bool, message: str, error: type = LimitError) -> None:
    if not condition:
        raise error(message)


@dataclass(frozen=True)
class Colour:
    """ITU-T H.273 code points; the default is sRGB (BT.709 primaries, sRGB transfer, RGB)."""

    primaries: int = 1
    transfer: int = 13
    matrix: int = 0
    full_range: bool = True

    def pack(self) -> bytes:
        for value in (self.primaries, self.transfer, self.matrix):
            _require(0 <= value <= 255, f"colour code point {value} is not a byte")
        return bytes((self.primaries, self.transfer, self.matrix, int(self.full_range)))

    @classmethod
    def unpack(cls, data: bytes) -> "Colour":
        _require(data[3] & 0xFE == 0, f"colour flags {data[3]:#x} set reserved bits", FormatError)
        return cls(data[0], data[1], data[2], bool(data[3] & 1))


@dataclass(frozen=True)
class ImageGeometry:
    width: int
    height: int
    channels: int = 3
    bit_depth: int = 8
    colour: Colour = field(default_factory=Colour)

    _LAYOUT = struct.Struct("<IIBB")

    def __post_init__(self) -> None:
        _require(1 <= self.width <= 65535 and 1 <= self.height <= 65535,
                 f"image size {self.width}x{self.height} is outside 1..65535 per side")
        _require(self.width * self.height <= 1 << 28,
                 f"image of {self.width}x{self.height} pixels exceeds the limit of 2^28 pixels")
        _require(1 <= self.channels <= 4, f"image channel count {self.channels} is outside 1..4")
        _require(1 <= self.bit_depth <= 16, f"bit depth {self.bit_depth} is outside 1..16")

    def pack(self) -> bytes:
        return self._LAYOUT.pack(self.width, self.height, self.channels, self.bit_depth) + \
            self.colour.pack()

    @classmethod
    def unpack(cls, data: bytes) -> "ImageGeometry":
        _require(len(data) >= cls._LAYOUT.size + 4, "HEAD is too short for image geometry",
                 FormatError)
        width, height, channels, depth = cls._LAYOUT.unpack_from(data)
        return cls(width, height, channels, depth, Colour.unpack(data[cls._LAYOUT.size:]))


@dataclass(frozen=True)
class VideoGeometry:
    width: int
    height: int
    frame_rate: Fraction
    frame_count: int | None = None
    pixel_format: PixelFormat = PixelFormat.YUV420
    bit_depth: int = 8
    colour: Colour = field(default_factory=lambda: Colour(1, 1, 1, False))

    _LAYOUT = struct.Struct("<IIBBIII")

    def __post_init__(self) -> None:
        _require(1 <= self.width <= 16384 and 1 <= self.height <= 16384,
                 f"video size {self.width}x{self.height} is outside 1..16384 per side")
        rate = Fraction(self.frame_rate)
        object.__setattr__(self, "frame_rate", rate)
        _require(0 < rate.numerator < 1 << 31 and 0 < rate.denominator < 1 << 31,
                 f"frame rate {rate} is outside the limits")
        _require(self.frame_count is None or 0 <= self.frame_count < 1 << 31,
                 f"frame count {self.frame_count} exceeds 2^31 - 1")
        _require(1 <= self.bit_depth <= 16, f"bit depth {self.bit_depth} is outside 1..16")
        object.__setattr__(self, "pixel_format", PixelFormat(self.pixel_format))

    def pack(self) -> bytes:
        count = UNKNOWN_FRAMES if self.frame_count is None else self.frame_count
        return self._LAYOUT.pack(self.width, self.height, self.pixel_format, self.bit_depth,
                                 self.frame_rate.numerator, self.frame_rate.denominator,
                                 count) + self.colour.pack()

    @classmethod
    def unpack(cls, data: bytes) -> "VideoGeometry":
        _require(len(data) >= cls._LAYOUT.size + 4, "HEAD is too short for video geometry",
                 FormatError)
        width, height, fmt, depth, num, den, count = cls._LAYOUT.unpack_from(data)
        _require(fmt in PixelFormat._value2member_map_, f"unknown pixel format {fmt}",
                 FormatError)
        _require(0 < num < 1 << 31 and 0 < den < 1 << 31,
                 f"frame rate {num}/{den} is outside the limits")
        return cls(width, height, Fraction(num, den), None if count == UNKNOWN_FRAMES else count,
                   PixelFormat(fmt), depth, Colour.unpack(data[cls._LAYOUT.size:]))


@dataclass(frozen=True)
class AudioGeometry:
    sample_rate: int
    channels: int
    sample_count: int | None = None
    sample_format: SampleFormat = SampleFormat.S16

    _LAYOUT = struct.Struct("<IBBQ")

    def __post_init__(self) -> None:
        _require(1 <= self.sample_rate <= 768000,
                 f"sample rate {self.sample_rate} Hz is outside 1..768000")
        _require(1 <= self.channels <= 64, f"channel count {self.channels} is outside 1..64")
        _require(self.sample_count is None or 0 <= self.sample_count <= 1 << 48,
                 f"sample count {self.sample_count} exceeds 2^48")
        object.__setattr__(self, "sample_format", SampleFormat(self.sample_format))

    def pack(self) -> bytes:
        count = UNKNOWN_SAMPLES if self.sample_count is None else self.sample_count
        return self._LAYOUT.pack(self.sample_rate, self.channels, self.sample_format, count)

    @classmethod
    def unpack(cls, data: bytes) -> "AudioGeometry":
        _require(len(data) >= cls._LAYOUT.size, "HEAD is too short for audio geometry",
                 FormatError)
        rate, channels, fmt, count = cls._LAYOUT.unpack_from(data)
        _require(fmt in SampleFormat._value2member_map_, f"unknown sample format {fmt}",
                 FormatError)
        return cls(rate, channels, None if count == UNKNOWN_SAMPLES else count, SampleFormat(fmt))


Geometry = Union[ImageGeometry, VideoGeometry, AudioGeometry]
_GEOMETRY = {Media.IMAGE: ImageGeometry, Media.VIDEO: VideoGeometry, Media.AUDIO: AudioGeometry}


@dataclass(frozen=True)
class Header:
    """Everything a decoder needs before the first coded unit."""

    geometry: Geometry
    model: str = NO_MODEL
    weights_digest: bytes = NO_MODEL_DIGEST
    quality: float = 0.0

    def __post_init__(self) -> None:
        _require(_MODEL_ID.match(self.model.encode("ascii", "replace")) is not None,
                 f"model identifier {self.model!r} must be 1-64 characters of a-z 0-9 . _ -",
                 FormatError)
        _require(len(self.weights_digest) == DIGEST_SIZE,
                 f"weights digest must be {DIGEST_SIZE} bytes", FormatError)
        milli = round(self.quality * 1000)
        _require(0 <= milli <= 65535, f"quality {self.quality} is outside 0..65.535")
        object.__setattr__(self, "quality", milli / 1000)

    @property
    def media(self) -> Media:
        return next(m for m, cls in _GEOMETRY.items() if isinstance(self.geometry, cls))

    def pack(self) -> bytes:
        model = self.model.encode("ascii")
        return b"".join((bytes((self.media, len(model))), model, self.weights_digest,
                         struct.pack("<H", round(self.quality * 1000)), self.geometry.pack()))

    @classmethod
    def unpack(cls, payload: bytes) -> "Header":
        _require(len(payload) >= 2, "HEAD is too short", FormatError)
        media, model_length = payload[0], payload[1]
        _require(media in _GEOMETRY, f"unknown media kind {media} (1 image, 2 video, 3 audio)",
                 FormatError)
        _require(1 <= model_length <= 64, f"model identifier length {model_length} is outside "
                 "1..64")
        end = 2 + model_length + DIGEST_SIZE + 2
        _require(len(payload) >= end, "HEAD is too short for its model fields", FormatError)
        model = payload[2:2 + model_length]
        _require(_MODEL_ID.match(model) is not None,
                 f"model identifier {model!r} has characters outside a-z 0-9 . _ -", FormatError)
        digest = payload[2 + model_length:end - 2]
        (milli,) = struct.unpack_from("<H", payload, end - 2)
        geometry = _GEOMETRY[Media(media)].unpack(payload[end:])
        return cls(geometry, model.decode("ascii"), bytes(digest), milli / 1000)

    def describe(self) -> dict:
        """A JSON-ready description (used by ``codec info``)."""
        geometry = asdict(self.geometry)
        for key, value in geometry.items():
            if isinstance(value, enum.Enum):
                geometry[key] = value.name.lower()
            elif isinstance(value, Fraction):
                geometry[key] = f"{value.numerator}/{value.denominator}"
        if "colour" in geometry:
            geometry["colour"] = dict(geometry["colour"])
        return {"media": self.media.name.lower(), "model": self.model,
                "weights_digest": self.weights_digest.hex(), "quality": self.quality, **geometry}
