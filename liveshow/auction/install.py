"""Wire the auction into the app: the service, its room handlers and chat hook, the /orders pages."""

from __future__ import annotations

from typing import Any

from starlette.routing import BaseRoute

from liveshow.accounts.models import User
from liveshow.auction import api
from liveshow.auction.install_types import ROOM_TYPES
from liveshow.auction.lot_bids import ranked_bids
from liveshow.auction.service import AuctionService
from liveshow.context import AppContext, RoomHandler
from liveshow.orders import web as orders_web


def install(context: AppContext) -> list[BaseRoute]:
    service = AuctionService(context.settings, context.db, context.showlog, metrics=context.metrics)
    context.auction = service
    # A room frame's refusals come back as error frames (the room sends them as they are); the HTTP
    # twin's are raised, for the error handler's status codes. Both count against the same limits.
    handler = bid_limited(service.answer, context)
    for kind in ROOM_TYPES:
        context.room_handlers[kind] = handler
    context.chat_hooks.append(service.on_chat)
    context.on_startup.append(service.start)
    context.on_shutdown.append(service.stop)
    return [*api.routes(bid_limited(service.on_message, context)), *orders_web.routes(ranked_bids)]


# Bids and claims are what a bot would spam: counted per account and show (the room and the HTTP API
# both come through room_handlers), across processes on Redis.
LIMITED_TYPES = frozenset({"bid", "claim"})


def bid_limited(handler: RoomHandler, context: AppContext) -> RoomHandler:
    limits = context.limits
    assert limits is not None
    if not limits.counts("bid.account"):  # read once: the rules are fixed at startup
        return handler  # off: not even a layer of coroutine per bid

    async def limited(show_id: int, user: User | None, message: dict[str, Any]) -> dict[str, Any] | None:
        if user is not None and message.get("type") in LIMITED_TYPES:
            await limits.check("bid.account", f"{show_id}:{user.id}")
        return await handler(show_id, user, message)

    return limited
