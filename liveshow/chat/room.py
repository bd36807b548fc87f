"""One show's room in one process: its sockets, its bus subscription and the batched fan-out.

Events from the bus are kept in the room until every socket here has had them. A round of writes
runs at most once per ``tick`` (stretched towards ``max_tick`` in a big room), at once when the first
event comes into a quiet room, and gives each socket one WebSocket message holding every frame it may
see and has not had (see protocol.encode_batch); in a big room the round is spread over the tick in
slices. The message is built once for all sockets at the same point (a private event only changes the
message of its recipients) and, on the fast lane (chat/lane.py), framed once and written as the same
bytes to each socket's transport. A socket whose unsent bytes pile up past SEND_BUFFER_LIMIT is dropped
(close 1013) and the client resumes later from its last seq. Nothing here ever awaits a socket on
behalf of another.

Without the lane (another ASGI server, or permessage-deflate) a send is started directly from the flush
and normally completes without suspending; only a socket whose transport is full gets a task, and later
messages queue behind it in its bounded outbox (OUTBOX_LIMIT messages).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter, deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any

from starlette.websockets import WebSocket

from liveshow.accounts.models import User
from liveshow.bus import Event, Subscription
from liveshow.chat.lane import Lane, lane_for
from liveshow.chat.moderation import ModState
from liveshow.chat.protocol import CLOSE_TRY_LATER, encode, encode_batch
from liveshow.chat.wsframes import text_frame

log = logging.getLogger(__name__)

LIGHT_ROOM, BUSY_ROOM = 500, 2000  # sockets in one room in this process: see Room.current_tick
OUTBOX_LIMIT = 64  # messages (ticks) queued behind a waiting send before the socket counts as too slow
# Unsent bytes on the fast lane before the socket counts as too slow: seconds of a busy room's traffic,
# and a bound on what one stalled client can make the server hold.
SEND_BUFFER_LIMIT = 256 * 1024
PHASE_SOCKETS = 250  # sockets per slice of a round of writes (a few ms of syscalls)
# Back-off when the process runs late (it wants more CPU than it gets): a round's timers firing more
# than LAG_BUDGET late stretch the interval between rounds, up to OVERLOAD_TICK. Every round costs a
# write per socket here and a read per socket in every viewer's browser; fewer rounds give the time
# back to what waits behind them (bids and their answers, chat coming in), and the same events still
# arrive, a few to a message. Once the timers keep time again the interval comes back within a couple
# of seconds (a tenth and a millisecond less each round).
LAG_BUDGET = 0.010
OVERLOAD_TICK = 0.150


_last_seq = attrgetter("last_seq")  # min() over a big room's sockets every round, without a lambda
_UNBUILT: Any = object()  # a round's message not built yet (None: the socket has nothing to get)


def next_stretch(stretch: float, late: float) -> float:
    """The extra interval between rounds after a round whose timers fired up to ``late`` s late."""
    if late > LAG_BUDGET:
        return min(OVERLOAD_TICK, stretch * 1.5 + 0.005)
    return max(0.0, stretch * 0.9 - 0.001)


# Slots: every round of writes reads a few fields of every socket, each one lookup fewer (and one
# object fewer to bring into the cache) than through an instance dict.
@dataclass(eq=False, slots=True)
class Connection:
    websocket: WebSocket
    user: User | None
    key: str  # presence member id, unique across processes
    show_id: int
    # Messages waiting behind a send that could not complete at once (see push).
    outbox: deque[str] = field(default_factory=deque)
    last_seq: int = 0
    # False while the connection catches up (history or snapshot): room events wait in the room.
    live: bool = False
    closed: bool = False
    counted: bool = False  # in the metrics gauge and presence: undone exactly once
    writer: asyncio.Task[None] | None = None  # only while a send waits for the socket to drain
    # The fast lane, when the server allows it (looked up on first send, after the handshake).
    lane: Lane | None = None
    lane_checked: bool = False
    # The account's id, read once: a round of writes looks at it for every socket, and on the ORM
    # object each read goes through SQLAlchemy's attribute machinery.
    user_id: int | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.user_id = self.user.id if self.user is not None else None

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
        lane = self._lane()
        if lane is not None:
            return self._write(lane, text_frame(text.encode()))
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

    def push_shared(self, text: str, frame: bytes) -> bool:
        """push() of a message that many sockets get: ``frame`` is ``text`` already framed, once."""
        if self.closed:
            return True
        lane = self.lane if self.lane_checked else self._lane()
        return self._write(lane, frame) if lane is not None else self.push(text)

    def _lane(self) -> Lane | None:
        if not self.lane_checked:
            self.lane_checked = True
            self.lane = lane_for(self.websocket)
        return self.lane

    def _write(self, lane: Lane, frame: bytes) -> bool:
        held = lane.write(frame)
        if held < 0:
            self.closed = True  # closing or gone: the reader side notices and cleans up
            return True
        return held <= SEND_BUFFER_LIMIT

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
        on_event: Callable[[Event], None] | None = None,
    ) -> None:
        self.show_id = show_id
        self.state = state
        self.tick = tick
        self.max_tick = max(tick, max_tick if max_tick is not None else tick)
        # An ordered set (a dict's keys): the order of joining, which slice of a round writes to each.
        self.connections: dict[Connection, None] = {}
        self.reactions: Counter[str] = Counter()
        # Events read from the bus that some socket here may not have yet, with their wire JSON.
        self._recent: list[tuple[Event, str]] = []
        self._seen_seq = 0
        self.subscription: Subscription | None = None
        self._on_drop = on_drop
        self._on_event = on_event  # every event this room takes in, once (e.g. to archive it)
        self._tasks: list[asyncio.Task[None]] = []
        self._closing: set[asyncio.Task[None]] = set()
        self._due = asyncio.Event()
        self._stretch = 0.0  # see next_stretch

    def start(self, events: Subscription, extra: list[Callable[[], Coroutine[Any, Any, None]]]) -> None:
        self._tasks.append(asyncio.create_task(self._read(events), name=f"room-{self.show_id}-read"))
        self._tasks.append(asyncio.create_task(self._send_forever(), name=f"room-{self.show_id}-send"))
        for loop in extra:
            self._tasks.append(asyncio.create_task(loop(), name=f"room-{self.show_id}-loop"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()

    def add(self, conn: Connection) -> None:
        """Join a socket, not yet live: events from here on wait for it in the room until go_live."""
        self.connections[conn] = None

    def remove(self, conn: Connection) -> None:
        self.connections.pop(conn, None)

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
            if self._on_event is not None:
                self._on_event(event)
            self._recent.append((event, encode(event.wire())))
            self._due.set()

    async def _send_forever(self) -> None:
        """Rounds of writes, at most one per tick; the first event into a quiet room starts one at once.

        A round visits every socket once, in `phases` slices spread evenly over the tick, and writes each
        socket everything it has not had yet. Spreading matters in a big room: one write per socket is
        a syscall, thousands of them take tens of ms, and done in one burst they would add that to every
        event's delay and hold up the chat, bids and replies coming in. A small room is one slice.
        """
        loop = asyncio.get_running_loop()

        async def until(due: float) -> float:
            """Sleep until ``due``; how late the loop woke us."""
            await asyncio.sleep(max(0.0, due - loop.time()))
            return loop.time() - due

        while True:
            await self._due.wait()
            started = loop.time()
            self._due.clear()
            conns = list(self.connections)
            tick = self.current_tick()
            phases = max(1, -(-len(conns) // PHASE_SOCKETS))
            late = 0.0
            for phase in range(phases):
                if phase:
                    late = max(late, await until(started + tick * phase / phases))
                try:
                    self._write(conns[phase::phases])
                except Exception:  # a bug here must not stop the room's later rounds
                    log.exception("room %s: a round of writes failed", self.show_id)
            self._trim()
            late = max(late, await until(started + tick))
            self._stretch = next_stretch(self._stretch, late)

    def current_tick(self) -> float:
        """The round interval for the room's size here: `tick` up to LIGHT_ROOM sockets, then stretched
        linearly to `max_tick` at BUSY_ROOM. Every socket costs one write (a syscall) per round, so a
        big room trades a few ms of delay for fewer writes; the delay stays well inside the 100 ms target.
        On top of that, the back-off of a process running late (next_stretch), up to OVERLOAD_TICK.
        """
        load = (len(self.connections) - LIGHT_ROOM) / (BUSY_ROOM - LIGHT_ROOM)
        sized = self.tick + (self.max_tick - self.tick) * min(1.0, max(0.0, load))
        return min(max(sized, OVERLOAD_TICK), sized + self._stretch)

    def _write(self, conns: list[Connection]) -> None:
        """Write each live socket the recent events past its last_seq, as one message. Sockets at the
        same point (nearly all of a slice) share one message, built and framed once; a recipient of a
        private event gets its own.

        This loop runs for every socket in every round (tens of thousands of times a second in a busy
        show), so the lane's write is called from here rather than through push_shared."""
        recent = self._recent
        if not recent:
            return
        newest = recent[-1][0].seq
        private_to: dict[int, int] = {}  # recipient -> seq of their newest private event
        for e, _ in recent:
            for uid in e.data.get("to", ()):
                private_to[uid] = e.seq
        # (since, recipient) -> the message; plain ``since`` where the socket has no private event
        messages: dict[int | tuple[int, int], tuple[str, bytes] | None] = {}
        for conn in conns:
            since = conn.last_seq
            if since >= newest or conn.closed or not conn.live:
                continue
            key: int | tuple[int, int] = since
            own = None
            if private_to:
                uid = conn.user_id
                if uid is not None and private_to.get(uid, 0) > since:
                    own = uid
                    key = (since, uid)
            message = messages.get(key, _UNBUILT)
            if message is _UNBUILT:
                message = messages[key] = self._message(since, own)
            conn.last_seq = newest
            if message is None:
                continue
            lane = conn.lane
            if lane is None:  # not looked up yet, or a socket without one
                ok = conn.push_shared(*message)
            else:
                held = lane.write(message[1])
                if not held:
                    continue
                if held < 0:
                    conn.closed = True  # closing or gone: the reader side notices and cleans up
                ok = held <= SEND_BUFFER_LIMIT
            if not ok:
                self.drop(conn, "too slow: send buffer full")

    def _message(self, since: int, own: int | None) -> tuple[str, bytes] | None:
        """The message of a socket at ``since`` (and, for a recipient of a private event, its id):
        its text and that text framed."""
        wires = [
            wire
            for e, wire in self._recent
            if e.seq > since and ("to" not in e.data or (own is not None and own in e.data["to"]))
        ]
        if not wires:
            return None
        text = encode_batch(wires)
        return text, text_frame(text.encode())

    def _trim(self) -> None:
        """Forget events every socket here has had. A socket still catching up keeps everything past
        its last_seq, so go_live can hand it what arrived meanwhile."""
        if not self._recent:
            return
        floor = min(map(_last_seq, self.connections), default=self._recent[-1][0].seq)
        if floor >= self._recent[-1][0].seq:
            self._recent.clear()
        elif floor >= self._recent[0][0].seq:
            self._recent = [item for item in self._recent if item[0].seq > floor]

    def go_live(self, conn: Connection) -> bool:
        """Send what arrived while the connection caught up, then put it on the live path.

        No await in here: no round can write to it between catching up and going live.
        """
        conn.live = True
        return conn.push_events([e for e, _ in self._recent])

    def drop(self, conn: Connection, why: str) -> None:
        log.info("dropping socket of show %s: %s", self.show_id, why)
        self.remove(conn)
        conn.closed = True
        if conn.writer is not None:
            conn.writer.cancel()
        self._on_drop(conn)

        async def close() -> None:
            try:
                await asyncio.wait_for(conn.websocket.close(CLOSE_TRY_LATER, "too slow"), 5)
            except Exception:
                # The close frame sits behind what the client never read: stop holding it for them.
                if conn.lane is not None:
                    conn.lane.abort()

        task = asyncio.get_running_loop().create_task(close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)
