"""One writer per show across server processes, through Redis.

- Any process appends a command to the show's stream ``{p}:auction:{show}:cmds`` with the key of its
  own reply stream, and waits for the answer there (``{p}:auction:reply:{process}``).
- One process holds the show's lease ``{p}:auction:{show}:leader`` (SET NX PX, renewed by compare and
  PEXPIRE). On winning it, it bumps the show's epoch in the database (the fence: a writer that lost
  its lease while paused can no longer commit), loads the persisted state and stream position, and
  decides the stream's commands in order, batch by batch, persisting before publishing and replying.
- Every process campaigns for the shows in ``{p}:auction:active`` (shows with a lot on screen, or that
  it sent a command to), so when the leader dies another takes over within the lease time and
  resumes from the last committed stream position: no accepted bid is lost, none is decided twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis
from starlette.concurrency import run_in_threadpool

from liveshow.auction.commands import Command
from liveshow.auction.errors import WriterUnavailable
from liveshow.auction.writer import Fenced, ShowWriter
from liveshow.clock import wall_ms

log = logging.getLogger(__name__)
LEASE_MS = 3000
RENEW_S = 0.8
CAMPAIGN_S = 0.25
BATCH = 500
REPLY_TIMEOUT = 10.0
IDLE_RELEASE_MS = 60_000

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class RedisDispatcher:
    def __init__(self, url: str, prefix: str, make_writer: Callable[[int], ShowWriter]) -> None:
        self.url = url
        self.prefix = prefix
        self.make_writer = make_writer
        self.token = uuid.uuid4().hex
        self.redis = aioredis.from_url(url, decode_responses=True)
        self._renew = self.redis.register_script(_RENEW)
        self._release = self.redis.register_script(_RELEASE)
        self.reply_key = f"{prefix}:auction:reply:{self.token}"
        self._futures: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._interest: set[int] = set()
        self._leading: dict[int, asyncio.Task[None]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self.writers: dict[int, ShowWriter] = {}

    def _key(self, show_id: int, what: str) -> str:
        return f"{self.prefix}:auction:{show_id}:{what}"

    @property
    def _active_key(self) -> str:
        return f"{self.prefix}:auction:active"

    async def start(self, show_ids: list[int]) -> None:
        if show_ids:
            await self.redis.sadd(self._active_key, *[str(s) for s in show_ids])
        self._tasks = [
            asyncio.create_task(self._read_replies(), name="auction-replies"),
            asyncio.create_task(self._campaign(), name="auction-campaign"),
        ]

    async def stop(self) -> None:
        tasks = [*self._tasks, *self._leading.values()]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for show_id in list(self._leading):
            with contextlib.suppress(Exception):
                await self._release(keys=[self._key(show_id, "leader")], args=[self.token])
        with contextlib.suppress(Exception):
            await self.redis.delete(self.reply_key)
        await self.redis.aclose()

    # ------------------------------------------------------------ asking

    async def submit(self, command: Command) -> dict[str, Any]:
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._futures[command.id] = future
        if command.show_id not in self._interest:
            self._interest.add(command.show_id)
            await self.redis.sadd(self._active_key, str(command.show_id))
        try:
            await self.redis.xadd(
                self._key(command.show_id, "cmds"),
                {"c": command.to_json(), "r": self.reply_key},
                maxlen=200_000,
                approximate=True,
            )
            return await asyncio.wait_for(future, REPLY_TIMEOUT)
        except TimeoutError as exc:
            raise WriterUnavailable("The show is busy; try again with the same key.") from exc
        finally:
            self._futures.pop(command.id, None)

    async def _read_replies(self) -> None:
        conn = aioredis.from_url(self.url, decode_responses=True)
        last = "$"
        try:
            while True:
                try:
                    resp: Any = await conn.xread({self.reply_key: last}, block=2000, count=1000)
                except (OSError, aioredis.ConnectionError) as exc:
                    log.warning("auction reply reader lost Redis: %s", exc)
                    await asyncio.sleep(0.5)
                    continue
                for _key, entries in resp or []:
                    for entry_id, fields in entries:
                        last = entry_id
                        future = self._futures.get(fields["id"])
                        if future is not None and not future.done():
                            future.set_result(json.loads(fields["a"]))
                if resp:
                    await conn.xtrim(self.reply_key, minid=last)
        finally:
            await conn.aclose()

    # ------------------------------------------------------------ leading

    async def _campaign(self) -> None:
        while True:
            try:
                members = {int(m) for m in await self.redis.smembers(self._active_key)} | self._interest
                for show_id in members:
                    task = self._leading.get(show_id)
                    if task is not None and not task.done():
                        continue
                    got = await self.redis.set(self._key(show_id, "leader"), self.token, nx=True, px=LEASE_MS)
                    if got:
                        self._leading[show_id] = asyncio.create_task(
                            self._lead(show_id), name=f"lead-{show_id}"
                        )
            except (OSError, aioredis.ConnectionError) as exc:
                log.warning("auction campaign lost Redis: %s", exc)
            await asyncio.sleep(CAMPAIGN_S)

    async def _lead(self, show_id: int) -> None:
        lease = self._key(show_id, "leader")
        lost = asyncio.Event()

        async def renew() -> None:
            while not lost.is_set():
                await asyncio.sleep(RENEW_S)
                try:
                    ok = await self._renew(keys=[lease], args=[self.token, LEASE_MS])
                except (OSError, aioredis.ConnectionError):
                    ok = 0
                if not ok:
                    lost.set()

        renewer = asyncio.create_task(renew())
        conn = aioredis.from_url(self.url, decode_responses=True)
        writer = self.make_writer(show_id)
        try:
            await run_in_threadpool(writer.acquire)
            self.writers[show_id] = writer
            await writer.announce_state()
            idle_since = wall_ms()
            while not lost.is_set():
                due = writer.due_ms()
                block = 200 if due is None else max(1, min(200, due - wall_ms()))
                resp: Any = await conn.xread(
                    {self._key(show_id, "cmds"): writer.stream_pos}, block=block, count=BATCH
                )
                entries = [e for _k, es in resp or [] for e in es]
                items = [(Command.from_json(f["c"]), f["r"]) for _id, f in entries]
                commands = [c for c, _r in items]
                due = writer.due_ms()
                if due is not None and wall_ms() >= due:
                    commands.insert(0, Command("tick", show_id, None, None))
                    items.insert(0, (commands[0], ""))
                if lost.is_set():
                    break
                if not commands:
                    if (
                        due is None
                        and wall_ms() - idle_since > IDLE_RELEASE_MS
                        and show_id not in self._interest
                    ):
                        await self.redis.srem(self._active_key, str(show_id))
                        break
                    continue
                idle_since = wall_ms()
                pos = entries[-1][0] if entries else None
                answers = await writer.run_batch(commands, pos)
                pipe = self.redis.pipeline(transaction=False)
                for (command, reply_key), (_c, answer) in zip(items, answers, strict=True):
                    if reply_key:
                        pipe.xadd(
                            reply_key,
                            {"id": command.id, "a": json.dumps(answer)},
                            maxlen=10_000,
                            approximate=True,
                        )
                        pipe.expire(reply_key, 3600)
                await pipe.execute()
        except Fenced:
            log.warning("show %s: another process took over; stepping down", show_id)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("writer for show %s stopped; the lease will move", show_id)
        finally:
            lost.set()
            renewer.cancel()
            self.writers.pop(show_id, None)
            with contextlib.suppress(Exception):
                await self._release(keys=[lease], args=[self.token])
            with contextlib.suppress(Exception):
                await conn.aclose()
