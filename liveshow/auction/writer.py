"""The single writer of one show: applies commands in order, persists each batch, then announces it.

A batch (commands taken together from the show's queue or stream) is decided by the pure rules,
written in ONE transaction (decisions with their (epoch, seq), lot state, bids, claims, orders, the
stream position) guarded by the epoch fence, and only then published and answered. If another process
took the show over (a higher epoch in ``auction_writers``), the commit fails and nothing is announced.
On PostgreSQL a batch of bids and refusals commits as one statement (pg_batch.py); a batch with a new
lot or a sale goes through a Session, where orders meet the unit fence.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import update
from sqlmodel import Session, col, select
from starlette.concurrency import run_in_threadpool

from liveshow import jsonwire
from liveshow.accounts.models import User
from liveshow.auction import rules
from liveshow.auction.commands import Command, lot_from_dict, lot_to_dict
from liveshow.auction.errors import KeyReused, error_to_dict
from liveshow.auction.models import AuctionBid, AuctionClaim, AuctionDecision, AuctionLot, AuctionWriter
from liveshow.auction.pg_batch import BatchRows, PgBatchCommitter
from liveshow.auction.prepare import Prepared, apply_host, needs_db, prepare
from liveshow.clock import wall_ms
from liveshow.db import Database, bulk_insert, loop_connection, table_of
from liveshow.errors import DomainError
from liveshow.metrics import Metrics
from liveshow.orders.errors import SoldOut
from liveshow.orders.models import Order
from liveshow.orders.service import create_order
from liveshow.showlog import ShowLog

log = logging.getLogger(__name__)
ANSWER_CACHE = 50_000
Replier = Callable[[list[tuple[Command, dict[str, Any]]]], Awaitable[None]]


class Fenced(Exception):
    """A newer writer owns the show: stop, announce nothing."""


class UnitTaken(Exception):
    def __init__(self, index: int) -> None:
        super().__init__(index)
        self.index = index


@dataclass
class Decision:
    command: Command
    reply: dict[str, Any]  # {"ok": {...}} | {"error": {...}}
    outcome: rules.Outcome | None = None
    seq: int = 0  # 0: a retry answered from an earlier decision, not a new one
    orders: list[Order] = field(default_factory=list)
    fingerprint: str = ""  # of a keyed command, computed once (a sha256 per command)


class _Stages:
    """Times a batch's stages into the writer's histogram (nothing without metrics)."""

    def __init__(self, metrics: Metrics | None) -> None:
        self.metrics = metrics
        self.mark = time.perf_counter()

    def done(self, stage: str) -> None:
        if self.metrics is not None:
            now = time.perf_counter()
            self.metrics.auction_stage.labels(stage).observe(now - self.mark)
            self.mark = now


def _at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


class ShowWriter:
    def __init__(
        self,
        db: Database,
        showlog: ShowLog,
        show_id: int,
        payment_window_minutes: int = 15,
        metrics: Metrics | None = None,
    ) -> None:
        self.db = db
        self.metrics = metrics
        self.showlog = showlog
        self.show_id = show_id
        self.window = payment_window_minutes
        self.epoch = 0
        self.seq = 0
        self.stream_pos = "0-0"
        self.book = rules.Book(show_id=show_id, seller_id=0)
        self.lot_ids: dict[int, int] = {}
        self.lot_info: dict[int, dict[str, Any]] = {}
        self.names: dict[int, str] = {}
        self._answers: OrderedDict[tuple[int, str], tuple[str, dict[str, Any]]] = OrderedDict()
        # True while _answers holds every keyed decision ever made for the show (loaded at takeover,
        # then kept): a key missing from it is new, and the batch needs no database lookup.
        self._answers_complete = False
        conn = loop_connection(db)
        self._pg = PgBatchCommitter(conn) if conn is not None else None

    async def close(self) -> None:
        """Let go of the writer's own database connection (the show's writer stopped or moved)."""
        if self._pg is not None:
            await self._pg.close()

    # ------------------------------------------------------------ takeover

    def acquire(self) -> None:
        """Fence out any earlier writer (epoch + 1) and load the show's state as persisted."""
        from liveshow.shows.models import Show

        with self.db.session() as s:
            show = s.get(Show, self.show_id)
            if show is None:
                raise DomainError("No such show.")
            row = s.exec(
                select(AuctionWriter).where(AuctionWriter.show_id == self.show_id).with_for_update()
            ).first()
            if row is None:
                row = AuctionWriter(show_id=self.show_id, epoch=0)
            row.epoch += 1
            s.add(row)
            s.commit()
            self.epoch, self.seq, self.stream_pos = row.epoch, row.seq, row.stream_pos
            lots = s.exec(
                select(AuctionLot).where(AuctionLot.show_id == self.show_id).order_by(col(AuctionLot.lot_no))
            ).all()
            last: rules.Lot | None = None
            for lot_row in lots:
                assert lot_row.id is not None
                self.lot_ids[lot_row.lot_no] = lot_row.id
                self.lot_info[lot_row.lot_no] = {
                    "title": lot_row.title,
                    "size": lot_row.size,
                    "photo_url": lot_row.photo_url,
                }
                last = lot_from_dict(jsonwire.loads(lot_row.state_json))
            self.book = rules.Book(
                show_id=self.show_id, seller_id=show.seller_id, lot=last, lots_opened=len(lots)
            )
            ids = {b.bidder_id for b in last.top} | {c.buyer_id for c in last.claims} if last else set()
            for user in s.exec(select(User).where(col(User.id).in_(ids))).all() if ids else []:
                assert user.id is not None
                self.names[user.id] = user.username
            self._load_answers(s)
        log.info("writer for show %s took over at epoch %s seq %s", self.show_id, self.epoch, self.seq)

    def _load_answers(self, s: Session) -> None:
        """The earlier answers of this show's idempotency keys, newest ANSWER_CACHE of them; complete
        when there are no more, so that retries across a takeover need no per-batch lookup."""
        d = AuctionDecision
        rows = s.exec(
            select(d.user_id, d.idem_key, d.fingerprint, d.reply)
            .where(d.show_id == self.show_id, col(d.idem_key).is_not(None), col(d.user_id).is_not(None))
            .order_by(col(d.seq).desc())
            .limit(ANSWER_CACHE + 1)
        ).all()
        self._answers.clear()
        for user_id, key, fingerprint, reply in reversed(rows[:ANSWER_CACHE]):
            assert user_id is not None and key is not None
            self._answers[(user_id, key)] = (fingerprint, jsonwire.loads(reply))
        self._answers_complete = len(rows) <= ANSWER_CACHE

    async def announce_state(self) -> None:
        """After a takeover, tell every room where the lot stands (an announcement may have been lost)."""
        if self.book.lot is not None:
            await self.showlog.publish(
                self.show_id, "lot.updated", self._decorate({"lot": rules.lot_view(self.book.lot)})
            )

    # ------------------------------------------------------------ deciding

    def due_ms(self) -> int | None:
        return rules.due_ms(self.book)

    async def run_batch(
        self,
        commands: list[Command],
        stream_pos: str | None = None,
        reply: Replier | None = None,
    ) -> list[tuple[Command, dict[str, Any]]]:
        """Decide, persist, then announce and (through ``reply``, at the same time) answer.

        Strictly one batch after the other: overlapping a batch's announcement with the next one's
        decisions was measured (bench/bids.py, 2,000 bids/s) to make batches smaller and more numerous,
        more announcements for the same bids, and the answers slower on a busy machine."""
        stages = _Stages(self.metrics)
        if needs_db(commands, self._answers, self._answers_complete):
            prepared = await run_in_threadpool(self._prepare, commands)
            stages.done("prepare")
        else:
            prepared = Prepared()
        start_book, start_seq = self.book, self.seq
        decisions = self._decide(commands, prepared, wall_ms())
        stages.done("decide")
        try:
            await self._persist_batch(decisions, stream_pos)
        except UnitTaken:
            # A unit went elsewhere (e.g. an accepted offer) between rules and commit: decide one by
            # one so that only the command that needed it is refused.
            self.book, self.seq = start_book, start_seq
            decisions = []
            for index, command in enumerate(commands):
                pos = stream_pos if index == len(commands) - 1 else None
                book, seq = self.book, self.seq
                one = self._decide([command], prepared, wall_ms())
                try:
                    await self._persist_batch(one, pos)
                except UnitTaken:
                    self.book, self.seq = book, seq
                    one = [self._decide_unit_gone(command, wall_ms())]
                    await self._persist_batch(one, pos)
                self._remember_all(one)
                decisions.extend(one)
        except Exception:
            self.book, self.seq = start_book, start_seq
            raise
        stages.done("persist")
        if stream_pos is not None:
            self.stream_pos = stream_pos
        self._remember_all(decisions)
        answers = [(d.command, d.reply) for d in decisions]
        # Announced (and so in the show's log) before anyone is answered: an accepted bid is never
        # acknowledged by a leader that is killed before its events reach the log. bench/faults.py saw
        # one in 100 kills while the two ran side by side; the answer now waits one INSERT longer.
        await self._announce(decisions)
        if reply is not None:
            await reply(answers)
        stages.done("announce")
        if self.metrics is not None:
            self.metrics.auction_batch.observe(len(commands))
        return answers

    def _prepare(self, commands: list[Command]) -> Prepared:
        return prepare(self.db, self.show_id, self.book, commands, self._answers, self._answers_complete)

    def _decide(self, commands: list[Command], prepared: Prepared, now_ms: int) -> list[Decision]:
        decisions: list[Decision] = []
        seen: dict[tuple[int, str], tuple[str, dict[str, Any]]] = {}
        for command in commands:
            ident = (command.user_id, command.key) if command.key and command.user_id is not None else None
            fingerprint = command.fingerprint() if ident is not None else ""
            if ident is not None:
                prior = seen.get(ident) or self._answers.get(ident) or prepared.answers.get(ident)
                if prior is not None:
                    if prior[0] != fingerprint:
                        refusal = KeyReused("That key was already used for a different request.")
                        decisions.append(Decision(command, {"error": error_to_dict(refusal)}))
                    else:
                        decisions.append(Decision(command, prior[1]))
                    continue
            if command.username and command.user_id is not None:
                self.names[command.user_id] = command.username
            outcome: rules.Outcome | None = None
            try:
                applied = self._apply(command, prepared, now_ms)
            except DomainError as exc:
                reply: dict[str, Any] = {"error": error_to_dict(exc)}
            else:
                outcome = applied
                reply = {"ok": {**applied.reply, "epoch": self.epoch, "dseq": self.seq + 1}}
                self.book = applied.book
            self.seq += 1
            decisions.append(Decision(command, reply, outcome, self.seq, fingerprint=fingerprint))
            if ident is not None:
                seen[ident] = (fingerprint, reply)
        return decisions

    def _decide_unit_gone(self, command: Command, now_ms: int) -> Decision:
        """Decide again a command whose sale met no free unit (sold by an offer, a replay purchase or a
        giveaway since the rules saw the lot). An auction's close still closes it, as sold elsewhere:
        refusing it would leave the lot open past its deadline, and every later tick would be refused
        and persisted again, for ever. Anything else (a claim) is refused as sold out."""
        fingerprint = command.fingerprint() if command.key and command.user_id is not None else ""
        self.seq += 1
        lot = self.book.lot
        try:
            if command.kind not in ("tick", "lot.close") or lot is None or lot.kind != "auction":
                raise SoldOut("Sold out.")
            outcome = rules.close(self.book, now_ms, by_host=command.kind != "tick", unit_gone=True)
        except DomainError as exc:
            return Decision(command, {"error": error_to_dict(exc)}, None, self.seq, fingerprint=fingerprint)
        self.book = outcome.book
        reply = {"ok": {**outcome.reply, "epoch": self.epoch, "dseq": self.seq}}
        return Decision(command, reply, outcome, self.seq, fingerprint=fingerprint)

    def _apply(self, command: Command, prepared: Prepared, now_ms: int) -> rules.Outcome:
        p = command.payload
        if command.kind == "claim":
            assert command.user_id is not None
            return rules.claim(self.book, command.user_id, p["quantity"], now_ms, p.get("lot_no"))
        if command.kind == "bid":
            assert command.user_id is not None
            return rules.bid(self.book, command.user_id, p["max_cents"], now_ms, p.get("lot_no"))
        if command.kind == "tick":
            return rules.close(self.book, now_ms, by_host=False)
        outcome, info = apply_host(self.book, command, prepared, now_ms)
        if info is not None and outcome.book.lot is not None:
            self.lot_info[outcome.book.lot.lot_no] = info
        return outcome

    # ------------------------------------------------------------ persisting

    async def _persist_batch(self, decisions: list[Decision], stream_pos: str | None) -> None:
        """One transaction for the whole batch, behind the epoch fence: on PostgreSQL one statement,
        awaited on the loop, when the batch needs no new lot row and no order; else through a Session
        in a thread, where orders go through the unit fence."""
        new = [d for d in decisions if d.seq]  # a retry answered from memory writes nothing
        if self._pg is None or any(self._needs_session(d) for d in new):
            await run_in_threadpool(self._persist, new, stream_pos)
            return
        rows = self._rows(new, wall_ms())
        if not await self._pg.commit(self.show_id, self.epoch, self.seq, stream_pos, rows):
            raise Fenced(f"show {self.show_id}: epoch {self.epoch} was superseded")

    def _persist(self, new: list[Decision], stream_pos: str | None) -> None:
        """The Session path (in a thread); a lot row it created is forgotten if the batch rolls back."""
        known_lots = set(self.lot_ids)
        try:
            self._persist_in_session(new, stream_pos, wall_ms())
        except BaseException:
            for lot_no in set(self.lot_ids) - known_lots:  # its row was rolled back
                del self.lot_ids[lot_no]
            raise

    def _persist_in_session(self, new: list[Decision], stream_pos: str | None, now_ms: int) -> None:
        with self.db.session() as s:
            values: dict[str, Any] = {"seq": self.seq}
            if stream_pos is not None:
                values["stream_pos"] = stream_pos
            fenced = s.execute(
                update(AuctionWriter)
                .where(col(AuctionWriter.show_id) == self.show_id, col(AuctionWriter.epoch) == self.epoch)
                .values(**values)
            )
            if fenced.rowcount != 1:  # type: ignore[attr-defined]
                s.rollback()
                raise Fenced(f"show {self.show_id}: epoch {self.epoch} was superseded")
            for index, d in enumerate(new):
                if d.outcome is None or d.outcome.book.lot is None:
                    continue
                lot_id = self._lot_row(s, d.outcome.book.lot)
                d.orders = []
                for sale in d.outcome.sales:
                    try:
                        order = create_order(
                            s,
                            sale.buyer_id,
                            sale.listing_id,
                            sale.price_cents,
                            sale.source,
                            show_id=self.show_id,
                            lot_id=lot_id,
                            now=_at(now_ms),
                            payment_window_minutes=self.window,
                            commit=False,
                        )
                    except SoldOut as exc:
                        s.rollback()
                        raise UnitTaken(index) from exc
                    d.orders.append(order)
            rows = self._rows(new, now_ms)
            for table, batch in (
                (AuctionDecision, rows.decided),
                (AuctionBid, rows.bids),
                (AuctionClaim, rows.claims),
            ):
                bulk_insert(s, table_of(table), batch)
            lots = table_of(AuctionLot)
            for lot_row in rows.lots:
                closed_ms = lot_row["closed_ms"]
                s.execute(
                    update(lots)
                    .where(lots.c.id == lot_row["id"])
                    .values(
                        state=lot_row["state"],
                        state_json=lot_row["state_json"],
                        closed_at=_at(closed_ms) if closed_ms else None,
                    )
                )
            s.commit()

    def _needs_session(self, d: Decision) -> bool:
        """A sale (orders meet the unit fence) or a lot without its row yet."""
        if d.outcome is None or d.outcome.book.lot is None:
            return False
        return bool(d.outcome.sales) or d.outcome.book.lot.lot_no not in self.lot_ids

    def _rows(self, new: list[Decision], now_ms: int) -> BatchRows:
        """The batch's rows; every lot it touched has its row id by now."""
        rows = BatchRows()
        touched: dict[int, rules.Lot] = {}
        for d in new:
            c = d.command
            rows.decided.append(
                {
                    "show_id": self.show_id,
                    "epoch": self.epoch,
                    "seq": d.seq,
                    "kind": c.kind,
                    "user_id": c.user_id,
                    "idem_key": c.key,
                    "fingerprint": d.fingerprint,
                    "accepted": "ok" in d.reply,
                    "reply": jsonwire.dumps(d.reply),
                    "at_ms": now_ms,
                }
            )
            if d.outcome is None or d.outcome.book.lot is None:
                continue
            lot = d.outcome.book.lot
            touched[lot.lot_no] = lot
            row = {
                "show_id": self.show_id,
                "lot_id": self.lot_ids[lot.lot_no],
                "epoch": self.epoch,
                "seq": d.seq,
            }
            if c.kind == "bid":
                placed = lot.last_bid
                assert placed is not None
                rows.bids.append(
                    {
                        **row,
                        "bidder_id": placed.bidder_id,
                        "max_cents": placed.max_cents,
                        "at_ms": placed.at_ms,
                    }
                )
            elif c.kind == "claim":
                taken = lot.claims[-1]
                rows.claims.append(
                    {**row, "buyer_id": taken.buyer_id, "quantity": taken.quantity, "at_ms": taken.at_ms}
                )
        for lot in touched.values():
            rows.lots.append(
                {
                    "id": self.lot_ids[lot.lot_no],
                    "state": lot.state,
                    "state_json": jsonwire.dumps(lot_to_dict(lot)),
                    "closed_ms": lot.closed_at_ms,
                }
            )
        return rows

    def _lot_row(self, s: Session, lot: rules.Lot) -> int:
        known = self.lot_ids.get(lot.lot_no)
        if known is not None:
            return known
        info = self.lot_info.get(lot.lot_no, {})
        row = AuctionLot(
            show_id=self.show_id,
            lot_no=lot.lot_no,
            listing_id=lot.listing_id,
            kind=lot.kind,
            state=lot.state,
            title=info.get("title", ""),
            size=info.get("size", ""),
            photo_url=info.get("photo_url", ""),
            state_json=jsonwire.dumps(lot_to_dict(lot)),
            opened_at=_at(lot.opened_at_ms),
        )
        s.add(row)
        s.flush()
        assert row.id is not None
        self.lot_ids[lot.lot_no] = row.id
        return row.id

    def _remember_all(self, decisions: list[Decision]) -> None:
        for d in decisions:
            if d.seq and d.command.key and d.command.user_id is not None:
                self._answers[(d.command.user_id, d.command.key)] = (d.fingerprint, d.reply)
        while len(self._answers) > ANSWER_CACHE:
            self._answers.popitem(last=False)
            self._answers_complete = False  # an evicted key must be looked up in the database again

    # ------------------------------------------------------------ announcing

    def _decorate(self, data: dict[str, Any]) -> dict[str, Any]:
        out = dict(data)
        if isinstance(out.get("lot"), dict):
            lot = dict(out["lot"])
            lot.update(self.lot_info.get(lot["lot_no"], {}))
            if lot.get("leader_id") is not None:
                lot["leader"] = self.names.get(lot["leader_id"], "")
            out["lot"] = lot
        for key in ("leader_id", "bidder_id", "buyer_id", "winner_id"):
            if out.get(key) is not None:
                out[key.removesuffix("_id")] = self.names.get(out[key], "")
        return out

    async def _announce(self, decisions: list[Decision]) -> None:
        """Every event of the batch in decision order, in one bus round trip."""
        items: list[tuple[str, dict[str, Any]]] = []
        for d in decisions:
            if d.outcome is None or not d.seq:
                continue
            for type_, data in d.outcome.events:
                body = self._decorate(data)
                body["epoch"], body["dseq"] = self.epoch, d.seq
                items.append((type_, body))
            for order in d.orders:
                items.append(
                    (
                        "order.created",
                        {
                            "to": [order.buyer_id, order.seller_id],
                            "order_id": order.id,
                            "listing_id": order.listing_id,
                            "price_cents": order.price_cents,
                            "buyer_id": order.buyer_id,
                            "buyer": self.names.get(order.buyer_id, ""),
                            "source": order.source,
                        },
                    )
                )
        if items:
            # Archived at once, not at the next flush: the decisions are answered meanwhile, and a
            # leader killed right after must not take accepted bids and sales out of the show's log.
            await self.showlog.publish_many(self.show_id, items, durable=True)
