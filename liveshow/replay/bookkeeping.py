"""One recording's row, kept up to date without ever holding the recording up.

The recorder's callbacks (its writer thread) only change the entry in memory and in its journal
(``liveshow.replay.journal``): local file writes. The row is written by ``sync``, from the service's
bookkeeping task and, once the file is finished, tried once straight away from the writer thread
(its work is done, so a slow database delays nothing). A database that refuses leaves the entry
dirty and the task tries again until it takes it: an outage pauses the bookkeeping, not the file.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from sqlmodel import select

from liveshow.clock import utcnow, wall_ms
from liveshow.db import Database
from liveshow.media.recorder import RecordingInfo, RecordingListener
from liveshow.media.replay_files import CorruptRecording, repair
from liveshow.replay import journal
from liveshow.replay.journal import Entry, FileLock
from liveshow.replay.models import Recording

log = logging.getLogger(__name__)


def wall(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


class BookOwner(Protocol):
    """What a book needs from the service that keeps it (given, not imported: no cycle)."""

    db: Database
    directory: Path

    def forget(self, show_id: int) -> None: ...

    def wake(self) -> None: ...

    def retire(self, book: RecordingBook) -> None: ...

    def enlist(self, book: RecordingBook) -> None: ...


def store(db: Database, entry: Entry, row_id: int | None = None) -> int:
    """Write the entry to its row, creating the row if there is none yet; returns the row's id.

    Found by (show, file name) when the id is not known: an insert whose commit went through while
    its connection broke is not inserted twice. The status only moves on from "recording".
    """
    with db.session() as session:
        row = session.get(Recording, row_id) if row_id is not None else None
        if row is None:
            row = session.exec(
                select(Recording).where(Recording.show_id == entry.show_id, Recording.path == entry.path)
            ).first()
        if row is None:
            row = Recording(
                show_id=entry.show_id,
                path=entry.path,
                container=entry.container,
                codecs=entry.codecs,
                started_at=wall(entry.started_wall_ms),
            )
        row.duration_ms, row.bytes, row.anchors = entry.duration_ms, entry.bytes, json.dumps(entry.anchors)
        if entry.final and row.status == "recording":
            row.status = entry.status
            row.finished_at = wall(entry.finished_wall_ms) if entry.finished_wall_ms else utcnow()
        session.add(row)
        session.commit()
        assert row.id is not None
        return row.id


def settle_cut_file(directory: Path, entry: Entry) -> None:
    """A recording that stopped without closing its file: keep what plays (complete), else delete it."""
    path = directory / entry.path
    try:
        probed = repair(path)
        entry.duration_ms, entry.bytes, entry.status = probed.duration_ms, path.stat().st_size, "complete"
    except CorruptRecording as exc:
        log.warning("recording %s unrecoverable: %s", entry.path, exc)
        path.unlink(missing_ok=True)
        entry.status = "deleted"
    entry.finished_wall_ms = entry.finished_wall_ms or wall_ms()


class RecordingBook(RecordingListener):
    """The recorder's listener for one show: the entry, its journal, its row."""

    def __init__(self, owner: BookOwner, show_id: int) -> None:
        self.owner = owner
        self.show_id = show_id
        self.row_id: int | None = None
        self.entry: Entry | None = None
        self.lock: FileLock | None = None
        self._state = threading.Lock()  # the entry and its version
        self._syncing = threading.Lock()  # one row write at a time
        self._version = 0
        self._synced = 0

    @property
    def dirty(self) -> bool:
        return self.entry is not None and self._version != self._synced

    # ------------------------------------------------------------ the recorder's callbacks

    def started(self, info: RecordingInfo) -> None:
        # Held until the row is final, so no other process takes the file for a cut one (journal.py).
        try:
            self.lock = FileLock.try_acquire(info.path, create=True)
        except OSError:
            log.exception("recording %s: no lock on the file; the row is kept all the same", info.path.name)
        entry = Entry(
            show_id=self.show_id,
            path=info.path.name,
            container=info.container,
            codecs=info.codecs,
            started_wall_ms=info.started_wall_ms,
            anchors=list(info.anchors),
        )
        with self._state:
            self.entry = entry
            self._version += 1
        self.owner.enlist(self)
        self._changed()
        log.info("recording show %s to %s", self.show_id, info.path.name)

    def progress(self, info: RecordingInfo) -> None:
        self._take(info, status=None)

    def finished(self, info: RecordingInfo) -> None:
        self._take(info, status="complete")
        self.owner.forget(self.show_id)
        log.info("recording of show %s complete: %d ms, %d bytes", self.show_id, info.duration_ms, info.bytes)
        self.sync()

    def failed(self, info: RecordingInfo | None, error: BaseException) -> None:
        self.owner.forget(self.show_id)
        if info is None or self.entry is None:
            return
        self._take(info, status=None)
        with self._state:
            settle_cut_file(self.owner.directory, self.entry)
            self._version += 1
        if self.lock is not None and self.entry.status == "complete":
            # repair() replaced the file: the lock must be on the new one.
            self.lock.release()
            self.lock = FileLock.try_acquire(self.owner.directory / self.entry.path)
        self._changed()
        self.sync()

    # ------------------------------------------------------------ the row

    def sync(self) -> bool:
        """Bring the row up to the entry; False (logged) when the database did not take it."""
        with self._syncing:
            with self._state:
                if self.entry is None:
                    return True
                entry, version = replace(self.entry, anchors=list(self.entry.anchors)), self._version
            if version == self._synced:
                return True
            try:
                self.row_id = store(self.owner.db, entry, self.row_id)
            except Exception as exc:
                # Retried by the service's bookkeeping task; the journal holds it meanwhile.
                log.warning("recording %s: row not written yet (%s: %s)", entry.path, type(exc).__name__, exc)
                return False
            self._synced = version
            if entry.final and not self.dirty:
                journal.remove(self.owner.directory, entry)
                self.release()
                self.owner.retire(self)
            return True

    def release(self) -> None:
        if self.lock is not None:
            self.lock.release()
            self.lock = None

    # ------------------------------------------------------------ plumbing

    def _take(self, info: RecordingInfo, status: str | None) -> None:
        with self._state:
            if self.entry is None:
                return
            self.entry.duration_ms, self.entry.bytes = info.duration_ms, info.bytes
            self.entry.anchors = list(info.anchors)
            if status is not None:
                self.entry.status = status
                self.entry.finished_wall_ms = wall_ms()
            self._version += 1
        self._changed()

    def _changed(self) -> None:
        with self._state:
            entry = replace(self.entry, anchors=list(self.entry.anchors)) if self.entry else None
        if entry is not None:
            try:
                journal.write(self.owner.directory, entry)
            except OSError:
                log.exception("recording %s: journal not written", entry.path)
        self.owner.wake()
