"""Which failures mean "a dependency is down" (Redis, the database), and the error that says so.

While Redis or the database is away, a request is answered, not dropped: HTTP 503 with Retry-After,
a room error frame ``{"code": "unavailable", "retry_after_ms": ...}`` on an open socket. Everything
else that fails is a bug and is logged as one.
"""

from __future__ import annotations

import psycopg
import redis.exceptions
import sqlalchemy.exc

from liveshow.errors import DomainError

RETRY_AFTER_MS = 2000


class Unavailable(DomainError):
    """A dependency is down: try again (with the same key) after ``retry_after_ms``."""

    code = "unavailable"
    status = 503

    def __init__(self, message: str, retry_after_ms: int = RETRY_AFTER_MS) -> None:
        super().__init__(message, retry_after_ms=retry_after_ms)


def is_database_down(exc: BaseException) -> bool:
    """True for the errors of a database that cannot be reached or dropped the connection; any other
    database error (a constraint, bad SQL) is a bug, not an outage."""
    if isinstance(exc, sqlalchemy.exc.DBAPIError):
        return exc.connection_invalidated or isinstance(
            exc, sqlalchemy.exc.OperationalError | sqlalchemy.exc.InterfaceError
        )
    if isinstance(exc, sqlalchemy.exc.TimeoutError):
        return True  # the pool had no connection to give: every one of them is stuck on the database
    # The chat's one-statement path talks to psycopg directly (db.LoopConnection).
    return isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError)


def dependency_down(exc: BaseException) -> str | None:
    """ "bus", "database" or None: whether ``exc`` is a dependency being unreachable."""
    if isinstance(exc, redis.exceptions.ConnectionError | redis.exceptions.TimeoutError):
        return "bus"  # includes BusyLoadingError: a Redis still loading its data
    if is_database_down(exc):
        return "database"
    if isinstance(exc, ConnectionError | TimeoutError):
        return "bus"  # our own adapters raise these (e.g. the bus when it cannot number events)
    return None


def unavailable(dependency: str) -> Unavailable:
    what = "The chat server" if dependency == "bus" else "The database"
    return Unavailable(f"{what} is unavailable for a moment; try again.")
