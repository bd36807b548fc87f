"""Wire LL-HLS into the app: a stream per live show as a sink on its relay, and the /hls routes."""

from __future__ import annotations

import asyncio
import logging

from starlette.routing import BaseRoute

from liveshow.context import AppContext
from liveshow.hls.routes import routes
from liveshow.hls.stream import HlsStream

log = logging.getLogger(__name__)


class HlsService:
    """The HLS streams of the shows this process holds; the routes ask it."""

    def __init__(self, context: AppContext) -> None:
        self.context = context
        self.streams: dict[int, HlsStream] = {}
        self._lookups: set[asyncio.Task[None]] = set()

    def stream(self, show_id: int) -> HlsStream | None:
        return self.streams.get(show_id)

    async def elsewhere(self, show_id: int) -> str | None:
        media = self.context.media
        return await media.owners.owner_url(show_id) if media is not None else None

    def sink_for_show(self, show_id: int) -> HlsStream | None:
        media = self.context.media
        show = media.shows.get(show_id) if media is not None else None
        if show is None:
            return None
        relay = show.relay
        stream = HlsStream(
            show_id,
            audio="audio" in show.codecs,
            want_keyframe=relay.keyframes.want,
            on_close=self._closed,
        )
        self.streams[show_id] = stream
        task = asyncio.get_running_loop().create_task(self._look_up(stream), name=f"hls-show-{show_id}")
        self._lookups.add(task)
        task.add_done_callback(self._lookups.discard)
        return stream

    async def _look_up(self, stream: HlsStream) -> None:
        # Private shows are for their seller only (WHEP checks the viewer); caches cannot: no HLS.
        media = self.context.media
        assert media is not None
        try:
            show = await media.store.get(stream.show_id)
        except Exception:
            log.warning("HLS for show %s: show lookup failed; retrying", stream.show_id, exc_info=True)
            await asyncio.sleep(2)
            if not stream.closed:
                await self._look_up(stream)
            return
        stream.set_public(show is not None and show.visibility != "private")

    def _closed(self, stream: HlsStream) -> None:
        if self.streams.get(stream.show_id) is stream:
            del self.streams[stream.show_id]

    async def start(self) -> None:
        # At startup, so it works whichever of media/hls create_app installs first.
        media = self.context.media
        if media is not None and self.sink_for_show not in media.sink_factories:
            media.sink_factories.append(self.sink_for_show)

    async def stop(self) -> None:
        for task in list(self._lookups):
            task.cancel()


def install(context: AppContext) -> list[BaseRoute]:
    service = HlsService(context)
    context.on_startup.append(service.start)
    context.on_shutdown.append(service.stop)
    return routes(service)
