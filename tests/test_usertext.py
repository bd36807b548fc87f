"""The one cleaner of user-visible text: exhaustive over Unicode with Hypothesis, plus the named cases."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from liveshow.errors import ValidationFailed
from liveshow.usertext import clean, field

BIDI = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
# Every code point, lone surrogates included (JSON can carry "\ud800" into a Python str).
anything = st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x10FFFF), max_size=60)
# Text weighted toward what the cleaner exists for.
tricky = st.text(
    alphabet=st.sampled_from(
        list(BIDI + "\x00\x07\t\n\r\x0b\x0c\x1b\x7f\x85\u00a0\u00ad\u2028\u2029\u200b\u200d\ufeff")
        + list("ab é\u0301ｆ")
    ),
    max_size=60,
)


def invisible(char: str) -> bool:
    category = unicodedata.category(char)
    return category in ("Cc", "Cs") or (category == "Cf" and char not in "\u200c\u200d")


@settings(max_examples=400, deadline=None)
@given(anything | tricky, st.booleans(), st.booleans())
def test_clean_text_has_no_controls_no_bidi_is_normal_and_is_a_fixed_point(
    raw: str, multiline: bool, name: bool
) -> None:
    out = clean(raw, multiline=multiline, name=name)
    assert not [c for c in out if invisible(c) and c != "\n"]
    assert not set(BIDI) & set(out)
    assert multiline or "\n" not in out
    assert unicodedata.is_normalized("NFKC" if name else "NFC", out)
    assert out == out.strip()
    assert "  " not in out and "\n\n\n" not in out
    assert clean(out, multiline=multiline, name=name) == out
    out.encode("utf-8")  # writable anywhere: no lone surrogates


@given(st.text(alphabet=st.characters(categories=["L", "N", "P", "S"]), max_size=40))
def test_ordinary_single_line_text_comes_through_normalised_only(raw: str) -> None:
    assert clean(raw) == unicodedata.normalize("NFC", raw).strip()


@pytest.mark.parametrize(
    ("raw", "options", "expected"),
    [
        ("Sale \u202egpj.exe\u202c", {}, "Sale gpj.exe"),
        ("\u2066evil\u2069 \u200fname\u200e", {}, "evil name"),
        ("a\u200bb\ufeffc\u00add", {}, "abcd"),  # zero-width space, BOM, soft hyphen
        ("👨\u200d👩\u200d👧", {}, "👨\u200d👩\u200d👧"),  # the emoji joiner stays
        (
            "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645",
            {},
            "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645",
        ),
        ("  two   spaces\tand\ttabs  ", {}, "two spaces and tabs"),
        ("line one\r\nline two", {}, "line one line two"),
        (
            "line one\r\n\r\n\r\n\r\n  line two  \u2028three",
            {"multiline": True},
            "line one\n\nline two\nthree",
        ),
        ("bell\x07 and esc\x1b[31m", {}, "bell and esc[31m"),
        ("e\u0301", {}, "\u00e9"),  # NFC
        ("Ｍａｙａ ｆｉ", {"name": True}, "Maya fi"),  # NFKC for names
        ("Ｍａｙａ", {}, "Ｍａｙａ"),  # ... but not for prose
        ("\ud800x", {}, "x"),
        ("\u202e", {}, ""),
    ],
)
def test_named_cases(raw: str, options: dict[str, bool], expected: str) -> None:
    assert clean(raw, **options) == expected


def test_field_checks_type_presence_and_length_after_cleaning() -> None:
    assert field("  Coat\u202e ", "Title", 4) == "Coat"  # 7 characters raw, 4 once clean
    assert field(None, "Brand", 10) == ""
    with pytest.raises(ValidationFailed, match="Title: required"):
        field("\u202e\u200b ", "Title", 10, required=True)
    with pytest.raises(ValidationFailed, match="at most 3") as info:
        field("abcd", "Title", 3, key="title")
    assert info.value.details == {"field": "title"}
    with pytest.raises(ValidationFailed, match="must be text"):
        field(["a"], "Title", 3)
