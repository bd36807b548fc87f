"""Live video relay benchmark: server CPU per viewer, largest N at 30 fps with <1% frame loss, time to
first frame, for liveshow's encoded relay and, in the same run, aiortc's stock MediaRelay path, plus the
server CPU the recorder adds.

Processes: one server (``serve``), one publisher (``publish``: a pre-encoded 1280x720 30 fps ~1.5 Mbps
VP8 clip, keyframe every 15 frames, plus Opus), and a few viewer processes (``viewers``) each holding
many viewers: they complete ICE and DTLS with aiortc, then read their UDP sockets directly and count
packets from the clear RTP header (no SRTP unprotect, no decoding), so the server, not the viewers, runs
out of CPU first. The audience grows step by step (viewers stay joined); the server's and the viewer
processes' CPU are read from /proc over each measurement window. A second short run at one N with
recording off gives the recorder's cost.

    /tmp/venv/bin/python bench/relay.py                      # default, about 3 minutes
    /tmp/venv/bin/python bench/relay.py --steps 100,200,400,600,800 --viewer-procs 3 --window 8
    LIVESHOW_RELAY_RTX=0 LIVESHOW_RELAY_LAYERS=0 /tmp/venv/bin/python bench/relay.py   # features off
    /tmp/venv/bin/python bench/relay.py --layered    # the publisher's packets carry L1T3 layer ids
"""

from __future__ import annotations

import argparse
import asyncio
import fractions
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import av
import httpx
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack, MediaStreamTrack

from bench.tally import ViewerWindow, relay_held, relay_step, relay_summary, viewer_expected_frames

CLIP = Path(tempfile.gettempdir()) / "liveshow-bench-720p30-vp8.ivf"
FPS = 30


# ------------------------------------------------------------------ clip and publisher


def make_clip(path: Path = CLIP, seconds: int = 10) -> None:
    if path.exists():
        return
    out = av.open(str(path), "w", format="ivf")
    stream = out.add_stream("libvpx", rate=FPS)
    stream.width, stream.height, stream.pix_fmt = 1280, 720, "yuv420p"
    stream.bit_rate = 1_500_000
    stream.codec_context.gop_size = 15
    stream.codec_context.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"}
    for i in range(seconds * FPS):
        frame = av.VideoFrame(1280, 720, "yuv420p")
        row = bytearray(bytes((x * 255) // 1279 for x in range(1280)))
        x = (i * 11) % 1200
        row[x : x + 80] = b"\xff" * 80
        frame.planes[0].update(bytes(row) * 720)
        frame.planes[1].update(bytes([(i * 3) % 256]) * (640 * 360))
        frame.planes[2].update(b"\x80" * (640 * 360))
        frame.pts = i
        for packet in stream.encode(frame):
            out.mux(packet)
    for packet in stream.encode(None):
        out.mux(packet)
    out.close()


class ClipTrack(MediaStreamTrack):
    """Loops pre-encoded packets at 30 fps: aiortc's sender packetizes them without encoding."""

    kind = "video"

    def __init__(self, path: Path) -> None:
        super().__init__()
        with av.open(str(path)) as container:
            demuxed = [p for p in container.demux(video=0) if p.size]
        self.packets = [bytes(p) for p in demuxed]
        self.keyframes = [i for i, p in enumerate(demuxed) if p.is_keyframe]
        self.i = 0
        self.pos = 0
        self.start = 0.0

    def keyframe_now(self) -> None:
        """A PLI: continue from the next keyframe of the clip at once, as a live encoder would."""
        pos = self.pos % len(self.packets)
        self.pos += next((k for k in self.keyframes if k >= pos), len(self.packets)) - pos

    async def recv(self) -> av.Packet[Any]:
        if not self.start:
            self.start = time.time()
        wait = self.start + self.i / FPS - time.time()
        if wait > 0:
            await asyncio.sleep(wait)
        packet = av.Packet(self.packets[self.pos % len(self.packets)])
        packet.pts = self.i * 3000
        packet.time_base = fractions.Fraction(1, 90000)
        self.i += 1
        self.pos += 1
        return packet


L1T3 = (0, 2, 1, 2)  # temporal layer of consecutive frames in a three-layer stream


def publish_layered() -> None:
    """Make this (publisher) process's VP8 packets carry temporal layer ids, as the studio's L1T3
    stream does, so the relay's layer filter runs. The clip is not encoded in layers: the viewers here
    count packets and never decode, and each viewer on loopback stays at the top layer anyway."""
    from aiortc.codecs.vpx import Vp8Encoder

    packetize = Vp8Encoder._packetize

    def layered(buffer: bytes, picture_id: int) -> list[bytes]:
        tid = L1T3[picture_id % 4]
        tl0 = (picture_id // 4) & 0xFF
        # aiortc writes X|S|PID, then I (0x80), then a 15-bit PictureID: add L and T after it.
        layer = bytes((tl0, (tid << 6) | (0x20 if tid else 0)))
        ext = 0x80 | 0x40 | 0x20  # I, L, T
        return [bytes((p[0], ext)) + p[2:4] + layer + p[4:] for p in packetize(buffer, picture_id)]

    # aiortc calls it on the encoder instance: it must stay a classmethod.
    Vp8Encoder._packetize = classmethod(lambda cls, buffer, picture_id: layered(buffer, picture_id))  # type: ignore[method-assign,assignment]


def env_flag(name: str) -> bool:
    """A relay feature switch as the server reads it (LIVESHOW_RELAY_RTX, LIVESHOW_RELAY_LAYERS)."""
    return os.environ.get(name, "true").strip().lower() in ("1", "true", "yes", "on")


async def run_publisher(url: str, key: str) -> None:
    pc = RTCPeerConnection()
    clip = ClipTrack(CLIP)
    video = pc.addTransceiver(clip, direction="sendonly")
    video.sender._send_keyframe = clip.keyframe_now  # type: ignore[method-assign]
    pc.addTransceiver(AudioStreamTrack(), direction="sendonly")
    for t in pc.getTransceivers():
        if t.kind == "video":
            caps = [c for c in av_caps("video") if c.mimeType in ("video/VP8", "video/rtx")]
            t.setCodecPreferences(caps)
    await pc.setLocalDescription(await pc.createOffer())
    async with httpx.AsyncClient(timeout=30) as http:
        r = await http.post(
            url,
            content=pc.localDescription.sdp,
            headers={"Content-Type": "application/sdp", "Authorization": f"Bearer {key}"},
        )
    r.raise_for_status()
    await pc.setRemoteDescription(RTCSessionDescription(sdp=r.text, type="answer"))
    print("publishing", flush=True)
    await asyncio.Event().wait()


def av_caps(kind: str) -> list[Any]:
    from aiortc import RTCRtpSender

    return list(RTCRtpSender.getCapabilities(kind).codecs)


# ------------------------------------------------------------------ viewers that count, never decode


class Poller:
    """Drains every viewer socket of the process every ``interval`` seconds, instead of one event-loop
    wakeup per datagram: with hundreds of sockets the wakeups, not the reads, were the viewers' cost."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.drains: list[Callable[[], bool]] = []
        self.task: asyncio.Task[None] | None = None

    def add(self, drain: Callable[[], bool]) -> None:
        self.drains.append(drain)
        if self.task is None:
            self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            self.drains = [drain for drain in self.drains if drain()]


class CountingViewer:
    """A WHEP viewer that, once ICE and DTLS are up, reads its UDP socket itself and only looks at the
    clear RTP header (no SRTP unprotect, no depacketizing, no decoding).

    The asyncio datagram transport of the nominated ICE pair stops reading; the process's Poller drains
    the socket with ``recvfrom_into`` into one buffer until it is empty, so the cost per packet is one
    syscall and a few byte reads. STUN (consent checks) and DTLS still go to aioice, so the connection
    stays up.
    """

    def __init__(self, poller: Poller) -> None:
        self.poller = poller
        self.pc = RTCPeerConnection()
        self.t0 = 0.0
        self.first_frame: float | None = None
        self.frames = 0
        self.packets = 0
        self.lost = 0  # video packets missing from the sequence numbers
        self.last_seq = -1
        self.last_ts = 0
        self.marks: dict[str, tuple[int, int, int, int]] = {}

    async def join(self, url: str) -> None:
        self.t0 = time.monotonic()
        self.pc.addTransceiver("video", direction="recvonly")
        self.pc.addTransceiver("audio", direction="recvonly")
        connected = asyncio.Event()

        @self.pc.on("connectionstatechange")
        def changed() -> None:
            if self.pc.connectionState == "connected":
                connected.set()

        await self.pc.setLocalDescription(await self.pc.createOffer())
        async with httpx.AsyncClient(timeout=30) as http:
            r = await http.post(
                url, content=self.pc.localDescription.sdp, headers={"Content-Type": "application/sdp"}
            )
        r.raise_for_status()
        video_pts = {
            int(line.split()[0].split(":")[1])
            for line in r.text.splitlines()
            if line.startswith("a=rtpmap:") and "VP8" in line
        }
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=r.text, type="answer"))
        await asyncio.wait_for(connected.wait(), 30)
        transport = self.pc.getTransceivers()[0].receiver.transport.transport
        pair = transport._connection._nominated[1]
        self._read_raw(pair.protocol, pair.remote_addr, video_pts)

    def _read_raw(self, protocol: Any, remote: Any, video_pts: set[int]) -> None:
        udp = protocol.transport
        sock = udp._sock  # the socket itself (get_extra_info gives a wrapper without recvfrom_into)
        handoff = protocol.datagram_received  # STUN and DTLS stay with aioice
        buf = bytearray(2048)
        view = memoryview(buf)
        recv = sock.recv_into  # the nominated pair has one remote address: no need to ask for it

        def drain() -> bool:
            while True:
                try:
                    n = recv(buf)
                except (BlockingIOError, InterruptedError):
                    return True
                except OSError:
                    return False  # closed
                first = buf[0]
                if not 128 <= first < 192:
                    handoff(bytes(view[:n]), remote)
                    continue
                self.packets += 1
                second = buf[1]
                if n < 12 or (second & 0x7F) not in video_pts:
                    continue  # audio, RTCP
                seq = (buf[2] << 8) | buf[3]
                if self.last_seq >= 0:
                    gap = (seq - self.last_seq) & 0xFFFF
                    if 1 < gap < 0x8000:
                        self.lost += gap - 1
                self.last_seq = seq
                if second & 0x80:
                    self.frames += 1
                    self.last_ts = int.from_bytes(view[4:8], "big")
                    if self.first_frame is None:
                        self.first_frame = time.monotonic()

        udp.pause_reading()
        self.poller.add(drain)

    def mark(self, name: str) -> None:
        self.marks[name] = (self.frames, self.last_ts, self.packets, self.lost)

    def since_start(self, window: float) -> dict[str, Any]:
        """What this viewer got since its "start" mark, over a window of ``window`` seconds: frames,
        the frames expected, packets and packets lost."""
        f0, ts0, p0, l0 = self.marks.get("start", (0, 0, 0, 0))
        frames = self.frames - f0
        # frames the RTP clock says were sent between the last one before the window and the
        # last one received; 0 without a frame before the window (the window then bounds it)
        span = ((self.last_ts - ts0) % 2**32) / 3000 if frames and f0 else 0
        return {
            "frames": frames,
            "expected": viewer_expected_frames(window, FPS, span),
            "window": window,
            "packets": self.packets - p0,
            "lost": self.lost - l0,
        }


async def run_probes(url: str, count: int) -> None:
    """Join one viewer at a time and time its first complete video frame."""
    ttffs = []
    poller = Poller(0.002)
    for _ in range(count):
        viewer = CountingViewer(poller)
        await viewer.join(url)
        deadline = time.monotonic() + 10
        while viewer.first_frame is None and time.monotonic() < deadline:  # noqa: ASYNC110 (set by a callback)
            await asyncio.sleep(0.005)
        if viewer.first_frame is not None:
            ttffs.append(viewer.first_frame - viewer.t0)
        await viewer.pc.close()
        await asyncio.sleep(0.3)
    print(json.dumps({"ttff": ttffs}), flush=True)


async def run_viewers(url: str) -> None:
    """A process of many viewers, driven over stdin: ``add K`` joins K more (20 at a time), ``start``
    marks every counter, ``end`` prints what each viewer received since ``start`` and the time this
    process measured between the two (the window its counts cover, not the orchestrator's), ``quit``
    leaves."""
    viewers: list[CountingViewer] = []
    started = 0.0
    poller = Poller(0.02)  # 20 ms of a 1.5 Mbps stream (and a keyframe burst) fits the socket buffer
    failed = 0
    loop = asyncio.get_running_loop()
    while True:
        line = (await loop.run_in_executor(None, sys.stdin.readline)).split()
        if not line or line[0] == "quit":
            break
        if line[0] == "add":
            fresh = [CountingViewer(poller) for _ in range(int(line[1]))]
            for i in range(0, len(fresh), 20):
                batch = fresh[i : i + 20]
                results = await asyncio.gather(*(v.join(url) for v in batch), return_exceptions=True)
                for viewer, result in zip(batch, results, strict=True):
                    if isinstance(result, BaseException):
                        failed += 1
                        await viewer.pc.close()
                    else:
                        viewers.append(viewer)
            print(json.dumps({"joined": len(viewers), "failed": failed}), flush=True)
        elif line[0] == "start":
            started = time.monotonic()
            for v in viewers:
                v.mark("start")
            print("{}", flush=True)
        elif line[0] == "end":
            window = time.monotonic() - started
            out = []
            for v in viewers:
                ttff = (v.first_frame - v.t0) if v.first_frame else None
                out.append({**v.since_start(window), "ttff": ttff})
            print(json.dumps({"failed": failed, "viewers": out}), flush=True)
    for v in viewers:
        await v.pc.close()


# ------------------------------------------------------------------ servers


def serve_ours(port: int, workdir: Path, record: bool) -> None:
    import uvicorn

    from liveshow.accounts.service import create_user
    from liveshow.app import create_app
    from liveshow.db import migrate
    from liveshow.ratelimit.service import UNLIMITED
    from liveshow.settings import Settings, coerce_values
    from liveshow.shows.models import Show

    url = f"sqlite:///{workdir / 'bench.db'}"
    migrate(url)
    settings = Settings(
        data_dir=workdir,
        database_url=url,
        secret_key="bench",
        log_level="WARNING",
        ice_interfaces=("127.0.0.1",),  # media on loopback, as in the tests
        relay_rtx=env_flag("LIVESHOW_RELAY_RTX"),
        relay_layers=env_flag("LIVESHOW_RELAY_LAYERS"),
    )
    unlimited = settings.with_overrides(**coerce_values(UNLIMITED))
    app = create_app(unlimited)
    with app.state.ctx.db.session() as session:
        user = create_user(session, "bench", "correct horse battery")
        show = Show(seller_id=user.id or 0, title="bench", stream_key=secrets.token_urlsafe(16))
        session.add(show)
        session.commit()
        recordings = app.state.ctx.recordings
        if not record and recordings is not None:
            recordings.not_recorded.add(show.id or 0)  # the product records every show by default
        print(json.dumps({"show": show.id, "key": show.stream_key}), flush=True)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


def serve_baseline(port: int) -> None:
    """aiortc's stock path: MediaRelay of the publisher's (decoded) tracks, re-encoded per viewer."""
    import uvicorn
    from aiortc.contrib.media import MediaRelay
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    relay = MediaRelay()
    tracks: dict[str, MediaStreamTrack] = {}
    peers: set[RTCPeerConnection] = set()

    async def whip(request: Request) -> Response:
        pc = RTCPeerConnection()
        peers.add(pc)
        pc.on("track", lambda track: tracks.__setitem__(track.kind, track))
        await pc.setRemoteDescription(
            RTCSessionDescription(sdp=(await request.body()).decode(), type="offer")
        )
        await pc.setLocalDescription(await pc.createAnswer())
        return Response(
            pc.localDescription.sdp, 201, media_type="application/sdp", headers={"Location": "/whip/1/x"}
        )

    async def whep(request: Request) -> Response:
        pc = RTCPeerConnection()
        peers.add(pc)
        for kind in ("video", "audio"):
            if kind in tracks:
                pc.addTrack(relay.subscribe(tracks[kind]))
        await pc.setRemoteDescription(
            RTCSessionDescription(sdp=(await request.body()).decode(), type="offer")
        )
        for t in pc.getTransceivers():
            if t.kind == "video":
                t.setCodecPreferences(
                    [c for c in av_caps("video") if c.mimeType in ("video/VP8", "video/rtx")]
                )
        await pc.setLocalDescription(await pc.createAnswer())
        return Response(
            pc.localDescription.sdp, 201, media_type="application/sdp", headers={"Location": "/whep/1/x"}
        )

    app = Starlette(
        routes=[Route("/whip/1", whip, methods=["POST"]), Route("/whep/1", whep, methods=["POST"])]
    )
    print(json.dumps({"show": 1, "key": "x"}), flush=True)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


# ------------------------------------------------------------------ orchestration


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def spawn(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, __file__, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )


def ask(proc: subprocess.Popen[str], line: str) -> Any:
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(line + "\n")
    proc.stdin.flush()
    return json.loads(proc.stdout.readline())


def run_mode(
    mode: str, steps: list[int], window: float, procs_n: int, probes: int, record: bool = True
) -> list[dict[str, Any]]:
    """Start a server and a publisher, then grow the audience step by step (viewers stay joined)."""
    port = 20000 + secrets.randbelow(20000)
    workdir = Path(tempfile.mkdtemp(prefix="liveshow-bench-"))
    label = mode if record else f"{mode}-norec"
    server = spawn("serve", mode, str(port), str(workdir), "rec" if record else "norec")
    assert server.stdout is not None
    info = json.loads(server.stdout.readline())
    base = f"http://127.0.0.1:{port}"
    time.sleep(0.5)
    publisher = spawn("publish", f"{base}/whip/{info['show']}", info["key"])
    assert publisher.stdout is not None
    publisher.stdout.readline()
    time.sleep(2.0)
    viewer_procs = [spawn("viewers", f"{base}/whep/{info['show']}") for _ in range(procs_n)]
    rows: list[dict[str, Any]] = []
    try:
        c0, t0 = cpu_seconds(server.pid), time.time()
        time.sleep(3.0)
        idle = (cpu_seconds(server.pid) - c0) / (time.time() - t0)
        print(f"{label:12} publisher only: server cpu {idle * 100:.1f}%", flush=True)
        joined = [0] * procs_n
        for n in steps:
            share = [n // procs_n + (1 if i < n % procs_n else 0) for i in range(procs_n)]
            failed = 0
            for i, proc in enumerate(viewer_procs):  # each process joins its share, 20 at a time
                if share[i] > joined[i]:
                    reply = ask(proc, f"add {share[i] - joined[i]}")
                    joined[i], failed = reply["joined"], failed + reply["failed"]
            time.sleep(1.5)  # first keyframes out, queues settle
            for proc in viewer_procs:
                ask(proc, "start")
            c_start, w_start = cpu_seconds(server.pid), time.time()
            v_start = sum(cpu_seconds(p.pid) for p in viewer_procs)
            time.sleep(window)
            elapsed = time.time() - w_start
            cpu = (cpu_seconds(server.pid) - c_start) / elapsed
            client_cpu = (sum(cpu_seconds(p.pid) for p in viewer_procs) - v_start) / elapsed
            viewers: list[dict[str, Any]] = []
            for proc in viewer_procs:
                data = ask(proc, "end")
                viewers += data["viewers"]
            count = len(viewers) or 1
            packets = sum(v["packets"] for v in viewers)
            lost = sum(v["lost"] for v in viewers)
            windows = [ViewerWindow(v["frames"], v["expected"], v["window"]) for v in viewers]
            fps, loss = relay_step(windows, failed, n)
            failures = relay_held(loss, fps, cpu, failed)
            row = {
                "mode": label,
                "n": n,
                "joined": len(viewers),
                "failed": failed,
                "server_cpu": cpu,
                "idle_cpu": idle,
                "client_cpu": client_cpu,
                "cpu_per_viewer_ms": (cpu - idle) / count * 1000,
                "client_us_per_packet": client_cpu / max(packets / elapsed, 1) * 1e6,
                "fps": fps,
                "loss": loss,
                "packet_loss": lost / max(lost + packets, 1),
                "failures": failures,
            }
            rows.append(row)
            print(
                f"{label:12} N={n:4d} server cpu {cpu * 100:5.1f}%  per viewer "
                f"{row['cpu_per_viewer_ms']:.2f} ms/s  fps {fps:4.1f}  frame loss {row['loss'] * 100:5.2f}%  "
                f"video pkt loss {row['packet_loss'] * 100:5.2f}%  viewer procs cpu {client_cpu * 100:5.1f}% "
                f"({row['client_us_per_packet']:.1f} us/pkt)  failed {failed}  "
                + ("held" if not failures else "FAILED: " + "; ".join(failures)),
                flush=True,
            )
            if row["loss"] > 0.05 or cpu > 0.97:
                break
        for proc in viewer_procs:
            assert proc.stdin is not None
            proc.stdin.write("quit\n")
            proc.stdin.flush()
        for proc in viewer_procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        if probes:
            probe = spawn("probe", f"{base}/whep/{info['show']}", str(probes))
            out, _ = probe.communicate(timeout=120)
            ttffs = sorted(json.loads(out.strip().splitlines()[-1])["ttff"])
            for row in rows:
                row["probe_ttff"] = ttffs
            print(
                f"{label:12} time to first frame, {len(ttffs)} joins one at a time: "
                f"p50 {fmt(pct(ttffs, 50))} p95 {fmt(pct(ttffs, 95))}",
                flush=True,
            )
    finally:
        for proc in [*viewer_procs, publisher, server]:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
    return rows


def pct(values: list[float], p: int) -> float | None:
    if not values:
        return None
    return values[min(len(values) - 1, int(len(values) * p / 100))]


def fmt(x: float | None) -> str:
    return f"{x * 1000:.0f} ms" if x is not None else "-"


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The headline from the steps that held (bench/tally.py): a failed step's figures stay in its row."""
    held = relay_summary(rows)
    per_viewer: float = held["cpu_per_viewer_ms"]
    probe = rows[0].get("probe_ttff", []) if rows else []
    idle = rows[0]["idle_cpu"] if rows else 0.0
    return {
        "largest_n_ok": held["largest_n_ok"],
        "sound": held["sound"],
        "last_n": rows[-1]["n"] if rows else 0,
        "cpu_per_viewer_ms": per_viewer,
        "viewers_per_core": 1000 / per_viewer if per_viewer > 0 else float("nan"),
        # the CPU-limited projection: viewers that fit in the rest of one core at this cost each
        "projected_n": (1 - idle) * 1000 / per_viewer if per_viewer > 0 else float("nan"),
        "ttff_p50": pct(probe, 50),
        "ttff_p95": pct(probe, 95),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", default="50,100,200,300,400")
    parser.add_argument(
        "--layered",
        action="store_true",
        help="the publisher's VP8 packets carry temporal layer ids (L1T3), so the relay's layer filter runs",
    )
    parser.add_argument("--baseline-steps", default="1,2,4")
    parser.add_argument("--window", type=float, default=5.0)
    parser.add_argument("--viewer-procs", type=int, default=2, help="processes the viewers are spread over")
    parser.add_argument("--probes", type=int, default=10, help="single joins timed for first frame")
    parser.add_argument(
        "--recorder-step", type=int, default=100, help="N of the run repeated with recording off (0: skip)"
    )
    args = parser.parse_args()
    if args.layered:
        os.environ["LIVESHOW_BENCH_LAYERED"] = "1"  # the publisher process reads it
    print(
        f"relay features: rtx={env_flag('LIVESHOW_RELAY_RTX')} layers={env_flag('LIVESHOW_RELAY_LAYERS')} "
        f"layered publisher={args.layered}",
        flush=True,
    )
    make_clip()
    started = time.time()
    steps = [int(x) for x in args.steps.split(",")]
    ours = run_mode("ours", steps, args.window, args.viewer_procs, args.probes)
    norec: list[dict[str, Any]] = []
    if args.recorder_step:
        norec = run_mode("ours", [args.recorder_step], args.window, args.viewer_procs, 0, record=False)
    base_steps = [int(x) for x in args.baseline_steps.split(",")]
    base = run_mode("baseline", base_steps, args.window, 1, args.probes)
    a, b = summarize(ours), summarize(base)
    print("\nsummary               liveshow relay    aiortc MediaRelay   ratio")
    print(f"largest N measured ok {a['largest_n_ok']:>10}        {b['largest_n_ok']:>10}   (30fps <1%)")
    print("(CPU per viewer: the median over the steps that held; nan where no step held)")
    print(
        f"server CPU / viewer   {a['cpu_per_viewer_ms']:>8.2f} ms/s    {b['cpu_per_viewer_ms']:>8.2f} ms/s   "
        f"{b['cpu_per_viewer_ms'] / a['cpu_per_viewer_ms']:.1f}x less"
    )
    print(
        f"viewers per core      {a['viewers_per_core']:>10.0f}        {b['viewers_per_core']:>10.1f}   "
        f"{a['viewers_per_core'] / b['viewers_per_core']:.1f}x more   (projection from CPU per viewer)"
    )
    print(
        f"first frame p50/p95   {fmt(a['ttff_p50'])} / {fmt(a['ttff_p95'])}    "
        f"{fmt(b['ttff_p50'])} / {fmt(b['ttff_p95'])}"
    )
    if a["largest_n_ok"] == a["last_n"]:
        print(
            f"largest N is at least {a['largest_n_ok']} (the last step passed); CPU-limited projection "
            f"for one core: ~{a['projected_n']:.0f} viewers"
        )
    same = next((r for r in ours if norec and r["n"] == norec[0]["n"]), None)
    if norec and same is not None:
        idle_diff = (same["idle_cpu"] - norec[0]["idle_cpu"]) * 100
        step_diff = (same["server_cpu"] - norec[0]["server_cpu"]) * 100
        print(
            f"recorder's added server CPU: {idle_diff:+.1f}% of a core with the publisher alone, "
            f"{step_diff:+.1f}% at N={same['n']} (recording on {same['server_cpu'] * 100:.1f}% vs "
            f"off {norec[0]['server_cpu'] * 100:.1f}%)"
        )
    print(f"run took {time.time() - started:.0f} s")
    failed = (
        [] if a["sound"] else ["a step of the liveshow relay at or below its largest N failed, or none held"]
    )
    if norec and norec[0]["failures"]:
        failed.append(f"the recording-off run failed ({'; '.join(norec[0]['failures'])})")
    for reason in failed:
        print(f"FAILED: {reason}")
    return 1 if failed else 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        if sys.argv[2] == "ours":
            serve_ours(int(sys.argv[3]), Path(sys.argv[4]), record=sys.argv[5] == "rec")
        else:
            serve_baseline(int(sys.argv[3]))
    elif len(sys.argv) > 1 and sys.argv[1] == "publish":
        make_clip()
        if os.environ.get("LIVESHOW_BENCH_LAYERED") == "1":
            publish_layered()
        asyncio.run(run_publisher(sys.argv[2], sys.argv[3]))
    elif len(sys.argv) > 1 and sys.argv[1] == "probe":
        asyncio.run(run_probes(sys.argv[2], int(sys.argv[3])))
    elif len(sys.argv) > 1 and sys.argv[1] == "viewers":
        asyncio.run(run_viewers(sys.argv[2]))
    else:
        sys.exit(main())
