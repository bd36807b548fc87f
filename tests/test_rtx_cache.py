"""The retransmission cache and the RFC 4588 rewrite (pure), and the
relay answering a NACK from them for one viewer (a fake socket and SRTP, no network)."""

from __future__ import annotations

import struct
import time
from types import SimpleNamespace
from typing import Any

import pytest
from aiortc.rtp import RtpPacket, unwrap_rtx

from liveshow.media import relay as relay_module
from liveshow.media.forward import ShowPacket
from liveshow.media.frames import EncodedFrame
from liveshow.media.relay import MAX_RESEND_GAP, RESEND_GAP, OutTrack, ShowRelay, ViewerOutput
from liveshow.media.rtx import (
    AWAIT_UPSTREAM,
    MAX_AWAITED,
    RESEND_BURST,
    RESEND_SHARE,
    PacketCache,
    plain_packet,
    resend_allowance,
    rtx_packet,
)
from liveshow.settings import load_settings

# ------------------------------------------------------------------ PacketCache


def pkt(index: int, payload: bytes = b"p", pts: int = 0, marker: bool = False) -> ShowPacket:
    return ShowPacket("VP8", index, payload, pts, marker)


def test_cache_returns_each_packet_by_show_index() -> None:
    cache = PacketCache(size=8, max_age=1.0)
    packets = [pkt(0, b"a0", 3000), pkt(1, b"a1", 3000), pkt(2, b"a2", 3000, True), pkt(3, b"b0", 6000, True)]
    for packet in packets:
        cache.add(packet, now=10.0)
    assert [cache.get(i, 10.2) for i in range(4)] == packets
    assert cache.get(4, 10.2) is None  # not received yet
    assert cache.get(-1, 10.2) is None


def test_cache_holds_at_most_size_packets_and_evicts_the_oldest() -> None:
    cache = PacketCache(size=4, max_age=100.0)
    for i in range(6):
        cache.add(pkt(i, bytes([i])), now=0.0)
    assert [cache.get(i, 0.0) is not None for i in range(6)] == [False, False, True, True, True, True]
    # A slot reused by a later packet never answers for the earlier one.
    assert cache.get(1, 0.0) is None


def test_cache_keeps_a_late_packet_unless_its_slot_holds_a_newer_one() -> None:
    cache = PacketCache(size=4, max_age=100.0)
    cache.add(pkt(0), now=0.0)
    cache.add(pkt(2), now=0.0)
    late = pkt(1)
    cache.add(late, now=0.0)  # an upstream retransmission fills its gap
    assert cache.get(1, 0.0) is late
    cache.add(pkt(5), now=0.0)
    cache.add(pkt(1, b"too late"), now=0.0)  # slot 1 holds packet 5 now
    assert cache.get(1, 0.0) is None and cache.get(5, 0.0) is not None


def test_cache_forgets_packets_older_than_max_age() -> None:
    cache = PacketCache(size=16, max_age=0.5)
    cache.add(pkt(0, b"old"), now=1.0)
    cache.add(pkt(1, b"new"), now=1.4)
    assert cache.get(0, 1.5) is not None
    assert cache.get(0, 1.51) is None
    assert cache.get(1, 1.51) is not None


def test_cache_awaits_a_gap_until_it_comes_or_for_a_while() -> None:
    cache = PacketCache(size=16, max_age=10.0)
    cache.await_gap(3, 6, now=1.0)  # packets 3, 4 and 5 did not come in order
    assert [cache.awaited(i, 1.2) for i in range(2, 7)] == [False, True, True, True, False]
    cache.add(pkt(4), now=1.3)  # its retransmission came
    assert not cache.awaited(4, 1.3) and cache.get(4, 1.3) is not None
    assert cache.awaited(3, 1.0 + AWAIT_UPSTREAM)
    assert not cache.awaited(3, 1.0 + AWAIT_UPSTREAM + 0.01)  # lost for good: a keyframe instead


def test_cache_awaits_at_most_the_latest_packets_of_a_long_gap() -> None:
    cache = PacketCache()
    cache.await_gap(0, 10 * MAX_AWAITED, now=0.0)
    assert not cache.awaited(0, 0.0) and cache.awaited(10 * MAX_AWAITED - 1, 0.0)
    assert len(cache._awaited) == MAX_AWAITED
    cache.await_gap(10 * MAX_AWAITED + 1, 10 * MAX_AWAITED + 2, now=0.1)
    assert len(cache._awaited) == MAX_AWAITED and cache.awaited(10 * MAX_AWAITED + 1, 0.1)


def test_cache_needs_a_slot() -> None:
    with pytest.raises(ValueError):
        PacketCache(size=0)


# ------------------------------------------------------------------ RFC 4588 rewrite


def test_rtx_packet_is_rfc4588() -> None:
    data = rtx_packet(
        b"payload",
        marker=True,
        rtx_pt=97,
        rtx_seq=65535,
        timestamp=123456,
        rtx_ssrc=0xDEADBEEF,
        original_seq=4321,
    )
    packet = RtpPacket.parse(data)
    assert packet.version == 2 and packet.payload_type == 97 and packet.marker == 1
    assert packet.sequence_number == 65535 and packet.timestamp == 123456 and packet.ssrc == 0xDEADBEEF
    assert packet.payload[:2] == struct.pack("!H", 4321) and packet.payload[2:] == b"payload"
    original = unwrap_rtx(packet, payload_type=96, ssrc=0x1234)
    assert (original.sequence_number, original.payload, original.payload_type) == (4321, b"payload", 96)


def test_plain_packet_is_the_original_again() -> None:
    packet = RtpPacket.parse(plain_packet(b"p", marker=False, pt=96, seq=7, timestamp=9, ssrc=5))
    assert (packet.payload_type, packet.marker, packet.sequence_number, packet.timestamp, packet.ssrc) == (
        96,
        0,
        7,
        9,
        5,
    )
    assert packet.payload == b"p"


# ------------------------------------------------------------------ the relay answering a NACK


class FakeUdp:
    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.buffered = 0

    def is_closing(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def sendto(self, data: bytes, addr: Any) -> None:
        self.sent.append(data)


class FakeSrtp:
    def protect(self, data: bytes) -> bytes:
        return data  # clear: the test reads the RTP it would have protected


class FakeSender:
    _ssrc = 1111
    _rtx_ssrc = 2222


def viewer(rtx_pt: int | None = 97) -> tuple[ViewerOutput, FakeUdp]:
    udp = FakeUdp()
    track = OutTrack(FakeSender(), pt=96, codec="VP8", seq=65530, ts_offset=1000, rtx_pt=rtx_pt, rtx_seq=500)
    return ViewerOutput({"video": track}, FakeSrtp(), udp, ("127.0.0.1", 9)), udp


def frame(i: int, keyframe: bool = False) -> EncodedFrame:
    # A VP8 frame tag with bit 0 clear is a keyframe; each frame is big enough for 2 packets.
    data = bytes([0 if keyframe else 1]) + bytes([i]) * 1800
    return EncodedFrame("video", "VP8", data, pts=i * 3000, keyframe=keyframe)


async def test_relay_resends_what_the_viewer_saw_rewritten_for_it() -> None:
    wanted: list[int] = []
    relay = ShowRelay(1, lambda: wanted.append(1))
    output, udp = viewer()
    relay.add_output("a", output)
    relay.push(frame(0))  # not a keyframe: this viewer waits, nothing sent or remembered
    relay.push(frame(1, keyframe=True))
    relay.push(frame(2))
    originals = {RtpPacket.parse(d).sequence_number: RtpPacket.parse(d) for d in udp.sent}
    assert len(originals) == 4 and set(originals) == {65530, 65531, 65532, 65533}
    udp.sent.clear()

    relay.resend(output, "video", [65531, 65533])
    resent = [RtpPacket.parse(d) for d in udp.sent]
    assert [p.payload_type for p in resent] == [97, 97]
    assert [p.ssrc for p in resent] == [2222, 2222]
    assert [p.sequence_number for p in resent] == [500, 501]
    for packet in resent:
        original = originals[struct.unpack("!H", packet.payload[:2])[0]]
        assert packet.payload[2:] == original.payload
        assert packet.timestamp == original.timestamp and packet.marker == original.marker
    assert [struct.unpack("!H", p.payload[:2])[0] for p in resent] == [65531, 65533]
    assert (relay.rtx.nacked, relay.rtx.resent, relay.rtx.missing) == (2, 2, 0)


async def test_relay_resends_the_original_packet_without_rtx() -> None:
    relay = ShowRelay(1, lambda: None)
    output, udp = viewer(rtx_pt=None)
    relay.add_output("a", output)
    relay.push(frame(1, keyframe=True))
    first = udp.sent[0]
    udp.sent.clear()
    relay.resend(output, "video", [65530])
    assert udp.sent == [first]


async def test_relay_asks_for_a_keyframe_only_when_a_packet_is_gone() -> None:
    wanted: list[int] = []
    relay = ShowRelay(1, lambda: wanted.append(1))
    output, _ = viewer()
    relay.add_output("a", output)  # the join asks for a keyframe once
    relay.push(frame(1, keyframe=True))
    asked = len(wanted)
    relay.resend(output, "video", [65530])
    assert len(wanted) == asked  # found: no keyframe request
    relay.caches["video"] = PacketCache(size=4)  # the show's cache lost everything
    relay.keyframes.interval = 0.0
    relay.resend(output, "video", [65531])
    assert (relay.rtx.nacked, relay.rtx.resent, relay.rtx.missing) == (2, 1, 1)
    assert len(wanted) == asked + 1


async def test_relay_does_not_pile_resends_on_a_congested_viewer() -> None:
    relay = ShowRelay(1, lambda: None)
    output, udp = viewer()
    relay.add_output("a", output)
    relay.push(frame(1, keyframe=True))
    udp.sent.clear()
    udp.buffered = 10**9
    relay.resend(output, "video", [65530, 65531])
    assert udp.sent == [] and relay.rtx.resent == 0


def test_resend_allowance_is_a_burst_then_a_share_of_what_was_sent() -> None:
    assert resend_allowance(sent=0, resent=0) == RESEND_BURST
    assert resend_allowance(sent=1000, resent=0) == RESEND_BURST + 1000 // RESEND_SHARE
    assert resend_allowance(sent=1000, resent=RESEND_BURST + 1000 // RESEND_SHARE) == 0
    assert resend_allowance(sent=0, resent=RESEND_BURST + 5) == 0


async def test_a_viewer_nacking_everything_gets_at_most_its_allowance() -> None:
    relay = ShowRelay(1, lambda: None)
    output, udp = viewer()
    relay.add_output("a", output)
    relay.push(frame(1, keyframe=True))
    for i in range(2, 200):  # 2 packets a frame: 398 packets sent
        relay.push(frame(i))
    sent = output.tracks["video"].packets
    assert sent == 398
    udp.sent.clear()
    every = [(65530 + n) & 0xFFFF for n in range(sent)]
    cache = relay.caches["video"]
    now = time.monotonic()
    refused = 0
    for k in range(5):  # each a round trip after the last: none is a repeat of a resend on its way
        _, missing, refused_now, pending, repeated = output.resend("video", every, cache, now + k * 0.1)
        assert (missing, pending, repeated) == (0, 0, 0)
        refused += refused_now
    allowance = RESEND_BURST + sent // RESEND_SHARE
    assert len(udp.sent) == output.tracks["video"].resent == allowance
    assert refused == 5 * sent - allowance


async def test_a_packet_asked_for_again_within_a_round_trip_of_its_resend_is_not_resent_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    relay = ShowRelay(1, lambda: None)
    output, udp = viewer()
    relay.add_output("a", output)
    relay.push(frame(1, keyframe=True))
    relay.push(frame(2))
    udp.sent.clear()
    cache = relay.caches["video"]
    now = time.monotonic()
    # Just past a gap, not at it: (now + gap) - now rounds to under the gap for many values of now.
    past = 1e-6
    assert output.resend("video", [65530, 65531], cache, now) == (2, 0, 0, 0, 0)
    # aiortc NACKs every missing packet again at each new hole: one resend is on its way already.
    assert output.resend("video", [65530, 65531, 65532], cache, now + RESEND_GAP / 2) == (1, 0, 0, 0, 2)
    assert len(udp.sent) == 3
    # A round trip later the resend was lost too: resent again.
    second = now + RESEND_GAP + past
    assert output.resend("video", [65530], cache, second) == (1, 0, 0, 0, 0)
    # The round trip is the sender's, measured from the viewer's reports, when it has one.
    output.tracks["video"].sender._RTCRtpSender__rtt = 0.3
    assert output.resend("video", [65530], cache, second + 0.2) == (0, 0, 0, 0, 1)
    third = second + 0.3 + past
    assert output.resend("video", [65530], cache, third) == (1, 0, 0, 0, 0)
    output.tracks["video"].sender._RTCRtpSender__rtt = 5.0  # capped: a resend is not withheld for long
    last = third + MAX_RESEND_GAP + past
    assert output.resend("video", [65530], cache, last) == (1, 0, 0, 0, 0)
    monkeypatch.setattr(relay_module, "time", SimpleNamespace(monotonic=lambda: last + 0.01))
    relay.resend(output, "video", [65530])  # counted for the process
    assert relay.rtx.repeated == 1 and relay.rtx.refused == 0


async def test_a_relay_without_its_cache_answers_every_nack_with_a_keyframe_request() -> None:
    # LIVESHOW_RELAY_RTX off: what the benchmark compares the cache against.
    wanted: list[int] = []
    relay = ShowRelay(1, lambda: wanted.append(1), resend=False)
    relay.keyframes.interval = 0.0
    output, udp = viewer()
    relay.add_output("a", output)
    relay.push(frame(1, keyframe=True))
    udp.sent.clear()
    asked = len(wanted)
    relay.resend(output, "video", [65530])
    assert udp.sent == [] and (relay.rtx.resent, relay.rtx.missing) == (0, 1)
    assert len(wanted) == asked + 1


def test_the_relay_features_are_on_by_default_and_switch_off_by_environment(tmp_path: Any) -> None:
    env = {"LIVESHOW_DATA_DIR": str(tmp_path), "LIVESHOW_SECRET_KEY": "k"}
    on = load_settings(env)
    assert (on.relay_rtx, on.relay_layers) == (True, True)
    off = load_settings({**env, "LIVESHOW_RELAY_RTX": "0", "LIVESHOW_RELAY_LAYERS": "false"})
    assert (off.relay_rtx, off.relay_layers) == (False, False)
