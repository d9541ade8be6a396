#!/usr/bin/env python3
"""Train the learned image model (variable rate, one model for qualities 1..8), resumably.

Loss per sample: ``λ(q) · 255² · MSE(x̂, x) + bpp`` with the quality q ~ Uniform[1, 8] drawn per
sample (Cui et al., "Asymmetric Gained Deep Image Compression With Continuous Rate Adaptation",
CVPR 2021), plus CompressAI's auxiliary loss on the entropy bottleneck's quantiles under its own
optimizer. ``--qat`` switches on fake quantisation of the integer entropy path, a fine-tuning
stage after float training.

``--rate-balance α`` weights each sample's loss by ``(λ(q)/λ(1))^-α`` for the gradient (the logged
loss stays unweighted). Unweighted, a q8 sample's gradient is ~30× a q1 sample's
(tools/quality_gradients.py), so the bottom of the ladder barely trains; α = 0.5, the default,
gave 1.5-2.2% less rate at equal PSNR at q1-q3 on Kodak, q8 unchanged (tools/training-log.md).

The state lives in ``--checkpoint-dir`` (``last.pt``, written atomically every ``--save-every``
steps, at the end, on SIGTERM/SIGINT and before ``--time-limit`` runs out; ``log.jsonl``).
Rerunning the same command resumes; ``--init`` starts from exported ``.safetensors`` weights
and continues their step count (the card's ``steps``), with a data order of its own.
``--steps`` is the total step count to reach, so a resumed run stops where the first would have.

    python tools/train_image.py --steps 2000 --batch 8 --time-limit 55           # CPU, 128² crops
    python tools/train_image.py --data .data/images/train --steps 300000 --batch 16 \\
        --time-limit 25 --workers 8 --export runs/image.safetensors              # one GPU
    torchrun --nproc-per-node 4 tools/train_image.py --data DIR --batch 8        # 4 GPUs (DDP)
    python tools/train_image.py --qat --steps 320000 --lr 1e-5 ...               # QAT stage

On CUDA, and on CPUs with native bf16 (avx512_bf16 or AMX: 1.58x the float32 steps/s measured on
this project's 2-core machine, same loss curve), the analysis and synthesis transforms run under
bf16 autocast; the layers that touch the latent (the last of g_a, the first of g_s), the
hyperprior and the whole entropy-parameter path run in float32 (TF32 off), so likelihoods are
computed in float32.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import random
import shutil
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402
from PIL import Image  # noqa: E402
from torch import Tensor, nn  # noqa: E402
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler  # noqa: E402

from codec.models.image_model import QUALITY_MAX, QUALITY_MIN, STRIDE, ImageModel  # noqa: E402

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}
EVAL_QUALITIES = (1.0, 4.5, 8.0)
CHECKPOINT_FORMAT = "codec-train-image-1"
DERIVED_PREFIXES = ("int.", "tables.")  # integer path and tables in exported files: recomputed
MAX_BAD_STEPS = 20                      # consecutive non-finite gradients before giving up


class TrainingError(Exception):
    """A problem with the command line, the data or the state; printed as ``error: ...``."""


# --------------------------------------------------------------------------- arguments
def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--data", nargs="+", type=Path,
                        default=[Path("../shared/data/images/train")],
                        help="folder(s) searched recursively for .png/.jpg images")
    parser.add_argument("--checkpoint-dir", type=Path, default=Path("checkpoints/image"),
                        help="keeps last.pt and log.jsonl; an existing last.pt is resumed")
    parser.add_argument("--init", type=Path, default=None,
                        help="start from exported .safetensors weights (ignored when resuming)")
    parser.add_argument("--export", type=Path, default=None,
                        help="write .safetensors weights at the end (codec.models.weights)")
    parser.add_argument("--steps", type=int, default=200_000, help="total steps to reach")
    parser.add_argument("--time-limit", type=float, default=None, metavar="MINUTES",
                        help="stop cleanly, saved (and exported), before this much wall time")
    parser.add_argument("--lr", type=float, default=1e-4, help="main learning rate (Adam)")
    parser.add_argument("--aux-lr", type=float, default=1e-3,
                        help="learning rate of the quantiles (auxiliary loss)")
    parser.add_argument("--clip", type=float, default=1.0,
                        help="gradient norm clipping of the main parameters (0: off)")
    parser.add_argument("--batch", type=int, default=8,
                        help="images per step and process (global batch: × WORLD_SIZE)")
    parser.add_argument("--crop", type=int, default=None,
                        help="training crop side, multiple of 64 (default 256 GPU, 128 CPU)")
    parser.add_argument("--workers", type=int, default=None,
                        help="data loader processes (default 0 on CPU, up to 8 per GPU)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--precision", choices=("auto", "bf16", "fp32"), default="auto",
                        help="transforms under bf16 autocast (auto: on CUDA and on CPUs with "
                             "native bf16 instructions)")
    parser.add_argument("--rate-balance", type=float, default=0.5, metavar="ALPHA",
                        help="weight each sample's loss by (λ(q)/λ(1))^-ALPHA so that low "
                             "qualities are not drowned by high ones (0: plain mean)")
    parser.add_argument("--compile", action="store_true",
                        help="compile the analysis and synthesis transforms with torch.compile "
                             "(2-core CPU with bf16: 0.40 s instead of 0.55 s a step at batch "
                             "2, 320² crops, after about 40 s of compilation; no gain in fp32 "
                             "on an AVX2-only CPU)")
    parser.add_argument("--qat", action="store_true",
                        help="quantisation-aware training of the integer entropy path")
    parser.add_argument("--holdout", type=int, default=16,
                        help="images held out of training for evaluation (by name hash)")
    parser.add_argument("--write-holdout", type=Path, default=None, metavar="DIR",
                        help="copy the held-out images into DIR and exit, without training "
                             "(then: codec eval --data DIR)")
    parser.add_argument("--eval-every", type=int, default=2000, help="0: never")
    parser.add_argument("--eval-size", type=int, default=None,
                        help="largest side of the evaluation center crops, multiple of 64 "
                             "(default 512 GPU, 256 CPU)")
    parser.add_argument("--log-every", type=int, default=50)
    parser.add_argument("--save-every", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def check_args(args: argparse.Namespace, device: torch.device) -> None:
    """Fill device-dependent defaults and refuse values that cannot work."""
    gpu = device.type == "cuda"
    if args.crop is None:
        args.crop = 256 if gpu else 128
    if args.eval_size is None:
        args.eval_size = 512 if gpu else 256
    for name in ("crop", "eval_size"):
        value = getattr(args, name)
        if value <= 0 or value % STRIDE:
            option = "--" + name.replace("_", "-")
            fixed = max(STRIDE, round(value / STRIDE) * STRIDE)
            raise TrainingError(f"{option} {value} is not a positive multiple of {STRIDE} "
                                f"(the model's stride); use e.g. {option} {fixed}")
    for name in ("batch", "steps", "log_every", "save_every"):
        if getattr(args, name) <= 0:
            raise TrainingError(f"--{name.replace('_', '-')} must be positive, "
                                f"got {getattr(args, name)}")
    for name in ("holdout", "eval_every"):
        if getattr(args, name) < 0:
            raise TrainingError(f"--{name.replace('_', '-')} must be ≥ 0, "
                                f"got {getattr(args, name)}")
    if not 0 <= args.rate_balance <= 1:
        raise TrainingError(f"--rate-balance must be in [0, 1], got {args.rate_balance}")
    if args.lr <= 0 or args.aux_lr <= 0:
        raise TrainingError(f"learning rates must be positive (--lr {args.lr}, "
                            f"--aux-lr {args.aux_lr})")
    if args.time_limit is not None and args.time_limit <= 0:
        raise TrainingError(f"--time-limit is in minutes and must be positive, "
                            f"got {args.time_limit}")
    if args.init is not None and not args.init.is_file():
        raise TrainingError(f"--init {args.init}: no such file (expected exported "
                            f".safetensors weights)")
    if args.workers is not None and args.workers < 0:
        raise TrainingError(f"--workers must be ≥ 0, got {args.workers}")
    if args.workers is None:
        local = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
        args.workers = min(8, max(1, (os.cpu_count() or 2) // local - 1)) if gpu else 0


# --------------------------------------------------------------------------- data
def find_images(folders: Sequence[Path]) -> list[tuple[Path, str]]:
    """(path, name relative to its folder) of every png/jpg under ``folders``, sorted."""
    found = []
    for folder in folders:
        if not folder.is_dir():
            raise TrainingError(f"data folder {folder} does not exist (give image folders "
                                f"with --data DIR [DIR ...])")
        for path in sorted(folder.rglob("*")):
            if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file():
                found.append((path, path.relative_to(folder).as_posix()))
    if not found:
        names = " ".join(str(f) for f in folders)
        raise TrainingError(f"no .png/.jpg images found under {names}")
    return found


def split_holdout(images: list[tuple[Path, str]], count: int) -> tuple[list[Path], list[Path]]:
    """(train, holdout): the ``count`` images whose names hash lowest are held out.

    The choice depends on names only (not on order or on the other images' presence, apart
    from ranking), so it is the same on every machine and in every run.
    """
    if count >= len(images):
        raise TrainingError(f"--holdout {count} leaves no training images out of "
                            f"{len(images)}; lower --holdout")
    ranked = sorted(images, key=lambda item: (hashlib.sha256(item[1].encode()).hexdigest(),
                                              str(item[0])))
    holdout = {path for path, _ in ranked[:count]}
    train = [path for path, _ in images if path not in holdout]
    return train, [path for path, _ in ranked[:count]]


class CropDataset(Dataset):
    """Random crops of images: rescale by U(0.75, 1) (more if the image is smaller than the
    crop), crop, flip horizontally and vertically with probability ½ each; uint8 (3, S, S).

    Items are addressed by ``(index, seed)`` so that the augmentation is a function of the seed,
    not of which worker runs it; ``index`` wraps around the image list.
    """

    def __init__(self, paths: Sequence[Path], crop: int) -> None:
        self.paths, self.crop = list(paths), crop

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, key: tuple[int, int]) -> Tensor:
        index, seed = key
        rng = random.Random(seed)
        path = self.paths[index % len(self.paths)]
        with Image.open(path) as image:
            image = image.convert("RGB")
        width, height = image.size
        scale = max(rng.uniform(0.75, 1.0), self.crop / min(width, height))
        side = min(self.crop / scale, width, height)  # the crop's extent in source pixels
        left = rng.uniform(0, width - side)
        top = rng.uniform(0, height - side)
        patch = image.resize((self.crop, self.crop), Image.Resampling.BICUBIC,
                             box=(left, top, left + side, top + side))
        array = np.array(patch)  # writable copy
        if rng.random() < 0.5:
            array = array[:, ::-1]
        if rng.random() < 0.5:
            array = array[::-1]
        return torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1)


class ShardedSampler(Sampler):
    """``DistributedSampler`` shuffling and sharding, resumable mid-epoch, yielding
    ``(index, augmentation seed)``. With one process it is the plain shuffled order."""

    def __init__(self, length: int, batch: int, world: int, rank: int, seed: int) -> None:
        # Small folders are repeated so that every process gets at least one full batch.
        repeats = max(1, math.ceil(batch * world / length))
        self.base = DistributedSampler(range(length * repeats), num_replicas=world, rank=rank,
                                       shuffle=True, seed=seed, drop_last=False)
        self.seed, self.epoch, self.skip = seed, 0, 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        """Start ``epoch`` after its first ``skip`` items (those already trained on)."""
        self.epoch, self.skip = epoch, skip
        self.base.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.base) - self.skip

    def __iter__(self):
        for index in list(self.base)[self.skip:]:
            yield index, (self.seed * 1_000_003 + self.epoch) * 10_000_019 + index


def load_eval_images(paths: Sequence[Path], max_side: int) -> list[Tensor]:
    """Center crops (sides multiples of 64, at most ``max_side``) as uint8 (3, H, W)."""
    crops = []
    for path in paths:
        with Image.open(path) as image:
            image = image.convert("RGB")
        width, height = image.size
        if min(width, height) < STRIDE:  # tiny images: upscale so one block fits
            factor = STRIDE / min(width, height)
            width, height = math.ceil(width * factor), math.ceil(height * factor)
            image = image.resize((width, height), Image.Resampling.BICUBIC)
        crop_w = min(max_side, width // STRIDE * STRIDE)
        crop_h = min(max_side, height // STRIDE * STRIDE)
        left, top = (width - crop_w) // 2, (height - crop_h) // 2
        array = np.asarray(image.crop((left, top, left + crop_w, top + crop_h)))
        crops.append(torch.from_numpy(array.copy()).permute(2, 0, 1))
    return crops


# --------------------------------------------------------------------------- model
def cpu_has_bf16() -> bool:
    """Whether this CPU has native bf16 arithmetic (avx512_bf16 or AMX), where bf16 autocast is
    faster than float32; elsewhere oneDNN emulates it and it is slower. Linux only (else False)."""
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def autocast_transform(sequence: nn.Sequential, dtype: torch.dtype, fp32_first: bool,
                       fp32_last: bool) -> None:
    """Run the interior layers of ``sequence`` under autocast(``dtype``), the first and/or last
    layer in float32; the output is float32. Patches the instance's forward only (the state
    dict and the model's code are unchanged)."""
    layers = list(sequence)
    head = layers[:1] if fp32_first else []
    tail = layers[-1:] if fp32_last else []
    body = layers[len(head):len(layers) - len(tail)]

    def forward(x: Tensor) -> Tensor:
        for layer in head:
            x = layer(x)
        with torch.autocast(x.device.type, dtype=dtype):
            for layer in body:
                x = layer(x)
        x = x.float()
        for layer in tail:
            x = layer(x)
        return x

    sequence.forward = forward


def load_init(path: Path) -> tuple[ImageModel, int]:
    """A model holding the float weights of an exported ``.safetensors`` file (non-strict), and
    the steps its card says they were trained for; prints what was missing, unexpected or
    skipped."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
        tensors = load_file(str(path))
    except Exception as error:  # safetensors raises several types for a bad file
        raise TrainingError(f"--init {path}: not a readable .safetensors file ({error})") from None
    config = json.loads(metadata["config"]) if "config" in metadata else {}
    model = ImageModel(**config)
    own = model.state_dict()
    derived = [k for k in tensors if k.startswith(DERIVED_PREFIXES)]
    mismatched = [k for k, v in tensors.items()
                  if k in own and tuple(v.shape) != tuple(own[k].shape)]
    state = {k: (v.float() if v.is_floating_point() else v) for k, v in tensors.items()
             if k not in derived and k not in mismatched}
    result = model.load_state_dict(state, strict=False)
    card = json.loads(metadata.get("card", "{}") or "{}")
    steps = int(card.get("steps", card.get("step", 0)) or 0)
    print(f"init: {path}: {len(state) - len(result.unexpected_keys)} tensors loaded"
          + (f"; continuing from step {steps}" if steps else ""), flush=True)
    for label, keys in (("missing", result.missing_keys),
                        ("unexpected", result.unexpected_keys),
                        ("skipped, shape differs", mismatched)):
        if keys:
            shown = ", ".join(keys[:8]) + (f", … ({len(keys)} in all)" if len(keys) > 8 else "")
            print(f"init: {label}: {shown}", flush=True)
    if derived:
        print(f"init: ignored {len(derived)} derived tensors (integer path, tables); export "
              f"recomputes them", flush=True)
    return model, steps


def split_parameters(model: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """(main, aux): parameters whose name ends with 'quantiles' go to the aux optimizer only."""
    main, aux = [], []
    for name, parameter in model.named_parameters():
        (aux if name.endswith("quantiles") else main).append(parameter)
    return main, aux


def rate_distortion(out: dict, x: Tensor, quality: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Per-sample (loss, bpp, mse) in float32: λ(q)·255²·MSE + bpp."""
    pixels = x.shape[2] * x.shape[3]
    bits = sum((-torch.log2(likelihood.float())).flatten(1).sum(1)
               for likelihood in out["likelihoods"].values())
    bpp = bits / pixels
    mse = (out["x_hat"].float() - x).pow(2).flatten(1).mean(1)
    loss = ImageModel.lmbda(quality) * 255 ** 2 * mse + bpp
    return loss, bpp, mse


def balance_weights(quality: Tensor, alpha: float) -> Tensor:
    """Per-sample loss weights (λ(q)/λ(1))^-α: 1 at quality 1, falling with λ; ones for α = 0."""
    return (ImageModel.lmbda(quality) / ImageModel.lmbda(torch.ones_like(quality))) ** -alpha


@torch.no_grad()
def evaluate(model: ImageModel, images: Sequence[Tensor], device: torch.device) -> dict:
    """Mean bpp and PSNR (forward pass, eval mode) at each of EVAL_QUALITIES."""
    model.eval()
    results = {}
    try:
        for quality in EVAL_QUALITIES:
            bpps, psnrs = [], []
            for image in images:
                x = image.to(device).float().div(255).unsqueeze(0)
                out = model(x, torch.full((1,), quality, device=device))
                _, bpp, _ = rate_distortion(out, x, torch.full((1,), quality, device=device))
                mse = (out["x_hat"].float().clamp(0, 1) - x).pow(2).mean().item()
                bpps.append(bpp.item())
                psnrs.append(10 * math.log10(1 / max(mse, 1e-10)))
            results[f"q{quality:g}"] = {"bpp": float(np.mean(bpps)),
                                        "psnr": float(np.mean(psnrs))}
    finally:
        model.train()
    return results


# --------------------------------------------------------------------------- state
def save_checkpoint(path: Path, state: dict) -> None:
    """Write ``state`` to ``path`` atomically (temporary file, fsync, rename)."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(temporary, "wb") as handle:
            torch.save(state, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    try:
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
    except OSError:
        pass  # not every file system syncs directories


def load_checkpoint(path: Path) -> dict:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # truncated or foreign file
        raise TrainingError(f"{path} cannot be read ({error}); move it away to start over "
                            f"or use --checkpoint-dir DIR") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise TrainingError(f"{path} is not a checkpoint of this script; move it away or use "
                            f"another --checkpoint-dir")
    return state


def rng_state(device: torch.device) -> dict:
    state = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def plain_args(args: argparse.Namespace) -> dict:
    """The arguments as JSON-able values."""
    def plain(value):
        if isinstance(value, Path):
            return str(value)
        if isinstance(value, list):
            return [plain(v) for v in value]
        return value
    return {key: plain(value) for key, value in vars(args).items()}


def duration(seconds: float) -> str:
    seconds = int(max(0, seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s"


def export_weights(model: ImageModel, path: Path, card: dict) -> None:
    """Export through ``codec.models.weights.save_model`` if it exists."""
    try:
        from codec.models.weights import save_model
    except ImportError as error:
        print(f"export unavailable: codec.models.weights.save_model cannot be imported "
              f"({error}); the checkpoint holds the weights", flush=True)
        return
    copy = ImageModel(**model.config)  # a plain float32 CPU model, without patched forwards
    copy.load_state_dict({k: v.detach().float().cpu() if v.is_floating_point() else v.cpu()
                          for k, v in model.state_dict().items()})
    copy.set_quantised(card.get("qat", False))
    path.parent.mkdir(parents=True, exist_ok=True)
    digest = save_model(copy.eval(), path, card)
    print(f"exported {path} (sha256 {digest})", flush=True)


# --------------------------------------------------------------------------- training
class Stopper:
    """SIGTERM/SIGINT ask for a clean stop (save, export); a second signal acts as usual."""

    def __init__(self) -> None:
        self.reason: str | None = None
        self._previous = {}
        for number in (signal.SIGTERM, signal.SIGINT):
            try:
                self._previous[number] = signal.signal(number, self._handle)
            except ValueError:  # not in the main thread (e.g. imported by a test runner)
                pass

    def _handle(self, number: int, frame) -> None:
        self.reason = signal.Signals(number).name
        signal.signal(number, self._previous.get(number, signal.SIG_DFL))
        print(f"{self.reason}: stopping after this step (send again to stop at once)",
              file=sys.stderr, flush=True)

    def restore(self) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)


def setup_device(args: argparse.Namespace) -> tuple[torch.device, int, int, int]:
    """(device, rank, local rank, world size); joins the torchrun group when WORLD_SIZE > 1."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    name = args.device
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError:
        raise TrainingError(f"--device {args.device!r} is not a device (auto, cpu, cuda, "
                            f"cuda:N)") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise TrainingError(f"--device {args.device}: CUDA is not available here; use "
                                f"--device cpu")
        if world > 1 or device.index is None:
            device = torch.device("cuda", local_rank if world > 1 else 0)
        torch.cuda.set_device(device)
    elif device.type != "cpu":
        raise TrainingError(f"--device {args.device!r} is not supported (auto, cpu, cuda)")
    if world > 1:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device, rank, local_rank, world


def train(args: argparse.Namespace, started: float) -> int:
    device, rank, _, world = setup_device(args)
    try:
        return _train(args, started, device, rank, world)
    finally:
        if world > 1 and dist.is_initialized():
            dist.destroy_process_group()


def _train(args: argparse.Namespace, started: float, device: torch.device, rank: int,
           world: int) -> int:
    main_process = rank == 0
    say = (lambda *a, **k: print(*a, **k, flush=True)) if main_process else (lambda *a, **k: None)
    check_args(args, device)
    images = find_images(args.data)
    train_paths, holdout_paths = split_holdout(images, args.holdout)
    say(f"data: {len(images)} images in {' '.join(map(str, args.data))}; "
        f"{len(train_paths)} for training, {len(holdout_paths)} held out")

    directory = args.checkpoint_dir
    directory.mkdir(parents=True, exist_ok=True)
    last_path, log_path = directory / "last.pt", directory / "log.jsonl"
    checkpoint = load_checkpoint(last_path) if last_path.exists() else None

    torch.manual_seed(args.seed)  # identical initial weights in every process
    init_step = 0
    if checkpoint is not None:
        model = ImageModel(**checkpoint["config"])
        model.load_state_dict(checkpoint["model"])
        if args.init is not None:
            say(f"resuming from {last_path}; --init {args.init} ignored")
    elif args.init is not None:
        model, init_step = (load_init(args.init) if main_process
                            else load_init_quietly(args.init))
    else:
        model = ImageModel()
    model.set_quantised(args.qat)
    model.to(device)

    gpu = device.type == "cuda"
    bf16 = args.precision == "bf16" or (args.precision == "auto" and (gpu or cpu_has_bf16()))
    if bf16:
        if gpu and not torch.cuda.is_bf16_supported():
            raise TrainingError("this GPU has no bf16; use --precision fp32")
        autocast_transform(model.g_a, torch.bfloat16, fp32_first=False, fp32_last=True)
        autocast_transform(model.g_s, torch.bfloat16, fp32_first=True, fp32_last=False)
    if args.compile:  # in place: the state dict keeps its keys
        model.g_a.compile()
        model.g_s.compile()
    if gpu:
        torch.backends.cudnn.benchmark = True
        torch.backends.cudnn.allow_tf32 = False  # float32 layers stay float32
        torch.backends.cuda.matmul.allow_tf32 = False

    main_params, aux_params = split_parameters(model)
    optimizer = torch.optim.Adam(main_params, lr=args.lr)
    aux_optimizer = torch.optim.Adam(aux_params, lr=args.aux_lr)
    # From exported weights the count goes on, and the epoch number (the sampler's seed) starts
    # there too, so a session started with --init does not replay the previous one's crops.
    step, epoch, batch_in_epoch, last_eval = init_step, init_step, 0, None
    if checkpoint is not None:
        optimizer.load_state_dict(checkpoint["optimizer"])
        aux_optimizer.load_state_dict(checkpoint["aux_optimizer"])
        step, epoch = checkpoint["step"], checkpoint["epoch"]
        batch_in_epoch, last_eval = checkpoint["batch_in_epoch"], checkpoint.get("eval")
        if (checkpoint["batch"], checkpoint["world_size"]) != (args.batch, world):
            epoch, batch_in_epoch = epoch + 1, 0  # positions differ: start a fresh epoch
        if main_process:
            set_rng_state(checkpoint["rng"], device)
        else:
            torch.manual_seed(args.seed * 7919 + rank * 104_729 + step)
        changed = {k: (checkpoint["args"].get(k), v) for k, v in plain_args(args).items()
                   if k in ("data", "crop", "batch", "qat", "lr", "holdout", "precision",
                            "rate_balance")
                   and checkpoint["args"].get(k) != v}
        say(f"resuming {last_path} at step {step}"
            + "".join(f"; {k} {old} -> {new}" for k, (old, new) in changed.items()))
    else:
        torch.manual_seed(args.seed * 7919 + rank * 104_729 + step)
    for group in optimizer.param_groups:
        group["lr"] = args.lr
    for group in aux_optimizer.param_groups:
        group["lr"] = args.aux_lr

    network: nn.Module = model
    if world > 1:
        # The quantiles only see the aux loss, outside the DDP forward: keep them out of DDP
        # and average their gradients explicitly below.
        nn.parallel.DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(
            model, [n for n, _ in model.named_parameters() if n.endswith("quantiles")])
        network = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if gpu else None)

    dataset = CropDataset(train_paths, args.crop)
    sampler = ShardedSampler(len(dataset), args.batch, world, rank, args.seed)
    loader = DataLoader(dataset, batch_size=args.batch, sampler=sampler, drop_last=True,
                        num_workers=args.workers, pin_memory=gpu,
                        persistent_workers=args.workers > 0,
                        generator=torch.Generator().manual_seed(args.seed))
    eval_images = load_eval_images(holdout_paths, args.eval_size) if main_process else []

    def state() -> dict:
        return {"format": CHECKPOINT_FORMAT, "config": model.config, "model": model.state_dict(),
                "optimizer": optimizer.state_dict(), "aux_optimizer": aux_optimizer.state_dict(),
                "step": step, "epoch": epoch, "batch_in_epoch": batch_in_epoch,
                "batch": args.batch, "world_size": world, "rng": rng_state(device),
                "args": plain_args(args), "qat": args.qat, "eval": last_eval,
                "saved": time.time()}

    def log(record: dict) -> None:
        if main_process:
            with open(log_path, "a") as handle:
                handle.write(json.dumps(record) + "\n")

    save_seconds = 5.0 + sum(p.numel() for p in model.parameters()) * 12 / 200e6  # a guess
    saved_step = step if checkpoint is not None else -1

    def save() -> None:
        nonlocal save_seconds, saved_step
        if main_process and saved_step != step:
            begin = time.monotonic()
            save_checkpoint(last_path, state())
            save_seconds = time.monotonic() - begin
        saved_step = step

    say(f"device {device}{' ×' + str(world) if world > 1 else ''}, "
        f"{'bf16 transforms' if bf16 else 'fp32'}{' (compiled)' if args.compile else ''}, "
        f"crop {args.crop}, batch {args.batch}, "
        f"workers {args.workers}, qat {'on' if args.qat else 'off'}, "
        f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters, "
        f"step {step}/{args.steps}")
    log({"type": "start", "step": step, "time": time.time(), "device": str(device),
         "world_size": world, "resumed": checkpoint is not None, "args": plain_args(args)})

    stopper = Stopper()
    limit = args.time_limit * 60 if args.time_limit else math.inf
    step_seconds, eval_seconds = None, None
    totals = torch.zeros(5, device=device)  # loss, bpp, psnr, aux, samples
    window_start, window_steps, bad_steps = time.monotonic(), 0, 0
    reason = "done" if step >= args.steps else None
    if reason:
        say(f"already at step {step} of --steps {args.steps}: nothing to train")
    model.train()

    try:
        while reason is None:
            sampler.set_epoch(epoch, batch_in_epoch * args.batch)
            for batch in loader:
                begin = time.monotonic()
                x = batch.to(device, non_blocking=True).float().div_(255)
                quality = (QUALITY_MIN + (QUALITY_MAX - QUALITY_MIN) * torch.rand(x.shape[0]))
                quality = quality.to(device)
                optimizer.zero_grad(set_to_none=True)
                aux_optimizer.zero_grad(set_to_none=True)
                out = network(x, quality)
                loss, bpp, mse = rate_distortion(out, x, quality)
                (loss * balance_weights(quality, args.rate_balance)).mean().backward()
                norm = torch.nn.utils.clip_grad_norm_(
                    main_params, args.clip if args.clip > 0 else math.inf)
                finite = bool(torch.isfinite(norm))  # from averaged gradients: same on all ranks
                if finite:
                    optimizer.step()
                    bad_steps = 0
                else:
                    bad_steps += 1
                    say(f"step {step + 1}: non-finite gradient, update skipped")
                    if bad_steps >= MAX_BAD_STEPS:
                        raise TrainingError(f"{bad_steps} consecutive non-finite gradients at step "
                                            f"{step + 1}: training diverged; {last_path} keeps the "
                                            f"last good state (lower --lr and rerun)")
                aux = model.aux_loss()
                aux.backward()
                if world > 1:
                    for parameter in aux_params:
                        dist.all_reduce(parameter.grad)
                        parameter.grad /= world
                aux_optimizer.step()
                step += 1
                batch_in_epoch += 1
                if finite:
                    psnr = -10 * torch.log10(mse.detach().clamp_min(1e-10))
                    totals += torch.stack([loss.detach().sum(), bpp.detach().sum(), psnr.sum(),
                                           aux.detach() * x.shape[0],
                                           torch.tensor(float(x.shape[0]), device=device)])
                window_steps += 1
                elapsed_step = time.monotonic() - begin
                step_seconds = elapsed_step if step_seconds is None else (
                    0.9 * step_seconds + 0.1 * elapsed_step)

                if step % args.log_every == 0 or step == args.steps:
                    if world > 1:
                        dist.all_reduce(totals)
                    rate = window_steps / max(time.monotonic() - window_start, 1e-9)
                    count = max(totals[4].item(), 1.0)
                    loss_m, bpp_m, psnr_m, aux_m = (totals[:4] / count).tolist()
                    left = (args.steps - step) / rate
                    budget = limit - (time.monotonic() - started)
                    say(f"step {step}/{args.steps} ({100 * step / args.steps:.1f}%) "
                        f"loss {loss_m:.4f} bpp {bpp_m:.4f} psnr {psnr_m:.2f} aux {aux_m:.1f} "
                        f"{rate:.2f} steps/s eta {duration(left)}"
                        + (f" (time left {duration(budget)})" if math.isfinite(budget) else ""))
                    log({"type": "train", "step": step, "loss": loss_m, "bpp": bpp_m,
                         "psnr": psnr_m, "aux": aux_m, "steps_per_s": rate, "lr": args.lr,
                         "qat": args.qat, "time": time.time()})
                    totals.zero_()
                    window_start, window_steps = time.monotonic(), 0

                if args.eval_every and step % args.eval_every == 0 and holdout_paths:
                    elapsed = time.monotonic() - started
                    guess = eval_seconds or 3 * len(holdout_paths) * step_seconds
                    if main_process and elapsed + guess + 2 * save_seconds + 10 < limit:
                        begin_eval = time.monotonic()
                        last_eval = evaluate(model, eval_images, device)
                        eval_seconds = time.monotonic() - begin_eval
                        say(f"eval step {step}: " + " | ".join(
                            f"{k} bpp {v['bpp']:.4f} psnr {v['psnr']:.2f}"
                            for k, v in last_eval.items()) + f" ({eval_seconds:.1f} s)")
                        log({"type": "eval", "step": step, "images": len(eval_images),
                             "size": args.eval_size, "qat": args.qat, "results": last_eval,
                             "time": time.time()})
                        window_start += eval_seconds  # keep evaluation out of steps/s
                    if world > 1:
                        dist.barrier()

                if step % args.save_every == 0:
                    save()
                elapsed = time.monotonic() - started
                stop = step >= args.steps or stopper.reason is not None or (
                    elapsed + 2 * step_seconds + 1.5 * save_seconds + 15 > limit)
                if world > 1:
                    flag = torch.tensor(float(stop), device=device)
                    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
                    stop = bool(flag.item())
                if stop:
                    reason = ("done" if step >= args.steps else stopper.reason or "time limit")
                    break
            else:
                epoch, batch_in_epoch = epoch + 1, 0
    finally:
        stopper.restore()

    save()
    if world > 1:
        dist.barrier()
        check_replicas(model, world, step, device)
        say(f"replicas: {world} identical at step {step}")
    say(f"{reason}: step {step}/{args.steps}, state in {last_path} "
        f"({duration(time.monotonic() - started)} this run)")
    log({"type": "stop", "step": step, "reason": reason, "time": time.time()})
    if args.export is not None and main_process:
        card = {"step": step, "qat": args.qat, "crop": args.crop,
                "batch": args.batch * world, "lr": args.lr,
                "data": [str(d) for d in args.data], "holdout": args.holdout,
                "eval": last_eval, "torch": torch.__version__}
        export_weights(model, args.export, card)
    return 0


def check_replicas(model: nn.Module, world: int, step: int, device: torch.device) -> None:
    """Raise if the DDP processes ended with different weights (DDP syncs the main gradients,
    this script the quantiles'): a sum and a position-weighted sum of every parameter."""
    flat = torch.cat([p.detach().double().flatten() for p in model.parameters()])
    positions = torch.arange(1, flat.numel() + 1, dtype=torch.float64, device=flat.device)
    digest = torch.stack([flat.sum(), (flat * positions).sum()]).to(device)
    digests = [torch.zeros_like(digest) for _ in range(world)]
    dist.all_gather(digests, digest)
    if any(not torch.equal(other, digests[0]) for other in digests[1:]):
        raise TrainingError(f"the {world} processes hold different weights at step {step}: "
                            f"their gradients were not all averaged")


def load_init_quietly(path: Path) -> tuple[ImageModel, int]:
    """``load_init`` without its report (non-zero ranks)."""
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):
        return load_init(path)


def write_holdout(args: argparse.Namespace) -> int:
    """Copy the held-out images into ``args.write_holdout`` (names kept, folders flattened)."""
    _, holdout_paths = split_holdout(find_images(args.data), args.holdout)
    names = [path.name for path in holdout_paths]
    if len(set(names)) != len(names):
        raise TrainingError("held-out images in different folders share a file name; "
                            "they cannot be copied into one folder")
    folder = args.write_holdout
    folder.mkdir(parents=True, exist_ok=True)
    for path in holdout_paths:
        target = folder / path.name
        if target.exists() and target.read_bytes() != path.read_bytes():
            raise TrainingError(f"{target} exists with other content; give an empty folder")
        shutil.copyfile(path, target)
    print(f"{len(holdout_paths)} held-out images copied to {folder}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    started = time.monotonic()
    args = parse_args(argv)
    try:
        if args.write_holdout is not None:
            return write_holdout(args)
        return train(args, started)
    except TrainingError as error:
        print(f"error: {error}", file=sys.stderr, flush=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())
