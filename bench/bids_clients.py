"""Client processes of bench/bids.py: open-loop bidders over keep-alive HTTP, and a bus listener.

Open loop: each request has a scheduled send time (the offered rate); its latency is measured from that
time, so waiting for a free connection counts (no coordinated omission). The HTTP client is a few lines
over asyncio streams, because a general client library costs more CPU per request than the server on
this small machine.
"""

from __future__ import annotations

import asyncio
import json
import random
import secrets
import time
from collections import Counter
from typing import Any

from bench.tally import ACCEPTED, BidRow, Sighting, connect_failure_kind, http_outcome, ws_outcome

# (step, scheduled send, latency s, outcome, dseq or 0); outcome as bench/tally.py names it
Result = BidRow


class Conn:
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, token: str, body: bytes) -> tuple[int, dict[str, Any]]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: application/json\r\n"
            f"Authorization: Bearer {token}\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        self.writer.write(head.encode() + body)
        raw = await self.reader.readuntil(b"\r\n\r\n")
        status = int(raw[9:12])
        length = 0
        for line in raw.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        data = await self.reader.readexactly(length)
        return status, json.loads(data)


def client_proc(
    addrs: list[tuple[str, int]],
    path: str,
    tokens: list[tuple[int, str]],
    steps: list[float],
    step_s: float,
    connections: int,
    start_at: float,
    out: Any,
) -> None:
    """Offer each rate of ``steps`` (commands/s, this process's share) for ``step_s`` seconds."""

    async def run() -> list[Result]:
        results: list[Result] = []
        price = {"cents": 1000}
        pool: asyncio.Queue[Conn] = asyncio.Queue()
        for n in range(connections):
            pool.put_nowait(Conn(*addrs[n % len(addrs)]))
        await asyncio.sleep(max(0.0, start_at - time.time()))

        async def one(step: int, due: float, n: int) -> None:
            await asyncio.sleep(max(0.0, due - time.time()))
            conn = await pool.get()
            uid, token = tokens[n % len(tokens)]
            # a custom maximum a little above the last price seen: some accepted, most too low
            amount = price["cents"] + random.choice((100, 200, 300, 500, 1000))
            body = json.dumps(
                {"type": "bid", "key": f"b{uid}-{secrets.token_hex(6)}", "max_cents": amount}
            ).encode()
            try:
                status, reply = await conn.post(path, token, body)
                outcome = http_outcome(status, reply)
            except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                conn.writer = None
                outcome, reply = f"error:{type(exc).__name__}", {}
            pool.put_nowait(conn)
            done = time.time()
            if outcome == ACCEPTED:
                price["cents"] = max(price["cents"], int(reply["price_cents"]))
            elif reply.get("min_cents"):
                price["cents"] = max(price["cents"], int(reply["min_cents"]) - 100)
            dseq = int(reply.get("dseq", 0)) if outcome == ACCEPTED else 0
            results.append((step, due, done - due, outcome, dseq))

        # Warm-up (not reported): connections opened, tokens cached, code paths hot.
        warm = [asyncio.create_task(one(-1, time.time() + i / 50, i)) for i in range(50)]
        await asyncio.gather(*warm)
        # (their answers are kept for the replay check, not reported)
        n = 0
        for step, rate in enumerate(steps):
            begin = time.time()
            count = int(rate * step_s)
            tasks = []
            for i in range(count):
                n += 1
                tasks.append(asyncio.create_task(one(step, begin + i / rate, n)))
            await asyncio.gather(*tasks)
            mine = [r for r in results if r[0] == step]
            # Beyond saturation the backlog only grows: stop offering more.
            if max(r[1] + r[2] for r in mine) - begin > 2 * step_s:
                break
        return results

    out.put(asyncio.run(run()))


def listener_proc(redis_url: str, prefix: str, show_id: int, out: Any, ready: Any, stop: Any) -> None:
    """Everyone: a subscriber of the show's topic through the bus, as each server's room would be."""
    from liveshow.bus.redis import RedisBus

    async def run() -> dict[int, Sighting]:
        bus = RedisBus(redis_url, prefix=prefix)
        await bus.start()
        sub = bus.subscribe(f"show:{show_id}")
        seen: dict[int, Sighting] = {}
        await asyncio.sleep(0.3)
        ready.set()
        while not stop.is_set():
            try:
                event = await sub.get(timeout=0.5)
            except TimeoutError:
                continue
            if event.type == "bid.accepted":
                seen[int(event.data["dseq"])] = Sighting(1, time.time())
        sub.close()
        await bus.close()
        return seen

    out.put(asyncio.run(run()))


def ws_client_proc(
    addrs: list[tuple[str, int]],
    show_id: int,
    cookies: list[tuple[int, str]],
    sockets: int,
    steps: list[float],
    step_s: float,
    start_at: float,
    out: Any,
) -> None:
    """Viewers on the room WebSocket: ``sockets`` connected sockets (signed in, spread over both
    servers) that all receive the show's events; bids are sent over them at the offered rates. Returns
    a dict: the results; per accepted bid (dseq), how many of this process's sockets received it and
    when the last one did; the sockets connected; the ones that failed to connect, by kind; the ones
    closed before the end.

    The sockets are the lean clients of bench/wsclient.py: a message is JSON-parsed only when it is a
    reply (one per bid) or holds a ``bid.accepted``; the rest (presence, lot updates) is only framed."""
    import orjson
    import uvloop

    from bench.wsclient import RawSocket, open_socket

    async def run() -> dict[str, Any]:
        results: list[Result] = []
        last_seen: dict[int, float] = {}
        waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        seen_by: dict[int, int] = {}
        price = {"cents": 1000}

        def on_text(payload: bytes) -> None:
            if b'"reply_to"' in payload:  # replies come alone, never in a batch
                frame = orjson.loads(payload)
                fut = waiting.pop(str(frame.get("reply_to")), None)
                if fut is not None and not fut.done():
                    fut.set_result(frame)
                return
            if b'"bid.accepted"' not in payload:
                return
            now = time.time()
            message = orjson.loads(payload)
            frames = message["events"] if message.get("type") == "batch" else [message]
            for frame in frames:
                if frame.get("type") == "bid.accepted":
                    dseq = int(frame["dseq"])
                    seen_by[dseq] = seen_by.get(dseq, 0) + 1
                    last_seen[dseq] = now

        conns: list[tuple[RawSocket, int]] = []
        failed: Counter[str] = Counter()
        for n in range(sockets):
            host, port = addrs[n % len(addrs)]
            uid, cookie = cookies[n % len(cookies)]
            try:
                sock = await open_socket(
                    f"ws://{host}:{port}/ws/shows/{show_id}?last_seq=",
                    {"Cookie": f"liveshow_session={cookie}"},
                    on_text,
                )
            except (OSError, TimeoutError) as exc:  # counted and reported, never a crash or a silence
                failed[connect_failure_kind(exc)] += 1
                continue
            conns.append((sock, uid))
        await asyncio.sleep(max(0.0, start_at - time.time()))

        async def one(step: int, due: float, n: int) -> None:
            await asyncio.sleep(max(0.0, due - time.time()))
            sock, uid = conns[n % len(conns)]
            rid = secrets.token_hex(6)
            amount = price["cents"] + random.choice((100, 200, 300, 500, 1000))
            if sock.transport is None or sock.transport.is_closing():
                results.append((step, due, time.time() - due, "error:socket_closed", 0))
                return
            fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
            waiting[rid] = fut
            try:
                sock.send_frame(
                    1,
                    orjson.dumps({"type": "bid", "id": rid, "key": f"w{uid}-{rid}", "max_cents": amount}),
                )
                frame = await asyncio.wait_for(fut, 30)
            except TimeoutError:
                waiting.pop(rid, None)
                results.append((step, due, time.time() - due, "error:no_reply_in_30s", 0))
                return
            except OSError as exc:
                waiting.pop(rid, None)
                results.append((step, due, time.time() - due, f"error:{type(exc).__name__}", 0))
                return
            done = time.time()
            outcome = ws_outcome(frame)
            if outcome == ACCEPTED:
                price["cents"] = max(price["cents"], int(frame["price_cents"]))
            elif frame.get("min_cents"):
                price["cents"] = max(price["cents"], int(frame["min_cents"]) - 100)
            dseq = int(frame.get("dseq", 0)) if outcome == ACCEPTED else 0
            results.append((step, due, done - due, outcome, dseq))

        warm = [asyncio.create_task(one(-1, time.time() + i / 50, i)) for i in range(50)]
        await asyncio.gather(*warm)
        n = 0
        for step, rate in enumerate(steps):
            begin = time.time()
            tasks = []
            for i in range(int(rate * step_s)):
                n += 1
                tasks.append(asyncio.create_task(one(step, begin + i / rate, n)))
            await asyncio.gather(*tasks)
            mine = [r for r in results if r[0] == step]
            if max(r[1] + r[2] for r in mine) - begin > 2 * step_s:
                break
        await asyncio.sleep(1.0)  # the last events on their way
        closed = sum(1 for sock, _uid in conns if sock.transport is None or sock.transport.is_closing())
        for sock, _uid in conns:
            if sock.transport is not None:
                sock.transport.close()
        return {
            "results": results,
            "seen": {d: Sighting(seen_by[d], t) for d, t in last_seen.items()},
            "sockets": len(conns),
            "failed_connects": dict(failed),
            "closed": closed,
        }

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        out.put(runner.run(run()))
