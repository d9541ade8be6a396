"""The image pipeline with a small random-weight model: round trips, determinism of the decoded
latent (threads, batch, synthesis precision), refusals, the command line."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import codec
from codec.bitstream import CodecError, ModelMismatchError
from codec.cli import main
from codec.image import decode_image, decode_latents, encode_image, encode_to_bpp, to_rgb
from codec.models import image_model, registry
from codec.models.image_model import GDN, inference_forward
from codec.models.weights import save_model

from .conftest import ROOT, small_image_model

SAMPLE = ROOT / "testdata" / "sample.png"


@pytest.fixture(scope="module")
def small_model(tmp_path_factory):
    """A tiny ImageModel with random weights and quality-dependent gains, registered as default."""
    model = small_image_model()
    folder = tmp_path_factory.mktemp("weights")
    digest = save_model(model, folder / "small.safetensors", {"note": "random test weights"})
    saved = (dict(registry.MODELS), dict(registry.DEFAULT_MODEL))
    info = registry.ModelInfo("image-test", "image", "small.safetensors", digest, "test", folder)
    registry.MODELS.clear()
    registry.register(info, default=True)
    yield info
    registry.MODELS.clear()
    registry.MODELS.update(saved[0])
    registry.DEFAULT_MODEL.update(saved[1])
    registry._loaded.pop("image-test", None)


def random_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    smooth = rng.random((height // 8 + 2, width // 8 + 2, 3))
    image = Image.fromarray((smooth * 255).astype(np.uint8)).resize((width, height))
    return np.asarray(image)


@pytest.mark.parametrize("size", [(64, 64), (70, 90), (1, 1), (130, 65)])
def test_round_trip_any_size(small_model, size):
    image = random_image(max(size[0], 8), max(size[1], 8))[:size[0], :size[1]]
    data = encode_image(image, 4.0)
    decoded = decode_image(data)
    assert decoded.shape == image.shape and decoded.dtype == np.uint8
    summary = codec.info(data)
    assert (summary["media"], summary["width"], summary["height"]) == ("image", size[1], size[0])
    assert summary["model"] == "image-test" and summary["quality"] == 4.0


def test_decoded_latent_is_identical_across_threads_and_synthesis_precision(small_model):
    data = encode_image(random_image(96, 128), 5.0)
    network, tables = registry.load(small_model)
    reader = codec.bitstream.ContainerReader(__import__("io").BytesIO(data))
    payload, geometry = reader.read_all()[0].payload, reader.header.geometry
    before = torch.get_num_threads()
    latents = []
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            latents.append(decode_latents(network, tables, payload, geometry))
    finally:
        torch.set_num_threads(before)
    assert torch.equal(latents[0], latents[1])
    # synthesis precision acts after the latent: both decodes start from the same integers
    single = decode_image(data, torch.float32)
    double = decode_image(data, torch.float64)
    assert np.abs(single.astype(int) - double.astype(int)).max() <= 1


def test_integer_entropy_path_is_identical_for_batch_1_and_4(small_model):
    network, _ = registry.load(small_model)
    torch.manual_seed(1)
    z = torch.randint(-6, 7, (4, network.config["hyper"], 3, 5))
    batch = network._int_features(z)
    single = torch.cat([network._int_features(z[i:i + 1]) for i in range(4)])
    assert torch.equal(batch, single)
    base = batch
    spatial = torch.randint(0, 300, (4, network.config["context"], 12, 20))
    mean, table = network._int_parameters(0, base, spatial)
    for i in range(4):
        mean_i, table_i = network._int_parameters(0, base[i:i + 1], spatial[i:i + 1])
        assert torch.equal(mean[i:i + 1], mean_i) and torch.equal(table[i:i + 1], table_i)


@pytest.mark.parametrize("gdn_rows", [image_model.GDN_ROWS, 1000])
def test_coding_forward_of_the_transforms_matches_their_training_forward(small_model, gdn_rows,
                                                                         monkeypatch):
    """inference_forward (channels-last, GDN as a matrix product in blocks of pixels) computes
    the same g_a and g_s as the modules themselves, which training and refinement use; with
    1000-pixel blocks the GDNs here (3072 pixels) span four blocks, the last one partial."""
    monkeypatch.setattr(image_model, "GDN_ROWS", gdn_rows)
    network = copy.deepcopy(registry.load(small_model)[0]).float()  # the cached one stays as is
    generator = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for transform, shape in ((network.g_a, (2, 3, 64, 96)),
                                 (network.g_s, (2, network.config["latent"], 4, 6))):
            for layer in transform:
                if isinstance(layer, GDN):  # non-trivial γ and β, not the initial identity
                    layer.gamma.add_(0.05 * torch.rand(layer.gamma.shape, generator=generator))
                    layer.beta.add_(0.5 * torch.rand(layer.beta.shape, generator=generator))
            x = torch.rand(shape, generator=generator)
            torch.testing.assert_close(inference_forward(transform, x), transform(x),
                                       rtol=1e-5, atol=1e-5)


def test_higher_quality_costs_more_and_target_bpp_is_reached(small_model):
    image = random_image(128, 128, seed=3)
    sizes = [len(encode_image(image, q)) for q in (1.0, 4.0, 8.0)]
    assert sizes[0] < sizes[1] < sizes[2]
    target = 8 * sizes[1] / (128 * 128) * 1.1
    data, quality = encode_to_bpp(image, target)
    assert abs(8 * len(data) / (128 * 128) - target) / target <= 0.05, quality


def test_target_bpp_out_of_range_gives_the_nearest_end_and_a_warning(small_model, tmp_path):
    image = random_image(64, 64, seed=5)
    pixel_count = 64 * 64
    lowest = 8 * len(encode_image(image, 1.0)) / pixel_count
    highest = 8 * len(encode_image(image, 8.0)) / pixel_count
    data, quality = encode_to_bpp(image, lowest / 4)
    assert 8 * len(data) / pixel_count <= lowest, quality  # this model's rate is flat there
    data, quality = encode_to_bpp(image, highest * 4)
    assert quality > 7.99 and 8 * len(data) / pixel_count >= highest * 0.99
    source = tmp_path / "in.png"
    Image.fromarray(image).save(source)
    result = CliRunner().invoke(main, ["encode", str(source), "-o", str(tmp_path / "a.lc"),
                                       "--target-bpp", f"{lowest / 4:.4f}"])
    assert result.exit_code == 0, result.output
    assert "out of this model's range" in result.output and "low end" in result.output
    result = CliRunner().invoke(main, ["encode", str(source), "-o", str(tmp_path / "b.lc"),
                                       "--target-bpp", f"{lowest * 1.2:.4f}"])
    assert result.exit_code == 0 and "out of this model's range" not in result.output


def test_corrupted_files_raise_codec_error_only(small_model):
    data = encode_image(random_image(64, 96), 3.0)
    rng = np.random.default_rng(0)
    for position in rng.choice(len(data), size=60, replace=False):
        broken = bytearray(data)
        broken[position] ^= 0x5A
        with pytest.raises(CodecError):
            decode_image(bytes(broken))
    for length in range(0, len(data), max(1, len(data) // 40)):
        with pytest.raises(CodecError):
            decode_image(data[:length])


def test_other_weights_are_refused_naming_the_model(small_model):
    data = bytearray(encode_image(random_image(64, 64), 3.0))
    position = data.index(b"image-test") + len(b"image-test")
    data[position] ^= 1  # the weights digest follows the model identifier
    from codec.bitstream.chunks import frame_chunk
    import struct
    (length,) = struct.unpack_from("<I", data, 10)
    head = frame_chunk(b"HEAD", bytes(data[14:14 + length]))
    patched = bytes(data[:6]) + head + bytes(data[6 + len(head):])
    with pytest.raises(ModelMismatchError, match="image-test"):
        decode_image(patched)


def test_input_conversion_and_refusals():
    gray = Image.new("L", (5, 4), 100)
    assert to_rgb(gray).shape == (4, 5, 3)
    palette = Image.new("P", (5, 4))
    assert to_rgb(palette).shape == (4, 5, 3)
    with pytest.raises(ValueError, match="alpha"):
        to_rgb(Image.new("RGBA", (5, 4)))
    with pytest.raises(ValueError, match="uint8"):
        to_rgb(np.zeros((4, 5, 3), np.float32))
    for mode in ("La", "RGBa"):   # premultiplied alpha is alpha too
        with pytest.raises(ValueError, match="alpha"):
            to_rgb(Image.new(mode, (5, 4)))
    with pytest.raises(ValueError, match="floating-point"):
        to_rgb(Image.new("F", (5, 4)))
    with pytest.raises(ValueError, match="outside 0-65535"):
        to_rgb(Image.fromarray(np.full((4, 5), 70000, np.int32)))


def test_16_bit_grayscale_is_scaled_not_clipped(tmp_path):
    """Pillow's convert("RGB") clips 16-bit gray to 0/255; each sample must become round(v/257)
    instead, for 16-bit PNG (mode I;16) and PGM (mode I) alike."""
    from codec.image import read_image

    levels = np.array([[0, 128, 129, 257, 32767], [32896, 40000, 65278, 65407, 65535]])
    expected = np.round(levels / 257).astype(np.uint8)
    png = tmp_path / "gray16.png"
    Image.fromarray(levels.astype(np.uint16)).save(png)
    pgm = tmp_path / "gray16.pgm"
    pgm.write_bytes(b"P5 5 2 65535\n" + levels.astype(">u2").tobytes())
    for path, mode in ((png, "I;16"), (pgm, "I")):
        with Image.open(path) as image:
            assert image.mode == mode
        pixels = read_image(path)
        assert pixels.dtype == np.uint8 and pixels.shape == (2, 5, 3)
        assert np.array_equal(pixels[:, :, 0], expected) and np.array_equal(pixels[:, :, 2],
                                                                           expected)
    with pytest.raises(ValueError, match="quality"):
        encode_image(np.zeros((8, 8, 3), np.uint8), 9.0)


def test_cli_encode_decode_refuses_overwrite(small_model, tmp_path):
    runner = CliRunner()
    coded, restored = tmp_path / "s.lc", tmp_path / "s.png"
    result = runner.invoke(main, ["encode", str(SAMPLE), "-o", str(coded), "-q", "2.5"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(main, ["encode", str(SAMPLE), "-o", str(coded)])
    assert result.exit_code == 1 and "-y" in result.output
    result = runner.invoke(main, ["decode", str(coded), "-o", str(restored)])
    assert result.exit_code == 0, result.output
    assert Image.open(restored).size == Image.open(SAMPLE).size
    broken = tmp_path / "broken.lc"
    broken.write_bytes(coded.read_bytes()[:-5])
    result = runner.invoke(main, ["decode", str(broken), "-o", str(tmp_path / "b.png")])
    assert result.exit_code == 1 and "broken.lc" in result.output
    assert not (tmp_path / "b.png").exists()
    listing = runner.invoke(main, ["models"])
    assert "image-test" in listing.output


def test_codec_eval_writes_results_with_bd_rates(small_model, tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    Image.fromarray(random_image(64, 96, seed=5)).save(folder / "a.png")
    result = CliRunner().invoke(main, ["eval", "--data", str(folder), "--out",
                                       str(tmp_path / "out"), "--codecs", "jpeg",
                                       "--ours-qualities", "2,5,8"])
    assert result.exit_code == 0, result.output
    document = __import__("json").loads((tmp_path / "out" / "results.json").read_text())
    assert set(document["curves"]) == {"jpeg", "ours"}
    assert len(document["curves"]["ours"]["bpp"]) == 3
    assert (tmp_path / "out" / "rd.png").exists()


@pytest.mark.parametrize("decode", ["decode_image", "decode_image_latents"])
def test_oversized_image_is_refused_before_any_decoding(decode):
    """Both public decoders bound the size read from the file before allocating for it."""
    import io

    import codec.image
    from codec.bitstream import ContainerWriter, Header, ImageGeometry, LimitError

    info = registry.default_model("image")
    header = Header(ImageGeometry(16384, 8192), info.model_id,
                    bytes.fromhex(info.sha256)[:8], 4.0)
    out = io.BytesIO()
    with ContainerWriter(out, header) as writer:
        writer.write_frame(b"\0" * 16)
    with pytest.raises(LimitError, match="larger than"):
        getattr(codec.image, decode)(out.getvalue())
