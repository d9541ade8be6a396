"""The container: header fields, chunk order rules, versions, index, streaming."""

from __future__ import annotations

import io
import struct
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from codec.bitstream import (AudioGeometry, ChecksumError, Colour, ContainerReader,
                             ContainerWriter, FormatError, FrameType, Header, ImageGeometry,
                             LimitError, PixelFormat, SampleFormat, TruncatedError,
                             UnsupportedVersionError, VideoGeometry, read_frame_at, read_index)
from codec.bitstream.chunks import frame_chunk, preamble

colours = st.builds(Colour, st.integers(0, 255), st.integers(0, 255), st.integers(0, 255),
                    st.booleans())
geometries = st.one_of(
    st.builds(ImageGeometry, st.integers(1, 65535), st.integers(1, 4096), st.integers(1, 4),
              st.integers(1, 16), colours),
    st.builds(VideoGeometry, st.integers(1, 16384), st.integers(1, 16384),
              st.fractions(min_value=Fraction(1, 1000), max_value=1000, max_denominator=100000),
              st.none() | st.integers(0, 2**31 - 1), st.sampled_from(list(PixelFormat)),
              st.integers(1, 16), colours),
    st.builds(AudioGeometry, st.integers(1, 768000), st.integers(1, 64),
              st.none() | st.integers(0, 2**48), st.sampled_from(list(SampleFormat))))
headers = st.builds(Header, geometries, st.from_regex(r"[a-z0-9._-]{1,64}", fullmatch=True),
                    st.binary(min_size=8, max_size=8), st.integers(0, 65535).map(lambda q: q / 1000))


@settings(max_examples=200, deadline=None)
@given(headers)
def test_header_round_trip(header):
    assert Header.unpack(header.pack()) == header


def test_header_ignores_trailing_bytes_from_newer_minor_versions():
    header = Header(ImageGeometry(7, 5), "model-a", b"\1" * 8, 3.5)
    assert Header.unpack(header.pack() + b"future fields") == header


def write(header: Header, units: list[bytes], **close) -> bytes:
    out = io.BytesIO()
    writer = ContainerWriter(out, header)
    for payload in units:
        if header.media.name == "AUDIO":
            writer.write_segment(payload, 10)
        else:
            writer.write_frame(payload)
    writer.close(**close)
    return out.getvalue()


IMAGE = Header(ImageGeometry(4, 4), "m", b"\0" * 8, 1.0)


def test_reader_yields_units_in_order_and_stops_at_done():
    data = write(Header(AudioGeometry(8000, 2, 30), "m", b"\0" * 8, 1.0), [b"a", b"b", b"c"])
    reader = ContainerReader(io.BytesIO(data))
    units = reader.read_all()
    assert [u.first_sample for u in units] == [0, 10, 20]
    assert [u.payload for u in units] == [b"a", b"b", b"c"]
    assert reader.done and reader.samples == 30


def splice(data: bytes, chunks: list[bytes], version: tuple[int, int] = (1, 0)) -> bytes:
    return preamble(*version) + b"".join(chunks)


def chunks_of(data: bytes) -> list[bytes]:
    position, out = 6, []
    while position < len(data):
        (length,) = struct.unpack_from("<I", data, position + 4)
        out.append(data[position:position + 12 + length])
        position += 12 + length
    return out


def read(data: bytes):
    return ContainerReader(io.BytesIO(data)).read_all()


def test_newer_major_version_is_refused_naming_both_versions():
    data = splice(b"", chunks_of(write(IMAGE, [b"x"])), version=(2, 3))
    with pytest.raises(UnsupportedVersionError, match=r"needs format version 2\.3.*reads format "
                                                      r"version 1\.1"):
        read(data)


def test_newer_minor_version_and_unknown_chunks_are_accepted():
    parts = chunks_of(write(IMAGE, [b"x"]))
    data = splice(b"", [parts[0], frame_chunk(b"ABCD", b"?"), *parts[1:]], version=(1, 200))
    assert [u.payload for u in read(data)] == [b"x"]


@pytest.mark.parametrize("reorder, error", [
    (lambda p: p[1:], FormatError),                       # no HEAD first
    (lambda p: [p[0], p[0], *p[1:]], FormatError),        # HEAD twice
    (lambda p: p[:-1], TruncatedError),                   # no DONE
    (lambda p: [p[0], p[1], p[1], p[2]], FormatError),    # second image frame
    (lambda p: [p[0], p[2]], FormatError),                # image without frame
    (lambda p: [*p, b"x"], FormatError),                  # bytes after DONE
])
def test_order_rules(reorder, error):
    with pytest.raises(error):
        read(splice(b"", reorder(chunks_of(write(IMAGE, [b"x"])))))


def test_tables_after_a_unit_and_done_with_payload_are_refused():
    head, frame, done = chunks_of(write(IMAGE, [b"x"]))
    table = frame_chunk(b"TABL", struct.pack("<HHh", 1, 2, 0) + struct.pack("<2I", 1, (1 << 24) - 1))
    read(splice(b"", [head, table, frame, done]))
    with pytest.raises(FormatError, match="TABL"):
        read(splice(b"", [head, frame, table, done]))
    with pytest.raises(FormatError, match="DONE"):
        read(splice(b"", [head, frame, frame_chunk(b"DONE", b"x")]))


def test_crc_and_limits_are_checked_before_use():
    data = bytearray(write(IMAGE, [b"payload"]))
    data[-20] ^= 1  # inside the FRAM payload
    with pytest.raises(ChecksumError, match="chunk 1"):
        read(bytes(data))
    huge = preamble() + b"HEAD" + struct.pack("<I", (1 << 28) + 1)
    with pytest.raises(LimitError):
        read(huge)


def test_video_frames_references_and_index():
    out = io.BytesIO()
    header = Header(VideoGeometry(64, 48, Fraction(25), None), "m", b"\0" * 8, 2.0)
    with ContainerWriter(out, header) as writer:
        writer.write_frame(b"i0")
        writer.write_frame(b"p1", FrameType.PREDICTED, (0,))
        writer.write_frame(b"i2")
        writer.write_frame(b"p3", FrameType.PREDICTED, (2, 1))
        writer.close(index=True)
    data = out.getvalue()
    reader = ContainerReader(io.BytesIO(data))
    frames = reader.read_all()
    assert [f.references for f in frames] == [(), (0,), (), (2, 1)]
    index = read_index(io.BytesIO(data))
    assert index == reader.index and [n for n, _ in index] == [0, 2]
    assert read_frame_at(io.BytesIO(data), index[1][1], 2).payload == b"i2"
    with pytest.raises(FormatError):
        read_frame_at(io.BytesIO(data), index[1][1], 3)
    assert read_index(io.BytesIO(write(IMAGE, [b"x"]))) is None


def test_writer_refuses_what_the_reader_would_reject():
    with pytest.raises(ValueError):
        write(IMAGE, [b"a", b"b"])
    with pytest.raises(ValueError):
        write(Header(VideoGeometry(8, 8, Fraction(30), 3), "m", b"\0" * 8), [b"a"])
    with pytest.raises(FormatError):
        ContainerWriter(io.BytesIO(), Header(VideoGeometry(8, 8, 30), "m", b"\0" * 8)) \
            .write_frame(b"x", FrameType.PREDICTED, (0,))
    with pytest.raises(LimitError):
        ImageGeometry(70000, 1)
    with pytest.raises(FormatError):
        Header(ImageGeometry(1, 1), "Bad Model")


def test_announced_counts_must_match():
    data = write(Header(AudioGeometry(8000, 1, 20), "m", b"\0" * 8), [b"a", b"b"])
    patched = data.replace(struct.pack("<Q", 20), struct.pack("<Q", 30))
    parts = chunks_of(patched)
    head = frame_chunk(b"HEAD", parts[0][8:-4])
    with pytest.raises(FormatError, match="30 samples"):
        read(splice(b"", [head, *parts[1:]]))


def test_reader_works_on_a_non_seekable_stream_with_short_reads():
    data = write(Header(AudioGeometry(8000, 1), "m", b"\0" * 8), [b"a" * 5000, b"b"])

    class Trickle(io.RawIOBase):
        def __init__(self):
            self.data, self.position = data, 0

        def readable(self):
            return True

        def readinto(self, buffer):
            piece = self.data[self.position:self.position + min(len(buffer), 7)]
            buffer[:len(piece)] = piece
            self.position += len(piece)
            return len(piece)

    units = ContainerReader(Trickle()).read_all()
    assert [len(u.payload) for u in units] == [5000, 1]
