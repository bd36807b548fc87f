"""The fault suite's verdict (bench/fault_check.py): each rule it checks fails on the record that breaks
it, and a clean record passes."""

from __future__ import annotations

from typing import Any

from bench.fault_check import ClientRecord, check


def _log() -> list[dict[str, Any]]:
    return [
        {"type": "lot.opened", "seq": 1, "lot": {"lot_no": 1, "listing_id": 10}},
        {"type": "chat.message", "seq": 2, "id": 100, "text": "hi"},
        {"type": "claim.accepted", "seq": 3, "lot_no": 1, "buyer_id": 7},
        {"type": "lot.opened", "seq": 5, "lot": {"lot_no": 2, "listing_id": 11}},
        {"type": "bid.accepted", "seq": 6, "lot_no": 2, "bidder_id": 7},
        {"type": "lot.closed", "seq": 7, "lot_no": 2, "outcome": "sold", "winner_id": 7},
    ]


def _orders() -> list[dict[str, Any]]:
    return [
        {"listing_id": 10, "unit_no": 1, "buyer_id": 7, "source": "claim", "status": "awaiting_payment"},
        {"listing_id": 11, "unit_no": 1, "buyer_id": 7, "source": "auction", "status": "awaiting_payment"},
    ]


def _client() -> ClientRecord:
    c = ClientRecord(7, chats={100: "hi"}, bids=[(2, 500)], claims=[(1, 1)])
    c.seen = {1: "lot.opened", 2: "chat.message", 4: "presence", 6: "bid.accepted"}
    c.seen_chat_ids = {100}
    c.span = (0, 7)
    return c


def test_a_clean_run_passes() -> None:
    verdict = check([_client()], _log(), _orders())
    assert verdict.violations == []
    assert verdict.counts["chat acknowledged"] == 1 and verdict.counts["auctions won"] == 1


def test_each_broken_rule_is_reported() -> None:
    client = _client()
    client.chats[101] = "lost"  # acknowledged, never logged
    client.bids.append((2, 900))  # accepted, not in the log
    client.claims.append((1, 2))  # acknowledged, no order
    client.seen[8] = "chat.message"  # seen live, missing from the log
    client.backwards = 1
    client.unanswered = 2
    orders = [
        *_orders(),
        {"listing_id": 10, "unit_no": 1, "buyer_id": 8, "source": "claim", "status": "paid"},  # twice
    ]
    log = [*_log(), {"type": "chat.message", "seq": 4, "id": 102, "text": "missed"}]
    counts = check([client], sorted(log, key=lambda e: e["seq"]), orders).counts
    assert counts["chat acknowledged, lost"] == 1
    assert counts["bids accepted, lost"] == 1
    assert counts["claims acknowledged, no order"] == 1
    assert counts["units sold twice"] == 1
    assert counts["orders without an acknowledged win"] == 1  # buyer 8 was never told it won
    assert counts["events seen live, missing from the log"] == 1
    assert counts["chat messages a connected client missed"] == 1
    assert counts["frames numbered backwards"] == 1 and counts["commands never answered"] == 2


def test_a_cancelled_order_frees_its_unit_and_a_won_auction_needs_its_order() -> None:
    orders = _orders()
    orders[0]["status"] = "cancelled"
    orders.append({"listing_id": 10, "unit_no": 1, "buyer_id": 7, "source": "claim", "status": "paid"})
    verdict = check([_client()], _log(), orders[:1] + orders[2:])  # the auction's order is missing
    assert verdict.counts["units sold twice"] == 0
    assert verdict.violations == ["auctions won, no order: 1"]


def test_a_chat_message_seen_live_and_logged_under_its_retrys_seq_is_not_missing() -> None:
    client = _client()
    client.seen[8] = "chat.message"  # published, its process killed before archiving and answering
    client.seen_chat[8] = 100  # ... and its sender's retry put message 100 in the log at seq 2
    counts = check([client], _log(), _orders()).counts
    assert counts["events seen live, missing from the log"] == 0
    assert counts["chat seen live, in the log under its retry's seq"] == 1
    client.seen_chat[8] = 999  # a message the log does not have at all
    assert check([client], _log(), _orders()).counts["events seen live, missing from the log"] == 1
