"""The frozen table of models: stable identifiers, never positions (a file names its model).

Each entry records the weights file shipped in ``codec/models/weights/`` and its SHA-256; the
file is checked against it before use, and the first 8 bytes of the digest go into every file
the model writes, so a decoder with other weights refuses instead of decoding garbage.
"""

from __future__ import annotations

import copy
import threading
from dataclasses import dataclass
from pathlib import Path

from ..bitstream.errors import ModelMismatchError
from ..bitstream.tables import TableSet
from .tables import unpack_tables

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"


@dataclass(frozen=True)
class ModelInfo:
    model_id: str
    media: str
    filename: str
    sha256: str
    description: str
    folder: Path = WEIGHTS_DIR

    @property
    def path(self) -> Path:
        return Path(self.folder) / self.filename

    @property
    def digest(self) -> bytes:
        """The 8 bytes a file's header carries."""
        return bytes.fromhex(self.sha256)[:8]


MODELS: dict[str, ModelInfo] = {}
DEFAULT_MODEL = {"image": None}
_loaded: dict[str, tuple] = {}
_on_device: dict[tuple[str, str], tuple] = {}  # (model id, device) -> (CPU model, its copy)
_lock = threading.Lock()


def register(info: ModelInfo, default: bool = False) -> None:
    """Add a model (shipped entries below; tests and tools may add their own)."""
    MODELS[info.model_id] = info
    if default or DEFAULT_MODEL.get(info.media) is None:
        DEFAULT_MODEL[info.media] = info.model_id


def register_file(path: str | Path, model_id: str = "candidate", media: str = "image",
                  default: bool = True) -> ModelInfo:
    """Register a weights file that is not shipped (evaluation of a training run, tests)."""
    from .weights import file_digest

    path = Path(path).resolve()
    info = ModelInfo(model_id, media, path.name, file_digest(path), f"weights from {path}",
                     path.parent)
    _loaded.pop(model_id, None)
    register(info, default=default)
    return info


def resolve(model_id: str, digest: bytes | None = None) -> ModelInfo:
    """The registry entry for ``model_id``; with ``digest``, check it matches the file's header."""
    info = MODELS.get(model_id)
    if info is None:
        known = ", ".join(sorted(MODELS)) or "none"
        raise ModelMismatchError(f"the file needs model {model_id!r}, which this installation "
                                 f"does not have (installed: {known})")
    if digest is not None and digest != info.digest:
        raise ModelMismatchError(f"the file was written with other weights for model "
                                 f"{model_id!r} (digest {digest.hex()}, installed "
                                 f"{info.digest.hex()})")
    return info


register(ModelInfo(
    "image-mref-v1", "image", "image-mref-v1.safetensors",
    "c0a6abd438e64cad75bcff2028153f205f02fc415c5c312b233699b1c4cbc2ba",
    "images: GDN transforms, hyperprior, 5 channel slices x 2 checkerboard passes, integer "
    "entropy-parameter path; quality 1-8"))


def shipped(media: str) -> list[ModelInfo]:
    """The entries whose weights ship in this package (not files registered at run time)."""
    return [info for info in MODELS.values()
            if info.media == media and Path(info.folder) == WEIGHTS_DIR]


def default_model(media: str) -> ModelInfo:
    model_id = DEFAULT_MODEL.get(media)
    if model_id is None:
        raise ModelMismatchError(f"no {media} model is installed")
    return MODELS[model_id]


def load(info: ModelInfo, device=None):
    """(model, TableSet) for an entry, loaded once per process and verified against its digest;
    on ``device`` (a torch.device; default CPU), a copy made once per device."""
    with _lock:
        if info.model_id not in _loaded:
            from .weights import file_digest, load_model

            if not info.path.exists():
                raise ModelMismatchError(f"weights of model {info.model_id!r} are missing: "
                                         f"{info.path}")
            actual = file_digest(info.path)
            if actual != info.sha256:
                raise ModelMismatchError(f"weights file {info.path} has SHA-256 {actual}, the "
                                         f"registry expects {info.sha256}")
            model, arrays = load_model(info.path)
            frequencies, offsets = unpack_tables(arrays)
            _loaded[info.model_id] = (model, TableSet(frequencies, offsets))
        model, tables = _loaded[info.model_id]
        if device is None or device.type == "cpu":
            return model, tables
        key = (info.model_id, str(device))
        if key not in _on_device or _on_device[key][0] is not model:
            _on_device[key] = (model, copy.deepcopy(model).to(device))
        return _on_device[key][1], tables
