"""Recordings as the app keeps them: a recorder per live show, rows in ``recordings``, retention, deletion.

Each recording's row is kept by its RecordingBook (``bookkeeping.py``); this service runs the task that
writes the rows the database refused when it answers again, and at start-up and every SWEEP_EVERY
settles what a stopped process left: journals (``journal.py``) and rows still "recording".
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlmodel import Session, col, select
from starlette.concurrency import run_in_threadpool

from liveshow.clock import utcnow
from liveshow.db import Database
from liveshow.errors import Conflict, Forbidden, NotFound
from liveshow.media.frames import MediaSink
from liveshow.media.recorder import Recorder
from liveshow.media.replay_files import CorruptRecording, repair
from liveshow.replay import journal
from liveshow.replay.bookkeeping import RecordingBook, settle_cut_file, store
from liveshow.replay.journal import FileLock
from liveshow.replay.models import Recording
from liveshow.settings import Settings
from liveshow.shows.models import Show

log = logging.getLogger(__name__)

CLEANUP_EVERY = 3600.0
# Seconds between tries to write rows the database refused, and between sweeps for what a stopped
# process left behind (journals, rows still "recording").
RETRY_EVERY = 1.0
SWEEP_EVERY = 30.0


class RecordingService:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        keyframe_request: Callable[[int], None] | None = None,
    ) -> None:
        self.db = db
        self.directory: Path = settings.recordings_dir
        self.retention_days = settings.recording_retention_days
        self.keyframe_interval = settings.recording_keyframe_interval
        # Asks the relay for a keyframe from the show's source: keyframes are where a replay can seek.
        self.keyframe_request = keyframe_request
        self.active: dict[int, Recorder] = {}
        # Shows that air a recording are not recorded again.
        self.not_recorded: set[int] = set()
        # Books whose row is not final yet, by file name (touched from writer threads too).
        self.books: dict[str, RecordingBook] = {}
        self._books_lock = threading.Lock()
        self._tasks: list[asyncio.Task[None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None

    # ------------------------------------------------------------ the relay's sink factory

    def sink_for_show(self, show_id: int) -> MediaSink | None:
        if show_id in self.not_recorded or show_id in self.active:
            return None
        stem = self.directory / f"show-{show_id}-{secrets.token_hex(4)}"
        recorder = Recorder(stem, RecordingBook(self, show_id))
        self.active[show_id] = recorder
        return recorder

    # ------------------------------------------------------------ what a book asks of its service

    def forget(self, show_id: int) -> None:
        self.active.pop(show_id, None)

    def enlist(self, book: RecordingBook) -> None:
        assert book.entry is not None
        with self._books_lock:
            self.books[book.entry.path] = book

    def retire(self, book: RecordingBook) -> None:
        if book.entry is not None:
            with self._books_lock:
                if self.books.get(book.entry.path) is book:
                    del self.books[book.entry.path]

    def wake(self) -> None:
        """A book changed: have the bookkeeping task write it (from any thread)."""
        loop, event = self._loop, self._wake
        if loop is None or event is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop is closing: stop() writes what is left
            loop.call_soon_threadsafe(event.set)

    def sync_books(self) -> bool:
        """Write every changed book's row; False when the database refused one of them."""
        with self._books_lock:
            books = list(self.books.values())
        return all([book.sync() for book in books if book.dirty])

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._loop, self._wake = asyncio.get_running_loop(), asyncio.Event()
        try:
            await run_in_threadpool(self.recover_interrupted)
        except Exception as exc:
            # The database may be down as we start: the bookkeeping task's sweeps try again.
            log.warning("recordings not recovered yet (%s: %s)", type(exc).__name__, exc)
        self._tasks.append(asyncio.create_task(self._bookkeeping_forever(), name="recordings-rows"))
        self._tasks.append(asyncio.create_task(self._cleanup_forever(), name="recordings-cleanup"))
        if self.keyframe_interval > 0 and self.keyframe_request is not None:
            self._tasks.append(asyncio.create_task(self._keyframes_forever(), name="recordings-keyframes"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        recorders = list(self.active.values())
        for recorder in recorders:
            recorder.close()
        for recorder in recorders:
            await run_in_threadpool(recorder.wait, 15.0)
        self._loop = self._wake = None
        # A last try; what the database does not take stays in the journals for the next start.
        await run_in_threadpool(self.sync_books)
        with self._books_lock:
            books = list(self.books.values())
            self.books.clear()
        for book in books:
            book.release()

    async def _bookkeeping_forever(self) -> None:
        assert self._wake is not None
        wake = self._wake
        next_sweep = time.monotonic() + SWEEP_EVERY
        behind = False
        while True:
            if behind:
                # The database refused: try again in a while, however often the books change meanwhile.
                await asyncio.sleep(RETRY_EVERY)
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), SWEEP_EVERY)
            wake.clear()
            behind = not await run_in_threadpool(self.sync_books)
            if time.monotonic() >= next_sweep:
                try:
                    await run_in_threadpool(self.recover_interrupted, True)
                    next_sweep = time.monotonic() + SWEEP_EVERY
                except Exception as exc:
                    log.warning("recordings not recovered yet (%s: %s)", type(exc).__name__, exc)
                    next_sweep = time.monotonic() + RETRY_EVERY
                    behind = True

    async def _cleanup_forever(self) -> None:
        while True:
            try:
                await run_in_threadpool(self.cleanup_expired)
            except Exception:
                log.exception("recording cleanup failed")
            await asyncio.sleep(CLEANUP_EVERY)

    async def _keyframes_forever(self) -> None:
        assert self.keyframe_request is not None
        while True:
            await asyncio.sleep(self.keyframe_interval)
            for show_id in list(self.active):
                try:
                    self.keyframe_request(show_id)
                except Exception:
                    log.exception("keyframe request for show %s failed", show_id)

    def recover_interrupted(self, sweep: bool = False) -> int:
        """Settle what a stopped process left: its journals, then rows still "recording" without one.

        A file another process still writes (it holds the file's lock) is left alone. A file that was
        cut keeps what is playable and becomes complete. Returns how many recordings were completed.
        ``sweep`` (the periodic pass while running): a row whose file is not in this directory is left
        alone, as it may be recorded on another machine; only start-up marks such a row deleted.
        """
        return self._recover_journals() + self._recover_rows(missing_is_lost=not sweep)

    def _recover_journals(self) -> int:
        fixed = 0
        for path in journal.pending(self.directory):
            media = journal.media_of(path)
            with self._books_lock:
                mine = media.name in self.books
            if mine:
                continue
            with self._claimed(media) as ours:
                # Read under the lock: its writer may have settled it just before letting go.
                entry = journal.read(path) if ours else None
                if entry is None:
                    continue
                if not media.is_file():
                    entry.status = "deleted"
                elif not entry.final:
                    settle_cut_file(self.directory, entry)
                    journal.write(self.directory, entry)
                store(self.db, entry)
                journal.remove(self.directory, entry)
                fixed += entry.status == "complete"
                log.info("recording %s of show %s settled: %s", entry.path, entry.show_id, entry.status)
        return fixed

    def _recover_rows(self, missing_is_lost: bool) -> int:
        fixed = 0
        with self.db.session() as session:
            rows = session.exec(select(Recording).where(Recording.status == "recording")).all()
            for row in rows:
                path = self.directory / row.path
                with self._books_lock:
                    mine = row.path in self.books
                if mine or row.show_id in self.active or journal.journal_of(path).exists():
                    continue
                if not missing_is_lost and not path.exists():
                    continue
                with self._claimed(path) as ours:
                    if not ours:
                        continue
                    session.refresh(row)  # under the lock: its writer may have just finished it
                    if row.status != "recording":
                        continue
                    try:
                        probed = repair(path)
                        row.duration_ms, row.bytes, row.status = (
                            probed.duration_ms,
                            path.stat().st_size,
                            "complete",
                        )
                        fixed += 1
                    except CorruptRecording as exc:
                        log.warning("recording %s unrecoverable: %s", row.path, exc)
                        path.unlink(missing_ok=True)
                        row.status = "deleted"
                    row.finished_at = utcnow()
                    session.add(row)
                    session.commit()
        return fixed

    @staticmethod
    @contextlib.contextmanager
    def _claimed(path: Path) -> Iterator[bool]:
        """True while this process may settle the file (its lock held, or no file at all); False when
        another process holds the lock: it is still recording there."""
        try:
            lock = FileLock.try_acquire(path)
        except FileNotFoundError:
            yield True
            return
        if lock is None:
            yield False
            return
        try:
            yield True
        finally:
            lock.release()

    def cleanup_expired(self, now: datetime | None = None) -> int:
        if self.retention_days <= 0:
            return 0
        cutoff = (now or utcnow()) - timedelta(days=self.retention_days)
        with self.db.session() as session:
            rows = session.exec(
                select(Recording).where(Recording.status == "complete", col(Recording.started_at) < cutoff)
            ).all()
            for row in rows:
                (self.directory / row.path).unlink(missing_ok=True)
                row.status = "deleted"
                session.add(row)
            session.commit()
        if rows:
            log.info("retention: deleted %d recordings older than %d days", len(rows), self.retention_days)
        return len(rows)

    # ------------------------------------------------------------ queries and commands

    def delete(self, session: Session, show: Show, user_id: int) -> int:
        if show.seller_id != user_id:
            raise Forbidden("Only the show's seller can delete its recording.")
        rows = session.exec(
            select(Recording).where(Recording.show_id == show.id, Recording.status != "deleted")
        ).all()
        if not rows:
            raise NotFound("This show has no recording to delete.")
        if any(r.status == "recording" for r in rows):
            raise Conflict("The show is still being recorded; end it first.")
        for row in rows:
            (self.directory / row.path).unlink(missing_ok=True)
            row.status = "deleted"
            session.add(row)
        session.commit()
        log.info("seller %s deleted the recording of show %s", user_id, show.id)
        return len(rows)

    def file_path(self, row: Recording) -> Path:
        return self.directory / row.path


def best_recording(session: Session, show_id: int) -> Recording | None:
    """The replay's recording: the longest complete one (a crash mid-show can leave two)."""
    rows = session.exec(
        select(Recording)
        .where(Recording.show_id == show_id, Recording.status == "complete")
        .order_by(col(Recording.duration_ms).desc(), col(Recording.id))
    ).all()
    return rows[0] if rows else None


def anchors_of(row: Recording) -> list[tuple[int, int]]:
    raw: Any = json.loads(row.anchors or "[]")
    return [(int(a), int(b)) for a, b in raw]
