"""A decided batch committed in ONE statement on PostgreSQL, on the writer's own connection.

The epoch fence and every row of the batch travel as data-modifying CTEs of a single autocommit
statement: one round trip to the server, where the general path through a pooled Session takes seven
(pool ping, BEGIN, fence, COPY in and out, lot, COMMIT). Each of those waits for the server and then
for the GIL, which a leader serving hundreds of sockets rarely gives back at once, so the count of
round trips, not the SQL, set the batch time. A statement is atomic: if the fence matches no row
(a newer epoch took the show), no CTE's rows are kept; the CTEs write only WHERE EXISTS the fence row.

Batches that create rows needing the ORM (a new lot, orders through the unit fence: every accepted
claim is a sale) take the general path in writer.py; this one carries decisions, accepted bids and
the open lot's state, which is what a busy auction's batches hold.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from liveshow import jsonwire
from liveshow.db import LoopConnection

COMMIT_BATCH = """
WITH fence AS (
    UPDATE auction_writers SET seq = %(seq)s, stream_pos = COALESCE(%(stream_pos)s, stream_pos)
    WHERE show_id = %(show_id)s AND epoch = %(epoch)s
    RETURNING show_id
), decided AS (
    INSERT INTO auction_decisions
        (show_id, epoch, seq, kind, user_id, idem_key, fingerprint, accepted, reply, at_ms)
    SELECT r.show_id, r.epoch, r.seq, r.kind, r.user_id, r.idem_key, r.fingerprint, r.accepted,
           r.reply, r.at_ms
    FROM jsonb_to_recordset(%(decided)s::jsonb) AS r(show_id int, epoch int, seq int, kind text,
        user_id int, idem_key text, fingerprint text, accepted boolean, reply text, at_ms bigint)
    WHERE EXISTS (SELECT FROM fence)
), bids AS (
    INSERT INTO auction_bids (show_id, lot_id, epoch, seq, bidder_id, max_cents, at_ms)
    SELECT r.show_id, r.lot_id, r.epoch, r.seq, r.bidder_id, r.max_cents, r.at_ms
    FROM jsonb_to_recordset(%(bids)s::jsonb) AS r(show_id int, lot_id int, epoch int, seq int,
        bidder_id int, max_cents int, at_ms bigint)
    WHERE EXISTS (SELECT FROM fence)
), lots AS (
    UPDATE auction_lots AS l
    SET state = r.state, state_json = r.state_json,
        closed_at = 'epoch'::timestamptz + r.closed_ms * interval '1 millisecond'
    FROM jsonb_to_recordset(%(lots)s::jsonb) AS r(id int, state text, state_json text, closed_ms bigint)
    WHERE l.id = r.id AND EXISTS (SELECT FROM fence)
)
SELECT count(*) FROM fence
"""


@dataclass
class BatchRows:
    """What a batch writes besides the fence, as plain rows (column name -> value)."""

    decided: list[dict[str, Any]] = field(default_factory=list)
    bids: list[dict[str, Any]] = field(default_factory=list)
    claims: list[dict[str, Any]] = field(default_factory=list)
    lots: list[dict[str, Any]] = field(default_factory=list)  # id, state, state_json, closed_ms


def _dumps(rows: list[dict[str, Any]]) -> str:
    return jsonwire.dumps(rows)


class PgBatchCommitter:
    """The statement on the writer's own LoopConnection (the batch's one round trip awaited on the
    writer's event loop). A batch that failed is never retried here: its writer reloads the persisted
    state (local.py) or steps down for a takeover that does (distributed.py)."""

    def __init__(self, conn: LoopConnection) -> None:
        self.conn = conn

    async def commit(
        self, show_id: int, epoch: int, seq: int, stream_pos: str | None, rows: BatchRows
    ) -> bool:
        """True when committed; False when the fence held another epoch (nothing was written)."""
        if rows.claims:
            raise ValueError("claims are sales: they commit through the session path")
        params = {
            "show_id": show_id,
            "epoch": epoch,
            "seq": seq,
            "stream_pos": stream_pos,
            "decided": _dumps(rows.decided),
            "bids": _dumps(rows.bids),
            "lots": _dumps(rows.lots),
        }
        row = await self.conn.fetchone(COMMIT_BATCH, params)
        return row is not None and row[0] == 1

    async def close(self) -> None:
        await self.conn.close()
