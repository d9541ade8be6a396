"""Streaming writer and reader of whole `.lc` files (SPEC.md Sections 1, 3 and 4).

The writer emits chunks as they come and never seeks; the reader verifies each chunk (CRC,
limits, order) before handing it over and holds one chunk at a time.
"""

from __future__ import annotations

import io
import struct
from typing import BinaryIO, Iterator, Union

import numpy as np

from .alpha import pack_alpha, unpack_alpha
from .chunks import CHUNK_OVERHEAD, FORMAT_MAJOR, PREAMBLE_SIZE, ChunkReader, frame_chunk, preamble
from .errors import CodecError, FormatError, LimitError, TruncatedError
from .rans import read_directory
from .header import AudioGeometry, Header, ImageGeometry, Media, VideoGeometry
from .tables import TableSet
from .units import Frame, FrameType, Segment, pack_index, unpack_index

Unit = Union[Frame, Segment]
KNOWN_TYPES = frozenset({"HEAD", "TABL", "FRAM", "SEGM", "ALPH", "INDX", "DONE"})
DONE_SIZE = CHUNK_OVERHEAD
MAX_SAMPLES = 1 << 48
MAX_FRAMES = (1 << 31) - 1


class ContainerWriter:
    """Write one file to a binary stream: header, optional tables, coded units, then DONE.

    Use as a context manager or call :meth:`close`; an exception inside the ``with`` block leaves
    the file unterminated on purpose, so a reader sees it as truncated rather than complete.
    """

    def __init__(self, stream: BinaryIO, header: Header, tables: TableSet | None = None) -> None:
        self._stream = stream
        self.header = header
        self._position = 0
        self._units = 0
        self._samples = 0
        self._intra: list[tuple[int, int]] = []
        self._closed = False
        self._alpha_written = False
        self._write(preamble(FORMAT_MAJOR, minor_version(header)))
        self.write_chunk(b"HEAD", header.pack())
        if tables is not None:
            self.write_chunk(b"TABL", tables.pack())

    def _write(self, data: bytes) -> None:
        self._stream.write(data)
        self._position += len(data)

    def write_chunk(self, chunk_type: bytes, payload: bytes) -> int:
        """Write any chunk (extensions included); return the byte offset where it starts."""
        if self._closed:
            raise ValueError("the file is already closed")
        start = self._position
        self._write(frame_chunk(chunk_type, payload))
        return start

    def write_frame(self, payload: bytes, frame_type: FrameType = FrameType.INTRA,
                    references: tuple[int, ...] = ()) -> int:
        """Append a coded picture; return its frame number."""
        media = self.header.media
        if media == Media.AUDIO:
            raise ValueError("an audio file holds segments, not frames")
        if media == Media.IMAGE and (self._units or frame_type != FrameType.INTRA):
            raise ValueError("an image file holds exactly one intra frame")
        frame = Frame(self._units, FrameType(frame_type), tuple(references), payload)
        offset = self.write_chunk(b"FRAM", frame.pack())
        if frame.type == FrameType.INTRA:
            self._intra.append((frame.number, offset))
        self._units += 1
        return frame.number

    def write_alpha(self, plane: np.ndarray) -> None:
        """Append the alpha plane (H×W uint8) of an image whose header has 4 channels."""
        geometry = self.header.geometry
        if not isinstance(geometry, ImageGeometry) or geometry.channels != 4:
            raise ValueError("only an image whose header has 4 channels carries an alpha plane")
        if self._alpha_written:
            raise ValueError("the alpha plane is already written")
        if tuple(plane.shape) != (geometry.height, geometry.width):
            raise ValueError(f"alpha plane of shape {tuple(plane.shape)} for a "
                             f"{geometry.width}x{geometry.height} image")
        self.write_chunk(b"ALPH", pack_alpha(plane))
        self._alpha_written = True

    def write_segment(self, payload: bytes, sample_count: int) -> int:
        """Append a coded audio segment of ``sample_count`` samples; return its first sample."""
        if self.header.media != Media.AUDIO:
            raise ValueError("only audio files hold segments")
        segment = Segment(self._samples, sample_count, payload)
        self.write_chunk(b"SEGM", segment.pack())
        self._samples += sample_count
        self._units += 1
        return segment.first_sample

    def close(self, index: bool = False) -> None:
        """Finish the file: optional index of intra frames (video), then DONE."""
        if self._closed:
            return
        geometry = self.header.geometry
        if isinstance(geometry, ImageGeometry) and self._units != 1:
            raise ValueError("an image file needs exactly one frame before it is closed")
        if isinstance(geometry, ImageGeometry) and (geometry.channels == 4) != self._alpha_written:
            raise ValueError("an image file has an alpha plane exactly when its header has 4 "
                             "channels")
        if isinstance(geometry, VideoGeometry) and geometry.frame_count not in (None, self._units):
            raise ValueError(f"header announces {geometry.frame_count} frames, "
                             f"{self._units} were written")
        if isinstance(geometry, AudioGeometry) and \
                geometry.sample_count not in (None, self._samples):
            raise ValueError(f"header announces {geometry.sample_count} samples, "
                             f"{self._samples} were written")
        if index:
            if self.header.media != Media.VIDEO:
                raise ValueError("only video files carry an index")
            self.write_chunk(b"INDX", pack_index(self._intra))
        self.write_chunk(b"DONE", b"")
        self._closed = True

    def __enter__(self) -> "ContainerWriter":
        return self

    def __exit__(self, kind, value, traceback) -> None:
        if kind is None:
            self.close()


def minor_version(header: Header) -> int:
    """The lowest minor version whose features a file uses: 1 for an image with alpha."""
    geometry = header.geometry
    return 1 if isinstance(geometry, ImageGeometry) and geometry.channels == 4 else 0


def _place(error: CodecError, number: int, offset: int) -> CodecError:
    if error.chunk is None:
        error.chunk, error.offset = number, offset
        error.args = (error._compose(),)
    return error


class ContainerReader:
    """Read a file from a binary stream: the header at once, then coded units one by one.

    Iterating yields :class:`Frame` or :class:`Segment` objects in file order after checking
    the rules of SPEC.md Section 1.2 and 4; it ends after DONE. ``tables`` holds the embedded
    table set (if any) before the first unit is yielded.
    """

    def __init__(self, stream: BinaryIO) -> None:
        self._chunks = ChunkReader(stream)
        self._stream = stream
        self.version = (self._chunks.major, self._chunks.minor)
        first = self._chunks.read_chunk(0)
        if first is None:
            raise TruncatedError("file ends before its HEAD chunk", offset=PREAMBLE_SIZE)
        if first.type != "HEAD":
            raise FormatError(f"the first chunk must be HEAD, found {first.type}",
                              offset=first.offset, chunk=0)
        self.header = self._located(Header.unpack, first.payload, first)
        self.tables: TableSet | None = None
        self.alpha: np.ndarray | None = None  # H×W uint8, for an image with 4 channels
        self.index: list[tuple[int, int]] | None = None
        self.chunk_counts: dict[str, int] = {"HEAD": 1}
        self.frames = 0
        self.samples = 0
        self.done = False
        self._number = 1
        self.last_number, self.last_offset = 0, first.offset
        self._intra_offsets: dict[int, int] = {}

    @staticmethod
    def _located(parse, payload: bytes, chunk):
        """Run a payload parser, adding the chunk's number and offset to any error."""
        try:
            return parse(payload)
        except CodecError as error:
            raise _place(error, chunk.number, chunk.offset)

    def annotate(self, error: CodecError) -> CodecError:
        """Attach the position of the chunk read last (the unit being decoded) to ``error``."""
        return _place(error, self.last_number, self.last_offset)

    def __iter__(self) -> Iterator[Unit]:
        while not self.done:
            chunk = self._chunks.read_chunk(self._number)
            if chunk is None:
                raise TruncatedError("file ends before its DONE chunk",
                                     offset=self._chunks.position, chunk=self._number)
            self._number += 1
            self.last_number, self.last_offset = chunk.number, chunk.offset
            self.chunk_counts[chunk.type] = self.chunk_counts.get(chunk.type, 0) + 1
            unit = self._located(self._accept, chunk, chunk)
            if unit is not None:
                yield unit

    def _accept(self, chunk) -> Unit | None:
        """Check one chunk against the order rules; return it as a unit when it is one."""
        if self.index is not None and chunk.type != "DONE":
            raise FormatError(f"INDX must be followed by DONE, found {chunk.type}")
        media = self.header.media
        if chunk.type == "HEAD":
            raise FormatError("a second HEAD chunk")
        if chunk.type == "TABL":
            if self.tables is not None or self.frames or self.samples:
                raise FormatError("TABL must come once, before any coded unit")
            self.tables = TableSet.unpack(chunk.payload)
        elif chunk.type == "FRAM":
            return self._accept_frame(Frame.unpack(chunk.payload), chunk.offset)
        elif chunk.type == "SEGM":
            if media != Media.AUDIO:
                raise FormatError(f"a SEGM chunk in a {media.name.lower()} file")
            segment = Segment.unpack(chunk.payload)
            if segment.first_sample != self.samples:
                raise FormatError(f"segment starts at sample {segment.first_sample}, expected "
                                  f"{self.samples}")
            self.samples += segment.sample_count
            if self.samples > MAX_SAMPLES:
                raise LimitError("segments hold more than 2^48 samples")
            known = self.header.geometry.sample_count
            if known is not None and self.samples > known:
                raise FormatError(f"segments hold more than the {known} samples the header "
                                  "announces")
            return segment
        elif chunk.type == "ALPH":
            geometry = self.header.geometry
            if not isinstance(geometry, ImageGeometry) or geometry.channels != 4:
                raise FormatError("an ALPH chunk outside an image whose header has 4 channels")
            if self.alpha is not None:
                raise FormatError("a second ALPH chunk")
            self.alpha = unpack_alpha(chunk.payload, geometry.width, geometry.height)
        elif chunk.type == "INDX":
            if media != Media.VIDEO:
                raise FormatError("an INDX chunk outside a video file")
            entries = unpack_index(chunk.payload)
            for number, offset in entries:
                if self._intra_offsets.get(number) != offset:
                    raise FormatError(f"INDX points frame {number} at byte {offset}, where no "
                                      "intra frame of that number starts")
            self.index = entries
        elif chunk.type == "DONE":
            if chunk.payload:
                raise FormatError("the DONE chunk must be empty")
            self._finish()
        return None

    def _accept_frame(self, frame: Frame, offset: int) -> Frame:
        media = self.header.media
        if media == Media.AUDIO:
            raise FormatError("a FRAM chunk in an audio file")
        if frame.number != self.frames:
            raise FormatError(f"frame number {frame.number} where {self.frames} was expected")
        if frame.number >= MAX_FRAMES:
            raise LimitError("a file holds at most 2^31 - 1 frames")
        if media == Media.IMAGE and (frame.number > 0 or frame.type != FrameType.INTRA):
            raise FormatError("an image file holds exactly one intra frame")
        known = getattr(self.header.geometry, "frame_count", None)
        if known is not None and frame.number >= known:
            raise FormatError(f"more frames than the {known} the header announces")
        if frame.type == FrameType.INTRA:
            self._intra_offsets[frame.number] = offset
        self.frames += 1
        return frame

    def _finish(self) -> None:
        geometry = self.header.geometry
        if isinstance(geometry, ImageGeometry) and self.frames != 1:
            raise FormatError("an image file without its frame")
        if isinstance(geometry, ImageGeometry) and geometry.channels == 4 and self.alpha is None:
            raise FormatError("the header announces 4 channels but the file has no ALPH chunk")
        if isinstance(geometry, VideoGeometry) and geometry.frame_count not in (None, self.frames):
            raise FormatError(f"the header announces {geometry.frame_count} frames, the file "
                              f"holds {self.frames}")
        if isinstance(geometry, AudioGeometry) and \
                geometry.sample_count not in (None, self.samples):
            raise FormatError(f"the header announces {geometry.sample_count} samples, the file "
                              f"holds {self.samples}")
        if self._stream.read(1):
            raise FormatError("bytes follow the DONE chunk", offset=self._chunks.position)
        self.done = True

    def read_all(self) -> list[Unit]:
        """Every coded unit of the file (for images and short files)."""
        return list(self)


def read_index(stream: BinaryIO) -> list[tuple[int, int]] | None:
    """Find the trailing index of a seekable stream without reading the file (SPEC.md 4.3).

    Returns None when the file has no index. Offsets must still be checked against the chunk
    found there before use: see :func:`read_frame_at`.
    """
    end = stream.seek(0, io.SEEK_END)
    if end < PREAMBLE_SIZE + 2 * DONE_SIZE + 8:
        return None
    stream.seek(end - DONE_SIZE - 8)
    tail = stream.read(8 + DONE_SIZE)
    (length,) = struct.unpack_from("<I", tail)
    start = end - DONE_SIZE - CHUNK_OVERHEAD - length
    if tail[8:12] != b"DONE" or length < 8 or start < PREAMBLE_SIZE:
        return None
    chunk = ChunkReader(stream, at=start).read_chunk(-1)
    if chunk is None or chunk.type != "INDX":
        return None
    return unpack_index(chunk.payload)


def read_frame_at(stream: BinaryIO, offset: int, number: int) -> Frame:
    """Read the FRAM chunk at ``offset`` and check that it is frame ``number``."""
    chunk = ChunkReader(stream, at=offset).read_chunk(-1)
    if chunk is None or chunk.type != "FRAM":
        raise FormatError(f"no FRAM chunk at byte {offset}", offset=offset)
    frame = Frame.unpack(chunk.payload)
    if frame.number != number:
        raise FormatError(f"the index names frame {number} at byte {offset}, found frame "
                          f"{frame.number}", offset=offset)
    return frame


def describe(stream: BinaryIO) -> dict:
    """Read and verify a whole file; return its header and a summary of its contents."""
    reader = ContainerReader(stream)
    header = reader.header
    payload_bytes = 0
    substreams = []
    for unit in reader:
        payload_bytes += len(unit.payload)
        try:
            substreams.append(len(read_directory(unit.payload)[0]))
        except CodecError as error:
            raise reader.annotate(error)
    size = reader._chunks.position
    summary = {"format": "lc", "version": "%d.%d" % reader.version, **header.describe(),
               "bytes": size, "payload_bytes": payload_bytes}
    geometry = header.geometry
    if isinstance(geometry, ImageGeometry):
        summary["bits_per_pixel"] = round(8 * size / (geometry.width * geometry.height), 5)
    elif isinstance(geometry, VideoGeometry):
        summary["frames"] = reader.frames
        seconds = reader.frames / geometry.frame_rate
        if seconds:
            summary["kilobits_per_second"] = round(float(8 * size / seconds / 1000), 3)
    else:
        summary["samples"] = reader.samples
        summary["segments"] = reader.chunk_counts.get("SEGM", 0)
        if reader.samples:
            summary["kilobits_per_second"] = round(
                8 * size / (reader.samples / geometry.sample_rate) / 1000, 3)
    summary["substreams"] = max(substreams, default=0)
    summary["tables"] = "embedded" if reader.tables is not None else "model"
    summary["index"] = reader.index is not None
    summary["chunks"] = dict(reader.chunk_counts)
    return summary
