"""The fault suite's verdict, pure: what the clients were told against what the server keeps.

Inputs are plain records (no I/O): what each client was acknowledged and saw, the show's durable log
(GET /api/shows/{id}/events) and its orders (GET /api/orders). Every count that could hide a failure is
reported, and ``violations`` lists what breaks a rule of the field (DESIGN.md): nothing acknowledged is
lost, no unit is sold twice, numbering never goes backwards, every command is answered.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

# Room event types that are never in the durable log (the moment, not the show).
EPHEMERAL = frozenset({"presence", "snapshot"})


@dataclass
class ClientRecord:
    """What one client (one user, across its reconnects) was told and saw."""

    user_id: int
    chats: dict[int, str] = field(default_factory=dict)  # acknowledged message id -> text
    bids: list[tuple[int, int]] = field(default_factory=list)  # accepted: (lot_no, max_cents)
    claims: list[tuple[int, int]] = field(default_factory=list)  # acknowledged units: (lot_no, unit)
    offers: list[int] = field(default_factory=list)  # listings bought through an accepted offer
    seen: dict[int, str] = field(default_factory=dict)  # public event seq -> type, seen live
    seen_chat_ids: set[int] = field(default_factory=set)  # chat messages shown (events and snapshots)
    seen_chat: dict[int, int] = field(default_factory=dict)  # seq of a chat.message seen live -> its id
    span: tuple[int, int] | None = None  # (seq at first join, last seq seen)
    backwards: int = 0  # frames whose seq was at or below one already seen on the same socket
    unanswered: int = 0  # commands that had no answer after every retry
    server_errors: int = 0  # answers with code "internal" or HTTP 5xx other than 503


@dataclass
class Verdict:
    counts: dict[str, int]
    violations: list[str]
    examples: dict[str, list[str]] = field(default_factory=dict)  # a few of each, to start from


def check(clients: list[ClientRecord], events: list[dict[str, Any]], orders: list[dict[str, Any]]) -> Verdict:
    counts: Counter[str] = Counter()
    violations: list[str] = []
    examples: dict[str, list[str]] = {}

    def example(name: str, text: str) -> None:
        if len(examples.setdefault(name, [])) < 5:
            examples[name].append(text)

    by_seq = {int(e["seq"]): e for e in events}
    counts["log events"] = len(events)
    if len(by_seq) != len(events):
        violations.append(f"the log repeats {len(events) - len(by_seq)} sequence numbers")
    seqs = [int(e["seq"]) for e in events]
    if seqs != sorted(seqs):
        violations.append("the log is not in sequence order")

    # Chat: every acknowledged message is in the log, once.
    logged_chat = Counter(int(e["id"]) for e in events if e.get("type") == "chat.message" and "id" in e)
    acked = {mid for c in clients for mid in c.chats}
    counts["chat acknowledged"] = len(acked)
    counts["chat acknowledged, lost"] = len(acked - set(logged_chat))
    for c in clients:
        for mid, text in c.chats.items():
            if mid not in logged_chat:
                example("chat acknowledged, lost", f"message {mid} {text!r} from user {c.user_id}")
    # Not a violation: a message whose first answer was lost may go out again on its retry (the
    # same message id, a new seq); pages and the replay show a message once, by id. Counted.
    counts["chat messages logged twice"] = sum(1 for n in logged_chat.values() if n > 1)

    # Bids: every accepted bid is in the log (per lot and bidder, at least as many as were accepted).
    logged_bids = Counter(
        (int(e["lot_no"]), int(e["bidder_id"])) for e in events if e.get("type") == "bid.accepted"
    )
    acked_bids = Counter((lot, c.user_id) for c in clients for lot, _max in c.bids)
    counts["bids accepted"] = sum(acked_bids.values())
    counts["bids accepted, lost"] = sum(max(0, n - logged_bids[k]) for k, n in acked_bids.items())

    # Units: each sold once; every acknowledged claim and every auction won has its order; no order
    # without an acknowledged win. Orders name the listing; lot.opened says which listing a lot sold.
    listing_of = {
        int(e["lot"]["lot_no"]): int(e["lot"]["listing_id"])
        for e in events
        if e.get("type") == "lot.opened" and isinstance(e.get("lot"), dict)
    }
    live = [o for o in orders if o.get("status") not in ("cancelled", "refunded")]
    counts["orders"] = len(orders)
    units = Counter((int(o["listing_id"]), int(o["unit_no"])) for o in live)
    counts["units sold twice"] = sum(1 for n in units.values() if n > 1)
    claimed: Counter[tuple[int, int]] = Counter()  # (buyer, listing) -> units acknowledged
    for c in clients:
        for lot, _unit in c.claims:
            claimed[(c.user_id, listing_of.get(lot, -1))] += 1
    counts["claims acknowledged"] = sum(claimed.values())

    def per_buyer(rows: list[dict[str, Any]], source: str) -> Counter[tuple[int, int]]:
        return Counter((int(o["buyer_id"]), int(o["listing_id"])) for o in rows if o["source"] == source)

    # An acknowledged win needs an order, whatever became of it since (cancelled, refunded); an order
    # still standing needs an acknowledged win.
    claim_orders, live_claim_orders = per_buyer(orders, "claim"), per_buyer(live, "claim")
    counts["claims acknowledged, no order"] = sum(max(0, n - claim_orders[k]) for k, n in claimed.items())
    won: Counter[tuple[int, int]] = Counter(
        (int(e["winner_id"]), listing_of.get(int(e["lot_no"]), -1))
        for e in events
        if e.get("type") == "lot.closed" and e.get("outcome") == "sold" and e.get("winner_id") is not None
    )
    counts["auctions won"] = sum(won.values())
    auction_orders, live_auction_orders = per_buyer(orders, "auction"), per_buyer(live, "auction")
    counts["auctions won, no order"] = sum(max(0, n - auction_orders[k]) for k, n in won.items())
    offered: Counter[tuple[int, int]] = Counter((c.user_id, listing) for c in clients for listing in c.offers)
    offer_orders, live_offer_orders = per_buyer(orders, "offer"), per_buyer(live, "offer")
    counts["offers accepted"] = sum(offered.values())
    counts["offers accepted, no order"] = sum(max(0, n - offer_orders[k]) for k, n in offered.items())
    counts["auctions closed sold elsewhere"] = sum(
        1 for e in events if e.get("type") == "lot.closed" and e.get("outcome") == "sold_elsewhere"
    )
    counts["orders without an acknowledged win"] = (
        sum(max(0, n - offered[k]) for k, n in live_offer_orders.items())
        + sum(max(0, n - claimed[k]) for k, n in live_claim_orders.items())
        + sum(max(0, n - won[k]) for k, n in live_auction_orders.items())
    )

    # What the clients saw: numbering never backwards; every public event seen live is in the log
    # (the replay is complete); every chat message of the span a client was in reached it.
    counts["frames numbered backwards"] = sum(c.backwards for c in clients)
    counts["commands never answered"] = sum(c.unanswered for c in clients)
    counts["server errors (500/internal)"] = sum(c.server_errors for c in clients)
    missing_live = 0
    for c in clients:
        for seq, type_ in c.seen.items():
            if type_ in EPHEMERAL:
                continue
            logged = by_seq.get(seq)
            if logged is None and c.seen_chat.get(seq) in logged_chat:
                # A message whose publisher died before archiving it and before answering went out
                # again on its sender's retry (same id, a new seq): the log and the replay have it.
                counts["chat seen live, in the log under its retry's seq"] += 1
                continue
            if logged is None or logged.get("type") != type_:
                missing_live += 1
                found = "nothing" if logged is None else logged.get("type")
                example("events seen live, missing from the log", f"seq {seq}: saw {type_}, log has {found}")
    counts["events seen live, missing from the log"] = missing_live
    gaps = 0
    for c in clients:
        if c.span is None:
            continue
        first, last = c.span
        expected = {
            int(e["id"])
            for e in events
            if e.get("type") == "chat.message" and first < int(e["seq"]) <= last and "id" in e
        }
        gaps += len(expected - c.seen_chat_ids)
    counts["chat messages a connected client missed"] = gaps

    for name in (
        "chat acknowledged, lost",
        "bids accepted, lost",
        "units sold twice",
        "claims acknowledged, no order",
        "offers accepted, no order",
        "auctions won, no order",
        "orders without an acknowledged win",
        "frames numbered backwards",
        "commands never answered",
        "server errors (500/internal)",
        "events seen live, missing from the log",
        "chat messages a connected client missed",
    ):
        if counts[name]:
            violations.append(f"{name}: {counts[name]}")
    return Verdict(dict(counts), violations, examples)


def pct(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]
