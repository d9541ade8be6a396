#!/usr/bin/env python3
"""Speed and memory of the image codec on this machine.

Encode and decode of a 768×512 Kodak image (median of --repeats runs, after one warm-up), and
the peak resident memory of a 4096×4096 round trip measured in a fresh process.

    python tools/bench_image.py [--model ID | --model path.safetensors] [--repeats 5]
                                [--device cuda]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
KODAK = ROOT.parent / "shared" / "data" / "images" / "kodak" / "kodim23.png"


def use_model(model: str | None) -> str | None:
    """Register a candidate weights file if a path was given; return the model id to use."""
    if model and model.endswith(".safetensors"):
        from codec.models import registry

        return registry.register_file(model).model_id
    return model


def large_round_trip(model: str | None, device: str) -> None:
    """Child process: 4096×4096 round trip, print peak RSS in MiB."""
    from codec.image import decode_image, encode_image

    model = use_model(model)
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    image = np.kron(base, np.ones((64, 64, 1), dtype=np.uint8))  # smooth-ish 4096×4096
    start = time.perf_counter()
    data = encode_image(image, 4.0, model, device=device)
    decoded = decode_image(data, device=device)
    assert decoded.shape == image.shape
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"peak_mib": round(peak), "seconds": round(time.perf_counter() - start, 1),
                      "bytes": len(data)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quality", type=float, default=4.0)
    parser.add_argument("--skip-large", action="store_true")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    parser.add_argument("--large-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.large_child:
        return large_round_trip(args.model, args.device)

    import torch
    from PIL import Image

    from codec.image import decode_image, encode_image

    model = use_model(args.model)
    image = np.asarray(Image.open(KODAK).convert("RGB"))
    data = encode_image(image, args.quality, model, device=args.device)
    decode_image(data, device=args.device)
    encode_times, decode_times = [], []
    for _ in range(args.repeats):
        start = time.perf_counter()
        data = encode_image(image, args.quality, model, device=args.device)
        encode_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        decode_image(data, device=args.device)  # results come back to the CPU: no sync needed
        decode_times.append(time.perf_counter() - start)
    result = {"machine": f"{os.cpu_count()} cores, torch threads {torch.get_num_threads()}",
              "device": args.device,
              "image": f"{KODAK.name} {image.shape[1]}x{image.shape[0]}",
              "quality": args.quality, "bpp": round(8 * len(data) / image[..., 0].size, 4),
              "encode_s_median": round(statistics.median(encode_times), 3),
              "decode_s_median": round(statistics.median(decode_times), 3),
              "encode_s_all": [round(t, 3) for t in encode_times],
              "decode_s_all": [round(t, 3) for t in decode_times]}
    if not args.skip_large:
        child = subprocess.run([sys.executable, __file__, "--large-child"] +
                               (["--model", args.model] if args.model else []) +
                               ["--device", args.device],
                               capture_output=True, text=True, check=True)
        result["round_trip_4096"] = json.loads(child.stdout.strip().splitlines()[-1])
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
