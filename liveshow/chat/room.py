"""One show's room in one process: its sockets, its bus subscription and the batched fan-out.

Events from the bus are queued and flushed every ``tick`` seconds (stretched towards ``max_tick`` in a
big room): each socket gets one WebSocket message per tick holding every frame it may see (see
protocol.encode_batch), serialized once for all sockets when no private event is involved. A send is
started directly from the flush and normally completes without suspending (the transport takes the
bytes); only a socket whose transport is full gets a task, and later messages queue behind it in its
bounded outbox. When that is full the socket is dropped (close 1013) and the client resumes later from
its last seq. Nothing here ever awaits a socket on behalf of another.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter, deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from starlette.websockets import WebSocket

from liveshow.accounts.models import User
from liveshow.bus import Event, Subscription
from liveshow.chat.moderation import ModState
from liveshow.chat.protocol import CLOSE_TRY_LATER, encode, encode_batch

log = logging.getLogger(__name__)

LIGHT_ROOM, BUSY_ROOM = 500, 2000  # sockets in one room in this process: see Room.current_tick
OUTBOX_LIMIT = 64  # messages (ticks) queued behind a waiting send before the socket counts as too slow


@dataclass(eq=False)
class Connection:
    websocket: WebSocket
    user: User | None
    key: str  # presence member id, unique across processes
    show_id: int
    # Messages waiting behind a send that could not complete at once (see push).
    outbox: deque[str] = field(default_factory=deque)
    last_seq: int = 0
    # False while the connection catches up (history or snapshot): room events wait in backlog.
    live: bool = False
    backlog: list[Event] = field(default_factory=list)
    closed: bool = False
    counted: bool = False  # in the metrics gauge and presence: undone exactly once
    writer: asyncio.Task[None] | None = None  # only while a send waits for the socket to drain

    @property
    def user_id(self) -> int | None:
        return self.user.id if self.user is not None else None

    def viewer(self) -> dict[str, Any] | None:
        if self.user is None:
            return None
        return {
            "user_id": self.user.id,
            "username": self.user.username,
            "display_name": self.user.display_name or self.user.username,
        }

    def may_see(self, event: Event) -> bool:
        to = event.data.get("to")
        return to is None or (self.user_id is not None and self.user_id in to)

    def push(self, text: str) -> bool:
        """Send one message, or queue it behind a send in flight; False when the queue is full
        (the caller drops the socket).

        The usual case costs no task switch: the send is started right here and, when the socket's
        transport takes the bytes at once (its buffer is under the high-water mark), it completes
        without ever suspending. Only a send that has to wait gets a task, and the messages after it
        queue behind it, in order, up to OUTBOX_LIMIT.
        """
        if self.closed:
            return True
        if self.writer is not None:
            if len(self.outbox) >= OUTBOX_LIMIT:
                return False
            self.outbox.append(text)
            return True
        send = self.websocket.send_text(text)
        try:
            waiting_on = send.send(None)
        except StopIteration:
            return True
        except Exception as exc:  # the peer went away: the reader side notices and cleans up
            log.debug("socket write failed: %s", exc)
            self.closed = True
            return True
        self.writer = asyncio.get_running_loop().create_task(self._finish(send, waiting_on))
        return True

    def send(self, frame: dict[str, Any]) -> bool:
        return self.push(encode(frame))

    def push_events(self, events: list[Event]) -> bool:
        frames = [encode(e.wire()) for e in events if e.seq > self.last_seq and self.may_see(e)]
        if events:
            self.last_seq = max(self.last_seq, events[-1].seq)
        return self.push(encode_batch(frames)) if frames else True

    async def _finish(self, send: Coroutine[Any, Any, None], waiting_on: Any) -> None:
        """Drive a send that suspended in push() to its end, then write what queued behind it.

        This does what a Task does for a coroutine (wait for the future it yielded, resume it),
        because a coroutine that has already started cannot be handed to a new Task.
        """
        try:
            try:
                while True:
                    if waiting_on is None:
                        await asyncio.sleep(0)  # a bare yield: just let the loop run once
                    else:
                        await asyncio.wait([waiting_on])  # its outcome is for `send` to see
                    waiting_on = send.send(None)
            except StopIteration:
                pass
            while self.outbox:
                await self.websocket.send_text(self.outbox.popleft())
        except asyncio.CancelledError:
            send.close()
            raise
        except Exception as exc:  # the peer went away mid-write: the reader side notices and cleans up
            log.debug("socket write failed: %s", exc)
            self.closed = True
        self.writer = None


class Room:
    def __init__(
        self,
        show_id: int,
        state: ModState,
        tick: float,
        on_drop: Callable[[Connection], None],
        max_tick: float | None = None,
    ) -> None:
        self.show_id = show_id
        self.state = state
        self.tick = tick
        self.max_tick = max(tick, max_tick if max_tick is not None else tick)
        self.connections: set[Connection] = set()
        self.reactions: Counter[str] = Counter()
        self._queue: list[Event] = []
        self._seen_seq = 0
        self.subscription: Subscription | None = None
        self._on_drop = on_drop
        self._tasks: list[asyncio.Task[None]] = []
        self._closing: set[asyncio.Task[None]] = set()
        self.flushes = 0

    def start(self, events: Subscription, extra: list[Callable[[], Coroutine[Any, Any, None]]]) -> None:
        self._tasks.append(asyncio.create_task(self._read(events), name=f"room-{self.show_id}-read"))
        self._tasks.append(asyncio.create_task(self._flush_forever(), name=f"room-{self.show_id}-flush"))
        for loop in extra:
            self._tasks.append(asyncio.create_task(loop(), name=f"room-{self.show_id}-loop"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()

    def members(self) -> dict[str, dict[str, Any] | None]:
        return {c.key: c.viewer() for c in self.connections}

    def sockets_of(self, user_id: int) -> list[Connection]:
        return [c for c in self.connections if c.user_id == user_id]

    async def _read(self, events: Subscription) -> None:
        async for event in events:
            if event.seq <= self._seen_seq:
                continue  # a shared bus reader may replay what we already have
            self._seen_seq = event.seq
            self.state.apply(event.type, event.data)
            self._queue.append(event)

    async def _flush_forever(self) -> None:
        while True:
            await asyncio.sleep(self.current_tick())
            if self._queue:
                self.flush()

    def current_tick(self) -> float:
        """The flush interval for the room's size here: `tick` up to LIGHT_ROOM sockets, then stretched
        linearly to `max_tick` at BUSY_ROOM. Every socket costs one write (a syscall) per tick, so a big
        room trades a few ms of delay for fewer writes; the delay stays well inside the 100 ms target.
        """
        load = (len(self.connections) - LIGHT_ROOM) / (BUSY_ROOM - LIGHT_ROOM)
        return self.tick + (self.max_tick - self.tick) * min(1.0, max(0.0, load))

    def flush(self) -> None:
        events, self._queue = self._queue, []
        self.flushes += 1
        private = any("to" in e.data for e in events)
        shared: str | None = None
        first_seq = events[0].seq
        for conn in list(self.connections):
            if not conn.live:
                conn.backlog.extend(events)
                continue
            if not private and conn.last_seq < first_seq:
                # The common case: everyone sees the same frames, so they are encoded once.
                if shared is None:
                    shared = encode_batch([encode(e.wire()) for e in events])
                conn.last_seq = events[-1].seq
                ok = conn.push(shared)
            else:
                ok = conn.push_events(events)
            if not ok:
                self.drop(conn, "too slow: outbox full")

    def go_live(self, conn: Connection) -> bool:
        """Send what arrived while the connection caught up, then put it on the live path.

        No await in here: no flush can run between draining the backlog and going live.
        """
        backlog, conn.backlog = conn.backlog, []
        conn.live = True
        return conn.push_events(backlog)

    def drop(self, conn: Connection, why: str) -> None:
        log.info("dropping socket of show %s: %s", self.show_id, why)
        self.connections.discard(conn)
        conn.closed = True
        if conn.writer is not None:
            conn.writer.cancel()
        self._on_drop(conn)

        async def close() -> None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.websocket.close(CLOSE_TRY_LATER, "too slow"), 5)

        task = asyncio.get_running_loop().create_task(close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)
