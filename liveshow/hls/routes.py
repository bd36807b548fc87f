"""HTTP for LL-HLS: the playlist (with blocking reload), init segments, segments and parts.

Handlers translate only: look the stream up, ask the window, answer with cache headers that let any
HTTP cache carry the audience. Media objects never change once made (their URLs carry the stream's
key): ``immutable`` for a year. The plain playlist changes every part: one second, the least
``max-age`` can say. A blocking reload (``_HLS_msn``/``_HLS_part``) answers for its query string
what will stay true (that part exists), so caches keep it a few seconds and collapse the audience's
identical requests into one. Refusals are ``no-store``.

A show held by another process: 307 to that process (its ``advertise_url``), as WHEP does.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Protocol

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from liveshow.hls.stream import HlsStream
from liveshow.hls.window import Reload

PLAYLIST_TYPE = "application/vnd.apple.mpegurl"
MEDIA_TYPE = "video/mp4"
IMMUTABLE = "public, max-age=31536000, immutable"
PLAYLIST_CACHE = "public, max-age=1"
BLOCKING_CACHE = "public, max-age=6"
NO_STORE = "no-store"
# How long a request may wait for a part that is not there yet (RFC 8216bis suggests up to three
# target durations; a part comes every 200 ms while the publisher sends).
BLOCK_SECONDS = 6.0
# A stream begins with its show's lookup (public or private) and without a segment: a request that
# comes in that moment (the player asks as soon as the show is live) waits for them rather than
# being refused and retried seconds later. A first segment needs a keyframe: about a second.
START_SECONDS = 4.0
_SEGMENT = re.compile(r"^(\d{1,9})\.m4s$")
_PART = re.compile(r"^(\d{1,9})\.(\d{1,4})\.m4s$")
_INIT = re.compile(r"^init-(\d{1,6})\.mp4$")
_CORS = {"Access-Control-Allow-Origin": "*"}


class StreamSource(Protocol):
    """What the routes need: the stream a show has here, or where else the show is held."""

    def stream(self, show_id: int) -> HlsStream | None: ...

    async def elsewhere(self, show_id: int) -> str | None: ...


def refuse(status: int, code: str, reason: str, retry_after: int | None = None) -> Response:
    headers = {"Cache-Control": NO_STORE, **_CORS}
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    return JSONResponse({"error": code, "reason": reason}, status_code=status, headers=headers)


def _media(data: bytes) -> Response:
    return Response(data, media_type=MEDIA_TYPE, headers={"Cache-Control": IMMUTABLE, **_CORS})


def _query_int(request: Request, name: str) -> int | None:
    value = request.query_params.get(name)
    if value is None:
        return None
    if not value.isdigit() or len(value) > 9:
        raise ValueError(name)
    return int(value)


def routes(source: StreamSource) -> list[BaseRoute]:
    async def locate(request: Request) -> HlsStream | Response:
        show_id = int(request.path_params["show_id"])
        stream = source.stream(show_id)
        if stream is not None and stream.public is None:
            await stream.until(lambda: stream.public is not None, START_SECONDS)
        if stream is not None and stream.public:
            if stream.assembler.unsupported is not None:
                return refuse(
                    409,
                    "hls_unavailable",
                    f"This show is sent as {stream.assembler.unsupported}, which HLS players cannot play;"
                    " watch it over WebRTC.",
                )
            return stream
        if stream is None:
            owner = await source.elsewhere(show_id)
            if owner is not None:
                query = f"?{request.url.query}" if request.url.query else ""
                suffix = request.url.path.split(f"/hls/{show_id}/", 1)[1]
                return Response(
                    status_code=307,
                    headers={"Location": f"{owner}/hls/{show_id}/{suffix}{query}", "Cache-Control": NO_STORE},
                )
        return refuse(404, "not_live", "This show is not live here.", retry_after=2)

    async def playlist(request: Request) -> Response:
        found = await locate(request)
        if isinstance(found, Response):
            return found
        try:
            msn, part = _query_int(request, "_HLS_msn"), _query_int(request, "_HLS_part")
        except ValueError as bad:
            return refuse(400, "invalid", f"{bad} must be a whole number.")
        window = found.window
        decision = window.reload(msn, part)
        if decision is Reload.BAD:
            return refuse(400, "invalid", "_HLS_msn/_HLS_part: too far ahead, or _HLS_part alone.")
        if decision is Reload.WAIT and not await found.until(
            lambda: window.reload(msn, part) is not Reload.WAIT, BLOCK_SECONDS
        ):
            return refuse(503, "not_yet", "That part has not come; try again.", retry_after=1)
        if not window.segments and not await found.until(lambda: bool(window.segments), START_SECONDS):
            return refuse(404, "not_live", "The show's video has not started yet.", retry_after=1)
        cache = BLOCKING_CACHE if msn is not None else PLAYLIST_CACHE
        return Response(found.playlist(), media_type=PLAYLIST_TYPE, headers={"Cache-Control": cache, **_CORS})

    async def media(request: Request) -> Response:
        found = await locate(request)
        if isinstance(found, Response):
            return found
        if request.path_params["key"] != found.key:
            return refuse(404, "gone", "That stream has been replaced; reload the playlist.")
        name = request.path_params["name"]
        window = found.window
        if match := _PART.match(name):
            msn, index = int(match[1]), int(match[2])
            # A preload hint names the next part before it exists: the request waits for it.
            if window.part_state(msn, index) is Reload.WAIT:
                await found.until(lambda: window.part_state(msn, index) is not Reload.WAIT, BLOCK_SECONDS)
            data = window.part_data(msn, index)
        elif match := _SEGMENT.match(name):
            data = window.segment_data(int(match[1]))
        elif match := _INIT.match(name):
            data = window.inits.get(int(match[1]))
        else:
            return refuse(404, "not_found", "No such HLS object.")
        if data is None:
            return refuse(404, "not_found", "That part or segment is not in the window (any more).")
        return _media(data)

    handlers: list[tuple[str, Callable[[Request], Awaitable[Response]]]] = [
        ("/hls/{show_id:int}/live.m3u8", playlist),
        ("/hls/{show_id:int}/{key}/{name}", media),
    ]
    return [Route(path, handler, methods=["GET"]) for path, handler in handlers]
