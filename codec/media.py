"""Which media pipeline handles a file: a small registry that the image, video and audio
pipelines join as they arrive, so the CLI never hard-codes one."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm",
                  ".gif", ".tga"}
VIDEO_SUFFIXES = {".mp4", ".mkv", ".mov", ".avi", ".webm", ".y4m"}
AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".mp3", ".opus", ".m4a", ".aiff"}

# media kind -> function(input, output, *, quality, overwrite); filled by the media pipelines
ENCODERS: dict[str, Callable] = {}
DECODERS: dict[str, Callable] = {}


def media_of_input(path: Path) -> str:
    """The media kind of a source file, from its name; raises ValueError when unknown."""
    suffix = path.suffix.lower()
    for media, suffixes in (("image", IMAGE_SUFFIXES), ("video", VIDEO_SUFFIXES),
                            ("audio", AUDIO_SUFFIXES)):
        if suffix in suffixes:
            return media
    raise ValueError(f"{path}: cannot tell the media kind from the extension {suffix!r} "
                     "(images: .png .jpg ...; video: .mp4 .mkv ...; audio: .wav .flac ...)")


def encoder_for(media: str) -> Callable:
    if media not in ENCODERS:
        raise ValueError(f"this version of codec cannot encode {media} yet")
    return ENCODERS[media]


def decoder_for(media: str) -> Callable:
    if media not in DECODERS:
        raise ValueError(f"this version of codec cannot decode {media} files yet")
    return DECODERS[media]
