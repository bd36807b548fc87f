"""Hostile JSON for the fuzz tests (tests/test_fuzz_*.py): values of the wrong type, huge and negative
numbers, deep nesting, long strings, control and bidi characters, and mutations of valid messages.

The budget: LIVESHOW_FUZZ_EXAMPLES (default 100) examples per fuzz test, sized so that the fuzz modules
together stay under a minute on a busy 2-core machine inside `make test`; raise it for a longer local run,
e.g. `LIVESHOW_FUZZ_EXAMPLES=2000 pytest tests/test_fuzz_room.py`."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

EXAMPLES = int(os.environ.get("LIVESHOW_FUZZ_EXAMPLES", "100"))

# No deadline: each example is a round trip through a real server on a shared machine. Derandomized in
# `make test` so that a red run is reproducible; a longer local run explores new ground.
FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize="LIVESHOW_FUZZ_EXAMPLES" not in os.environ,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    database=None,
)

# Characters that have broken text handling elsewhere: controls, bidi overrides and isolates,
# zero-width joiners, a BOM, a line separator, combining marks, astral emoji.
NASTY_CHARS = (
    "\x00\x01\x07\x08\x1b\x7f\x85\x9f\u200b\u200d\u200e\u200f\u202a\u202b\u202c\u202d\u202e"
    "\u2066\u2067\u2068\u2069\ufeff\u2028\u2029\u0301\u0336\U0001f525\U0001f44d\ufffd"
)
EDGE_INTS = (0, -1, 1, 2**31 - 1, 2**31, -(2**31), 2**53 + 1, 2**63 - 1, 2**63, -(2**63), 10**30, -(10**30))

# Never surrogates: a lone surrogate cannot be encoded as UTF-8, so no client can send one as text.
chars = st.one_of(
    st.characters(blacklist_categories=("Cs",)),
    st.sampled_from(NASTY_CHARS),
)
short_text = st.text(chars, max_size=40)
texts = st.one_of(
    short_text,
    st.text(chars, min_size=200, max_size=3000),
    st.builds(
        lambda c, n: c * n, st.sampled_from(["x", "\u202e", " ", "\U0001f525", "9"]), st.integers(1, 20_000)
    ),
    st.sampled_from(
        ["", " ", "null", "0", "-1", "1e309", "NaN", "claim", "sold", "<script>alert(1)</script>"]
    ),
)
numbers = st.one_of(
    st.integers(),
    st.sampled_from(EDGE_INTS),
    st.floats(allow_nan=True, allow_infinity=True),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, texts)


@dataclass(frozen=True)
class Nested:
    """JSON nested `depth` deep around a scalar, kept as text: json.dumps (and repr) would recurse."""

    depth: int
    leaf: Any
    as_list: bool

    def text(self) -> str:
        opening, closing = ("[", "]") if self.as_list else ('{"a":', "}")
        return opening * self.depth + json.dumps(self.leaf, allow_nan=True) + closing * self.depth

    def __repr__(self) -> str:
        return f"Nested(depth={self.depth}, leaf={self.leaf!r}, as_list={self.as_list})"


# Deeper than the standard library's recursion limit, so a parser that does not guard it raises
# RecursionError; and a few moderately deep ones that parse.
deep = st.builds(Nested, st.one_of(st.integers(2, 60), st.integers(990, 5000)), scalars, st.booleans())
json_values: st.SearchStrategy[Any] = st.one_of(
    scalars,
    deep,
    st.recursive(
        scalars,
        lambda inner: st.one_of(st.lists(inner, max_size=6), st.dictionaries(short_text, inner, max_size=6)),
        max_leaves=12,
    ),
)


@st.composite
def mutated(draw: st.DrawFn, valid: dict[str, Any], keep: tuple[str, ...] = ()) -> dict[str, Any]:
    """A valid message with some fields dropped, replaced by hostile values, or extra fields added.
    `keep` names fields left alone (the room's `type` and `id`, so the answer can be matched)."""
    message = dict(valid)
    names = [k for k in message if k not in keep]
    for name in names:
        action = draw(st.sampled_from(["keep", "keep", "drop", "replace"]))
        if action == "drop":
            del message[name]
        elif action == "replace":
            message[name] = draw(json_values)
    extra = draw(
        st.dictionaries(st.one_of(short_text, st.sampled_from(names or ["x"])), json_values, max_size=3)
    )
    for name, value in extra.items():
        if name not in keep:
            message[name] = value
    return message


def dumps(value: Any) -> str:
    """JSON as a hostile client writes it: NaN and Infinity included (Python's parser accepts them), and
    Nested values written out as deep as they are."""
    raws: list[str] = []

    def swap(v: Any) -> Any:
        if isinstance(v, Nested):
            raws.append(v.text())
            return f"\x00nested{len(raws) - 1}\x00"
        if isinstance(v, list):
            return [swap(x) for x in v]
        if isinstance(v, dict):
            return {k: swap(x) for k, x in v.items()}
        return v

    text = json.dumps(swap(value), allow_nan=True)
    for i, raw in enumerate(raws):
        text = text.replace(json.dumps(f"\x00nested{i}\x00"), raw, 1)
    return text
