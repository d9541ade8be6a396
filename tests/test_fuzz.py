"""Corrupted and truncated files: a CodecError or a valid result, never another exception,
never a hang, never a large allocation."""

from __future__ import annotations

import struct
import time
import tracemalloc
import zlib

import pytest

from codec.bitstream import CodecError
from codec.bitstream.vectors import decode_symbol_file

from .conftest import VECTORS

FILES = ["image-none.lc", "video-none.lc", "audio-none.lc"]
MEMORY_LIMIT = 64 << 20   # far above what these ~2 kB files need when valid
TIME_LIMIT = 5.0


def attempt(data: bytes) -> str:
    """Decode fully; classify the outcome. Any other exception propagates and fails the test."""
    start = time.perf_counter()
    try:
        decode_symbol_file(data)
        outcome = "valid"
    except CodecError:
        outcome = "rejected"
    assert time.perf_counter() - start < TIME_LIMIT
    return outcome


def chunk_spans(data: bytes):
    position = 6
    while position < len(data):
        (length,) = struct.unpack_from("<I", data, position + 4)
        yield position, length
        position += 12 + length


def recrc(data: bytearray, start: int, length: int) -> None:
    """Make a chunk's CRC valid again so the corruption reaches the parsers behind it."""
    crc = zlib.crc32(bytes(data[start + 8:start + 8 + length]), zlib.crc32(data[start:start + 4]))
    data[start + 8 + length:start + 12 + length] = struct.pack("<I", crc)


def corruptions(data: bytes):
    """Every single-byte change (3 masks) as is, and again with the chunk's CRC repaired."""
    for position in range(len(data)):
        for mask in (0x01, 0x80, 0xFF):
            broken = bytearray(data)
            broken[position] ^= mask
            yield bytes(broken)
    for start, length in chunk_spans(data):
        for position in range(start + 8, start + 8 + length):
            for mask in (0x01, 0x10, 0xFF):
                broken = bytearray(data)
                broken[position] ^= mask
                recrc(broken, start, length)
                yield bytes(broken)


@pytest.mark.parametrize("name", FILES)
def test_every_corruption_and_truncation_gives_codec_error_or_valid_result(name):
    data = (VECTORS / name).read_bytes()
    tracemalloc.start()
    try:
        outcomes = {"valid": 0, "rejected": 0}
        for broken in corruptions(data):
            outcomes[attempt(broken)] += 1
        for length in range(len(data)):
            assert attempt(data[:length]) == "rejected"
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < MEMORY_LIMIT
    assert outcomes["rejected"] > 0.9 * sum(outcomes.values())
