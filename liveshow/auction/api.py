"""HTTP twin of the room messages: POST /api/shows/{id}/auction with the same JSON as a room frame
({"type": "claim"|"bid"|"lot.open"|..., ...}). For API clients, bots and the benchmark."""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from liveshow.accounts.models import User
from liveshow.auction.install_types import ROOM_TYPES
from liveshow.context import RoomHandler
from liveshow.errors import NotAuthenticated, NotFound, ValidationFailed
from liveshow.jsonbody import read_json
from liveshow.web.auth import bearer_token, check_csrf, ctx, current_user

MAX_BODY = 4096
TOKEN_TTL_S = 10.0
TOKEN_CACHE = 10_000


class TokenUsers:
    """Bearer token -> user for a few seconds, so that a bot bidding many times a second does not
    cost two database reads per bid. A revoked token or a deactivated user stops working within
    TOKEN_TTL_S. Keyed by the token's digest, never the token itself."""

    def __init__(self, ttl_s: float = TOKEN_TTL_S, size: int = TOKEN_CACHE) -> None:
        self.ttl_s = ttl_s
        self.size = size
        self._users: OrderedDict[str, tuple[float, User | None]] = OrderedDict()

    async def user(self, request: Request) -> User | None:
        token = bearer_token(request)
        if token is None:
            return await run_in_threadpool(current_user, request)
        digest = hashlib.sha256(token.encode()).hexdigest()
        now = time.monotonic()
        hit = self._users.get(digest)
        if hit is not None and hit[0] > now:
            request.scope.setdefault("state", {})["user"] = hit[1]
            return hit[1]
        user = await run_in_threadpool(current_user, request)
        self._users[digest] = (now + self.ttl_s, user)
        self._users.move_to_end(digest)
        while len(self._users) > self.size:
            self._users.popitem(last=False)
        return user


def make_endpoint(users: TokenUsers, handler: RoomHandler) -> Callable[[Request], Awaitable[Response]]:
    async def command(request: Request) -> Response:
        await check_csrf(request)
        # Who is asking before what they ask: a wrong token is refused unread. Without credentials
        # the only answer is the public lot.state (the service refuses the rest), within MAX_BODY.
        user = await users.user(request)
        if user is None and bearer_token(request) is not None:
            raise NotAuthenticated("Unknown or revoked API token.")
        message = await read_json(request, max_bytes=MAX_BODY)
        if message.get("type") not in ROOM_TYPES:
            raise ValidationFailed(f"type must be one of {', '.join(ROOM_TYPES)}.")
        service = ctx(request).auction
        if service is None:
            raise NotFound("The auction is not running.")
        reply = await handler(int(request.path_params["show_id"]), user, message)
        return JSONResponse(reply)

    return command


def routes(handler: RoomHandler) -> list[BaseRoute]:
    """``handler``: the service's messages with a refusal raised, behind the same limits as the room's."""
    endpoint = make_endpoint(TokenUsers(), handler)
    return [Route("/api/shows/{show_id:int}/auction", endpoint, methods=["POST"], name="auction_command")]
