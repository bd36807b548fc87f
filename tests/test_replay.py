"""Replay over HTTP: recording rows written by the real recorder, the timeline's offsets, range requests,
access rules and every bad input, deletion, retention and crash recovery; against SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import av
import pytest
from itsdangerous import TimestampSigner
from sqlmodel import select
from starlette.applications import Starlette
from starlette.testclient import TestClient

from liveshow.accounts.models import User
from liveshow.accounts.service import create_user, issue_token
from liveshow.clock import utcnow
from liveshow.closet.models import Listing
from liveshow.context import AppContext
from liveshow.media import synthetic
from liveshow.replay.models import ReAir, Recording
from liveshow.replay.reair import pace
from liveshow.shows.models import LineupItem, Show

CSRF = "test-csrf-token-0123456789"


def sign_in_cookie(client: TestClient, app: Starlette, user_id: int) -> None:
    """What SessionMiddleware would have set after a sign-in (the sign-in form is another feature's)."""
    secret = app.state.ctx.settings.secret_key
    payload = base64.b64encode(json.dumps({"uid": user_id, "csrf": CSRF}).encode())
    client.cookies.clear()
    client.cookies.set("liveshow_session", TimestampSigner(secret).sign(payload).decode())


def context_of(app: Starlette) -> AppContext:
    context: AppContext = app.state.ctx
    return context


@dataclass
class Recorded:
    show_id: int
    seller: User
    listing_id: int
    recording: Recording
    sent: dict[str, int]  # chat text -> wall ms when published
    path: Path


def make_show(context: AppContext, seller: User | None = None, **fields: Any) -> tuple[User, Show]:
    with context.db.session() as session:
        if seller is None:
            seller = create_user(session, f"seller{time.monotonic_ns() % 10**9}", "correct horse battery")
        assert seller.id is not None
        values: dict[str, Any] = {
            "seller_id": seller.id,
            "title": "Closet clear-out",
            "stream_key": "k" * 32,
            "state": "ended",
            "went_live_at": utcnow(),
            "ended_at": utcnow(),
        }
        values.update(fields)
        show = Show(**values)
        session.add(show)
        session.commit()
        session.refresh(show)
        return seller, show


def record_show(client: TestClient, app: Starlette, seconds: float = 3.0) -> Recorded:
    """Air ``seconds`` of synthetic media in real time into the app's recorder while chat happens."""
    context = context_of(app)
    seller, show = make_show(context)
    assert show.id is not None and seller.id is not None
    with context.db.session() as session:
        listing = Listing(seller_id=seller.id, title="The blue coat", price_cents=4500, quantity=2)
        session.add(listing)
        session.commit()
        session.refresh(listing)
        assert listing.id is not None
        session.add(LineupItem(show_id=show.id, listing_id=listing.id, position=0))
        session.commit()
    assert context.recordings is not None
    sink = context.recordings.sink_for_show(show.id)
    assert sink is not None
    frames = synthetic.interleaved(
        list(synthetic.video_frames(seconds, gop=15)), list(synthetic.audio_frames(seconds))
    )
    sent: dict[str, int] = {}

    class Sink:
        def push(self, frame: Any) -> None:
            sink.on_frame(frame)

    async def air() -> None:
        async def chat() -> None:
            await asyncio.sleep(0.2)
            for i, (kind, data) in enumerate(
                [
                    ("chat.message", {"id": 1, "username": "ann", "text": "first!"}),
                    ("lot.opened", {"lot": {"lot_no": 1, "listing_id": listing.id, "kind": "claim"}}),
                    ("chat.message", {"id": 2, "username": "bob", "text": "love it"}),
                    ("claim.accepted", {"lot_no": 1, "buyer_id": 99, "quantity": 1, "price_cents": 4500}),
                    ("chat.message", {"id": 3, "username": "cy", "text": "oops"}),
                    ("chat.deleted", {"message_id": 3}),
                    ("chat.message", {"id": 4, "username": "dee", "text": "last one"}),
                ]
            ):
                event = await context.showlog.publish(show.id, kind, data)  # type: ignore[arg-type]
                sent[data.get("text", f"{kind}#{i}")] = event.ts_ms
                await asyncio.sleep(0.35)

        task = asyncio.create_task(chat())
        await pace(iter(frames), Sink())
        await task
        await context.showlog.flush()

    assert client.portal is not None
    client.portal.call(air)
    sink.close()
    recorder = context.recordings.active.get(show.id)
    if recorder is not None:
        assert recorder.wait(20)
    with context.db.session() as session:
        row = session.exec(select(Recording).where(Recording.show_id == show.id)).one()
    assert row.status == "complete"
    return Recorded(show.id, seller, listing.id, row, sent, context.recordings.directory / row.path)


@pytest.fixture
def recorded(client: TestClient, app: Starlette) -> Recorded:
    return record_show(client, app)


def test_recording_row_and_timeline_offsets(client: TestClient, recorded: Recorded) -> None:
    row = recorded.recording
    assert row.container == "mp4" and row.codecs == "h264+opus"
    assert abs(row.duration_ms - 3000) < 500
    assert row.bytes == recorded.path.stat().st_size
    with av.open(str(recorded.path)) as container:
        assert {s.type for s in container.streams} == {"video", "audio"}

    resp = client.get(f"/api/shows/{recorded.show_id}/timeline")
    assert resp.status_code == 200
    timeline = resp.json()
    assert timeline["recording"]["content_type"] == "video/mp4"
    start_ms = int(row.started_at.timestamp() * 1000)
    chat = [e for e in timeline["events"] if e["type"] == "chat.message"]
    # The moderator's deletion holds in the replay.
    assert [e["data"]["text"] for e in chat] == ["first!", "love it", "last one"]
    for event in chat:
        # Offset = when the event was published minus the wall time of the recording's first frame.
        assert event["offset_ms"] == recorded.sent[event["data"]["text"]] - start_ms
    # ... which matches the media: "first!" went out 0.2 s after the first frames were pushed.
    assert 100 <= chat[0]["offset_ms"] <= 450
    offsets = [e["offset_ms"] for e in timeline["events"]]
    assert offsets == sorted(offsets)
    [chapter] = timeline["chapters"]
    assert chapter["title"] == "The blue coat" and chapter["kind"] == "item"
    assert (
        chapter["offset_ms"] == next(e for e in timeline["events"] if e["type"] == "lot.opened")["offset_ms"]
    )
    assert any(e["type"] == "claim.accepted" for e in timeline["events"])


def test_recording_file_range_requests(client: TestClient, recorded: Recorded) -> None:
    url = f"/recordings/{recorded.show_id}/{recorded.recording.path}"
    size = recorded.path.stat().st_size
    full = client.get(url)
    assert full.status_code == 200
    assert full.headers["content-type"] == "video/mp4"
    assert full.headers["accept-ranges"] == "bytes"
    assert full.content == recorded.path.read_bytes()

    part = client.get(url, headers={"Range": "bytes=100-1099"})
    assert part.status_code == 206
    assert part.headers["content-range"] == f"bytes 100-1099/{size}"
    assert part.content == recorded.path.read_bytes()[100:1100]

    tail = client.get(url, headers={"Range": "bytes=-500"})
    assert tail.status_code == 206 and tail.content == recorded.path.read_bytes()[-500:]
    open_ended = client.get(url, headers={"Range": f"bytes={size - 10}-"})
    assert open_ended.status_code == 206 and len(open_ended.content) == 10

    beyond = client.get(url, headers={"Range": f"bytes={size + 10}-{size + 20}"})
    assert beyond.status_code == 416
    assert client.get(f"/recordings/{recorded.show_id}/other.mp4").status_code == 404
    assert client.get(f"/recordings/{recorded.show_id}/..%2F..%2Fsecret_key").status_code == 404


def test_replay_page_and_bad_input(client: TestClient, app: Starlette, recorded: Recorded) -> None:
    context = context_of(app)
    page = client.get(f"/shows/{recorded.show_id}/replay")
    assert page.status_code == 200
    assert f'src="/recordings/{recorded.show_id}/{recorded.recording.path}"' in page.text
    assert "The blue coat" in page.text and "$45.00" in page.text  # still for sale at its price
    assert client.get(f"/shows/{recorded.show_id}/replay?t=1.5").status_code == 200

    beyond = client.get(f"/shows/{recorded.show_id}/replay?t=600")
    assert beyond.status_code == 416 and "beyond the end" in beyond.text
    assert client.get(f"/shows/{recorded.show_id}/replay?t=-3").status_code == 416
    assert client.get(f"/shows/{recorded.show_id}/replay?t=soon").status_code == 416
    assert client.get("/shows/999999/replay").status_code == 404

    _, never = make_show(context, recorded.seller, state="scheduled", went_live_at=None, ended_at=None)
    resp = client.get(f"/shows/{never.id}/replay")
    assert resp.status_code == 404 and "never went live" in resp.text
    api = client.get(f"/api/shows/{never.id}/timeline")
    assert api.status_code == 404 and api.json()["error"] == "recording_unavailable"

    _, live = make_show(context, recorded.seller, state="live", ended_at=None)
    assert client.get(f"/shows/{live.id}/replay").status_code == 409

    # Corrupt, then missing: clear pages, no crash.
    original = recorded.path.read_bytes()
    recorded.path.write_bytes(b"\x00\x00\x00\x08free" + b"garbage" * 100)
    resp = client.get(f"/shows/{recorded.show_id}/replay")
    assert resp.status_code == 404 and "damaged" in resp.text
    recorded.path.unlink()
    resp = client.get(f"/shows/{recorded.show_id}/replay")
    assert resp.status_code == 404 and "missing" in resp.text
    assert client.get(f"/recordings/{recorded.show_id}/{recorded.recording.path}").status_code == 404
    recorded.path.write_bytes(original)


def test_private_replay_only_for_its_seller(client: TestClient, app: Starlette, recorded: Recorded) -> None:
    context = context_of(app)
    with context.db.session() as session:
        show = session.get(Show, recorded.show_id)
        assert show is not None
        show.visibility = "private"
        session.add(show)
        other = create_user(session, "nosy", "correct horse battery")
        session.commit()
    file_url = f"/recordings/{recorded.show_id}/{recorded.recording.path}"
    for path in (f"/shows/{recorded.show_id}/replay", f"/api/shows/{recorded.show_id}/timeline", file_url):
        assert client.get(path).status_code == 403
    assert other.id is not None
    sign_in_cookie(client, app, other.id)
    assert client.get(f"/shows/{recorded.show_id}/replay").status_code == 403
    assert recorded.seller.id is not None
    sign_in_cookie(client, app, recorded.seller.id)
    page = client.get(f"/shows/{recorded.show_id}/replay")
    assert page.status_code == 200 and "Delete recording" in page.text
    assert client.get(file_url, headers={"Range": "bytes=0-9"}).status_code == 206


def test_seller_deletes_recording_and_retention(
    client: TestClient, app: Starlette, recorded: Recorded
) -> None:
    context = context_of(app)
    with context.db.session() as session:
        other = create_user(session, "mallory", "correct horse battery")
        other_token = issue_token(session, other)
        seller = session.get(User, recorded.seller.id)
        assert seller is not None
        token = issue_token(session, seller)
    url = f"/api/shows/{recorded.show_id}/recording"
    assert client.delete(url).status_code == 401
    resp = client.delete(url, headers={"Authorization": f"Bearer {other_token}"})
    assert resp.status_code == 403
    assert recorded.path.exists()
    resp = client.delete(url, headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 200 and resp.json() == {"deleted": 1}
    assert not recorded.path.exists()
    page = client.get(f"/shows/{recorded.show_id}/replay")
    assert page.status_code == 404 and "deleted" in page.text
    assert client.delete(url, headers={"Authorization": f"Bearer {token}"}).status_code == 404

    # Retention: a second recording, older than the setting, goes at cleanup.
    second = record_show(client, app, seconds=1.0)
    assert context.recordings is not None
    assert context.recordings.cleanup_expired(utcnow() + timedelta(days=29)) == 0
    assert context.recordings.cleanup_expired(utcnow() + timedelta(days=31)) == 1
    assert not second.path.exists()
    with context.db.session() as session:
        row = session.get(Recording, second.recording.id)
        assert row is not None and row.status == "deleted"


def test_interrupted_recording_recovered_at_startup(
    client: TestClient, app: Starlette, tmp_path: Path
) -> None:
    context = context_of(app)
    assert context.recordings is not None
    _seller, show = make_show(context)
    # What a killed server leaves: a row still "recording" and a file cut in its last fragment.
    from liveshow.media.recorder import MuxWriter

    writer = MuxWriter(context.recordings.directory / "show-cut")
    frames = synthetic.interleaved(list(synthetic.video_frames(3)), list(synthetic.audio_frames(3)))
    for frame in frames:
        writer.write(frame, 0)
    info = writer.finish()
    assert info is not None
    data = info.path.read_bytes()
    info.path.write_bytes(data[: int(len(data) * 0.8)])
    assert show.id is not None
    with context.db.session() as session:
        session.add(
            Recording(
                show_id=show.id,
                path=info.path.name,
                container="mp4",
                codecs="h264+opus",
                started_at=utcnow(),
            )
        )
        session.commit()
    assert context.recordings.recover_interrupted() == 1
    with context.db.session() as session:
        row = session.exec(select(Recording).where(Recording.show_id == show.id)).one()
    assert row.status == "complete" and 1000 < row.duration_ms < 3000
    assert client.get(f"/shows/{show.id}/replay").status_code == 200


def test_reair_scheduling_rules(client: TestClient, app: Starlette, recorded: Recorded) -> None:
    context = context_of(app)
    with context.db.session() as session:
        other = create_user(session, "copycat", "correct horse battery")
        other_token = issue_token(session, other)
        seller = session.get(User, recorded.seller.id)
        assert seller is not None
        token = issue_token(session, seller)
    url = f"/api/shows/{recorded.show_id}/reair"
    assert client.post(url, json={}).status_code == 401
    resp = client.post(url, json={}, headers={"Authorization": f"Bearer {other_token}"})
    assert resp.status_code == 403 and "your own" in resp.json()["reason"]
    auth = {"Authorization": f"Bearer {token}"}
    assert client.post(url, json={"starts_at": "tomorrow"}, headers=auth).status_code == 400
    assert client.post(url, json={"starts_at": "2020-01-01T00:00:00+00:00"}, headers=auth).status_code == 400
    assert client.post(url, json={"title": ""}, headers=auth).status_code == 400
    _, never = make_show(context, recorded.seller, state="scheduled", went_live_at=None)
    assert client.post(f"/api/shows/{never.id}/reair", json={}, headers=auth).status_code == 404

    later = (utcnow() + timedelta(hours=2)).isoformat()
    resp = client.post(url, json={"starts_at": later}, headers=auth)
    assert resp.status_code == 201, resp.text
    body = resp.json()
    with context.db.session() as session:
        show = session.get(Show, body["id"])
        assert show is not None and show.title == "Rerun: Closet clear-out" and show.state == "scheduled"
        lineup = session.exec(select(LineupItem).where(LineupItem.show_id == show.id)).all()
        assert [x.listing_id for x in lineup] == [recorded.listing_id]
        row = session.get(ReAir, body["reair_id"])
        assert row is not None and row.status == "scheduled" and row.source_show_id == recorded.show_id
