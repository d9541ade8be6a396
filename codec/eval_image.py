#!/usr/bin/env python3
"""Image rate-distortion evaluation: our codec beside JPEG, WebP and AVIF (Pillow), BD-rates.

Writes ``results.json`` (settings, library versions, mean curves, per-image records, BD tables)
and ``rd.png`` into --out, and prints the mean bpp/PSNR of every point and the BD-rate tables.
Curves are CompressAI style: mean of per-image bpp and mean of per-image RGB PSNR. Each point
of ours is a real `.lc` file, decoded again.

    codec eval --data ../shared/data/images/kodak --out runs/eval \
        [--limit N] [--codecs jpeg,webp,avif] [--published ../shared/anchors/kodak_published.json]
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from PIL import __version__ as pillow_version
from PIL import features

from . import evaluation


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(prog="codec eval", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, type=Path, help="folder of PNG/JPEG images")
    parser.add_argument("--out", required=True, type=Path, help="folder for results.json, rd.png")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N images")
    parser.add_argument("--codecs", default=",".join(evaluation.CLASSIC_CODECS),
                        help="comma-separated classic codecs (default: jpeg,webp,avif)")
    parser.add_argument("--reference", default=None,
                        help="curve the summary BD-rates use (default: avif if measured)")
    parser.add_argument("--published", type=Path, default=None,
                        help="JSON of published curves {name: {bpp: [...], psnr: [...]}}")
    parser.add_argument("--method", choices=evaluation.BD_METHODS, default="pchip",
                        help="BD interpolation: piecewise cubic (default) or one cubic fit")
    parser.add_argument("--no-ours", dest="ours", action="store_false",
                        help="evaluate only the classic codecs")
    parser.add_argument("--model", default=None,
                        help="model identifier for --ours (default: the installed default), or "
                             "a path to a .safetensors file to evaluate before it is registered")
    parser.add_argument("--ours-qualities", default="1,2,3,4,5,6,7,8",
                        help="comma-separated qualities for --ours")
    parser.add_argument("--device", default="cpu",
                        help="where our networks run: cpu, cuda, cuda:N or auto (default cpu)")
    parser.add_argument("--refine", type=int, default=0, metavar="STEPS",
                        help="also measure ours with encoder-side latent refinement of STEPS "
                             "gradient steps (curve 'ours-refineSTEPS'; ~0.9 s a step for a "
                             "768x512 image on 2 CPU cores)")
    return parser.parse_args(argv)


def learned_codecs(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, list[Any]]]:
    """Our codec as (codecs, quality ladders): each point is a real `.lc` file, decoded again."""
    if not args.ours:
        return {}, {}
    from .image import decode_image, encode_image
    from .models import registry
    from .models.device import resolve_device

    device = resolve_device(args.device)  # refused before any image is coded
    model = args.model
    if model and Path(model).suffix == ".safetensors":
        model = registry.register_file(model).model_id

    def codec_with(steps: int):
        def ours(image, quality):
            data = encode_image(image, float(quality), model, refine_steps=steps,
                                device=device)
            return len(data), decode_image(data, device=device)
        return ours

    if args.refine < 0:
        raise ValueError(f"--refine must be 0 or more, got {args.refine}")
    ladder = [float(q) for q in args.ours_qualities.split(",")]
    codecs, ladders = {"ours": codec_with(0)}, {"ours": ladder}
    if args.refine:
        name = f"ours-refine{args.refine}"
        codecs[name], ladders[name] = codec_with(args.refine), ladder
    return codecs, ladders


def classic_selection(text: str) -> list[str]:
    """Parse --codecs into known classic codec names, refusing unknown or empty lists."""
    names = [name.strip().lower() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in evaluation.CLASSIC_CODECS]
    if not names or unknown:
        raise ValueError(f"--codecs {text!r}: choose from {','.join(evaluation.CLASSIC_CODECS)}")
    return names


def pick_reference(requested: str | None, measured: Sequence[str],
                   published: Mapping[str, Any]) -> str:
    """The reference curve: the requested one if it will exist, else avif or the first measured."""
    if requested is None:
        return "avif" if "avif" in measured else measured[0]
    if requested not in measured and requested not in published:
        raise ValueError(f"--reference {requested!r} is neither measured nor published; "
                         f"choose from {', '.join([*measured, *published])}")
    return requested


def versions() -> dict[str, Any]:
    """Library versions the classic curves depend on, recorded beside the results."""
    return {"python": platform.python_version(), "pillow": pillow_version,
            "libjpeg": features.version("jpg"), "libwebp": features.version("webp"),
            "libavif": features.version("avif"), "machine": platform.machine()}


def fmt(value: float, spec: str) -> str:
    """Format a number, with 'n/a' for NaN (curves that do not overlap)."""
    return "n/a" if value is None or not math.isfinite(value) else format(value, spec)


def print_points(curves: Mapping[str, Mapping[str, Sequence[float]]],
                 summary: Mapping[str, Any]) -> None:
    """Table of mean bpp and PSNR for every codec and quality, with each point's rate against
    the reference's at the same PSNR (where along the curve a codec gains or loses)."""
    width = max([8, *map(len, curves)])
    column = f"vs {summary['reference']} %"
    print(f"{'codec':<{width}} {'quality':>8} {'bpp':>8} {'PSNR dB':>8} {column:>12}")
    for name, curve in curves.items():
        against = summary["points_vs_reference"][name]
        for quality, bpp, psnr, rate in zip(curve["quality"], curve["bpp"], curve["psnr"],
                                            against):
            print(f"{name:<{width}} {quality!s:>8} {bpp:8.4f} {psnr:8.3f} "
                  f"{fmt(rate, '+.1f'):>12}")


def print_matrix(title: str, table: Mapping[str, Mapping[str, float]], anchors: list[str],
                 tests: list[str]) -> None:
    """Table of BD-rates: one row per tested curve, one column per anchor."""
    if not anchors or not tests:
        return
    width = max(len(name) for name in tests) + 2
    columns = [max(len(a), 8) for a in anchors]
    print(f"\n{title}")
    print(f"{'curve':<{width}}" + " ".join(f"{a:>{w}}" for a, w in zip(anchors, columns)))
    for test in tests:
        cells = [fmt(table[a].get(test, math.nan) if test != a else 0.0, "+.1f")
                 for a in anchors]
        print(f"{test:<{width}}" + " ".join(f"{c:>{w}}" for c, w in zip(cells, columns)))


def print_report(summary: Mapping[str, Any], measured: list[str], published: list[str]) -> None:
    """BD-rate of every curve against the classic anchors, and of ours against published ones."""
    classic = [name for name in evaluation.CLASSIC_CODECS if name in measured]
    print_matrix(f"BD-rate % against each classic anchor ({summary['method']}; "
                 "negative = fewer bits than the anchor)", summary["bd_rate"], classic,
                 measured + published)
    print_matrix("BD-rate % of measured curves against published anchors (rows: anchors)",
                 {m: {p: summary["bd_rate"][p][m] for p in published} for m in measured},
                 measured, published)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        codecs = evaluation.classic_codecs(classic_selection(args.codecs))
        ours, ladders = learned_codecs(args)
        codecs.update(ours)
        published = evaluation.load_published(args.published) if args.published else {}
        reference = pick_reference(args.reference, list(codecs), published)
        start = time.perf_counter()
        results = evaluation.evaluate_folder(args.data, codecs, ladders, limit=args.limit)
        wall = time.perf_counter() - start
        summary = evaluation.report(results["curves"], reference, published, args.method)
    except (ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    evaluation.plot(results["curves"], args.out / "rd.png", published,
                    title=f"{args.data.name}: {len(results['images'])} images")
    document = {"data": str(args.data), "images": results["images"], "wall_s": wall,
                "settings": {"qualities": {n: c["quality"] for n, c in results["curves"].items()},
                             "classic": {"jpeg": "4:2:0, optimize=True", "webp": "method=6",
                                         "avif": "4:4:4, speed=4"}},
                "versions": versions(), "curves": results["curves"], "published": published,
                "report": summary, "records": results["records"]}
    (args.out / "results.json").write_text(json.dumps(evaluation.json_safe(document), indent=1))
    print_points(results["curves"], summary)
    print_report(summary, list(results["curves"]), list(published))
    print(f"\n{len(results['images'])} images, {wall:.0f} s; wrote {args.out / 'results.json'} "
          f"and {args.out / 'rd.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
