"""The ``codec`` command: a thin shell over the library API (parse, check paths, report)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from . import __version__
from .api import info_file
from .bitstream.chunks import FORMAT_VERSION
from .bitstream.errors import CodecError
from .media import decoder_for, encoder_for, media_of_input


class CodecCommandError(click.ClickException):
    """An error shown as ``error: <message>`` on stderr with exit status 1."""

    def show(self, file=None) -> None:
        click.echo(f"error: {self.message}", err=True)


def _fail(error: Exception) -> CodecCommandError:
    return CodecCommandError(str(error))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version",
                      message=f"codec %(version)s (.lc format {FORMAT_VERSION})")
def main() -> None:
    """Learned compression of images, video and audio into `.lc` files.

    \b
    Examples:
      codec info photo.lc            describe a file and verify its checksums
      codec info --json photo.lc     the same as JSON
    """


@main.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
def info(file: Path, as_json: bool) -> None:
    """Describe FILE (media, model, geometry, size) after verifying every chunk."""
    try:
        summary = info_file(file)
    except (CodecError, OSError) as error:
        raise _fail(error)
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    click.echo(f"{file}: {_headline(summary)}")
    for key, value in summary.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k} {v}" for k, v in value.items())
        click.echo(f"  {key:<20} {value}")


class _StepCounter:
    """Refinement progress on stderr, redrawn in place on a terminal; each run of ``steps``
    calls is one encoding (``--target-bpp`` tries several qualities)."""

    def __init__(self, steps: int) -> None:
        self.steps, self.calls = steps, 0
        self.live = sys.stderr.isatty()

    def __call__(self, count: int) -> None:
        self.calls += count
        if self.live:
            attempt, step = divmod(self.calls - 1, self.steps)
            label = f" (try {attempt + 1})" if attempt else ""
            click.echo(f"\rrefining latents{label}: step {step + 1}/{self.steps}", nl=False,
                       err=True)

    def close(self) -> None:
        if self.live and self.calls:
            click.echo(err=True)


def _headline(summary: dict) -> str:
    media = summary["media"]
    if media == "image":
        alpha = " with alpha" if summary.get("channels") == 4 else ""
        return (f"image {summary['width']}x{summary['height']}{alpha}, "
                f"{summary['bits_per_pixel']} bpp")
    if media == "video":
        return (f"video {summary['width']}x{summary['height']} at {summary['frame_rate']} fps, "
                f"{summary['frames']} frames")
    return f"audio {summary['sample_rate']} Hz, {summary['channels']} channels, " \
           f"{summary['samples']} samples"


device_option = click.option(
    "--device", default="cpu", show_default=True, metavar="DEVICE",
    help="Where the networks run: cpu, cuda, cuda:N, or auto (a GPU if there is one). Files "
         "decode the same whichever device wrote or reads them.")


@main.command()
@click.argument("input", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="The `.lc` file to write.")
@click.option("-q", "--quality", type=click.FloatRange(1, 8), default=4.0, show_default=True,
              help="Rate: 1 is smallest (0.25 bpp on Kodak), 8 is best (1.66 bpp); "
                   "fractions allowed.")
@click.option("--target-bpp", type=click.FloatRange(min=0, min_open=True),
              help="Aim at this many bits per pixel (within 5%) instead of a quality; out of "
                   "the model's range, the nearest rate it reaches, with a warning.")
@click.option("--refine", type=click.IntRange(0, 100000), default=0, show_default=True,
              metavar="STEPS",
              help="Images: search the latents with STEPS gradient steps before coding, for a "
                   "smaller file at the same quality (32 steps: 5-6% fewer bits on Kodak at "
                   "equal PSNR). Slow: about 0.9 s a step for 768x512 on 2 CPU cores. Any "
                   "decoder reads the result.")
@device_option
@click.option("-y", "--overwrite", is_flag=True, help="Replace OUTPUT if it exists.")
def encode(input: Path, output: Path, quality: float, target_bpp: float | None, refine: int,
           device: str, overwrite: bool) -> None:
    """Compress INPUT (an image, video or audio file) into OUTPUT."""
    progress = _StepCounter(refine) if refine else None
    try:
        media = media_of_input(input)
        extra = {"refine_steps": refine, "progress": progress} if refine else {}
        summary = encoder_for(media)(input, output, quality=quality, target_bpp=target_bpp,
                                     overwrite=overwrite, device=device, **extra)
    except (CodecError, OSError, ValueError) as error:
        raise _fail(error)
    finally:
        if progress is not None:
            progress.close()
    click.echo(f"{output}: {summary['bytes']} bytes, {summary['bits_per_pixel']:.4f} bpp at "
               f"quality {summary['quality']:g}", err=True)
    if "target_out_of_range" in summary:
        click.echo(f"warning: {input}: --target-bpp {target_bpp:g} is out of this model's "
                   f"range; wrote the nearest rate it reaches, at the "
                   f"{summary['target_out_of_range']} end", err=True)


@main.command()
@click.argument("input", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="The image, video or audio file to write.")
@device_option
@click.option("-y", "--overwrite", is_flag=True, help="Replace OUTPUT if it exists.")
def decode(input: Path, output: Path, device: str, overwrite: bool) -> None:
    """Decompress the `.lc` file INPUT into OUTPUT."""
    try:
        media = info_file(input)["media"]
        decoder_for(media)(input, output, overwrite=overwrite, device=device)
    except CodecError as error:
        raise _fail(error.with_source(str(input)) if error.source is None else error)
    except (OSError, ValueError) as error:
        raise _fail(error)


@main.command(name="eval", add_help_option=False,
              context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.argument("arguments", nargs=-1, type=click.UNPROCESSED)
def evaluate(arguments: tuple[str, ...]) -> None:
    """Rate-distortion of our codec against JPEG, WebP and AVIF on a folder (BD-rates, plot).

    Run `codec eval --help` for the options.
    """
    from .eval_image import main as run

    sys.exit(run(list(arguments)))


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def models(as_json: bool) -> None:
    """List the installed models, their rates and weight digests."""
    from .models.registry import MODELS, DEFAULT_MODEL

    rows = []
    for info in MODELS.values():
        rows.append({"model": info.model_id, "media": info.media, "sha256": info.sha256,
                     "digest": info.digest.hex(), "default": DEFAULT_MODEL.get(info.media) ==
                     info.model_id, "quality": [1, 8], "description": info.description,
                     "installed": info.path.exists()})
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no models installed")
    for row in rows:
        mark = " (default)" if row["default"] else ""
        click.echo(f"{row['model']}{mark}  {row['media']}  quality 1-8  "
                   f"sha256 {row['sha256'][:16]}...  {row['description']}")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
