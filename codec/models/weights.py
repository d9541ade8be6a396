"""Model weights as `.safetensors`: float transforms, the integer entropy path and the integer
frequency tables in one file, checked against the digest the model registry records.

The integer parts are stored as integers and used as stored: nothing that feeds the coder is
recomputed from floats at load time, so every installation codes with the same numbers.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from .image_model import ImageModel
from .tables import pack_tables

INTEGER_PREFIX = "int."
TABLE_PREFIX = "tables."


def file_digest(path: str | Path) -> str:
    """SHA-256 of a weights file, hex."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def save_model(model: ImageModel, path: str | Path, card: dict | None = None,
               half: bool = False) -> str:
    """Export ``model`` (config, float weights, integer path, tables); return the file's SHA-256.

    ``half`` stores float parameters as fp16 (only where the caller has measured that it loses
    nothing); buffers stay fp32, since some are constants below fp16's range (the likelihood
    bound 1e-9, GDN's pedestal 2^-36) that fp16 would flush to zero; integers are always exact.
    """
    tensors: dict[str, torch.Tensor] = {}
    parameters = {name for name, _ in model.named_parameters()}
    for name, value in model.state_dict().items():
        value = value.detach().cpu().contiguous()
        if half and value.is_floating_point() and name in parameters:
            value = value.half()
        tensors[name] = value
    for name, value in model.integer_state().items():
        tensors[INTEGER_PREFIX + name] = value.cpu().contiguous()
    pmfs, offsets = model.table_arrays()
    for name, value in pack_tables(pmfs, offsets).items():
        tensors[TABLE_PREFIX + name] = torch.from_numpy(value)
    metadata = {"config": json.dumps(model.config), "card": json.dumps(card or {}),
                "format": "codec-image-model-1"}
    save_file(tensors, str(path), metadata=metadata)
    return file_digest(path)


def load_model(path: str | Path, device: str | torch.device = "cpu") -> tuple[ImageModel, dict]:
    """Load an exported model and its integer tables; returns (model, tensors of the tables)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata() or {}
    if metadata.get("format") != "codec-image-model-1":
        raise ValueError(f"{path} is not a codec image model (format {metadata.get('format')!r})")
    tensors = load_file(str(path))
    model = ImageModel(**json.loads(metadata["config"]))
    floats = {k: v.float() if v.is_floating_point() else v for k, v in tensors.items()
              if not k.startswith((INTEGER_PREFIX, TABLE_PREFIX))}
    model.load_state_dict(floats)
    model.load_integer_state({k[len(INTEGER_PREFIX):]: v for k, v in tensors.items()
                              if k.startswith(INTEGER_PREFIX)})
    tables = {k[len(TABLE_PREFIX):]: v.numpy() for k, v in tensors.items()
              if k.startswith(TABLE_PREFIX)}
    # the float forward of an exported model is the fake-quantised one, which mirrors its
    # integer path: what encoder-side refinement (models/refine.py) differentiates through
    model.set_quantised(True)
    for transform in (model.g_a, model.g_s):  # the layout inference_forward runs fastest in
        transform.to(memory_format=torch.channels_last)
    return model.to(device).eval(), tables


def card_of(path: str | Path) -> dict:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        return json.loads((handle.metadata() or {}).get("card", "{}"))

