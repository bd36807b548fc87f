"""Headless Chromium for the network benchmarks and tests (Playwright's sync API), and a publisher
page: camera (Chromium's fake device) or a canvas, sent over WHIP as VP8 with temporal layers
(``scalabilityMode`` L1T3: frames alternate between three layers, 7.5 + 7.5 + 15 fps at 30 fps, and
each RTP packet's VP8 payload descriptor carries its layer's TID, which is what lets a relay send a
narrow link the lower layers only)."""

from __future__ import annotations

import os
from typing import Any

CHROMIUM = os.environ.get("LIVESHOW_CHROMIUM", "/usr/bin/chromium")
# Headless on this machine, no prompt for the fake camera, nothing of its own on the network, media
# that plays without a click: what the browser tests (tests/conftest.py) run too.
COMMON_ARGS = [
    "--use-fake-ui-for-media-stream",
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
]
ARGS = [
    "--use-fake-device-for-media-stream=fps=30",  # its default is 20 fps
    *COMMON_ARGS,
    # A hidden page's timers and frames would be throttled; these pages are measured.
    "--disable-background-timer-throttling",
    "--disable-renderer-backgrounding",
    "--disable-backgrounding-occluded-windows",
]

# Runs in a page of the server's origin: WHIP publish of ``source`` (a MediaStream made by the page,
# window[source], or the fake camera when absent) with VP8 preferred, RTX kept.
PUBLISH_JS = r"""async ({whip, key, mode, maxBitrate, startKbps, source}) => {
  const stream = (source && window[source]) || await navigator.mediaDevices.getUserMedia(
    {video: {width: 640, height: 480, frameRate: 30}, audio: true});
  const pc = new RTCPeerConnection();
  const video = stream.getVideoTracks()[0];
  const encoding = {maxBitrate};
  if (mode) encoding.scalabilityMode = mode;
  const vt = pc.addTransceiver(video, {direction: "sendonly", sendEncodings: [encoding]});
  for (const audio of stream.getAudioTracks()) pc.addTransceiver(audio, {direction: "sendonly"});
  const codecs = RTCRtpSender.getCapabilities("video").codecs;
  vt.setCodecPreferences([
    ...codecs.filter((c) => c.mimeType === "video/VP8"),
    ...codecs.filter((c) => c.mimeType === "video/rtx"),
  ]);
  await pc.setLocalDescription();
  await new Promise((done) => {
    if (pc.iceGatheringState === "complete") return done();
    pc.addEventListener("icegatheringstatechange", () => pc.iceGatheringState === "complete" && done());
  });
  const resp = await fetch(whip, {method: "POST", body: pc.localDescription.sdp,
    headers: {"Content-Type": "application/sdp", Authorization: "Bearer " + key}});
  if (resp.status !== 201) throw new Error("WHIP " + resp.status + ": " + await resp.text());
  // Hold the rate asked for: start there (instead of ramping up from 300 kbps over tens of seconds),
  // with no congestion feedback from the server to move it (its REMB falls when a busy machine delays
  // the server's reads, which would measure this machine's load, not the viewers' links).
  const vp8 = /^a=rtpmap:(\d+) VP8\/90000/m.exec(await resp.clone().text());
  let sdp = await resp.text();
  if (vp8 && startKbps) {
    sdp = sdp.split("\r\n").filter((line) => !/^a=rtcp-fb:\S+ (goog-remb|transport-cc)/.test(line)
      && !/^a=extmap:\d+\S* \S*(abs-send-time|transport-wide-cc)/.test(line)).join("\r\n");
    const rates = `x-google-start-bitrate=${startKbps};x-google-min-bitrate=${startKbps}`;
    const fmtp = new RegExp(`^a=fmtp:${vp8[1]} ([^\\r\\n]*)`, "m");
    sdp = fmtp.test(sdp) ? sdp.replace(fmtp, `a=fmtp:${vp8[1]} $1;${rates}`)
      : sdp.replace(vp8[0], `${vp8[0]}\r\na=fmtp:${vp8[1]} ${rates}`);
  }
  await pc.setRemoteDescription({type: "answer", sdp});
  window.publisher = pc;
}"""

# What the publisher's video sender has sent so far.
SENT_JS = """async () => {
  const out = {};
  (await window.publisher.getStats()).forEach((s) => {
    if (s.type === "outbound-rtp" && s.kind === "video") {
      Object.assign(out, {frames: s.framesSent, encoded: s.framesEncoded, bytes: s.bytesSent,
        mode: s.scalabilityMode || "", codec: s.codecId, limitation: s.qualityLimitationReason,
        width: s.frameWidth, height: s.frameHeight, target: s.targetBitrate});
    }
  });
  out.state = window.publisher.connectionState;
  return out;
}"""


def launch(playwright: Any) -> Any:
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)


def publish(
    page: Any,
    whip: str,
    key: str,
    mode: str = "L1T3",
    max_kbps: int = 800,
    start_kbps: int = 0,
    source: str = "",
) -> None:
    """Publish from ``page`` (already on the server's origin) and wait until its peer is connected;
    ``start_kbps`` holds the encoder at that rate, whatever the server's feedback (0: Chromium's own
    ramp-up and congestion control)."""
    args = {"whip": whip, "key": key, "mode": mode, "maxBitrate": max_kbps * 1000, "startKbps": start_kbps}
    page.evaluate(PUBLISH_JS, {**args, "source": source})
    page.wait_for_function("window.publisher.connectionState === 'connected'", timeout=20000)


def sent(page: Any) -> dict[str, Any]:
    stats: dict[str, Any] = page.evaluate(SENT_JS)
    return stats
