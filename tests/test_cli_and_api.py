"""The command line and the public API: behaviour a user sees."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

import codec
from codec.bitstream.chunks import preamble
from codec.cli import main
from codec.fileio import atomic_output

from .conftest import ROOT, VECTORS

IMAGE = VECTORS / "image-none.lc"


def run(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_version_names_package_and_format():
    result = run("--version")
    assert result.exit_code == 0
    assert codec.__version__ in result.output and "format 1.1" in result.output


def test_info_text_and_json():
    text = run("info", IMAGE)
    assert text.exit_code == 0
    assert "image 32x24" in text.output and "model" in text.output
    summary = json.loads(run("info", "--json", IMAGE).output)
    assert summary["media"] == "image" and summary["version"] == "1.0"
    assert summary["width"] == 32 and summary["height"] == 24 and summary["model"] == "none"
    video = json.loads(run("info", "--json", VECTORS / "video-none.lc").output)
    assert video["frames"] == 4 and video["index"] is True


def test_info_on_a_corrupt_file_names_the_file_and_fails(tmp_path):
    broken = bytearray(IMAGE.read_bytes())
    broken[40] ^= 0xFF
    path = tmp_path / "broken.lc"
    path.write_bytes(bytes(broken))
    result = run("info", path)
    assert result.exit_code == 1
    assert str(path) in result.output and "error:" in result.output
    assert "Traceback" not in result.output


def test_info_refuses_newer_major_version(tmp_path):
    path = tmp_path / "future.lc"
    path.write_bytes(preamble(3, 1) + IMAGE.read_bytes()[6:])
    result = run("info", path)
    assert result.exit_code == 1 and "3.1" in result.output and "1.1" in result.output


def test_missing_input_is_a_usage_error(tmp_path):
    result = run("info", tmp_path / "nothing.lc")
    assert result.exit_code == 2 and "does not exist" in result.output


def test_media_without_a_codec_yet_are_refused_clearly(tmp_path):
    source = tmp_path / "speech.wav"
    source.write_bytes(b"RIFF....")
    result = run("encode", source, "-o", tmp_path / "speech.lc")
    assert result.exit_code == 1 and "cannot encode audio" in result.output
    assert not (tmp_path / "speech.lc").exists()
    result = run("encode", tmp_path / "missing.png", "-o", tmp_path / "x.lc")
    assert result.exit_code == 2
    result = run("decode", VECTORS / "video-none.lc", "-o", tmp_path / "out.mp4")
    assert result.exit_code == 1 and "cannot decode video" in result.output
    assert not (tmp_path / "out.mp4").exists()


def test_atomic_output_refuses_overwrite_and_leaves_no_partial_file(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"keep me")
    with pytest.raises(FileExistsError, match="-y"):
        with atomic_output(target):
            pass
    with pytest.raises(RuntimeError):
        with atomic_output(target, overwrite=True) as stream:
            stream.write(b"partial")
            raise RuntimeError("encoder failed half-way")
    assert target.read_bytes() == b"keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]
    with atomic_output(target, overwrite=True) as stream:
        stream.write(b"new")
    assert target.read_bytes() == b"new"


def test_atomic_output_gets_the_permissions_a_plain_open_would(tmp_path):
    plain = tmp_path / "plain.bin"
    plain.write_bytes(b"x")
    with atomic_output(tmp_path / "atomic.bin") as stream:
        stream.write(b"x")
    assert (tmp_path / "atomic.bin").stat().st_mode == plain.stat().st_mode


def test_api_info_takes_bytes_and_raises_codec_error():
    summary = codec.info(IMAGE.read_bytes())
    assert {"media", "version", "model", "width", "height"} <= set(summary)
    with pytest.raises(codec.CodecError):
        codec.info(b"\x89LCF\x01\x00HEAD")
    with pytest.raises(codec.CodecError, match="not a .lc file"):
        codec.info(b"PNG garbage")
    with pytest.raises(TypeError):
        codec.info(str(IMAGE))


def test_importing_codec_and_reading_files_never_imports_torch():
    code = ("import sys, codec; codec.info(open(sys.argv[1], 'rb').read()); "
            "import codec.bitstream.vectors as v; v.decode_symbol_file(open(sys.argv[1], 'rb').read()); "
            "assert 'torch' not in sys.modules, 'torch was imported'")
    subprocess.run([sys.executable, "-c", code, str(IMAGE)], check=True, cwd=ROOT)


def test_console_script_runs():
    result = subprocess.run([sys.executable, "-m", "codec.cli", "info", "--json", str(IMAGE)],
                            capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0 and json.loads(result.stdout)["media"] == "image"


def test_importing_the_image_model_prints_no_warnings():
    """Library warnings raised at import time (compressai's torch.jit.script) stay out of
    every `codec` command's output."""
    result = subprocess.run([sys.executable, "-c", "import codec.image"],
                            capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0 and result.stderr == "", result.stderr
