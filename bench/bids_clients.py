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
from typing import Any

# (step, scheduled send, latency s, status, dseq or 0)
Result = tuple[int, float, float, int, int]


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
            except (OSError, asyncio.IncompleteReadError, ValueError):
                conn.writer = None
                status, reply = 599, {}
            pool.put_nowait(conn)
            done = time.time()
            if status == 200:
                price["cents"] = max(price["cents"], int(reply["price_cents"]))
            elif reply.get("min_cents"):
                price["cents"] = max(price["cents"], int(reply["min_cents"]) - 100)
            results.append((step, due, done - due, status, int(reply.get("dseq", 0)) if status == 200 else 0))

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

    async def run() -> dict[int, float]:
        bus = RedisBus(redis_url, prefix=prefix)
        await bus.start()
        sub = bus.subscribe(f"show:{show_id}")
        seen: dict[int, float] = {}
        await asyncio.sleep(0.3)
        ready.set()
        while not stop.is_set():
            try:
                event = await sub.get(timeout=0.5)
            except TimeoutError:
                continue
            if event.type == "bid.accepted":
                seen[int(event.data["dseq"])] = time.time()
        sub.close()
        await bus.close()
        return seen

    out.put(asyncio.run(run()))
