#!/usr/bin/env python3
"""Regenerate the conformance vectors in testdata/conformance (an explicit, reviewed act).

Each vector is a `.lc` file of the table-only model ``none`` (SPEC.md Section 8.1) plus its
expected decoding in ``vectors.json``: header fields, and per coded unit the value count and
the SHA-256 of the values as little-endian int32. The tests decode every vector with the
library and with the reference decoder written from SPEC.md, and compare with this file.

    python tools/make_vectors.py            # writes testdata/conformance/
    python tools/make_vectors.py --check    # fails if regenerating would change any byte
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np

from codec.bitstream import (AudioGeometry, ContainerReader, ContainerWriter, FrameType, Header,
                             ImageGeometry, SampleFormat, TableSet, VideoGeometry, encode_groups)
from codec.bitstream.chunks import frame_chunk
from codec.bitstream.header import NO_MODEL, NO_MODEL_DIGEST
from codec.bitstream.vectors import encode_symbol_file, table_numbers

OUT = Path(__file__).resolve().parent.parent / "testdata" / "conformance"


def laplace_tables(scales: list[float], half: int) -> TableSet:
    """Discrete Laplace tables over -half..half plus an escape entry (fixed, simple floats)."""
    pmfs = []
    for scale in scales:
        x = np.arange(-half, half + 1)
        pmf = np.exp(-np.abs(x) / scale)
        pmf = np.append(pmf / pmf.sum() * (1 - 1e-4), 1e-4)
        pmfs.append(pmf)
    return TableSet.from_pmfs(pmfs, [-half] * len(scales))


def unit_values(rng: np.random.Generator, count: int, tables: TableSet,
                escapes: int) -> np.ndarray:
    scales = np.array([0.4, 1.0, 3.0, 9.0])
    numbers = table_numbers(count, len(tables))
    values = np.round(rng.laplace(size=count) * scales[numbers % len(scales)]).astype(np.int64)
    spots = rng.choice(count, size=escapes, replace=False)
    magnitudes = [40, 300, 70_000, 1 << 29, 1 << 30][: escapes]
    values[spots[: len(magnitudes)]] = [m * (-1) ** i for i, m in enumerate(magnitudes)]
    return values


def build() -> dict[str, tuple[bytes, list[np.ndarray]]]:
    rng = np.random.default_rng(20261122)
    tables = laplace_tables([0.4, 1.0, 3.0, 9.0], half=24)
    vectors = {}

    image = [unit_values(rng, 32 * 24 * 3, tables, 5)]
    vectors["image-none.lc"] = (
        encode_symbol_file(ImageGeometry(32, 24), tables, image, substreams=3, quality=4.0), image)

    frames = [unit_values(rng, 600, tables, 3) for _ in range(4)]
    out = io.BytesIO()
    header = Header(VideoGeometry(20, 10, Fraction(30000, 1001), 4), NO_MODEL, NO_MODEL_DIGEST,
                    2.5)
    with ContainerWriter(out, header, tables) as writer:
        for number, values in enumerate(frames):
            payload = encode_groups(tables, [(values, table_numbers(len(values), len(tables)))],
                                    substreams=2, side=len(values).to_bytes(4, "little"))
            if number in (0, 2):
                writer.write_frame(payload)
            else:
                writer.write_frame(payload, FrameType.PREDICTED, (number - 1,))
        writer.close(index=True)
    vectors["video-none.lc"] = (out.getvalue(), frames)

    segments = [unit_values(rng, n, tables, 2) for n in (800, 800, 313)]
    vectors["audio-none.lc"] = (encode_symbol_file(
        AudioGeometry(16000, 1, 1913, SampleFormat.S16), tables, segments, substreams=1), segments)

    # A newer minor version of the same major: extra HEAD bytes and an unknown chunk type,
    # both of which a 1.0 decoder must skip.
    base, values = vectors["image-none.lc"]
    vectors["minor-extension.lc"] = (_as_minor_extension(base), values)

    # Version 1.1: the same picture with an alpha plane (ALPH), a disc with a soft edge.
    vectors["image-none-alpha.lc"] = (encode_symbol_file(
        ImageGeometry(32, 24, channels=4), tables, image, substreams=3, quality=4.0,
        alpha=soft_disc(24, 32)), image)
    return vectors


def soft_disc(height: int, width: int) -> np.ndarray:
    """An alpha plane: opaque disc, transparent outside, a ramp of about 2 pixels between."""
    rows, columns = np.mgrid[0:height, 0:width]
    distance = np.hypot(rows - height / 2 + 0.5, columns - width / 2 + 0.5)
    return np.clip((height * 0.4 - distance) * 128 + 128, 0, 255).astype(np.uint8)


def _as_minor_extension(data: bytes) -> bytes:
    """Rewrite a 1.0 file as 1.9 with 3 trailing HEAD bytes and a 'zNEW' chunk before FRAM."""
    import struct

    position, chunks = 6, []
    while position < len(data):
        kind = data[position:position + 4]
        (length,) = struct.unpack_from("<I", data, position + 4)
        chunks.append((kind, data[position + 8:position + 8 + length]))
        position += 12 + length
    out = [data[:4], bytes((1, 9))]
    for kind, payload in chunks:
        if kind == b"HEAD":
            payload += b"\x01\x02\x03"
        if kind == b"FRAM":
            out.append(frame_chunk(b"zNEW", b"future data a 1.0 decoder ignores"))
        out.append(frame_chunk(kind, payload))
    return b"".join(out)


def expectation(units: list[np.ndarray]) -> list[dict]:
    return [{"count": int(len(v)),
             "sha256": hashlib.sha256(np.asarray(v, dtype="<i4").tobytes()).hexdigest(),
             "first": [int(x) for x in v[:8]]} for v in units]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="compare with the committed vectors instead of writing")
    args = parser.parse_args()
    from codec import info

    manifest = {}
    for name, (data, units) in build().items():
        summary = info(data)
        manifest[name] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(),
                          "header": {k: summary[k] for k in summary
                                     if k not in ("bytes", "payload_bytes", "chunks")},
                          "units": expectation(units)}
        plane = ContainerReader(io.BytesIO(data))
        plane.read_all()
        if plane.alpha is not None:  # the alpha plane as u8 samples in raster order
            manifest[name]["alpha"] = {"count": int(plane.alpha.size), "sha256": hashlib.sha256(
                plane.alpha.tobytes()).hexdigest()}
        if args.check:
            if (OUT / name).read_bytes() != data:
                print(f"{name} would change", file=sys.stderr)
                return 1
        else:
            OUT.mkdir(parents=True, exist_ok=True)
            (OUT / name).write_bytes(data)
    text = json.dumps(manifest, indent=1, sort_keys=True) + "\n"
    if args.check:
        return 0 if (OUT / "vectors.json").read_text() == text else 1
    (OUT / "vectors.json").write_text(text)
    print(f"wrote {len(manifest)} vectors to {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
