"""Re-air: a recorded show airs again as a new live show, through the same relay as a publisher.

The recording's packets are read back (no decoding) and pushed in real time into a FrameSource of the
media service. At the moments the original show put an item on screen (``lot.opened``) the rerun puts the
same item up again through the auction's host command path, as the seller would from the studio: same
mode and price (an auction for the same duration), so claims and bids on the rerun are live and new and
become orders of the new show. A buy-now item comes down when the original's did; an auction closes on
its own clock. Without the auction installed, the original cards are only republished.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from sqlmodel import select
from starlette.concurrency import run_in_threadpool

from liveshow import usertext
from liveshow.accounts.models import User
from liveshow.auction.errors import LotStillOpen
from liveshow.clock import utcnow
from liveshow.errors import DomainError, Forbidden, NotFound, ValidationFailed
from liveshow.media.frames import EncodedFrame
from liveshow.media.replay_files import read_frames
from liveshow.replay.access import RecordingUnavailable
from liveshow.replay.models import ReAir, Recording
from liveshow.replay.service import RecordingService, anchors_of, best_recording
from liveshow.replay.timeline import offset_ms
from liveshow.showlog import archived_events
from liveshow.shows.models import LineupItem, Show

if TYPE_CHECKING:
    from liveshow.context import AppContext

log = logging.getLogger(__name__)

CUE_TYPES = ("lot.opened", "lot.closed")
BATCH = 64
MAX_SCHEDULE_AHEAD = timedelta(days=30)
CLOCKS = {"video": 90000, "audio": 48000}
# How long a rerun's next item waits for the previous auction (extended by rerun bids) to end.
MAX_WAIT_FOR_LOT_S = 600.0


class Sink(Protocol):
    def push(self, frame: EncodedFrame) -> None: ...


@dataclass(frozen=True)
class Cue:
    offset_ms: int
    type: str
    data: dict[str, Any]
    at_ms: int = 0  # when the original event happened (wall ms)


async def pace(
    frames: Iterator[EncodedFrame], sink: Sink, clock: Any = None, stop: asyncio.Event | None = None
) -> int:
    """Push frames when their pts falls due (real time from now); returns how many were pushed.

    The file is read in batches in a worker thread so the event loop never waits on the disk.
    """
    loop = asyncio.get_running_loop()
    now = clock or loop.time
    start = now()
    pushed = 0
    iterator = iter(frames)

    def batch() -> list[EncodedFrame]:
        out: list[EncodedFrame] = []
        for frame in iterator:
            out.append(frame)
            if len(out) >= BATCH:
                break
        return out

    while chunk := await run_in_threadpool(batch):
        for frame in chunk:
            if stop is not None and stop.is_set():
                return pushed
            delay = start + frame.pts / CLOCKS[frame.kind] - now()
            if delay > 0:
                await asyncio.sleep(delay)
            sink.push(frame)
            pushed += 1
    return pushed


def cues_of(events: list[tuple[str, dict[str, Any], int]], anchors: list[tuple[int, int]]) -> list[Cue]:
    """The item cards of the original show, at their offsets into the recording."""
    cues = [
        Cue(max(0, offset_ms(at_ms, anchors)), kind, data, at_ms)
        for kind, data, at_ms in events
        if kind in CUE_TYPES
    ]
    return sorted(cues, key=lambda c: c.offset_ms)


def lot_message(cue: Cue) -> dict[str, Any]:
    """The host's ``lot.open`` message that puts the original item up again the same way."""
    lot = cue.data.get("lot") or {}
    message: dict[str, Any] = {"type": "lot.open", "listing_id": lot.get("listing_id")}
    if lot.get("kind") == "auction":
        duration = 30
        ends, start = lot.get("ends_at_ms"), cue.at_ms
        if isinstance(ends, int) and start and ends > start:
            duration = min(3600, max(5, round((ends - start) / 1000)))
        message.update(
            mode="auction",
            start_cents=lot.get("start_cents"),
            duration_s=duration,
            sudden_death=bool(lot.get("sudden_death", False)),
        )
    else:
        # Quantity: whatever is still available now (some units may have sold since).
        message.update(mode="claim", price_cents=lot.get("price_cents"))
    return message


class ReAirService:
    def __init__(self, context: AppContext, recordings: RecordingService) -> None:
        self.context = context
        self.recordings = recordings
        self.tasks: dict[int, asyncio.Task[None]] = {}

    # ------------------------------------------------------------ scheduling

    async def schedule(self, source_show_id: int, user: User, body: dict[str, Any]) -> tuple[Show, ReAir]:
        starts_at = _parse_starts_at(body.get("starts_at"))
        raw_title = body.get("title")
        # Cleaned like every show title (no bidi overrides on the show list), then 1 to 120 characters.
        title = None
        if raw_title is not None:
            title = usertext.field(raw_title, "Title", 120, required=True, key="title")
        show, row = await run_in_threadpool(self._create, source_show_id, user, starts_at, title)
        assert row.id is not None
        self._spawn(row.id)
        return show, row

    def _create(
        self, source_show_id: int, user: User, starts_at: datetime, title: str | None
    ) -> tuple[Show, ReAir]:
        with self.context.db.session() as session:
            source = session.get(Show, source_show_id)
            if source is None:
                raise NotFound("No such show.")
            if source.seller_id != user.id:
                raise Forbidden("You can only re-air your own shows.")
            recording = best_recording(session, source_show_id)
            if recording is None or not self.recordings.file_path(recording).is_file():
                raise RecordingUnavailable("This show has no recording to re-air.")
            show = Show(
                seller_id=source.seller_id,
                title=(title or f"Rerun: {source.title}").strip()[:120],
                description=source.description,
                starts_at=starts_at,
                cover_filename=source.cover_filename,
                visibility=source.visibility,
                stream_key=secrets.token_urlsafe(24),
                claim_keyword=source.claim_keyword,
            )
            session.add(show)
            session.flush()
            assert show.id is not None and recording.id is not None
            for item in session.exec(select(LineupItem).where(LineupItem.show_id == source_show_id)):
                session.add(LineupItem(show_id=show.id, listing_id=item.listing_id, position=item.position))
            row = ReAir(show_id=show.id, source_show_id=source_show_id, recording_id=recording.id)
            session.add(row)
            session.commit()
            log.info("show %s re-airs show %s at %s", show.id, source_show_id, starts_at.isoformat())
            return show, row

    def _spawn(self, reair_id: int) -> None:
        task = asyncio.create_task(self._run(reair_id), name=f"reair-{reair_id}")
        self.tasks[reair_id] = task
        task.add_done_callback(lambda _t: self.tasks.pop(reair_id, None))

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        pending = await run_in_threadpool(self._pending_ids)
        for reair_id in pending:
            self._spawn(reair_id)

    def _pending_ids(self) -> list[int]:
        with self.context.db.session() as session:
            rows = session.exec(select(ReAir).where(ReAir.status.in_(("scheduled", "airing")))).all()  # type: ignore[attr-defined]
            ids = []
            for row in rows:
                if row.status == "airing":  # the server died while it aired: that show is over
                    row.status, row.finished_at = "failed", utcnow()
                    session.add(row)
                    self.recordings.not_recorded.add(row.show_id)
                elif row.id is not None:
                    ids.append(row.id)
                    self.recordings.not_recorded.add(row.show_id)
            session.commit()
            return ids

    async def stop(self) -> None:
        tasks = list(self.tasks.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    # ------------------------------------------------------------ airing

    async def _run(self, reair_id: int) -> None:
        try:
            loaded = await run_in_threadpool(self._load, reair_id)
            if loaded is None:
                return
            row, path, cues = loaded
            delay = (row_starts_at(self.context, row.show_id) - utcnow()).total_seconds()
            if delay > 0:
                await asyncio.sleep(delay)
            await self._air(row, path, cues)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("re-air %s failed", reair_id)
            await run_in_threadpool(self._set_status, reair_id, "failed")

    def _load(self, reair_id: int) -> tuple[ReAir, Path, list[Cue]] | None:
        with self.context.db.session() as session:
            row = session.get(ReAir, reair_id)
            recording = session.get(Recording, row.recording_id) if row is not None else None
            if row is None or recording is None or row.status != "scheduled":
                return None
            self.recordings.not_recorded.add(row.show_id)
            raw = archived_events(session, row.source_show_id, 0, limit=200_000)
            events = [
                (e.type, json.loads(e.data), int(e.at.timestamp() * 1000)) for e in raw if e.type in CUE_TYPES
            ]
            anchors = anchors_of(recording) or [(0, int(recording.started_at.timestamp() * 1000))]
            return row, self.recordings.file_path(recording), cues_of(events, anchors)

    async def _air(self, row: ReAir, path: Path, cues: list[Cue]) -> None:
        assert row.id is not None
        media = getattr(self.context, "media", None)
        if media is None:
            raise RuntimeError("live video is not installed: nothing to air through")
        first = await run_in_threadpool(_first_frames, path)
        video = next((f.codec for f in first if f.kind == "video"), None)
        audio = next((f.codec for f in first if f.kind == "audio"), None)
        source = await media.open_source(row.show_id, video, audio)
        await run_in_threadpool(self._set_status, row.id, "airing")
        cue_task = asyncio.create_task(self._play_cues(row.show_id, cues), name=f"reair-cues-{row.id}")
        try:
            pushed = await pace(read_frames(path), source)
            log.info("re-air %s done: %d frames", row.id, pushed)
        finally:
            cue_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await cue_task
            await source.close(end_show=True)
        await run_in_threadpool(self._set_status, row.id, "done")

    async def _play_cues(self, show_id: int, cues: list[Cue]) -> None:
        auction = self.context.auction
        host = await run_in_threadpool(self._seller_of, show_id) if auction is not None else None
        start = asyncio.get_running_loop().time()
        for cue in cues:
            delay = start + cue.offset_ms / 1000 - asyncio.get_running_loop().time()
            if delay > 0:
                await asyncio.sleep(delay)
            if auction is None or host is None:
                await self._republish_cue(show_id, cue)
                continue
            try:
                await self._host_cue(show_id, host, cue)
            except DomainError as exc:  # e.g. the item sold out since: the rerun goes on without it
                log.info("re-air of show %s: %s skipped (%s)", show_id, cue.type, exc.message)

    async def _host_cue(self, show_id: int, host: User, cue: Cue) -> None:
        """Do what the host did at this moment of the original, through the auction's host commands."""
        auction = self.context.auction
        assert auction is not None
        if cue.type == "lot.closed":
            if (cue.data.get("lot") or {}).get("kind", "claim") == "claim":
                with contextlib.suppress(DomainError):  # already sold out on the rerun
                    await auction.host(show_id, host, "lot.close", {})
            return  # an auction closes on its own clock (rerun bids may have extended it)
        message = lot_message(cue)
        deadline = asyncio.get_running_loop().time() + MAX_WAIT_FOR_LOT_S
        while True:
            try:
                await auction.host(show_id, host, "lot.open", message)
                return
            except LotStillOpen:
                # The previous item is still up: a buy-now comes down now, an auction runs out its clock.
                with contextlib.suppress(DomainError):
                    await auction.host(show_id, host, "lot.close", {})
                if asyncio.get_running_loop().time() > deadline:
                    raise
                await asyncio.sleep(0.5)

    async def _republish_cue(self, show_id: int, cue: Cue) -> None:
        data = dict(cue.data)
        if cue.type == "lot.closed":
            # The original outcome (who won) belongs to the original show.
            data = {k: v for k, v in data.items() if k in ("lot_no", "listing_id")} | {"outcome": "rerun"}
        await self.context.showlog.publish(show_id, cue.type, data)

    def _seller_of(self, show_id: int) -> User | None:
        with self.context.db.session() as session:
            show = session.get(Show, show_id)
            return session.get(User, show.seller_id) if show is not None else None

    def _set_status(self, reair_id: int, status: str) -> None:
        with self.context.db.session() as session:
            row = session.get(ReAir, reair_id)
            if row is None:
                return
            row.status = status
            if status == "airing":
                row.started_at = utcnow()
            elif status in ("done", "failed"):
                row.finished_at = utcnow()
            session.add(row)
            session.commit()


def _first_frames(path: Path) -> list[EncodedFrame]:
    """The first frames, to learn the codecs (raises CorruptRecording for an unreadable file)."""
    out: list[EncodedFrame] = []
    for frame in read_frames(path):
        out.append(frame)
        if len(out) > 20:
            break
    return out


def row_starts_at(context: AppContext, show_id: int) -> datetime:
    with context.db.session() as session:
        show = session.get(Show, show_id)
        return show.starts_at if show is not None else utcnow()


def _parse_starts_at(raw: Any) -> datetime:
    now = utcnow()
    if raw is None or raw == "":
        return now
    if not isinstance(raw, str):
        raise ValidationFailed("starts_at must be an ISO 8601 date-time string.")
    try:
        value = datetime.fromisoformat(raw)
    except ValueError as exc:
        raise ValidationFailed(f"starts_at {raw!r} is not an ISO 8601 date-time.") from exc
    if value.tzinfo is None:
        raise ValidationFailed("starts_at needs a time zone (e.g. 2025-01-31T20:00:00+00:00).")
    if value < now - timedelta(minutes=1) or value > now + MAX_SCHEDULE_AHEAD:
        raise ValidationFailed("starts_at must be between now and 30 days from now.")
    return max(value, now)
