"""Image rate-distortion evaluation: classic anchors, mean RD curves, Bjøntegaard deltas, plots.

Curves follow CompressAI's Kodak convention: for each quality, the mean over images of per-image
bits per pixel and the mean of per-image RGB PSNR (peak 255). JPEG, WebP and AVIF anchors are
measured on the fly through Pillow, because their curves depend on the library versions
installed. The Bjøntegaard delta (G. Bjøntegaard, "Calculation of average PSNR differences
between RD-curves", VCEG-M33, 2001) compares two curves over their common quality interval.

No torch import: this module runs wherever numpy, Pillow and scipy are installed (matplotlib
only for :func:`plot`; all three come with compressai).
"""

from __future__ import annotations

import functools
import io
import json
import math
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

import numpy as np
from PIL import Image
from scipy.interpolate import PchipInterpolator

EncodeFn = Callable[[np.ndarray, Any], tuple[int, np.ndarray]]
"""``fn(image, quality) -> (num_bytes, decoded)``: how every codec under test is called."""

CLASSIC_CODECS = ("jpeg", "webp", "avif")

DEFAULT_QUALITIES: dict[str, tuple[int, ...]] = {
    # Each ladder spans about 0.1 to 2 mean bpp on Kodak with the settings in _SAVE_OPTIONS.
    "jpeg": (5, 10, 20, 35, 50, 75, 90),
    "webp": (2, 10, 25, 50, 75, 85, 92),
    "avif": (10, 20, 35, 50, 65, 75, 85),
}

_SAVE_OPTIONS: dict[str, tuple[str, dict[str, Any]]] = {
    "jpeg": ("JPEG", {"subsampling": "4:2:0", "optimize": True}),
    "webp": ("WEBP", {"method": 6}),
    "avif": ("AVIF", {"subsampling": "4:4:4", "speed": 4}),
}

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")

BD_METHODS = ("pchip", "cubic")


# ---------------------------------------------------------------------------------------------
# Distortion and classic codecs


def _check_image(image: np.ndarray, name: str = "image") -> None:
    """Reject anything but an HxWx3 uint8 array, so metrics and encoders see RGB bytes."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        raise ValueError(f"{name} must be a uint8 numpy array, got "
                         f"{getattr(image, 'dtype', type(image).__name__)}")
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"{name} must have shape (H, W, 3) with H, W > 0, got {image.shape}")


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """RGB PSNR in dB, peak 255, MSE over all pixels and channels; inf for identical images."""
    _check_image(a, "a")
    _check_image(b, "b")
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} vs {b.shape}")
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0.0 else 10.0 * math.log10(255.0**2 / mse)


def encode_classic(image: np.ndarray, codec: str, quality: int) -> tuple[int, np.ndarray]:
    """Encode and decode ``image`` with Pillow's JPEG, WebP or AVIF; returns (bytes, decoded).

    Settings: JPEG 4:2:0 with ``optimize=True``; WebP ``method=6``; AVIF 4:4:4, ``speed=4``.
    """
    _check_image(image)
    _check_classic(codec)
    if isinstance(quality, bool) or not isinstance(quality, (int, np.integer)) \
            or not 0 <= quality <= 100:
        raise ValueError(f"{codec} quality must be an integer in 0..100, got {quality!r}")
    fmt, options = _SAVE_OPTIONS[codec]
    buffer = io.BytesIO()
    Image.fromarray(image, "RGB").save(buffer, format=fmt, quality=int(quality), **options)
    data = buffer.getvalue()
    with Image.open(io.BytesIO(data)) as decoded:
        return len(data), np.asarray(decoded.convert("RGB"))


def classic_codecs(names: Iterable[str] = CLASSIC_CODECS) -> dict[str, EncodeFn]:
    """Map each classic codec name to an ``fn(image, quality)`` for :func:`evaluate_folder`."""
    codecs = {}
    for name in names:
        _check_classic(name)
        codecs[name] = functools.partial(_encode_named, name)
    return codecs


def _check_classic(codec: str) -> None:
    """Refuse a codec name Pillow settings are not defined for, listing the known ones."""
    if codec not in _SAVE_OPTIONS:
        raise ValueError(f"unknown classic codec {codec!r}; "
                         f"choose one of {', '.join(CLASSIC_CODECS)}")


def _encode_named(codec: str, image: np.ndarray, quality: int) -> tuple[int, np.ndarray]:
    """Positional adapter so a classic codec has the ``fn(image, quality)`` shape."""
    return encode_classic(image, codec, quality)


# ---------------------------------------------------------------------------------------------
# Bjøntegaard delta


def _curve_arrays(bpp: Sequence[float], quality: Sequence[float], label: str,
                  minimum: int) -> tuple[np.ndarray, np.ndarray]:
    """Validate one RD curve and return its (log rate, PSNR) arrays in the given order."""
    rate = np.asarray(bpp, dtype=np.float64)
    dist = np.asarray(quality, dtype=np.float64)
    if rate.ndim != 1 or rate.shape != dist.shape:
        raise ValueError(f"{label} curve: bpp and psnr must be 1-D and equally long, "
                         f"got shapes {rate.shape} and {dist.shape}")
    if rate.size < minimum:
        raise ValueError(f"{label} curve needs at least {minimum} points, got {rate.size}")
    if not (np.all(np.isfinite(rate)) and np.all(np.isfinite(dist)) and np.all(rate > 0)):
        raise ValueError(f"{label} curve: bpp must be positive and every value finite, got "
                         f"bpp {rate.tolist()}, psnr {dist.tolist()}")
    return np.log(rate), dist


def _sorted_by(x: np.ndarray, y: np.ndarray, label: str) -> tuple[np.ndarray, np.ndarray]:
    """Sort a curve by its abscissa x, which must then be strictly increasing to interpolate."""
    order = np.argsort(x, kind="stable")
    if np.any(np.diff(x[order]) <= 0):
        raise ValueError(f"{label} curve has repeated values {np.sort(x).tolist()} on the "
                         "axis it is integrated over; drop the duplicate points")
    return x[order], y[order]


def _mean_over(x: np.ndarray, y: np.ndarray, lo: float, hi: float, method: str) -> float:
    """Mean of the curve y(x) over [lo, hi], fitted as a cubic or interpolated piecewise."""
    if method == "pchip":
        return float(PchipInterpolator(x, y).integrate(lo, hi)) / (hi - lo)
    antiderivative = np.polyint(np.polyfit(x, y, 3))
    return float(np.polyval(antiderivative, hi) - np.polyval(antiderivative, lo)) / (hi - lo)


def _overlap(a: np.ndarray, b: np.ndarray) -> tuple[float, float] | None:
    """Common interval of two sorted abscissae, or None when they do not overlap."""
    lo, hi = max(a[0], b[0]), min(a[-1], b[-1])
    return (float(lo), float(hi)) if hi > lo else None


def _min_points(method: str) -> int:
    """Points a method needs: a cubic fit needs 4, piecewise interpolation 2."""
    if method not in BD_METHODS:
        raise ValueError(f"unknown BD method {method!r}; choose one of {', '.join(BD_METHODS)}")
    return 4 if method == "cubic" else 2


def bd_rate(anchor_bpp: Sequence[float], anchor_psnr: Sequence[float],
            test_bpp: Sequence[float], test_psnr: Sequence[float],
            method: str = "pchip") -> float:
    """Bjøntegaard delta rate of test against anchor, in percent (negative: test needs fewer bits).

    log(rate) is modelled as a function of PSNR for each curve and averaged over the PSNR
    interval both curves cover; the result is ``exp(mean_test - mean_anchor) - 1`` in percent.
    ``method="pchip"`` (default) interpolates piecewise cubically (monotone cubic Hermite)
    through the points, as the common modern implementations do (the JVET CTC spreadsheet, the
    ``bjontegaard`` package); ``method="cubic"`` fits one least-squares cubic polynomial per
    curve, as VCEG-M33 does. Returns NaN when the PSNR ranges do not overlap.
    """
    minimum = _min_points(method)
    psnr_a, log_a = _sorted_by(*_curve_arrays(anchor_bpp, anchor_psnr, "anchor", minimum)[::-1],
                               "anchor")
    psnr_t, log_t = _sorted_by(*_curve_arrays(test_bpp, test_psnr, "test", minimum)[::-1], "test")
    interval = _overlap(psnr_a, psnr_t)
    if interval is None:
        return math.nan
    delta = _mean_over(psnr_t, log_t, *interval, method) - _mean_over(psnr_a, log_a, *interval,
                                                                       method)
    return (math.exp(delta) - 1.0) * 100.0


def rate_at_equal_psnr(anchor_bpp: Sequence[float], anchor_psnr: Sequence[float],
                       test_bpp: Sequence[float], test_psnr: Sequence[float]) -> list[float]:
    """For each test point, its rate against the anchor's at the same PSNR, in percent.

    The anchor's log rate is interpolated as a monotone cubic (pchip) function of PSNR, as in
    :func:`bd_rate`; NaN for points outside the anchor's PSNR range. Where BD-rate gives one
    average, this shows where along the curve a codec gains or loses.
    """
    psnr_a, log_a = _sorted_by(*_curve_arrays(anchor_bpp, anchor_psnr, "anchor", 2)[::-1],
                               "anchor")
    log_t, psnr_t = _curve_arrays(test_bpp, test_psnr, "test", 1)
    anchor_log = PchipInterpolator(psnr_a, log_a, extrapolate=False)(psnr_t)
    return [(math.exp(t - a) - 1.0) * 100.0 if math.isfinite(a) else math.nan
            for t, a in zip(log_t.tolist(), anchor_log.tolist())]


def bd_psnr(anchor_bpp: Sequence[float], anchor_psnr: Sequence[float],
            test_bpp: Sequence[float], test_psnr: Sequence[float],
            method: str = "pchip") -> float:
    """Bjøntegaard delta PSNR of test against anchor, in dB (positive: test has higher quality).

    PSNR is modelled as a function of log(rate), with the same ``method`` choices as
    :func:`bd_rate`, and averaged over the common log-rate interval. Returns NaN when the rate
    ranges do not overlap.
    """
    minimum = _min_points(method)
    log_a, psnr_a = _sorted_by(*_curve_arrays(anchor_bpp, anchor_psnr, "anchor", minimum),
                               "anchor")
    log_t, psnr_t = _sorted_by(*_curve_arrays(test_bpp, test_psnr, "test", minimum), "test")
    interval = _overlap(log_a, log_t)
    if interval is None:
        return math.nan
    return _mean_over(log_t, psnr_t, *interval, method) - _mean_over(log_a, psnr_a, *interval,
                                                                     method)


# ---------------------------------------------------------------------------------------------
# Running codecs over a folder


class Progress:
    """Progress bar on stderr: redrawn in place on a terminal, one line per tenth otherwise."""

    def __init__(self, total: int, stream: TextIO | None = None, width: int = 30) -> None:
        self.total, self.width, self.done = max(total, 1), width, 0
        self.stream = sys.stderr if stream is None else stream
        self.live = bool(getattr(self.stream, "isatty", lambda: False)())
        self.start = time.perf_counter()
        self.last_tenth = 0

    def step(self, label: str) -> None:
        """Count one finished item and redraw (or log, off a terminal) with ``label``."""
        self.done += 1
        fraction = self.done / self.total
        elapsed = time.perf_counter() - self.start
        remaining = elapsed / fraction - elapsed
        filled = int(round(self.width * fraction))
        line = (f"[{'#' * filled}{'.' * (self.width - filled)}] {self.done}/{self.total} "
                f"{elapsed:5.0f}s elapsed, ~{remaining:.0f}s left  {label}")
        if self.live:
            self.stream.write(f"\r{line[:119]:<119}")
        elif int(fraction * 10) > self.last_tenth or self.done == self.total:
            self.last_tenth = int(fraction * 10)
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        """End the in-place line so later output starts on a fresh one."""
        if self.live:
            self.stream.write("\n")
            self.stream.flush()


def list_images(folder: str | Path, limit: int | None = None) -> list[Path]:
    """PNG and JPEG files of ``folder`` in name order, the first ``limit`` of them if given."""
    root = Path(folder)
    if not root.is_dir():
        raise ValueError(f"image folder {str(root)!r} does not exist or is not a folder")
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    paths = sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise ValueError(f"image folder {str(root)!r} holds no {'/'.join(IMAGE_SUFFIXES)} files")
    return paths[:limit]


def load_image(path: str | Path) -> np.ndarray:
    """Read an image file as an HxWx3 uint8 RGB array."""
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def _ladders(names: Iterable[str],
             qualities: Mapping[str, Sequence[Any]] | None) -> dict[str, list[Any]]:
    """Quality ladder per codec: the given one, else the classic default; never empty."""
    ladders = {}
    for name in names:
        ladder = (qualities or {}).get(name, DEFAULT_QUALITIES.get(name))
        if ladder is None:
            raise ValueError(f"codec {name!r} has no default quality ladder; "
                             f"pass qualities={{{name!r}: [...]}}")
        if len(ladder) == 0:
            raise ValueError(f"codec {name!r} has an empty quality ladder")
        ladders[name] = list(ladder)
    return ladders


def _measure(fn: EncodeFn, name: str, image: np.ndarray, quality: Any) -> dict[str, Any]:
    """Run one codec at one quality on one image: bytes, bpp, PSNR and seconds taken."""
    start = time.perf_counter()
    num_bytes, decoded = fn(image, quality)
    seconds = time.perf_counter() - start
    decoded = np.asarray(decoded)
    if decoded.shape != image.shape or decoded.dtype != np.uint8:
        raise ValueError(f"codec {name!r} at quality {quality!r} returned a {decoded.dtype} "
                         f"array of shape {decoded.shape}; expected uint8 {image.shape}")
    if int(num_bytes) <= 0:
        raise ValueError(f"codec {name!r} at quality {quality!r} reported {num_bytes} bytes")
    pixels = image.shape[0] * image.shape[1]
    return {"codec": name, "quality": quality, "bytes": int(num_bytes),
            "bpp": int(num_bytes) * 8.0 / pixels, "psnr": psnr(image, decoded),
            "seconds": seconds}


def mean_curves(records: Sequence[Mapping[str, Any]],
                ladders: Mapping[str, Sequence[Any]]) -> dict[str, dict[str, list[float]]]:
    """Per codec and quality, the mean of per-image bpp and of per-image PSNR (CompressAI style)."""
    curves = {}
    for name, ladder in ladders.items():
        curve: dict[str, list[Any]] = {"quality": [], "bpp": [], "psnr": []}
        for quality in ladder:
            points = [r for r in records if r["codec"] == name and r["quality"] == quality]
            if not points:
                continue
            curve["quality"].append(quality)
            curve["bpp"].append(float(np.mean([r["bpp"] for r in points])))
            curve["psnr"].append(float(np.mean([r["psnr"] for r in points])))
        curves[name] = curve
    return curves


def evaluate_folder(folder: str | Path, codecs: Mapping[str, EncodeFn] | None = None,
                    qualities: Mapping[str, Sequence[Any]] | None = None,
                    limit: int | None = None, progress: bool = True) -> dict[str, Any]:
    """Run every codec at every quality of its ladder over the images of ``folder``.

    ``codecs`` maps a name to ``fn(image, quality) -> (num_bytes, decoded)``; None means the
    three classic codecs. ``qualities`` gives ladders by name (required for non-classic codecs;
    classic ones default to :data:`DEFAULT_QUALITIES`). Returns ``{"images": [...], "curves":
    {name: {"quality", "bpp", "psnr"}}, "records": [per image, codec and quality]}``.
    """
    codecs = classic_codecs() if codecs is None else dict(codecs)
    if not codecs:
        raise ValueError("no codecs to evaluate")
    ladders = _ladders(codecs, qualities)
    paths = list_images(folder, limit)
    bar = Progress(len(paths) * sum(map(len, ladders.values()))) if progress else None
    records = []
    for path in paths:
        image = load_image(path)
        for name, fn in codecs.items():
            for quality in ladders[name]:
                records.append({"image": path.name, **_measure(fn, name, image, quality)})
                if bar:
                    bar.step(f"{path.name} {name} q={quality}")
    if bar:
        bar.close()
    return {"images": [p.name for p in paths], "curves": mean_curves(records, ladders),
            "records": records}


# ---------------------------------------------------------------------------------------------
# Published curves, report, plot


def load_published(path: str | Path) -> dict[str, dict[str, list[float]]]:
    """Read published curves ``{name: {"bpp": [...], "psnr": [...]}}``, skipping "_" notes."""
    raw = json.loads(Path(path).read_text())
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a JSON object of curves")
    curves = {}
    for name, curve in raw.items():
        if name.startswith("_"):
            continue
        if not isinstance(curve, dict) or not {"bpp", "psnr"} <= curve.keys() \
                or len(curve["bpp"]) != len(curve["psnr"]):
            raise ValueError(f"{path}: curve {name!r} needs equally long 'bpp' and 'psnr' lists")
        curves[name] = {"bpp": [float(v) for v in curve["bpp"]],
                        "psnr": [float(v) for v in curve["psnr"]]}
    return curves


def report(curves: Mapping[str, Mapping[str, Sequence[float]]], reference: str = "avif",
           published: Mapping[str, Mapping[str, Sequence[float]]] | None = None,
           method: str = "pchip") -> dict[str, Any]:
    """BD-rate and BD-PSNR tables: every curve against each classic anchor, measured ones also
    against each published curve.

    Returns ``{"reference", "method", "vs_reference": {curve: BD-rate}, "bd_rate": {anchor:
    {curve: percent}}, "bd_psnr": {anchor: {curve: dB}}, "points_vs_reference": {measured
    curve: [percent per point]}}`` (:func:`rate_at_equal_psnr`); NaN where curves do not
    overlap.
    """
    published = dict(published or {})
    clash = set(curves) & set(published)
    if clash:
        raise ValueError(f"measured and published curves share the names {sorted(clash)}")
    every = {**curves, **published}
    if reference not in every:
        raise ValueError(f"reference curve {reference!r} is not among {sorted(every)}")
    classic = [name for name in CLASSIC_CODECS if name in curves]
    anchors = {name: list(every) for name in classic}
    anchors.update({name: list(curves) for name in published})
    anchors.setdefault(reference, list(every))
    tables: dict[str, dict[str, dict[str, float]]] = {"bd_rate": {}, "bd_psnr": {}}
    for anchor, tests in anchors.items():
        a = every[anchor]
        for key, fn in (("bd_rate", bd_rate), ("bd_psnr", bd_psnr)):
            tables[key][anchor] = {t: fn(a["bpp"], a["psnr"], every[t]["bpp"], every[t]["psnr"],
                                         method) for t in tests if t != anchor}
    reference_curve = every[reference]
    points = {name: rate_at_equal_psnr(reference_curve["bpp"], reference_curve["psnr"],
                                       curve["bpp"], curve["psnr"])
              for name, curve in curves.items()}
    return {"reference": reference, "method": method,
            "vs_reference": {**tables["bd_rate"][reference], reference: 0.0}, **tables,
            "points_vs_reference": points}


def plot(curves: Mapping[str, Mapping[str, Sequence[float]]], path: str | Path,
         published: Mapping[str, Mapping[str, Sequence[float]]] | None = None,
         title: str = "Rate-distortion") -> None:
    """Save a PNG of PSNR against bpp: measured curves solid with markers, published dashed."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 6), dpi=120)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    from matplotlib import colormaps

    measured_colours, published_colours = colormaps["tab10"], colormaps["tab20b"]
    for index, (name, curve) in enumerate(curves.items()):
        axes.plot(curve["bpp"], curve["psnr"], marker="o", markersize=4, linewidth=1.8,
                  color=measured_colours(index % 10), label=name)
    for index, (name, curve) in enumerate((published or {}).items()):
        axes.plot(curve["bpp"], curve["psnr"], linestyle="--", linewidth=1.0,
                  color=published_colours((index * 3) % 20), label=name)
    _frame(axes, curves, published or {})
    axes.set_xlabel("bits per pixel (mean over images)")
    axes.set_ylabel("RGB PSNR, dB (mean over images)")
    axes.set_title(title)
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize=8, loc="lower right")
    figure.tight_layout()
    figure.savefig(str(path), format="png")


def _frame(axes: Any, curves: Mapping[str, Mapping[str, Sequence[float]]],
           published: Mapping[str, Mapping[str, Sequence[float]]]) -> None:
    """Limit the axes to the measured rate range, so long published curves do not squash it."""
    main = curves or published
    xmax = 1.05 * max((max(c["bpp"]) for c in main.values() if len(c["bpp"])), default=1.0)
    visible = [p for c in {**curves, **published}.values()
               for b, p in zip(c["bpp"], c["psnr"]) if b <= xmax and math.isfinite(p)]
    axes.set_xlim(0.0, xmax)
    if visible:
        axes.set_ylim(min(visible) - 0.5, max(visible) + 0.5)


def json_safe(value: Any) -> Any:
    """Copy of ``value`` with NaN and infinities as None, so it writes as strict JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.generic):
        return json_safe(value.item())
    return value
