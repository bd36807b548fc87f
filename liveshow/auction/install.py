"""Wire the auction into the app: the service, its room handlers and chat hook, the /orders pages."""

from __future__ import annotations

from starlette.routing import BaseRoute

from liveshow.auction import api
from liveshow.auction.install_types import ROOM_TYPES
from liveshow.auction.service import AuctionService
from liveshow.context import AppContext
from liveshow.orders import web as orders_web


def install(context: AppContext) -> list[BaseRoute]:
    service = AuctionService(context.settings, context.db, context.showlog, metrics=context.metrics)
    context.auction = service
    for kind in ROOM_TYPES:
        context.room_handlers[kind] = service.on_message
    context.chat_hooks.append(service.on_chat)
    context.on_startup.append(service.start)
    context.on_shutdown.append(service.stop)
    return [*api.routes(), *orders_web.routes()]
