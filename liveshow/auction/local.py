"""The in-process writer: one asyncio task per show takes commands from a queue, in order.

Used with the memory bus (one server process). The Redis twin (distributed.py) keeps the same
ShowWriter and adds a command stream and a leader lease so that several processes share one writer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from starlette.concurrency import run_in_threadpool

from liveshow.auction.commands import Command
from liveshow.auction.errors import WriterUnavailable
from liveshow.auction.pacing import BATCH_EVERY_S, Pacer
from liveshow.auction.writer import Fenced, ShowWriter
from liveshow.clock import wall_ms

log = logging.getLogger(__name__)
BATCH = 500
REPLY_TIMEOUT = 10.0
FENCED_REASON = "Another server process decides for this show; run every process with the Redis bus."

Item = tuple[Command, "asyncio.Future[dict[str, Any]] | None"]


class LocalDispatcher:
    def __init__(self, make_writer: Callable[[int], ShowWriter]) -> None:
        self.make_writer = make_writer
        self._queues: dict[int, asyncio.Queue[Item]] = {}
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self.writers: dict[int, ShowWriter] = {}
        # Shows another process took over (only when two processes share a database without the Redis
        # bus, a misconfiguration): this process stops deciding for them instead of retrying forever.
        self.fenced: set[int] = set()

    async def start(self, show_ids: list[int]) -> None:
        for show_id in show_ids:  # open lots left by a previous run: their clocks must keep going
            self._ensure(show_id)

    async def stop(self) -> None:
        for task in self._tasks.values():
            task.cancel()
        for task in list(self._tasks.values()):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()

    def _ensure(self, show_id: int) -> asyncio.Queue[Item]:
        queue = self._queues.get(show_id)
        if queue is None:
            queue = self._queues[show_id] = asyncio.Queue()
        task = self._tasks.get(show_id)
        if task is None or task.done():
            self._tasks[show_id] = asyncio.create_task(self._run(show_id, queue), name=f"writer-{show_id}")
        return queue

    async def submit(self, command: Command) -> dict[str, Any]:
        if command.show_id in self.fenced:
            raise WriterUnavailable(FENCED_REASON)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._ensure(command.show_id).put_nowait((command, future))
        try:
            return await asyncio.wait_for(future, REPLY_TIMEOUT)
        except TimeoutError as exc:
            raise WriterUnavailable("The show is busy; try again.") from exc

    async def _run(self, show_id: int, queue: asyncio.Queue[Item]) -> None:
        writer = self.make_writer(show_id)
        try:
            await run_in_threadpool(writer.acquire)
            self.writers[show_id] = writer
            await self._decide_forever(show_id, queue, writer)
        finally:
            await writer.close()

    async def _decide_forever(self, show_id: int, queue: asyncio.Queue[Item], writer: ShowWriter) -> None:
        pacer = Pacer(BATCH_EVERY_S)
        while True:
            due = writer.due_ms()
            timeout = None if due is None else max(0.0, (due - wall_ms()) / 1000)
            items: list[Item] = []
            try:
                items.append(await asyncio.wait_for(queue.get(), timeout))
            except TimeoutError:
                pass
            await pacer.next_round(bool(items) and queue.qsize() < BATCH)
            while items and len(items) < BATCH and not queue.empty():
                items.append(queue.get_nowait())
            due = writer.due_ms()
            if due is not None and wall_ms() >= due:
                items.insert(0, (Command("tick", show_id, None, None), None))
            if not items:
                continue
            try:
                answers = await writer.run_batch([c for c, _f in items])
            except Fenced:
                log.error("show %s: another process took over its writer; stopping here", show_id)
                self.fenced.add(show_id)
                self.writers.pop(show_id, None)
                while not queue.empty():
                    items.append(queue.get_nowait())
                for _c, future in items:
                    if future is not None and not future.done():
                        future.set_exception(WriterUnavailable(FENCED_REASON))
                return
            except Exception as exc:
                log.exception("writer for show %s failed a batch", show_id)
                for _c, future in items:
                    if future is not None and not future.done():
                        future.set_exception(WriterUnavailable("The show is busy; try again."))
                if not isinstance(exc, OSError):
                    await asyncio.sleep(0.2)
                await self._reload(writer)
                continue
            for (_c, future), (_cmd, reply) in zip(items, answers, strict=True):
                if future is not None and not future.done():
                    future.set_result(reply)

    @staticmethod
    async def _reload(writer: ShowWriter) -> None:
        """After a failed batch, start again from what the database holds: a commit whose answer was
        lost with the connection may have landed, and deciding on from memory would reuse its seq."""
        try:
            await run_in_threadpool(writer.acquire)
        except Exception:
            log.exception(
                "show %s: reloading the writer's state failed; the next batch tries again", writer.show_id
            )
