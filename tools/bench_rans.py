#!/usr/bin/env python3
"""Throughput and overhead of the rANS coder through the public Python API.

1M symbols (default) drawn from 64 discretised-Gaussian tables, coded as one group with
``codec.bitstream`` (value-to-symbol mapping, table lookup, escapes and substream split
included). Reports medians of repeated runs in million symbols per second, and the coded size
against the ideal information content under the same integer tables.

    python tools/bench_rans.py [--symbols 1000000] [--tables 64] [--repeats 7]
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import time

import numpy as np

from codec.bitstream.rans import SymbolDecoder, SymbolEncoder
from codec.bitstream.tables import TableSet


def gaussian_tables(count: int) -> tuple[TableSet, np.ndarray]:
    """Tables for zero-mean Gaussians with log-spaced scales 0.11 .. ~60, escape mass last."""
    scales = np.exp(np.linspace(math.log(0.11), math.log(60.0), count))
    pmfs, offsets = [], []
    for scale in scales:
        half = int(min(max(2, math.ceil(scale * 6)), 2000))
        edges = (np.arange(-half, half + 2) - 0.5) / (scale * math.sqrt(2))
        cdf = 0.5 * (1 + np.vectorize(math.erf)(edges))
        pmf = np.diff(cdf)
        pmfs.append(np.append(pmf, max(1.0 - pmf.sum(), 1e-9)))
        offsets.append(-half)
    return TableSet.from_pmfs(pmfs, offsets), scales


def sample(scales: np.ndarray, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    tables = rng.integers(0, len(scales), n)
    values = np.round(rng.normal(size=n) * scales[tables]).astype(np.int64)
    return values, tables


def median_seconds(function, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--symbols", type=int, default=1_000_000)
    parser.add_argument("--tables", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()

    rng = np.random.default_rng(2026)
    tables, scales = gaussian_tables(args.tables)
    for index in range(len(tables)):  # models are built once per table set, as a codec does
        tables.categorical(index)
    values, numbers = sample(scales, args.symbols, rng)

    def encode() -> bytes:
        encoder = SymbolEncoder(tables)
        encoder.add_group(values, numbers)
        return encoder.finish()

    payload = encode()

    def decode() -> np.ndarray:
        decoder = SymbolDecoder(tables, payload)
        out = decoder.decode_group(numbers)
        decoder.finish()
        return out

    assert np.array_equal(decode(), values), "round trip failed"
    encode_s = median_seconds(encode, args.repeats)
    decode_s = median_seconds(decode, args.repeats)
    ideal = tables.information_bits(values, numbers)
    result = {
        "machine": f"{platform.machine()}, {__import__('os').cpu_count()} cores",
        "symbols": args.symbols, "tables": args.tables, "repeats": args.repeats,
        "substreams": SymbolDecoder(tables, payload).substreams,
        "encode_msym_s": round(args.symbols / encode_s / 1e6, 1),
        "decode_msym_s": round(args.symbols / decode_s / 1e6, 1),
        "coded_bytes": len(payload), "ideal_bytes": round(ideal / 8),
        "overhead_percent": round((8 * len(payload) / ideal - 1) * 100, 4),
    }
    # overhead at small sizes, where flushes and the directory weigh most
    small = {}
    for n in (1_000, 10_000, 100_000):
        v, t = sample(scales, n, rng)
        encoder = SymbolEncoder(tables)
        encoder.add_group(v, t)
        small[n] = round((8 * len(encoder.finish()) / tables.information_bits(v, t) - 1) * 100, 3)
    result["overhead_percent_by_size"] = small
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>26}: {value}")


if __name__ == "__main__":
    main()
