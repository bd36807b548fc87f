"""Wire live video into the app: the media service on the context, its routes, its shutdown."""

from __future__ import annotations

from starlette.routing import BaseRoute

from liveshow.context import AppContext
from liveshow.media.service import MediaService
from liveshow.signaling import http


def install(context: AppContext) -> list[BaseRoute]:
    service = MediaService(context)
    context.media = service
    context.on_startup.append(service.start)
    context.on_shutdown.append(service.stop)
    return http.routes(context.settings)
