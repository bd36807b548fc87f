"""RoomService: the open rooms of this process, how a socket joins one (history or snapshot), and the
periodic work of a room (reaction bursts, presence heartbeats and the throttled viewer count)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.websockets import WebSocket

from liveshow.accounts.models import User
from liveshow.bus import Event
from liveshow.chat import messages
from liveshow.chat.moderation import ModState, load_state
from liveshow.chat.presence import HEARTBEAT_SECONDS, Presence
from liveshow.chat.room import Connection, Room
from liveshow.clock import wall_ms
from liveshow.db import loop_connection
from liveshow.errors import NotFound
from liveshow.showlog import show_topic
from liveshow.shows.models import Show

if TYPE_CHECKING:
    from liveshow.context import AppContext

log = logging.getLogger(__name__)

# Another feature's part of the snapshot a (re)joining client gets: called with the show id.
SnapshotProvider = Callable[[int], Awaitable[dict[str, Any]]]

HISTORY_LIMIT = 1000  # a longer gap is answered with a snapshot
REACTION_KINDS = ("heart", "fire", "clap", "laugh", "wow")


class RoomService:
    def __init__(
        self,
        context: AppContext,
        presence: Presence,
        tick: float = 0.05,
        max_tick: float = 0.06,
        reaction_tick: float = 0.25,
        presence_interval: float = 2.0,
    ) -> None:
        self.context = context
        self.chat_db = loop_connection(context.db)
        self.presence = presence
        self.tick = tick
        self.max_tick = max_tick
        self.reaction_tick = reaction_tick
        self.presence_interval = presence_interval
        self.rooms: dict[int, Room] = {}
        self.snapshot_providers: list[SnapshotProvider] = []
        self.process_id = secrets.token_hex(6)
        assert context.limits is not None
        # Chat, reactions and socket connects are counted here (and across processes on Redis).
        self.limits = context.limits
        self._ids = itertools.count(1)
        self._lock = asyncio.Lock()
        self._janitor: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        await self.presence.start()
        self._janitor = asyncio.create_task(self._forget_idle_forever(), name="room-janitor")

    async def stop(self) -> None:
        if self._janitor is not None:
            self._janitor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._janitor
        for room in list(self.rooms.values()):
            for conn in list(room.connections):
                conn.closed = True
                if conn.writer is not None:
                    conn.writer.cancel()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(conn.websocket.close(1001, "server going away"), 2)
            await room.stop()
        if self.chat_db is not None:
            await self.chat_db.close()
        self.rooms.clear()
        await self.presence.close()

    async def _forget_idle_forever(self) -> None:
        while True:
            await asyncio.sleep(60)
            self.limits.forget_idle()

    # ------------------------------------------------------------ rooms

    async def publish(self, show_id: int, type: str, data: dict[str, Any], durable: bool = False) -> Event:
        return await self.context.showlog.publish(show_id, type, data, durable=durable)

    async def room_for(self, show_id: int) -> Room:
        room = self.rooms.get(show_id)
        if room is not None:
            return room
        async with self._lock:
            room = self.rooms.get(show_id)
            if room is None:
                room = await self._open(show_id)
                self.rooms[show_id] = room
            return room

    async def _open(self, show_id: int) -> Room:
        topic = show_topic(show_id)
        # Subscribe before reading the DB: a change committed after the read arrives as an event.
        start = await self.context.bus.last_seq(topic)
        sub = self.context.bus.subscribe(topic, after_seq=start)
        try:
            state = await run_in_threadpool(self._load, show_id)
        except BaseException:
            sub.close()
            raise
        showlog = self.context.showlog
        room = Room(
            show_id,
            state,
            self.tick,
            on_drop=self._dropped,
            max_tick=self.max_tick,
            on_event=lambda event: showlog.witness(show_id, event),
        )
        room.subscription = sub
        room.start(sub, [lambda: self._reactions_forever(room), lambda: self._presence_forever(room)])
        log.info("room %s opened", show_id)
        return room

    def _load(self, show_id: int) -> ModState:
        with self.context.db.session() as session:
            show = session.get(Show, show_id)
            if show is None:
                raise NotFound("No such show.")
            return load_state(session, show)

    async def _close_if_empty(self, room: Room) -> None:
        if room.connections or self.rooms.get(room.show_id) is not room:
            return
        del self.rooms[room.show_id]
        if room.subscription is not None:
            room.subscription.close()
        await room.stop()
        log.info("room %s closed", room.show_id)

    # ------------------------------------------------------------ sockets

    def new_connection(self, show_id: int, websocket: WebSocket, user: User | None) -> Connection:
        key = f"{self.process_id}:{next(self._ids)}"
        return Connection(websocket=websocket, user=user, key=key, show_id=show_id)

    async def attach(self, room: Room, conn: Connection, last_seq: int | None) -> None:
        """Join a socket: what it missed since last_seq (or a snapshot), then the live stream."""
        room.add(conn)  # from here on, room events wait for it in the room
        self.context.metrics.websockets.inc()
        conn.counted = True
        await self.presence.join(room.show_id, conn.key, conn.viewer())
        topic = show_topic(room.show_id)
        history: list[Event] | None = None
        if last_seq is not None and last_seq <= await self.context.bus.last_seq(topic):
            history = await self.context.bus.history(topic, last_seq, limit=HISTORY_LIMIT)
            if history is not None and len(history) >= HISTORY_LIMIT:
                history = None
        if history is not None and last_seq is not None:
            conn.last_seq = last_seq
            conn.push_events(history)
        else:
            snapshot = await self.snapshot(room, conn)
            conn.send(snapshot)
            conn.last_seq = snapshot["seq"]
        if not room.go_live(conn):
            room.drop(conn, "outbox full while catching up")

    async def detach(self, room: Room, conn: Connection) -> None:
        room.remove(conn)
        conn.closed = True
        if conn.writer is not None:
            conn.writer.cancel()
        await self._left(conn)
        await self._close_if_empty(room)

    def _dropped(self, conn: Connection) -> None:
        # Called synchronously from a flush: the presence update runs on its own.
        task = asyncio.get_running_loop().create_task(self._left(conn))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _left(self, conn: Connection) -> None:
        if conn.counted:
            conn.counted = False
            self.context.metrics.websockets.dec()
            with contextlib.suppress(Exception):
                await self.presence.leave(conn.show_id, conn.key)

    async def snapshot(self, room: Room, conn: Connection) -> dict[str, Any]:
        # The seq is read first: everything up to it is in the DB read below; later events follow.
        seq = await self.context.bus.last_seq(show_topic(room.show_id))
        recent = await run_in_threadpool(self._recent, room.show_id)
        state = room.state
        uid = conn.user_id
        frame: dict[str, Any] = {
            "type": "snapshot",
            "seq": seq,
            "ts": wall_ms(),
            "messages": recent,
            "pinned": state.pinned,
            "presence": {"count": await self.presence.count(room.show_id)},
            "slow_mode": state.slow_mode_seconds,
            "reactions": list(REACTION_KINDS),
            "moderators": sorted(state.moderators),
            "seller_id": state.seller_id,
            "you": {
                "user_id": uid,
                "role": state.role_of(uid),
                "banned": uid in state.banned,
                "muted_until_ms": state.muted_until_ms.get(uid, 0) if uid is not None else 0,
            },
        }
        if state.is_staff(uid):
            frame["blocked_words"] = sorted(state.blocked_words)
        for provider in self.snapshot_providers:
            try:
                frame.update(await provider(room.show_id))
            except Exception:
                log.exception("snapshot provider %r failed", provider)
        return frame

    def _recent(self, show_id: int) -> list[dict[str, Any]]:
        with self.context.db.session() as session:
            return messages.recent(session, show_id)

    # ------------------------------------------------------------ periodic work

    async def _reactions_forever(self, room: Room) -> None:
        while True:
            await asyncio.sleep(self.reaction_tick)
            if room.reactions:
                counts = dict(room.reactions)
                room.reactions.clear()
                try:
                    await self.publish(room.show_id, "reaction.burst", {"counts": counts})
                except Exception:
                    log.exception("publishing reactions of show %s failed", room.show_id)

    async def _presence_forever(self, room: Room) -> None:
        last_beat = time.monotonic()
        lead_ms = int(self.presence_interval * 2500)
        while True:
            await asyncio.sleep(self.presence_interval)
            try:
                if time.monotonic() - last_beat >= HEARTBEAT_SECONDS:
                    last_beat = time.monotonic()
                    await self.presence.heartbeat(room.show_id, room.members())
                if await self.presence.try_lead(room.show_id, self.process_id, lead_ms):
                    count = await self.presence.count(room.show_id)
                    if count != room.state.viewer_count:
                        room.state.viewer_count = count
                        await self.publish(room.show_id, "presence", {"count": count})
            except Exception:
                log.exception("presence of show %s failed", room.show_id)
