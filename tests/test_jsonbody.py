"""The one JSON reader's pure parts: depth counted without parsing, refusals with reasons."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from liveshow.errors import ValidationFailed
from liveshow.jsonbody import MAX_DEPTH, depth_of, parse_object

scalars = st.none() | st.booleans() | st.integers() | st.text(max_size=8)
documents = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=40,
)


def real_depth(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max((real_depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((real_depth(v) for v in value.values()), default=0)
    return 0


@given(documents, st.booleans())
@settings(max_examples=300, deadline=None)
def test_depth_of_matches_the_parsed_depth(value: Any, ascii_only: bool) -> None:
    # Strings full of brackets, quotes and backslashes must not count as structure.
    text = json.dumps(value, ensure_ascii=ascii_only)
    assert depth_of(text) == real_depth(value)


@given(st.text(alphabet='[]{}"\\ab', max_size=40))
def test_brackets_inside_keys_and_values_are_not_structure(noise: str) -> None:
    text = json.dumps({noise: [noise, {noise: noise}]})
    assert depth_of(text) == 3


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("{nope", "Malformed JSON"),
        ("", "Malformed JSON"),
        ("[1]", "JSON object"),
        ('"text"', "JSON object"),
        ('{"a": NaN}', "NaN"),
        ('{"a": -Infinity}', "-Infinity"),
        ('{"a": 1e400}', "too large"),
        (b'{"a": "\xc3"}', "UTF-8"),
        ('{"a": ' + "1" * 5000 + "}", "Malformed JSON"),
        ("[" * 100_000, "nested"),
        ('{"a":' * (MAX_DEPTH + 1) + "1" + "}" * (MAX_DEPTH + 1), "nested"),
    ],
)
def test_parse_object_refuses_with_a_reason(raw: str | bytes, reason: str) -> None:
    with pytest.raises(ValidationFailed) as info:
        parse_object(raw)
    assert reason in info.value.message


def test_parse_object_keeps_big_integers_exact_and_accepts_the_depth_limit() -> None:
    assert parse_object('{"a": 1000000000000000000000000000000}')["a"] == 10**30
    at_limit = '{"a":' * MAX_DEPTH + "1" + "}" * MAX_DEPTH
    assert depth_of(at_limit) == MAX_DEPTH
    parse_object(at_limit)


@pytest.mark.parametrize(
    "hostile",
    [
        '"' + '\\"' * 32_000,  # an unterminated string of escaped quotes: quadratic for a naive pattern
        '["' + "\\\\" * 32_000,
        "[" * 32_000 + '"' * 32_000,
        '"a",' * 16_000,
    ],
)
def test_counting_depth_is_linear_on_hostile_text(hostile: str) -> None:
    started = time.perf_counter()
    for _ in range(5):
        with pytest.raises(ValidationFailed):
            parse_object(hostile)
    # 64 KB five times: linear work is a few milliseconds each; the quadratic version took minutes.
    assert time.perf_counter() - started < 2.0


def test_room_frames_use_the_same_reader() -> None:
    from liveshow.chat.protocol import decode

    with pytest.raises(ValidationFailed, match="nested"):
        decode('{"type": "chat.send", "text": ' + "[" * 2000 + "]" * 2000 + "}")
    with pytest.raises(ValidationFailed, match="NaN"):
        decode('{"type": "bid", "max_cents": NaN}')


# What a client may put in a flat frame, the awkward cases included: integers past 64 bits, floats,
# NaN and infinities (json.dumps writes them), lone surrogates (escaped or raw), nested values.
flat_values = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=2**63 - 2, max_value=2**64 + 2)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(alphabet=st.characters(blacklist_categories=()), max_size=6)
    | st.lists(st.integers(), max_size=2)
)


@given(st.dictionaries(st.text(max_size=4), flat_values, max_size=5), st.booleans())
@settings(max_examples=400, deadline=None)
def test_the_flat_fast_path_reads_exactly_what_the_standard_library_reads(
    value: dict[str, Any], ascii_only: bool
) -> None:
    from liveshow.jsonbody import _DECODER

    text = json.dumps(value, ensure_ascii=ascii_only)
    try:
        expected = _DECODER.decode(text)
    except (ValueError, ValidationFailed):
        with pytest.raises(ValidationFailed):
            parse_object(text)
        return
    got = parse_object(text)
    assert got == expected or (json.dumps(got) == json.dumps(expected))  # NaN != NaN
    assert [type(v) for v in got.values()] == [type(v) for v in expected.values()]
