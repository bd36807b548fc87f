"""The pure parts of keyed room commands and the events API: key validation, command fingerprints, a
stored message's retry check, and the events page's cursor and filtering."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from liveshow import jsonwire
from liveshow.chat.answers import Answer, fingerprint
from liveshow.chat.messages import KeyReused, Stored
from liveshow.chat.protocol import get_optional_key
from liveshow.clock import epoch_ms
from liveshow.errors import ValidationFailed
from liveshow.showlog import ShowEvent
from liveshow.web.show_events import page


@pytest.mark.parametrize("key", ["abcdefgh", "x" * 80, "c-0b9e8f3a-1c2d", "A.b:c_d-e"])
def test_good_keys(key: str) -> None:
    assert get_optional_key({"key": key}) == key


def test_no_key_is_none() -> None:
    assert get_optional_key({}) is None and get_optional_key({"key": None}) is None


@pytest.mark.parametrize(
    "key", ["abcdefg", "x" * 81, "has space", "ümlautkey", "k" * 8 + "\n", 12345678, True, []]
)
def test_bad_keys(key: Any) -> None:
    with pytest.raises(ValidationFailed) as refused:
        get_optional_key({"key": key})
    assert refused.value.details == {"field": "key"}


def test_fingerprint_ignores_the_envelope_and_sees_the_rest() -> None:
    base = {"type": "mod.mute", "user_id": 7, "minutes": 10}
    same = fingerprint(base)
    assert fingerprint({**base, "id": "r1", "key": "k-12345678", "resend": True}) == same
    assert fingerprint(dict(reversed(list(base.items())))) == same
    assert fingerprint({**base, "minutes": 11}) != same
    assert fingerprint({**base, "type": "mod.unmute"}) != same


def test_an_answer_is_given_again_only_for_the_same_command() -> None:
    answer = Answer("f1", {"type": "chat.slow_mode", "seconds": 5, "seq": 9})
    again = answer.for_retry("f1")
    assert again == {"type": "chat.slow_mode", "seconds": 5, "seq": 9}
    again["seq"] = 0  # a copy: the stored answer is not changed by the caller
    assert answer.reply["seq"] == 9
    with pytest.raises(KeyReused) as refused:
        answer.for_retry("f2")
    assert refused.value.code == "key_reused"


def test_a_stored_message_accepts_only_its_own_text() -> None:
    stored = Stored({"id": 3, "text": "hello"}, published_seq=None, fresh=False)
    stored.check_same("hello")
    with pytest.raises(KeyReused):
        stored.check_same("hello!")


def test_epoch_ms_reads_naive_moments_as_utc() -> None:
    aware = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    assert epoch_ms(aware) == epoch_ms(aware.replace(tzinfo=None)) == 1767323045678


def row(seq: int, type: str = "chat.message", **data: Any) -> ShowEvent:
    at = datetime.fromtimestamp(seq, UTC)
    return ShowEvent(show_id=1, seq=seq, type=type, data=jsonwire.dumps(data or {"id": seq}), at=at)


def test_a_page_moves_its_cursor_past_every_row_read() -> None:
    rows = [row(4), row(5, "notice", to=[2], kind="x"), row(6, "presence", count=3), row(7)]
    got = page(rows, after_seq=3, limit=3)
    assert got == {
        "events": [{"type": "chat.message", "seq": 4, "ts": 4000, "id": 4}],
        "next_after_seq": 6,
        "more": True,
    }
    assert page(rows[3:], after_seq=6, limit=3) == {
        "events": [{"type": "chat.message", "seq": 7, "ts": 7000, "id": 7}],
        "next_after_seq": 7,
        "more": False,
    }
    assert page([], after_seq=7, limit=3) == {"events": [], "next_after_seq": 7, "more": False}


# A command's fingerprint is stored with its decision and compared with a retry's, maybe by another
# version: orjson's fast path must hash exactly the standard library's text, whatever the payload.
command_payloads = st.dictionaries(
    st.text(max_size=6),
    st.none() | st.booleans() | st.integers() | st.integers(min_value=2**63 - 2) | st.text(max_size=4),
    max_size=4,
)


@given(st.sampled_from(["bid", "claim", "lot.open", "lot.close", "é"]), command_payloads)
@settings(max_examples=400, deadline=None)
def test_command_fingerprint_hashes_the_standard_librarys_text(kind: str, payload: dict[str, Any]) -> None:
    from liveshow.auction.commands import Command

    text = json.dumps([kind, payload], sort_keys=True, separators=(",", ":"))
    expected = hashlib.sha256(text.encode()).hexdigest()[:32]
    assert Command(kind, 1, 2, "k-12345678", payload).fingerprint() == expected
