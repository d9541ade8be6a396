#!/usr/bin/env python3
"""How hard each quality pulls on the shared weights: gradient norms per parameter group.

With one model for all rates and the loss ``λ(q)·255²·MSE + bpp`` drawn per sample, a sample's
gradient grows steeply with λ, so the top of the ladder can drown the bottom in a mixed batch.
This measures it on training crops, per quality, for the plain loss and for
``tools/train_image.py --rate-balance`` weights, to choose that option on evidence.

    python tools/quality_gradients.py --weights codec/models/weights/image-mref-v1.safetensors
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))  # tools/ is not a package

import torch  # noqa: E402
import train_image  # noqa: E402


def group_of(name: str) -> str:
    """Parameter group for the report: transforms, hyperprior, gains, entropy parameters."""
    for prefix in ("g_a", "g_s"):
        if name.startswith(prefix):
            return prefix
    if "gain" in name:
        return "gains"
    return "hyper" if name.startswith("h_") else "entropy"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", type=Path,
                        default=ROOT / "codec/models/weights/image-mref-v1.safetensors")
    parser.add_argument("--data", nargs="+", type=Path,
                        default=[ROOT.parent / "shared/data/images/train"])
    parser.add_argument("--crops", type=int, default=8, help="crops, in pairs (batch 2)")
    parser.add_argument("--crop", type=int, default=256)
    parser.add_argument("--qualities", type=float, nargs="+", default=[1.0, 2.0, 4.5, 7.0, 8.0])
    parser.add_argument("--rate-balance", type=float, default=0.5,
                        help="α of the weighted column (train_image.py --rate-balance)")
    args = parser.parse_args(argv)

    torch.manual_seed(0)
    model, step = train_image.load_init_quietly(args.weights)
    model.train()
    _, paths = train_image.split_holdout(train_image.find_images(args.data), 16)
    dataset = train_image.CropDataset(paths, args.crop)
    crops = torch.stack([dataset[(index * 37, 7)] for index in range(args.crops)])
    crops = crops.float().div_(255)
    groups: dict[str, list[torch.nn.Parameter]] = {}
    for name, parameter in model.named_parameters():
        if not name.endswith("quantiles"):
            groups.setdefault(group_of(name), []).append(parameter)

    print(f"{args.weights.name} (step {step}), {args.crops} crops of {args.crop}², batch 2; "
          f"median gradient L2 norm over the pairs")
    print("| quality | loss | " + " | ".join(groups) + f" | all, weighted α={args.rate_balance} |")
    print("|---" * (len(groups) + 3) + "|")
    for quality in args.qualities:
        norms: dict[str, list[float]] = {name: [] for name in [*groups, "weighted"]}
        losses = []
        for pair in crops.split(2):
            q = torch.full((pair.shape[0],), quality)
            model.zero_grad()
            loss, _, _ = train_image.rate_distortion(model(pair, q), pair, q)
            loss.mean().backward()
            losses.append(loss.mean().item())
            total = 0.0
            for name, parameters in groups.items():
                squared = sum(float((p.grad ** 2).sum()) for p in parameters if p.grad is not None)
                norms[name].append(squared ** 0.5)
                total += squared
            weight = float(train_image.balance_weights(q[:1], args.rate_balance))
            norms["weighted"].append(weight * total ** 0.5)
        print(f"| {quality:g} | {statistics.median(losses):.3f} | "
              + " | ".join(f"{statistics.median(v):.3f}" for v in norms.values()) + " |",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
