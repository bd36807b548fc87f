"""Refusals of the auction and claim rules, each with its own stable code for clients."""

from __future__ import annotations

from typing import Any

from liveshow.errors import Conflict, DomainError, Forbidden, NotAuthenticated, NotFound, ValidationFailed
from liveshow.orders.errors import SoldOut  # selling's own refusal; the rules raise it too


class BadAmount(ValidationFailed):
    code = "bad_amount"


class BidTooLow(ValidationFailed):
    code = "bid_too_low"


class OverBuyerLimit(ValidationFailed):
    code = "over_buyer_limit"


class BadKey(ValidationFailed):
    code = "bad_idempotency_key"


class LotClosed(Conflict):
    code = "lot_closed"


class NotOnScreen(Conflict):
    code = "not_on_screen"


class LotStillOpen(Conflict):
    code = "lot_open"


class HasBids(Conflict):
    code = "has_bids"


class KeyReused(Conflict):
    code = "idempotency_key_reused"


class SelfBidding(Forbidden):
    code = "self_bidding"


class HostOnly(Forbidden):
    code = "host_only"


class WriterUnavailable(DomainError):
    """The show's writer did not answer in time; the client retries with the same key."""

    code = "writer_unavailable"
    status = 503


_ALL: tuple[type[DomainError], ...] = (
    BadAmount,
    BidTooLow,
    OverBuyerLimit,
    BadKey,
    LotClosed,
    NotOnScreen,
    SoldOut,
    LotStillOpen,
    HasBids,
    KeyReused,
    SelfBidding,
    HostOnly,
    WriterUnavailable,
    ValidationFailed,
    Conflict,
    Forbidden,
    NotFound,
    NotAuthenticated,
)
BY_CODE: dict[str, type[DomainError]] = {cls.code: cls for cls in _ALL}


def error_to_dict(exc: DomainError) -> dict[str, Any]:
    return {"code": exc.code, "message": exc.message, "details": exc.details}


def error_from_dict(raw: dict[str, Any]) -> DomainError:
    """Rebuild a refusal answered by a writer in another process, same class and code."""
    cls = BY_CODE.get(str(raw.get("code")), DomainError)
    exc = cls(str(raw.get("message", "refused")), **dict(raw.get("details") or {}))
    if cls is DomainError:
        exc.code = str(raw.get("code", "bad_request"))
    return exc


def refusal_frame(raw: dict[str, Any]) -> dict[str, Any]:
    """The error frame of a refusal answered by a writer: ``error_from_dict(raw).frame()`` without
    making the exception. A bidding war is mostly refusals (outbid, too low), each otherwise an
    exception built, raised through the handlers and caught, to be turned into this same frame."""
    return {
        "type": "error",
        "code": str(raw["code"]) if "code" in raw else "bad_request",
        "reason": str(raw.get("message", "refused")),
        **dict(raw.get("details") or {}),
    }


def error_from_frame(frame: dict[str, Any]) -> DomainError:
    """The refusal an error frame from refusal_frame says, to be raised where refusals are
    exceptions (the HTTP API)."""
    details = {k: v for k, v in frame.items() if k not in ("type", "code", "reason")}
    return error_from_dict({"code": frame["code"], "message": frame["reason"], "details": details})
