"""The image pipeline: pixels -> learned model -> entropy coder -> `.lc` container, and back."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Callable, Union

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .bitstream import (CodecError, ContainerReader, ContainerWriter, FormatError, Header,
                        ImageGeometry, LimitError, Media, PayloadError, SymbolDecoder,
                        SymbolEncoder)
from .models import registry
from .models.device import resolve_device
from .models.image_model import LATENT_STRIDE, QUALITY_MAX, QUALITY_MIN, STRIDE, ImageModel
from .models.refine import refine_latents

ImageInput = Union[np.ndarray, Image.Image]
ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")  # Pillow modes with an alpha channel
Device = Union[str, torch.device, None]
# What this implementation codes in bounded memory (a 8192×8192 round trip stays near 4 GiB);
# the format allows more, and a decoder refuses such files before allocating for them.
MAX_PIXELS = 1 << 26
# Refinement keeps the entropy model's activations for its backward pass (the synthesis runs in
# tiles): a 2048×2048 refinement peaks at 3.5 GiB.
MAX_REFINE_PIXELS = 1 << 22


def to_rgb(image: ImageInput, name: str = "image") -> np.ndarray:
    """H×W×3 uint8 colour of an image without alpha (see :func:`to_rgb_alpha`); an image with
    alpha is refused rather than flattened silently."""
    rgb, alpha = to_rgb_alpha(image, name)
    if alpha is not None:
        raise ValueError(f"{name} has an alpha channel; only the encoder codes alpha: flatten "
                         "it onto a background first for this use")
    return rgb


def to_rgb_alpha(image: ImageInput, name: str = "image") -> tuple[np.ndarray, np.ndarray | None]:
    """(H×W×3 uint8 colour, H×W uint8 alpha or None) from a numpy array or PIL image.

    Grayscale and palette are converted; PIL images with an alpha channel or a transparent
    colour, and H×W×4 (RGBA) or H×W×2 (gray and alpha) arrays, give their alpha. 16-bit
    grayscale (Pillow modes I;16 and I, as 16-bit PNG, TIFF and PGM open) is scaled to 8 bits;
    Pillow's own conversion would clip it to white. Floating-point samples are refused.
    """
    if isinstance(image, Image.Image):
        if image.mode == "La":      # premultiplied: Pillow converts it to RGBA only via LA
            image = image.convert("LA")
        if image.mode in ALPHA_MODES or "transparency" in image.info:
            rgba = np.asarray(image.convert("RGBA"))
            return np.ascontiguousarray(rgba[:, :, :3]), np.ascontiguousarray(rgba[:, :, 3])
        if image.mode == "I" or image.mode.startswith("I;16"):
            return _gray_from_16_bits(np.asarray(image), name, image.mode), None
        if image.mode == "F":
            raise ValueError(f"{name} has floating-point samples (mode F); codec codes 8-bit "
                             "RGB: convert it to 8 bits first")
        return np.asarray(image.convert("RGB")), None
    array = np.asarray(image)
    if array.dtype != np.uint8:
        raise ValueError(f"{name} must be uint8, got {array.dtype}")
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[2] not in (1, 2, 3, 4):
        raise ValueError(f"{name} must be H×W×3, H×W×4 (with alpha) or H×W, got shape "
                         f"{array.shape}")
    colour, alpha = (array[:, :, :-1], array[:, :, -1]) if array.shape[2] in (2, 4) else \
        (array, None)
    if colour.shape[2] == 1:
        colour = np.repeat(colour, 3, axis=2)
    return (np.ascontiguousarray(colour),
            None if alpha is None else np.ascontiguousarray(alpha))


def _gray_from_16_bits(samples: np.ndarray, name: str, mode: str) -> np.ndarray:
    """16-bit gray samples as H×W×3 uint8, each rounded to the nearest of 256 levels (v / 257)."""
    samples = samples.astype(np.int64)
    if samples.size and (samples.min() < 0 or samples.max() > 65535):
        raise ValueError(f"{name} has integer samples outside 0-65535 (mode {mode}); codec codes "
                         "8-bit RGB: convert it to 8 bits first")
    gray = ((samples * 255 + 32767) // 65535).astype(np.uint8)
    return np.repeat(gray[:, :, None], 3, axis=2)


def latent_side(pixels: int) -> int:
    """Latent positions coded along an image side: those that cover at least one pixel."""
    return -(-pixels // LATENT_STRIDE)


def _padded_tensor(pixels: np.ndarray) -> torch.Tensor:
    """The image as a 1×3×H'×W' float tensor, edges replicated up to whole latent positions."""
    height, width = pixels.shape[:2]
    x = torch.tensor(pixels).permute(2, 0, 1).unsqueeze(0).float() / 255.0
    pad_h, pad_w = -height % LATENT_STRIDE, -width % LATENT_STRIDE
    return F.pad(x, (0, pad_w, 0, pad_h), mode="replicate") if pad_h or pad_w else x


def encode_image(image: ImageInput, quality: float = 4.0, model: str | None = None,
                 refine_steps: int = 0, progress: Callable[[int], None] | None = None,
                 device: Device = None) -> bytes:
    """Compress an image (H×W×3 uint8 array, H×W×4 with alpha, or PIL image) to `.lc` bytes;
    alpha is coded losslessly beside the colour.

    ``quality`` runs continuously from 1 (0.25 bpp on Kodak) to 8 (1.66 bpp).
    ``refine_steps`` > 0 searches the latents for that many gradient steps
    (:mod:`codec.models.refine`): a smaller file at the same quality, any decoder reads it;
    each step costs about a synthesis forward and backward pass. ``progress`` is called with 1
    after each step. ``device`` ("cpu", "cuda", "cuda:N" or "auto"; default CPU) runs the
    networks there; every device's files decode the same on every other.
    """
    return _Encoder(*to_rgb_alpha(image), model, device).encode(quality, refine_steps, progress)


class _Encoder:
    """One image ready for coding at any quality; the analysis transform runs once."""

    def __init__(self, pixels: np.ndarray, alpha: np.ndarray | None, model: str | None,
                 device: Device = None) -> None:
        if pixels.shape[0] * pixels.shape[1] > MAX_PIXELS:
            raise ValueError(f"image of {pixels.shape[1]}x{pixels.shape[0]} pixels is larger "
                             f"than the {MAX_PIXELS} pixels this version codes")
        self.pixels, self.alpha = pixels, alpha
        self.info = registry.resolve(model) if model else registry.default_model("image")
        device = resolve_device(device)
        self.network, self.tables = registry.load(self.info, device)
        self.x = _padded_tensor(pixels).to(device)
        self._features: torch.Tensor | None = None

    def encode(self, quality: float, refine_steps: int = 0,
               progress: Callable[[int], None] | None = None) -> bytes:
        if not QUALITY_MIN <= quality <= QUALITY_MAX:
            raise ValueError(f"quality must be between {QUALITY_MIN:g} and {QUALITY_MAX:g}, "
                             f"got {quality}")
        if refine_steps < 0:
            raise ValueError(f"refine steps must be 0 or more, got {refine_steps}")
        height, width = self.pixels.shape[:2]
        if refine_steps and height * width > MAX_REFINE_PIXELS:
            raise ValueError(f"refinement is limited to images of {MAX_REFINE_PIXELS} pixels "
                             f"(its memory grows with the image); this one has {width}x{height}: "
                             "encode it without refinement")
        quality = round(quality * 1000) / 1000  # the header's precision, so both sides agree
        if self._features is None:
            with torch.no_grad():
                self._features = self.network.analysis(self.x)
        y, z = self.network.analyse(self.x, quality, self._features)
        if refine_steps:
            y, z = refine_latents(self.network, self.x, y, quality, refine_steps,
                                  (height, width), progress)
        encoder = SymbolEncoder(self.tables)
        self.network.code_latents(y, z, coder=encoder)
        channels = 3 if self.alpha is None else 4
        header = Header(ImageGeometry(width, height, channels), self.info.model_id,
                        self.info.digest, quality)
        out = io.BytesIO()
        with ContainerWriter(out, header) as writer:
            writer.write_frame(encoder.finish())
            if self.alpha is not None:
                writer.write_alpha(self.alpha)
        return out.getvalue()


def decode_image(data: bytes, synthesis_dtype: torch.dtype = torch.float32,
                 device: Device = None) -> np.ndarray:
    """Decode `.lc` bytes of an image to an H×W×3 uint8 array (H×W×4 when it has alpha), the
    networks on ``device`` (default CPU): the decoded latents are the same on every device, the
    pixels up to the float synthesis's rounding; alpha is lossless."""
    reader = ContainerReader(io.BytesIO(bytes(data)))
    network, y_grid = _read_latents(reader, resolve_device(device))
    header = reader.header
    x_hat = network.synthesise(y_grid, header.quality, synthesis_dtype)
    x_hat = x_hat[0, :, :header.geometry.height, :header.geometry.width]
    rgb = (x_hat * 255).round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    return rgb if reader.alpha is None else np.dstack([rgb, reader.alpha])


def decode_image_latents(data: bytes, device: Device = None) -> torch.Tensor:
    """The exact decoded latent grid of `.lc` image bytes (int64, 1/16 steps, on the CPU): what
    conformance vectors record, since it is identical on every machine and device while the
    synthesis is float. ``device`` runs the entropy-parameter networks there."""
    reader = ContainerReader(io.BytesIO(bytes(data)))
    return _read_latents(reader, resolve_device(device))[1].cpu()


def _read_latents(reader: ContainerReader,
                  device: torch.device) -> tuple[ImageModel, torch.Tensor]:
    """(network, decoded latent grid) of the one frame of an image file, its size bounded
    before anything is allocated."""
    header = reader.header
    if header.media != Media.IMAGE:
        raise FormatError(f"this is a {header.media.name.lower()} file, not an image")
    geometry = header.geometry
    if geometry.channels not in (3, 4):
        raise FormatError(f"an image-model file has 3 channels (RGB) or 4 (RGB and alpha), "
                          f"not {geometry.channels}")
    if geometry.width * geometry.height > MAX_PIXELS:
        raise LimitError(f"image of {geometry.width}x{geometry.height} pixels is larger than "
                         f"the {MAX_PIXELS} pixels this decoder handles")
    info = registry.resolve(header.model, header.weights_digest)
    network, tables = registry.load(info, device)
    frame = reader.read_all()[0]
    if reader.tables is not None:
        raise FormatError("an image-model file carries no TABL chunk (SPEC.md 8.2)")
    return network, decode_latents(network, tables, frame.payload, geometry, reader)


def decode_latents(network, tables, payload: bytes, geometry: ImageGeometry,
                   reader: ContainerReader | None = None) -> torch.Tensor:
    """The decoded latent grid of one frame (exact integers), before synthesis."""
    try:
        decoder = SymbolDecoder(tables, payload)
        if decoder.side:
            raise PayloadError("image payloads carry no side information (SPEC.md 8.2)")
        z_shape = (1, network.config["hyper"], -(-geometry.height // STRIDE),
                   -(-geometry.width // STRIDE))
        z_placeholder = torch.zeros(z_shape, dtype=torch.int64, device=network.gain.device)
        y_grid = network.code_latents(
            None, z_placeholder, decoder=decoder,
            latent_size=(latent_side(geometry.height), latent_side(geometry.width)))
        decoder.finish()
    except CodecError as error:
        raise reader.annotate(error) if reader is not None else error
    return y_grid


def read_image(path: Union[str, Path], alpha: bool = False) -> np.ndarray:
    """Any image Pillow reads, as H×W×3 uint8 (H×W×4 when ``alpha`` and it has alpha; without
    ``alpha`` such an image is refused); errors name the file."""
    try:
        with Image.open(path) as image:
            image.load()
            if not alpha:
                return to_rgb(image, str(path))
            rgb, plane = to_rgb_alpha(image, str(path))
            return rgb if plane is None else np.dstack([rgb, plane])
    except (OSError, Image.DecompressionBombError) as error:
        raise ValueError(f"{path}: cannot read image ({error})") from None


def encode_file(source: Union[str, Path], output: Union[str, Path], *, quality: float = 4.0,
                target_bpp: float | None = None, overwrite: bool = False,
                refine_steps: int = 0, progress: Callable[[int], None] | None = None,
                device: Device = None) -> dict:
    """Encode an image file to a `.lc` file (atomically); returns a summary for the CLI."""
    from .fileio import atomic_output

    pixels = read_image(source, alpha=True)
    if target_bpp is not None:
        data, quality = encode_to_bpp(pixels, target_bpp, refine_steps=refine_steps,
                                      progress=progress, device=device)
    else:
        data = encode_image(pixels, quality, refine_steps=refine_steps, progress=progress,
                            device=device)
    with atomic_output(output, overwrite) as stream:
        stream.write(data)
    height, width = pixels.shape[:2]
    bits_per_pixel = 8 * len(data) / (width * height)
    summary = {"bytes": len(data), "bits_per_pixel": bits_per_pixel, "quality": quality}
    if target_bpp is not None and abs(bits_per_pixel / target_bpp - 1) > TARGET_BPP_TOLERANCE:
        summary["target_out_of_range"] = "low" if bits_per_pixel > target_bpp else "high"
    return summary


def decode_file(source: Union[str, Path], output: Union[str, Path], *,
                overwrite: bool = False, device: Device = None) -> dict:
    """Decode a `.lc` image to any format Pillow writes, chosen by the output's extension."""
    from .fileio import atomic_output

    file_format = Image.registered_extensions().get(Path(output).suffix.lower())
    if file_format is None:
        raise ValueError(f"{output}: unknown image extension (use .png, .bmp, .tif, ...)")
    data = Path(source).read_bytes()
    try:
        pixels = decode_image(data, device=device)
    except CodecError as error:
        raise error.with_source(str(source))
    buffer = io.BytesIO()  # written in memory first: a format Pillow refuses leaves no file
    try:
        Image.fromarray(pixels).save(buffer, format=file_format)
    except (OSError, KeyError, ValueError) as error:
        what = "an image with alpha" if pixels.shape[2] == 4 else "this image"
        raise ValueError(f"{output}: the {file_format} format cannot store {what} ({error}); "
                         f"write .png, .webp or .tif instead") from None
    with atomic_output(output, overwrite) as stream:
        stream.write(buffer.getbuffer())
    return {"width": pixels.shape[1], "height": pixels.shape[0],
            "alpha": pixels.shape[2] == 4}


TARGET_BPP_TOLERANCE = 0.05  # --target-bpp: relative rate error the quality search accepts


def encode_to_bpp(pixels: np.ndarray, target_bpp: float,
                  tolerance: float = TARGET_BPP_TOLERANCE,
                  model: str | None = None, refine_steps: int = 0,
                  progress: Callable[[int], None] | None = None,
                  device: Device = None) -> tuple[bytes, float]:
    """Encode at the quality whose rate is within ``tolerance`` of ``target_bpp`` (bisection;
    rate grows with quality). Returns the closest file found and its quality: for a target
    outside the model's range, the file at (or next to) quality 1 or 8, so callers compare its
    rate to the target. With ``refine_steps``, every try is refined, since refinement lowers
    the rate."""
    if target_bpp <= 0:
        raise ValueError(f"target bpp must be positive, got {target_bpp}")
    pixel_count = pixels.shape[0] * pixels.shape[1]
    encoder = _Encoder(*to_rgb_alpha(pixels), model, device)
    low, high = QUALITY_MIN, QUALITY_MAX
    best: tuple[float, bytes, float] | None = None
    for _ in range(12):
        quality = round((low + high) / 2, 3)
        data = encoder.encode(quality, refine_steps, progress)
        bpp = 8 * len(data) / pixel_count
        error = abs(bpp - target_bpp) / target_bpp
        if best is None or error < best[0]:
            best = (error, data, quality)
        if error <= tolerance:
            break
        low, high = (quality, high) if bpp < target_bpp else (low, quality)
    # bisection only approaches the ends of the range; a target beyond them gets the end itself
    edge = min((QUALITY_MIN, QUALITY_MAX), key=lambda end: abs(end - best[2]))
    if best[0] > tolerance and 0 < abs(edge - best[2]) < 0.01:
        data = encoder.encode(edge, refine_steps, progress)
        error = abs(8 * len(data) / pixel_count - target_bpp) / target_bpp
        if error <= best[0]:  # ties go to the end: the same rate, a rounder quality
            best = (error, data, edge)
    return best[1], best[2]
