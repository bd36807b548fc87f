"""The database is down: every HTTP request that needed it answers 503 with Retry-After, never a 500.

One exception handler for the whole app (``create_app`` registers it for the classes below), so no
handler has to think about outages: whatever the database raised on the way up reaches it. Only errors
that say the database could not be reached or the connection broke are an outage; any other database
error (a constraint, bad SQL) is a bug and stays a 500.
"""

from __future__ import annotations

import logging

import psycopg
from sqlalchemy import exc as sa
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from liveshow.outage import is_database_down
from liveshow.web.rendering import render, wants_json

log = logging.getLogger(__name__)

RETRY_AFTER_S = 2  # a PostgreSQL restart or failover takes seconds
CODE = "unavailable"
REASON = "The database is not answering right now; try again in a few seconds."

# What create_app registers the handler for (it re-raises what is not an outage).
HANDLED: tuple[type[Exception], ...] = (sa.DBAPIError, sa.TimeoutError, psycopg.Error)


async def database_down_handler(request: Request, exc: Exception) -> Response:
    if not is_database_down(exc):
        raise exc  # a bug, not an outage: the server error middleware answers 500 and logs it
    if request.scope["type"] != "http":
        raise exc  # a WebSocket: the room answers its own error frames (liveshow/chat)
    log.warning("database unavailable for %s %s: %s", request.method, request.url.path, type(exc).__name__)
    headers = {"Retry-After": str(RETRY_AFTER_S), "Cache-Control": "no-store"}
    if wants_json(request):
        # Both units, as every refusal that says when to come back (a rate limit, a full server, a
        # room frame's retry_after_ms): a client reads the same field whatever refused it.
        body = {
            "error": CODE,
            "reason": REASON,
            "retry_after": RETRY_AFTER_S,
            "retry_after_ms": RETRY_AFTER_S * 1000,
        }
        return JSONResponse(body, status_code=503, headers=headers)
    # user=None: who is signed in would be one more question to the database that is down.
    response = render(request, "error.html", status_code=503, message=REASON, status=503, user=None)
    response.headers.update(headers)
    return response
