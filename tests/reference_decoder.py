"""Independent reference decoder for the `.lc` container, format version 1.0.

This module was written from SPEC.md alone (no other implementation was read). It
follows the specification literally and favours clarity over speed: the rANS decoder
of Section 6.1 runs one Python loop iteration per symbol on unbounded Python integers.

Dependencies: the Python standard library (``struct``, ``zlib.crc32`` for the chunk
CRC only) and numpy.

Public API
----------
- ``ReferenceDecodeError``: raised for every violation of the specification.
- ``parse_file(data)``: parse and check a whole `.lc` file (Sections 1 to 5).
- ``decode_coded_payload(payload, tables, groups)``: decode one coded payload
  (Sections 5 and 6).
- ``decode_none_model(data)``: decode a file that uses the model ``none`` (Section 8.1).

Where SPEC.md leaves a choice open this decoder takes the choice noted in a comment
marked ``SPEC GAP`` (none at present: the revised SPEC.md settles every earlier one).
"""

import struct
import zlib

import numpy as np

__all__ = [
    "ReferenceDecodeError",
    "parse_file",
    "decode_coded_payload",
    "decode_none_model",
]


class ReferenceDecodeError(Exception):
    """A violation of SPEC.md found while decoding."""


# --------------------------------------------------------------------------------------
# Constants (Sections 1, 2, 6)
# --------------------------------------------------------------------------------------

SIGNATURE = b"\x89LCF"
DECODER_MAJOR = 1
DECODER_MINOR = 1

TYPE_CHARSET = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
MODEL_ID_CHARSET = frozenset(b"abcdefghijklmnopqrstuvwxyz0123456789._-")

KNOWN_TYPES = (b"HEAD", b"TABL", b"FRAM", b"SEGM", b"INDX", b"DONE")

MAX_CHUNK_PAYLOAD = 2 ** 28
MAX_MODEL_ID = 64
MAX_IMAGE_SIDE = 65535
MAX_IMAGE_AREA = 2 ** 28
MAX_IMAGE_CHANNELS = 4
MAX_BIT_DEPTH = 16
MAX_VIDEO_SIDE = 16384
MAX_RATE_TERM = 2 ** 31 - 1
MAX_FRAME_COUNT = 2 ** 31 - 1
UNKNOWN_FRAME_COUNT = 0xFFFFFFFF
MAX_REFERENCES = 4
MAX_SAMPLE_RATE = 768000
MAX_AUDIO_CHANNELS = 64
MAX_SAMPLE_COUNT = 2 ** 48
UNKNOWN_SAMPLE_COUNT = 2 ** 64 - 1
MAX_SEGMENT_LENGTH = 2 ** 24
MAX_SUBSTREAMS = 4096
MAX_SIDE_LENGTH = 65535
MAX_TABLES = 4096
MIN_TABLE_ENTRIES = 2
MAX_TABLE_ENTRIES = 4096
MIN_TABLE_OFFSET = -32768
MAX_TABLE_OFFSET = 32767
MIN_VALUE = -(2 ** 30)
MAX_VALUE = 2 ** 30
MAX_INDEX_ENTRIES = 2 ** 24

PRECISION = 24
PROB_TOTAL = 1 << PRECISION          # 2^24
PROB_MASK = PROB_TOTAL - 1           # 0xFFFFFF
WORD_BITS = 32
WORD_MASK = (1 << WORD_BITS) - 1
STATE_LOWER = 1 << WORD_BITS         # 2^32

MEDIA_NAMES = {1: "image", 2: "video", 3: "audio"}

NONE_MODEL = "none"
NONE_DIGEST = bytes(8)
NONE_MAX_VALUES = 2 ** 20


# --------------------------------------------------------------------------------------
# Byte reader with bounds checks
# --------------------------------------------------------------------------------------

class _Reader:
    """Reads little-endian fields from a bytes object; running short is a spec error."""

    def __init__(self, data, where):
        self.data = bytes(data)
        self.pos = 0
        self.where = where

    def remaining(self):
        return len(self.data) - self.pos

    def take(self, n, what):
        if n < 0 or self.remaining() < n:
            raise ReferenceDecodeError(
                f"{self.where}: payload ends inside field {what!r} "
                f"(needs {n} bytes at payload byte {self.pos}, {self.remaining()} left)")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def u8(self, what):
        return self.take(1, what)[0]

    def u16(self, what):
        return struct.unpack("<H", self.take(2, what))[0]

    def i16(self, what):
        return struct.unpack("<h", self.take(2, what))[0]

    def u32(self, what):
        return struct.unpack("<I", self.take(4, what))[0]

    def u64(self, what):
        return struct.unpack("<Q", self.take(8, what))[0]

    def rest(self):
        out = self.data[self.pos:]
        self.pos = len(self.data)
        return out


def _check_range(value, lo, hi, what, where):
    if not (lo <= value <= hi):
        raise ReferenceDecodeError(f"{where}: {what} = {value} is outside {lo} .. {hi}")


# --------------------------------------------------------------------------------------
# Section 3: HEAD
# --------------------------------------------------------------------------------------

def _parse_colour(r):
    primaries = r.u8("colour_primaries")
    transfer = r.u8("transfer_characteristics")
    matrix = r.u8("matrix_coefficients")
    flags = r.u8("colour flags")
    # Section 3: bits other than bit 0 (full range) MUST be 0; a decoder rejects them.
    if flags & ~1:
        raise ReferenceDecodeError(
            f"{r.where}: colour flags 0x{flags:02x} have bits other than bit 0 set")
    return (primaries, transfer, matrix, flags)


def _parse_head(payload, where, version):
    r = _Reader(payload, where)
    head = {"version": version}
    media = r.u8("media")
    if media not in MEDIA_NAMES:
        raise ReferenceDecodeError(f"{where}: invalid media value {media} (1, 2 or 3 expected)")
    head["media"] = MEDIA_NAMES[media]

    model_len = r.u8("model_id_length")
    _check_range(model_len, 1, MAX_MODEL_ID, "model_id_length", where)
    model_raw = r.take(model_len, "model_id")
    for b in model_raw:
        if b not in MODEL_ID_CHARSET:
            raise ReferenceDecodeError(
                f"{where}: model_id {model_raw!r} has byte 0x{b:02x} outside a-z 0-9 . _ -")
    head["model"] = model_raw.decode("ascii")
    head["weights_digest"] = r.take(8, "weights_digest").hex()
    head["quality"] = r.u16("quality") / 1000.0

    if media == 1:  # image
        width = r.u32("width")
        height = r.u32("height")
        _check_range(width, 1, MAX_IMAGE_SIDE, "image width", where)
        _check_range(height, 1, MAX_IMAGE_SIDE, "image height", where)
        if width * height > MAX_IMAGE_AREA:
            raise ReferenceDecodeError(
                f"{where}: image width x height = {width * height} exceeds 2^28")
        channels = r.u8("channels")
        _check_range(channels, 1, MAX_IMAGE_CHANNELS, "image channels", where)
        bit_depth = r.u8("bit_depth")
        _check_range(bit_depth, 1, MAX_BIT_DEPTH, "image bit_depth", where)
        colour = _parse_colour(r)
        head.update(width=width, height=height, channels=channels, bit_depth=bit_depth,
                    colour=colour)
    elif media == 2:  # video
        width = r.u32("width")
        height = r.u32("height")
        _check_range(width, 1, MAX_VIDEO_SIDE, "video width", where)
        _check_range(height, 1, MAX_VIDEO_SIDE, "video height", where)
        pixel_format = r.u8("pixel_format")
        if pixel_format not in (0, 1, 2):
            raise ReferenceDecodeError(f"{where}: invalid pixel_format {pixel_format}")
        bit_depth = r.u8("bit_depth")
        _check_range(bit_depth, 1, MAX_BIT_DEPTH, "video bit_depth", where)
        num = r.u32("rate_numerator")
        den = r.u32("rate_denominator")
        _check_range(num, 1, MAX_RATE_TERM, "rate_numerator", where)
        _check_range(den, 1, MAX_RATE_TERM, "rate_denominator", where)
        frame_count = r.u32("frame_count")
        if frame_count == UNKNOWN_FRAME_COUNT:
            frame_count = None
        else:
            _check_range(frame_count, 0, MAX_FRAME_COUNT, "frame_count", where)
        colour = _parse_colour(r)
        head.update(width=width, height=height, pixel_format=pixel_format,
                    bit_depth=bit_depth, frame_rate=(num, den), frame_count=frame_count,
                    colour=colour)
    else:  # audio
        sample_rate = r.u32("sample_rate")
        _check_range(sample_rate, 1, MAX_SAMPLE_RATE, "sample_rate", where)
        channels = r.u8("channels")
        _check_range(channels, 1, MAX_AUDIO_CHANNELS, "audio channels", where)
        sample_format = r.u8("sample_format")
        if sample_format not in (0, 1, 2):
            raise ReferenceDecodeError(f"{where}: invalid sample_format {sample_format}")
        sample_count = r.u64("sample_count")
        if sample_count == UNKNOWN_SAMPLE_COUNT:
            sample_count = None
        else:
            _check_range(sample_count, 0, MAX_SAMPLE_COUNT, "sample_count", where)
        head.update(sample_rate=sample_rate, channels=channels, sample_format=sample_format,
                    sample_count=sample_count)
    # The HEAD payload is extensible: bytes after the known fields are ignored.
    return head


# --------------------------------------------------------------------------------------
# Section 5.1 / 5.2: tables
# --------------------------------------------------------------------------------------

def _check_table(freqs, offset, where):
    n = len(freqs)
    _check_range(n, MIN_TABLE_ENTRIES, MAX_TABLE_ENTRIES, "table entry count", where)
    _check_range(offset, MIN_TABLE_OFFSET, MAX_TABLE_OFFSET, "table offset", where)
    for i, f in enumerate(freqs):
        if f < 1:
            raise ReferenceDecodeError(f"{where}: frequency f[{i}] = {f} is below 1")
    total = sum(int(f) for f in freqs)
    if total != PROB_TOTAL:
        raise ReferenceDecodeError(f"{where}: frequencies sum to {total}, not 2^24")


def _parse_tabl(payload, where):
    r = _Reader(payload, where)
    count = r.u16("table_count")
    _check_range(count, 1, MAX_TABLES, "table_count", where)
    tables = []
    for t in range(count):
        tw = f"{where}, table {t}"
        n = r.u16("entry_count")
        _check_range(n, MIN_TABLE_ENTRIES, MAX_TABLE_ENTRIES, "entry_count", tw)
        offset = r.i16("offset")
        raw = r.take(4 * n, "frequencies")  # length checked by take() before decoding
        freqs = np.frombuffer(raw, dtype="<u4").astype(np.int64)
        _check_table([int(f) for f in freqs], offset, tw)
        tables.append((freqs, offset))
    if r.remaining() != 0:
        raise ReferenceDecodeError(
            f"{where}: TABL payload has {r.remaining()} bytes beyond its {count} tables")
    return tables


# --------------------------------------------------------------------------------------
# Section 5: coded payload directory
# --------------------------------------------------------------------------------------

def _parse_directory(payload, where="coded payload"):
    """Returns (list of substream byte strings, side information bytes)."""
    r = _Reader(payload, where)
    count = r.u16("substream_count")
    _check_range(count, 1, MAX_SUBSTREAMS, "substream_count", where)
    lengths = [r.u32(f"substream_lengths[{k}]") for k in range(count)]
    for k, length in enumerate(lengths):
        if length % 4 != 0:
            raise ReferenceDecodeError(
                f"{where}: substream {k} length {length} is not a multiple of 4")
    side_length = r.u16("side_length")  # a u16 cannot exceed the 65535 limit
    side = r.take(side_length, "side")
    left = r.remaining()
    if sum(lengths) != left:
        raise ReferenceDecodeError(
            f"{where}: substream lengths add up to {sum(lengths)} bytes, "
            f"but {left} bytes are left")
    substreams = []
    for length in lengths:
        substreams.append(r.take(length, "substream"))
    return substreams, side


# --------------------------------------------------------------------------------------
# Section 6.1 / 6.2: rANS decoder
# --------------------------------------------------------------------------------------

class _RansDecoder:
    """One substream's decoder, literally as in Section 6.1."""

    def __init__(self, raw, where):
        self.where = where
        m = len(raw) // 4
        self.w = [struct.unpack_from("<I", raw, 4 * j)[0] for j in range(m)]
        if m == 0:
            self.x = 0
            self.p = 0
        else:
            if self.w[m - 1] == 0:
                raise ReferenceDecodeError(f"{where}: last word of the substream is 0")
            self.x = self.w[m - 1]
            self.p = m - 1
            if self.p > 0:
                self.x = (self.x << 32) | self.w[self.p - 1]
                self.p -= 1

    def _advance(self, c, f, q):
        self.x = f * (self.x >> PRECISION) + q - c
        if self.x < STATE_LOWER and self.p > 0:
            self.x = (self.x << 32) | self.w[self.p - 1]
            self.p -= 1

    def decode_table(self, cum, freqs):
        """cum: list of c[0..n-1] (strictly increasing, c[0] = 0); freqs: f[0..n-1]."""
        q = self.x & PROB_MASK
        # find s with c[s] <= q < c[s] + f[s] (binary search over the cumulative list)
        lo, hi = 0, len(cum) - 1
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if cum[mid] <= q:
                lo = mid
            else:
                hi = mid - 1
        s = lo  # c[s] <= q < c[s] + f[s], since c[n-1] + f[n-1] = 2^24 > q
        self._advance(cum[s], freqs[s], q)
        return s

    def decode_uniform(self, n):
        """Section 6.2: uniform(n), 2 <= n < 2^24."""
        b = PROB_TOTAL // n
        q = self.x & PROB_MASK
        s = min(q // b, n - 1)
        c = s * b
        f = b if s < n - 1 else PROB_TOTAL - (n - 1) * b
        self._advance(c, f, q)
        return s

    def check_end(self):
        if self.x != 0 or self.p != 0:
            raise ReferenceDecodeError(
                f"{self.where}: substream does not end at x = 0, p = 0 "
                f"(x = {self.x}, {self.p} words unread)")


# --------------------------------------------------------------------------------------
# Sections 6.3 / 6.4: groups and values
# --------------------------------------------------------------------------------------

def _prepare_tables(tables):
    """Checks a table set and returns [(cum list, freq list, offset)]."""
    if not isinstance(tables, (list, tuple)):
        raise ReferenceDecodeError("table set must be a list of (freqs, offset)")
    _check_range(len(tables), 1, MAX_TABLES, "table count", "table set")
    prepared = []
    for t, entry in enumerate(tables):
        try:
            freqs, offset = entry
            freqs = [int(f) for f in np.asarray(freqs).reshape(-1)]
            offset = int(offset)
        except (TypeError, ValueError, OverflowError) as exc:
            raise ReferenceDecodeError(f"table {t}: not a (freqs, offset) pair: {exc}")
        _check_table(freqs, offset, f"table {t}")
        cum = [0]
        for f in freqs[:-1]:
            cum.append(cum[-1] + f)
        prepared.append((cum, freqs, offset))
    return prepared


def _escape_value(offset, k_top, L, a, h, where):
    """Section 6.4 for an escaped index; K = k_top = n - 1."""
    m = (1 << L) + a + h * (1 << 16)  # 1 <= m < 2^32 by the ranges of L, a and h
    r = m - 1
    if r % 2 == 1:
        v = offset - (r + 1) // 2
    else:
        v = offset + k_top + r // 2
    return v


def decode_coded_payload(payload, tables, groups):
    """Decodes one coded payload (Sections 5 and 6).

    payload: the bytes of Section 5 (substream directory, side information, substreams).
    tables:  the table set, a list of (freqs, offset).
    groups:  a list of 1-D integer arrays; groups[g][i] is the table number t[i] of value i
             of group g.
    Returns (list of int64 value arrays, one per group, side information bytes).
    """
    try:
        payload = bytes(payload)
    except TypeError as exc:
        raise ReferenceDecodeError(f"coded payload is not bytes: {exc}")
    prepared = _prepare_tables(tables)
    n_tables = len(prepared)

    try:
        groups = list(groups)
    except TypeError as exc:
        raise ReferenceDecodeError(f"groups must be a list of arrays: {exc}")
    group_tables = []
    for g, group in enumerate(groups):
        try:
            arr = np.asarray(group)
        except (TypeError, ValueError) as exc:
            raise ReferenceDecodeError(f"group {g}: not an array of table numbers: {exc}")
        if arr.ndim != 1:
            raise ReferenceDecodeError(f"group {g}: table numbers must be a 1-D array")
        if arr.size and not np.issubdtype(arr.dtype, np.integer):
            raise ReferenceDecodeError(f"group {g}: table numbers must be integers")
        tl = [int(t) for t in arr]
        for i, t in enumerate(tl):
            if not (0 <= t < n_tables):
                raise ReferenceDecodeError(
                    f"group {g}: value {i} uses table {t}, but the table set has "
                    f"{n_tables} tables")
        group_tables.append(tl)

    substreams, side = _parse_directory(payload)
    count = len(substreams)
    decoders = [_RansDecoder(raw, f"substream {k}") for k, raw in enumerate(substreams)]

    results = []
    for g, tl in enumerate(group_tables):
        n = len(tl)
        values = np.zeros(n, dtype=np.int64)
        for k in range(count):
            dec = decoders[k]
            where = f"group {g}, substream {k}"
            lo = (k * n) // count
            hi = ((k + 1) * n) // count
            part = range(lo, hi)
            # 1. primary symbols, table numbers in increasing order, then increasing i
            s = {}
            for t in sorted(set(tl[i] for i in part)):
                cum, freqs, _ = prepared[t]
                for i in part:
                    if tl[i] == t:
                        s[i] = dec.decode_table(cum, freqs)
            # 2. escape lengths
            escaped = [i for i in part if s[i] == len(prepared[tl[i]][1]) - 1]
            L = {}
            for i in escaped:
                L[i] = dec.decode_uniform(32)
            # 3. low bits
            a = {i: 0 for i in escaped}
            for i in escaped:
                if L[i] >= 1:
                    a[i] = dec.decode_uniform(1 << min(L[i], 16))
            # 4. high bits
            h = {i: 0 for i in escaped}
            for i in escaped:
                if L[i] >= 17:
                    h[i] = dec.decode_uniform(1 << (L[i] - 16))
            # values (Section 6.4)
            escaped_set = set(escaped)
            for i in part:
                _, freqs, offset = prepared[tl[i]]
                k_top = len(freqs) - 1
                if i in escaped_set:
                    v = _escape_value(offset, k_top, L[i], a[i], h[i], where)
                else:
                    v = offset + s[i]
                if not (MIN_VALUE <= v <= MAX_VALUE):
                    raise ReferenceDecodeError(
                        f"{where}: value {i} = {v} is outside -2^30 .. 2^30")
                values[i] = v
        results.append(values)

    for dec in decoders:
        dec.check_end()
    return results, side


# --------------------------------------------------------------------------------------
# Section 4: coded units and index
# --------------------------------------------------------------------------------------

def _parse_fram(payload, where, expected_number):
    r = _Reader(payload, where)
    frame_number = r.u32("frame_number")
    if frame_number != expected_number:
        raise ReferenceDecodeError(
            f"{where}: frame_number {frame_number}, expected {expected_number}")
    if frame_number >= MAX_FRAME_COUNT:
        raise ReferenceDecodeError(f"{where}: more than 2^31 - 1 frames (Section 2)")
    frame_type = r.u8("frame_type")
    if frame_type not in (0, 1):
        raise ReferenceDecodeError(f"{where}: invalid frame_type {frame_type}")
    ref_count = r.u8("reference_count")
    if frame_type == 0 and ref_count != 0:
        raise ReferenceDecodeError(
            f"{where}: intra frame with reference_count {ref_count} (must be 0)")
    if frame_type == 1:
        _check_range(ref_count, 1, MAX_REFERENCES, "reference_count", where)
    references = []
    for j in range(ref_count):
        ref = r.u32(f"references[{j}]")
        if ref >= frame_number:
            raise ReferenceDecodeError(
                f"{where}: reference {ref} is not smaller than frame_number {frame_number}")
        if ref in references:
            raise ReferenceDecodeError(
                f"{where}: reference {ref} is listed twice (references must be distinct)")
        references.append(ref)
    coded = r.rest()
    _parse_directory(coded, f"{where}, coded payload")
    return {"kind": "frame", "frame_number": frame_number, "frame_type": frame_type,
            "references": references, "payload": coded}


def _parse_segm(payload, where, expected_first):
    r = _Reader(payload, where)
    first_sample = r.u64("first_sample")
    if first_sample != expected_first:
        raise ReferenceDecodeError(
            f"{where}: first_sample {first_sample}, expected {expected_first}")
    sample_count = r.u32("sample_count")
    _check_range(sample_count, 1, MAX_SEGMENT_LENGTH, "segment sample_count", where)
    coded = r.rest()
    _parse_directory(coded, f"{where}, coded payload")
    return {"kind": "segment", "first_sample": first_sample, "sample_count": sample_count,
            "payload": coded}


def _parse_indx(payload, where, fram_chunks):
    """fram_chunks: {byte offset of a FRAM chunk: (frame_number, frame_type)}."""
    r = _Reader(payload, where)
    entry_count = r.u32("entry_count")
    _check_range(entry_count, 0, MAX_INDEX_ENTRIES, "index entry_count", where)
    expected_len = 8 + 12 * entry_count
    if len(payload) != expected_len:
        raise ReferenceDecodeError(
            f"{where}: INDX payload is {len(payload)} bytes, "
            f"8 + 12 x entry_count = {expected_len} expected")
    entries = []
    for j in range(entry_count):
        frame_number = r.u32(f"entries[{j}].frame_number")
        offset = r.u64(f"entries[{j}].offset")
        entries.append((frame_number, offset))
    payload_length = r.u32("payload_length")
    if payload_length != len(payload):
        raise ReferenceDecodeError(
            f"{where}: payload_length {payload_length} differs from the payload length "
            f"{len(payload)}")
    previous = None
    for frame_number, offset in entries:
        if previous is not None and frame_number <= previous:
            raise ReferenceDecodeError(
                f"{where}: index frame numbers not increasing ({previous}, {frame_number})")
        previous = frame_number
        found = fram_chunks.get(offset)
        if found is None:
            raise ReferenceDecodeError(
                f"{where}: index offset {offset} does not point at a FRAM chunk")
        if found[0] != frame_number:
            raise ReferenceDecodeError(
                f"{where}: index offset {offset} points at frame {found[0]}, "
                f"not {frame_number}")
        if found[1] != 0:
            raise ReferenceDecodeError(
                f"{where}: index entry for frame {frame_number} is not an intra frame")
    # Section 4.3: the entries may list all intra frames or a subset of them.
    return entries


# --------------------------------------------------------------------------------------
# Section 1: file and chunks
# --------------------------------------------------------------------------------------

def parse_file(data):
    """Parses and checks a whole `.lc` file (Sections 1 to 5, and 8.1 for model `none`).

    Returns a dict: the HEAD fields (version, media, model, weights_digest, quality and the
    media's geometry), ``tables`` (list of (freqs int64 array, offset) or None), ``units``
    (one dict per FRAM / SEGM chunk, in file order) and ``index`` (list of
    (frame_number, offset) or None).
    """
    return _parse(data)[0]


def _parse(data):
    """parse_file's work; also returns, per coded unit, a description of its chunk."""
    try:
        data = bytes(data)
    except TypeError as exc:
        raise ReferenceDecodeError(f"file is not bytes: {exc}")
    if len(data) < 4 or data[:4] != SIGNATURE:
        raise ReferenceDecodeError("wrong signature (89 4C 43 46 expected)")
    if len(data) < 6:
        raise ReferenceDecodeError("file ends inside the version field")
    major, minor = data[4], data[5]
    if major != DECODER_MAJOR:
        raise ReferenceDecodeError(
            f"unsupported format version: the file needs version {major}.{minor}, "
            f"this decoder reads version {DECODER_MAJOR}.{DECODER_MINOR}")
    version = f"{major}.{minor}"

    pos = 6
    number = 0
    head = None
    tables = None
    units = []
    unit_where = []
    index = None
    alpha = None
    seen_indx = False
    fram_chunks = {}
    next_frame = 0
    next_sample = 0

    while True:
        if pos == len(data):
            raise ReferenceDecodeError(f"file ends before its DONE chunk (at byte {pos})")
        where = f"chunk {number} at byte offset {pos}"
        if len(data) - pos < 8:
            raise ReferenceDecodeError(f"{where}: file ends inside the chunk header")
        ctype = data[pos:pos + 4]
        for b in ctype:
            if b not in TYPE_CHARSET:
                raise ReferenceDecodeError(
                    f"{where}: chunk type {ctype!r} has byte 0x{b:02x} outside A-Z a-z 0-9")
        tname = ctype.decode("ascii")
        where = f"chunk {number} ({tname}) at byte offset {pos}"
        length = struct.unpack_from("<I", data, pos + 4)[0]
        if length > MAX_CHUNK_PAYLOAD:
            raise ReferenceDecodeError(
                f"{where}: payload length {length} exceeds the 2^28 byte limit")
        if len(data) - pos - 8 < length + 4:
            raise ReferenceDecodeError(f"{where}: file ends inside the chunk")
        payload = data[pos + 8:pos + 8 + length]
        crc = struct.unpack_from("<I", data, pos + 8 + length)[0]
        actual = zlib.crc32(ctype + payload) & 0xFFFFFFFF
        if actual != crc:
            raise ReferenceDecodeError(
                f"{where}: CRC mismatch (stored 0x{crc:08x}, computed 0x{actual:08x})")
        chunk_start = pos
        end = pos + 8 + length + 4

        # ---- order (Section 1.2) ----
        if number == 0 and ctype != b"HEAD":
            raise ReferenceDecodeError(f"{where}: the first chunk must be HEAD")
        if number > 0 and ctype == b"HEAD":
            raise ReferenceDecodeError(f"{where}: a second HEAD chunk")
        if seen_indx and ctype != b"DONE":
            # Section 1.2: INDX is immediately before DONE; unknown chunks may appear only
            # before INDX.
            raise ReferenceDecodeError(f"{where}: INDX must be immediately followed by DONE")

        # ---- contents ----
        if ctype == b"HEAD":
            head = _parse_head(payload, where, version)
        elif ctype == b"TABL":
            if tables is not None:
                raise ReferenceDecodeError(f"{where}: a second TABL chunk")
            if units:
                raise ReferenceDecodeError(f"{where}: TABL after a coded unit")
            tables = _parse_tabl(payload, where)
        elif ctype == b"FRAM":
            if head["media"] == "audio":
                raise ReferenceDecodeError(f"{where}: FRAM chunk in an audio file")
            if head["media"] == "image" and units:
                raise ReferenceDecodeError(f"{where}: an image file holds exactly one FRAM")
            unit = _parse_fram(payload, where, next_frame)
            if head["media"] == "image" and unit["frame_type"] != 0:
                raise ReferenceDecodeError(f"{where}: the FRAM of an image must be intra")
            next_frame += 1
            fram_chunks[chunk_start] = (unit["frame_number"], unit["frame_type"])
            units.append(unit)
            unit_where.append(where)
        elif ctype == b"SEGM":
            if head["media"] != "audio":
                raise ReferenceDecodeError(f"{where}: SEGM chunk in a {head['media']} file")
            unit = _parse_segm(payload, where, next_sample)
            next_sample = unit["first_sample"] + unit["sample_count"]
            # Section 2: at most 2^48 samples in a file, also when sample_count is unknown.
            if next_sample > MAX_SAMPLE_COUNT:
                raise ReferenceDecodeError(
                    f"{where}: the segments so far hold {next_sample} samples, "
                    f"beyond the 2^48 limit")
            units.append(unit)
            unit_where.append(where)
        elif ctype == b"ALPH":
            # Section 4.4 (version 1.1): the alpha plane of an image with 4 channels.
            if head["media"] != "image" or head["channels"] != 4:
                raise ReferenceDecodeError(
                    f"{where}: ALPH chunk outside an image whose HEAD has 4 channels")
            if alpha is not None:
                raise ReferenceDecodeError(f"{where}: a second ALPH chunk")
            alpha = _parse_alph(payload, where, head["width"], head["height"])
        elif ctype == b"INDX":
            # A second INDX is caught above (it would not be immediately before DONE).
            if head["media"] != "video":
                raise ReferenceDecodeError(
                    f"{where}: INDX chunk in a {head['media']} file (video only)")
            index = _parse_indx(payload, where, fram_chunks)
            seen_indx = True
        elif ctype == b"DONE":
            # Sections 1.2 / 4.3: the DONE payload is empty (the chunk is always 12 bytes).
            if length != 0:
                raise ReferenceDecodeError(
                    f"{where}: DONE payload is {length} bytes, it must be empty")
            if end != len(data):
                raise ReferenceDecodeError(
                    f"{where}: {len(data) - end} bytes follow the DONE chunk")
            break
        # else: unknown chunk type, skipped after its CRC check (Section 1.1)
        pos = end
        number += 1

    # ---- whole-file consistency ----
    media = head["media"]
    if media == "image" and len(units) != 1:
        raise ReferenceDecodeError("an image file must hold exactly one FRAM chunk")
    if media == "image" and head["channels"] == 4 and alpha is None:
        raise ReferenceDecodeError("HEAD has 4 channels but the file has no ALPH chunk")
    if media == "video" and head["frame_count"] is not None \
            and len(units) != head["frame_count"]:
        raise ReferenceDecodeError(
            f"HEAD frame_count is {head['frame_count']} but the file holds "
            f"{len(units)} FRAM chunks")
    if media == "audio" and head["sample_count"] is not None \
            and next_sample != head["sample_count"]:
        raise ReferenceDecodeError(
            f"HEAD sample_count is {head['sample_count']} but the segments hold "
            f"{next_sample} samples")
    if head["model"] == NONE_MODEL:
        if head["weights_digest"] != NONE_DIGEST.hex():
            raise ReferenceDecodeError(
                f"model 'none' needs digest {NONE_DIGEST.hex()}, the file names "
                f"{head['weights_digest']}")
        if tables is None:
            raise ReferenceDecodeError("model 'none' needs a TABL chunk, the file has none")

    result = dict(head)
    result["tables"] = tables
    result["units"] = units
    result["index"] = index
    result["alpha"] = alpha
    return result, unit_where


def _parse_alph(payload, where, width, height):
    """Section 4.4: method byte, then (method 0) a zlib stream of width * height u8 samples."""
    if len(payload) < 1:
        raise ReferenceDecodeError(f"{where}: ALPH payload has no method byte")
    if payload[0] != 0:
        raise ReferenceDecodeError(f"{where}: ALPH method {payload[0]} is not 0 (zlib)")
    expected = width * height
    inflater = zlib.decompressobj(wbits=15)
    try:
        out = inflater.decompress(payload[1:], expected + 1)
    except zlib.error as exc:
        raise ReferenceDecodeError(f"{where}: ALPH zlib stream: {exc}") from None
    if len(out) > expected:
        raise ReferenceDecodeError(f"{where}: ALPH inflates beyond {expected} samples")
    if not inflater.eof or len(out) < expected:
        raise ReferenceDecodeError(f"{where}: ALPH stream ends before {expected} samples")
    if inflater.unused_data:
        raise ReferenceDecodeError(f"{where}: bytes after the ALPH zlib stream")
    return np.frombuffer(out, dtype=np.uint8).reshape(height, width).copy()


# --------------------------------------------------------------------------------------
# Section 8.1: the model `none`
# --------------------------------------------------------------------------------------

def decode_none_model(data):
    """Decodes a file with model `none`: the values of each coded unit, in file order."""
    info, unit_where = _parse(data)
    if info["model"] != NONE_MODEL:
        raise ReferenceDecodeError(
            f"this decoder only has the model 'none', the file needs {info['model']!r}")
    tables = info["tables"]  # presence and digest checked by parse_file
    n_tables = len(tables)
    out = []
    for u, unit in enumerate(info["units"]):
        where = f"{unit_where[u]}, coded payload"
        _, side = _parse_directory(unit["payload"], where)
        if len(side) != 4:
            raise ReferenceDecodeError(
                f"{where}: model 'none' needs 4 bytes of side information, found {len(side)}")
        n = struct.unpack("<I", side)[0]
        if n > NONE_MAX_VALUES:
            raise ReferenceDecodeError(f"{where}: group of {n} values exceeds 2^24")
        if unit["kind"] == "segment" and n != unit["sample_count"]:
            raise ReferenceDecodeError(
                f"{where}: model 'none' group has {n} values, the segment's sample_count "
                f"is {unit['sample_count']}")
        group = np.arange(n, dtype=np.int64) % n_tables
        try:
            values, _ = decode_coded_payload(unit["payload"], tables, [group])
        except ReferenceDecodeError as exc:
            raise ReferenceDecodeError(f"{where}: {exc}") from None
        out.append(values[0])
    return out
