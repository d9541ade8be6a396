"""Integer frequency tables as arrays: built once from a model's pmfs, shipped in its weights."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..bitstream.tables import quantise_pmf

def pack_tables(pmfs: Sequence[np.ndarray], offsets: Sequence[int]) -> dict[str, np.ndarray]:
    """``frequencies`` (T, max n) int32 zero-padded, ``sizes`` (T,) and ``offsets`` (T,)."""
    frequencies = [quantise_pmf(p) for p in pmfs]
    width = max(len(f) for f in frequencies)
    packed = np.zeros((len(frequencies), width), dtype=np.int32)
    for row, freq in enumerate(frequencies):
        packed[row, :len(freq)] = freq
    return {"frequencies": packed,
            "sizes": np.array([len(f) for f in frequencies], dtype=np.int32),
            "offsets": np.asarray(offsets, dtype=np.int32)}


def unpack_tables(arrays: dict[str, np.ndarray]) -> tuple[list[np.ndarray], list[int]]:
    """Inverse of :func:`pack_tables`: per-table frequency arrays and offsets."""
    sizes = arrays["sizes"].astype(np.int64)
    return ([arrays["frequencies"][row, :size].astype(np.int64) for row, size in
             enumerate(sizes)], arrays["offsets"].astype(np.int64).tolist())
