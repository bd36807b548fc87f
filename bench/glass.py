"""Glass to glass in Chromium: the latency the server adds, against a direct peer-to-peer call.

A page draws a clock on a canvas 30 times a second: the wall-clock millisecond it drew (24 bits) and a
checksum (8 bits) as a grid of 32 black or white cells, large enough to survive VP8 at any rate.
``canvas.captureStream()`` is sent two ways at once from that page: over WHIP to the server (a server
process of its own, bench/netserver.py), and over a direct RTCPeerConnection to a second page. A third
page plays the show over WHEP. Each player reads the cells back from every decoded frame
(requestVideoFrameCallback, drawImage, getImageData) and takes the clock's time then, less the time
drawn, as that frame's glass-to-glass latency (both pages read the same clock: performance.timeOrigin +
performance.now() in one browser). Frames whose checksum does not match are counted and left out.

Prints p50/p95 of each path, how many frames each read (and could not), and the server's added
latency (p50 and p95 of the server path less the direct one's); exits 1 when a path read too few
frames or the added p50 is over ``--target-ms`` (5 ms: a relay that forwards each packet as it
arrives adds about a millisecond).

    .venv/bin/python bench/glass.py                 # 20 s measured
    .venv/bin/python bench/glass.py --seconds 5     # a quick look
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import chromium
from bench.netserver import Server

# The clock page: draws the code, publishes window.clockStream (chromium.PUBLISH_JS does the WHIP).
CLOCK_JS = r"""() => {
  const canvas = document.createElement("canvas");
  canvas.width = 640; canvas.height = 480;
  document.body.appendChild(canvas);
  const g = canvas.getContext("2d");
  const cols = 8, rows = 4, w = canvas.width / cols, h = canvas.height / rows;
  const draw = () => {
    const t = Math.floor(performance.timeOrigin + performance.now()) % 16777216;
    const bytes = [t >> 16, (t >> 8) & 255, t & 255];
    const word = t * 256 + ((bytes[0] + bytes[1] + bytes[2]) & 255);
    for (let i = 0; i < 32; i++) {
      g.fillStyle = Math.floor(word / 2 ** (31 - i)) % 2 ? "#fff" : "#000";
      g.fillRect((i % cols) * w, Math.floor(i / cols) * h, w, h);
    }
  };
  draw();
  setInterval(draw, 1000 / 30);
  window.clockStream = canvas.captureStream();
}"""

# A player: reads the code from each decoded frame of ``stream`` into window.latencies.
READER_JS = r"""
window.latencies = []; window.unreadable = 0; window.framesSeen = 0;
window.readClock = (stream) => {
  const video = document.createElement("video");
  video.muted = true; video.autoplay = true; video.playsInline = true;
  video.srcObject = stream;
  document.body.appendChild(video);
  const canvas = document.createElement("canvas");
  canvas.width = 640; canvas.height = 480;
  const g = canvas.getContext("2d", {willReadFrequently: true});
  const cols = 8, rows = 4, w = 640 / cols, h = 480 / rows;
  const onFrame = () => {
    const now = performance.timeOrigin + performance.now();
    window.framesSeen++;
    g.drawImage(video, 0, 0, 640, 480);
    let word = 0;
    for (let i = 0; i < 32; i++) {
      const x = (i % cols) * w + w / 2 - 8, y = Math.floor(i / cols) * h + h / 2 - 8;
      const px = g.getImageData(x, y, 16, 16).data;
      let sum = 0;
      for (let j = 0; j < px.length; j += 4) sum += px[j];
      word = word * 2 + (sum / (px.length / 4) > 128 ? 1 : 0);
    }
    const t = Math.floor(word / 256), check = word % 256;
    const bytes = [t >> 16, (t >> 8) & 255, t & 255];
    if (((bytes[0] + bytes[1] + bytes[2]) & 255) !== check) {
      window.unreadable++;
    } else {
      const latency = (((Math.floor(now) % 16777216) - t + 16777216) % 16777216) + (now % 1);
      window.latencies.push(latency);
    }
    video.requestVideoFrameCallback(onFrame);
  };
  video.requestVideoFrameCallback(onFrame);
  video.play().catch(() => {});
};
"""

WHEP_JS = r"""async ({whep}) => {
  const pc = new RTCPeerConnection();
  pc.addTransceiver("video", {direction: "recvonly"});
  pc.addTransceiver("audio", {direction: "recvonly"});
  pc.ontrack = (e) => { if (e.track.kind === "video") window.readClock(new MediaStream([e.track])); };
  await pc.setLocalDescription();
  await new Promise((done) => {
    if (pc.iceGatheringState === "complete") return done();
    pc.addEventListener("icegatheringstatechange", () => pc.iceGatheringState === "complete" && done());
  });
  const resp = await fetch(whep, {method: "POST", body: pc.localDescription.sdp,
    headers: {"Content-Type": "application/sdp"}});
  if (resp.status !== 201) throw new Error("WHEP " + resp.status + ": " + await resp.text());
  await pc.setRemoteDescription({type: "answer", sdp: await resp.text()});
  window.player = pc;
}"""

GATHERED = """(pc) => new Promise((done) => {
  if (pc.iceGatheringState === "complete") return done();
  pc.addEventListener("icegatheringstatechange", () => pc.iceGatheringState === "complete" && done());
})"""

# The direct call: the clock page offers its canvas track, the peer page answers and reads it.
P2P_OFFER_JS = f"""async ({{mode}}) => {{
  const pc = new RTCPeerConnection();
  const encoding = {{}};
  if (mode) encoding.scalabilityMode = mode;
  const t = pc.addTransceiver(window.clockStream.getVideoTracks()[0],
    {{direction: "sendonly", sendEncodings: [encoding]}});
  const codecs = RTCRtpSender.getCapabilities("video").codecs;
  t.setCodecPreferences([...codecs.filter((c) => c.mimeType === "video/VP8"),
    ...codecs.filter((c) => c.mimeType === "video/rtx")]);
  await pc.setLocalDescription();
  await ({GATHERED})(pc);
  window.direct = pc;
  return pc.localDescription.sdp;
}}"""

P2P_ANSWER_JS = f"""async ({{offer}}) => {{
  const pc = new RTCPeerConnection();
  pc.ontrack = (e) => window.readClock(new MediaStream([e.track]));
  await pc.setRemoteDescription({{type: "offer", sdp: offer}});
  await pc.setLocalDescription();
  await ({GATHERED})(pc);
  window.player = pc;
  return pc.localDescription.sdp;
}}"""


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def measure(args: argparse.Namespace) -> int:
    from playwright.sync_api import sync_playwright

    server = Server(["127.0.0.1"])
    try:
        with sync_playwright() as pw:
            browser = chromium.launch(pw)
            try:
                pages = {name: browser.new_context().new_page() for name in ("clock", "server", "direct")}
                for page in pages.values():
                    page.goto(server.url() + "/healthz")  # the server's origin: WHIP/WHEP without CORS
                    page.evaluate(READER_JS)
                clock = pages["clock"]
                clock.evaluate(CLOCK_JS)
                chromium.publish(clock, server.whip(), server.key, args.mode, args.kbit, source="clockStream")
                pages["server"].evaluate(WHEP_JS, {"whep": server.whep()})
                offer = clock.evaluate(P2P_OFFER_JS, {"mode": args.mode})
                answer = pages["direct"].evaluate(P2P_ANSWER_JS, {"offer": offer})
                clock.evaluate("(sdp) => window.direct.setRemoteDescription({type: 'answer', sdp})", answer)
                for name in ("server", "direct"):
                    pages[name].wait_for_function("window.latencies.length > 30", timeout=30000)
                time.sleep(args.warmup)
                for name in ("server", "direct"):
                    pages[name].evaluate("() => { window.latencies = []; window.unreadable = 0; }")
                time.sleep(args.seconds)
                got: dict[str, dict[str, Any]] = {
                    name: pages[name].evaluate("() => ({lat: window.latencies, bad: window.unreadable})")
                    for name in ("server", "direct")
                }
                sent = chromium.sent(clock)
            finally:
                browser.close()
        # Whatever could hide a failure: resends, layer drops and switches (a loopback viewer stays at
        # the top layer, with nothing dropped).
        counters = {**server.metrics("liveshow_rtx"), **server.metrics("liveshow_relay_layer")}
    finally:
        server.stop()

    print(
        f"clock: 640x480 canvas at 30 fps, VP8 {args.mode or '(one layer)'} up to {args.kbit} kbit/s; "
        f"publisher sent {sent.get('frames')} frames ({sent.get('width')}x{sent.get('height')}); "
        f"{args.seconds:g} s measured after {args.warmup:g} s"
    )
    print("server: " + ", ".join(f"{k.removeprefix('liveshow_')} {v:g}" for k, v in counters.items()))
    problems = []
    for name, r in got.items():
        lat: list[float] = r["lat"]
        if len(lat) < args.seconds * 20:  # a 30 fps clock: far fewer frames read means something broke
            problems.append(f"{name}: only {len(lat)} frames read in {args.seconds:g} s")
        if not lat:
            print(f"{name:>7}: no frame read ({r['bad']} unreadable)")
            continue
        print(
            f"{name:>7}: {len(lat)} frames read, {r['bad']} unreadable; glass to glass "
            f"p50 {pct(lat, 50):.1f} ms, p95 {pct(lat, 95):.1f} ms, mean {statistics.fmean(lat):.1f} ms"
        )
    if problems:
        print("\n".join(f"  - {p}" for p in problems))
        print("verdict: FAIL")
        return 1
    via, direct = got["server"]["lat"], got["direct"]["lat"]
    added50 = pct(via, 50) - pct(direct, 50)
    added95 = pct(via, 95) - pct(direct, 95)
    held = added50 <= args.target_ms
    print(f"server adds: p50 {added50:.1f} ms, p95 {added95:.1f} ms (target p50 <= {args.target_ms:g} ms)")
    print(f"verdict: {'PASS' if held else 'FAIL'}")
    return 0 if held else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20.0, help="measured")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of play before measuring")
    parser.add_argument("--kbit", type=int, default=1500, help="the publisher's maximum rate")
    parser.add_argument(
        "--mode", default="", help="scalabilityMode of both senders (e.g. L1T3); none by default"
    )
    parser.add_argument("--target-ms", type=float, default=5.0, help="the most the server may add, p50")
    return measure(parser.parse_args())


if __name__ == "__main__":
    sys.exit(main())
