"""Integer frequency tables (SPEC.md Section 5.1) and their ``TABL`` serialisation.

Every table sums to exactly 2^24 and gives each entry at least 1, the last entry being the
escape. Tables are built once (by a model's export step) and shipped as integers, so every
decoder codes with identical numbers.
"""

from __future__ import annotations

import hashlib
import struct
from typing import Sequence

import constriction
import numpy as np

from .errors import FormatError, LimitError

PRECISION = 24
TOTAL = 1 << PRECISION
MAX_TABLES = 4096
MAX_ENTRIES = 4096
OFFSET_RANGE = (-32768, 32767)


class TableSet:
    """A numbered list of integer tables with offsets, ready for vectorised coding.

    ``frequencies[t]`` lists table t's entry frequencies (escape last); entry s < n - 1 stands for
    the value ``offsets[t] + s``.
    """

    def __init__(self, frequencies: Sequence[np.ndarray], offsets: Sequence[int]) -> None:
        count = len(frequencies)
        if not 1 <= count <= MAX_TABLES:
            raise LimitError(f"a table set holds 1..{MAX_TABLES} tables, got {count}")
        if len(offsets) != count:
            raise ValueError(f"{count} tables but {len(offsets)} offsets")
        sizes = np.array([len(f) for f in frequencies], dtype=np.int64)
        if sizes.min() < 2 or sizes.max() > MAX_ENTRIES:
            bad = int(np.flatnonzero((sizes < 2) | (sizes > MAX_ENTRIES))[0])
            raise LimitError(f"table {bad} has {sizes[bad]} entries, outside 2..{MAX_ENTRIES}")
        self.offsets = np.asarray(offsets, dtype=np.int64)
        if self.offsets.min() < OFFSET_RANGE[0] or self.offsets.max() > OFFSET_RANGE[1]:
            raise LimitError(f"table offsets must lie in {OFFSET_RANGE[0]}..{OFFSET_RANGE[1]}")
        self.sizes = sizes
        self.freqs = np.zeros((count, int(sizes.max())), dtype=np.int64)
        for index, table in enumerate(frequencies):
            table = np.asarray(table, dtype=np.int64)
            if table.ndim != 1 or table.min() < 1 or int(table.sum()) != TOTAL:
                raise FormatError(f"table {index} is invalid: its frequencies must be >= 1 and "
                                  f"sum to 2^{PRECISION} (sum {int(table.sum())})")
            self.freqs[index, : len(table)] = table
        self.escape = sizes - 1  # also the number of direct values of each table
        self.escape32 = self.escape.astype(np.int32)
        self.offsets32 = self.offsets.astype(np.int32)
        self._models: list = [None] * count
        self._costs: np.ndarray | None = None
        self._entropy: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.sizes)

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, TableSet) and np.array_equal(self.freqs, other.freqs)
                and np.array_equal(self.offsets, other.offsets))

    def table(self, index: int) -> np.ndarray:
        return self.freqs[index, : self.sizes[index]]

    def categorical(self, index: int):
        """constriction's model for table ``index``, reproducing its integers exactly.

        ``Categorical(perfect=False)`` gives entry i the cumulative ``floor(sum_{j<i} p_j * s) + i``
        with ``s = (2^24 - n) / sum(p)``; with ``p = f - 1`` the scale is 1 and every term is an
        integer below 2^24, so the result is ``f`` itself (SPEC.md Section 9).
        """
        model = self._models[index]
        if model is None:
            model = constriction.stream.model.Categorical(
                (self.table(index) - 1).astype(np.float64), perfect=False)
            self._models[index] = model
        return model

    def entropy_bits(self) -> np.ndarray:
        """Expected bits per symbol of each table (its own entropy), for sizing decisions."""
        if self._entropy is None:
            p = self.freqs / TOTAL
            with np.errstate(divide="ignore", invalid="ignore"):
                self._entropy = -np.nansum(np.where(p > 0, p * np.log2(p), 0.0), axis=1)
        return self._entropy

    def information_bits(self, values: np.ndarray, tables: np.ndarray) -> float:
        """Ideal cost in bits of ``values`` under these tables (escapes counted at 5 + L bits)."""
        if self._costs is None:
            with np.errstate(divide="ignore"):
                self._costs = PRECISION - np.log2(self.freqs)  # padding entries are never read
        tables = np.asarray(tables, dtype=np.int64)
        values = np.asarray(values, dtype=np.int64)
        symbols = values - self.offsets[tables]
        direct = self.escape[tables]
        escaped = symbols.view(np.uint64) >= direct.view(np.uint64)
        symbols[escaped] = direct[escaped]
        bits = float(self._costs.take(tables * self.freqs.shape[1] + symbols).sum())
        if escaped.any():
            over = _escape_magnitude(values[escaped], self.offsets[tables[escaped]],
                                     self.escape[tables[escaped]])
            bits += float(np.sum(5 + _bit_length(over + 1) - 1))
        return bits

    @classmethod
    def from_pmfs(cls, pmfs: Sequence[np.ndarray], offsets: Sequence[int]) -> "TableSet":
        """Quantise probability vectors (escape mass last) to integer tables.

        Each entry gets 1 plus its share of the remaining ``2^24 - n``, rounded down; what rounding
        leaves over goes to the most probable entry. Deterministic for given float inputs, but
        floats differ across machines: models build tables once and ship the integers.
        """
        return cls([quantise_pmf(pmf) for pmf in pmfs], offsets)

    def pack(self) -> bytes:
        """The ``TABL`` payload of SPEC.md Section 5.2."""
        parts = [struct.pack("<H", len(self))]
        for index in range(len(self)):
            parts.append(struct.pack("<Hh", self.sizes[index], self.offsets[index]))
            parts.append(self.table(index).astype("<u4").tobytes())
        return b"".join(parts)

    @classmethod
    def unpack(cls, payload: bytes) -> "TableSet":
        if len(payload) < 2:
            raise FormatError("TABL payload is too short")
        (count,) = struct.unpack_from("<H", payload)
        if not 1 <= count <= MAX_TABLES:
            raise LimitError(f"TABL declares {count} tables, outside 1..{MAX_TABLES}")
        position, frequencies, offsets = 2, [], []
        for index in range(count):
            if position + 4 > len(payload):
                raise FormatError(f"TABL ends inside table {index}")
            size, offset = struct.unpack_from("<Hh", payload, position)
            if not 2 <= size <= MAX_ENTRIES:
                raise LimitError(f"table {index} declares {size} entries, outside "
                                 f"2..{MAX_ENTRIES}")
            position += 4
            if position + 4 * size > len(payload):
                raise FormatError(f"TABL ends inside table {index}")
            frequencies.append(np.frombuffer(payload, "<u4", size, position).astype(np.int64))
            offsets.append(offset)
            position += 4 * size
        if position != len(payload):
            raise FormatError(f"TABL has {len(payload) - position} bytes after its last table")
        return cls(frequencies, offsets)

    def digest(self) -> str:
        """SHA-256 of the packed tables, for model cards and caches."""
        return hashlib.sha256(self.pack()).hexdigest()


def quantise_pmf(pmf: np.ndarray) -> np.ndarray:
    """Integer frequencies >= 1 summing to 2^24: each entry gets 1 plus its share of the rest,
    rounded down, and the remainder goes to the most probable entry."""
    pmf = np.clip(np.asarray(pmf, dtype=np.float64), 0, None)
    total = pmf.sum()
    if not np.isfinite(total) or total <= 0:
        raise ValueError("a pmf must have a positive, finite sum")
    free = TOTAL - len(pmf)
    freq = 1 + np.floor(pmf / total * free).astype(np.int64)
    freq[int(np.argmax(pmf))] += TOTAL - int(freq.sum())
    return freq


def _bit_length(values: np.ndarray) -> np.ndarray:
    """Bit length of positive int64 values below 2^53 (exact via frexp)."""
    return np.frexp(values.astype(np.float64))[1].astype(np.int64)


def _escape_magnitude(values: np.ndarray, offsets: np.ndarray, direct: np.ndarray) -> np.ndarray:
    """The r of SPEC.md Section 6.4 for escaped values."""
    values = values.astype(np.int64)
    return np.where(values < offsets, 2 * (offsets - values) - 1, 2 * (values - offsets - direct))
