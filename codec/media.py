"""Which media pipeline handles a file: a small registry that the image, video and audio
pipelines join as they arrive, so the CLI never hard-codes one. Pipelines are imported only
when used (they bring in torch)."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Callable

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm",
                  ".gif", ".tga"}
VIDEO_SUFFIXES = {".mp4", ".mkv", ".mov", ".avi", ".webm", ".y4m"}
AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".mp3", ".opus", ".m4a", ".aiff"}

# media kind -> module with encode_file(input, output, *, quality, target_bpp, overwrite,
# device) and decode_file(input, output, *, overwrite, device)
PIPELINES: dict[str, str] = {"image": "codec.image"}


def media_of_input(path: Path) -> str:
    """The media kind of a source file, from its name; raises ValueError when unknown."""
    suffix = path.suffix.lower()
    for media, suffixes in (("image", IMAGE_SUFFIXES), ("video", VIDEO_SUFFIXES),
                            ("audio", AUDIO_SUFFIXES)):
        if suffix in suffixes:
            return media
    raise ValueError(f"{path}: cannot tell the media kind from the extension {suffix!r} "
                     "(images: .png .jpg ...; video: .mp4 .mkv ...; audio: .wav .flac ...)")


def _pipeline(media: str, verb: str):
    if media not in PIPELINES:
        raise ValueError(f"this version of codec cannot {verb} {media} yet")
    return importlib.import_module(PIPELINES[media])


def encoder_for(media: str) -> Callable:
    return _pipeline(media, "encode").encode_file


def decoder_for(media: str) -> Callable:
    return _pipeline(media, "decode").decode_file
