"""Files of the table-only model ``none`` (SPEC.md Section 8.1), used as conformance vectors.

Each coded unit holds one group of n values; value i uses table ``i % T`` of the file's
embedded table set, and the side information is n as a u32.
"""

from __future__ import annotations

import io
import struct
from typing import Sequence

import numpy as np

from .container import ContainerReader, ContainerWriter
from .errors import CodecError, FormatError, LimitError
from .header import NO_MODEL, NO_MODEL_DIGEST, AudioGeometry, Geometry, Header
from .rans import SymbolDecoder, encode_groups
from .tables import TableSet
from .units import Segment

MAX_VALUES = 1 << 20


def table_numbers(count: int, table_count: int) -> np.ndarray:
    return np.arange(count, dtype=np.int32) % np.int32(table_count)


def encode_symbol_file(geometry: Geometry, tables: TableSet, units: Sequence[np.ndarray],
                       substreams: int | None = None, quality: float = 0.0,
                       alpha: np.ndarray | None = None) -> bytes:
    """A complete ``none``-model file holding ``units`` (one value array per frame/segment),
    and ``alpha`` (an image's H×W uint8 alpha plane, for 4 channels)."""
    out = io.BytesIO()
    with ContainerWriter(out, Header(geometry, NO_MODEL, NO_MODEL_DIGEST, quality),
                         tables) as writer:
        for values in units:
            values = np.asarray(values).ravel()
            if len(values) > MAX_VALUES:
                raise ValueError(f"a unit of the none model holds at most {MAX_VALUES} values")
            payload = encode_groups(tables, [(values, table_numbers(len(values), len(tables)))],
                                    substreams, struct.pack("<I", len(values)))
            if isinstance(geometry, AudioGeometry):
                writer.write_segment(payload, len(values))
            else:
                writer.write_frame(payload)
        if alpha is not None:
            writer.write_alpha(alpha)
    return out.getvalue()


def decode_symbol_file(data: bytes) -> tuple[Header, list[np.ndarray]]:
    """Header and the values of every coded unit of a ``none``-model file."""
    reader = ContainerReader(io.BytesIO(data))
    header = reader.header
    if header.model != NO_MODEL or header.weights_digest != NO_MODEL_DIGEST:
        raise FormatError(f"model {header.model!r} is not the table-only model {NO_MODEL!r}")
    units = []
    for unit in reader:
        if reader.tables is None:
            raise FormatError("the none model needs an embedded TABL chunk before its units")
        try:
            decoded = _decode_unit(reader.tables, unit.payload)
        except CodecError as error:
            raise reader.annotate(error)
        if isinstance(unit, Segment) and len(decoded) != unit.sample_count:
            raise FormatError(f"segment declares {unit.sample_count} samples but codes "
                              f"{len(decoded)} values")
        units.append(decoded)
    return header, units


def _decode_unit(tables: TableSet, payload: bytes) -> np.ndarray:
    decoder = SymbolDecoder(tables, payload)
    if len(decoder.side) != 4:
        raise FormatError("none-model side information must be 4 bytes")
    (count,) = struct.unpack("<I", decoder.side)
    if count > MAX_VALUES:
        raise LimitError(f"none-model unit declares {count} values, over {MAX_VALUES}")
    values = decoder.decode_group(table_numbers(count, len(tables)))
    decoder.finish()
    return values
