"""The WebSocket endpoint ``/ws/shows/{show_id}`` and install(context).

Handshake: a browser's Origin must be this site (Host header or settings.public_url), else the
handshake is refused (HTTP 403). The user comes from the session cookie. Resume point: the query
parameter ``?last_seq=N`` (empty for a fresh snapshot), or else a first frame
``{"type": "hello", "last_seq": N | null}`` sent within HELLO_WAIT seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.routing import BaseRoute, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketState

from liveshow.chat.handlers import HANDLERS
from liveshow.chat.presence import make_presence
from liveshow.chat.protocol import (
    CLOSE_NOT_FOUND,
    CLOSE_POLICY,
    CLOSE_TOO_BIG,
    CLOSE_TRY_LATER,
    MAX_FRAME_BYTES,
    FrameTooBig,
    decode,
    reply_id,
)
from liveshow.chat.receive_lane import receive_lane_for
from liveshow.chat.room import Connection, Room
from liveshow.chat.service import RoomService
from liveshow.context import AppContext
from liveshow.errors import DomainError, InternalError, NotFound, ValidationFailed
from liveshow.outage import dependency_down, unavailable
from liveshow.settings import Settings
from liveshow.web.auth import ctx, current_user

log = logging.getLogger(__name__)

HELLO_WAIT = 1.0
# A command that failed for a reason that is ours (a bug), not the client's: it is logged, the client
# is told, and the socket stays open.
INTERNAL = InternalError("Something went wrong on our side; try again.")


def origin_allowed(websocket: WebSocket, settings: Settings) -> bool:
    origin = websocket.headers.get("origin")
    if origin is None:
        return True  # not a browser (browsers always send Origin on WebSockets): no ambient cookie risk
    netloc = urlsplit(origin).netloc.lower()
    allowed = {websocket.headers.get("host", "").lower()}
    if settings.public_url:
        allowed.add(urlsplit(settings.public_url).netloc.lower())
    return bool(netloc) and netloc in allowed


def _query_last_seq(websocket: WebSocket) -> tuple[bool, int | None, str | None]:
    """(given, value, error): whether the query names a resume point, and which."""
    if "last_seq" not in websocket.query_params:
        return False, None, None
    raw = websocket.query_params["last_seq"].strip()
    if not raw:
        return True, None, None
    if not raw.isdigit() or len(raw) > 18:
        return True, None, "Query last_seq must be a non-negative integer; sending a snapshot."
    return True, int(raw), None


async def _receive(websocket: WebSocket) -> str | bytes | None:
    """The next frame's payload; None when the peer has gone."""
    message = await websocket.receive()
    if message["type"] == "websocket.disconnect":
        return None
    text: str | None = message.get("text")
    if text is not None:
        return text
    data: bytes = message.get("bytes") or b""
    return data


Reader = Callable[[], Awaitable[str | bytes | None]]


def frame_reader(websocket: WebSocket) -> Reader:
    """The socket's frames in the order they came: on the receive lane where it can be used (what the
    server queued before the lane took over first, what it reads after handing back last)."""
    lane = receive_lane_for(websocket, MAX_FRAME_BYTES)
    if lane is None:
        return lambda: _receive(websocket)

    async def read() -> str | bytes | None:
        if lane.backlog:
            raw = await _receive(websocket)
            lane.backlog -= 1
            return raw
        text = await lane.receive()
        return text if text is not None else await _receive(websocket)

    return read


async def room_socket(websocket: WebSocket) -> None:
    context = ctx(websocket)
    service = context.room
    assert service is not None
    show_id: int = websocket.path_params["show_id"]
    if not origin_allowed(websocket, context.settings):
        log.warning("refused room socket from foreign origin %r", websocket.headers.get("origin"))
        await websocket.close(CLOSE_POLICY)  # before accept: the handshake is answered with 403
        return
    try:
        user = await run_in_threadpool(current_user, websocket)
        await websocket.accept()
        if not await _connect_allowed(service, websocket, user.id if user else None):
            return
        room = await service.room_for(show_id)
    except NotFound:
        await websocket.send_json({"type": "error", "code": "not_found", "reason": "No such show."})
        await websocket.close(CLOSE_NOT_FOUND, "no such show")
        return
    except Exception as exc:
        if dependency_down(exc) is None:
            raise
        await _refuse_join(websocket, exc)
        return
    conn = service.new_connection(show_id, websocket, user)
    pending: list[Any] = []
    given, last_seq, query_error = _query_last_seq(websocket)
    read = frame_reader(websocket)
    try:
        if not given:
            last_seq, first = await _await_hello(read, conn)
            if first is _GONE:
                return
            if first is not None:
                pending.append(first)
        cap = context.settings.max_room_sockets_per_user
        if cap > 0 and user is not None and user.id is not None and len(room.sockets_of(user.id)) >= cap:
            # Checked with no await before attach adds it, so parallel connects cannot all slip in.
            reason = f"At most {cap} open connections per account to a show; close another tab first."
            await websocket.send_json({"type": "error", "code": "too_many_sockets", "reason": reason})
            await websocket.close(CLOSE_TRY_LATER, "too many sockets")
            return
        try:
            await service.attach(room, conn, last_seq)
        except Exception as exc:
            if dependency_down(exc) is None:
                raise
            await _refuse_join(websocket, exc)
            return
        if query_error:
            conn.send(ValidationFailed(query_error).frame())
        # The frames are served by a task of their own: this coroutine sits under a dozen ASGI layers
        # (server, middleware, router), and a task resumes the whole chain of coroutines it runs each
        # time it wakes, which the socket's task does twice per bid (the frame, then its answer):
        # 2-3 % of the servers' CPU in bench/bids.py. Cancelling this one cancels that task too.
        await asyncio.get_running_loop().create_task(_serve(service, room, conn, read, pending))
    except Exception as exc:  # a socket dying mid-await surfaces here in many shapes
        log.debug("room socket of show %s ended: %r", show_id, exc)
    finally:
        await service.detach(room, conn)


async def _serve(
    service: RoomService, room: Room, conn: Connection, read: Reader, pending: list[Any]
) -> None:
    """Answer the socket's frames, those read before it joined first, until it closes or goes."""
    for raw in pending:
        if not await _handle_raw(service, room, conn, raw):
            return
    while not conn.closed:
        raw = await read()
        if raw is None or not await _handle_raw(service, room, conn, raw):
            return


_GONE = object()


async def _refuse_join(websocket: WebSocket, exc: BaseException) -> None:
    """A join that needs a dependency that is down: say so, then close with "try again later" (the
    page reconnects with its last seq); never a bare 500 or a silent close."""
    dependency = dependency_down(exc) or "bus"
    log.warning("room join refused: %s is down (%s)", dependency, exc)
    with contextlib.suppress(Exception):
        if websocket.client_state == WebSocketState.CONNECTING:
            await websocket.accept()
        await websocket.send_json(unavailable(dependency).frame())
        await websocket.close(CLOSE_TRY_LATER, f"{dependency} unavailable")


async def _connect_allowed(service: RoomService, websocket: WebSocket, user_id: int | None) -> bool:
    """Count the connect per address (and account); a refused one hears why and when, then closes."""
    try:
        await service.limits.check("socket.address", service.limits.address(websocket))
        if user_id is not None:
            await service.limits.check("socket.account", user_id)
    except DomainError as exc:  # rate_limited, or unavailable when Redis cannot count
        await websocket.send_json(exc.frame())
        await websocket.close(CLOSE_TRY_LATER, "rate limited")
        return False
    return True


async def _await_hello(read: Reader, conn: Connection) -> tuple[int | None, Any]:
    """Wait briefly for a hello; returns (last_seq, a non-hello first frame to handle later | None)."""
    try:
        raw = await asyncio.wait_for(read(), HELLO_WAIT)
    except TimeoutError:
        return None, None
    if raw is None:
        return None, _GONE
    try:
        message = decode(raw)
    except (FrameTooBig, ValidationFailed):
        return None, raw  # handled (answered or closed) like any other frame, after joining
    if message.get("type") != "hello":
        return None, raw
    last = message.get("last_seq")
    if last is None or (isinstance(last, int) and not isinstance(last, bool) and last >= 0):
        return last, None
    conn.send({"type": "error", "code": "invalid", "reason": "last_seq must be a non-negative integer."})
    return None, None


async def _handle_raw(service: RoomService, room: Room, conn: Connection, raw: str | bytes) -> bool:
    """Answer one frame; False when the socket was closed for it."""
    message: dict[str, Any] | None = None
    try:
        message = decode(raw)
        kind = message["type"]
        handler = HANDLERS.get(kind)
        if handler is not None:
            reply = await handler(service, room, conn, message)
        elif (other := service.context.room_handlers.get(kind)) is not None:
            reply = await other(room.show_id, conn.user, message)
        else:
            raise ValidationFailed(f"Unknown message type {kind!r}.", field="type")
    except FrameTooBig as exc:
        log.info("closing room socket of show %s: %s", room.show_id, exc)
        await conn.websocket.close(CLOSE_TOO_BIG, "frame too big")
        return False
    except DomainError as exc:
        # Refusals are the business as usual of a show (a bid under the asking price, a sold-out
        # claim): thousands a second in a bidding war, each answered to its sender. Not an INFO line.
        log.debug("room %s refused %s: %s (%s)", room.show_id, _kind(message), exc.message, exc.code)
        conn.send(_with_reply_to(exc.frame(), message))
        return True
    except Exception as exc:
        # Answer, don't drop: the socket stays open and the client retries with the same key.
        dependency = dependency_down(exc)
        if dependency is not None:
            log.warning("room %s: %s failed, %s is down: %s", room.show_id, _kind(message), dependency, exc)
            conn.send(_with_reply_to(unavailable(dependency).frame(), message))
        else:
            log.exception("room %s: %s failed", room.show_id, _kind(message))
            conn.send(_with_reply_to(INTERNAL.frame(), message))
        return True
    if reply is not None:
        conn.send(_with_reply_to(reply, message))
    return True


def _kind(message: dict[str, Any] | None) -> str:
    return str(message.get("type")) if message else "frame"


def _with_reply_to(frame: dict[str, Any], message: dict[str, Any] | None) -> dict[str, Any]:
    rid = reply_id(message)
    return {**frame, "reply_to": rid} if rid is not None else frame


def install(context: AppContext) -> list[BaseRoute]:
    presence = make_presence(context.settings.bus_url, context.settings.bus_prefix)
    settings = context.settings
    service = RoomService(
        context,
        presence,
        tick=settings.room_flush_ms / 1000,
        max_tick=max(settings.room_flush_ms, settings.room_flush_max_ms) / 1000,
    )
    context.room = service
    context.on_startup.append(service.start)
    context.on_shutdown.append(service.stop)
    return [WebSocketRoute("/ws/shows/{show_id:int}", room_socket, name="room")]
