"""The pure rules of edges: where an edge pulls from (edgetree) and the pull's credential (edgeauth);
and the registry of edges, Redis and its in-memory twin behind the same protocol."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator

import pytest

from liveshow.media.edgeauth import pull_token, valid_pull_token
from liveshow.media.edgeregistry import EdgeRegistry, MemoryEdges, RedisEdges, decode, encode
from liveshow.media.edgetree import EdgeEntry, below, choose_upstream, keep_stalled_pull
from tests.conftest import REDIS_URL

ORIGIN = "http://origin"


def edge(url: str, upstream: str = ORIGIN, depth: int = 1) -> EdgeEntry:
    return EdgeEntry(url=url, upstream=upstream, depth=depth)


# ------------------------------------------------------------ choose_upstream


def test_no_fanout_bound_means_every_edge_pulls_from_the_origin() -> None:
    edges = [edge(f"http://e{i}") for i in range(20)]
    assert choose_upstream(ORIGIN, edges, "http://me", 0) == (ORIGIN, 1)


def test_the_origin_while_it_has_room() -> None:
    assert choose_upstream(ORIGIN, [], "http://me", 2) == (ORIGIN, 1)
    assert choose_upstream(ORIGIN, [edge("http://e1")], "http://me", 2) == (ORIGIN, 1)


def test_an_edge_with_room_once_the_origin_is_full() -> None:
    edges = [edge("http://e1"), edge("http://e2")]
    assert choose_upstream(ORIGIN, edges, "http://me", 2) == ("http://e1", 2)


def test_fewest_children_first_then_url_among_equally_deep_edges() -> None:
    edges = [edge("http://e1"), edge("http://e2"), edge("http://x", "http://e1", 2)]
    assert choose_upstream(ORIGIN, edges, "http://me", 2) == ("http://e2", 2)


def test_shallow_edges_before_deep_ones() -> None:
    edges = [
        edge("http://a"),
        edge("http://b", "http://a", 2),
        edge("http://c", "http://a", 2),
    ]
    # the origin (1 child) and a (2 children) are full at fanout 1 and 2; b has room, deeper
    assert choose_upstream(ORIGIN, edges, "http://me", 1) == ("http://b", 3)
    assert choose_upstream(ORIGIN, edges, "http://me", 2) == (ORIGIN, 1)


def test_when_every_node_is_full_the_one_with_fewest_children() -> None:
    edges = [edge("http://a"), edge("http://b", "http://a", 2)]
    # fanout 1: origin has a, a has b, b has nothing -> b has room
    assert choose_upstream(ORIGIN, edges, "http://me", 1) == ("http://b", 3)
    full = [*edges, edge("http://c", "http://b", 3)]
    # c is free: the deepest still has room
    assert choose_upstream(ORIGIN, full, "http://me", 1) == ("http://c", 4)


def test_all_full_picks_fewest_children() -> None:
    # fanout 1, and each of the origin, a, b already feeds one; "me" is excluded from counting
    edges = [edge("http://a"), edge("http://b", "http://a", 2), edge("http://z", "http://b", 3)]
    url, _ = choose_upstream(ORIGIN, edges, "http://me", 1, exclude=["http://z"])
    # z is excluded (it just failed us): every remaining node has one child: the shallowest tie-breaks
    assert url == ORIGIN


def test_never_itself_nor_its_own_descendants() -> None:
    me = "http://me"
    edges = [
        edge(me),
        edge("http://child", me, 2),
        edge("http://grandchild", "http://child", 3),
        edge("http://other"),
    ]
    # origin full (me and other) at fanout 2 without counting me -> origin has 1 child (other): room
    assert choose_upstream(ORIGIN, edges, me, 2) == (ORIGIN, 1)
    # fanout 1: origin full with other; child and grandchild are below me: only other remains
    assert choose_upstream(ORIGIN, edges, me, 1) == ("http://other", 2)


def test_a_loop_in_stale_entries_does_not_hang() -> None:
    edges = [edge("http://x", "http://y", 2), edge("http://y", "http://x", 2)]
    assert not below("http://x", edges, "http://me")
    assert choose_upstream(ORIGIN, edges, "http://me", 1) == (ORIGIN, 1)


def test_excluded_edges_are_skipped_but_never_the_origin() -> None:
    edges = [edge("http://e1"), edge("http://e2")]
    assert choose_upstream(ORIGIN, edges, "http://me", 2, exclude=["http://e1"]) == ("http://e2", 2)
    both = ["http://e1", "http://e2", ORIGIN]
    assert choose_upstream(ORIGIN, edges, "http://me", 2, exclude=both) == (ORIGIN, 1)


def test_the_origin_announced_as_an_edge_is_still_the_origin() -> None:
    # the show moved onto a former edge: its stale entry is not counted as a node of its own
    edges = [edge(ORIGIN, "http://old", 1)]
    assert choose_upstream(ORIGIN, edges, "http://me", 1) == (ORIGIN, 1)


def test_every_edge_gets_a_feeder_with_the_tree_bounded_by_fanout() -> None:
    """Edges joining one by one, for every fanout up to 3: nobody feeds more than the fanout while
    another node has room, no edge feeds itself, and depths are consistent."""
    for fanout in (1, 2, 3):
        edges: list[EdgeEntry] = []
        for i in range(12):
            me = f"http://e{i:02d}"
            url, depth = choose_upstream(ORIGIN, edges, me, fanout)
            assert url != me
            parent_depth = 0 if url == ORIGIN else next(e.depth for e in edges if e.url == url)
            assert depth == parent_depth + 1
            edges.append(edge(me, url, depth))
        children: dict[str, int] = {}
        for e in edges:
            children[e.upstream] = children.get(e.upstream, 0) + 1
        assert max(children.values()) <= fanout


def test_below_follows_chains() -> None:
    edges = [edge("http://a", "http://me", 2), edge("http://b", "http://a", 3), edge("http://c")]
    assert below("http://a", edges, "http://me") and below("http://b", edges, "http://me")
    assert not below("http://c", edges, "http://me") and not below("http://me", edges, "http://me")


# ------------------------------------------------------------ keep_stalled_pull


def test_a_stalled_pull_is_kept_only_while_its_feeder_is_right_and_the_publisher_quiet() -> None:
    e = "http://e1"
    cases = [
        # connected, upstream, listed, publishing, stalled_for -> kept (stall 2 s)
        (True, ORIGIN, False, False, 100.0, True),  # publisher reconnecting: nothing to gain
        (True, ORIGIN, False, True, 3.9, True),  # publishing, under twice the stall: a hiccup
        (True, ORIGIN, False, True, 4.0, False),  # publishing and nothing for 2 x stall: broken
        (False, ORIGIN, False, False, 0.0, False),  # the peer is down
        (True, e, True, False, 100.0, True),  # an announced edge feeding us, publisher quiet
        (True, e, False, False, 0.0, False),  # the feeding edge ran out of the registry
        (True, e, True, True, 5.0, False),  # the edge sends nothing while the publisher sends
        (False, e, True, False, 0.0, False),
    ]
    for connected, upstream, listed, publishing, stalled_for, kept in cases:
        got = keep_stalled_pull(connected, upstream, ORIGIN, listed, publishing, stalled_for, 2.0)
        assert got is kept, (connected, upstream, listed, publishing, stalled_for)


# ------------------------------------------------------------ edgeauth


def test_pull_tokens_are_per_show_and_per_secret() -> None:
    token = pull_token("s", 1)
    assert valid_pull_token("s", 1, token)
    assert valid_pull_token("s", 1, f" {token} ")
    assert not valid_pull_token("s", 2, token)
    assert not valid_pull_token("t", 1, token)
    assert not valid_pull_token("s", 1, "")
    assert not valid_pull_token("s", 1, token[:-1])
    assert not valid_pull_token("", 1, pull_token("", 1))  # no cluster secret: no pulls at all
    assert len({pull_token("s", i) for i in range(100)}) == 100


# ------------------------------------------------------------ the registry, both adapters


def test_entries_encode_their_expiry() -> None:
    entry = edge("http://e", "http://o", 2)
    assert decode("http://e", encode(entry, 1000), 999) == entry
    assert decode("http://e", encode(entry, 1000), 1000) == entry
    assert decode("http://e", encode(entry, 1000), 1001) is None
    for bad in ("", "x", "a\tb", "a\tb\tc", "a\t1\tz", "a\tb\tc\td"):
        assert decode("http://e", bad, 0) is None


class FakeTime:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


_prefixes = itertools.count()


@pytest.fixture(params=["memory", "redis"])
async def registry(
    request: pytest.FixtureRequest, redis_prefix: str
) -> AsyncIterator[tuple[EdgeRegistry, FakeTime]]:
    clock = FakeTime()
    made: EdgeRegistry
    if request.param == "memory":
        made = MemoryEdges(2.0, now=clock)
    else:
        made = RedisEdges(REDIS_URL, f"{redis_prefix}:{next(_prefixes)}", 2.0, now=clock)
    yield made, clock
    await made.close()


async def test_registry_announce_refresh_run_out_withdraw(registry: tuple[EdgeRegistry, FakeTime]) -> None:
    edges, clock = registry
    assert await edges.edges(1) == []
    await edges.announce(1, edge("http://b"))
    await edges.announce(1, edge("http://a", "http://b", 2))
    await edges.announce(2, edge("http://c"))
    assert await edges.edges(1) == [edge("http://a", "http://b", 2), edge("http://b")]
    clock.now += 1.5
    await edges.announce(1, edge("http://b"))  # refreshed; a is not
    clock.now += 1.0
    assert await edges.edges(1) == [edge("http://b")]
    await edges.withdraw(1, "http://b")
    await edges.withdraw(1, "http://nobody")
    assert await edges.edges(1) == []
    assert await edges.edges(2) == []  # ran out too
