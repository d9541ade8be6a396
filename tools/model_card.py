#!/usr/bin/env python3
"""Write a model card (markdown) for exported weights from its training log and a Kodak run.

    python tools/model_card.py --weights codec/models/weights/image-mref-v1.safetensors \
        --eval runs/eval/results.json --train-log checkpoints/image/log.jsonl \
        --out codec/models/weights/image-mref-v1.md
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from codec.models.image_model import LAMBDAS  # noqa: E402
from codec.models.weights import card_of, file_digest  # noqa: E402


def last_record(log: Path) -> dict:
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    # the last training record, not the stop/eval lines that may follow it
    steps = [line for line in lines if line.get("type", "train") == "train" and "loss" in line]
    return steps[-1] if steps else {}


def fmt(value) -> str:
    return "n/a" if value is None else f"{value:+.1f}%"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", type=Path, required=True)
    parser.add_argument("--eval", type=Path, required=True, help="results.json of eval_image.py")
    parser.add_argument("--train-log", type=Path, default=None)
    parser.add_argument("--name", default=None)
    parser.add_argument("--notes", default="", help="free text: hardware, schedule, caveats")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    results = json.loads(args.eval.read_text())
    curves, report = results["curves"], results["report"]
    ours = curves["ours"]
    card = card_of(args.weights)
    name = args.name or args.weights.stem
    lines = [f"# Model card: {name}", "",
             f"- Weights: `{args.weights.name}`, {args.weights.stat().st_size / 2**20:.1f} MiB, "
             f"SHA-256 `{file_digest(args.weights)}`",
             f"- Architecture: {json.dumps(card.get('config', {})) or 'see file metadata'}",
             f"- Rate range: quality 1-8, λ {LAMBDAS[0]} … {LAMBDAS[-1]} "
             "(MSE, λ·255²·MSE + bpp)"]
    for key in ("data", "steps", "hardware", "schedule", "qat"):
        if key in card:
            lines.append(f"- {key.capitalize()}: {card[key]}")
    if args.train_log and args.train_log.exists():
        record = last_record(args.train_log)
        if record:
            keys = ("step", "loss", "bpp", "psnr", "lr", "qat")
            shown = {k: (round(v, 4) if k in ("loss", "bpp", "psnr") else v)
                     for k, v in record.items() if k in keys}
            lines.append(f"- Last training record (crops, sampled qualities): {json.dumps(shown)}")
    if args.notes:
        lines.append(f"- Notes: {args.notes}")
    lines += ["", f"## Kodak ({len(results['images'])} images), measured "
              f"{results.get('versions', {}).get('machine', '')}", "",
              "| quality | bpp | RGB PSNR (dB) |", "|---|---|---|"]
    lines += [f"| {q:g} | {b:.4f} | {p:.2f} |"
              for q, b, p in zip(ours["quality"], ours["bpp"], ours["psnr"])]
    bd = report["bd_rate"]
    lines += ["", "BD-rate of this model (negative: fewer bits at equal PSNR), anchors measured in "
              "the same run (Pillow; AVIF 4:4:4 speed 4):", "",
              "| anchor | BD-rate |", "|---|---|"]
    for anchor in ("jpeg", "webp", "avif"):
        if anchor in bd:
            lines.append(f"| {anchor} | {fmt(bd[anchor].get('ours'))} |")
    for anchor in sorted(results.get("published", {})):
        value = bd.get(anchor, {}).get("ours")
        lines.append(f"| {anchor} (published) | {fmt(value)} |")
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
