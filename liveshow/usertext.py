"""The one cleaner for text people type that other people see: names, titles, descriptions, chat.

Pure: no I/O. What it removes and why:

- control characters (C0, C1, DEL): they reach terminals, logs and other people's screens; a newline
  survives only in multi-line fields, a tab becomes a space;
- bidirectional controls (U+202A-202E, U+2066-2069, U+200E/200F, U+061C): a right-to-left override in a
  seller's name or a show's title reverses what follows it on every viewer's screen ("gpj.exe");
- other invisible format characters (zero-width space, word joiner, BOM, soft hyphen, tag characters),
  which make two names look the same; the zero-width joiner and non-joiner stay, because emoji
  sequences and several scripts need them;
- lone surrogates, which JSON can carry ("\\ud800") and which no encoder can write out later.

Text is brought to NFC (names to NFKC, so full-width and styled letters read as the plain ones),
runs of whitespace become one space (in multi-line text: within a line, with at most one blank line
in a row), and the result is checked against its length limit after cleaning.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from liveshow.errors import ValidationFailed

# Kept although they are format characters: emoji sequences and Indic/Persian text depend on them.
_KEEP_FORMAT = frozenset("\u200c\u200d")
# Line breaks of every kind; in single-line text they are plain whitespace.
_NEWLINES = re.compile(r"\r\n|[\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")
_SPACES = re.compile(r"\s+")
_BLANK_RUNS = re.compile(r"\n{3,}")


def _visible(char: str, multiline: bool) -> str:
    """The character, a space in its place, or nothing."""
    if char == "\n":
        return "\n" if multiline else " "
    category = unicodedata.category(char)
    if category == "Cc":
        return " " if char == "\t" else ""
    if category == "Cs" or (category == "Cf" and char not in _KEEP_FORMAT):
        return ""
    return char


def clean(raw: str, *, multiline: bool = False, name: bool = False) -> str:
    """``raw`` as it may be shown to others: see the module's docstring. Idempotent."""
    text = _NEWLINES.sub("\n", raw)
    text = "".join(_visible(c, multiline) for c in text)
    # Normalising after removal: a removed character between two combining marks changes nothing.
    text = unicodedata.normalize("NFKC" if name else "NFC", text)
    if multiline:
        # NFKC/NFC never make a newline, but they can make spaces (U+2003 under NFKC).
        lines = [_SPACES.sub(" ", line).strip() for line in _NEWLINES.sub("\n", text).split("\n")]
        return _BLANK_RUNS.sub("\n\n", "\n".join(lines)).strip()
    return _SPACES.sub(" ", text).strip()


def field(
    raw: Any,
    label: str,
    max_len: int,
    *,
    required: bool = False,
    multiline: bool = False,
    name: bool = False,
    key: str | None = None,
) -> str:
    """A form or JSON value cleaned and checked: text, not empty when required, at most ``max_len``
    characters once clean. ``key`` names the field in the error for API clients."""
    details = {"field": key} if key else {}
    if raw is None:
        raw = ""
    if not isinstance(raw, str):
        raise ValidationFailed(f"{label}: must be text.", **details)
    value = clean(raw, multiline=multiline, name=name)
    if required and not value:
        raise ValidationFailed(f"{label}: required.", **details)
    if len(value) > max_len:
        raise ValidationFailed(f"{label}: at most {max_len} characters.", **details)
    return value
