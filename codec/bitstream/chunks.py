"""Chunk framing of SPEC.md Section 1: signature, version, then type/length/payload/CRC chunks.

A writer needs no seeking; a reader holds one chunk at a time and checks every length against
the limits before reading it.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from typing import BinaryIO, Iterator

from .errors import ChecksumError, FormatError, LimitError, TruncatedError, UnsupportedVersionError

SIGNATURE = b"\x89LCF"
FORMAT_MAJOR = 1
FORMAT_MINOR = 1  # the newest minor version this library reads and writes (1.1 adds ALPH)
FORMAT_VERSION = f"{FORMAT_MAJOR}.{FORMAT_MINOR}"
PREAMBLE_SIZE = len(SIGNATURE) + 2
CHUNK_OVERHEAD = 12  # type, length, CRC
MAX_CHUNK_PAYLOAD = 1 << 28
_READ_PIECE = 1 << 20
_TYPE_CHARS = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")


def preamble(major: int = FORMAT_MAJOR, minor: int = FORMAT_MINOR) -> bytes:
    """The first bytes of every file: signature and format version."""
    return SIGNATURE + bytes((major, minor))


def frame_chunk(chunk_type: bytes, payload: bytes) -> bytes:
    """Serialise one chunk: type, length, payload, CRC-32 of type and payload."""
    if len(chunk_type) != 4 or not set(chunk_type) <= _TYPE_CHARS:
        raise ValueError(f"chunk type must be 4 ASCII letters or digits, got {chunk_type!r}")
    if len(payload) > MAX_CHUNK_PAYLOAD:
        raise LimitError(f"chunk {chunk_type.decode()} payload of {len(payload)} bytes exceeds "
                         f"the limit of {MAX_CHUNK_PAYLOAD} bytes")
    crc = zlib.crc32(payload, zlib.crc32(chunk_type))
    return b"".join((chunk_type, struct.pack("<I", len(payload)), payload, struct.pack("<I", crc)))


@dataclass(frozen=True)
class Chunk:
    """One verified chunk: its type, payload, number in the file (0 = HEAD) and byte offset."""

    type: str
    payload: bytes
    number: int
    offset: int

    @property
    def size(self) -> int:
        return CHUNK_OVERHEAD + len(self.payload)


def _read_exact(stream: BinaryIO, size: int) -> bytes:
    """Read up to ``size`` bytes, in bounded pieces so a lying length cannot force a huge buffer.

    Short reads (pipes) are retried; fewer than ``size`` bytes come back only at end of stream.
    """
    out = bytearray()
    while len(out) < size:
        piece = stream.read(min(_READ_PIECE, size - len(out)))
        if not piece:
            break
        out += piece
    return bytes(out)


def read_preamble(stream: BinaryIO) -> tuple[int, int]:
    """Check the signature and the major version; return (major, minor)."""
    head = _read_exact(stream, PREAMBLE_SIZE)
    if len(head) < len(SIGNATURE) or head[: len(SIGNATURE)] != SIGNATURE:
        if SIGNATURE.startswith(head):
            raise TruncatedError("file ends before its signature is complete", offset=len(head))
        raise FormatError("not a .lc file: the signature 89 4C 43 46 is missing", offset=0)
    if len(head) < PREAMBLE_SIZE:
        raise TruncatedError("file ends inside its version field", offset=len(head))
    major, minor = head[4], head[5]
    if major != FORMAT_MAJOR:
        advice = "upgrade codec" if major > FORMAT_MAJOR else "use an older release of codec"
        raise UnsupportedVersionError(
            f"file needs format version {major}.{minor}; this decoder reads format version "
            f"{FORMAT_VERSION} (and any {FORMAT_MAJOR}.x file): {advice}", offset=4)
    return major, minor


class ChunkReader:
    """Iterate over the verified chunks of a stream, after its preamble, up to and including DONE.

    Only framing is checked here (charset, limit, completeness, CRC); chunk order and contents
    are the container's business.
    """

    def __init__(self, stream: BinaryIO, *, at: int | None = None) -> None:
        """Read the preamble, or with ``at`` start at that byte offset of a seekable stream."""
        self._stream = stream
        if at is None:
            self.major, self.minor = read_preamble(stream)
            self.position = PREAMBLE_SIZE
        else:
            stream.seek(at)
            self.major, self.minor = FORMAT_MAJOR, FORMAT_MINOR
            self.position = at

    def __iter__(self) -> Iterator[Chunk]:
        number = 0
        while True:
            chunk = self.read_chunk(number)
            if chunk is None:
                return
            yield chunk
            number += 1

    def read_chunk(self, number: int) -> Chunk | None:
        """Read the next chunk, or return None at a clean end of the stream."""
        start = self.position
        header = _read_exact(self._stream, 8)
        if not header:
            return None
        if len(header) < 8:
            raise TruncatedError("file ends inside a chunk header", offset=start, chunk=number)
        chunk_type, length = header[:4], struct.unpack_from("<I", header, 4)[0]
        if not set(chunk_type) <= _TYPE_CHARS:
            raise FormatError(f"invalid chunk type {chunk_type!r}: the data is corrupt or not "
                              "a chunk boundary", offset=start, chunk=number)
        name = chunk_type.decode("ascii")
        if length > MAX_CHUNK_PAYLOAD:
            raise LimitError(f"chunk {name} declares {length} payload bytes, over the limit of "
                             f"{MAX_CHUNK_PAYLOAD}", offset=start, chunk=number)
        body = _read_exact(self._stream, length + 4)
        if len(body) < length + 4:
            raise TruncatedError(f"file ends inside chunk {name} ({len(body)} of {length + 4} "
                                 "bytes present)", offset=start, chunk=number)
        payload, crc = body[:length], struct.unpack_from("<I", body, length)[0]
        if zlib.crc32(payload, zlib.crc32(chunk_type)) != crc:
            raise ChecksumError(f"chunk {name} fails its CRC-32 check: the file is corrupt",
                                offset=start, chunk=number)
        self.position = start + 8 + length + 4
        return Chunk(name, payload, number, start)
