"""`GET /api/shows/{show_id}/events?after_seq=N&limit=M`: a show's durable log, page by page.

The events are the ones the room sent (type, seq, ts and their fields), read from the archive
(``show_events``) so they outlive the bus's short history: a client resumes from them after a long gap
and an integration reads a whole show, live or ended. Only public events are archived; private ones
(those with a ``to`` list) are filtered again here so this endpoint can never leak one.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from liveshow import jsonwire
from liveshow.clock import epoch_ms
from liveshow.errors import ValidationFailed
from liveshow.showlog import EPHEMERAL_TYPES, ShowEvent, archived_events
from liveshow.shows import service as shows
from liveshow.web.auth import ctx, current_user

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MAX_DIGITS = 18  # a seq beyond this is no seq: refused before it reaches the database as an integer


def _count(request: Request, name: str, default: int, low: int, high: int | None) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    raw = raw.strip()
    if not raw.isascii() or not raw.isdigit() or len(raw) > MAX_DIGITS:
        raise ValidationFailed(f"Query {name} must be a non-negative whole number.", field=name)
    value = int(raw)
    if value < low or (high is not None and value > high):
        span = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise ValidationFailed(f"Query {name} must be {span}.", field=name)
    return value


def wire(row: ShowEvent) -> dict[str, Any] | None:
    """The frame the room sent for an archived event; None for one that is not public."""
    data = jsonwire.loads(row.data)
    if row.type in EPHEMERAL_TYPES or not isinstance(data, dict) or "to" in data:
        return None
    return {"type": row.type, "seq": row.seq, "ts": epoch_ms(row.at), **data}


def page(rows: list[ShowEvent], after_seq: int, limit: int) -> dict[str, Any]:
    """One page of at most ``limit`` archived rows (``rows`` may hold one more, to tell if more follow).
    The cursor moves past every row read, public or not, so a filtered row never stalls a reader."""
    shown = rows[:limit]
    events = [frame for row in shown if (frame := wire(row)) is not None]
    return {
        "events": events,
        "next_after_seq": shown[-1].seq if shown else after_seq,
        "more": len(rows) > limit,
    }


def show_events(request: Request) -> Response:
    after_seq = _count(request, "after_seq", 0, 0, None)
    limit = _count(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    user = current_user(request)
    show_id: int = request.path_params["show_id"]
    with ctx(request).db.session() as session:
        show = shows.visible_show(session, user, show_id)  # the show page's rule: private is the seller's
        rows = archived_events(session, show_id, after_seq, limit + 1)
        body = {"show_id": show_id, "state": show.state, **page(rows, after_seq, limit)}
    # A private show's log must not sit in a shared cache; a public one changes while it is live.
    return JSONResponse(body, headers={"Cache-Control": "private, no-store"})


def routes() -> list[BaseRoute]:
    return [Route("/api/shows/{show_id:int}/events", show_events, methods=["GET"])]
