"""Re-air building blocks against real files and the real bus: frames read back from a recording are
pushed at their real pace (and make a valid stream again), item cards come back at their offsets.

The end-to-end re-air to an aiortc viewer needs the media service (liveshow.media, another branch)."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from pathlib import Path
from typing import Any

from sqlmodel import select
from starlette.applications import Starlette
from starlette.testclient import TestClient

from liveshow.accounts.service import create_user
from liveshow.closet.models import Listing
from liveshow.media import synthetic
from liveshow.media.frames import EncodedFrame
from liveshow.media.recorder import MuxWriter, Recorder
from liveshow.media.replay_files import probe, read_frames
from liveshow.orders.models import Order
from liveshow.replay.reair import ReAirService, cues_of, pace
from liveshow.showlog import show_topic
from tests.test_replay import context_of, make_show


def test_pace_pushes_recording_frames_in_real_time(tmp_path: Path) -> None:
    writer = MuxWriter(tmp_path / "source")
    for frame in synthetic.interleaved(list(synthetic.video_frames(2)), list(synthetic.audio_frames(2))):
        writer.write(frame, 0)
    info = writer.finish()
    assert info is not None

    pushed: list[tuple[float, EncodedFrame]] = []
    again = Recorder(tmp_path / "again")

    class Sink:
        def push(self, frame: EncodedFrame) -> None:
            pushed.append((time.monotonic(), frame))
            again.on_frame(frame)

    async def run() -> tuple[float, int]:
        start = time.monotonic()
        return start, await pace(read_frames(info.path), Sink())

    start, count = asyncio.run(run())
    again.close()
    assert again.wait(20)
    assert count == len(pushed) > 150
    lateness = [at - start - f.pts / (90000 if f.kind == "video" else 48000) for at, f in pushed]
    assert min(lateness) >= -0.002  # never early
    assert sorted(lateness)[int(len(lateness) * 0.95)] < 0.05  # and on time
    assert 1.9 < pushed[-1][0] - start < 2.3
    assert pushed[0][1].kind == "video" and pushed[0][1].keyframe
    # What the relay received is a valid H.264 + Opus stream again.
    assert again.info is not None
    assert abs(probe(again.info.path).duration_ms - info.duration_ms) < 100


def test_cues_keep_offsets_and_republish_without_auction(client: TestClient, app: Starlette) -> None:
    context = context_of(app)
    seller, _original = make_show(context)
    _, rerun = make_show(context, seller, state="scheduled", went_live_at=None, ended_at=None)
    assert rerun.id is not None
    anchors = [(0, 1_000_000)]
    events = [
        ("chat.message", {"text": "not a cue"}, 1_000_100),
        ("lot.opened", {"lot": {"lot_no": 1, "listing_id": 7, "kind": "claim"}}, 1_000_300),
        ("lot.closed", {"lot_no": 1, "listing_id": 7, "outcome": "sold", "winner_id": 5}, 1_000_700),
        ("lot.opened", {"lot": {"lot_no": 2, "listing_id": 8, "kind": "auction"}}, 999_000),  # before start
    ]
    cues = cues_of(events, anchors)
    assert [(c.offset_ms, c.type) for c in cues] == [
        (0, "lot.opened"),
        (300, "lot.opened"),
        (700, "lot.closed"),
    ]
    assert context.recordings is not None
    # Without the auction installed, the original cards are republished as they were.
    service = ReAirService(dataclasses.replace(context, auction=None), context.recordings)

    async def run() -> list[tuple[float, str, dict[str, object]]]:
        sub = context.bus.subscribe(show_topic(rerun.id))  # type: ignore[arg-type]
        start = time.monotonic()
        task = asyncio.create_task(service._play_cues(rerun.id, cues))  # type: ignore[arg-type]
        got = []
        for _ in range(3):
            event = await sub.get(timeout=3)
            assert event is not None
            got.append((time.monotonic() - start, event.type, event.data))
        await task
        sub.close()
        return got

    assert client.portal is not None
    got = client.portal.call(run)
    assert [t for _, t, _ in got] == ["lot.opened", "lot.opened", "lot.closed"]
    assert abs(got[1][0] - 0.3) < 0.1 and abs(got[2][0] - 0.7) < 0.1
    assert got[1][2] == {"lot": {"lot_no": 1, "listing_id": 7, "kind": "claim"}}
    # Who won the original is not announced on the rerun.
    assert got[2][2] == {"lot_no": 1, "listing_id": 7, "outcome": "rerun"}


def test_rerun_puts_items_up_through_the_auction_so_claims_and_bids_are_new(
    client: TestClient, app: Starlette
) -> None:
    context = context_of(app)
    seller, original = make_show(context)
    _, rerun = make_show(context, seller, state="live", ended_at=None)
    assert rerun.id is not None and original.id is not None and seller.id is not None
    with context.db.session() as session:
        coat = Listing(seller_id=seller.id, title="The blue coat", price_cents=4500, quantity=2)
        bag = Listing(seller_id=seller.id, title="Tan bag", price_cents=3000, quantity=1)
        session.add_all([coat, bag])
        buyer = create_user(session, "rerunfan", "correct horse battery")
        bidder = create_user(session, "rerunbidder", "correct horse battery")
        session.commit()
        session.refresh(coat)
        session.refresh(bag)
    at = 1_000_000
    events = [
        (
            "lot.opened",
            {"lot": {"lot_no": 1, "listing_id": coat.id, "kind": "claim", "price_cents": 4000}},
            at,
        ),
        (
            "lot.closed",
            {"lot_no": 1, "listing_id": coat.id, "outcome": "sold_out", "lot": {"kind": "claim"}},
            at + 2000,  # the test claims in between: room for a busy machine
        ),
        (
            "lot.opened",
            {
                "lot": {
                    "lot_no": 2,
                    "listing_id": bag.id,
                    "kind": "auction",
                    "start_cents": 2000,
                    "ends_at_ms": at + 2200 + 6000,
                    "sudden_death": True,
                }
            },
            at + 2200,
        ),
    ]
    cues = cues_of(events, [(0, at)])
    auction = context.auction
    assert context.recordings is not None and auction is not None
    service = ReAirService(context, context.recordings)

    async def run() -> list[Any]:
        sub = context.bus.subscribe(show_topic(rerun.id))  # type: ignore[arg-type]
        task = asyncio.create_task(service._play_cues(rerun.id, cues))  # type: ignore[arg-type]
        got: list[Any] = []

        async def until(kind: str, timeout: float = 5) -> Any:
            while True:
                event = await sub.get(timeout=timeout)
                assert event is not None, f"no {kind}"
                got.append(event)
                if event.type == kind:
                    return event

        opened = await until("lot.opened")
        # put up by the writer, like a host's command: sequenced, the rerun's own lot, the original price
        assert opened.data["lot"]["listing_id"] == coat.id and opened.data["lot"]["price_cents"] == 4000
        assert opened.data["lot"]["remaining"] == 2 and "dseq" in opened.data
        claimed = await auction.claim(rerun.id, buyer, 1, "rerun-claim-1")  # type: ignore[arg-type]
        assert claimed["price_cents"] == 4000
        closed = await until("lot.closed")
        assert closed.data["outcome"] == "closed" and closed.data["lot"]["remaining"] == 1
        opened = await until("lot.opened")
        lot = opened.data["lot"]
        assert lot["kind"] == "auction" and lot["start_cents"] == 2000 and lot["sudden_death"] is True
        assert 5500 < lot["ends_at_ms"] - time.time() * 1000 <= 6000
        bid = await auction.bid(rerun.id, bidder, 2500, "rerun-bid-1")  # type: ignore[arg-type]
        assert bid["leading"] is True and bid["price_cents"] == 2000
        await task
        sold = await until("lot.closed", timeout=10)  # the writer closes it at its clock
        assert sold.data["outcome"] == "sold" and sold.data["price_cents"] == 2000
        sub.close()
        return got

    assert client.portal is not None
    client.portal.call(run)
    with context.db.session() as session:
        orders = session.exec(select(Order).where(Order.show_id == rerun.id)).all()
        assert sorted((o.listing_id, o.buyer_id, o.price_cents, o.source) for o in orders) == sorted(
            [(coat.id, buyer.id, 4000, "claim"), (bag.id, bidder.id, 2000, "auction")]
        )
        assert not session.exec(select(Order).where(Order.show_id == original.id)).all()
