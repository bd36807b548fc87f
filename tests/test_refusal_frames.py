"""A writer's refusal travels as a dict (error_to_dict); the room sends it as an error frame made
straight from that dict (refusal_frame), the HTTP API raises it again (error_from_frame). Both must
say exactly what the refusal itself says: its frame, class, code, message and details."""

from __future__ import annotations

from typing import Any

import pytest

from liveshow.auction.errors import BY_CODE, error_from_dict, error_from_frame, error_to_dict, refusal_frame
from liveshow.errors import DomainError

DETAILS: list[dict[str, Any]] = [{}, {"min_cents": 4020}, {"retry_after_ms": 250, "lot_no": 3, "note": None}]


@pytest.mark.parametrize("cls", sorted(BY_CODE.values(), key=lambda c: c.code))
@pytest.mark.parametrize("details", DETAILS)
def test_every_refusal_frames_and_raises_as_itself(cls: type[DomainError], details: dict[str, Any]) -> None:
    refusal = cls("The next bid is at least $40.20.", **details)
    raw = error_to_dict(refusal)
    frame = refusal_frame(raw)
    assert frame == refusal.frame() == error_from_dict(raw).frame()
    assert list(frame) == list(refusal.frame())  # the same order of keys: the same JSON text
    again = error_from_frame(frame)
    assert type(again) is cls and again.code == refusal.code
    assert again.message == refusal.message and again.details == refusal.details


@pytest.mark.parametrize(
    "raw",
    [
        {"code": "from_a_newer_version", "message": "Something new.", "details": {"x": 1}},
        {"message": "No code at all."},
        {"code": "bid_too_low"},
        {"code": None, "message": "A null code.", "details": None},
    ],
)
def test_odd_answers_frame_as_error_from_dict_reads_them(raw: dict[str, Any]) -> None:
    assert refusal_frame(raw) == error_from_dict(raw).frame()
    again = error_from_frame(refusal_frame(raw))
    assert again.code == error_from_dict(raw).code and again.frame() == refusal_frame(raw)
