"""Admission of new viewers: the adapter with injected clocks, then real aiortc peers through WHEP."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiortc import RTCPeerConnection

from liveshow.app import create_app
from liveshow.media.admission import JOINING, Admission
from liveshow.media.errors import ProcessFull
from liveshow.media.headroom import CPU, VIEWERS, HeadroomLimits
from liveshow.media.loadrecord import ProcessLoad
from liveshow.media.peers import (
    CONSENT_GIVE_UP_S,
    consent_until_silent,
    enlarge_receive_buffers,
    ice_connections,
)
from liveshow.media.publisher import PUBLISHER_RECEIVE_BUFFER, Publisher
from liveshow.media.viewer import Viewer
from liveshow.signaling.client import NO_ICE_SERVERS, Watcher, publish
from tests.conftest import LiveServer, make_settings
from tests.test_whip_media import Stage, make_show, wait_for

# ---------------------------------------------------------------- the adapter, clocks injected


class Clocks:
    def __init__(self) -> None:
        self.wall = 1000.0
        self.cpu = 5.0

    def run(self, seconds: float, busy: float) -> None:
        """``seconds`` of wall time pass, the process using ``busy`` of a core meanwhile."""
        self.wall += seconds
        self.cpu += seconds * busy


def admission(clocks: Clocks, limits: HeadroomLimits, max_joining: int = 2, wait: float = 0.2) -> Admission:
    return Admission(limits, max_joining, wait, 10.0, clock=lambda: clocks.wall, cpu_clock=lambda: clocks.cpu)


def test_cpu_is_process_time_over_wall_time_smoothed() -> None:
    clocks = Clocks()
    gate = admission(clocks, HeadroomLimits(cpu_ceiling=0.8))
    for _ in range(40):  # 10 s at a full core: the smoothed figure reaches it
        clocks.run(0.25, 1.0)
        gate.sample()
    assert gate.cpu == pytest.approx(1.0, abs=0.01)
    assert gate.check(0).reason == CPU
    clocks.run(0.25, 0.0)
    gate.sample()
    assert 0.7 < gate.cpu < 0.8  # one idle sample moves it by 1 - exp(-0.25): smoothed, not raw


def test_lag_is_the_mean_of_the_probes_smoothed() -> None:
    clocks = Clocks()
    gate = admission(clocks, HeadroomLimits(lag_ceiling_s=0.05))
    for lag in (0.0, 0.2, 0.1):
        gate.lag.observe(lag)
    clocks.run(60.0, 0.0)  # a long step: the smoothed lag becomes this window's mean
    gate.sample()
    assert gate.lag_s == pytest.approx(0.1)
    clocks.run(0.25, 0.0)
    gate.sample()  # no probe ran in that window (a stuck loop runs none): the lag stays
    assert gate.lag_s == pytest.approx(0.1)


async def test_enter_refuses_with_the_cause_and_a_retry_after() -> None:
    clocks = Clocks()
    gate = admission(clocks, HeadroomLimits(max_viewers=5))
    with pytest.raises(ProcessFull) as refused:
        await gate.enter(lambda: 5)
    assert refused.value.status == 503 and refused.value.code == "full"
    assert refused.value.details == {"cause": VIEWERS, "retry_after": 10, "retry_after_ms": 10_000}
    assert gate.refused[VIEWERS] == 1


async def test_offers_being_answered_count_as_viewers() -> None:
    gate = admission(Clocks(), HeadroomLimits(max_viewers=2), max_joining=0)
    await gate.enter(lambda: 0)
    await gate.enter(lambda: 0)
    with pytest.raises(ProcessFull):
        await gate.enter(lambda: 0)  # two offers in flight already fill a process of two


async def test_a_join_past_the_limit_waits_for_a_slot_given_back() -> None:
    gate = Admission(HeadroomLimits(), max_joining=1, join_wait_s=5.0, join_timeout_s=10.0)
    first = await gate.enter(lambda: 0)
    gate.answered(first, "session-1")
    waiting = asyncio.create_task(gate.enter(lambda: 1))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    gate.leave("session-1")  # session-1 connected: the waiting join goes ahead
    second = await asyncio.wait_for(waiting, 2)
    assert second != first and gate.joining() == 1


async def test_a_waiter_woken_then_cancelled_passes_its_slot_on() -> None:
    gate = Admission(HeadroomLimits(), max_joining=1, join_wait_s=5.0, join_timeout_s=10.0)
    first = await gate.enter(lambda: 0)
    gone = asyncio.create_task(gate.enter(lambda: 0))
    await asyncio.sleep(0.05)
    patient = asyncio.create_task(gate.enter(lambda: 0))
    await asyncio.sleep(0.05)
    gate.leave(first)  # wakes `gone`, whose request is cancelled before it runs again
    gone.cancel()
    await asyncio.wait_for(patient, 1)  # at once, not after the 5 s wait
    assert gone.cancelled() and gate.joining() == 1


async def test_a_join_that_waits_too_long_is_refused_and_a_failed_answer_frees_its_slot() -> None:
    gate = Admission(HeadroomLimits(), max_joining=1, join_wait_s=0.1, join_timeout_s=10.0)
    first = await gate.enter(lambda: 0)
    with pytest.raises(ProcessFull) as refused:
        await gate.enter(lambda: 0)
    assert refused.value.details["cause"] == JOINING and refused.value.details["retry_after"] == 1
    gate.answered(first, None)  # the offer was refused (bad codec ...): its slot is free at once
    assert gate.joining() == 0
    await gate.enter(lambda: 0)


# ---------------------------------------------------------------- real peers through WHEP


@pytest.fixture
def full_stage(tmp_path: Path, sqlite_url: str) -> Iterator[Stage]:
    """A server that takes two viewers, one join at a time (CPU and lag off: this test process's own
    decoding would trip them on a busy machine; their rules are tested above and in test_headroom)."""
    settings = make_settings(
        tmp_path,
        sqlite_url,
        max_viewers_per_process=2,
        max_joining_viewers=1,
        join_wait_seconds=0.3,
    )
    app = create_app(settings)
    server = LiveServer(app).start()
    show, token = make_show(app)
    yield Stage(app, server, show, token)
    server.stop()


async def offer_only(url: str) -> httpx.Response:
    """A WHEP offer whose client never does ICE: it holds a join slot until it times out or is deleted."""
    async with httpx.AsyncClient(timeout=20) as http:
        return await http.post(url, content=await offer_sdp(), headers={"Content-Type": "application/sdp"})


async def test_a_full_process_refuses_newcomers_with_503_and_keeps_its_show_flowing(
    full_stage: Stage,
) -> None:
    stage = full_stage
    show_id = stage.show.id or 0
    pub, _ = await publish(stage.whip, stage.show.stream_key)
    watchers: list[Watcher] = []
    try:
        await wait_for(lambda: stage.media.state(show_id) == "live")
        for _ in range(2):
            watcher = Watcher()
            await watcher.watch(stage.whep)
            watchers.append(watcher)
        await wait_for(lambda: all(w.frames["video"] >= 10 for w in watchers))

        # Five more at once: each refused before any peer is made for it.
        responses = await asyncio.gather(*(offer_only(stage.whep) for _ in range(5)))
        for resp in responses:
            assert resp.status_code == 503, resp.text
            assert resp.headers["retry-after"] == "10"
            assert resp.headers["access-control-allow-origin"] == "*"
            body: dict[str, Any] = resp.json()
            assert body["error"] == "full" and body["cause"] == VIEWERS and body["retry_after"] == 10
        assert stage.media.total_viewers() == 2
        async with httpx.AsyncClient(base_url=stage.server.url) as http:
            metrics = (await http.get("/metrics")).text
        assert 'liveshow_whep_refused_total{cause="viewers"} 5.0' in metrics
        assert "liveshow_headroom_admitting 0.0" in metrics

        # The publisher and the viewers already watching are untouched: frames keep coming to both.
        seen = [w.frames["video"] for w in watchers]
        await wait_for(lambda: all(w.frames["video"] >= s + 30 for w, s in zip(watchers, seen, strict=True)))
        assert stage.media.shows[show_id].source is not None

        # One leaves: its place is free for the next newcomer.
        await watchers.pop().close()
        await wait_for(lambda: stage.media.total_viewers() == 1)
        newcomer = Watcher()
        await newcomer.watch(stage.whep)
        watchers.append(newcomer)
        await wait_for(lambda: newcomer.frames["video"] >= 10)
    finally:
        for watcher in watchers:
            await watcher.close()
        await pub.close()


async def test_joins_are_paced_and_a_stalled_join_gives_its_slot_back_when_deleted(full_stage: Stage) -> None:
    stage = full_stage
    show_id = stage.show.id or 0
    pub, _ = await publish(stage.whip, stage.show.stream_key)
    try:
        await wait_for(lambda: stage.media.state(show_id) == "live")
        stalled = await offer_only(stage.whep)  # answered, but its client never connects
        assert stalled.status_code == 201
        refused = await offer_only(stage.whep)  # the one join slot is held: waits 0.3 s, then 503
        assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
        assert refused.json()["cause"] == JOINING
        async with httpx.AsyncClient(base_url=stage.server.url) as http:
            assert (await http.delete(stalled.headers["location"])).status_code == 200
        watcher = Watcher()
        await watcher.watch(stage.whep)  # the slot came back with the deleted session
        await wait_for(lambda: watcher.frames["video"] >= 10)
        await watcher.close()
    finally:
        await pub.close()


async def test_the_load_record_tells_viewers_headroom_and_shows(full_stage: Stage) -> None:
    stage = full_stage
    show_id = stage.show.id or 0
    pub, _ = await publish(stage.whip, stage.show.stream_key)
    try:
        await wait_for(lambda: stage.media.state(show_id) == "live")
        loads = stage.media.loads  # the memory adapter: plain reads, safe from this thread
        deadline = asyncio.get_running_loop().time() + 10
        while True:
            records = await loads.live()
            if records and records[0].shows == (show_id,):
                break
            assert asyncio.get_running_loop().time() < deadline, records
            await asyncio.sleep(0.1)
        (record,) = records
        assert record.url == stage.app.state.ctx.settings.advertised_url
        assert record.process == stage.media.owners.token
        assert record.viewers == 0 and record.admit and record.reason == "ok"
    finally:
        await pub.close()


async def test_a_full_process_sends_a_newcomer_to_one_with_headroom_once(
    full_stage: Stage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No headroom here and another process's load record says it takes viewers: 307 to its WHEP URL
    (it serves the show as an edge), marked so that it refuses rather than sends the viewer on again."""
    stage = full_stage
    show_id = stage.show.id or 0
    sdp_offer = await offer_sdp()

    async def post(url: str) -> httpx.Response:
        async with httpx.AsyncClient(timeout=20, follow_redirects=False) as http:
            return await http.post(url, content=sdp_offer, headers={"Content-Type": "application/sdp"})

    def other(admit: bool, viewers: int = 3) -> ProcessLoad:
        return ProcessLoad("other", "http://edge.example/p2/", viewers, admit, "ok", (), time.time())

    await stage.media.loads.publish(other(admit=True))
    assert (await post(stage.whep)).status_code != 307  # headroom here: served here
    monkeypatch.setattr(stage.media, "has_headroom", lambda: False)
    moved = await post(stage.whep)
    assert moved.status_code == 307
    assert moved.headers["location"] == f"http://edge.example/p2/whep/{show_id}?redirected=1"
    assert (await post(f"{stage.whep}?redirected=1")).status_code != 307  # sent here once already
    await stage.media.loads.publish(other(admit=False))
    assert (await post(stage.whep)).status_code != 307  # nobody has room: refused or served here


async def offer_sdp() -> str:
    pc = RTCPeerConnection(NO_ICE_SERVERS)
    pc.addTransceiver("video", direction="recvonly")
    await pc.setLocalDescription(await pc.createOffer())
    sdp_text = str(pc.localDescription.sdp)
    await pc.close()
    return sdp_text


def rmem_max() -> int:
    return int(Path("/proc/sys/net/core/rmem_max").read_text())


async def test_the_publishers_sockets_queue_seconds_of_its_stream(full_stage: Stage) -> None:
    """While the loop runs late (joins, a busy machine) the kernel holds the publisher's packets
    instead of dropping them: its sockets get a receive buffer past the 512 KB every peer has."""
    stage = full_stage
    show_id = stage.show.id or 0
    pub, _ = await publish(stage.whip, stage.show.stream_key)
    try:
        await wait_for(lambda: stage.media.state(show_id) == "live")
        source = stage.media.shows[show_id].source
        assert isinstance(source, Publisher)
        sizes = []
        for transceiver in source.pc.getTransceivers():
            connection = transceiver.receiver.transport.transport._connection
            for protocol in connection._protocols:
                sock = protocol.transport.get_extra_info("socket")
                sizes.append(sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF))
        expected = 2 * min(PUBLISHER_RECEIVE_BUFFER, rmem_max())  # Linux doubles what it grants
        assert sizes and all(size >= expected for size in sizes), (sizes, expected)
        # and its consent ends only after 30 s of silence, not after answers read late (test_consent.py)
        (connection,) = ice_connections(source.pc)
        assert connection.query_consent.func is consent_until_silent
        assert connection.query_consent.args[1] == CONSENT_GIVE_UP_S
        viewer = Viewer("v", stage.media.peer_ice, lambda *_: asyncio.sleep(0), lambda: None)
        assert enlarge_receive_buffers(viewer.pc, 1) == 0  # nothing gathered yet: nothing to set
        await viewer.pc.close()
    finally:
        await pub.close()
