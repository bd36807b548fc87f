"""Overload benchmark: twice a process's capacity in viewers at once, and the show it already serves.

One server process (capacity ``--capacity`` viewers: ``LIVESHOW_MAX_VIEWERS_PER_PROCESS``, the other
headroom settings at their defaults), one publisher (bench/relay.py's pre-encoded 720p30 VP8 clip plus
Opus), ``--existing`` viewers joined beforehand in one process, then ``--surge`` newcomers (default
twice the capacity) offered all at once from other processes. Printed, in the same run:

* the publisher's fps (frames it sent per second) and loss (packets the server's receiver reports
  lost, from its RTCP receiver reports) before the surge and during it;
* the existing viewers' fps, frame loss and video packet loss before and during the surge (bench/tally.py),
  and how many of them dropped;
* the newcomers: admitted (201 and connected), refused (503 + Retry-After, by Retry-After value) and
  failed (anything else), and the admitted ones' fps once the surge is over;
* the server's CPU over each window.

It exits non-zero if the publisher or the existing viewers were harmed (fps < 29 or loss >= 1 % in
either window, or an existing viewer dropped), if more newcomers were admitted than the capacity left
room for, or if nothing was refused (the surge did not test the limit).

    .venv/bin/python bench/overload.py                         # default: about 1 minute
    .venv/bin/python bench/overload.py --capacity 200 --existing 100 --surge-procs 3
    # the same surge with every headroom limit off, for comparison:
    .venv/bin/python bench/overload.py --setting max_viewers_per_process=0 --setting cpu_ceiling=0 \
        --setting loop_lag_ceiling_ms=0 --setting max_joining_viewers=0

The default capacity is small (40) so that the clients' own cost (a newcomer's ICE and DTLS cost its
process about what it costs the server) fits beside the server on a shared 2-core machine; the cap is a
setting, so the mechanism is the same at 300.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import logging
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack
from starlette.routing import Route

from bench import machine
from bench.relay import CLIP, ClipTrack, CountingViewer, Poller, av_caps, cpu_seconds, make_clip
from bench.services import free_port
from bench.tally import ViewerWindow, relay_step
from liveshow.media.peers import tolerate_late_consent

ADD_RETRY_S = 60.0

# ------------------------------------------------------------------ server


def serve(port: int, workdir: Path, capacity: int, extra: dict[str, str]) -> None:
    import uvicorn

    from liveshow.accounts.service import create_user
    from liveshow.app import create_app
    from liveshow.db import migrate
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
        port=port,
        # One address offers every viewer here: the per-address and per-show caps are not under test.
        max_whep_per_show=0,
        max_whep_per_address=0,
        limit_whep_address="off",
        # The headroom under test: the viewer cap from the command line, CPU, lag and joins as shipped.
        max_viewers_per_process=capacity,
    ).with_overrides(**coerce_values(extra))
    app = create_app(settings)
    app.router.routes.insert(0, Route("/bench/relay", relay_counts(app)))
    with app.state.ctx.db.session() as session:
        user = create_user(session, "bench", "correct horse battery")
        show = Show(seller_id=user.id or 0, title="bench", stream_key=secrets.token_urlsafe(16))
        session.add(show)
        session.commit()
        print(json.dumps({"show": show.id, "key": show.stream_key}), flush=True)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


def relay_counts(app: Any) -> Any:
    """A bench-only route: the relay's own counts, so a viewer starved by its own process (frames
    dropped at the server for a full socket) is told from a show that stopped."""
    from starlette.responses import JSONResponse

    async def handler(request: Any) -> Any:
        out: dict[str, Any] = {"frames_in": 0, "video_waiting": 0, "dropped_frames": 0, "outputs": 0}
        for media in app.state.ctx.media.shows.values():
            relay = media.relay
            out["frames_in"] += relay.frames_in
            out["keyframe_requests"] = relay.keyframes.sent
            for output in relay.outputs.values():
                out["outputs"] += 1
                out["dropped_frames"] += output.dropped_frames
                track = output.tracks.get("video")
                out["video_waiting"] += 1 if track is not None and track.waiting else 0
        return JSONResponse(out)

    return handler


# ------------------------------------------------------------------ publisher that reports


async def publisher_stats(pc: RTCPeerConnection) -> tuple[int, int]:
    """(video packets sent, video packets the server reports lost) so far."""
    sent = lost = 0
    for sender in pc.getSenders():
        if sender.track is None or sender.track.kind != "video":
            continue
        for stat in (await sender.getStats()).values():
            if stat.type == "outbound-rtp":
                sent = stat.packetsSent
            elif stat.type == "remote-inbound-rtp":
                lost = stat.packetsLost
    return sent, lost


async def run_publisher(url: str, key: str) -> None:
    """Publishes the clip; over stdin ``start`` marks, ``end`` prints frames sent, packets sent and
    packets the server reported lost since ``start``, and the window this process measured."""
    pc = RTCPeerConnection()
    clip = ClipTrack(CLIP)
    video = pc.addTransceiver(clip, direction="sendonly")
    video.sender._send_keyframe = clip.keyframe_now  # type: ignore[method-assign]
    pc.addTransceiver(AudioStreamTrack(), direction="sendonly")
    video.setCodecPreferences([c for c in av_caps("video") if c.mimeType in ("video/VP8", "video/rtx")])
    await pc.setLocalDescription(await pc.createOffer())
    # Consent as a browser or OBS keeps it (30 s of silence), not aioice's six 0.5 s checks: a
    # server answering late is not a server gone.
    tolerate_late_consent(pc)
    async with httpx.AsyncClient(timeout=30) as http:
        r = await http.post(
            url,
            content=pc.localDescription.sdp,
            headers={"Content-Type": "application/sdp", "Authorization": f"Bearer {key}"},
        )
    r.raise_for_status()
    await pc.setRemoteDescription(RTCSessionDescription(sdp=r.text, type="answer"))

    @pc.on("connectionstatechange")
    def changed() -> None:
        # To stderr (the run's own output): a publisher that lost its connection explains a show
        # that stopped.
        print(f"publisher connection {pc.connectionState} at {time.strftime('%H:%M:%S')}", file=sys.stderr)

    print("{}", flush=True)
    loop = asyncio.get_running_loop()
    mark: tuple[float, int, int, int] = (0.0, 0, 0, 0)
    while True:
        line = (await loop.run_in_executor(None, sys.stdin.readline)).strip()
        if not line or line == "quit":
            break
        sent, lost = await publisher_stats(pc)
        if line == "start":
            mark = (time.monotonic(), clip.i, sent, lost)
            print("{}", flush=True)
        elif line == "end":
            started, frames, sent0, lost0 = mark
            print(
                json.dumps(
                    {
                        "window": time.monotonic() - started,
                        "frames": clip.i - frames,
                        "sent": sent - sent0,
                        "lost": lost - lost0,
                    }
                ),
                flush=True,
            )
    await pc.close()


# ------------------------------------------------------------------ viewers


async def join(viewer: CountingViewer, url: str) -> tuple[str, Any]:
    """('admitted', None), ('refused', Retry-After) or ('failed', what went wrong)."""
    try:
        await viewer.join(url)
    except httpx.HTTPStatusError as exc:
        await viewer.pc.close()
        if exc.response.status_code == 503:
            try:
                cause = exc.response.json().get("cause", "-")
            except ValueError:
                cause = "-"
            return "refused", f"{cause}:{exc.response.headers.get('retry-after', '-')}"
        return "failed", f"HTTP {exc.response.status_code}"
    except Exception as exc:
        await viewer.pc.close()
        return "failed", type(exc).__name__
    return "admitted", None


async def run_viewers(url: str) -> None:
    """Viewers driven over stdin: ``add K`` joins K (20 at a time, as bench/relay.py; one refused tries
    again after its Retry-After, as the player does, for up to ADD_RETRY_S), ``surge K`` offers K at
    once (no retries: the answers are what is measured), ``start``/``end`` mark and report every
    joined viewer's counts, ``quit`` leaves."""
    viewers: list[CountingViewer] = []
    poller = Poller(0.02)
    loop = asyncio.get_running_loop()
    started = 0.0
    while True:
        words = (await loop.run_in_executor(None, sys.stdin.readline)).split()
        if not words or words[0] == "quit":
            break
        if words[0] in ("add", "surge"):
            fresh = [CountingViewer(poller) for _ in range(int(words[1]))]
            step = 20 if words[0] == "add" else len(fresh)
            outcomes: collections.Counter[str] = collections.Counter()
            retry_after: collections.Counter[str] = collections.Counter()
            failures: collections.Counter[str] = collections.Counter()
            t0 = time.monotonic()
            retrying = words[0] == "add"
            while fresh:
                again: list[CountingViewer] = []
                wait = 0
                for i in range(0, len(fresh), step):
                    batch = fresh[i : i + step]
                    results = await asyncio.gather(*(join(v, url) for v in batch))
                    for viewer, (outcome, detail) in zip(batch, results, strict=True):
                        outcomes[outcome] += 1
                        if outcome == "admitted":
                            viewers.append(viewer)
                        elif outcome == "refused":
                            retry_after[str(detail)] += 1
                            again.append(CountingViewer(poller))
                            wait = max(wait, int(str(detail).rsplit(":", 1)[-1]))
                        else:
                            failures[str(detail)] += 1
                fresh = again if retrying and time.monotonic() - t0 < ADD_RETRY_S else []
                if fresh:
                    await asyncio.sleep(wait)
            print(
                json.dumps(
                    {
                        **{k: outcomes[k] for k in ("admitted", "refused", "failed")},
                        "retry_after": dict(retry_after),
                        "failures": dict(failures),
                        "seconds": time.monotonic() - t0,
                    }
                ),
                flush=True,
            )
        elif words[0] == "start":
            started = time.monotonic()
            for v in viewers:
                v.mark("start")
            print("{}", flush=True)
        elif words[0] == "end":
            window = time.monotonic() - started
            out = []
            for v in viewers:
                out.append({**v.since_start(window), "connected": v.pc.connectionState == "connected"})
            print(json.dumps({"viewers": out}), flush=True)
    for v in viewers:
        await v.pc.close()


# ------------------------------------------------------------------ orchestration


def spawn(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, __file__, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )


def send(proc: subprocess.Popen[str], line: str) -> None:
    assert proc.stdin is not None
    proc.stdin.write(line + "\n")
    proc.stdin.flush()


def reply(proc: subprocess.Popen[str]) -> Any:
    assert proc.stdout is not None
    return json.loads(proc.stdout.readline())


def ask(proc: subprocess.Popen[str], line: str) -> Any:
    send(proc, line)
    return reply(proc)


def viewer_figures(data: list[dict[str, Any]]) -> dict[str, Any]:
    windows = [ViewerWindow(v["frames"], v["expected"], v["window"]) for v in data]
    fps, loss = relay_step(windows, 0, max(len(data), 1))
    packets = sum(v["packets"] for v in data)
    lost = sum(v["lost"] for v in data)
    return {
        "n": len(data),
        "fps": fps,
        "loss": loss,
        "packet_loss": lost / max(lost + packets, 1),
        "dropped": sum(1 for v in data if not v["connected"]),
    }


def publisher_figures(data: dict[str, Any]) -> dict[str, Any]:
    return {
        "fps": data["frames"] / data["window"],
        "loss": data["lost"] / max(data["sent"], 1),
        "sent": data["sent"],
        "lost": data["lost"],
    }


def harmed(label: str, figures: dict[str, Any]) -> list[str]:
    out = []
    if figures["fps"] < 29:
        out.append(f"{label}: {figures['fps']:.1f} fps")
    if figures["loss"] >= 0.01:
        out.append(f"{label}: loss {figures['loss']:.2%}")
    if figures.get("dropped"):
        out.append(f"{label}: {figures['dropped']} dropped")
    return out


def window(
    publisher: subprocess.Popen[str],
    groups: list[subprocess.Popen[str]],
    pids: list[int],
    seconds: float,
    during: list[subprocess.Popen[str]] | None = None,
    surge: str = "",
) -> tuple[dict[str, Any], list[list[dict[str, Any]]], list[float], list[dict[str, Any]]]:
    """One measurement window over the publisher and ``groups``; with ``during``, the surge is sent to
    those processes at its start and the window lasts until they have all answered (at least
    ``seconds``). Returns the publisher's figures, each group's viewers, the CPU each of ``pids``
    used (server first), the surge's replies."""
    ask(publisher, "start")
    for proc in groups:
        ask(proc, "start")
    c0, t0 = [cpu_seconds(pid) for pid in pids], time.monotonic()
    replies: list[dict[str, Any]] = []
    if during:
        for proc, line in zip(during, surge.split("|"), strict=True):
            send(proc, line)
        replies = [reply(proc) for proc in during]
    rest = seconds - (time.monotonic() - t0)
    if rest > 0:
        time.sleep(rest)
    elapsed = time.monotonic() - t0
    cpu = [(cpu_seconds(pid) - c) / elapsed for pid, c in zip(pids, c0, strict=True)]
    pub = publisher_figures(ask(publisher, "end"))
    viewers = [ask(proc, "end")["viewers"] for proc in groups]
    return pub, viewers, cpu, replies


def udp_drops(pid: int) -> tuple[int, int]:
    """(datagrams the kernel dropped on ``pid``'s UDP sockets for a full receive buffer, the largest
    receive queue now in bytes): a process whose loop reads too late loses packets here."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    drops = queue = 0
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        with open(table) as f:
            for line in f.readlines()[1:]:
                fields = line.split()
                if fields[9] in inodes:
                    drops += int(fields[-1])
                    queue = max(queue, int(fields[4].split(":")[1], 16))
    return drops, queue


def server_view(base: str, show: int) -> str:
    """What the server says of itself: its viewers (connected or joining: tells a viewer the server
    dropped from one whose own process lost it) and the headroom it measures (/metrics)."""
    viewers = int(httpx.get(f"{base}/api/shows/{show}/media", timeout=30).json()["viewers"])
    figures: dict[str, float] = {}
    for line in httpx.get(f"{base}/metrics", timeout=30).text.splitlines():
        name, _, value = line.partition(" ")
        if name in (
            "liveshow_headroom_cpu",
            "liveshow_headroom_loop_lag_seconds",
            "liveshow_headroom_admitting",
        ):
            figures[name] = float(value)
    relay = httpx.get(f"{base}/bench/relay", timeout=30).json()
    return (
        f"| relay: frames in {relay['frames_in']}, outputs {relay['outputs']} "
        f"({relay['video_waiting']} waiting for a keyframe), frames dropped for a full socket "
        f"{relay['dropped_frames']}, keyframe requests {relay.get('keyframe_requests', 0)} "
        f"| server: {viewers} viewers, smoothed cpu {figures.get('liveshow_headroom_cpu', -1) * 100:.0f}%, "
        f"loop lag {figures.get('liveshow_headroom_loop_lag_seconds', -1) * 1000:.0f} ms, "
        f"{'admitting' if figures.get('liveshow_headroom_admitting') else 'refusing'}"
    )


def line_for(label: str, pub: dict[str, Any], existing: dict[str, Any], cpu: list[float]) -> str:
    return (
        f"{label:7} publisher {pub['fps']:4.1f} fps, loss {pub['loss'] * 100:4.2f}% "
        f"({pub['lost']} of {pub['sent']} packets) | existing {existing['n']} viewers "
        f"{existing['fps']:4.1f} fps, frame loss {existing['loss'] * 100:4.2f}%, "
        f"video pkt loss {existing['packet_loss'] * 100:4.2f}%, dropped {existing['dropped']} | "
        f"cpu: server {cpu[0] * 100:3.0f}%, publisher {cpu[1] * 100:3.0f}%, existing viewers' process "
        f"{cpu[2] * 100:3.0f}%, newcomers' processes {sum(cpu[3:]) * 100:3.0f}%"
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--capacity", type=int, default=40, help="the process's viewer cap")
    parser.add_argument("--existing", type=int, default=20, help="viewers watching before the surge")
    parser.add_argument("--surge", type=int, default=0, help="newcomers at once (default: 2 x capacity)")
    parser.add_argument("--surge-procs", type=int, default=2, help="processes the newcomers come from")
    parser.add_argument("--window", type=float, default=5.0, help="seconds of each measurement window")
    parser.add_argument(
        "--setting", action="append", default=[], metavar="KEY=VALUE", help="another server setting"
    )
    args = parser.parse_args()
    surge_n = args.surge or 2 * args.capacity
    make_clip()
    print(machine.describe(), f"load average {os.getloadavg()[0]:.1f}", flush=True)
    started = time.monotonic()
    port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix="liveshow-overload-"))
    extra = dict(item.split("=", 1) for item in args.setting)
    server = spawn("serve", str(port), str(workdir), str(args.capacity), json.dumps(extra))
    procs: list[subprocess.Popen[str]] = [server]
    failures: list[str] = []
    try:
        info = reply(server)
        base = f"http://127.0.0.1:{port}"
        time.sleep(0.5)
        publisher = spawn("publish", f"{base}/whip/{info['show']}", info["key"])
        procs.append(publisher)
        reply(publisher)
        time.sleep(2.0)
        whep = f"{base}/whep/{info['show']}"
        existing = spawn("viewers", whep)
        surgers = [spawn("viewers", whep) for _ in range(args.surge_procs)]
        procs += [existing, *surgers]
        pids = [p.pid for p in (server, publisher, existing, *surgers)]
        joined = ask(existing, f"add {args.existing}")
        print(
            f"capacity {args.capacity} viewers; {joined['admitted']} existing viewers joined in "
            f"{joined['seconds']:.1f} s ({joined['refused']} refusals retried {joined['retry_after']}, "
            f"{joined['failed']} failed); "
            f"surge of {surge_n} at once "
            f"from {args.surge_procs} processes",
            flush=True,
        )
        if joined["admitted"] != args.existing:  # refusals were retried for ADD_RETRY_S
            failures.append(f"only {joined['admitted']} of {args.existing} existing viewers joined")
        time.sleep(2.0)  # first keyframes out, queues settle

        pub0, (ex0,), cpu0, _ = window(publisher, [existing], pids, args.window)
        before = viewer_figures(ex0)
        print(
            line_for("before", pub0, before, cpu0),
            server_view(base, info["show"]),
            "| server UDP drops {}, largest receive queue {} bytes".format(*udp_drops(server.pid)),
            flush=True,
        )

        shares = [
            surge_n // args.surge_procs + (1 if i < surge_n % args.surge_procs else 0)
            for i in range(args.surge_procs)
        ]
        pub1, (ex1,), cpu1, replies = window(
            publisher, [existing], pids, args.window, surgers, "|".join(f"surge {n}" for n in shares)
        )
        during = viewer_figures(ex1)
        print(
            line_for("during", pub1, during, cpu1),
            server_view(base, info["show"]),
            "| server UDP drops {}, largest receive queue {} bytes".format(*udp_drops(server.pid)),
            flush=True,
        )

        admitted = sum(r["admitted"] for r in replies)
        refused = sum(r["refused"] for r in replies)
        failed = sum(r["failed"] for r in replies)
        retry: collections.Counter[str] = collections.Counter()
        why: collections.Counter[str] = collections.Counter()
        for r in replies:
            retry.update(r["retry_after"])
            why.update(r["failures"])
        print(
            f"surge   {surge_n} newcomers: admitted {admitted}, refused {refused} (503, by cause:Retry-After "
            f"{dict(sorted(retry.items()))}), failed {failed} {dict(why) if why else ''}; "
            f"answered within {max(r['seconds'] for r in replies):.1f} s",
            flush=True,
        )

        time.sleep(2.0)
        pub2, groups, cpu2, _ = window(publisher, [existing, *surgers], pids, args.window)
        after = viewer_figures(groups[0])
        newcomers = viewer_figures([v for g in groups[1:] for v in g])
        print(
            line_for("after", pub2, after, cpu2),
            server_view(base, info["show"]),
            "| server UDP drops {}, largest receive queue {} bytes".format(*udp_drops(server.pid)),
            flush=True,
        )
        print(
            f"after   admitted newcomers {newcomers['n']}: {newcomers['fps']:4.1f} fps, frame loss "
            f"{newcomers['loss'] * 100:4.2f}%, dropped {newcomers['dropped']}",
            flush=True,
        )

        failures += harmed(
            "publisher before the surge (a baseline that fails: the machine is busy)", pub0
        ) + harmed("publisher during", pub1)
        failures += harmed("existing viewers before the surge (baseline)", before) + harmed(
            "existing viewers during", during
        )
        room = args.capacity - joined["admitted"]
        if admitted > room:
            failures.append(f"{admitted} newcomers admitted, but the capacity left room for {room}")
        if not refused:
            failures.append("nothing was refused: the surge did not reach the process's limit")
    finally:
        for proc in procs:
            if proc.poll() is None and proc is not server:
                try:
                    send(proc, "quit")
                except OSError:
                    pass
        for proc in procs[1:]:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        server.kill()
        server.wait()
    print(f"run took {time.monotonic() - started:.0f} s; load average {os.getloadavg()[0]:.1f}")
    for reason in failures:
        print(f"FAILED: {reason}")
    return 1 if failures else 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        serve(int(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4]), json.loads(sys.argv[5]))
    elif len(sys.argv) > 1 and sys.argv[1] == "publish":
        # Why a publisher's connection ends (consent, DTLS) goes to the run's output.
        logging.basicConfig(
            level=logging.WARNING, stream=sys.stderr, format="publisher %(name)s: %(message)s"
        )
        for name in ("aioice", "aiortc.rtcdtlstransport", "aiortc.rtcicetransport", "liveshow"):
            logging.getLogger(name).setLevel(logging.INFO)
        make_clip()
        asyncio.run(run_publisher(sys.argv[2], sys.argv[3]))
    elif len(sys.argv) > 1 and sys.argv[1] == "viewers":
        asyncio.run(run_viewers(sys.argv[2]))
    else:
        sys.exit(main())
