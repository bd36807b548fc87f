"""Where an edge pulls a show from: the origin, or another edge of it (pure; no I/O).

A show's audience is a tree: the origin (the process holding the publisher) feeds edges, and edges
may feed edges. ``fanout`` bounds how many edges pull from one node, so that the origin pays for at
most ``fanout`` viewers however large the cluster, and the rest of the tree hangs off edges, shallow
first (each hop adds a little latency). ``fanout`` 0 means no bound: every edge pulls from the origin.

An edge never pulls from itself or from a node that pulls (directly or not) from it: that would be a
loop with no publisher in it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class EdgeEntry:
    """One edge of a show as announced in the registry: its URL, whom it pulls from, its depth."""

    url: str
    upstream: str
    depth: int  # 1: pulls from the origin


def below(node: str, edges: Sequence[EdgeEntry], me: str) -> bool:
    """Whether ``node`` pulls from ``me``, directly or through other edges."""
    upstream = {e.url: e.upstream for e in edges}
    seen: set[str] = set()
    current = node
    while current in upstream and current not in seen:
        seen.add(current)
        current = upstream[current]
        if current == me:
            return True
    return False


def choose_upstream(
    origin: str,
    edges: Sequence[EdgeEntry],
    me: str,
    fanout: int,
    exclude: Iterable[str] = (),
) -> tuple[str, int]:
    """The URL to pull from and the depth this edge will have there.

    The origin while it has room (fewer than ``fanout`` edges other than ``me``); else the shallowest
    edge with room, the one with the fewest children first, then by URL (every process agrees). When
    every node is full, the node with the fewest children, the shallowest first. ``exclude``: edges
    that just failed us (never the origin, which is the last resort).
    """
    excluded = set(exclude) - {origin}
    others = [e for e in edges if e.url != me and e.url != origin]
    children: dict[str, int] = {}
    for edge in others:
        children[edge.upstream] = children.get(edge.upstream, 0) + 1
    if fanout <= 0:
        return origin, 1
    candidates = [(origin, 0)] + [
        (e.url, e.depth)
        for e in others
        if e.url not in excluded and e.depth >= 1 and not below(e.url, others, me)
    ]

    def rank(node: tuple[str, int]) -> tuple[bool, int, int, str]:
        url, depth = node
        count = children.get(url, 0)
        if count < fanout:
            return (False, depth, count, url)
        return (True, count, depth, url)

    url, depth = min(candidates, key=rank)
    return url, depth + 1


def keep_stalled_pull(
    connected: bool,
    upstream: str,
    origin: str,
    upstream_listed: bool,
    origin_publishing: bool,
    stalled_for: float,
    stall: float,
) -> bool:
    """Whether an edge keeps a pull that has delivered no video for ``stalled_for`` seconds.

    Kept while it is connected to a feeder that is still where the show is (the origin, or an edge
    still announced) and the publisher is not sending (reconnecting: pulling again would change
    nothing). Replaced when its peer is down, its feeding edge is gone, or the publisher is sending
    and still nothing came for twice ``stall`` (the feeder dropped this session, or it is broken).
    """
    if not connected:
        return False
    if upstream != origin and not upstream_listed:
        return False
    return not (origin_publishing and stalled_for >= 2 * stall)
