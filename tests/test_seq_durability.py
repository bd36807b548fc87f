"""Numbering that survives losing the fast path: a server restart on the in-process bus, and Redis
restarting empty under two processes. The database is the authority: a number a client was given is
never given again, numbering never goes backwards, and a reader that lost Redis catches up from the
archive instead of skipping what it missed."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bench.services import PrivateRedis
from liveshow.app import build_context, create_app
from liveshow.bus import Event, Subscription
from liveshow.clock import utcnow
from liveshow.context import AppContext
from liveshow.showlog import ShowEvent, archived_events, show_topic
from tests.conftest import LiveServer, make_settings
from tests.roomkit import RoomEnv
from tests.test_showlog import _new_show


async def _started(ctx: AppContext) -> AppContext:
    await ctx.bus.start()
    await ctx.showlog.start()
    return ctx


async def _stopped(ctx: AppContext) -> None:
    await ctx.showlog.stop()
    await ctx.bus.close()
    ctx.db.close()


async def _drain(sub: Subscription, want: int, timeout: float) -> list[Event]:
    got: list[Event] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while len(got) < want:
        left = deadline - loop.time()
        if left <= 0:
            break
        try:
            got.append(await sub.get(left))
        except TimeoutError:
            break
    return got


async def test_a_restarted_process_numbers_above_everything_it_handed_out(
    tmp_path: Path, database_url: str
) -> None:
    """Presence counts and private notices are numbered but never archived: a restart that continued
    after the last archived number gave their numbers out again, and clients that had seen them
    skipped the new events (an acknowledged chat message never shown)."""
    settings = make_settings(tmp_path, database_url)
    first = await _started(build_context(settings))
    show_id = _new_show(first.db)
    handed_out = [
        (await first.showlog.publish(show_id, "chat.message", {"text": "hello"})).seq,
        (await first.showlog.publish(show_id, "presence", {"count": 3})).seq,
        (await first.showlog.publish(show_id, "notice", {"to": [1], "text": "outbid"})).seq,
        (await first.showlog.publish(show_id, "presence", {"count": 4})).seq,
    ]
    assert handed_out == sorted(set(handed_out))
    await _stopped(first)

    second = await _started(build_context(settings))
    try:
        # a client resuming from its last number is placed at or above it
        assert await second.bus.last_seq(show_topic(show_id)) >= max(handed_out)
        after = await second.showlog.publish(show_id, "chat.message", {"text": "after the restart"})
        assert after.seq > max(handed_out)
    finally:
        await _stopped(second)

    third = await _started(build_context(settings))  # and again: never backwards
    try:
        again = await third.showlog.publish(show_id, "chat.message", {"text": "and again"})
        assert again.seq > after.seq
    finally:
        await _stopped(third)


@pytest.fixture
async def redis_pair(
    tmp_path: Path, postgres_url: str, private_redis: PrivateRedis
) -> AsyncIterator[tuple[PrivateRedis, AppContext, AppContext]]:
    """Two server processes' buses and logs on one private Redis and one database."""
    redis = private_redis
    settings = make_settings(tmp_path, postgres_url, bus_url=redis.url)
    a = await _started(build_context(settings))
    b = await _started(build_context(settings))
    try:
        yield redis, a, b
    finally:
        await _stopped(a)
        await _stopped(b)


async def _publish_when_back(ctx: AppContext, show_id: int, text: str, timeout: float = 10) -> Event:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            return await ctx.showlog.publish(show_id, "chat.message", {"text": text})
        except Exception:
            if loop.time() > deadline:
                raise
            await asyncio.sleep(0.1)


@pytest.mark.postgres
async def test_redis_restarting_empty_keeps_numbering_above_and_readers_resume(
    redis_pair: tuple[PrivateRedis, AppContext, AppContext],
) -> None:
    redis, a, b = redis_pair
    show_id = _new_show(a.db)
    topic = show_topic(show_id)
    sub = b.bus.subscribe(topic, after_seq=await b.bus.last_seq(topic))
    before = [await a.showlog.publish(show_id, "chat.message", {"text": f"m{i}"}) for i in range(20)]
    assert [e.seq for e in await _drain(sub, 20, 5)] == [e.seq for e in before]

    redis.restart_empty(down_for=0.5)
    after = [await _publish_when_back(a, show_id, f"after{i}") for i in range(5)]
    assert min(e.seq for e in after) > max(e.seq for e in before)  # never numbered again from 1
    got = await _drain(sub, 5, 10)
    assert [e.data["text"] for e in got] == [f"after{i}" for i in range(5)]  # the reader resumed
    assert [e.seq for e in got] == [e.seq for e in after]
    # the other process numbers above too, and a fresh reader starts from the new numbering
    other = await _publish_when_back(b, show_id, "from b")
    assert other.seq > max(e.seq for e in after)
    assert await a.bus.last_seq(topic) == other.seq


@pytest.mark.postgres
async def test_a_reader_that_lost_redis_delivers_what_it_missed_from_the_archive_first(
    redis_pair: tuple[PrivateRedis, AppContext, AppContext],
) -> None:
    """Events published just before Redis died that this process had not read yet are gone from Redis,
    but their publisher archived them: the reader delivers them, in order, before the new ones."""
    redis, a, b = redis_pair
    show_id = _new_show(a.db)
    topic = show_topic(show_id)
    sub = b.bus.subscribe(topic, after_seq=await b.bus.last_seq(topic))
    seen = await a.showlog.publish(show_id, "chat.message", {"text": "seen"})
    assert [e.seq for e in await _drain(sub, 1, 5)] == [seen.seq]
    redis.kill()
    # What another process published and archived in the moment before the crash, unread here:
    with a.db.session() as session:
        for n in (1, 2, 3):
            session.add(
                ShowEvent(
                    show_id=show_id,
                    seq=seen.seq + n,
                    type="chat.message",
                    data=json.dumps({"text": f"missed{n}"}),
                    at=utcnow(),
                )
            )
        session.commit()
    await asyncio.sleep(0.5)
    redis.start()
    new = await _publish_when_back(a, show_id, "new")
    got = await _drain(sub, 4, 10)
    assert [e.data["text"] for e in got] == ["missed1", "missed2", "missed3", "new"]
    assert [e.seq for e in got] == sorted(e.seq for e in got)
    assert got[-1].seq == new.seq


@pytest.mark.postgres
async def test_an_event_whose_publisher_died_before_archiving_it_is_archived_by_a_process_that_showed_it(
    redis_pair: tuple[PrivateRedis, AppContext, AppContext],
) -> None:
    """Found by bench/faults.py: chat acknowledged and shown to viewers on the other process was missing
    from the show's log (and the replay) when its publisher was killed within its 0.2 s archive flush."""
    _redis, a, b = redis_pair
    show_id = _new_show(a.db)
    topic = show_topic(show_id)
    sub = b.bus.subscribe(topic, after_seq=await b.bus.last_seq(topic))
    sent = [await a.showlog.publish(show_id, "chat.message", {"text": f"m{i}"}) for i in range(3)]
    private = await a.showlog.publish(show_id, "notice", {"to": [1], "text": "for one viewer"})
    for event in await _drain(sub, 4, 5):
        b.showlog.witness(show_id, event)  # what b's room does with every event it delivers
    a.showlog._pending.clear()  # a is killed -9 before its next flush: its archive never gets them
    await b.showlog.stop()  # b flushes what it delivered (at once here; after WITNESS_DELAY when running)
    stored = b.showlog.archived(show_id)
    assert [(e.seq, json.loads(e.data)["text"]) for e in stored] == [(e.seq, e.data["text"]) for e in sent]
    assert private.seq not in {e.seq for e in stored}  # private events stay out of the log
    await b.showlog.start()  # (the fixture stops it again)


async def test_an_acknowledged_chat_message_is_in_the_log_before_its_answer(
    tmp_path: Path, database_url: str
) -> None:
    """Found by bench/faults.py: a chat message acknowledged by the leader just before it was killed
    -9, seen only by its own sockets, never reached the log (the archive flushed every 0.2 s)."""
    settings = make_settings(tmp_path, database_url)
    app = create_app(settings)
    app.state.ctx.showlog.flush_interval = 3600  # nothing reaches the log by the periodic flush
    server = LiveServer(app).start()
    env = RoomEnv(settings, server.url)
    try:
        alice = await env.join(env.alice)
        await alice.until("snapshot")
        sent = await alice.request({"type": "chat.send", "text": "kept", "key": "k-durable-0001"})
        assert sent["type"] == "chat.sent"
        with env.db.session() as session:
            logged = [(r.seq, r.type) for r in archived_events(session, env.show_id)]
        assert (sent["seq"], "chat.message") in logged
        await alice.close()
    finally:
        server.stop()
        env.db.close()
