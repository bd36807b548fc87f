"""Wire recording and replay into the app: the recorder as the relay's sink, the replay routes, re-airs."""

from __future__ import annotations

from starlette.routing import BaseRoute

from liveshow.context import AppContext
from liveshow.replay.reair import ReAirService
from liveshow.replay.routes import routes
from liveshow.replay.service import RecordingService


def install(context: AppContext) -> list[BaseRoute]:
    def request_keyframe(show_id: int) -> None:
        media = getattr(context, "media", None)
        show = media.shows.get(show_id) if media is not None else None
        if show is not None:
            show.request_keyframe()

    service = RecordingService(context.db, context.settings, keyframe_request=request_keyframe)
    reair = ReAirService(context, service)

    async def start() -> None:
        # Registered at startup, so it works whichever of media/replay create_app installs first.
        media = getattr(context, "media", None)
        if media is not None and service.sink_for_show not in media.sink_factories:
            media.sink_factories.append(service.sink_for_show)
        await service.start()
        await reair.start()

    async def stop() -> None:
        await reair.stop()
        await service.stop()

    context.on_startup.append(start)
    context.on_shutdown.append(stop)
    context.recordings = service
    return routes(service, reair)
