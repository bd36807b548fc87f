"""The fault suite's room clients: buyers who chat, bid and claim, the host who puts items up, and
silent viewers. Each behaves as the page does under faults: a command is retried with the same key
after an "unavailable" answer or a lost socket, and a socket that closes is reopened with the last
seq seen. Everything they are told is recorded in a ClientRecord for bench/fault_check.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import random
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection

from bench.fault_check import EPHEMERAL, ClientRecord

RETRYABLE = frozenset({"unavailable", "writer_unavailable", "rate_limited"})
COMMAND_DEADLINE_S = 60.0  # a command still unanswered after this (every retry included) counts as lost


class Room:
    """One user's socket to a show on one of the servers, reopened when it closes."""

    _ids = itertools.count(1)

    def __init__(
        self,
        urls: Callable[[], list[str]],
        show_id: int,
        cookie: str | None,
        record: ClientRecord,
        on_frame: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.urls = urls  # the servers up now; a socket goes to one of them
        self.show_id = show_id
        self.cookie = cookie
        self.record = record
        self.on_frame = on_frame
        self.ws: ClientConnection | None = None
        self.last_seq: int | None = None
        self.waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.reader: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()
        self.reconnects = 0
        self.closed = False
        self.joined_at: float | None = None  # when the latest (re)join got its snapshot or history
        self.socket_last: int | None = None  # the last seq on the current socket
        self._pinger: asyncio.Task[None] | None = None
        self._reconnect: asyncio.Task[None] | None = None

    async def connect(self, prefer: int = 0) -> None:
        while not self.closed:
            urls = self.urls()
            if not urls:
                await asyncio.sleep(0.2)
                continue
            base = urls[prefer % len(urls)]
            prefer += 1
            query = "" if self.last_seq is None else str(self.last_seq)
            headers = {"Cookie": f"liveshow_session={self.cookie}"} if self.cookie else {}
            try:
                ws = await websockets.connect(
                    base.replace("http://", "ws://") + f"/ws/shows/{self.show_id}?last_seq={query}",
                    additional_headers=headers,
                    open_timeout=10,
                    max_size=2**22,
                )
            except Exception:  # refused, reset mid-handshake, timed out: a server going away or coming back
                await asyncio.sleep(0.2 + random.random() * 0.3)
                continue
            self.ws = ws
            self.socket_last = None
            self.reader = asyncio.create_task(self._read(ws))
            self.connected.set()
            self._pinger = asyncio.create_task(self._joined(ws))
            return

    async def _joined(self, ws: ClientConnection) -> None:
        """Mark the join done when the room answers a ping: frames are answered only once the socket
        has caught up (history or snapshot), and a resume that missed nothing sends nothing else."""
        answer = await self.command({"type": "ping"})
        if answer is not None and self.ws is ws:
            self.joined_at = time.monotonic()

    async def _read(self, ws: ClientConnection) -> None:
        try:
            async for raw in ws:
                message = json.loads(raw)
                frames = message["events"] if message.get("type") == "batch" else [message]
                for frame in frames:
                    self._frame(frame)
        except websockets.ConnectionClosed:
            pass
        finally:
            self.connected.clear()
            waiting, self.waiting = self.waiting, {}
            for future in waiting.values():
                if not future.done():
                    future.set_exception(ConnectionError("socket closed"))
                    future.add_done_callback(lambda f: f.exception())  # its sender may have given up
            if not self.closed:
                self.reconnects += 1
                # Held here: the event loop keeps only a weak reference to a task, and a reconnect
                # collected half way left a viewer out for good (7 of 1,000 after a restart).
                self._reconnect = asyncio.get_running_loop().create_task(
                    self.connect(prefer=random.randrange(8))
                )

    def _frame(self, frame: dict[str, Any]) -> None:
        rid = frame.get("reply_to")
        if rid is not None:
            # An answer, not an event of the show (a chat.sent carries its message's seq): it counts
            # for neither numbering nor the log.
            future = self.waiting.pop(rid, None)
            if future is not None and not future.done():
                future.set_result(frame)
            return
        kind = frame.get("type")
        if kind == "error":
            return  # a join refused (a dependency down, a limit): the socket closes, and we come back
        seq = frame.get("seq")
        if isinstance(seq, int):
            if kind == "snapshot":
                self.record.seen_chat_ids.update(int(m["id"]) for m in frame.get("messages", []))
            elif self.socket_last is not None and seq <= self.socket_last:
                self.record.backwards += 1
            elif self.last_seq is not None and seq <= self.last_seq:
                self.record.backwards += 1  # resumed below what an earlier socket already had
            if kind not in EPHEMERAL and kind != "snapshot" and "to" not in frame:
                self.record.seen[seq] = str(kind)
            if kind == "chat.message" and "id" in frame:
                self.record.seen_chat_ids.add(int(frame["id"]))
                self.record.seen_chat[seq] = int(frame["id"])
            first = self.record.span[0] if self.record.span else seq
            self.record.span = (first, max(seq, self.record.span[1] if self.record.span else seq))
            self.socket_last = seq if self.socket_last is None else max(seq, self.socket_last)
            self.last_seq = seq if self.last_seq is None else max(seq, self.last_seq)
        if self.on_frame is not None:
            self.on_frame(frame)

    async def command(self, message: dict[str, Any]) -> dict[str, Any] | None:
        """Send until answered: the same key on every try; None when it never was."""
        deadline = time.monotonic() + COMMAND_DEADLINE_S
        while time.monotonic() < deadline and not self.closed:
            try:
                await asyncio.wait_for(self.connected.wait(), max(0.1, deadline - time.monotonic()))
            except TimeoutError:
                break
            ws = self.ws
            assert ws is not None
            rid = f"c{next(self._ids)}"
            future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
            self.waiting[rid] = future
            try:
                await ws.send(json.dumps({**message, "id": rid}))
                answer = await asyncio.wait_for(future, 20)
            except (ConnectionError, websockets.ConnectionClosed, TimeoutError):
                self.waiting.pop(rid, None)
                await asyncio.sleep(0.1)
                continue
            if answer.get("type") == "error" and answer.get("code") in RETRYABLE:
                await asyncio.sleep(min(5.0, int(answer.get("retry_after_ms", 500)) / 1000))
                continue
            if answer.get("type") == "error" and answer.get("code") == "internal":
                self.record.server_errors += 1
            return answer
        self.record.unanswered += 1
        return None

    async def close(self) -> None:
        self.closed = True
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await self.ws.close()
        if self.reader is not None:
            self.reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.reader


def key() -> str:
    return "f-" + secrets.token_hex(8)


class Lots:
    """What is on screen now, as the buyers' sockets see it."""

    def __init__(self) -> None:
        self.lot: dict[str, Any] | None = None

    def on_frame(self, frame: dict[str, Any]) -> None:
        if frame.get("type") in ("lot.opened", "lot.closed") and isinstance(frame.get("lot"), dict):
            self.lot = frame["lot"]
        elif frame.get("type") == "snapshot" and isinstance(frame.get("lot"), dict):
            self.lot = frame["lot"]


async def buyer(room: Room, lots: Lots, stop: asyncio.Event, decided: Callable[[float], None]) -> None:
    """Chat, bid and claim at a human pace until told to stop."""
    await room.connect(prefer=room.record.user_id)
    n = 0
    while not stop.is_set():
        n += 1
        lot = lots.lot
        choice = random.random()
        if lot is not None and lot.get("state") == "open" and choice < 0.6:
            if lot.get("kind") == "auction":
                price = int(lot.get("price_cents") or lot.get("start_cents") or 100)
                bid = {
                    "type": "bid",
                    "key": key(),
                    "lot_no": lot["lot_no"],
                    "max_cents": price + 100 * random.randint(1, 20),
                }
                answer = await room.command(bid)
                if answer is not None and answer.get("type") == "bid.result" and answer.get("ok"):
                    room.record.bids.append((int(answer["lot_no"]), int(answer["max_cents"])))
            else:
                answer = await room.command(
                    {"type": "claim", "key": key(), "lot_no": lot["lot_no"], "quantity": 1}
                )
                if answer is not None and answer.get("type") == "claim.result" and answer.get("ok"):
                    room.record.claims.extend((int(answer["lot_no"]), int(u)) for u in answer["units"])
            if answer is not None and answer.get("type") in ("bid.result", "claim.result", "error"):
                if answer.get("type") != "error" or answer.get("code") not in ("internal",):
                    decided(time.monotonic())
        else:
            text = f"u{room.record.user_id} says {n}"
            answer = await room.command({"type": "chat.send", "key": key(), "text": text})
            if answer is not None and answer.get("type") == "chat.sent":
                room.record.chats[int(answer["message_id"])] = text
        await asyncio.sleep(random.uniform(0.1, 0.6))


async def host(
    room: Room,
    listings: list[int],
    stop: asyncio.Event,
    auction_s: int,
    sell_elsewhere: Callable[[int], Awaitable[None]] | None = None,
) -> None:
    """Put the listings up in turn, auctions and claims alternately, and close each in its time.
    ``sell_elsewhere(listing)`` is called during some auctions: the unit goes another way meanwhile."""
    await room.connect()
    for index, listing_id in enumerate(itertools.cycle(listings)):
        if stop.is_set():
            return
        if index % 2 == 0:
            opened = await room.command(
                {
                    "type": "lot.open",
                    "key": key(),
                    "listing_id": listing_id,
                    "mode": "auction",
                    "duration_s": auction_s,
                }
            )
        else:
            opened = await room.command(
                {"type": "lot.open", "key": key(), "listing_id": listing_id, "mode": "claim", "quantity": 3}
            )
        if opened is None or opened.get("type") == "error":
            await asyncio.sleep(0.5)
            continue
        if index % 4 == 0 and sell_elsewhere is not None:  # every other auction
            await asyncio.sleep(1.0)
            await sell_elsewhere(listing_id)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), auction_s + 2 if index % 2 == 0 else 3)
        if index % 2:
            await room.command({"type": "lot.close", "key": key()})
        # An auction closes on its own clock (anti-sniping may push it on): wait until it has.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            state = await room.command({"type": "lot.state"})
            lot = (state or {}).get("lot")
            if not isinstance(lot, dict) or lot.get("state") != "open":
                break
            await asyncio.sleep(0.5)
