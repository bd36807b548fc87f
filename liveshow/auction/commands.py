"""Commands to a show's writer: validated here, at the edge, so the writer sees only clean values.

Every viewer command carries a client-made idempotency key; its fingerprint (a hash of what it asks)
lets a retry get the first answer and a reused key with different content be refused.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import secrets
from dataclasses import dataclass, field, fields
from typing import Any

import orjson

from liveshow import jsonwire
from liveshow.auction.errors import BadAmount, BadKey
from liveshow.auction.rules import Bid, Claim, Lot, rank_bids
from liveshow.errors import ValidationFailed

# $1,000,000: anything above is a typo or an attack, never a real bid on a closet item.
MAX_CENTS = 100_000_000
MAX_QUANTITY = 999
MAX_DURATION_S = 3_600
KEY_RE = re.compile(r"^[A-Za-z0-9_.:-]{8,80}$")

# Payload values whose JSON text orjson and the standard library write alike (see fingerprint).
_EXACT = frozenset({int, bool, type(None)})
VIEWER_KINDS = frozenset({"claim", "bid"})
HOST_KINDS = frozenset({"lot.open", "lot.close", "lot.next", "lot.cancel"})


# Command ids only match answers to waiting callers: a random prefix per process and a counter make
# them unique without a uuid4 (an os.urandom syscall) per bid.
_ID_PREFIX = secrets.token_hex(6) + "-"
_ID_COUNTER = itertools.count(1)


@dataclass(frozen=True)
class Command:
    kind: str  # claim | bid | lot.open | lot.close | lot.next | lot.cancel | tick
    show_id: int
    user_id: int | None
    key: str | None
    payload: dict[str, Any] = field(default_factory=dict)
    username: str = ""
    id: str = field(default_factory=lambda: f"{_ID_PREFIX}{next(_ID_COUNTER):x}")

    def fingerprint(self) -> str:
        """A hash of what the command asks. Fingerprints are stored with their decisions and compared
        across versions, so the text hashed is the standard library's; orjson writes the same bytes
        for a payload of integers, booleans and nulls (a bid's, a claim's) in a fifth of the time."""
        return hashlib.sha256(_fingerprinted(self.kind, self.payload)).hexdigest()[:32]

    def to_json(self) -> str:
        # vars(), not dataclasses.asdict: no deep copy of the payload, a few µs per command on the
        # submitting process's event loop at thousands of bids a second.
        return jsonwire.dumps(vars(self))

    @classmethod
    def from_json(cls, raw: str) -> Command:
        return cls(**jsonwire.loads(raw))


def _fingerprinted(kind: str, payload: dict[str, Any]) -> bytes:
    if kind.isascii() and all(type(v) in _EXACT and k.isascii() for k, v in payload.items()):
        try:
            return orjson.dumps([kind, payload], option=orjson.OPT_SORT_KEYS)
        except TypeError:  # an integer past 64 bits
            pass
    return json.dumps([kind, payload], sort_keys=True, separators=(",", ":")).encode()


def cents(value: Any, what: str = "amount") -> int:
    """An amount in integer cents: refuse bools, floats, strings that are not whole numbers."""
    if isinstance(value, bool) or value is None:
        raise BadAmount(f"The {what} must be a whole number of cents.")
    if isinstance(value, str):
        if not re.fullmatch(r"\s*\d{1,12}\s*", value):
            raise BadAmount(f"The {what} must be a whole number of cents.")
        value = int(value)
    if not isinstance(value, int):
        raise BadAmount(f"The {what} must be a whole number of cents.")
    if value <= 0:
        raise BadAmount(f"The {what} must be more than zero.")
    if value > MAX_CENTS:
        raise BadAmount(f"The {what} is beyond the $1,000,000 limit.")
    return value


def count(value: Any, what: str = "quantity", default: int | None = 1, high: int = MAX_QUANTITY) -> int:
    if value is None and default is not None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValidationFailed(f"The {what} must be a whole number.")
    if isinstance(value, str):
        if not re.fullmatch(r"\s*\d{1,6}\s*", value):
            raise ValidationFailed(f"The {what} must be a whole number.")
        value = int(value)
    if not 1 <= value <= high:
        raise ValidationFailed(f"The {what} must be between 1 and {high}.")
    return int(value)


def idempotency_key(message: dict[str, Any]) -> str:
    key = message.get("key")
    if not isinstance(key, str) or not KEY_RE.match(key):
        raise BadKey("Each claim or bid needs a key: 8 to 80 letters, digits or -_.:")
    return key


def lot_no(message: dict[str, Any]) -> int | None:
    raw = message.get("lot_no")
    return None if raw is None else count(raw, "item number", high=1_000_000)


def parse_viewer(kind: str, message: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """(key, payload) of a claim or bid message from a viewer."""
    key = idempotency_key(message)
    if kind == "claim":
        return key, {"quantity": count(message.get("quantity")), "lot_no": lot_no(message)}
    return key, {"max_cents": cents(message.get("max_cents"), "bid"), "lot_no": lot_no(message)}


def parse_host(kind: str, message: dict[str, Any]) -> dict[str, Any]:
    if kind in ("lot.close", "lot.cancel"):
        return {}
    mode = message.get("mode", "claim")
    if mode not in ("claim", "auction"):
        raise ValidationFailed("The mode is claim or auction.")
    payload: dict[str, Any] = {"mode": mode}
    if kind == "lot.open":
        payload["listing_id"] = count(message.get("listing_id"), "listing", default=None, high=2**31 - 1)
    if mode == "claim":
        payload["price_cents"] = (
            None if message.get("price_cents") is None else cents(message["price_cents"], "price")
        )
        payload["quantity"] = None if message.get("quantity") is None else count(message["quantity"])
        payload["per_buyer_limit"] = (
            None if message.get("per_buyer_limit") is None else count(message["per_buyer_limit"], "limit")
        )
    else:
        payload["start_cents"] = (
            None if message.get("start_cents") is None else cents(message["start_cents"], "start")
        )
        payload["duration_s"] = count(message.get("duration_s"), "duration", default=30, high=MAX_DURATION_S)
        sudden = message.get("sudden_death", False)
        if not isinstance(sudden, bool):
            raise ValidationFailed("sudden_death is true or false.")
        payload["sudden_death"] = sudden
    return payload


# ---------------------------------------------------------------- lot state <-> JSON (persisted per decision)


def lot_to_dict(lot: Lot) -> dict[str, Any]:
    """Same as dataclasses.asdict, several times faster (no deep copy): called once per batch."""
    body = {f.name: getattr(lot, f.name) for f in fields(lot)}
    body["claims"] = [dict(vars(c)) for c in lot.claims]
    body["top"] = [dict(vars(b)) for b in lot.top]
    body["last_bid"] = dict(vars(lot.last_bid)) if lot.last_bid else None
    return body


def lot_from_dict(raw: dict[str, Any]) -> Lot:
    body = dict(raw)
    body["claims"] = tuple(Claim(**c) for c in body.get("claims", ()))
    history = body.pop("bids", None)
    if history is not None:
        # Written before lots stopped carrying their whole bid history (0.1 state_json).
        bids = [Bid(**b) for b in history]
        body.update(top=rank_bids(bids), bid_count=len(bids), last_bid=bids[-1] if bids else None)
    else:
        body["top"] = tuple(Bid(**b) for b in body.get("top", ()))
        body["last_bid"] = Bid(**body["last_bid"]) if body.get("last_bid") else None
    return Lot(**body)
