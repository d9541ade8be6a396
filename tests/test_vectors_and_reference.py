"""Conformance vectors decode as recorded, and the decoder written from SPEC.md alone agrees
with the library on every file the library writes (proof that SPEC.md is complete)."""

from __future__ import annotations

import hashlib
import io
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import codec
from codec.bitstream import AudioGeometry, ContainerReader, ImageGeometry, encode_groups
from codec.bitstream.vectors import decode_symbol_file, encode_symbol_file

from .conftest import ROOT, VECTORS, gaussian_tables
from .reference_decoder import decode_coded_payload, decode_none_model, parse_file
from .test_rans import groups_for, table_sets

NAMES = ["image-none.lc", "video-none.lc", "audio-none.lc", "minor-extension.lc",
         "image-none-alpha.lc"]


def digest(values) -> str:
    return hashlib.sha256(np.asarray(values, dtype="<i4").tobytes()).hexdigest()


@pytest.mark.parametrize("name", NAMES)
def test_vector_decodes_to_its_recorded_values(name, manifest):
    data = (VECTORS / name).read_bytes()
    expected = manifest[name]
    assert hashlib.sha256(data).hexdigest() == expected["sha256"]
    header, units = decode_symbol_file(data)
    assert [digest(u) for u in units] == [u["sha256"] for u in expected["units"]]
    assert [digest(u) for u in decode_none_model(data)] == [u["sha256"] for u in expected["units"]]
    summary = codec.info(data)
    for key, value in expected["header"].items():
        assert summary[key] == value, key
    reader = ContainerReader(io.BytesIO(data))
    reader.read_all()
    planes = [reader.alpha, parse_file(data)["alpha"]]   # library, reference
    if "alpha" in expected:
        for plane in planes:
            assert plane.size == expected["alpha"]["count"]
            assert hashlib.sha256(plane.tobytes()).hexdigest() == expected["alpha"]["sha256"]
    else:
        assert planes == [None, None]


@pytest.mark.parametrize("name", NAMES)
def test_reference_parser_reads_the_same_header(name):
    data = (VECTORS / name).read_bytes()
    reference = parse_file(data)
    summary = codec.info(data)
    for key in ("media", "model", "weights_digest", "quality", "version"):
        assert reference[key] == summary[key], key


def test_vectors_are_reproduced_byte_for_byte():
    """The encoder is deterministic: regenerating the vectors changes no byte."""
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "make_vectors.py"), "--check"],
                            capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_reference_decoder_agrees_on_random_payloads(data):
    tables = data.draw(table_sets())
    groups = data.draw(groups_for(tables))
    substreams = data.draw(st.integers(1, 6))
    payload = encode_groups(tables, groups, substreams, b"side")
    reference_tables = [(tables.table(i), int(tables.offsets[i])) for i in range(len(tables))]
    values, side = decode_coded_payload(payload, reference_tables, [n for _, n in groups])
    assert side == b"side"
    for (expected, _), got in zip(groups, values):
        np.testing.assert_array_equal(got, expected)


@settings(max_examples=20, deadline=None)
@given(st.lists(st.lists(st.integers(-300, 300), min_size=1, max_size=300), min_size=1,
                max_size=3), st.booleans())
def test_reference_decoder_agrees_on_random_files(units, audio):
    tables = gaussian_tables(5)
    geometry = AudioGeometry(8000, 1) if audio else ImageGeometry(3, 3)
    units = units if audio else units[:1]
    data = encode_symbol_file(geometry, tables, [np.array(u) for u in units])
    for got, expected in zip(decode_none_model(data), units):
        np.testing.assert_array_equal(got, expected)
