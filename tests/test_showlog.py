from __future__ import annotations

import json
from datetime import UTC, datetime

from liveshow.accounts.service import create_user
from liveshow.bus.memory import MemoryBus
from liveshow.clock import utcnow
from liveshow.db import Database
from liveshow.showlog import ShowEvent, ShowLog, show_topic
from liveshow.shows.models import Show


def _new_show(db: Database) -> int:
    with db.session() as session:
        seller = create_user(session, "archivist", "long enough pw")
        show = Show(seller_id=seller.id, title="Archive", stream_key="k")
        session.add(show)
        session.commit()
        session.refresh(show)
    assert show.id is not None
    return show.id


async def test_publish_fans_out_and_archives_public_events(database_url: str) -> None:
    db = Database(database_url)
    show_id = _new_show(db)
    bus = MemoryBus()
    showlog = ShowLog(bus, db, flush_interval=60)
    sub = bus.subscribe(show_topic(show_id))
    # quotes, a backslash and text beyond ASCII: the rows travel as JSON text on PostgreSQL
    said = 'hi "all" \\ café ✓ 😀'
    first = await showlog.publish(show_id, "chat.message", {"text": said})
    await showlog.publish(show_id, "presence", {"count": 3})
    await showlog.publish(show_id, "notice", {"to": [1], "text": "you were outbid"})
    last = await showlog.publish(show_id, "lot.opened", {"lot": 1})
    assert [(await sub.get(1)).seq for _ in range(4)] == [1, 2, 3, 4]
    await showlog.stop()  # flushes what is pending
    archived = showlog.archived(show_id)
    assert [(e.seq, e.type) for e in archived] == [(first.seq, "chat.message"), (last.seq, "lot.opened")]
    assert json.loads(archived[0].data) == {"text": said}
    # the time survives the bulk path (one statement on PostgreSQL) to the millisecond, in UTC
    assert archived[0].at == datetime.fromtimestamp(first.ts_ms / 1000, UTC)
    assert showlog.archived(show_id, after_seq=1)[0].seq == 4
    db.close()


async def test_a_duplicate_does_not_block_the_rest_of_the_batch(database_url: str) -> None:
    db = Database(database_url)
    show_id = _new_show(db)
    bus = MemoryBus()
    showlog = ShowLog(bus, db, flush_interval=60)
    await showlog.publish(show_id, "chat.message", {"text": "one"})
    await showlog.flush()
    # Another writer already stored seq 2 (e.g. a process that crashed after archiving it).
    with db.session() as session:
        session.add(
            ShowEvent(show_id=show_id, seq=2, type="chat.message", data='{"text":"other"}', at=utcnow())
        )
        session.commit()
    for text in ("two", "three"):
        await showlog.publish(show_id, "chat.message", {"text": text})
    await showlog.flush()
    stored = showlog.archived(show_id)
    assert [(e.seq, json.loads(e.data)["text"]) for e in stored] == [(1, "one"), (2, "other"), (3, "three")]
    assert showlog._pending == []
    db.close()
