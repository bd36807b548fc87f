"""HTTP twin of the room messages: POST /api/shows/{id}/auction with the same JSON as a room frame
({"type": "claim"|"bid"|"lot.open"|..., ...}). For API clients, bots and the benchmark."""

from __future__ import annotations

import json

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from liveshow.auction.install_types import ROOM_TYPES
from liveshow.errors import NotFound, PayloadTooLarge, ValidationFailed
from liveshow.web.auth import check_csrf, ctx, current_user

MAX_BODY = 4096


async def command(request: Request) -> Response:
    await check_csrf(request)
    body = await request.body()
    if len(body) > MAX_BODY:
        raise PayloadTooLarge("The request is too large.")
    try:
        message = json.loads(body)
    except ValueError as exc:
        raise ValidationFailed("The body must be JSON.") from exc
    if not isinstance(message, dict) or message.get("type") not in ROOM_TYPES:
        raise ValidationFailed(f"type must be one of {', '.join(ROOM_TYPES)}.")
    service = ctx(request).auction
    if service is None:
        raise NotFound("The auction is not running.")
    user = await run_in_threadpool(current_user, request)
    reply = await service.on_message(int(request.path_params["show_id"]), user, message)
    return JSONResponse(reply)


def routes() -> list[BaseRoute]:
    return [Route("/api/shows/{show_id:int}/auction", command, methods=["POST"], name="auction_command")]
