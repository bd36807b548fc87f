"""Who may replay what, and the replay's data read from the database (sync: run in a thread)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlmodel import Session, col, select

from liveshow.accounts.models import User
from liveshow.closet.models import Listing, ListingPhoto
from liveshow.errors import Conflict, DomainError, Forbidden, NotFound
from liveshow.media.replay_files import CONTENT_TYPES, CorruptRecording, check_playable
from liveshow.replay.models import Recording
from liveshow.replay.service import anchors_of, best_recording
from liveshow.replay.timeline import ArchivedEvent, build_timeline, listing_ids
from liveshow.showlog import archived_events
from liveshow.shows.models import LineupItem, Show


class RecordingUnavailable(DomainError):
    code = "recording_unavailable"
    status = 404


class SeekOutOfRange(DomainError):
    code = "seek_out_of_range"
    status = 416


@dataclass(frozen=True)
class Replay:
    show: Show
    recording: Recording
    path: Path

    @property
    def content_type(self) -> str:
        return CONTENT_TYPES.get(self.path.suffix, "application/octet-stream")

    @property
    def url(self) -> str:
        return f"/recordings/{self.show.id}/{self.recording.path}"


def open_replay(session: Session, directory: Path, show_id: int, user: User | None) -> Replay:
    """The show's replay if ``user`` may watch it; a clear 4xx otherwise."""
    show = session.get(Show, show_id)
    if show is None:
        raise NotFound("No such show.")
    if show.visibility == "private" and (user is None or user.id != show.seller_id):
        raise Forbidden("This show is private: only its seller can watch the replay.")
    recording = best_recording(session, show_id)
    if recording is None:
        if show.went_live_at is None and show.state == "scheduled":
            raise RecordingUnavailable("This show never went live, so it has no replay.")
        if show.state == "live":
            raise Conflict("This show is live right now; its replay will be here when it ends.")
        gone = session.exec(
            select(Recording).where(Recording.show_id == show_id, Recording.status == "deleted")
        ).first()
        if gone is not None:
            raise RecordingUnavailable("The recording of this show was deleted.")
        raise RecordingUnavailable("This show was not recorded.")
    path = directory / recording.path
    if not path.is_file():
        raise RecordingUnavailable("The recording file of this show is missing.")
    return Replay(show, recording, path)


def ensure_playable(replay: Replay) -> None:
    try:
        check_playable(replay.path)
    except CorruptRecording as exc:
        raise RecordingUnavailable("The recording of this show is damaged and cannot be played.") from exc


def parse_start(raw: str | None, duration_ms: int) -> float:
    """``?t=`` in seconds (or m:ss): where playback starts."""
    if raw is None or raw == "":
        return 0.0
    try:
        if ":" in raw:
            minutes, _, seconds = raw.partition(":")
            value = int(minutes) * 60 + float(seconds)
        else:
            value = float(raw)
    except ValueError as exc:
        raise SeekOutOfRange(f"{raw!r} is not a position; use seconds, like ?t=90 or ?t=1:30.") from exc
    if not value >= 0 or value * 1000 > duration_ms:
        raise SeekOutOfRange(
            f"Position {raw} is beyond the end of this replay ({duration_ms // 60000}:"
            f"{duration_ms // 1000 % 60:02d})."
        )
    return value


def timeline(session: Session, replay: Replay) -> dict[str, Any]:
    assert replay.show.id is not None
    rows = archived_events(session, replay.show.id, 0, limit=200_000)
    events = [ArchivedEvent(r.seq, r.type, json.loads(r.data), int(r.at.timestamp() * 1000)) for r in rows]
    ids = listing_ids(events)
    titles = {}
    if ids:
        titles = {
            x.id: x.title for x in session.exec(select(Listing).where(col(Listing.id).in_(ids))) if x.id
        }
    anchors = anchors_of(replay.recording) or [(0, int(replay.recording.started_at.timestamp() * 1000))]
    out = build_timeline(events, anchors, replay.recording.duration_ms, titles)
    out["show_id"] = replay.show.id
    out["recording"] = {
        "url": replay.url,
        "content_type": replay.content_type,
        "duration_ms": replay.recording.duration_ms,
        "started_at": replay.recording.started_at.isoformat(),
    }
    return out


def still_for_sale(session: Session, show: Show) -> list[dict[str, Any]]:
    """The show's items not sold out, at their listing price: what a replay viewer can still buy."""
    assert show.id is not None
    ids = {x.listing_id for x in session.exec(select(LineupItem).where(LineupItem.show_id == show.id))}
    rows = archived_events(session, show.id, 0, limit=200_000)
    ids |= listing_ids(
        [ArchivedEvent(r.seq, r.type, json.loads(r.data), 0) for r in rows if r.type.startswith("lot.")]
    )
    if not ids:
        return []
    listings = session.exec(
        select(Listing).where(col(Listing.id).in_(ids), Listing.seller_id == show.seller_id)
    ).all()
    photos: dict[int, str] = {}
    for photo in session.exec(
        select(ListingPhoto).where(col(ListingPhoto.listing_id).in_(ids)).order_by(col(ListingPhoto.position))
    ):
        photos.setdefault(photo.listing_id, f"/uploads/{photo.thumb_filename}")
    return [
        {
            "id": x.id,
            "title": x.title,
            "price_cents": x.price_cents,
            "available": x.available,
            "thumb": photos.get(x.id or 0),
        }
        for x in sorted(listings, key=lambda x: x.id or 0)
        if x.status == "available" and x.available > 0
    ]
