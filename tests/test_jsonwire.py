"""The server's wire JSON reads back what it writes, and agrees with the standard library."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from liveshow import jsonwire

values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(values)
def test_round_trip_agrees_with_the_standard_library(value: Any) -> None:
    text = jsonwire.dumps(value)
    assert jsonwire.loads(text) == json.loads(text) == value
    assert jsonwire.loads(json.dumps(value)) == value


def test_what_orjson_cannot_write_is_written_by_the_standard_library() -> None:
    assert jsonwire.dumps({"n": 10**30}) == '{"n":1000000000000000000000000000000}'
    assert jsonwire.dumps({1: "a"}) == '{"1":"a"}'  # non-string keys, as json turns them
    assert jsonwire.dumps({"t": "été"}) == '{"t":"été"}'  # UTF-8, not \\u escapes
    with pytest.raises(TypeError):
        jsonwire.dumps({"s": {1, 2}})
    with pytest.raises(ValueError):
        jsonwire.loads("{not json")
