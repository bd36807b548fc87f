"""Live video relay benchmark: server CPU per viewer, largest N at 30 fps with <1% frame loss, time to
first frame, for liveshow's encoded relay and, in the same run, aiortc's stock MediaRelay path.

Processes: one server (``serve``), one publisher (``publish``: a pre-encoded 1280x720 30 fps ~1.5 Mbps
VP8 clip, keyframe every 15 frames, plus Opus), and viewer processes (``viewers``) that complete ICE and
DTLS with aiortc and then count SRTP packets from their clear RTP headers without decrypting or decoding.
The orchestrator (default command) steps N up, measures the server's CPU from /proc over a window, and
prints a table and a summary.

    /tmp/venv/bin/python bench/relay.py                      # default, about 3 minutes
    /tmp/venv/bin/python bench/relay.py --steps 50,100,200,300,400 --baseline-steps 1,2,4,8 --window 10
"""

from __future__ import annotations

import argparse
import asyncio
import fractions
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import av
import httpx
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack, MediaStreamTrack

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

    async def recv(self) -> av.Packet:
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


class CountingViewer:
    def __init__(self) -> None:
        self.pc = RTCPeerConnection()
        self.t0 = 0.0
        self.first_frame: float | None = None
        self.frames = 0
        self.first_ts: int | None = None
        self.last_ts = 0
        self.marks: dict[str, tuple[int, int, int | None]] = {}

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
        # Count RTP from the clear SRTP header on the nominated pair; hand STUN/DTLS on to aioice.
        transport = self.pc.getTransceivers()[0].receiver.transport.transport
        pair = transport._connection._nominated[1]
        original = pair.protocol.datagram_received

        def received(data: bytes, addr: Any) -> None:
            if 128 <= data[0] < 192 and len(data) > 12 and (data[1] & 0x7F) in video_pts:
                if data[1] & 0x80:
                    ts = int.from_bytes(data[4:8], "big")
                    if self.first_frame is None:
                        self.first_frame = time.monotonic()
                    self.frames += 1
                    self.last_ts = ts
                return
            if not 128 <= data[0] < 192:
                original(data, addr)

        pair.protocol.datagram_received = received

    def mark(self, name: str) -> None:
        self.marks[name] = (self.frames, self.last_ts, None)


async def run_probes(url: str, count: int) -> None:
    """Join one viewer at a time and time its first complete video frame."""
    ttffs = []
    for _ in range(count):
        viewer = CountingViewer()
        await viewer.join(url)
        deadline = time.monotonic() + 10
        while viewer.first_frame is None and time.monotonic() < deadline:  # noqa: ASYNC110 (set by a callback)
            await asyncio.sleep(0.005)
        if viewer.first_frame is not None:
            ttffs.append(viewer.first_frame - viewer.t0)
        await viewer.pc.close()
        await asyncio.sleep(0.3)
    print(json.dumps({"ttff": ttffs}), flush=True)


async def run_viewers(url: str, count: int, measure_at: float, end_at: float) -> None:
    viewers = [CountingViewer() for _ in range(count)]
    results = await asyncio.gather(*(v.join(url) for v in viewers), return_exceptions=True)
    failed = sum(isinstance(r, Exception) for r in results)
    print("joined", flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.readline)  # "start": every process has joined
    for v in viewers:
        v.mark("start")
    await loop.run_in_executor(None, sys.stdin.readline)  # "end"
    out = []
    for v in viewers:
        f0, ts0, _ = v.marks.get("start", (0, 0, None))
        frames = v.frames - f0
        expected = ((v.last_ts - ts0) % 2**32) / 3000 if frames and ts0 else 0
        ttff = (v.first_frame - v.t0) if v.first_frame else None
        out.append({"frames": frames, "expected": expected, "ttff": ttff})
    print(json.dumps({"failed": failed, "viewers": out}), flush=True)
    for v in viewers:
        await v.pc.close()


# ------------------------------------------------------------------ servers


def serve_ours(port: int, workdir: Path) -> None:
    import uvicorn

    from liveshow.accounts.service import create_user
    from liveshow.app import create_app
    from liveshow.db import migrate
    from liveshow.settings import Settings
    from liveshow.shows.models import Show

    url = f"sqlite:///{workdir / 'bench.db'}"
    migrate(url)
    app = create_app(Settings(data_dir=workdir, database_url=url, secret_key="bench", log_level="WARNING"))
    with app.state.ctx.db.session() as session:
        user = create_user(session, "bench", "correct horse battery")
        show = Show(seller_id=user.id or 0, title="bench", stream_key=secrets.token_urlsafe(16))
        session.add(show)
        session.commit()
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


def run_mode(mode: str, steps: list[int], window: float, per_proc: int, probes: int) -> list[dict[str, Any]]:
    port = 20000 + secrets.randbelow(20000)
    workdir = Path(tempfile.mkdtemp(prefix="liveshow-bench-"))
    server = spawn("serve", mode, str(port), str(workdir))
    assert server.stdout is not None
    info = json.loads(server.stdout.readline())
    base = f"http://127.0.0.1:{port}"
    time.sleep(0.5)
    publisher = spawn("publish", f"{base}/whip/{info['show']}", info["key"])
    assert publisher.stdout is not None
    publisher.stdout.readline()
    time.sleep(2.0)
    rows = []
    try:
        c0, t0 = cpu_seconds(server.pid), time.time()
        time.sleep(2.0)
        idle = (cpu_seconds(server.pid) - c0) / (time.time() - t0)
        for n in steps:
            procs = []
            for i in range(0, n, per_proc):
                count = str(min(per_proc, n - i))
                procs.append(spawn("viewers", f"{base}/whep/{info['show']}", count, "0", "0"))
            for p in procs:  # wait until every viewer has joined, however long the clients take
                assert p.stdout is not None
                p.stdout.readline()
            time.sleep(1.0)
            for p in procs:
                assert p.stdin is not None
                p.stdin.write("start\n")
                p.stdin.flush()
            c_start, w_start = cpu_seconds(server.pid), time.time()
            time.sleep(window)
            cpu = (cpu_seconds(server.pid) - c_start) / (time.time() - w_start)
            for p in procs:
                assert p.stdin is not None
                p.stdin.write("end\n")
                p.stdin.flush()
            viewers: list[dict[str, Any]] = []
            failed = 0
            for p in procs:
                out, _ = p.communicate(timeout=120)
                data = json.loads(out.strip().splitlines()[-1])
                viewers += data["viewers"]
                failed += data["failed"]
            frames = sum(v["frames"] for v in viewers)
            expected = sum(v["expected"] for v in viewers) or 1
            ttffs = sorted(v["ttff"] for v in viewers if v["ttff"] is not None)
            fps = statistics.mean(v["frames"] / window for v in viewers) if viewers else 0
            row = {
                "mode": mode,
                "n": n,
                "failed": failed,
                "server_cpu": cpu,
                "idle_cpu": idle,
                "cpu_per_viewer_ms": (cpu - idle) / n * 1000,
                "fps": fps,
                "loss": max(0.0, 1 - frames / expected) + failed / n,
                "ttff_p50": ttffs[len(ttffs) // 2] if ttffs else None,
                "ttff_p95": ttffs[min(len(ttffs) - 1, int(len(ttffs) * 0.95))] if ttffs else None,
            }
            rows.append(row)
            print(
                f"{mode:8} N={n:4d} server cpu {cpu * 100:5.1f}% (idle {idle * 100:4.1f}%) "
                f"per viewer {row['cpu_per_viewer_ms']:.2f} ms/s  fps {fps:4.1f}  "
                f"loss {row['loss'] * 100:5.2f}%  "
                f"ttff p50 {fmt(row['ttff_p50'])} p95 {fmt(row['ttff_p95'])}  failed {failed}",
                flush=True,
            )
            if row["loss"] > 0.05 or cpu > 0.98:
                break
            time.sleep(1.0)
        probe = spawn("probe", f"{base}/whep/{info['show']}", str(probes))
        out, _ = probe.communicate(timeout=120)
        ttffs = sorted(json.loads(out.strip().splitlines()[-1])["ttff"])
        for row in rows:
            row["probe_ttff"] = ttffs
        print(
            f"{mode:8} time to first frame, {len(ttffs)} joins one at a time: "
            f"p50 {fmt(pct(ttffs, 50))} p95 {fmt(pct(ttffs, 95))}"
        )
    finally:
        publisher.kill()
        server.kill()
        publisher.wait()
        server.wait()
    return rows


def pct(values: list[float], p: int) -> float | None:
    if not values:
        return None
    return values[min(len(values) - 1, int(len(values) * p / 100))]


def fmt(x: float | None) -> str:
    return f"{x * 1000:.0f} ms" if x is not None else "-"


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    ok = [r for r in rows if r["loss"] < 0.01 and r["fps"] > 29 and r["server_cpu"] < 0.95]
    per_viewer = statistics.median(r["cpu_per_viewer_ms"] for r in rows) if rows else float("nan")
    probe = rows[0].get("probe_ttff", []) if rows else []
    return {
        "largest_n_ok": max((r["n"] for r in ok), default=0),
        "cpu_per_viewer_ms": per_viewer,
        "viewers_per_core": 1000 / per_viewer if per_viewer > 0 else float("inf"),
        "ttff_p50": pct(probe, 50),
        "ttff_p95": pct(probe, 95),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", default="25,50,100,150,200")
    parser.add_argument("--baseline-steps", default="1,2,4")
    parser.add_argument("--window", type=float, default=6.0)
    parser.add_argument("--per-proc", type=int, default=25, help="viewers per viewer process")
    parser.add_argument("--probes", type=int, default=10, help="single joins timed for first frame")
    args = parser.parse_args()
    make_clip()
    started = time.time()
    ours = run_mode("ours", [int(x) for x in args.steps.split(",")], args.window, args.per_proc, args.probes)
    base_steps = [int(x) for x in args.baseline_steps.split(",")]
    base = run_mode("baseline", base_steps, args.window, args.per_proc, args.probes)
    a, b = summarize(ours), summarize(base)
    print("\nsummary               liveshow relay    aiortc MediaRelay   ratio")
    print(f"largest N ok          {a['largest_n_ok']:>10}        {b['largest_n_ok']:>10}")
    print(
        f"server CPU / viewer   {a['cpu_per_viewer_ms']:>8.2f} ms/s    {b['cpu_per_viewer_ms']:>8.2f} ms/s   "
        f"{b['cpu_per_viewer_ms'] / a['cpu_per_viewer_ms']:.1f}x less"
    )
    print(
        f"viewers per core      {a['viewers_per_core']:>10.0f}        {b['viewers_per_core']:>10.1f}   "
        f"{a['viewers_per_core'] / b['viewers_per_core']:.1f}x more"
    )
    print(
        f"first frame p50/p95   {fmt(a['ttff_p50'])} / {fmt(a['ttff_p95'])}    "
        f"{fmt(b['ttff_p50'])} / {fmt(b['ttff_p95'])}"
    )
    print(f"run took {time.time() - started:.0f} s")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        if sys.argv[2] == "ours":
            serve_ours(int(sys.argv[3]), Path(sys.argv[4]))
        else:
            serve_baseline(int(sys.argv[3]))
    elif len(sys.argv) > 1 and sys.argv[1] == "publish":
        make_clip()
        asyncio.run(run_publisher(sys.argv[2], sys.argv[3]))
    elif len(sys.argv) > 1 and sys.argv[1] == "probe":
        asyncio.run(run_probes(sys.argv[2], int(sys.argv[3])))
    elif len(sys.argv) > 1 and sys.argv[1] == "viewers":
        asyncio.run(run_viewers(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])))
    else:
        main()
