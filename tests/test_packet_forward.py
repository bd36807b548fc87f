"""Packet forwarding: the pure numbering and classification (forward.py), and the relay forwarding
packets to viewers through a fake socket (clear RTP, no network): continuous sequence numbers across a
mid-stream join, a source change, upstream loss and temporal layers not sent."""

from __future__ import annotations

import itertools
import struct
import time

import pytest
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtp import HeaderExtensionsMap, RtpPacket
from prometheus_client import CollectorRegistry, generate_latest

from liveshow.media.forward import InboundStream, ShowIndex, ShowPacket, Unwrapper, classify, h264_starts_idr
from liveshow.media.layers import (
    FAST_LOSS,
    FAST_PACKETS,
    LOSS_DOWN,
    REMB_DOWN,
    REMB_PACKETS,
    TOP_LAYER,
    LayerCounts,
)
from liveshow.media.relay import (
    CONGESTED_BURST,
    CONGESTED_SHARE,
    MAX_HOLES,
    QUIET_AFTER_DOWN,
    OutTrack,
    ShowRelay,
    ViewerOutput,
)
from liveshow.media.rtx import RtxCounts
from liveshow.media.service import RelayCollector
from liveshow.media.vp8 import parse
from tests.test_rtx_cache import FakeSender, FakeSrtp, FakeUdp
from tests.test_vp8_descriptor import descriptor

# ------------------------------------------------------------------ numbering (pure)


def test_unwrapper_extends_across_wraps_and_takes_late_values_as_older() -> None:
    u = Unwrapper(16)
    assert [u.extend(v) for v in (65534, 65535, 0, 1)] == [65534, 65535, 65536, 65537]
    assert u.extend(65535) == 65535  # late, from before the wrap
    assert u.extend(2) == 65538
    assert u.extend(2 + 32767) == 65538 + 32767  # just under half ahead: forward
    t = Unwrapper(32)
    assert t.extend(0xFFFFFF00) == 0xFFFFFF00 and t.extend(0x100) == 0x100000100


def test_inbound_stream_numbers_from_its_first_packet_and_moves_timestamps_onto_the_show_clock() -> None:
    stream = InboundStream(seq=65535, timestamp=0xFFFFFFF0, pts_base=900_000)
    assert stream.map(65535, 0xFFFFFFF0) == (0, 900_000)
    assert stream.map(1, 0x10 + 2990) == (2, 900_000 + 0x20 + 2990)
    assert stream.map(65534, 0xFFFFFFF0 - 3000) == (-1, 900_000 - 3000)  # sent before the first


def test_show_index_continues_each_new_source_after_the_highest_index() -> None:
    index = ShowIndex()
    assert index.index("a", 0) == (0, True)
    assert index.index("a", 5) == (5, False)
    index.high = 5
    assert index.index("b", 0) == (6, True)
    assert index.index("b", -1) == (-1, False)  # before b's first packet
    index.high = 9
    assert index.index("a", 0) == (10, True)  # a back again: after b, not where a was


# ------------------------------------------------------------------ classification (pure)


def vp8(
    start: bool = True, key: bool = False, tid: int | None = None, sync: bool = False, pid: int = 1
) -> bytes:
    head = descriptor(start=start, picture_id=pid, tl0=0 if tid is not None else None, tid=tid, sync=sync)
    return head + (b"\x10" if key else b"\x11") + b"data"


@pytest.mark.parametrize(
    "start,key,tid,sync", list(itertools.product([False, True], [False, True], [None, 0, 2], [False, True]))
)
def test_vp8_packets_are_classified_from_their_descriptor(
    start: bool, key: bool, tid: int | None, sync: bool
) -> None:
    packet = ShowPacket("VP8", 0, vp8(start, key, tid, sync, pid=77), 0, False)
    assert classify(packet, new_timestamp=False)
    assert packet.start == start and packet.keyframe == (start and key)
    assert packet.layered == (tid is not None) and packet.tid == (tid or 0)
    assert packet.sync == (sync and tid is not None)
    assert packet.picture_id == 77 and packet.picture_id_bits == 15


def test_malformed_and_empty_payloads_are_refused() -> None:
    assert not classify(ShowPacket("VP8", 0, b"\x90\x80", 0, False), True)
    assert not classify(ShowPacket("VP8", 0, b"", 0, False), True)
    assert not classify(ShowPacket("H264", 0, b"", 0, False), True)
    assert not classify(ShowPacket("opus", 0, b"", 0, False), True)
    opus = ShowPacket("opus", 0, b"\xfc", 0, False)
    assert classify(opus, False) and opus.start and opus.keyframe and opus.tid == 0


def stap_a(*nals: bytes) -> bytes:
    return b"\x18" + b"".join(struct.pack("!H", len(n)) + n for n in nals)


@pytest.mark.parametrize(
    "payload,idr",
    [
        (b"\x65idr", True),  # single NAL: IDR slice
        (b"\x67sps", True),  # single NAL: SPS
        (b"\x68pps", False),
        (b"\x41p-slice", False),
        (stap_a(b"\x67sps", b"\x68pps"), True),
        (stap_a(b"\x68pps", b"\x06sei"), False),
        (b"\x7c\x85frag", True),  # FU-A start of an IDR
        (b"\x7c\x05frag", False),  # FU-A middle of an IDR
        (b"\x7c\x81frag", False),  # FU-A start of a P slice
        (b"\x7c", False),  # FU-A without its header
    ],
)
def test_h264_keyframe_starts(payload: bytes, idr: bool) -> None:
    assert h264_starts_idr(payload) == idr
    first = ShowPacket("H264", 0, payload, 0, False)
    assert classify(first, new_timestamp=True) and first.start and first.keyframe == idr
    later = ShowPacket("H264", 1, payload, 0, False)
    assert classify(later, new_timestamp=False) and not later.start and not later.keyframe


# ------------------------------------------------------------------ the relay forwarding packets


def viewer(seq: int = 65530, rtx_pt: int | None = 97) -> tuple[ViewerOutput, FakeUdp]:
    udp = FakeUdp()
    tracks = {
        "video": OutTrack(
            FakeSender(), pt=96, codec="VP8", seq=seq, ts_offset=1000, rtx_pt=rtx_pt, rtx_seq=500
        ),
        "audio": OutTrack(FakeSender(), pt=111, codec="opus", seq=seq, ts_offset=0),
    }
    return ViewerOutput(tracks, FakeSrtp(), udp, ("127.0.0.1", 9)), udp


def sent(udp: FakeUdp, pt: int = 96) -> list[RtpPacket]:
    return [p for p in (RtpPacket.parse(d) for d in udp.sent) if p.payload_type == pt]


def seqs(udp: FakeUdp, pt: int = 96) -> list[int]:
    return [p.sequence_number for p in sent(udp, pt)]


def continuous(numbers: list[int]) -> bool:
    return all((b - a) & 0xFFFF == 1 for a, b in itertools.pairwise(numbers))


class Publisher:
    """Feeds a relay the way publisher.Publisher does: packet numbers from the source's first."""

    def __init__(self, relay: ShowRelay, source: str, pts0: int = 0) -> None:
        self.relay, self.source, self.n, self.pts = relay, source, 0, pts0

    def frame(
        self, packets: int = 2, key: bool = False, tid: int | None = None, sync: bool = False
    ) -> list[int]:
        """One frame of ``packets`` packets; returns their packet numbers."""
        numbers = []
        for i in range(packets):
            payload = vp8(start=i == 0, key=key, tid=tid, sync=sync, pid=self.pts // 3000 % 32768)
            self.relay.forward("video", "VP8", self.source, self.n, payload, self.pts, i == packets - 1)
            numbers.append(self.n)
            self.n += 1
        self.pts += 3000
        return numbers


async def test_a_viewer_joining_mid_stream_starts_at_a_keyframe_with_continuous_numbers() -> None:
    relay = ShowRelay(1, lambda: None)
    first, udp_a = viewer(seq=100)
    relay.add_output("a", first)
    pub = Publisher(relay, "p")
    pub.frame(key=True)
    pub.frame()
    late, udp_b = viewer(seq=65534)
    relay.add_output("b", late)
    pub.frame()  # not a keyframe: b waits
    pub.frame(packets=1)
    assert udp_b.sent == []
    pub.frame(key=True)
    pub.frame(packets=3)
    assert seqs(udp_a) == list(range(100, 112))
    assert seqs(udp_b) == [65534, 65535, 0, 1, 2]
    got = sent(udp_b)
    assert parse(got[0].payload).frame_start and got[0].payload[parse(got[0].payload).size] & 1 == 0
    assert [p.marker for p in got] == [0, 1, 0, 0, 1] and all(p.ssrc == 1111 for p in got)


async def test_numbers_and_timestamps_continue_across_a_new_source() -> None:
    relay = ShowRelay(1, lambda: None)
    output, udp = viewer(seq=65533)
    relay.add_output("a", output)
    one = Publisher(relay, "one", pts0=0)
    one.frame(key=True)
    one.frame()
    # The publisher comes back: a new source whose packet numbers start at 0 again, later on the clock.
    two = Publisher(relay, "two", pts0=90_000)
    two.frame()  # not a keyframe: another encoder's picture cannot follow the last one's
    two.frame(key=True)
    two.frame()
    numbers = seqs(udp)
    assert len(numbers) == 8 and continuous(numbers)
    stamps = [p.timestamp for p in sent(udp)]
    assert stamps == sorted(stamps) and stamps[4] == 1000 + 90_000 + 3000


async def test_audio_numbers_continue_across_a_new_source() -> None:
    relay = ShowRelay(1, lambda: None)
    output, udp = viewer(seq=7)
    relay.add_output("a", output)
    for source, count in (("one", 3), ("two", 4)):
        for n in range(count):
            relay.forward("audio", "opus", source, n, b"\xfc\x00", n * 960, False)
    assert seqs(udp, pt=111) == list(range(7, 14))


async def test_a_packet_lost_upstream_is_a_gap_its_retransmission_fills() -> None:
    relay = ShowRelay(1, lambda: None)
    output, udp = viewer(seq=10)
    relay.add_output("a", output)
    pub = Publisher(relay, "p")
    pub.frame(key=True, packets=3)
    # Packet 4 of 0..5 is lost upstream.
    for n in (3, 5):
        relay.forward("video", "VP8", "p", n, vp8(start=n == 3), 3000, n == 5)
    assert seqs(udp) == [10, 11, 12, 13, 15]
    udp.sent.clear()
    wanted: list[int] = []
    relay.keyframes.want = lambda: wanted.append(1)  # type: ignore[method-assign]
    relay.resend(output, "video", [14])  # the viewer NACKs the gap before the retransmission came
    # Not gone for good: aiortc NACKed it upstream, so no keyframe is asked for.
    assert udp.sent == [] and (relay.rtx.pending, relay.rtx.missing) == (1, 0) and wanted == []
    relay.forward("video", "VP8", "p", 4, vp8(start=False), 3000, False)  # aiortc's NACK upstream got it
    assert seqs(udp) == [14]
    udp.sent.clear()
    relay.resend(output, "video", [14])  # asked again: now it is in the cache
    assert relay.rtx.resent == 1 and struct.unpack("!H", sent(udp, 97)[0].payload[:2])[0] == 14
    udp.sent.clear()
    relay.forward("video", "VP8", "p", 4, vp8(start=False), 3000, False)  # a duplicate: nothing
    assert udp.sent == []


async def test_a_long_upstream_gap_keeps_numbers_for_the_latest_missing_packets_only() -> None:
    relay = ShowRelay(1, lambda: None)
    output, udp = viewer(seq=0)
    relay.add_output("a", output)
    Publisher(relay, "p").frame(key=True, packets=1)
    relay.forward("video", "VP8", "p", 1000, vp8(), 6000, True)
    assert seqs(udp) == [0, 1000]
    assert len(output.tracks["video"].holes) == MAX_HOLES
    udp.sent.clear()
    relay.forward("video", "VP8", "p", 5, vp8(start=False), 3000, False)  # too old to have kept a number
    relay.forward("video", "VP8", "p", 999, vp8(start=False), 3000, False)
    assert seqs(udp) == [999]


async def test_padding_and_malformed_packets_leave_no_gap() -> None:
    relay = ShowRelay(1, lambda: None)
    output, udp = viewer(seq=0)
    relay.add_output("a", output)
    pub = Publisher(relay, "p")
    pub.frame(key=True, packets=1)
    relay.forward("video", "VP8", "p", 1, b"", 3000, False)  # padding-only
    relay.forward("video", "VP8", "p", 2, b"\x90\x80", 3000, False)  # truncated descriptor
    pub.n = 3
    pub.frame(packets=1)
    assert seqs(udp) == [0, 1] and relay.layer_counts.dropped == 0


# ------------------------------------------------------------------ temporal layers

L1T3 = [0, 2, 1, 2]  # TIDs of consecutive frames


def layered_frames(pub: Publisher, count: int, key_first: bool = True, sync: bool = True) -> list[int]:
    tids = []
    for i in range(count):
        tid = L1T3[i % 4]
        pub.frame(packets=2, key=key_first and i == 0, tid=tid, sync=sync and tid > 0)
        tids.append(tid)
    return tids


async def test_a_viewer_held_at_the_base_layer_gets_its_frames_without_gaps() -> None:
    relay = ShowRelay(1, lambda: None)
    narrow, udp_n = viewer(seq=65500)
    wide, udp_w = viewer(seq=3)
    relay.add_output("narrow", narrow)
    relay.add_output("wide", wide)
    assert narrow.policy is not None
    narrow.policy.target = 0
    pub = Publisher(relay, "p")
    layered_frames(pub, 16)
    assert len(seqs(udp_w)) == 32 and continuous(seqs(udp_w))
    got = sent(udp_n)
    assert len(got) == 8 and continuous([p.sequence_number for p in got])  # 4 base frames, 2 packets each
    descs = [parse(p.payload) for p in got]
    assert all(d.tid == 0 for d in descs)
    starts = [d.picture_id for d in descs if d.frame_start]
    assert [(b - a) & 0x7FFF for a, b in itertools.pairwise(starts)] == [1, 1, 1]  # renumbered: no gaps
    assert relay.layer_counts.dropped == 24 and relay.layer_counts.down == 1
    # Wide viewer's PictureIDs are the publisher's own.
    assert [parse(p.payload).picture_id for p in sent(udp_w)][::2] == list(range(16))


async def test_a_nack_from_a_filtered_viewer_is_answered_with_its_own_numbering() -> None:
    relay = ShowRelay(1, lambda: None)
    narrow, udp = viewer(seq=0)
    relay.add_output("n", narrow)
    assert narrow.policy is not None
    narrow.policy.target = 0
    layered_frames(Publisher(relay, "p"), 8)
    originals = {p.sequence_number: p for p in sent(udp)}
    udp.sent.clear()
    relay.resend(narrow, "video", [2, 3])  # the second base frame, after 3 frames not sent
    for rtx in sent(udp, 97):
        original = originals[struct.unpack("!H", rtx.payload[:2])[0]]
        assert rtx.payload[2:] == original.payload and rtx.timestamp == original.timestamp
    assert relay.rtx.resent == 2


async def test_switching_up_waits_for_a_layer_sync_frame_one_layer_at_a_time() -> None:
    relay = ShowRelay(1, lambda: None)
    output, udp = viewer(seq=0)
    relay.add_output("a", output)
    assert output.policy is not None
    output.policy.target = 0
    pub = Publisher(relay, "p")
    layered_frames(pub, 4)  # at the base layer
    output.policy.target = TOP_LAYER
    layered_frames(pub, 4, key_first=False, sync=False)  # no sync frame: stays at the base
    assert output.tracks["video"].layer == 0
    layered_frames(pub, 4, key_first=False, sync=True)  # 0, 2(Y), 1(Y): up to 1, then 2(Y): up to 2
    assert output.tracks["video"].layer == 2 and relay.layer_counts.up == 2
    tids = [parse(p.payload).tid for p in sent(udp)][::2]
    assert tids == [0, 0, 0, 1, 2]
    assert continuous(seqs(udp))


async def test_a_keyframe_switches_straight_up_to_the_target() -> None:
    relay = ShowRelay(1, lambda: None)
    output, _ = viewer()
    relay.add_output("a", output)
    assert output.policy is not None
    output.policy.target = 0
    pub = Publisher(relay, "p")
    layered_frames(pub, 4, sync=False)
    output.policy.target = TOP_LAYER
    pub.frame(key=True, tid=0)
    assert output.tracks["video"].layer == TOP_LAYER


async def test_with_layers_off_every_viewer_gets_every_layer() -> None:
    relay = ShowRelay(1, lambda: None, layers=False)
    output, udp = viewer()
    relay.add_output("a", output)
    assert output.policy is None
    layered_frames(Publisher(relay, "p"), 8)
    assert len(seqs(udp)) == 16 and relay.layer_counts.dropped == 0


async def test_an_edges_pull_takes_every_layer_whatever_its_backlog() -> None:
    """A pull (add_output adapt=False) feeds a whole edge, which adapts each of its own viewers."""
    relay = ShowRelay(1, lambda: None)
    pull, udp = viewer()
    relay.add_output("pull", pull, adapt=False)
    assert pull.policy is None
    pub = Publisher(relay, "p")
    layered_frames(pub, 4)
    udp.buffered = 100 * 1024  # what steps a viewer down (the test below)
    layered_frames(pub, 4, key_first=False)
    assert len(seqs(udp)) == 16 and continuous(seqs(udp)) and relay.layer_counts.dropped == 0


async def test_a_backlogged_viewer_steps_down_and_the_others_do_not() -> None:
    relay = ShowRelay(1, lambda: None)
    slow, udp_s = viewer()
    fast, udp_f = viewer()
    relay.add_output("slow", slow)
    relay.add_output("fast", fast)
    pub = Publisher(relay, "p")
    layered_frames(pub, 4)
    udp_s.buffered = 100 * 1024  # past BACKLOG_DOWN, under MAX_BUFFERED
    layered_frames(pub, 4, key_first=False)
    assert slow.policy is not None and fast.policy is not None
    assert slow.policy.target == TOP_LAYER - 1 and slow.tracks["video"].layer == TOP_LAYER - 1
    assert fast.policy.target == TOP_LAYER and fast.tracks["video"].layer == TOP_LAYER
    assert len(seqs(udp_f)) == 16 and continuous(seqs(udp_s))


async def test_an_unlayered_stream_is_forwarded_whole_whatever_the_policy() -> None:
    relay = ShowRelay(1, lambda: None)
    output, udp = viewer()
    relay.add_output("a", output)
    assert output.policy is not None
    output.policy.target = 0
    pub = Publisher(relay, "p")
    pub.frame(key=True)
    for _ in range(5):
        pub.frame()
    assert len(seqs(udp)) == 12 and relay.layer_counts.dropped == 0


def test_metrics_export_retransmissions_layer_drops_and_switches() -> None:
    registry = CollectorRegistry()
    layers = LayerCounts(dropped=7, down=2, up=1)
    registry.register(RelayCollector(RtxCounts(nacked=5, resent=4, missing=1, pending=3, repeated=6), layers))
    text = generate_latest(registry).decode()
    assert "liveshow_rtx_packets_total 4.0" in text
    assert "liveshow_rtx_pending_packets_total 3.0" in text
    assert "liveshow_rtx_repeated_packets_total 6.0" in text
    assert "liveshow_relay_layer_dropped_packets_total 7.0" in text
    assert 'liveshow_relay_layer_switches_total{direction="down"} 2.0' in text
    assert 'liveshow_relay_layer_switches_total{direction="up"} 1.0' in text
    layers.dropped += 1  # read at scrape time
    assert "liveshow_relay_layer_dropped_packets_total 8.0" in generate_latest(registry).decode()


async def test_a_nack_for_a_number_given_to_no_packet_resends_nothing() -> None:
    # 1500 packets fill the viewer's ring, then 300 go missing upstream: numbers are kept for the last
    # MAX_HOLES only, and the older missing ones must not answer with whatever their slot held before.
    relay = ShowRelay(1, lambda: None)
    output, udp = viewer(seq=0)
    relay.add_output("a", output)
    pub = Publisher(relay, "p")
    pub.frame(key=True, packets=1)
    for _ in range(1499):
        pub.frame(packets=1)
    relay.forward("video", "VP8", "p", 1800, vp8(), 1800 * 3000, True)
    udp.sent.clear()
    relay.resend(output, "video", [1550])  # its slot last carried packet 526, still in the cache
    assert udp.sent == [] and (relay.rtx.missing, relay.rtx.pending) == (1, 0)
    relay.forward("video", "VP8", "p", 1750, vp8(), 1750 * 3000, True)  # a kept one comes late
    assert seqs(udp) == [1750]
    relay.resend(output, "video", [1750])
    assert relay.rtx.resent == 1


async def test_a_waiting_viewer_does_not_start_at_padding() -> None:
    relay = ShowRelay(1, lambda: None)
    pub = Publisher(relay, "p")
    pub.frame(key=True)
    output, udp = viewer(seq=0)
    relay.add_output("a", output)
    relay.forward("video", "VP8", "p", pub.n, b"", pub.pts, False)  # padding between frames
    pub.n += 1
    pub.frame()  # not a keyframe
    assert udp.sent == [] and output.tracks["video"].waiting
    pub.frame(key=True)
    assert seqs(udp) == [0, 1]


async def test_a_congested_viewer_is_resent_within_a_credit_that_grows_with_what_it_is_sent() -> None:
    relay = ShowRelay(1, lambda: None)
    output, udp = viewer(seq=0)
    relay.add_output("a", output)
    pub = Publisher(relay, "p")
    frames = 4 * CONGESTED_BURST
    layered_frames(pub, frames)  # at the top layer: numbers 0..2*frames-1, 2 packets a frame
    high = 2 * frames
    relay.resend(output, "video", list(range(2 * CONGESTED_BURST)))  # not congested: the allowance alone
    assert relay.rtx.resent == 2 * CONGESTED_BURST and relay.rtx.refused == 0
    assert output.policy is not None
    output.policy.target = 1
    layered_frames(pub, 4, key_first=False)  # down to 1 at once: 2 of its 4 frames sent
    track = output.tracks["video"]
    assert track.layer == 1 and track.packets == high + 4
    asked = list(range(2 * CONGESTED_BURST, high))
    relay.resend(output, "video", asked)
    got = [struct.unpack("!H", p.payload[:2])[0] for p in sent(udp, 97)][2 * CONGESTED_BURST :]
    assert got == asked[:CONGESTED_BURST]  # the oldest first, CONGESTED_BURST of them
    assert relay.rtx.refused == len(asked) - CONGESTED_BURST
    # The credit grows back with what it is sent: one resend per CONGESTED_SHARE packets.
    layered_frames(pub, 4 * CONGESTED_SHARE, key_first=False)  # 4 * CONGESTED_SHARE packets sent to it
    relay.resend(output, "video", asked[CONGESTED_BURST:])
    assert relay.rtx.resent == 3 * CONGESTED_BURST + 4
    # Back at the top layer it is not congested: the allowance alone again.
    output.policy.target = TOP_LAYER
    pub.frame(key=True, tid=0)
    assert track.layer == TOP_LAYER
    later = list(range(high + 4, high + 4 + 4 * CONGESTED_SHARE))  # sent at layer 1, none resent yet
    relay.resend(output, "video", later)
    assert relay.rtx.resent == 3 * CONGESTED_BURST + 4 + len(later)


async def test_first_nacks_step_a_viewer_down_at_once_and_its_resends_wait_for_the_queue_to_drain() -> None:
    relay = ShowRelay(1, lambda: None)
    output, _ = viewer(seq=0)
    relay.add_output("a", output)
    policy = output.policy
    assert policy is not None
    cache = relay.caches["video"]
    pub = Publisher(relay, "p")
    layered_frames(pub, FAST_PACKETS)  # 2 * FAST_PACKETS packets, numbered from 0, at the top layer
    track = output.tracks["video"]
    now = time.monotonic()
    # The same numbers NACKed again and again (aiortc repeats every missing one) are one loss each.
    light = list(range(FAST_PACKETS, FAST_PACKETS + 5))
    for _ in range(5):
        output.resend("video", light, cache, now)
    layered_frames(pub, FAST_PACKETS // 2, key_first=False)  # FAST_PACKETS more sent
    output.resend("video", [*light, light[-1] + 1], cache, now + 0.01)  # 6 lost of FAST_PACKETS
    assert policy.target == TOP_LAYER and track.nacked_high == light[-1] + 1
    # A link's queue overflowing: more than FAST_LOSS of the next packets NACKed for the first time.
    heavy = list(range(light[-1] + 2, light[-1] + 2 + int(FAST_LOSS * FAST_PACKETS)))
    resent_before = track.resent
    output.resend("video", heavy, cache, now + 0.02)
    layered_frames(pub, FAST_PACKETS // 2, key_first=False)
    assert policy.target == TOP_LAYER
    resent, _, refused, _, _ = output.resend("video", [track.seq - 1], cache, now + 0.03)
    assert policy.target == TOP_LAYER - 1 and policy.last_down == now + 0.03
    assert (resent, refused) == (0, 1)  # the queue still holds the layer left: nothing resent yet
    again, _, refused, _, _ = output.resend("video", heavy, cache, now + 0.03 + QUIET_AFTER_DOWN / 2)
    assert (again, refused) == (0, len(heavy))
    # Drained: the viewer's next NACK is answered (as a congested viewer's, within its credit).
    again, _, refused, _, _ = output.resend("video", heavy, cache, now + 0.031 + QUIET_AFTER_DOWN)
    assert (again, refused) == (len(heavy), 0) and track.resent == resent_before + 2 * len(heavy)


async def test_a_viewer_that_negotiated_abs_send_time_gets_it_on_first_sends_and_its_estimate_is_judged() -> (
    None
):
    relay = ShowRelay(1, lambda: None)
    stamped, udp = viewer(seq=0)
    stamped.tracks["video"].send_time_id = 3
    plain, plain_udp = viewer(seq=0)
    relay.add_output("stamped", stamped)
    relay.add_output("plain", plain)
    pub = Publisher(relay, "p")
    before = time.time()
    layered_frames(pub, 4)
    after = time.time()
    ids = HeaderExtensionsMap()
    uri = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
    ids.configure(RTCRtpParameters(headerExtensions=[RTCRtpHeaderExtensionParameters(id=3, uri=uri)]))
    got = [RtpPacket.parse(d, ids) for d in udp.sent]
    assert [p.sequence_number for p in got] == list(range(8)) and all(p.payload_type == 96 for p in got)
    assert [p.payload for p in got] == [p.payload for p in sent(plain_udp)]  # the same payloads
    # 6.18 fixed-point seconds, modulo 64 s: the send time, to 2^-18 s.
    low, high = (int(t * 262144) & 0xFFFFFF for t in (before, after))
    times = [p.extensions.abs_send_time for p in got]
    assert all(t is not None and (low <= t <= high or high < low) for t in times), (low, times, high)
    assert all(RtpPacket.parse(d).extensions.abs_send_time is None for d in plain_udp.sent)
    # Its receiver's estimates, against what it was sent over the last half second and more.
    policy = stamped.policy
    assert policy is not None
    track = stamped.tracks["video"]
    track.rate_mark = [(time.monotonic() - 1.0, track.octets - 87_500)] * 2  # 700 kbit/s for a second
    relay.estimate(stamped, int(REMB_DOWN * 700_000 * 0.9))
    policy.nacked(time.monotonic(), int(LOSS_DOWN * REMB_PACKETS) + 1, track.packets)
    layered_frames(pub, REMB_PACKETS // 2, key_first=False)
    policy.nacked(time.monotonic(), 0, track.packets)
    assert policy.target == TOP_LAYER - 1  # narrow: the first overflow stepped it down
