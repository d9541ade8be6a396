"""Coded payloads (SPEC.md Sections 5 and 6): symbol groups over independent rANS substreams.

The coder is constriction's ``AnsCoder`` (64-bit state, 32-bit words, 24-bit precision), driven
with the exact integer tables of a :class:`TableSet`. Whole arrays cross into Rust: within a
substream the symbols of one table go through one call, which is why SPEC.md orders a group's
symbols by table. The numpy work of each substream (mapping values to symbols, ordering them by
table, scattering decoded symbols back) runs on worker threads, in phases before and after the
coder calls (constriction holds the GIL); bytes and values never depend on the thread count.
"""

from __future__ import annotations

import os
import struct
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Sequence

import constriction
import numpy as np

from .errors import LimitError, PayloadError
from .tables import TableSet, _bit_length, _escape_magnitude

MAX_SUBSTREAMS = 4096
MAX_SIDE = 65535
VALUE_LIMIT = 1 << 30
LENGTH_ALPHABET = 32
# Automatic substream count: one substream per this many expected bits keeps the per-substream
# cost (length field plus final flush, about 80 bits) near 0.03% of the payload.
BITS_PER_SUBSTREAM = 1 << 18
AUTO_MAX_SUBSTREAMS = 64
# Groups smaller than this are coded on the calling thread: a hand-off costs more than it saves.
_THREADED_MIN_SYMBOLS = 1 << 15

_threads = min(2, os.cpu_count() or 1)
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def set_num_threads(count: int) -> None:
    """Number of worker threads for symbol preparation (0 or 1: none). Output is unaffected."""
    global _threads, _pool
    if count < 0:
        raise ValueError("thread count must be >= 0")
    with _pool_lock:
        if _pool is not None:
            _pool.shutdown()
            _pool = None
        _threads = count


def get_num_threads() -> int:
    return _threads


def _map(threaded: bool, function: Callable, *iterables) -> list:
    """``[function(*args) ...]``, on the worker threads when ``threaded``, results in order.

    Callers run each phase to completion before the coder runs: constriction holds the GIL, so
    interleaving numpy work with coder calls would stall the workers.
    """
    global _pool
    if not threaded or _threads <= 1:
        return [function(*args) for args in zip(*iterables)]
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(_threads, thread_name_prefix="codec-rans")
        pool = _pool
    return list(pool.map(function, *iterables))


def _bounds(n: int, substreams: int) -> np.ndarray:
    """Start index of each substream's part of an n-value group, plus n: floor(k n / N)."""
    return np.arange(substreams + 1, dtype=np.int64) * n // substreams


def _by_table(table_numbers: np.ndarray, table_count: int,
              check: bool = True) -> tuple[np.ndarray, list[int]]:
    """Stable order of one substream's part by table number, and the count of each table.

    Counts come from the sorted keys (a binary search per table): np.bincount would hold the
    GIL and convert the keys to intp first.
    """
    if check and len(table_numbers) and (table_numbers.min() < 0 or
                                         table_numbers.max() >= table_count):
        raise ValueError(f"table numbers must lie in 0..{table_count - 1}")
    key = table_numbers.astype(np.uint8 if table_count <= 256 else np.uint16)
    order = np.argsort(key, kind="stable")
    edges = np.searchsorted(key.take(order), np.arange(table_count + 1))
    return order, np.diff(edges).tolist()


def _table_counts(table_numbers: np.ndarray, table_count: int) -> np.ndarray:
    """How often each table is used; raises ValueError for numbers outside the table set."""
    if len(table_numbers) and table_numbers.min() < 0:
        raise ValueError(f"table numbers must lie in 0..{table_count - 1}")
    counts = np.bincount(table_numbers, minlength=table_count)
    if len(counts) > table_count:
        raise ValueError(f"table numbers must lie in 0..{table_count - 1}")
    return counts


def _prepare_part(tables: TableSet, values: np.ndarray, table_numbers: np.ndarray):
    """Encoder side of one substream's part: symbols grouped by table, counts, escape parts.

    Works in table order, where offsets and escape entries are runs of constants.
    """
    order, counts = _by_table(table_numbers, len(tables), check=False)  # add_group checked
    ordered = values.take(order).astype(np.int64, copy=False)
    offsets = np.repeat(tables.offsets, counts)
    direct = np.repeat(tables.escape, counts)
    symbols = ordered - offsets
    # one unsigned comparison catches both sides: negative symbols wrap to huge values
    escaped = np.flatnonzero(symbols.view(np.uint64) >= direct.view(np.uint64))
    escapes = None
    if len(escaped):
        symbols[escaped] = direct[escaped]
        escaped = escaped[np.argsort(order[escaped], kind="stable")]  # back to index order
        outside = ordered[escaped]
        if outside.min() < -VALUE_LIMIT or outside.max() > VALUE_LIMIT:
            raise ValueError("values must lie in -2^30..2^30 (SPEC.md Section 2)")
        magnitude = _escape_magnitude(outside, offsets[escaped], direct[escaped]) + 1
        lengths = _bit_length(magnitude) - 1
        rest = magnitude - (np.int64(1) << lengths)
        escapes = (lengths, rest & 0xFFFF, rest >> 16)
    return symbols.astype(np.int32), counts, escapes


class SymbolEncoder:
    """Collect symbol groups in decode order, then write one coded payload.

    ``substreams`` fixes the number of substreams; by default it grows with the payload's
    expected size (one per 2^18 bits, at most 64) so flushes stay near 0.03% of the rate.
    """

    def __init__(self, tables: TableSet, substreams: int | None = None) -> None:
        if substreams is not None and not 1 <= substreams <= MAX_SUBSTREAMS:
            raise ValueError(f"substreams must be in 1..{MAX_SUBSTREAMS}, got {substreams}")
        self.tables = tables
        self.substreams = substreams
        self._groups: list[tuple[np.ndarray, np.ndarray]] = []
        self._expected_bits = 0.0

    def add_group(self, values: np.ndarray, table_numbers: np.ndarray) -> None:
        """Append a group: integer values and, for each, the number of its table."""
        values = np.asarray(values).ravel()
        table_numbers = np.asarray(table_numbers).ravel()
        if values.dtype.kind not in "iu" or table_numbers.dtype.kind not in "iu":
            raise ValueError("values and table numbers must be integer arrays")
        if values.shape != table_numbers.shape:
            raise ValueError(f"{values.size} values but {table_numbers.size} table numbers")
        counts = _table_counts(table_numbers, len(self.tables))
        self._expected_bits += float(counts @ self.tables.entropy_bits())
        self._groups.append((values, table_numbers))

    def finish(self, side: bytes = b"") -> bytes:
        """Encode every group and return the coded payload (directory, side info, substreams)."""
        if len(side) > MAX_SIDE:
            raise ValueError(f"side information is limited to {MAX_SIDE} bytes")
        count = self.substreams or int(np.clip(self._expected_bits // BITS_PER_SUBSTREAM, 1,
                                               AUTO_MAX_SUBSTREAMS))
        coders = [constriction.stream.stack.AnsCoder() for _ in range(count)]
        uniform = constriction.stream.model.Uniform()
        lengths_model = constriction.stream.model.Uniform(LENGTH_ALPHABET)
        for values, table_numbers in reversed(self._groups):  # a stack: last decoded goes first
            n = len(values)
            threaded = n >= _THREADED_MIN_SYMBOLS
            bounds = _bounds(n, count)
            parts = _map(threaded, _prepare_part, [self.tables] * count,
                         [values[a:b] for a, b in zip(bounds[:-1], bounds[1:])],
                         [table_numbers[a:b] for a, b in zip(bounds[:-1], bounds[1:])])
            for coder, (symbols, counts, escapes) in zip(coders, parts):
                if escapes is not None:  # escape parts follow the primary symbols when decoding
                    lengths, low, high = escapes
                    wide = lengths >= 17
                    if wide.any():
                        coder.encode_reverse(high[wide].astype(np.int32), uniform,
                                             (1 << (lengths[wide] - 16)).astype(np.int32))
                    some = lengths >= 1
                    if some.any():
                        coder.encode_reverse(low[some].astype(np.int32), uniform,
                                             (1 << np.minimum(lengths[some], 16)).astype(np.int32))
                    coder.encode_reverse(lengths.astype(np.int32), lengths_model)
                end = len(symbols)
                for table in range(len(counts) - 1, -1, -1):
                    if counts[table]:
                        coder.encode_reverse(symbols[end - counts[table]:end],
                                             self.tables.categorical(table))
                        end -= counts[table]
        streams = [np.asarray(c.get_compressed(), dtype="<u4").tobytes() for c in coders]
        directory = struct.pack(f"<H{count}IH", count, *map(len, streams), len(side))
        return b"".join([directory, side, *streams])


def _place_part(tables: TableSet, decoded: np.ndarray, order: np.ndarray, counts: list[int],
                out: np.ndarray) -> np.ndarray:
    """Decoder side of one substream's part: map symbols to values and put them in index order.

    Writes into ``out`` and returns the (increasing) indices of escaped values.
    """
    out[order] = decoded + np.repeat(tables.offsets32, counts)
    escaped = np.flatnonzero(decoded == np.repeat(tables.escape32, counts))
    return np.sort(order[escaped])


def read_directory(payload: bytes) -> tuple[list[int], bytes, int]:
    """Parse and check a coded payload's head (SPEC.md Section 5).

    Returns the substream byte lengths, the side information and where substream 0 starts.
    """
    view = memoryview(payload)
    if len(view) < 2:
        raise PayloadError("coded payload is too short for its substream count")
    (count,) = struct.unpack_from("<H", view)
    if not 1 <= count <= MAX_SUBSTREAMS:
        raise LimitError(f"coded payload declares {count} substreams, outside 1..{MAX_SUBSTREAMS}")
    if len(view) < 2 + 4 * count + 2:
        raise PayloadError("coded payload is too short for its substream directory")
    lengths = list(struct.unpack_from(f"<{count}I", view, 2))
    (side_length,) = struct.unpack_from("<H", view, 2 + 4 * count)
    position = 2 + 4 * count + 2
    if position + side_length > len(view):
        raise PayloadError("coded payload is too short for its side information")
    side = bytes(view[position:position + side_length])
    position += side_length
    if any(length % 4 for length in lengths):
        raise PayloadError("a substream length is not a multiple of 4 bytes")
    if position + sum(lengths) != len(view):
        raise PayloadError(f"substream lengths add up to {sum(lengths)} bytes but "
                           f"{len(view) - position} remain")
    return lengths, side, position


class SymbolDecoder:
    """Decode the groups of one coded payload, in the order they were added to the encoder."""

    def __init__(self, tables: TableSet, payload: bytes) -> None:
        self.tables = tables
        lengths, self.side, position = read_directory(payload)
        view = memoryview(payload)
        self._coders = []
        for index, length in enumerate(lengths):
            words = np.frombuffer(view, "<u4", length // 4, position).astype(np.uint32)
            position += length
            if len(words) and words[-1] == 0:
                raise PayloadError(f"substream {index} ends in a zero word")
            self._coders.append(constriction.stream.stack.AnsCoder(words))
        self._uniform = constriction.stream.model.Uniform()
        self._lengths_model = constriction.stream.model.Uniform(LENGTH_ALPHABET)

    @property
    def substreams(self) -> int:
        return len(self._coders)

    def decode_group(self, table_numbers: np.ndarray) -> np.ndarray:
        """Decode the next group; ``table_numbers`` gives each value's table (SPEC.md 6.3)."""
        table_numbers = np.asarray(table_numbers).ravel()
        if table_numbers.dtype.kind not in "iu":
            raise ValueError("table numbers must be an integer array")
        n, table_count = len(table_numbers), len(self.tables)
        if n == 0:
            return np.zeros(0, dtype=np.int32)
        threaded = n >= _THREADED_MIN_SYMBOLS
        bounds = _bounds(n, len(self._coders))
        slices = [table_numbers[a:b] for a, b in zip(bounds[:-1], bounds[1:])]
        ordered = _map(threaded, _by_table, slices, [table_count] * len(slices))
        decoded_parts = []
        for coder, (order, counts) in zip(self._coders, ordered):
            decoded = [coder.decode(self.tables.categorical(table), count)
                       for table, count in enumerate(counts) if count]
            decoded_parts.append(np.concatenate(decoded) if decoded else np.zeros(0, np.int32))
        values = np.empty(n, dtype=np.int32)
        outs = [values[a:b] for a, b in zip(bounds[:-1], bounds[1:])]
        escapes = _map(threaded, _place_part, [self.tables] * len(slices), decoded_parts,
                       [order for order, _ in ordered], [counts for _, counts in ordered], outs)
        for coder, table_part, out, escaped in zip(self._coders, slices, outs, escapes):
            if len(escaped):  # escape parts follow this substream's primary symbols
                out[escaped] = self._decode_escapes(coder, table_part[escaped])
        return values

    def _decode_escapes(self, coder, table_numbers: np.ndarray) -> np.ndarray:
        lengths = coder.decode(self._lengths_model, len(table_numbers)).astype(np.int64)
        magnitude = np.int64(1) << lengths
        some = lengths >= 1
        if some.any():
            magnitude[some] += coder.decode(self._uniform,
                                            (1 << np.minimum(lengths[some], 16)).astype(np.int32))
        wide = lengths >= 17
        if wide.any():
            magnitude[wide] += coder.decode(self._uniform, (1 << (lengths[wide] - 16))
                                            .astype(np.int32)).astype(np.int64) << 16
        r = magnitude - 1
        offsets = self.tables.offsets[table_numbers]
        values = np.where(r % 2 == 1, offsets - (r + 1) // 2,
                          offsets + self.tables.escape[table_numbers] + r // 2)
        if values.min() < -VALUE_LIMIT or values.max() > VALUE_LIMIT:
            raise PayloadError("an escaped value lies outside -2^30..2^30")
        return values

    def finish(self) -> None:
        """Check that every substream ended exactly where its encoder started (x = 0, p = 0)."""
        for index, coder in enumerate(self._coders):
            if coder.num_words() != 0:
                raise PayloadError(f"substream {index} does not end in the initial rANS state: "
                                   "the payload is corrupt or was decoded with other tables")


def encode_groups(tables: TableSet, groups: Sequence[tuple[np.ndarray, np.ndarray]],
                  substreams: int | None = None, side: bytes = b"") -> bytes:
    """Encode ``(values, table_numbers)`` groups into one coded payload."""
    encoder = SymbolEncoder(tables, substreams)
    for values, table_numbers in groups:
        encoder.add_group(values, table_numbers)
    return encoder.finish(side)


def decode_groups(tables: TableSet, payload: bytes,
                  groups: Sequence[np.ndarray]) -> tuple[list[np.ndarray], bytes]:
    """Decode the groups of ``payload`` given each group's table numbers; return (values, side)."""
    decoder = SymbolDecoder(tables, payload)
    values = [decoder.decode_group(table_numbers) for table_numbers in groups]
    decoder.finish()
    return values, decoder.side
