"""A show's timeline: its archived events placed on the recording's time axis (pure functions).

An event's offset is its wall time minus the wall time of the recording's first frame; when the media
clock skipped a gap (a republish), the recording's anchors say where wall time and file time re-align.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Any

# What the replay's side panel shows as sales (the rest is chat, reactions, state).
SALE_TYPES = frozenset({"claim.accepted", "bid.accepted", "lot.closed", "order.created"})
CHAPTER_TYPES = frozenset({"lot.opened", "show.state"})
STATE_TITLES = {"live": "Live", "reconnecting": "Reconnecting", "ended": "Show ended"}


@dataclass(frozen=True)
class ArchivedEvent:
    seq: int
    type: str
    data: dict[str, Any]
    at_ms: int  # wall time the bus stamped it


def offset_ms(at_ms: int, anchors: list[tuple[int, int]]) -> int:
    """Where in the file a wall time falls: from the last anchor at or before it (the first otherwise)."""
    if not anchors:
        return 0
    walls = [w for _, w in anchors]
    i = max(0, bisect.bisect_right(walls, at_ms) - 1)
    anchor_offset, anchor_wall = anchors[i]
    return anchor_offset + (at_ms - anchor_wall)


def lot_of(data: dict[str, Any]) -> dict[str, Any]:
    lot = data.get("lot")
    return lot if isinstance(lot, dict) else data


def build_timeline(
    events: list[ArchivedEvent],
    anchors: list[tuple[int, int]],
    duration_ms: int,
    titles: dict[int, str],
) -> dict[str, Any]:
    """Events (with offsets clamped to the file) and chapters; ``titles`` maps listing ids to titles.

    Chat messages deleted by a moderator during the show stay deleted in the replay.
    """
    deleted = {e.data.get("message_id") or e.data.get("id") for e in events if e.type == "chat.deleted"}
    out_events: list[dict[str, Any]] = []
    chapters: list[dict[str, Any]] = []
    for event in events:
        if event.type == "chat.deleted":
            continue
        if event.type == "chat.message":
            message = event.data.get("message", event.data)
            if isinstance(message, dict) and message.get("id") in deleted:
                continue
        offset = min(max(0, offset_ms(event.at_ms, anchors)), duration_ms)
        out_events.append({"seq": event.seq, "type": event.type, "offset_ms": offset, "data": event.data})
        if event.type == "lot.opened":
            lot = lot_of(event.data)
            listing_id = lot.get("listing_id")
            title = titles.get(listing_id) if isinstance(listing_id, int) else None
            chapters.append(
                {
                    "kind": "item",
                    "offset_ms": offset,
                    "title": title or f"Item {lot.get('lot_no', '')}".strip(),
                    "listing_id": listing_id,
                    "lot_no": lot.get("lot_no"),
                }
            )
        elif event.type == "show.state":
            state = str(event.data.get("state", ""))
            chapters.append(
                {
                    "kind": "state",
                    "offset_ms": offset,
                    "title": STATE_TITLES.get(state, state),
                    "state": state,
                }
            )
    out_events.sort(key=lambda e: (e["offset_ms"], e["seq"]))
    chapters.sort(key=lambda c: c["offset_ms"])
    return {"duration_ms": duration_ms, "events": out_events, "chapters": chapters}


def listing_ids(events: list[ArchivedEvent]) -> set[int]:
    """Every listing that was put on screen (for titles and the "still for sale" list)."""
    ids: set[int] = set()
    for event in events:
        if event.type in ("lot.opened", "lot.updated", "lot.closed"):
            listing_id = lot_of(event.data).get("listing_id")
            if isinstance(listing_id, int):
                ids.add(listing_id)
    return ids
