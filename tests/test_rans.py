"""The entropy coder: exact round trips, determinism across threads, and its error paths."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from codec.bitstream import (FormatError, PayloadError, SymbolDecoder, TableSet,
                             decode_groups, encode_groups, set_num_threads)
from codec.bitstream.rans import VALUE_LIMIT, get_num_threads
from codec.bitstream.tables import TOTAL


@st.composite
def table_sets(draw) -> TableSet:
    """Random valid tables: random sizes, offsets and integer frequencies summing to 2^24."""
    frequencies, offsets = [], []
    for _ in range(draw(st.integers(1, 6))):
        size = draw(st.integers(2, 40))
        weights = np.array(draw(st.lists(st.integers(0, 1000), min_size=size, max_size=size)),
                           dtype=np.float64)
        skew = draw(st.sampled_from([0, 1, 6]))  # 6: some entries get only the minimum of 1
        weights = weights ** skew if skew else np.ones(size)
        if weights.sum() == 0:
            weights[0] = 1
        freq = 1 + np.floor(weights / weights.sum() * (TOTAL - size)).astype(np.int64)
        freq[int(np.argmax(weights))] += TOTAL - int(freq.sum())
        frequencies.append(freq)
        offsets.append(draw(st.integers(-32768, 32767 - size)))
    return TableSet(frequencies, offsets)


@st.composite
def groups_for(draw, tables: TableSet):
    """Groups whose values mostly fall inside their table and sometimes far outside."""
    groups = []
    for _ in range(draw(st.integers(1, 3))):
        n = draw(st.integers(0, 200))
        numbers = np.array(draw(st.lists(st.integers(0, len(tables) - 1), min_size=n,
                                         max_size=n)), dtype=np.int64)
        inside = np.array(draw(st.lists(st.floats(0, 1, exclude_max=True), min_size=n,
                                        max_size=n)))
        values = tables.offsets[numbers] + np.floor(inside * tables.escape[numbers]).astype(int)
        outside = draw(st.lists(st.tuples(st.integers(0, max(n - 1, 0)),
                                          st.integers(-VALUE_LIMIT, VALUE_LIMIT)), max_size=5))
        for position, value in outside:
            if n:
                values[position] = value
        groups.append((values.astype(np.int64), numbers))
    return groups


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_round_trip_random_tables_groups_and_escapes(data):
    tables = data.draw(table_sets())
    groups = data.draw(groups_for(tables))
    substreams = data.draw(st.integers(1, 9))
    side = data.draw(st.binary(max_size=20))
    payload = encode_groups(tables, groups, substreams, side)
    decoded, decoded_side = decode_groups(tables, payload, [n for _, n in groups])
    assert decoded_side == side
    for (values, _), out in zip(groups, decoded):
        np.testing.assert_array_equal(out, values)


def test_extreme_escapes_round_trip(tables):
    values = np.array([VALUE_LIMIT, -VALUE_LIMIT, 0, 1, -1, 65535, -65536, 1 << 17, 12345678])
    numbers = np.arange(len(values)) % len(tables)
    payload = encode_groups(tables, [(values, numbers)], substreams=2)
    np.testing.assert_array_equal(decode_groups(tables, payload, [numbers])[0][0], values)


def test_values_beyond_the_limit_are_refused(tables):
    with pytest.raises(ValueError, match="2\\^30"):
        encode_groups(tables, [(np.array([VALUE_LIMIT + 1]), np.array([0]))])
    with pytest.raises(ValueError, match="table numbers"):
        encode_groups(tables, [(np.array([0]), np.array([len(tables)]))])
    with pytest.raises(ValueError, match="table numbers"):
        encode_groups(tables, [(np.array([0]), np.array([-1]))])


@pytest.fixture
def restore_threads():
    before = get_num_threads()
    yield
    set_num_threads(before)


def test_bytes_and_values_do_not_depend_on_thread_count(tables, restore_threads):
    rng = np.random.default_rng(7)
    numbers = rng.integers(0, len(tables), 200_000)
    values = np.round(rng.normal(size=numbers.size) * 3).astype(np.int64)
    values[::5000] = 10_000  # escapes in every substream
    results = []
    for threads in (0, 1, 2, 4):
        set_num_threads(threads)
        payload = encode_groups(tables, [(values, numbers), (values[:1000], numbers[:1000])],
                                substreams=7)
        decoded, _ = decode_groups(tables, payload, [numbers, numbers[:1000]])
        results.append((payload, decoded))
    for payload, decoded in results:
        assert payload == results[0][0]
        np.testing.assert_array_equal(decoded[0], values)
        np.testing.assert_array_equal(decoded[1], values[:1000])


def test_automatic_substream_count_grows_with_size(tables):
    rng = np.random.default_rng(3)
    small = encode_groups(tables, [(np.zeros(100, np.int64), np.zeros(100, np.int64))])
    numbers = rng.integers(len(tables) // 2, len(tables), 400_000)
    big = encode_groups(tables, [(np.round(rng.normal(size=numbers.size) * 8).astype(np.int64),
                                  numbers)])
    assert SymbolDecoder(tables, small).substreams == 1
    assert SymbolDecoder(tables, big).substreams > 1


def test_wrong_group_size_or_tables_fail_the_end_state_check(tables):
    rng = np.random.default_rng(5)
    numbers = rng.integers(0, len(tables), 5000)
    values = np.round(rng.normal(size=5000) * 2).astype(np.int64)
    payload = encode_groups(tables, [(values, numbers)])
    with pytest.raises(PayloadError):
        decode_groups(tables, payload, [numbers[:4000]])
    with pytest.raises(PayloadError):
        decode_groups(tables, payload, [(numbers + 1) % len(tables)])


def test_decoder_refuses_a_bad_directory(tables):
    payload = encode_groups(tables, [(np.arange(10), np.zeros(10, np.int64))], substreams=2)
    for broken in (payload[:1], payload[:5], payload + b"\0\0\0\0", b"\0\0" + payload[2:],
                   b"\xff\xff" + payload[2:]):
        with pytest.raises(FormatError):
            SymbolDecoder(tables, broken)


def test_table_set_validation_and_serialisation():
    good = TableSet([np.array([TOTAL - 1, 1])], [0])
    assert TableSet.unpack(good.pack()) == good
    with pytest.raises(FormatError):
        TableSet([np.array([TOTAL, 0])], [0])
    with pytest.raises(FormatError):
        TableSet([np.array([5, 6])], [0])
    with pytest.raises(FormatError):
        TableSet.unpack(good.pack() + b"\0")


def test_categorical_models_reproduce_the_integer_tables_exactly(tables):
    """One symbol per entry, coded through constriction, costs exactly -log2(f / 2^24) bits."""
    import constriction

    for index in range(len(tables)):
        table = tables.table(index)
        cumulative = np.concatenate(([0], np.cumsum(table)))
        for symbol in range(len(table)):
            coder = constriction.stream.stack.AnsCoder()
            coder.encode_reverse(np.array([symbol], np.int32), tables.categorical(index))
            # from state 0, encoding (c, f) leaves exactly x = c: the model's cumulative frequency
            expected = [cumulative[symbol]] if cumulative[symbol] else []
            assert coder.get_compressed().tolist() == expected
