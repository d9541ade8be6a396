"""Alpha (SPEC.md 4.4): coded losslessly beside the colour in an `ALPH` chunk, format 1.1."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

import codec
from codec.bitstream import CodecError, FormatError
from codec.bitstream.chunks import frame_chunk, preamble
from codec.cli import main
from codec.image import decode_image, encode_image, to_rgb_alpha

from .reference_decoder import ReferenceDecodeError, parse_file
from .test_container import chunks_of


def random_rgba(seed: int, height: int, width: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (height, width, 4), dtype=np.uint8)
    image[: height // 2, :, 3] = 255            # opaque, transparent and soft parts
    image[height // 2:, : width // 2, 3] = 0
    return image


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 2 ** 16), height=st.integers(1, 40), width=st.integers(1, 40),
       quality=st.floats(1, 8))
def test_alpha_round_trips_exactly_and_leaves_the_colour_as_it_was(seed, height, width,
                                                                     quality):
    image = random_rgba(seed, height, width)
    data = encode_image(image, quality)
    decoded = decode_image(data)
    assert decoded.shape == (height, width, 4)
    assert np.array_equal(decoded[:, :, 3], image[:, :, 3])
    colour_only = encode_image(image[:, :, :3], quality)
    assert np.array_equal(decoded[:, :, :3], decode_image(colour_only))
    info = codec.info(data)
    assert (info["version"], info["channels"], info["chunks"]["ALPH"]) == ("1.1", 4, 1)
    assert codec.info(colour_only)["version"] == "1.0"   # no alpha: still a 1.0 file
    assert np.array_equal(parse_file(data)["alpha"], image[:, :, 3])  # the reference agrees


@pytest.mark.parametrize("mode", ["RGBA", "LA", "PA", "RGBa", "La", "P+transparency",
                                  "RGB+transparency"])
def test_every_kind_of_pil_alpha_is_kept(mode):
    rng = np.random.default_rng(1)
    if mode == "P+transparency":
        image = Image.fromarray(rng.integers(0, 4, (9, 7), dtype=np.uint8), "P")
        image.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255])
        image.info["transparency"] = 2
    elif mode == "RGB+transparency":
        image = Image.fromarray(rng.integers(0, 2, (9, 7, 3), dtype=np.uint8) * 255)
        image.info["transparency"] = (255, 255, 255)
    else:
        image = Image.fromarray(rng.integers(0, 256, (9, 7, 4), dtype=np.uint8),
                                "RGBA").convert(mode)
    expected = np.asarray((image.convert("LA") if mode == "La" else image).convert("RGBA"))
    rgb, alpha = to_rgb_alpha(image)
    assert alpha is not None and np.array_equal(alpha, expected[:, :, 3])
    assert np.array_equal(rgb, expected[:, :, :3])
    assert np.array_equal(decode_image(encode_image(image, 2.0))[:, :, 3], expected[:, :, 3])


def test_gray_and_alpha_arrays_are_accepted():
    rng = np.random.default_rng(2)
    pair = rng.integers(0, 256, (6, 5, 2), dtype=np.uint8)
    decoded = decode_image(encode_image(pair, 3.0))
    assert decoded.shape == (6, 5, 4) and np.array_equal(decoded[:, :, 3], pair[:, :, 1])


@pytest.fixture(scope="module")
def alpha_file() -> bytes:
    return encode_image(random_rgba(3, 20, 30), 4.0)


def with_alph(data: bytes, payload: bytes | None, extra: list[bytes] = ()) -> bytes:
    """The file with its ALPH payload replaced (None: removed), more chunks before DONE."""
    chunks = [c for c in chunks_of(data) if c[:4] != b"ALPH"]
    added = ([] if payload is None else [frame_chunk(b"ALPH", payload)]) + list(extra)
    return preamble(1, 1) + b"".join(chunks[:-1] + added + chunks[-1:])


def bad_alph_payloads() -> dict[str, bytes]:
    size = 20 * 30
    good = zlib.compress(bytes(size))
    return {
        "empty": b"",
        "unknown method": b"\x01" + good,
        "not zlib": b"\x00" + b"\x12\x34\x56\x78" * 8,
        "too few samples": b"\x00" + zlib.compress(bytes(size - 1)),
        "too many samples": b"\x00" + zlib.compress(bytes(size + 1)),
        "a bomb": b"\x00" + zlib.compress(bytes(1 << 26)),   # 64 MiB from ~65 KB
        "truncated stream": b"\x00" + good[:-3],
        "bad adler-32": b"\x00" + good[:-1] + bytes([good[-1] ^ 1]),
        "bytes after the stream": b"\x00" + good + b"\x00",
    }


@pytest.mark.parametrize("case", list(bad_alph_payloads()))
def test_a_bad_alph_payload_is_a_codec_error_in_library_and_reference(alpha_file, case):
    data = with_alph(alpha_file, bad_alph_payloads()[case])
    for read in (decode_image, codec.info):
        with pytest.raises(FormatError, match="ALPH"):
            read(data)
    with pytest.raises(ReferenceDecodeError, match="ALPH"):
        parse_file(data)


def test_alph_must_match_the_channel_count(alpha_file):
    colour_only = encode_image(random_rgba(3, 20, 30)[:, :, :3], 4.0)
    plane = b"\x00" + zlib.compress(bytes(600))
    cases = {
        "ALPH in a 3-channel image": with_alph(colour_only, plane),
        "4 channels, no ALPH": with_alph(alpha_file, None),
        "two ALPH": with_alph(alpha_file, plane, [frame_chunk(b"ALPH", plane)]),
    }
    for name, data in cases.items():
        with pytest.raises(CodecError):
            decode_image(data)
        with pytest.raises(ReferenceDecodeError):
            parse_file(data)


def test_cli_keeps_alpha_and_refuses_a_format_without_it(tmp_path):
    source = tmp_path / "cut-out.png"
    image = random_rgba(4, 24, 33)
    Image.fromarray(image).save(source)
    coded, back, jpeg = tmp_path / "c.lc", tmp_path / "back.png", tmp_path / "back.jpg"
    runner = CliRunner()
    assert runner.invoke(main, ["encode", str(source), "-o", str(coded), "-q", "3"]).exit_code == 0
    assert "with alpha" in runner.invoke(main, ["info", str(coded)]).output
    assert runner.invoke(main, ["decode", str(coded), "-o", str(back)]).exit_code == 0
    assert np.array_equal(np.asarray(Image.open(back))[:, :, 3], image[:, :, 3])
    result = runner.invoke(main, ["decode", str(coded), "-o", str(jpeg)])
    assert result.exit_code == 1 and "alpha" in result.output and not jpeg.exists()
