"""The media service: publishers in, encoded frames relayed to viewers, and the show's live lifecycle.

Lifecycle: a show goes ``live`` when its publisher connects (``Show.state``/``went_live_at`` stored);
when the publisher drops it is ``reconnecting`` and a republish within ``publisher_grace_seconds``
resumes the same show (same relay, same clock, same viewers); the seller ending it, or the grace running
out, makes it ``ended`` (``ended_at`` stored, every peer and sink closed). Each change is announced with
``show.state`` through the show log.

Extension points:

* ``sink_factories``: each is called once per show when it first goes live, with the show id; a returned
  MediaSink receives every EncodedFrame of the show and is closed when the show ends (the recorder).
* ``await open_source(show_id, codec_video, codec_audio) -> FrameSource``: a re-air pushes EncodedFrames
  into the show's relay as if it were the publisher (the show goes live); ``await source.close()``.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import secrets
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from liveshow.errors import Forbidden, NotAuthenticated, NotFound
from liveshow.media import edgeauth
from liveshow.media.admission import Admission
from liveshow.media.edgeregistry import make_edges
from liveshow.media.edges import EdgeCollector, EdgePorts, EdgeSettings, EdgeShows
from liveshow.media.errors import (
    NoMediaPort,
    NotLive,
    PublisherExists,
    ServedElsewhere,
    ShowEnded,
    UnsupportedCodec,
)
from liveshow.media.frames import MediaSink
from liveshow.media.headroom import HeadroomLimits
from liveshow.media.icenet import IceNetwork
from liveshow.media.iceservers import IceServerSettings
from liveshow.media.layers import LayerCounts
from liveshow.media.loadrecord import ProcessLoad, make_load_records, with_headroom
from liveshow.media.owners import PUBLISHING, RECONNECTING, make_owners
from liveshow.media.peers import PeerIce
from liveshow.media.publisher import Publisher
from liveshow.media.pull import PullRefused
from liveshow.media.relay import ShowRelay
from liveshow.media.rtx import RtxCounts
from liveshow.media.show import ShowMedia
from liveshow.media.source import FrameSource
from liveshow.media.store import ShowStore
from liveshow.media.udpmux import UdpMux
from liveshow.media.viewer import CodecMismatch, Viewer
from liveshow.shows.models import Show

if TYPE_CHECKING:
    from liveshow.context import AppContext

log = logging.getLogger(__name__)

Source = Publisher | FrameSource
LOAD_REPORT_S = 1.0
REDIRECTED = "redirected"  # query parameter of a WHEP URL a full process sent a viewer to


class RelayCollector(Collector):
    """The relays' NACK answers and temporal layer choices as Prometheus counters, read when /metrics
    is scraped (the relays only add to plain integers: no metric call on the media path)."""

    def __init__(self, counts: RtxCounts, layers: LayerCounts) -> None:
        self.counts = counts
        self.layers = layers

    def collect(self) -> Iterator[CounterMetricFamily]:
        counts = self.counts
        yield CounterMetricFamily(
            "liveshow_rtx_nacked_packets", "Packets viewers reported lost (NACK)", value=counts.nacked
        )
        yield CounterMetricFamily(
            "liveshow_rtx_packets", "Packets resent to viewers from the show's cache", value=counts.resent
        )
        yield CounterMetricFamily(
            "liveshow_rtx_missing_packets",
            "Packets viewers asked for that the cache no longer held (a keyframe was requested)",
            value=counts.missing,
        )
        yield CounterMetricFamily(
            "liveshow_rtx_refused_packets",
            "Packets viewers asked for past their resend allowance (not resent)",
            value=counts.refused,
        )
        yield CounterMetricFamily(
            "liveshow_rtx_pending_packets",
            "Packets viewers asked for that the publisher's link lost too (sent when its resend came)",
            value=counts.pending,
        )
        yield CounterMetricFamily(
            "liveshow_rtx_repeated_packets",
            "Packets asked for again within a round trip of their resend (not resent: still on the way)",
            value=counts.repeated,
        )
        yield CounterMetricFamily(
            "liveshow_relay_layer_dropped_packets",
            "Video packets not sent to a viewer because their temporal layer was above the viewer's",
            value=self.layers.dropped,
        )
        switches = CounterMetricFamily(
            "liveshow_relay_layer_switches",
            "Changes of a viewer's temporal layer, down (its link lost packets or backed up) or up",
            labels=["direction"],
        )
        switches.add_metric(["down"], self.layers.down)
        switches.add_metric(["up"], self.layers.up)
        yield switches


class AdmissionCollector(Collector):
    """The process's headroom as Prometheus figures, read when /metrics is scraped."""

    def __init__(self, admission: Admission) -> None:
        self.admission = admission

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        admission = self.admission
        refused = CounterMetricFamily(
            "liveshow_whep_refused",
            "New viewers refused for lack of headroom (503), by cause",
            labels=["cause"],
        )
        for cause, count in sorted(admission.refused.items()):
            refused.add_metric([cause], count)
        yield refused
        yield GaugeMetricFamily(
            "liveshow_headroom_cpu",
            "This process's smoothed CPU, in cores (what admission compares)",
            value=admission.cpu,
        )
        yield GaugeMetricFamily(
            "liveshow_headroom_loop_lag_seconds",
            "The event loop's smoothed lag (what admission compares)",
            value=admission.lag_s,
        )
        yield GaugeMetricFamily(
            "liveshow_headroom_admitting",
            "1 while this process takes new viewers, 0 while it refuses them",
            value=1.0 if admission.verdict.admit else 0.0,
        )
        yield GaugeMetricFamily(
            "liveshow_viewers_joining", "Viewer joins (ICE + DTLS) in progress", value=admission.joining()
        )


class MediaService:
    def __init__(self, context: AppContext) -> None:
        self.context = context
        self.settings = context.settings
        self.store = ShowStore(context.db)
        self.sink_factories: list[Callable[[int], MediaSink | None]] = []
        self.shows: dict[int, ShowMedia] = {}
        self.owners = make_owners(
            self.settings.bus_url,
            self.settings.bus_prefix,
            self.settings.advertised_url,
            self.settings.media_owner_ttl_seconds,
        )
        self._keeper: asyncio.Task[None] | None = None
        self._reporter: asyncio.Task[None] | None = None
        settings = self.settings
        # New viewers only (never the publisher, never a viewer already watching): see headroom.py.
        self.admission = Admission(
            HeadroomLimits(
                max_viewers=settings.max_viewers_per_process,
                cpu_ceiling=settings.cpu_ceiling,
                lag_ceiling_s=settings.loop_lag_ceiling_ms / 1000,
            ),
            settings.max_joining_viewers,
            settings.join_wait_seconds,
            settings.join_timeout_seconds,
        )
        context.metrics.registry.register(AdmissionCollector(self.admission))
        self.loads = make_load_records(
            settings.bus_url, settings.bus_prefix, settings.load_record_ttl_seconds
        )
        self.rtx = RtxCounts()  # every show's relay adds to it
        self.layer_counts = LayerCounts()  # and to this
        context.metrics.registry.register(RelayCollector(self.rtx, self.layer_counts))
        # Checked here, at startup: a misconfigured TURN server fails the start, not every viewer.
        self.ice_servers = IceServerSettings.from_urls(
            self.settings.ice_servers,
            self.settings.turn_username,
            self.settings.turn_password,
            self.settings.turn_secret,
            self.settings.turn_ttl_seconds,
        )
        network = IceNetwork.from_settings(
            self.settings.ice_interfaces, self.settings.ice_announced_address, self.settings.ice_port_range
        )
        # The server's own peers ask STUN for their public address only when they are not told it;
        # TURN is for clients (a server that needs a relay itself is misplaced).
        stun = () if network.announced_address else self.ice_servers.stun_urls[:1]
        # One port for the whole process: its peers share it (a socket per local address, made on first use).
        mux = UdpMux(network.port_min) if network.port_min and network.port_min == network.port_max else None
        self.peer_ice = PeerIce(network, stun, mux)
        # Whether this process may take one more viewer; False: WHEP is redirected to the origin.
        self.has_headroom: Callable[[], bool] = lambda: self.admission.check(self.total_viewers()).admit
        self.edges = EdgeShows(
            EdgeSettings(
                own_url=self.settings.advertised_url,
                secret_key=self.settings.secret_key,
                fanout=self.settings.media_edge_fanout,
                grace=self.settings.media_edge_grace_seconds,
                stall=self.settings.media_edge_stall_seconds,
                ttl=self.settings.media_owner_ttl_seconds,
            ),
            EdgePorts(
                holder=self.owners.holder,
                show_ended=self._ended_in_store,
                held_here=lambda show_id: show_id in self.shows,
                drop_viewer=self._drop_viewer,
            ),
            make_edges(
                self.settings.bus_url, self.settings.bus_prefix, self.settings.media_owner_ttl_seconds
            ),
            self.peer_ice,
            self.rtx,
        )
        context.metrics.registry.register(EdgeCollector(self.edges))

    # ------------------------------------------------------------ queries

    def viewer_count(self, show_id: int) -> int:
        media = self._served(show_id)
        return len(media.relay.outputs) if media else 0

    def _served(self, show_id: int) -> ShowMedia | None:
        """The show's media here: held (its publisher is here) or pulled as an edge."""
        return self.shows.get(show_id) or self.edges.media(show_id)

    async def _ended_in_store(self, show_id: int) -> bool:
        show = await self.store.get(show_id)
        return show is None or show.state == "ended"

    def pull_allowed(self, show_id: int, token: str) -> bool:
        """Whether a server-to-server pull carries this cluster's token for the show (edgeauth)."""
        return edgeauth.valid_pull_token(self.settings.secret_key, show_id, token)

    def total_viewers(self) -> int:
        """Viewers of every show on this process, joined or joining (answered, not yet connected)."""
        return sum(len(media.viewers) for media in self._everywhere())

    def _everywhere(self) -> list[ShowMedia]:
        """Every show's media on this process: those it holds and those it relays as an edge."""
        return [*self.shows.values(), *(f.media for f in self.edges.feeds.values())]

    def load(self) -> ProcessLoad:
        """This process's load record now (what a newcomer would be told, and the shows fed here)."""
        verdict = self.admission.check(self.total_viewers())
        admit = verdict.admit and self.has_headroom()  # what room_elsewhere on this process goes by
        return ProcessLoad(
            process=self.owners.token,
            url=self.settings.advertised_url,
            viewers=self.total_viewers(),
            admit=admit,
            reason=verdict.reason if not verdict.admit else ("ok" if admit else "no headroom"),
            # held here (its publisher) or relayed here (an edge of it): where its viewers may come
            shows=tuple(
                sorted(
                    {m.show_id for m in self.shows.values() if m.source is not None}
                    | {f.media.show_id for f in self.edges.feeds.values()}
                )
            ),
            updated_at=time.time(),
        )

    def state(self, show_id: int) -> str | None:
        media = self.shows.get(show_id)
        return media.state if media else None

    async def require_show(self, show_id: int) -> Show:
        show = await self.store.get(show_id)
        if show is None:
            raise NotFound("No such show.")
        return show

    async def check_stream_key(self, show_id: int, stream_key: str | None) -> Show:
        """The show, if ``stream_key`` is its key; WHIP asks this before it reads the offer."""
        show = await self.require_show(show_id)
        if not stream_key or not hmac.compare_digest(show.stream_key.encode(), stream_key.encode()):
            raise NotAuthenticated("Wrong stream key.")
        return show

    def _media(self, show: Show) -> ShowMedia:
        assert show.id is not None
        media = self.shows.get(show.id)
        if media is None:
            holder: list[ShowMedia] = []
            relay = ShowRelay(
                show.id,
                lambda: holder[0].request_keyframe(),
                self.rtx,
                resend=self.settings.relay_rtx,
                layers=self.settings.relay_layers,
                layer_counts=self.layer_counts,
            )
            media = ShowMedia(show_id=show.id, relay=relay)
            holder.append(media)
            self.shows[show.id] = media
        return media

    # ------------------------------------------------------------ publishing

    async def publish(
        self, show_id: int, stream_key: str | None, offer: str, kinds: list[str]
    ) -> tuple[str, str]:
        show = await self.check_stream_key(show_id, stream_key)
        if show.state == "ended":
            raise ShowEnded("This show has ended; create a new show to go live again.")
        media = self._media(show)
        async with media.lock:
            if media.source is not None:
                raise PublisherExists("This show already has a publisher.")
            if await self.owners.claim(show_id, PUBLISHING, takeover=True) is not None:
                raise PublisherExists("This show already has a publisher (on another server).")
            media.owned = True
            publisher = Publisher(
                secrets.token_urlsafe(24),
                media.clock,
                self.peer_ice,
                media.relay.to_sinks,
                self._on_publisher,
                media.relay.forward,
            )
            media.source = publisher
            try:
                answer = await publisher.accept(offer, kinds)
            except Exception as exc:
                media.source = None
                await publisher.close()
                await self._hold(media)
                if isinstance(exc, NoMediaPort):
                    raise
                raise UnsupportedCodec(f"Cannot receive this offer: {exc}") from exc
        log.info("publisher %s offered for show %s (%s)", publisher.session_id[:6], show_id, publisher.codecs)
        return publisher.session_id, answer

    async def _on_publisher(self, publisher: Publisher, state: str) -> None:
        media = next((m for m in self.shows.values() if m.source is publisher), None)
        if media is None:
            return
        if state == "connected":
            await self._attach(media, publisher)
        elif state in ("failed", "closed"):
            await self._detach(media, publisher, end_show=False)

    async def _attach(self, media: ShowMedia, source: Source) -> None:
        """The source is sending: the show is live (again)."""
        async with media.lock:
            if media.source is not source or media.state == "ended":
                return
            if media.grace is not None:
                media.grace.cancel()
                media.grace = None
            changed = media.codecs != source.codecs and bool(media.codecs)
            media.codecs = dict(source.codecs)
            media.clock.start()
            if not media.sinks_opened:
                media.sinks_opened = True
                for factory in self.sink_factories:
                    try:
                        sink = factory(media.show_id)
                    except Exception:
                        log.exception("sink factory failed for show %s", media.show_id)
                        continue
                    if sink is not None:
                        media.relay.sinks.append(sink)
            if changed:
                # Viewers negotiated the old codec: close them, their players reconnect.
                for viewer in list(media.viewers.values()):
                    if viewer.codecs.get("video") != media.codecs.get("video"):
                        await self._drop_viewer(media, viewer)
            if media.state != "live":
                # Stored first: whoever sees the show live here must find it live in the database too.
                await self.store.set_state(media.show_id, "live")
                media.state = "live"
                await self.context.showlog.publish(media.show_id, "show.state", {"state": "live"})
                log.info("show %s live", media.show_id)
            media.relay.keyframes.want()

    async def _detach(self, media: ShowMedia, source: Source, end_show: bool) -> None:
        async with media.lock:
            if media.source is not source:
                return
            media.source = None
        if isinstance(source, Publisher):
            await source.close()
        if end_show:
            await self.end_show(media.show_id)
            return
        let_go = False
        async with media.lock:
            if media.state == "live" and media.source is None:
                media.state = "reconnecting"
                let_go = not await self._hold(media)
                if not let_go:
                    await self.context.showlog.publish(media.show_id, "show.state", {"state": "reconnecting"})
                    log.info("show %s reconnecting", media.show_id)
                    media.grace = asyncio.create_task(self._grace(media), name=f"grace-{media.show_id}")
        if let_go:
            await self.lost(media)

    async def _grace(self, media: ShowMedia) -> None:
        await asyncio.sleep(self.settings.publisher_grace_seconds)
        media.grace = None  # so end_show does not cancel the task running it
        if not await self._hold(media):
            await self.lost(media)  # a republish on another process took the show over
            return
        log.info("show %s: publisher did not come back", media.show_id)
        await self.end_show(media.show_id)

    async def delete_publisher(self, show_id: int, session_id: str) -> None:
        media = self.shows.get(show_id)
        source = media.source if media else None
        if media is None or source is None or not hmac.compare_digest(source.session_id, session_id):
            raise NotFound("No such publishing session.")
        await self._detach(media, source, end_show=False)

    def publisher(self, show_id: int, session_id: str) -> Publisher:
        media = self.shows.get(show_id)
        source = media.source if media else None
        if not isinstance(source, Publisher) or not hmac.compare_digest(source.session_id, session_id):
            raise NotFound("No such publishing session.")
        return source

    async def open_source(
        self, show_id: int, codec_video: str | None, codec_audio: str | None
    ) -> FrameSource:
        show = await self.require_show(show_id)
        if show.state == "ended":
            raise ShowEnded("This show has ended.")
        media = self._media(show)
        codecs = {k: v for k, v in (("video", codec_video), ("audio", codec_audio)) if v}
        async with media.lock:
            if media.source is not None:
                raise PublisherExists("This show already has a publisher.")
            if await self.owners.claim(show_id, PUBLISHING, takeover=True) is not None:
                raise PublisherExists("This show already has a publisher (on another server).")
            media.owned = True
            source = FrameSource(show_id, media.relay, codecs, lambda s, end: self._detach(media, s, end))
            media.source = source
        await self._attach(media, source)
        return source

    # ------------------------------------------------------------ ending

    async def end_by_seller(self, show_id: int, user_id: int) -> None:
        show = await self.require_show(show_id)
        if show.seller_id != user_id:
            raise Forbidden("Only the show's seller can end it.")
        await self.end_show(show_id)

    async def end_show(self, show_id: int) -> None:
        media = self.shows.get(show_id)
        if media is None:
            show = await self.store.get(show_id)
            if show is None or show.state == "ended":
                return
            media = self._media(show)
        async with media.lock:
            if media.state == "ended":
                return
            media.state = "ended"
            if media.grace is not None:
                media.grace.cancel()
                media.grace = None
            source, media.source = media.source, None
        await self._release(media, source)
        self.shows.pop(show_id, None)
        # Tells a process holding the publisher elsewhere to let go (see _keep), and frees the key.
        await self.owners.mark_ended(show_id)
        await self.store.set_state(show_id, "ended")
        await self.context.showlog.publish(show_id, "show.state", {"state": "ended"})
        log.info("show %s ended", show_id)

    # ------------------------------------------------------------ watching

    async def room_elsewhere(self, show_id: int) -> str | None:
        """Where a new viewer of the show should go when this process has no headroom: the WHEP URL
        on the least loaded process whose load record says it takes one (it serves the show as an
        edge); None when this process has headroom, or no other has (the caller then refuses, 503).
        The URL carries ``redirected=1``: a process that receives it refuses rather than sending the
        viewer on again, so two processes with stale records never bounce a viewer between them."""
        if self.has_headroom():
            return None
        try:
            loads = await self.loads.live()
        except Exception:  # Redis away: no routing; refusing with Retry-After is the safe answer
            log.warning("load records unreadable; refusing instead of redirecting", exc_info=True)
            return None
        ttl = self.settings.load_record_ttl_seconds
        others = with_headroom(loads, time.time(), ttl, exclude=self.owners.token)
        if not others:
            return None
        return f"{others[0].url.rstrip('/')}/whep/{show_id}?{REDIRECTED}=1"

    def refuse_if_full(self, show_id: int) -> None:
        """Asked before a WHEP offer is read: a process without headroom for a show it serves (holds
        or relays) answers 503 at the cost of a header check. A show served elsewhere goes on to
        ``watch``, which redirects it when this process has no headroom."""
        if self._served(show_id) is not None:
            self.admission.refuse_if_full(self.total_viewers)

    async def watch(
        self, show_id: int, offer: str, kinds: list[str], user_id: int | None, pull: bool = False
    ) -> tuple[str, str]:
        """A viewer's session. ``pull``: an edge's authenticated pull (edgeauth), which may watch a
        private show (the edge checked its own viewer here, exactly as below) and is served only from
        media this process already has: a process that neither holds nor relays the show refuses it,
        and the edge picks another feeder (no chains through stale registry entries)."""
        show = await self.require_show(show_id)
        if show.visibility == "private" and user_id != show.seller_id and not pull:
            raise NotFound("No such show.")
        if show.state == "ended":
            raise ShowEnded("This show has ended.")
        media = self.shows.get(show_id)
        if media is None or media.source is None:
            elsewhere = await self.owners.owner_url(show_id)
            relayed = self.edges.media(show_id) is not None  # an edge of the show here already
            if elsewhere is not None and not relayed and (pull or not self.has_headroom()):
                raise ServedElsewhere(f"{elsewhere}/whep/{show_id}")
            if relayed or elsewhere is not None:
                try:
                    media = await self.edges.media_for(show_id, elsewhere)
                except PullRefused as exc:
                    if elsewhere is None:
                        raise NotLive("The show is between servers; try again shortly.") from exc
                    log.warning("show %s: no pull from %s (%s): redirecting", show_id, elsewhere, exc)
                    raise ServedElsewhere(f"{elsewhere}/whep/{show_id}") from exc
        if media is None or not media.codecs:
            raise NotLive("The show has not started yet.")
        # A slot among the joins in progress, or 503 + Retry-After when this process has no headroom.
        ticket = await self.admission.enter(self.total_viewers)
        session_id: str | None = None
        try:
            session_id, answer = await self._answer_viewer(media, offer, kinds, pull)
        finally:
            self.admission.answered(ticket, session_id)
        return session_id, answer

    async def _answer_viewer(
        self, media: ShowMedia, offer: str, kinds: list[str], pull: bool
    ) -> tuple[str, str]:
        viewer = Viewer(
            secrets.token_urlsafe(24),
            self.peer_ice,
            self._on_viewer,
            media.relay.keyframes.want,
            media.relay.resend,
            media.relay.report,
            media.relay.estimate,
        )
        viewer.every_layer = pull
        try:
            answer = await viewer.accept(offer, kinds, media.codecs, {})
        except NoMediaPort:
            await viewer.close()
            raise
        except CodecMismatch as exc:
            await viewer.close()
            raise UnsupportedCodec(
                f"This show is sent as {media.codecs.get('video', '-')}/{media.codecs.get('audio', '-')}"
                " and the offer accepts neither."
            ) from exc
        if media.state == "ended":
            await viewer.close()
            raise ShowEnded("This show has ended.")
        media.viewers[viewer.session_id] = viewer
        return viewer.session_id, answer

    async def _on_viewer(self, viewer: Viewer, state: str) -> None:
        everywhere = [*self.shows.values(), *(f.media for f in self.edges.feeds.values())]
        media = next((m for m in everywhere if viewer.session_id in m.viewers), None)
        if media is None:
            return
        if state in ("connected", "failed", "closed"):
            self.admission.leave(viewer.session_id)  # its join is over: the slot goes to the next
        if state == "connected":
            output = viewer.bind()
            if output is not None:
                media.relay.add_output(viewer.session_id, output, adapt=not viewer.every_layer)
        elif state in ("failed", "closed"):
            await self._drop_viewer(media, viewer)

    async def _drop_viewer(self, media: ShowMedia, viewer: Viewer) -> None:
        self.admission.leave(viewer.session_id)
        media.viewers.pop(viewer.session_id, None)
        media.relay.remove_output(viewer.session_id)
        await viewer.close()

    def viewer(self, show_id: int, session_id: str) -> Viewer:
        media = self._served(show_id)
        viewer = media.viewers.get(session_id) if media else None
        if viewer is None:
            raise NotFound("No such viewing session.")
        return viewer

    async def delete_viewer(self, show_id: int, session_id: str) -> None:
        viewer = self.viewer(show_id, session_id)
        media = self._served(show_id)
        assert media is not None
        await self._drop_viewer(media, viewer)

    # ------------------------------------------------------------ holding shows across processes

    async def _hold(self, media: ShowMedia) -> bool:
        """Refresh (or drop) this process's hold on the show; False when another process has it."""
        state = PUBLISHING if media.source is not None else RECONNECTING
        if media.source is None and media.state != "reconnecting":
            if media.owned:
                media.owned = False
                await self.owners.release(media.show_id)
            return True
        if await self.owners.update(media.show_id, state):
            media.owned = True
            return True
        return False  # the caller lets go with lost(), outside the media lock

    async def lost(self, media: ShowMedia) -> None:
        """Another process took the show over (a republish there) or ended it: let go here, quietly;
        local viewers' players reconnect and are redirected to the new holder."""
        async with media.lock:
            if self.shows.get(media.show_id) is not media:
                return
            self.shows.pop(media.show_id, None)
            media.owned = False
            if media.grace is not None and media.grace is not asyncio.current_task():
                media.grace.cancel()
            media.grace = None
            source, media.source = media.source, None
        log.info("show %s is held by another process now: letting go", media.show_id)
        await self._release(media, source)

    async def _release(self, media: ShowMedia, source: Source | None) -> None:
        """Stop what a show held here: the source taken off it under its lock, its viewers, its relay."""
        if isinstance(source, Publisher):
            await source.close()
        elif source is not None:
            source.closed = True
        for viewer in list(media.viewers.values()):
            await self._drop_viewer(media, viewer)
        media.relay.close()

    async def recover(self) -> None:
        """Shows left ``live`` with no publisher in any process (a restart, a crashed process): the
        grace period starts now, as if their publisher had just dropped."""
        for show_id in await self.store.live_show_ids():
            if show_id in self.shows:
                continue
            if await self.owners.claim(show_id, RECONNECTING, takeover=False) is not None:
                continue  # held by a running process
            show = await self.store.get(show_id)
            if show is None or show.state != "live":
                await self.owners.release(show_id)
                continue
            media = self._media(show)
            async with media.lock:
                media.owned = True
                media.state = "reconnecting"
                media.grace = asyncio.create_task(self._grace(media), name=f"grace-{show_id}")
            await self.context.showlog.publish(show_id, "show.state", {"state": "reconnecting"})
            log.info("show %s was left live without a publisher: reconnecting", show_id)

    async def _keep(self) -> None:
        interval = self.settings.media_owner_ttl_seconds / 4
        rounds = 0
        while True:
            await asyncio.sleep(interval)
            rounds += 1
            for media in list(self.shows.values()):
                try:
                    if not await self._hold(media):
                        await self.lost(media)
                except Exception:
                    log.warning("could not refresh the hold on show %s", media.show_id, exc_info=True)
            if rounds % 4 == 0:  # every TTL: a process holding shows may have died since the last look
                try:
                    await self.recover()
                except Exception:
                    log.warning("recovery sweep failed", exc_info=True)

    # ------------------------------------------------------------ startup and shutdown

    async def _report(self) -> None:
        """Publish this process's load record every LOAD_REPORT_S (well inside its TTL)."""
        while True:
            try:
                await self.loads.publish(self.load())
            except Exception:
                log.warning("could not publish this process's load record", exc_info=True)
            await asyncio.sleep(LOAD_REPORT_S)

    async def start(self) -> None:
        await self.owners.start()
        await self.loads.start()
        await self.recover()
        self.admission.start()
        self._keeper = asyncio.create_task(self._keep(), name="media-owner-keeper")
        self._reporter = asyncio.create_task(self._report(), name="media-load-record")

    async def stop(self) -> None:
        """App shutdown: close every peer and sink; shows stay live in the database for a republish
        (here or on another process), whose grace period starts when a process recovers them."""
        if self._keeper is not None:
            self._keeper.cancel()
            self._keeper = None
        if self._reporter is not None:
            self._reporter.cancel()
            self._reporter = None
        self.admission.stop()
        try:
            await self.loads.withdraw(self.owners.token)
        except Exception:
            log.warning("could not withdraw this process's load record", exc_info=True)
        await self.edges.stop()
        for media in list(self.shows.values()):
            if media.owned:
                try:
                    await self.owners.release(media.show_id)
                except Exception:
                    log.warning("could not release show %s", media.show_id, exc_info=True)
            if media.grace is not None:
                media.grace.cancel()
            source, media.source = media.source, None
            if isinstance(source, Publisher):
                await source.close()
            for viewer in list(media.viewers.values()):
                await self._drop_viewer(media, viewer)
            media.relay.close()
        self.shows.clear()
        if self.peer_ice.mux is not None:
            self.peer_ice.mux.close()
        await self.loads.stop()
        await self.owners.stop()
