"""Coded units and the index (SPEC.md Section 4): ``FRAM``, ``SEGM`` and ``INDX`` payloads."""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

from .errors import FormatError, LimitError

MAX_REFERENCES = 4
MAX_SEGMENT_SAMPLES = 1 << 24
MAX_INDEX_ENTRIES = 1 << 24

_FRAME = struct.Struct("<IBB")
_SEGMENT = struct.Struct("<QI")
_INDEX_ENTRY = struct.Struct("<IQ")


class FrameType(enum.IntEnum):
    INTRA = 0
    PREDICTED = 1


@dataclass(frozen=True)
class Frame:
    """A coded picture: its number, type, reference frame numbers and coded payload."""

    number: int
    type: FrameType
    references: tuple[int, ...]
    payload: bytes

    def __post_init__(self) -> None:
        if self.type == FrameType.INTRA and self.references:
            raise FormatError(f"intra frame {self.number} lists references")
        if self.type == FrameType.PREDICTED and not 1 <= len(self.references) <= MAX_REFERENCES:
            raise LimitError(f"predicted frame {self.number} has {len(self.references)} "
                             f"references, outside 1..{MAX_REFERENCES}")
        if len(set(self.references)) != len(self.references):
            raise FormatError(f"frame {self.number} lists a reference twice")
        if any(not 0 <= ref < self.number for ref in self.references):
            raise FormatError(f"frame {self.number} references a frame that does not precede it: "
                              f"{list(self.references)}")

    def pack(self) -> bytes:
        head = _FRAME.pack(self.number, self.type, len(self.references))
        return head + struct.pack(f"<{len(self.references)}I", *self.references) + self.payload

    @classmethod
    def unpack(cls, data: bytes) -> "Frame":
        if len(data) < _FRAME.size:
            raise FormatError("FRAM payload is too short for its fields")
        number, kind, count = _FRAME.unpack_from(data)
        if kind not in FrameType._value2member_map_:
            raise FormatError(f"frame {number} has unknown frame type {kind}")
        if count > MAX_REFERENCES:
            raise LimitError(f"frame {number} declares {count} references, over "
                             f"{MAX_REFERENCES}")
        end = _FRAME.size + 4 * count
        if len(data) < end:
            raise FormatError(f"FRAM payload of frame {number} is too short for its references")
        references = struct.unpack_from(f"<{count}I", data, _FRAME.size)
        return cls(number, FrameType(kind), references, data[end:])


@dataclass(frozen=True)
class Segment:
    """A coded audio segment: index of its first sample, its length and coded payload."""

    first_sample: int
    sample_count: int
    payload: bytes

    def __post_init__(self) -> None:
        if not 1 <= self.sample_count <= MAX_SEGMENT_SAMPLES:
            raise LimitError(f"segment of {self.sample_count} samples is outside "
                             f"1..{MAX_SEGMENT_SAMPLES}")

    def pack(self) -> bytes:
        return _SEGMENT.pack(self.first_sample, self.sample_count) + self.payload

    @classmethod
    def unpack(cls, data: bytes) -> "Segment":
        if len(data) < _SEGMENT.size:
            raise FormatError("SEGM payload is too short for its fields")
        first, count = _SEGMENT.unpack_from(data)
        return cls(first, count, data[_SEGMENT.size:])


def pack_index(entries: list[tuple[int, int]]) -> bytes:
    """``INDX`` payload: (frame number, byte offset of its FRAM chunk) for intra frames."""
    if len(entries) > MAX_INDEX_ENTRIES:
        raise LimitError(f"an index holds at most {MAX_INDEX_ENTRIES} entries")
    body = b"".join(_INDEX_ENTRY.pack(number, offset) for number, offset in entries)
    return struct.pack("<I", len(entries)) + body + struct.pack("<I", 8 + len(body))


def unpack_index(data: bytes) -> list[tuple[int, int]]:
    if len(data) < 8:
        raise FormatError("INDX payload is too short")
    (count,) = struct.unpack_from("<I", data)
    if count > MAX_INDEX_ENTRIES:
        raise LimitError(f"INDX declares {count} entries, over {MAX_INDEX_ENTRIES}")
    if len(data) != 8 + _INDEX_ENTRY.size * count:
        raise FormatError(f"INDX payload of {len(data)} bytes does not hold {count} entries")
    (stated,) = struct.unpack_from("<I", data, len(data) - 4)
    if stated != len(data):
        raise FormatError(f"INDX states its length as {stated}, but it is {len(data)} bytes")
    entries = [_INDEX_ENTRY.unpack_from(data, 4 + _INDEX_ENTRY.size * i) for i in range(count)]
    if any(a[0] >= b[0] for a, b in zip(entries, entries[1:])):
        raise FormatError("INDX entries are not in increasing frame number")
    return entries
