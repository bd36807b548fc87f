"""One writer per show across server processes, through Redis.

- Any process appends a command to the show's stream ``{p}:auction:{show}:cmds`` with the key of its
  own reply stream, and waits for the answer there (``{p}:auction:reply:{process}``). The process that
  leads the show puts its own sockets' commands straight into the writer's inbox instead and answers
  them there; should it stop leading first, they are refused at once ("try again with the same key").
- One process holds the show's lease ``{p}:auction:{show}:leader`` (SET NX PX, renewed by compare and
  PEXPIRE). On winning it, it bumps the show's epoch in the database (the fence: a writer that lost
  its lease while paused can no longer commit), loads the persisted state and stream position, and
  decides the commands in order, batch by batch, persisting before publishing and replying; the
  stream is read ahead while a batch is decided and persisted.
- Every process campaigns for the shows in ``{p}:auction:active`` (shows with a lot on screen, or that
  it sent a command to), so when the leader dies another takes over within the lease time and
  resumes from the last committed stream position: no accepted bid is lost, none is decided twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from starlette.concurrency import run_in_threadpool

from liveshow import jsonwire
from liveshow.auction.commands import Command
from liveshow.auction.errors import WriterUnavailable
from liveshow.auction.pacing import BATCH_EVERY_S, Pacer
from liveshow.auction.writer import Fenced, Replier, ShowWriter
from liveshow.clock import wall_ms
from liveshow.redisconn import connect
from liveshow.resp import RespConnection

log = logging.getLogger(__name__)
# A killed leader's show waits up to a lease for the next one: the field's target is decisions again
# within 3 s (bench/faults.py). Renewed every RENEW_S, so a loop running up to 1.5 s late keeps it.
LEASE_MS = 2000
RENEW_S = 0.5
CAMPAIGN_S = 0.25
BATCH = 100  # stream entries per read (each a group of commands)
GROUP = 200  # commands per stream entry
MAX_BATCH = 1000  # commands decided in one batch (plus the rest of its last stream entry: see _Inbox.take)
READ_AHEAD = 2000  # commands read from the stream ahead of the writer before reading pauses
# The reply key of a command from this process's own sockets while it leads the show: it is put
# straight into the leader's inbox and answered there (through the stream it would only come back).
LOCAL = "=local"
REPLY_TIMEOUT = 10.0
EXPIRE_EVERY_S = 0.25  # how often commands past their REPLY_TIMEOUT are refused (see _expire_forever)
BUSY = "The show is busy; try again with the same key."
# Housekeeping of the reply streams, off the per-batch path: each is a Redis round trip (a few hundred
# µs of redis-py on the event loop), and at thousands of bids a second there are hundreds of batches.
REPLY_TTL_S = 3600  # a dead process's reply stream goes away on its own
REPLY_TTL_RENEW_S = 60.0  # a leader renews that TTL at most this often per stream
TRIM_EVERY_S = 1.0  # a reader trims what it has read at most this often (XADD's MAXLEN bounds it too)
IDLE_RELEASE_MS = 60_000
# A process sends its sockets' commands to the leaders at most this often (group commit, as the
# leader's batches: see pacing.py); a command into a quiet show goes at once.
SEND_EVERY_S = 0.010

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class RedisDispatcher:
    def __init__(
        self,
        url: str,
        prefix: str,
        make_writer: Callable[[int], ShowWriter],
        idle_release_ms: int = IDLE_RELEASE_MS,
        reply_timeout: float = REPLY_TIMEOUT,
    ) -> None:
        self.url = url
        self.idle_release_ms = idle_release_ms
        self.reply_timeout = reply_timeout
        self.prefix = prefix
        self.make_writer = make_writer
        self.token = uuid.uuid4().hex
        self.redis = connect(url)
        # The hot loops' own lean connections (resp.py): the commands out, the replies in, the
        # replies of the shows led here out (one for all of them: each reply is one write).
        self._sender = RespConnection(url)
        self._replies_out = RespConnection(url)
        self._renew = self.redis.register_script(_RENEW)
        self._release = self.redis.register_script(_RELEASE)
        self.reply_key = f"{prefix}:auction:reply:{self.token}"
        self._futures: dict[str, asyncio.Future[dict[str, Any]]] = {}
        # (loop time after which it is refused, command id), oldest first: submit appends with the same
        # timeout, so the order of submission is the order of the deadlines.
        self._deadlines: deque[tuple[float, str]] = deque()
        # show -> when this process last sent it a command: it campaigns for the show while the answer
        # may still be pending, then lets go (a leader with nothing to do steps down after idling).
        self._interest: dict[int, int] = {}
        self._interest_ms = max(idle_release_ms, int(reply_timeout * 1000))
        self._leading: dict[int, asyncio.Task[None]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        # Commands waiting to be appended to their show's stream: one sender pipelines them all, so a
        # burst of bids costs one Redis round trip (and one connection), in the order they came.
        self._outbox: list[tuple[str, Command]] = []
        self._outbox_ready = asyncio.Event()
        self.writers: dict[int, ShowWriter] = {}
        self._inboxes: dict[int, _Inbox] = {}  # shows this process leads
        # reply stream -> when this process last renewed its TTL (one entry per submitting process
        # ever seen: a few per restart of a peer)
        self._ttl_renewed: dict[str, float] = {}

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
            asyncio.create_task(self._send_commands(), name="auction-sender"),
            asyncio.create_task(self._expire_forever(), name="auction-expiry"),
        ]

    async def stop(self) -> None:
        tasks = [*self._tasks, *self._leading.values()]
        for _round in range(3):
            # A blocking XREAD can swallow one cancellation (the client turns it into a read timeout
            # and retries): cancel again rather than wait for ever.
            pending = [t for t in tasks if not t.done()]
            if not pending:
                break
            for task in pending:
                task.cancel()
            await asyncio.wait(pending, timeout=2)
        for task in tasks:
            if task.done() and not task.cancelled():
                task.exception()  # retrieved: a crash was logged where it happened
        for command_id in list(self._futures):  # nothing here will answer them any more
            self._refuse(command_id)
        for show_id in list(self._leading):
            with contextlib.suppress(Exception):
                await self._release(keys=[self._key(show_id, "leader")], args=[self.token])
        with contextlib.suppress(Exception):
            await self.redis.delete(self.reply_key)
        await self.redis.aclose()
        await self._sender.close()
        await self._replies_out.close()

    # ------------------------------------------------------------ asking

    async def submit(self, command: Command) -> dict[str, Any]:
        """The command's answer; WriterUnavailable if it could not be sent or had no answer within
        the reply timeout (safe to send again with the same key: a decided command answers the same).

        One future per command and nothing else: the send and the timeout settle it from outside (see
        _send_commands, _expire_forever). A timeout per command (a timer made, rescheduled and
        cancelled on the event loop each time) was a tenth of a busy process's work on its sockets'
        bids in py-spy at 2,000 bids/s."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[dict[str, Any]] = loop.create_future()
        self._futures[command.id] = future
        self._deadlines.append((loop.time() + self.reply_timeout, command.id))
        now = wall_ms()  # one clock read for both
        fresh = not self._interested(command.show_id, now)
        self._interest[command.show_id] = now
        try:
            # Queued before anything is awaited, so one process's commands keep the order they came in.
            inbox = self._inboxes.get(command.show_id)
            if inbox is not None:
                inbox.put(command, LOCAL, None)
            else:
                self._outbox.append((self._key(command.show_id, "cmds"), command))
                self._outbox_ready.set()
            if fresh:
                await self.redis.sadd(self._active_key, str(command.show_id))
            return await future
        finally:
            self._futures.pop(command.id, None)

    def _answer(self, command_id: str, answer: dict[str, Any]) -> None:
        future = self._futures.get(command_id)
        if future is not None and not future.done():  # else timed out, or refused: nobody waits
            future.set_result(answer)

    def _refuse(self, command_id: str) -> None:
        future = self._futures.get(command_id)
        if future is not None and not future.done():
            future.set_exception(WriterUnavailable(BUSY))

    async def _expire_forever(self) -> None:
        loop = asyncio.get_running_loop()
        deadlines = self._deadlines
        while True:
            await asyncio.sleep(EXPIRE_EVERY_S)
            now = loop.time()
            while deadlines and deadlines[0][0] <= now:
                self._refuse(deadlines.popleft()[1])  # already answered: nothing left to refuse

    async def _send_commands(self) -> None:
        pacer = Pacer(SEND_EVERY_S)
        while True:
            await self._outbox_ready.wait()
            await pacer.next_round()  # the commands coming meanwhile go in the same send
            self._outbox_ready.clear()
            batch, self._outbox = self._outbox, []
            if not batch:
                continue
            # One stream entry per show per send, holding its commands in order: redis-py spends a
            # few hundred µs of Python per pipelined command, and the leader as much parsing an entry.
            per_stream: dict[str, list[Command]] = {}
            for stream, command in batch:
                per_stream.setdefault(stream, []).append(command)
            appends: list[list[str | int]] = [
                ["XADD", stream, "MAXLEN", "~", 200_000, "*", "cs", body, "r", self.reply_key]
                for stream, commands in per_stream.items()
                for body in (jsonwire.dumps([vars(c) for c in group]) for group in _chunks(commands, GROUP))
            ]
            try:
                await self._sender.pipeline(appends)
            except (OSError, aioredis.RedisError) as exc:
                log.warning("auction commands not sent to Redis: %s", exc)
                for _stream, command in batch:
                    self._refuse(command.id)

    def _leading_now(self, show_id: int) -> bool:
        task = self._leading.get(show_id)
        return task is not None and not task.done()

    def _interested(self, show_id: int, now_ms: int | None = None) -> bool:
        since = self._interest.get(show_id)
        return since is not None and (wall_ms() if now_ms is None else now_ms) - since < self._interest_ms

    async def _read_replies(self) -> None:
        conn = RespConnection(self.url)
        last = "$"
        loop = asyncio.get_running_loop()
        trimmed_at = loop.time()
        try:
            while True:
                try:
                    entries = await conn.xread(self.reply_key, last, count=1000, block_ms=2000)
                    for entry_id, fields in entries:
                        last = entry_id
                        # "b": a batch's answers (this version); "id"/"a": one answer, as a process
                        # of the previous version writes it during a rolling upgrade.
                        answers = (
                            jsonwire.loads(fields["b"])
                            if "b" in fields
                            else [(fields["id"], jsonwire.loads(fields["a"]))]
                        )
                        for command_id, answer in answers:
                            self._answer(command_id, answer)
                    if entries and loop.time() - trimmed_at >= TRIM_EVERY_S:
                        trimmed_at = loop.time()
                        await conn.call("XTRIM", self.reply_key, "MINID", last)
                except (OSError, aioredis.ConnectionError) as exc:
                    log.warning("auction reply reader lost Redis: %s", exc)
                    await asyncio.sleep(0.5)
        finally:
            await conn.close()

    # ------------------------------------------------------------ leading

    async def _campaign(self) -> None:
        while True:
            try:
                for show_id in [s for s in self._interest if not self._interested(s)]:
                    del self._interest[show_id]
                members = {int(m) for m in await self.redis.smembers(self._active_key)} | set(self._interest)
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

    def _replier(self, reply_keys: list[str]) -> Replier:
        async def reply(answers: list[tuple[Command, dict[str, Any]]]) -> None:
            # One stream entry per submitting process per batch, holding all of its answers: a batch
            # of a hundred bids from two processes is two XADDs, not a hundred (redis-py spends a
            # few hundred µs of Python per pipelined command, on the leader's event loop).
            grouped: dict[str, list[tuple[str, dict[str, Any]]]] = {}
            for reply_key, (command, answer) in zip(reply_keys, answers, strict=True):
                if reply_key == LOCAL:
                    self._answer(command.id, answer)
                elif reply_key:
                    grouped.setdefault(reply_key, []).append((command.id, answer))
            if not grouped:
                return
            writes: list[list[str | int]] = []
            now = time.monotonic()
            for reply_key, batch in grouped.items():
                writes.append(["XADD", reply_key, "MAXLEN", "~", 10_000, "*", "b", jsonwire.dumps(batch)])
                if now - self._ttl_renewed.get(reply_key, -REPLY_TTL_RENEW_S) >= REPLY_TTL_RENEW_S:
                    self._ttl_renewed[reply_key] = now
                    writes.append(["EXPIRE", reply_key, REPLY_TTL_S])
            await self._replies_out.pipeline(writes)

        return reply

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
        conn = RespConnection(self.url)
        writer = self.make_writer(show_id)
        inbox = _Inbox()
        reader: asyncio.Task[None] | None = None

        async def read_ahead() -> None:
            """Read the show's stream into the inbox while the writer decides and persists, so the
            next batch is already here when the current one is done."""
            stream, pos = self._key(show_id, "cmds"), writer.stream_pos
            try:
                while not lost.is_set():
                    if len(inbox.items) >= READ_AHEAD:  # the writer is behind: let it catch up
                        inbox.drained.clear()
                        await inbox.drained.wait()
                        continue
                    for entry_id, fields in await conn.xread(stream, pos, count=BATCH, block_ms=1000):
                        for command in _commands_of(fields):
                            inbox.put(command, fields["r"], entry_id)
                        pos = entry_id
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("show %s: reading its commands failed; the lease will move", show_id)
                lost.set()
                inbox.arrived.set()

        try:
            await run_in_threadpool(writer.acquire)
            self.writers[show_id] = writer
            await writer.announce_state()
            reader = asyncio.create_task(read_ahead(), name=f"lead-{show_id}-read")
            self._inboxes[show_id] = inbox
            idle_since = wall_ms()
            pacer = Pacer(BATCH_EVERY_S)
            while not lost.is_set():
                due = writer.due_ms()
                if not inbox.items:
                    wait = 0.2 if due is None else max(0.001, min(0.2, (due - wall_ms()) / 1000))
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(wait):
                            await inbox.arrived.wait()
                await pacer.next_round(0 < len(inbox.items) < MAX_BATCH)
                if lost.is_set():
                    break
                taken = inbox.take(MAX_BATCH)
                items = [(command, reply_key) for command, reply_key, _id in taken]
                due = writer.due_ms()
                if due is not None and wall_ms() >= due:
                    items.insert(0, (Command("tick", show_id, None, None), ""))
                if not items:
                    if (
                        due is None
                        and wall_ms() - idle_since > self.idle_release_ms
                        and not self._interested(show_id)
                    ):
                        # Nothing to decide and no clock to keep: let go of the show; whoever sends
                        # it the next command campaigns for it again.
                        await self.redis.srem(self._active_key, str(show_id))
                        log.info("show %s: idle, writer steps down", show_id)
                        break
                    continue
                idle_since = wall_ms()
                pos = next((entry_id for _c, _r, entry_id in reversed(taken) if entry_id), None)
                reply_keys = [reply_key for _c, reply_key in items]
                try:
                    await writer.run_batch([c for c, _r in items], pos, self._replier(reply_keys))
                except BaseException:
                    self._fail_local(taken)
                    raise
        except Fenced:
            log.warning("show %s: another process took over; stepping down", show_id)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("writer for show %s stopped; the lease will move", show_id)
        finally:
            lost.set()
            self._inboxes.pop(show_id, None)
            # Local commands not decided here go back to their sockets at once, to be sent again
            # with the same key (to whoever leads next); stream commands wait there for the next
            # leader, which reads from the last persisted position.
            self._fail_local(inbox.take(len(inbox.items)))
            renewer.cancel()
            if reader is not None:
                reader.cancel()
                await asyncio.wait([reader], timeout=2)
            self.writers.pop(show_id, None)
            await writer.close()
            with contextlib.suppress(Exception):
                await self._release(keys=[lease], args=[self.token])
            with contextlib.suppress(Exception):
                await conn.close()

    def _fail_local(self, items: list[tuple[Command, str, str | None]]) -> None:
        for command, reply_key, _id in items:
            if reply_key == LOCAL:
                self._refuse(command.id)


@dataclass(eq=False)
class _Inbox:
    """What the leader of a show has yet to decide, in order: commands read from the stream ahead of
    the writer, and commands from this process's own sockets."""

    items: list[tuple[Command, str, str | None]] = field(default_factory=list)  # reply key, entry id
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    drained: asyncio.Event = field(default_factory=asyncio.Event)

    def put(self, command: Command, reply_key: str, entry_id: str | None) -> None:
        self.items.append((command, reply_key, entry_id))
        self.arrived.set()

    def take(self, limit: int) -> list[tuple[Command, str, str | None]]:
        """Up to ``limit`` commands, and then the rest of the stream entry the last one came from.

        The leader persists the position of the last entry it took: a batch that ended inside an entry
        would mark the whole entry done, and a leader taking over after that batch would never decide
        the rest of it. So a batch may run past ``limit`` by less than one entry (GROUP commands)."""
        end = min(limit, len(self.items))
        last_entry = self.items[end - 1][2] if end else None
        if last_entry is not None:
            while end < len(self.items) and self.items[end][2] == last_entry:
                end += 1
        taken, self.items = self.items[:end], self.items[end:]
        if not self.items:
            self.arrived.clear()
        self.drained.set()
        return taken


def _chunks(items: list[Command], size: int) -> list[list[Command]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _commands_of(fields: dict[str, str]) -> list[Command]:
    """The commands of one stream entry: "cs", several in order (this version); "c", one, as a process
    of the previous version appends it during a rolling upgrade."""
    if "cs" in fields:
        return [Command(**item) for item in jsonwire.loads(fields["cs"])]
    return [Command.from_json(fields["c"])]
