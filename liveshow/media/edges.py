"""This process as an edge: shows it relays to its own viewers without holding their publisher.

A viewer of a show held elsewhere is served here: the show is pulled once (``pull.UpstreamPull``)
from the origin or another edge (``edgetree.choose_upstream``, over the ``edgeregistry``), into a
local ``ShowRelay`` through its public ``push``, exactly as a publisher feeds the origin's relay, so
the viewers here are served as the origin's are (encoded passthrough). The relay's keyframe requests
become PLIs upstream.

A supervisor per show keeps it so: the announcement in the registry refreshed; the pull dropped when
the last viewer has been gone ``grace`` seconds; a new pull (make before break: the viewers stay
attached to the relay) when the pull failed, or stalled and its feeder is no longer where the show is
(the origin moved, the feeding edge died and ran out of the registry) or sends nothing while the
publisher is sending (``edgetree.keep_stalled_pull``); everything let go when the show ended or came to
be held here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from liveshow.media.edgeregistry import EdgeRegistry
from liveshow.media.edgetree import EdgeEntry, choose_upstream, keep_stalled_pull
from liveshow.media.owners import PUBLISHING
from liveshow.media.peers import PeerIce
from liveshow.media.pull import PullRefused, UpstreamPull
from liveshow.media.relay import ShowRelay
from liveshow.media.rtx import RtxCounts
from liveshow.media.show import ShowMedia
from liveshow.media.viewer import Viewer

log = logging.getLogger(__name__)

FIRST_FRAME_SECONDS = 5.0  # a new pull's ICE + DTLS on a busy machine, before it counts as stalled


@dataclass(frozen=True)
class EdgeSettings:
    own_url: str  # the URL other processes reach this one at (advertise_url)
    secret_key: str
    fanout: int  # edges per node, 0: every edge pulls from the origin
    grace: float  # seconds an edge keeps its pull with no viewer left
    stall: float  # seconds without a video frame before the feeder is looked at again
    ttl: float  # seconds an announcement lives in the registry unless refreshed


@dataclass(frozen=True)
class EdgePorts:
    """What the edges need from the rest of the media service, passed in (it points one way)."""

    # (the origin's base URL, publishing | reconnecting); None when no other process holds the show
    holder: Callable[[int], Awaitable[tuple[str, str] | None]]
    show_ended: Callable[[int], Awaitable[bool]]
    held_here: Callable[[int], bool]  # the show came to be held by this process (a republish here)
    drop_viewer: Callable[[ShowMedia, Viewer], Awaitable[None]]


@dataclass(eq=False)
class EdgeFeed:
    media: ShowMedia
    pull: UpstreamPull | None = None
    depth: int = 0
    touched: float = field(default_factory=time.monotonic)
    announced: float = 0.0
    pulls: int = 0  # pulls opened, the first included
    task: asyncio.Task[None] | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def upstream(self) -> str:
        return self.pull.url if self.pull is not None else ""

    def request_keyframe(self) -> None:
        if self.pull is not None:
            self.pull.request_keyframe()


class EdgeCollector(Collector):
    """The edges of this process for /metrics, read when scraped."""

    def __init__(self, edges: EdgeShows) -> None:
        self.edges = edges

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        feeds = list(self.edges.feeds.values())
        yield GaugeMetricFamily(
            "liveshow_edge_shows", "Shows this process relays as an edge", value=len(feeds)
        )
        yield GaugeMetricFamily(
            "liveshow_edge_viewers",
            "Viewers served here from edge pulls",
            value=sum(len(f.media.viewers) for f in feeds),
        )
        yield CounterMetricFamily(
            "liveshow_edge_pulls",
            "Pulls opened from a feeder (first pulls and re-pulls)",
            value=self.edges.pulls,
        )
        yield CounterMetricFamily(
            "liveshow_edge_video_frames",
            "Video frames received by the edge pulls now open",
            value=sum(f.pull.frames for f in feeds if f.pull is not None),
        )
        yield CounterMetricFamily(
            "liveshow_edge_keyframe_requests",
            "Keyframe requests (PLI) sent upstream by the edge pulls now open",
            value=sum(f.pull.keyframe_requests for f in feeds if f.pull is not None),
        )


class EdgeShows:
    def __init__(
        self, settings: EdgeSettings, ports: EdgePorts, registry: EdgeRegistry, ice: PeerIce, rtx: RtxCounts
    ) -> None:
        self.settings = settings
        self.ports = ports
        self.registry = registry
        self.ice = ice
        self.rtx = rtx
        self.feeds: dict[int, EdgeFeed] = {}
        self.pulls = 0  # every pull opened here, for /metrics

    def media(self, show_id: int) -> ShowMedia | None:
        feed = self.feeds.get(show_id)
        return feed.media if feed is not None else None

    async def media_for(self, show_id: int, origin: str | None) -> ShowMedia:
        """The show's local media, pulled from upstream first if this is its first viewer here
        (``origin``: where the show is held); PullRefused when no feeder answered. A viewer arriving
        while the first pull is being made waits for it (its answer needs the pull's codecs)."""
        feed = self.feeds.get(show_id)
        if feed is None:
            if origin is None:
                raise PullRefused("no process holds the show")
            holder: list[EdgeFeed] = []
            relay = ShowRelay(show_id, lambda: holder[0].request_keyframe(), self.rtx)
            feed = EdgeFeed(media=ShowMedia(show_id=show_id, relay=relay))
            holder.append(feed)
            self.feeds[show_id] = feed
            try:
                async with feed.lock:
                    await self._pull(feed, origin, ())
            except BaseException:
                self.feeds.pop(show_id, None)
                relay.close()
                raise
            feed.task = asyncio.create_task(self._supervise(feed), name=f"edge-{show_id}")
        else:
            async with feed.lock:  # a first pull in progress: its codecs are what the viewer needs
                pass
            if not feed.media.codecs or self.feeds.get(show_id) is not feed:
                raise PullRefused("the show's pull here has just ended")
        feed.touched = time.monotonic()
        return feed.media

    async def _pull(self, feed: EdgeFeed, origin: str, exclude: tuple[str, ...]) -> None:
        """Open a pull from the best feeder (the origin when an edge fails us), then let the old go."""
        show_id = feed.media.show_id
        try:
            edges = await self.registry.edges(show_id)
        except Exception:  # Redis away: the origin is always a feeder
            log.warning(
                "edge registry unreadable for show %s: pulling from the origin", show_id, exc_info=True
            )
            edges = []
        url, depth = choose_upstream(origin, edges, self.settings.own_url, self.settings.fanout, exclude)
        tried = [url] if url == origin else [url, origin]
        error: PullRefused | None = None
        for attempt in tried:
            pull = UpstreamPull(
                attempt,
                show_id,
                self.settings.secret_key,
                self.ice,
                feed.media.clock,
                feed.media.relay.to_sinks,
                feed.media.relay.forward,
            )
            try:
                codecs = await pull.open()
            except Exception as exc:
                await pull.close()
                error = exc if isinstance(exc, PullRefused) else PullRefused(f"{attempt}: {exc!r}")
                log.info("edge pull of show %s from %s refused: %s", show_id, attempt, exc)
                continue
            if attempt == origin:
                depth = 1
            old, feed.pull, feed.depth = feed.pull, pull, depth
            feed.pulls += 1
            self.pulls += 1
            if feed.media.codecs and codecs != feed.media.codecs:
                # The show changed codec upstream: the viewers here negotiated the old one; their
                # players reconnect and negotiate again.
                for viewer in list(feed.media.viewers.values()):
                    await self.ports.drop_viewer(feed.media, viewer)
            feed.media.codecs = codecs
            feed.media.state = "live"
            if old is not None:
                await old.close()
            try:
                await self._announce(feed)
            except Exception:  # the supervisor announces again within ttl/4
                log.warning("edge registry: could not announce show %s", show_id, exc_info=True)
            feed.media.relay.keyframes.want()
            log.info("edge: show %s pulled from %s (depth %s)", show_id, attempt, depth)
            return
        assert error is not None
        raise error

    async def _announce(self, feed: EdgeFeed) -> None:
        entry = EdgeEntry(self.settings.own_url, feed.upstream, feed.depth)
        await self.registry.announce(feed.media.show_id, entry)
        feed.announced = time.monotonic()

    def _flowing(self, feed: EdgeFeed, now: float) -> bool:
        pull = feed.pull
        if pull is None or pull.state in ("failed", "closed"):
            return False
        if pull.last_frame_at is None:
            return now - pull.opened_at < max(FIRST_FRAME_SECONDS, self.settings.stall)
        return now - pull.last_frame_at < self.settings.stall

    async def _keep(self, feed: EdgeFeed, origin: str, state: str, now: float) -> bool:
        """Whether a pull that delivers nothing now is kept (``edgetree.keep_stalled_pull``)."""
        pull = feed.pull
        if pull is None:
            return False
        listed = True
        if feed.upstream != origin:
            listed = any(e.url == feed.upstream for e in await self.registry.edges(feed.media.show_id))
        return keep_stalled_pull(
            connected=pull.state not in ("failed", "closed"),
            upstream=feed.upstream,
            origin=origin,
            upstream_listed=listed,
            origin_publishing=state == PUBLISHING,
            stalled_for=now - (pull.last_frame_at or pull.opened_at),
            stall=self.settings.stall,
        )

    async def _supervise(self, feed: EdgeFeed) -> None:
        show_id = feed.media.show_id
        interval = max(0.05, min(0.25, self.settings.stall / 4))
        while self.feeds.get(show_id) is feed:
            await asyncio.sleep(interval)
            now = time.monotonic()
            try:
                if feed.media.viewers:
                    feed.touched = now  # the grace runs from the last viewer seen
                elif now - feed.touched > self.settings.grace:
                    log.info("edge: show %s has no viewers here: dropping its pull", show_id)
                    await self.drop(show_id)
                    return
                if now - feed.announced > self.settings.ttl / 4:
                    await self._announce(feed)
                if self._flowing(feed, now):
                    continue
                held = await self.ports.holder(show_id)
                if held is None:
                    if self.ports.held_here(show_id) or await self.ports.show_ended(show_id):
                        await self.drop(show_id)
                        return
                    continue  # no process holds it right now (a dead origin's hold running out)
                origin, state = held
                if await self._keep(feed, origin, state, now):
                    continue
                failed = feed.upstream if feed.upstream != origin else ""
                async with feed.lock:
                    await self._pull(feed, origin, (failed,) if failed else ())
            except PullRefused:
                await asyncio.sleep(interval * 4)  # nobody answered: look again a little later
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("edge supervisor of show %s failed a round", show_id, exc_info=True)

    async def drop(self, show_id: int) -> None:
        """Let the show go here: its viewers (their players reconnect), its pull, its announcement."""
        feed = self.feeds.pop(show_id, None)
        if feed is None:
            return
        if feed.task is not None and feed.task is not asyncio.current_task():
            feed.task.cancel()
        with contextlib.suppress(Exception):  # first: no other edge picks this one as its feeder now
            await self.registry.withdraw(show_id, self.settings.own_url)
        for viewer in list(feed.media.viewers.values()):
            await self.ports.drop_viewer(feed.media, viewer)
        feed.media.relay.close()
        if feed.pull is not None:
            await feed.pull.close()

    async def stop(self) -> None:
        for show_id in list(self.feeds):
            await self.drop(show_id)
        await self.registry.close()
