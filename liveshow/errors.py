"""Domain errors and the one table that maps them to HTTP status codes and WebSocket error frames."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """A request the rules refuse; ``code`` is stable for clients, the message is for people."""

    code = "bad_request"
    status = 400

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def frame(self) -> dict[str, Any]:
        return {"type": "error", "code": self.code, "reason": self.message, **self.details}


class ValidationFailed(DomainError):
    code = "invalid"
    status = 400


class NotAuthenticated(DomainError):
    code = "not_authenticated"
    status = 401


class Forbidden(DomainError):
    code = "forbidden"
    status = 403


class NotFound(DomainError):
    code = "not_found"
    status = 404


class Conflict(DomainError):
    code = "conflict"
    status = 409


class InternalError(DomainError):
    """Our failure, not the client's (logged as a bug); the request may be tried again."""

    code = "internal"
    status = 500


class PayloadTooLarge(DomainError):
    code = "too_large"
    status = 413


class UnsupportedMediaType(DomainError):
    code = "unsupported_media_type"
    status = 415


class RateLimited(DomainError):
    code = "rate_limited"
    status = 429
