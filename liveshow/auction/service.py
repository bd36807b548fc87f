"""The auction service: room handlers and the chat hook translate messages into writer commands.

Handlers only validate and translate; every decision is the show's single writer's (local.py in one
process, distributed.py across processes through Redis).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from typing import Any, Protocol

from sqlmodel import select
from starlette.concurrency import run_in_threadpool

from liveshow.accounts.models import User
from liveshow.auction import commands as cmds
from liveshow.auction.errors import HostOnly, error_from_dict, error_from_frame, refusal_frame
from liveshow.auction.lot_bids import ranked_bids
from liveshow.auction.models import AuctionLot
from liveshow.auction.writer import ShowWriter
from liveshow.bus import is_redis_url
from liveshow.clock import utcnow, wall_ms
from liveshow.db import Database
from liveshow.errors import DomainError, NotAuthenticated, NotFound
from liveshow.metrics import Metrics
from liveshow.orders.service import expire_offers, expire_unpaid
from liveshow.settings import Settings
from liveshow.showlog import ShowLog
from liveshow.shows.models import Show

log = logging.getLogger(__name__)
SWEEP_SECONDS = 15.0


class Dispatcher(Protocol):
    writers: dict[int, ShowWriter]  # the shows this process decides now

    async def start(self, show_ids: list[int]) -> None: ...

    async def stop(self) -> None: ...

    async def submit(self, command: cmds.Command) -> dict[str, Any]: ...


class AuctionService:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        showlog: ShowLog,
        dispatcher: Dispatcher | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.db = db
        self.showlog = showlog
        self.dispatcher = dispatcher or make_dispatcher(settings, self.make_writer)
        self._sellers: dict[int, tuple[int, str]] = {}
        self._sweeper: asyncio.Task[None] | None = None
        if metrics is not None:
            # Which process decides a show (operators, and bench/faults.py to kill the right one).
            metrics.auction_shows_led.set_function(lambda: len(self.dispatcher.writers))

    def make_writer(self, show_id: int) -> ShowWriter:
        return ShowWriter(
            self.db, self.showlog, show_id, self.settings.payment_window_minutes, metrics=self.metrics
        )

    async def start(self) -> None:
        await self.dispatcher.start(await run_in_threadpool(self._open_lot_shows))
        self._sweeper = asyncio.create_task(self._sweep_forever(), name="orders-sweeper")

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        await self.dispatcher.stop()

    def _open_lot_shows(self) -> list[int]:
        with self.db.session() as s:
            return sorted(set(s.exec(select(AuctionLot.show_id).where(AuctionLot.state == "open")).all()))

    # ------------------------------------------------------------ commands

    async def _show(self, show_id: int) -> tuple[int, str]:
        known = self._sellers.get(show_id)
        if known is None:

            def load() -> tuple[int, str] | None:
                with self.db.session() as s:
                    show = s.get(Show, show_id)
                    return None if show is None else (show.seller_id, show.claim_keyword)

            found = await run_in_threadpool(load)
            if found is None:
                raise NotFound("No such show.")
            known = self._sellers[show_id] = found
        return known

    async def execute(self, command: cmds.Command) -> dict[str, Any]:
        """Send a command to the show's writer; return its answer or raise its refusal."""
        answer = await self._ask(command)
        if "error" in answer:
            raise error_from_dict(answer["error"])
        result: dict[str, Any] = answer["ok"]
        return result

    async def _ask(self, command: cmds.Command) -> dict[str, Any]:
        """The writer's answer to a command: {"ok": result} or {"error": refusal}."""
        started = time.perf_counter()
        answer = await self.dispatcher.submit(command)
        if self.metrics is not None:
            kind = command.kind if command.kind in ("claim", "bid") else "host"
            self.metrics.auction_answer_by_kind[kind].observe(time.perf_counter() - started)
        return answer

    async def claim(
        self, show_id: int, user: User, quantity: int, key: str, lot_no: int | None = None
    ) -> dict[str, Any]:
        assert user.id is not None
        payload = {"quantity": quantity, "lot_no": lot_no}
        return await self.execute(cmds.Command("claim", show_id, user.id, key, payload, user.username))

    async def bid(
        self, show_id: int, user: User, max_cents: int, key: str, lot_no: int | None = None
    ) -> dict[str, Any]:
        assert user.id is not None
        payload = {"max_cents": max_cents, "lot_no": lot_no}
        return await self.execute(cmds.Command("bid", show_id, user.id, key, payload, user.username))

    async def host(self, show_id: int, user: User, kind: str, message: dict[str, Any]) -> dict[str, Any]:
        seller_id, _kw = await self._show(show_id)
        if user.id != seller_id:
            raise HostOnly("Only the show's host can do that.")
        payload = cmds.parse_host(kind, message)
        key = message.get("key") if isinstance(message.get("key"), str) else None
        key = cmds.idempotency_key(message) if key is not None else None
        return await self.execute(cmds.Command(kind, show_id, user.id, key, payload, user.username))

    # ------------------------------------------------------------ room integration

    async def on_message(self, show_id: int, user: User | None, message: dict[str, Any]) -> dict[str, Any]:
        """The answer to a room message (or its HTTP twin); every refusal raised as its DomainError."""
        reply = await self.answer(show_id, user, message)
        if reply["type"] == "error":
            raise error_from_frame(reply)
        return reply

    async def answer(self, show_id: int, user: User | None, message: dict[str, Any]) -> dict[str, Any]:
        """on_message for a room socket: a writer's refusal of a claim or bid comes back as its error
        frame instead of raised (see refusal_frame); a message refused before it reaches the writer
        (not signed in, malformed, a host command from a viewer) is still raised."""
        kind = str(message.get("type"))
        if kind == "lot.state":
            return {
                "type": "lot.state",
                "lot": await run_in_threadpool(self.current_lot, show_id),
                "server_ms": wall_ms(),
            }
        if user is None:
            raise NotAuthenticated("Sign in to take part.")
        if kind in cmds.HOST_KINDS:
            result = await self.host(show_id, user, kind, message)
            return {"type": f"{kind}.result", "ok": True, **result}
        if show_id not in self._sellers:  # known after the first: no coroutine per bid for it
            await self._show(show_id)
        key, payload = cmds.parse_viewer(kind, message)
        answer = await self._ask(cmds.Command(kind, show_id, user.id, key, payload, user.username))
        if "error" in answer:
            return refusal_frame(answer["error"])
        return {"type": f"{kind}.result", "ok": True, **answer["ok"]}

    async def on_chat(self, show_id: int, user: User, text: str, message_id: int) -> None:
        """ "claim" or "claim 2" (the show's keyword) in chat claims like a tap on Claim."""
        _seller, keyword = await self._show(show_id)
        match = re.fullmatch(rf"\s*{re.escape(keyword.lower())}(?:\s+(\d{{1,3}}))?\s*[!.]*\s*", text.lower())
        if match is None:
            return
        quantity = int(match.group(1) or 1)
        try:
            # Keyed by the message: the same message meeting this hook again (a retried send) claims once.
            await self.claim(show_id, user, max(quantity, 1), f"chat-{show_id}-{message_id}")
        except DomainError as exc:
            assert user.id is not None
            await self.showlog.publish(
                show_id,
                "notice",
                {"to": [user.id], "kind": "claim_refused", "code": exc.code, "reason": exc.message},
            )

    def current_lot(self, show_id: int) -> dict[str, Any] | None:
        """The lot on screen as last committed (for a page or socket that just opened)."""
        from liveshow.auction import rules

        with self.db.session() as s:
            row = s.exec(
                select(AuctionLot).where(AuctionLot.show_id == show_id).order_by(AuctionLot.lot_no.desc())  # type: ignore[attr-defined]
            ).first()
            if row is None:
                return None
            view = rules.lot_view(cmds.lot_from_dict(json.loads(row.state_json)))
            view.update(title=row.title, size=row.size, photo_url=row.photo_url)
            if view.get("leader_id"):
                leader = s.get(User, view["leader_id"])
                view["leader"] = leader.username if leader else ""
            return view

    # ------------------------------------------------------------ payment windows

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_SECONDS)
            try:
                await run_in_threadpool(self.sweep)
            except Exception:
                log.exception("order sweep failed")

    def sweep(self) -> int:
        with self.db.session() as s:
            window = self.settings.payment_window_minutes
            lapsed = expire_unpaid(s, ranked_bids, utcnow(), window)
            return len(lapsed) + len(expire_offers(s, ranked_bids, utcnow(), window))


def make_dispatcher(settings: Settings, make_writer: Any) -> Dispatcher:
    if is_redis_url(settings.bus_url):
        from liveshow.auction.distributed import RedisDispatcher

        return RedisDispatcher(settings.bus_url, settings.bus_prefix, make_writer)
    from liveshow.auction.local import LocalDispatcher

    return LocalDispatcher(make_writer)
