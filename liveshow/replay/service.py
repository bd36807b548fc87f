"""Recordings as the app keeps them: a recorder per live show, rows in ``recordings``, retention, deletion.

The recorder's callbacks run in its writer thread and write the row there (sync DB sessions).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlmodel import Session, col, select
from starlette.concurrency import run_in_threadpool

from liveshow.clock import utcnow
from liveshow.db import Database
from liveshow.errors import Conflict, Forbidden, NotFound
from liveshow.media.frames import MediaSink
from liveshow.media.recorder import Recorder, RecordingInfo, RecordingListener
from liveshow.media.replay_files import CorruptRecording, repair
from liveshow.replay.models import Recording
from liveshow.settings import Settings
from liveshow.shows.models import Show

log = logging.getLogger(__name__)

CLEANUP_EVERY = 3600.0


def wall(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


class _RowWriter(RecordingListener):
    """Keeps one recording's row up to date from the writer thread."""

    def __init__(self, service: RecordingService, show_id: int) -> None:
        self.service = service
        self.show_id = show_id
        self.row_id: int | None = None

    def started(self, info: RecordingInfo) -> None:
        with self.service.db.session() as session:
            row = Recording(
                show_id=self.show_id,
                path=info.path.name,
                container=info.container,
                codecs=info.codecs,
                started_at=wall(info.started_wall_ms),
                anchors=json.dumps(info.anchors),
            )
            session.add(row)
            session.commit()
            self.row_id = row.id
        log.info("recording show %s to %s", self.show_id, info.path.name)

    def progress(self, info: RecordingInfo) -> None:
        self._update(info, status=None)

    def finished(self, info: RecordingInfo) -> None:
        self._update(info, status="complete")
        self.service.forget(self.show_id)
        log.info("recording of show %s complete: %d ms, %d bytes", self.show_id, info.duration_ms, info.bytes)

    def failed(self, info: RecordingInfo | None, error: BaseException) -> None:
        self.service.forget(self.show_id)
        if info is None or self.row_id is None:
            return
        try:
            probed = repair(info.path)
            info.duration_ms, info.bytes = probed.duration_ms, info.path.stat().st_size
            self._update(info, status="complete")
        except CorruptRecording:
            info.path.unlink(missing_ok=True)
            self._update(info, status="deleted")

    def _update(self, info: RecordingInfo, status: str | None) -> None:
        if self.row_id is None:
            return
        with self.service.db.session() as session:
            row = session.get(Recording, self.row_id)
            if row is None:
                return
            row.duration_ms, row.bytes, row.anchors = info.duration_ms, info.bytes, json.dumps(info.anchors)
            if status is not None and row.status == "recording":
                row.status = status
                row.finished_at = utcnow()
            session.add(row)
            session.commit()


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
        self._tasks: list[asyncio.Task[None]] = []

    # ------------------------------------------------------------ the relay's sink factory

    def sink_for_show(self, show_id: int) -> MediaSink | None:
        if show_id in self.not_recorded or show_id in self.active:
            return None
        stem = self.directory / f"show-{show_id}-{secrets.token_hex(4)}"
        recorder = Recorder(stem, _RowWriter(self, show_id))
        self.active[show_id] = recorder
        return recorder

    def forget(self, show_id: int) -> None:
        self.active.pop(show_id, None)

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        await run_in_threadpool(self.recover_interrupted)
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

    def recover_interrupted(self) -> int:
        """Recordings left "recording" by a killed server: keep what is playable, mark them complete."""
        fixed = 0
        with self.db.session() as session:
            rows = session.exec(select(Recording).where(Recording.status == "recording")).all()
            for row in rows:
                if row.show_id in self.active:
                    continue
                path = self.directory / row.path
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
