"""Independent reference decoder for the latent of image models (SPEC.md Section 8.2).

Written from SPEC.md alone (no code under ``codec/`` was read). It reuses the container parser
and the rANS / value routines of ``tests/reference_decoder.py`` and adds what Section 8.2
needs:

- ``GroupDecoder``: a coded payload (Section 5) decoded one symbol group (Section 6.3) at a
  time, because the table numbers of each group of an image model depend on the values of the
  groups before it;
- an exact integer implementation of Section 8.2's "integer layer" and "integer path"
  (int64 numpy, with a fall back to unbounded Python integers where int64 could overflow);
- ``decode_image_latent(data, weights_path)``: the decoded latent on the 1/16 grid.

Dependencies: numpy and the ``safetensors`` package's numpy loader; no torch, no ``codec``.

Points where SPEC.md Section 8.2 leaves a choice open are marked ``SPEC GAP`` below; the choice
made there is the one that reproduces the library's files (see tests/test_reference_image.py).
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
from safetensors import safe_open
from safetensors.numpy import load_file

try:  # imported as tests.reference_image (pytest) or as a top-level module
    from .reference_decoder import (MAX_VALUE, MIN_VALUE, ReferenceDecodeError, _escape_value,
                                    _parse_directory, _prepare_tables, _RansDecoder, parse_file)
except ImportError:  # pragma: no cover
    from reference_decoder import (MAX_VALUE, MIN_VALUE, ReferenceDecodeError, _escape_value,
                                   _parse_directory, _prepare_tables, _RansDecoder, parse_file)

__all__ = ["GroupDecoder", "decode_image_latent", "int_layer", "load_image_weights"]

ACT_MAX = 32767                 # clamp bound of the integer path
SHIFT = 20                      # Y = (A * M + b + 2^19) >> 20
ROUND = 1 << (SHIFT - 1)
SCALE_TABLES = 64               # tables 0..63: Gaussian scale table
HYPER_TABLE_BASE = 64           # table 64 + c: prior of hyper-latent channel c
LATENT_STEP = 16                # y_hat = 16 v + mu on the 1/16 grid


# --------------------------------------------------------------------------------------
# Section 6.3: a coded payload decoded one group at a time
# --------------------------------------------------------------------------------------

class GroupDecoder:
    """Decodes the groups of one coded payload in order; ``finish()`` checks the end state.

    Same rules as ``reference_decoder.decode_coded_payload`` (which needs every group's table
    numbers up front), but each group's table numbers are given only when it is decoded.
    """

    def __init__(self, payload, tables, where="coded payload"):
        self.prepared = _prepare_tables(tables)
        self.substreams, self.side = _parse_directory(bytes(payload), where)
        self.decoders = [_RansDecoder(raw, f"{where}, substream {k}")
                         for k, raw in enumerate(self.substreams)]
        self.where = where
        self.groups_done = 0
        self.finished = False

    def decode_group(self, table_numbers):
        """table_numbers: 1-D integer array t[0..n-1]; returns the int64 values v[0..n-1]."""
        if self.finished:
            raise ReferenceDecodeError(f"{self.where}: group decoded after finish()")
        g = self.groups_done
        tl = [int(t) for t in np.asarray(table_numbers).reshape(-1)]
        n_tables = len(self.prepared)
        for i, t in enumerate(tl):
            if not 0 <= t < n_tables:
                raise ReferenceDecodeError(
                    f"{self.where}, group {g}: value {i} uses table {t}, "
                    f"the table set has {n_tables}")
        n = len(tl)
        count = len(self.decoders)
        values = np.zeros(n, dtype=np.int64)
        for k, dec in enumerate(self.decoders):
            where = f"{self.where}, group {g}, substream {k}"
            part = range((k * n) // count, ((k + 1) * n) // count)
            # 1. primary symbols: table numbers increasing, then index increasing
            s = {}
            for t in sorted(set(tl[i] for i in part)):
                cum, freqs, _ = self.prepared[t]
                for i in part:
                    if tl[i] == t:
                        s[i] = dec.decode_table(cum, freqs)
            # 2. escape lengths, 3. low bits, 4. high bits
            escaped = [i for i in part if s[i] == len(self.prepared[tl[i]][1]) - 1]
            L = {i: dec.decode_uniform(32) for i in escaped}
            a = {i: (dec.decode_uniform(1 << min(L[i], 16)) if L[i] >= 1 else 0)
                 for i in escaped}
            h = {i: (dec.decode_uniform(1 << (L[i] - 16)) if L[i] >= 17 else 0)
                 for i in escaped}
            # Section 6.4
            for i in part:
                _, freqs, offset = self.prepared[tl[i]]
                if i in L:
                    v = _escape_value(offset, len(freqs) - 1, L[i], a[i], h[i], where)
                else:
                    v = offset + s[i]
                if not MIN_VALUE <= v <= MAX_VALUE:
                    raise ReferenceDecodeError(
                        f"{where}: value {i} = {v} is outside -2^30 .. 2^30")
                values[i] = v
        self.groups_done += 1
        return values

    def finish(self):
        """Section 6.1: after the last group every substream has x = 0 and p = 0."""
        for dec in self.decoders:
            dec.check_end()
        self.finished = True


# --------------------------------------------------------------------------------------
# Section 8.2: weights file
# --------------------------------------------------------------------------------------

def load_image_weights(weights_path):
    """Returns (config dict, tensors dict, table set as [(freqs, offset)])."""
    with safe_open(str(weights_path), framework="numpy") as handle:
        metadata = handle.metadata() or {}
    if "config" not in metadata:
        raise ReferenceDecodeError("weights file: metadata has no 'config'")
    # SPEC GAP (8.2): the encoding of `config` (taken as JSON) and the key names of the slice
    # sizes and the context width (taken as "slices" and "context") are not stated.
    config = json.loads(metadata["config"])
    for key in ("latent", "hyper", "slices", "context"):
        if key not in config:
            raise ReferenceDecodeError(f"weights file: config has no {key!r}")
    slices = [int(n) for n in config["slices"]]
    if sum(slices) != int(config["latent"]) or min(slices) < 1:
        raise ReferenceDecodeError(
            f"weights file: slice sizes {slices} do not add up to latent {config['latent']}")
    tensors = load_file(str(weights_path))

    freqs = np.asarray(tensors["tables.frequencies"]).astype(np.int64)
    sizes = np.asarray(tensors["tables.sizes"]).astype(np.int64).reshape(-1)
    offsets = np.asarray(tensors["tables.offsets"]).astype(np.int64).reshape(-1)
    if freqs.ndim != 2 or freqs.shape[0] != sizes.shape[0] or sizes.shape != offsets.shape:
        raise ReferenceDecodeError("weights file: inconsistent table tensor shapes")
    tables = []
    for t in range(freqs.shape[0]):
        n = int(sizes[t])
        if not 2 <= n <= freqs.shape[1]:
            raise ReferenceDecodeError(f"weights file: table {t} has size {n}")
        if np.any(freqs[t, n:] != 0):
            raise ReferenceDecodeError(f"weights file: table {t} padding is not zero")
        tables.append((freqs[t, :n].copy(), int(offsets[t])))
    if len(tables) < HYPER_TABLE_BASE + int(config["hyper"]):
        raise ReferenceDecodeError(
            f"weights file: {len(tables)} tables, 64 + C_z = "
            f"{HYPER_TABLE_BASE + int(config['hyper'])} needed")
    return config, tensors, tables


# --------------------------------------------------------------------------------------
# Section 8.2: integer layer and integer path
# --------------------------------------------------------------------------------------

# SPEC GAP (8.2): the spec says which layers upscale (h_s.0, h_s.1) but not which layers have a
# ReLU (clamp to [0, 32767]) and which do not (clamp to [-32767, 32767]). Of the choices tried
# (each of h_s.0/1/2, parameters_net.s.0/1, channel_context, spatial_context with or without,
# parameters_net.s.2 without since it gives signed means), the only one that reproduces the
# library's latents is: every layer has a ReLU except the last layer of parameters_net.
def _has_relu(name):
    parts = name.split(".")
    if parts[0] == "parameters_net":
        return parts[2] != "2"
    return parts[0] in ("h_s", "channel_context", "spatial_context")


def _clamp_input(x):
    return np.clip(x, -ACT_MAX, ACT_MAX)


def int_layer(x, weight, multiplier, bias, relu, upscale=False):
    """One integer layer of Section 8.2 on int64 x (B x I x h x w)."""
    x = np.asarray(x, dtype=np.int64)
    K = np.asarray(weight).astype(np.int64)
    M = np.asarray(multiplier).astype(np.int64).reshape(-1)
    b = np.asarray(bias).astype(np.int64).reshape(-1)
    O, I, kh, kw = K.shape
    B, I_x, h, w = x.shape
    if I_x != I or M.shape[0] != O or b.shape[0] != O:
        raise ReferenceDecodeError(
            f"integer layer: input has {I_x} channels, weight {K.shape}, "
            f"multiplier {M.shape}, bias {b.shape}")
    # SPEC GAP (8.2): padding "by k // 2" is only "same" size for odd k; all kernels are odd.
    if kh != kw or kh % 2 != 1:
        raise ReferenceDecodeError(f"integer layer: kernel {kh} x {kw} is not square and odd")
    p = kh // 2
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    # exact correlation, stride 1: |A| <= 127 * 32767 * I * k * k < 2^63
    acc = np.zeros((B, O, h, w), dtype=np.int64)
    for dy in range(kh):
        for dx in range(kw):
            acc += np.einsum("oi,bihw->bohw", K[:, :, dy, dx], xp[:, :, dy:dy + h, dx:dx + w])
    # SPEC GAP (8.2): no range is given for M and b, so int64 is not guaranteed to hold
    # A * M + b; use unbounded integers when it might not.
    bound = int(np.abs(acc).max(initial=0)) * int(np.abs(M).max(initial=0)) \
        + int(np.abs(b).max(initial=0)) + ROUND
    if bound < 2 ** 62:
        y = (acc * M.reshape(1, O, 1, 1) + b.reshape(1, O, 1, 1) + ROUND) >> SHIFT
    else:
        y = (acc.astype(object) * M.astype(object).reshape(1, O, 1, 1)
             + b.astype(object).reshape(1, O, 1, 1) + ROUND) >> SHIFT
    y = np.clip(y, 0 if relu else -ACT_MAX, ACT_MAX).astype(np.int64)
    if upscale:
        if O % 4:
            raise ReferenceDecodeError(f"integer layer: {O} channels cannot pixel-shuffle by 2")
        # output channel o', position (2i + di, 2j + dj) <- input channel 4 o' + 2 di + dj
        y = y.reshape(B, O // 4, 2, 2, h, w).transpose(0, 1, 4, 2, 5, 3)
        y = y.reshape(B, O // 4, 2 * h, 2 * w)
    return y


class IntegerPath:
    def __init__(self, tensors):
        self.tensors = tensors

    def layer(self, name, x, upscale=False):
        try:
            weight = self.tensors[f"int.{name}.weight"]
            multiplier = self.tensors[f"int.{name}.multiplier"]
            bias = self.tensors[f"int.{name}.bias"]
        except KeyError as exc:
            raise ReferenceDecodeError(f"weights file: missing integer tensor {exc}") from None
        if weight.dtype != np.int8 or multiplier.dtype != np.int64 or bias.dtype != np.int64:
            raise ReferenceDecodeError(f"weights file: integer layer {name} has wrong dtypes")
        return int_layer(x, weight, multiplier, bias, _has_relu(name), upscale)

    def hyper_synthesis(self, z_hat):
        x = _clamp_input(z_hat)
        x = self.layer("h_s.0", x, upscale=True)
        x = self.layer("h_s.1", x, upscale=True)
        return self.layer("h_s.2", x)

    def channel_context(self, s, y_earlier):
        return self.layer(f"channel_context.{s - 1}", _clamp_input(y_earlier))

    def spatial_context(self, s, anchors):
        return self.layer(f"spatial_context.{s}", _clamp_input(anchors))

    def parameters(self, s, base, context):
        x = _clamp_input(np.concatenate([base, context], axis=1))
        for j in range(3):
            x = self.layer(f"parameters_net.{s}.{j}", x)
        return x


# --------------------------------------------------------------------------------------
# Section 8.2: the groups
# --------------------------------------------------------------------------------------

def _table_numbers(c):
    return np.clip((c + 8) >> 4, 0, SCALE_TABLES - 1)


def decode_image_latent(data: bytes, weights_path: str) -> np.ndarray:
    """The decoded latent y_hat (1/16 grid) of an image file: int64 (1, C_y, H/16, W/16),
    sides rounded up."""
    info = parse_file(data)
    if info["media"] != "image":
        raise ReferenceDecodeError(f"not an image file (media {info['media']})")
    with open(weights_path, "rb") as handle:
        digest = hashlib.sha256(handle.read()).hexdigest()[:16]
    if digest != info["weights_digest"]:
        raise ReferenceDecodeError(
            f"model {info['model']!r}: the file needs weights digest {info['weights_digest']}, "
            f"the weights file has {digest}")
    config, tensors, tables = load_image_weights(weights_path)
    if info["tables"] is not None:      # Section 5.1: an embedded TABL takes precedence
        tables = info["tables"]
        if len(tables) < HYPER_TABLE_BASE + int(config["hyper"]):
            raise ReferenceDecodeError("embedded table set has too few tables for the model")
    c_y, c_z = int(config["latent"]), int(config["hyper"])
    slices = [int(n) for n in config["slices"]]
    context = int(config["context"])

    h64, w64 = -(-info["height"] // 64), -(-info["width"] // 64)     # hyper-latent grid
    h16, w16 = -(-info["height"] // 16), -(-info["width"] // 16)     # coded latent grid

    unit = info["units"][0]
    where = "FRAM coded payload"
    groups = GroupDecoder(unit["payload"], tables, where)
    # SPEC GAP (8.2): the content of the side information of an image model is not stated;
    # the library writes none and this decoder ignores whatever is there.
    path = IntegerPath(tensors)

    # 1. hyper-latent: channel c uses table 64 + c.
    # SPEC GAP (8.2): the spec does not say on which grid z_hat enters h_s.0 (the latent is
    # "on the 1/16 grid", the hyper-latent has no stated grid and no mean); here z_hat is the
    # decoded value itself (not 16 v), which is what the library does.
    z_tables = np.repeat(HYPER_TABLE_BASE + np.arange(c_z), h64 * w64)
    z_hat = groups.decode_group(z_tables).reshape(1, c_z, h64, w64)
    features = path.hyper_synthesis(z_hat)
    if features.shape[2:] != (4 * h64, 4 * w64):
        raise ReferenceDecodeError(f"hyper synthesis gives {features.shape}, z grid {h64}x{w64}")
    features = features[:, :, :h16, :w16]     # the top-left part covers the coded grid

    rows, cols = np.meshgrid(np.arange(h16), np.arange(w16), indexing="ij")
    anchor = (rows + cols) % 2 == 0
    y_hat = np.zeros((1, c_y, h16, w16), dtype=np.int64)
    start = 0
    for s, n_s in enumerate(slices):
        base = features
        if s > 0:
            base = np.concatenate([features, path.channel_context(s, y_hat[:, :start])], axis=1)
        slice_hat = np.zeros((1, n_s, h16, w16), dtype=np.int64)
        ctx = np.zeros((1, context, h16, w16), dtype=np.int64)
        for mask in (anchor, ~anchor):
            params = path.parameters(s, base, ctx)
            if params.shape[1] < 2 * n_s:
                raise ReferenceDecodeError(
                    f"parameters_net.{s} gives {params.shape[1]} channels, 2 x {n_s} needed")
            mu = params[0, :n_s][:, mask]                 # (n_s, positions), C order
            t = _table_numbers(params[0, -n_s:][:, mask])
            v = groups.decode_group(t.reshape(-1)).reshape(mu.shape)
            slice_hat[0][:, mask] = LATENT_STEP * v + mu
            if mask is anchor:   # anchors only; non-anchor positions are 0
                ctx = path.spatial_context(s, slice_hat)
        y_hat[:, start:start + n_s] = slice_hat
        start += n_s
    groups.finish()
    return y_hat
