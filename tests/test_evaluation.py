"""Rate-distortion evaluation: Bjøntegaard deltas, PSNR, classic anchors, folder runs."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from PIL import Image

from codec import evaluation
from codec.evaluation import bd_psnr, bd_rate, encode_classic, psnr

BPP = [0.1, 0.2, 0.4, 0.8, 1.6]
PSNR = [27.0, 29.5, 32.5, 35.5, 38.0]


def synthetic_image(height: int = 48, width: int = 64, seed: int = 0) -> np.ndarray:
    """Smooth gradients plus mild noise: compressible, but not trivially."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x * 255 / width, y * 255 / height, (x + y) * 127 / (width + height)], -1)
    return np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("method", evaluation.BD_METHODS)
def test_bd_of_a_curve_against_itself_is_zero(method):
    assert bd_rate(BPP, PSNR, BPP, PSNR, method) == pytest.approx(0.0, abs=1e-9)
    assert bd_psnr(BPP, PSNR, BPP, PSNR, method) == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("method", evaluation.BD_METHODS)
def test_half_the_rate_everywhere_is_minus_fifty_percent(method):
    half = [b / 2 for b in BPP]
    assert bd_rate(BPP, PSNR, half, PSNR, method) == pytest.approx(-50.0, abs=0.5)
    assert bd_rate(half, PSNR, BPP, PSNR, method) == pytest.approx(100.0, abs=0.5)


def test_rate_at_equal_psnr_per_point():
    # anchor points themselves: 0%; 30% fewer bits at the same PSNR: -30% at each point
    assert evaluation.rate_at_equal_psnr(BPP, PSNR, BPP, PSNR) == pytest.approx([0.0] * 5)
    cheaper = [0.7 * b for b in BPP]
    assert evaluation.rate_at_equal_psnr(BPP, PSNR, cheaper, PSNR) == pytest.approx([-30.0] * 5)
    # between anchor points, against the interpolated rate; outside the anchor's range: NaN
    inside, below, above = evaluation.rate_at_equal_psnr(BPP, PSNR, [0.3, 0.05, 3.0],
                                                         [31.0, 20.0, 45.0])
    assert 0.2 < 0.3 / (1 + inside / 100) < 0.4
    assert math.isnan(below) and math.isnan(above)


def test_sign_convention_better_test_is_negative_rate_and_positive_psnr():
    better = [p + 1.0 for p in PSNR]  # same rates, 1 dB more: fewer bits at equal quality
    assert bd_rate(BPP, PSNR, BPP, better) < 0 < bd_rate(BPP, better, BPP, PSNR)
    assert bd_psnr(BPP, PSNR, BPP, better) == pytest.approx(1.0, abs=1e-6)


def test_point_order_does_not_matter():
    shuffled = [3, 0, 4, 1, 2]
    test_bpp = [b * 0.8 for b in BPP]
    expected = bd_rate(BPP, PSNR, test_bpp, PSNR)
    assert bd_rate([BPP[i] for i in shuffled], [PSNR[i] for i in shuffled], test_bpp,
                   PSNR) == pytest.approx(expected)


def test_non_overlapping_curves_give_nan():
    high = [p + 20.0 for p in PSNR]
    assert math.isnan(bd_rate(BPP, PSNR, BPP, high))
    assert math.isnan(bd_psnr(BPP, PSNR, [b * 100 for b in BPP], PSNR))


@pytest.mark.parametrize("bpp, quality, message", [
    ([0.1, 0.2], [30.0], "equally long"),
    ([0.1], [30.0], "at least 2"),
    ([0.1, 0.0], [30.0, 31.0], "positive"),
    ([0.1, 0.2], [30.0, 30.0], "repeated"),
])
def test_bad_curves_are_refused_by_name(bpp, quality, message):
    with pytest.raises(ValueError, match=message):
        bd_rate(bpp, quality, BPP, PSNR)


def test_cubic_needs_four_points_and_unknown_method_is_refused():
    with pytest.raises(ValueError, match="at least 4"):
        bd_rate(BPP[:3], PSNR[:3], BPP, PSNR, method="cubic")
    with pytest.raises(ValueError, match="unknown BD method"):
        bd_rate(BPP, PSNR, BPP, PSNR, method="linear")


def test_psnr_identical_is_inf_and_known_error_matches():
    image = synthetic_image()
    assert psnr(image, image) == math.inf
    shifted = image.astype(np.int16)
    shifted = np.where(shifted < 255, shifted + 1, shifted - 1).astype(np.uint8)  # MSE exactly 1
    assert psnr(image, shifted) == pytest.approx(20 * math.log10(255))
    with pytest.raises(ValueError, match="shape"):
        psnr(image, image[:-1])
    with pytest.raises(ValueError, match="uint8"):
        psnr(image.astype(np.float32), image)


@pytest.mark.parametrize("codec", evaluation.CLASSIC_CODECS)
def test_encode_classic_round_trips_and_rate_falls_with_quality(codec):
    image = synthetic_image()
    sizes = []
    for quality in (90, 50, 10):
        num_bytes, decoded = encode_classic(image, codec, quality)
        assert decoded.shape == image.shape and decoded.dtype == np.uint8
        assert psnr(image, decoded) > 15.0
        sizes.append(num_bytes)
    assert sizes[0] > sizes[1] > sizes[2] > 0


def test_encode_classic_refuses_bad_input():
    with pytest.raises(ValueError, match="unknown classic codec"):
        encode_classic(synthetic_image(), "bpg", 50)
    with pytest.raises(ValueError, match="0..100"):
        encode_classic(synthetic_image(), "jpeg", 101)
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        encode_classic(np.zeros((8, 8), np.uint8), "jpeg", 50)


def test_evaluate_folder_means_and_report(tmp_path):
    for seed in range(2):
        Image.fromarray(synthetic_image(seed=seed)).save(tmp_path / f"img{seed}.png")
    (tmp_path / "notes.txt").write_text("not an image")
    results = evaluation.evaluate_folder(tmp_path, evaluation.classic_codecs(["jpeg", "webp"]),
                                         {"jpeg": [20, 50, 80], "webp": [20, 50, 80]},
                                         progress=False)
    assert results["images"] == ["img0.png", "img1.png"]
    assert len(results["records"]) == 2 * 2 * 3
    first = [r for r in results["records"] if r["codec"] == "jpeg" and r["quality"] == 20]
    curve = results["curves"]["jpeg"]
    assert curve["quality"] == [20, 50, 80]
    assert curve["bpp"][0] == pytest.approx(np.mean([r["bpp"] for r in first]))
    assert curve["psnr"][0] == pytest.approx(np.mean([r["psnr"] for r in first]))
    published = {"paper": {"bpp": [0.5, 1.0, 2.0, 4.0], "psnr": [20.0, 30.0, 40.0, 50.0]}}
    summary = evaluation.report(results["curves"], "webp", published)
    assert summary["vs_reference"]["webp"] == 0.0
    assert set(summary["bd_rate"]) == {"jpeg", "webp", "paper"}
    assert set(summary["bd_rate"]["paper"]) == {"jpeg", "webp"}
    assert set(summary["bd_rate"]["jpeg"]) == {"webp", "paper"}
    assert summary["points_vs_reference"]["webp"] == pytest.approx([0.0] * 3)
    assert len(summary["points_vs_reference"]["jpeg"]) == 3


def test_evaluate_folder_errors_name_the_problem(tmp_path):
    with pytest.raises(ValueError, match=re.escape(str(tmp_path))):
        evaluation.evaluate_folder(tmp_path)
    Image.fromarray(synthetic_image()).save(tmp_path / "a.png")
    with pytest.raises(ValueError, match="'ours' has no default quality ladder"):
        evaluation.evaluate_folder(tmp_path, {"ours": lambda image, q: (1, image)})


def test_load_published_skips_notes(tmp_path):
    path = tmp_path / "published.json"
    path.write_text('{"_source": "x", "a": {"bpp": [0.1, 0.2], "psnr": [30, 32]}}')
    assert evaluation.load_published(path) == {"a": {"bpp": [0.1, 0.2], "psnr": [30.0, 32.0]}}
    path.write_text('{"a": {"bpp": [0.1]}}')
    with pytest.raises(ValueError, match="'a'"):
        evaluation.load_published(path)


def test_plot_writes_a_png(tmp_path):
    curves = {"jpeg": {"quality": [1, 2, 3], "bpp": BPP[:3], "psnr": PSNR[:3]}}
    evaluation.plot(curves, tmp_path / "rd.png", {"paper": {"bpp": BPP, "psnr": PSNR}})
    assert (tmp_path / "rd.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_json_safe_turns_nan_into_null():
    assert evaluation.json_safe({"a": [math.nan, 1.0, np.float64(math.inf)]}) == {
        "a": [None, 1.0, None]}
