#!/usr/bin/env python3
"""Count how corrupted and truncated files are handled (the figures behind tests/test_fuzz.py).

For each conformance vector: every single-byte change (3 masks), every payload-byte change with
its chunk CRC repaired (so the parsers and the rANS decoder see the damage), every truncation,
and random multi-byte damage with repaired CRCs. Each file is decoded fully. Prints how many
were tried, rejected with CodecError, decoded as valid, and ended in any other exception (must
be 0), with the slowest case and peak traced memory.

    python tools/fuzz_container.py [--random 20000]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from codec.bitstream import CodecError  # noqa: E402
from codec.bitstream.vectors import decode_symbol_file  # noqa: E402
from tests.test_fuzz import FILES, VECTORS, chunk_spans, corruptions, recrc  # noqa: E402


def random_damage(data: bytes, count: int, seed: int):
    rng = random.Random(seed)
    spans = list(chunk_spans(data))
    for _ in range(count):
        broken = bytearray(data)
        start, length = rng.choice(spans)
        if length == 0:
            continue
        for _ in range(rng.randint(1, 8)):
            broken[start + 8 + rng.randrange(length)] = rng.randrange(256)
        recrc(broken, start, length)
        yield bytes(broken)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--random", type=int, default=20000, help="random cases per file")
    args = parser.parse_args()
    totals = {"tried": 0, "rejected": 0, "valid": 0, "other": 0}
    slowest = 0.0
    tracemalloc.start()
    for name in FILES:
        data = (VECTORS / name).read_bytes()
        cases = [*corruptions(data), *(data[:n] for n in range(len(data))),
                 *random_damage(data, args.random, len(data))]
        for case in cases:
            totals["tried"] += 1
            start = time.perf_counter()
            try:
                decode_symbol_file(case)
                totals["valid"] += 1
            except CodecError:
                totals["rejected"] += 1
            except Exception as error:  # the failure this tool exists to find
                totals["other"] += 1
                print(f"{name}: {type(error).__name__}: {error}", file=sys.stderr)
            slowest = max(slowest, time.perf_counter() - start)
    _, peak = tracemalloc.get_traced_memory()
    print(f"tried {totals['tried']}, rejected with CodecError {totals['rejected']}, "
          f"decoded as valid {totals['valid']}, other exceptions {totals['other']}; "
          f"slowest case {slowest * 1000:.1f} ms, peak traced memory {peak / 2**20:.1f} MiB")
    return 1 if totals["other"] else 0


if __name__ == "__main__":
    sys.exit(main())
