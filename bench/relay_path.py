"""The relay's send path alone, in one process: CPU per viewer of fanning one show out, with the
retransmission cache and the temporal layer filter on and off, and (``--root``) the same measured on
another checkout of liveshow (e.g. before packet forwarding), under the same conditions.

Unlike ``bench/relay.py`` (whole server, real peers, wall-clock CPU of processes on a shared machine),
this times only the relay's own work with ``time.process_time`` around it, so other load on the
machine barely moves it: each viewer has a real SRTP session (pylibsrtp, as aiortc's) and a real UDP
socket whose ``sendto`` reaches a bound loopback socket nobody reads (the kernel drops what overflows:
the syscall is paid in full). The stream: 1280x720-like VP8 at 30 fps and ~1.5 Mbit/s (packets of
~1,100 bytes, a keyframe of three times the size every 15 frames), fed as whole frames
(``ShowRelay.push``, the only input before packet forwarding, the re-air path after it) and, where the
checkout has it, as packets (``ShowRelay.forward``, the publisher path), with and without L1T3 layer
ids, and with abs-send-time written on every packet (as for every viewer that offers the extension:
its receiver's link estimate, REMB). Every viewer stays at the top layer (nothing to adapt to), so the
layer filter's cost is that of reading and judging each packet.

    /work/main/.venv/bin/python bench/relay_path.py
    /work/main/.venv/bin/python bench/relay_path.py --root /tmp/main-checkout --viewers 100 --rounds 5
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

FPS = 30
BITRATE = 1_500_000
GOP = 15
L1T3 = (0, 2, 1, 2)


class Udp:
    """The part of an asyncio datagram transport the relay uses, over a plain non-blocking socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.errors = 0

    def is_closing(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return 0

    def sendto(self, data: bytes, addr: Any) -> None:
        try:
            self.sock.sendto(data, addr)
        except OSError:
            self.errors += 1


class Sender:
    _ssrc = 0x1234
    _rtx_ssrc = 0x5678


def srtp_session() -> Any:
    from pylibsrtp import Policy, Session

    policy = Policy(key=bytes(range(30)), ssrc_type=Policy.SSRC_ANY_OUTBOUND)
    policy.allow_repeat_tx = True
    return Session(policy=policy)


def frames(seconds: float) -> list[tuple[bytes, bool]]:
    size = BITRATE // 8 // FPS
    body = os.urandom(size * 3)
    out = []
    for i in range(int(seconds * FPS)):
        key = i % GOP == 0
        out.append(((b"\x10" if key else b"\x11") + body[: size * 3 if key else size], key))
    return out


def layered_payloads(payloads: list[bytes], picture_id: int) -> list[bytes]:
    """aiortc's VP8 descriptor (X|S|PID, I, 15-bit PictureID) with L1T3's TL0PICIDX and TID added."""
    tid = L1T3[picture_id % 4]
    layer = bytes(((picture_id // 4) & 0xFF, (tid << 6) | (0x20 if tid else 0)))
    return [bytes((p[0], 0x80 | 0x40 | 0x20)) + p[2:4] + layer + p[4:] for p in payloads]


async def measure(mode: str, viewers: int, seconds: float, features: bool) -> dict[str, float]:
    from aiortc.codecs.vpx import Vp8Encoder

    from liveshow.media.frames import EncodedFrame
    from liveshow.media.relay import OutTrack, ShowRelay, ViewerOutput

    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    addr = sink.getsockname()
    kwargs: dict[str, Any] = {} if mode == "frames-old" else {"resend": features, "layers": features}
    relay = ShowRelay(1, lambda: None, **kwargs)
    relay.keyframes.want = lambda: None  # type: ignore[method-assign]  # no event loop timers here
    socks, udps = [], []
    for i in range(viewers):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setblocking(False)
        socks.append(sock)
        udp = Udp(sock)
        udps.append(udp)
        track = OutTrack(Sender(), pt=96, codec="VP8", seq=i, ts_offset=i, rtx_pt=97)
        if mode == "packets-stamped":
            track.send_time_id = 3
        relay.add_output(str(i), ViewerOutput({"video": track}, srtp_session(), udp, addr))
    stream = frames(seconds)
    # Packetized before the clock starts for the packet modes, as the publisher's packets arrive made.
    packets: list[tuple[int, bytes, int, bool]] = []
    if mode.startswith("packets"):
        n = 0
        for i, (data, _key) in enumerate(stream):
            payloads = Vp8Encoder._packetize(data, i)
            if mode == "packets-layered":
                payloads = layered_payloads(payloads, i)
            for k, payload in enumerate(payloads):
                packets.append((n, payload, i * 3000, k == len(payloads) - 1))
                n += 1
    t0 = time.process_time()
    if mode.startswith("packets"):
        forward = relay.forward
        for n, payload, pts, marker in packets:
            forward("video", "VP8", "bench", n, payload, pts, marker)
    else:
        push = relay.push
        for i, (data, key) in enumerate(stream):
            push(EncodedFrame("video", "VP8", data, i * 3000, key))
    cpu = time.process_time() - t0
    sent = [output.tracks["video"].packets for output in relay.outputs.values()]
    for sock in socks:
        sock.close()
    sink.close()
    per_viewer_packets = statistics.mean(sent)
    return {
        "us_per_packet": cpu / (per_viewer_packets * viewers) * 1e6,
        "ms_per_s": cpu / viewers / seconds * 1000,
        "packets_per_viewer": per_viewer_packets,
        "min_sent": min(sent),
        "send_errors": sum(u.errors for u in udps),
        "layer_dropped": getattr(getattr(relay, "layer_counts", None), "dropped", 0),
    }


def child(root: str, mode: str, viewers: int, seconds: float, features: bool) -> None:
    sys.path.insert(0, root)
    result = asyncio.run(measure(mode, viewers, seconds, features))
    print(" ".join(f"{k}={v}" for k, v in result.items()), flush=True)


def run(root: str, mode: str, viewers: int, seconds: float, features: bool) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "child", root, mode, str(viewers), str(seconds), "1" if features else "0"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    ).stdout
    return {k: float(v) for k, v in (kv.split("=") for kv in out.split())}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--viewers", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=10.0, help="of stream pushed through per run")
    parser.add_argument("--rounds", type=int, default=3, help="runs per configuration, interleaved (median)")
    parser.add_argument("--root", default="", help="another liveshow checkout, measured on frames")
    args = parser.parse_args()
    here = str(Path(__file__).resolve().parent.parent)
    configs: list[tuple[str, str, str, bool]] = []
    if args.root:
        configs.append((f"{args.root} frames", args.root, "frames-old", True))
    configs += [
        ("frames, cache+layers on", here, "frames", True),
        ("frames, cache+layers off", here, "frames", False),
        ("packets, cache+layers on", here, "packets", True),
        ("packets, cache+layers off", here, "packets", False),
        ("packets, on, abs-send-time", here, "packets-stamped", True),
        ("packets L1T3, cache+layers on", here, "packets-layered", True),
        ("packets L1T3, cache+layers off", here, "packets-layered", False),
    ]
    results: dict[str, list[dict[str, float]]] = {label: [] for label, *_ in configs}
    for _ in range(args.rounds):
        for label, root, mode, features in configs:
            results[label].append(run(root, mode, args.viewers, args.seconds, features))
    print(
        f"{args.viewers} viewers, {args.seconds:.0f} s of a {BITRATE // 1000} kbit/s {FPS} fps VP8 stream, ",
        end="",
    )
    print(f"median of {args.rounds} interleaved runs (CPU time of the relay's send path, this process only)")
    head = f"{'configuration':44} {'us/packet/viewer':>17} {'ms/s/viewer':>12} {'pkts/viewer':>12}"
    print(f"{head} {'errors':>7} {'layer drops':>12}")
    for label, runs in results.items():
        us = statistics.median(r["us_per_packet"] for r in runs)
        ms = statistics.median(r["ms_per_s"] for r in runs)
        pkts = min(r["min_sent"] for r in runs)
        errors = sum(r["send_errors"] for r in runs)
        drops = sum(r["layer_dropped"] for r in runs)
        print(f"{label:44} {us:17.2f} {ms:12.3f} {pkts:12.0f} {errors:7.0f} {drops:12.0f}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "child":
        child(sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5]), sys.argv[6] == "1")
    else:
        sys.exit(main())
