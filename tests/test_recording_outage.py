"""Recordings outlive the database (issue #20): a crash of PostgreSQL mid-show pauses the recording's
bookkeeping, never the file; the row catches up when the database is back, also across a server restart
during the outage, and no process cuts a file another process is still writing."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select
from starlette.concurrency import run_in_threadpool

from bench.services import PrivatePostgres
from liveshow.accounts.service import create_user
from liveshow.clock import utcnow
from liveshow.db import Database
from liveshow.media import synthetic
from liveshow.media.frames import EncodedFrame
from liveshow.media.recorder import MuxWriter
from liveshow.media.replay_files import probe
from liveshow.replay import journal
from liveshow.replay.journal import Entry, FileLock
from liveshow.replay.models import Recording
from liveshow.replay.service import RecordingService
from liveshow.shows.models import Show
from tests.conftest import make_settings

SECONDS = 6


def new_show(db: Database) -> int:
    with db.session() as session:
        seller = create_user(session, f"seller{time.monotonic_ns() % 10**9}", "correct horse battery")
        show = Show(seller_id=seller.id, title="Outage sale", stream_key="k" * 32, state="live")
        session.add(show)
        session.commit()
        session.refresh(show)
        assert show.id is not None
        return show.id


def rows_of(db: Database, show_id: int) -> list[Recording]:
    with db.session() as session:
        return list(session.exec(select(Recording).where(Recording.show_id == show_id)).all())


def media(seconds: float = SECONDS) -> list[EncodedFrame]:
    return synthetic.interleaved(
        list(synthetic.video_frames(seconds, gop=15)), list(synthetic.audio_frames(seconds))
    )


async def until(condition: Callable[[], Any], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            got = await run_in_threadpool(condition)
        except Exception:  # the database is still coming back
            got = None
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.1)


@pytest.fixture
def outage_db(private_pg: PrivatePostgres) -> tuple[PrivatePostgres, str]:
    return private_pg, private_pg.new_database()


def test_recording_outlives_a_database_crash_mid_show(
    tmp_path: Path, outage_db: tuple[PrivatePostgres, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    pg, url = outage_db
    monkeypatch.setattr("liveshow.media.recorder.PROGRESS_EVERY", 0.2)
    settings = make_settings(tmp_path, url)
    db = Database(url)
    show_id = new_show(db)
    frames = media()

    async def main() -> None:
        service = RecordingService(db, settings)
        await service.start()
        try:
            sink = service.sink_for_show(show_id)
            assert sink is not None
            recorder = service.active[show_id]
            third = len(frames) // 3
            for frame in frames[:third]:
                sink.on_frame(frame)
            await until(lambda: rows_of(db, show_id))
            await run_in_threadpool(pg.crash)
            for frame in frames[third:]:
                sink.on_frame(frame)
                await asyncio.sleep(0.0005)  # some progress reports land in the outage
            sink.close()
            assert await run_in_threadpool(recorder.wait, 30)
            assert recorder.error is None
            assert recorder.info is not None
            path = recorder.info.path
            # The database is down: what the row should say waits in the journal.
            entry = journal.read(journal.journal_of(path))
            assert entry is not None and entry.status == "complete"
            assert abs(entry.duration_ms - SECONDS * 1000) < 500
            await run_in_threadpool(pg.start)
            rows = await until(lambda: [r for r in rows_of(db, show_id) if r.status == "complete"])
            assert len(rows) == 1 and len(rows_of(db, show_id)) == 1
            row = rows[0]
            assert abs(row.duration_ms - SECONDS * 1000) < 500
            assert row.bytes == path.stat().st_size
            assert abs(probe(path).duration_ms - SECONDS * 1000) < 500
            await until(lambda: not journal.journal_of(path).exists())
            assert service.books == {}
        finally:
            await service.stop()

    try:
        asyncio.run(main())
    finally:
        db.close()


def test_server_restart_during_the_outage_keeps_the_whole_recording(
    tmp_path: Path, outage_db: tuple[PrivatePostgres, str]
) -> None:
    pg, url = outage_db
    settings = make_settings(tmp_path, url)
    db = Database(url)
    show_id = new_show(db)
    frames = media()

    async def before_restart() -> Path:
        # The database went down before the first keyframe: no row is ever written by this process.
        service = RecordingService(db, settings)
        await service.start()
        await run_in_threadpool(pg.crash)
        sink = service.sink_for_show(show_id)
        assert sink is not None
        recorder = service.active[show_id]
        for frame in frames:
            sink.on_frame(frame)
        # The server stops while the database is still down: stop() closes the file.
        await service.stop()
        assert recorder.info is not None
        return recorder.info.path

    async def after_restart(path: Path) -> None:
        await run_in_threadpool(pg.start)
        service = RecordingService(db, settings)
        await service.start()
        try:
            (row,) = rows_of(db, show_id)
            assert row.status == "complete" and row.path == path.name
            assert abs(row.duration_ms - SECONDS * 1000) < 500
            assert not journal.journal_of(path).exists()
        finally:
            await service.stop()

    try:
        path = asyncio.run(before_restart())
        assert journal.journal_of(path).exists()
        asyncio.run(after_restart(path))
    finally:
        db.close()


def cut_recording(directory: Path, name: str) -> Path:
    """What a killed server leaves: a file cut in its last fragment."""
    writer = MuxWriter(directory / name)
    for frame in media(3):
        writer.write(frame, 0)
    info = writer.finish()
    assert info is not None
    data = info.path.read_bytes()
    info.path.write_bytes(data[: int(len(data) * 0.8)])
    return info.path


def test_a_journal_left_by_a_killed_server_becomes_a_complete_row(tmp_path: Path, sqlite_url: str) -> None:
    settings = make_settings(tmp_path, sqlite_url)
    db = Database(sqlite_url)
    show_id = new_show(db)
    service = RecordingService(db, settings)
    settings.recordings_dir.mkdir(parents=True)
    path = cut_recording(settings.recordings_dir, "show-cut")
    started = int(time.time() * 1000) - 60_000
    journal.write(
        settings.recordings_dir,
        Entry(show_id, path.name, "mp4", "h264+opus", started, duration_ms=1000, anchors=[(0, started)]),
    )
    assert service.recover_interrupted() == 1
    (row,) = rows_of(db, show_id)
    assert row.status == "complete" and 1500 < row.duration_ms < 3000
    assert json.loads(row.anchors) == [[0, started]]
    assert int(row.started_at.timestamp() * 1000) == started
    assert not journal.journal_of(path).exists()
    db.close()


def test_a_file_another_process_still_records_is_not_cut(tmp_path: Path, sqlite_url: str) -> None:
    # Two servers share the recordings directory; one restarts while the other records a show.
    settings = make_settings(tmp_path, sqlite_url)
    db = Database(sqlite_url)
    show_id = new_show(db)
    service = RecordingService(db, settings)
    settings.recordings_dir.mkdir(parents=True)
    path = cut_recording(settings.recordings_dir, "show-live")
    with db.session() as session:
        session.add(
            Recording(
                show_id=show_id, path=path.name, container="mp4", codecs="h264+opus", started_at=utcnow()
            )
        )
        session.commit()
    size = path.stat().st_size
    other = FileLock.try_acquire(path)  # the recording process holds its file
    assert other is not None
    try:
        assert service.recover_interrupted() == 0
        (row,) = rows_of(db, show_id)
        assert row.status == "recording" and path.stat().st_size == size
    finally:
        other.release()
    # Once that process is gone (its lock with it), the cut file is settled.
    assert service.recover_interrupted() == 1
    (row,) = rows_of(db, show_id)
    assert row.status == "complete"
    db.close()


def test_the_periodic_sweep_leaves_rows_whose_file_is_elsewhere(tmp_path: Path, sqlite_url: str) -> None:
    # Another machine may be recording it into its own directory; only start-up gives such a row up.
    settings = make_settings(tmp_path, sqlite_url)
    db = Database(sqlite_url)
    show_id = new_show(db)
    service = RecordingService(db, settings)
    settings.recordings_dir.mkdir(parents=True)
    with db.session() as session:
        session.add(
            Recording(show_id=show_id, path="show-x.mp4", container="mp4", codecs="h264", started_at=utcnow())
        )
        session.commit()
    assert service.recover_interrupted(sweep=True) == 0
    assert [r.status for r in rows_of(db, show_id)] == ["recording"]
    assert service.recover_interrupted() == 0
    assert [r.status for r in rows_of(db, show_id)] == ["deleted"]
    db.close()
