"""A WHIP/WHEP client on aiortc: publish a generated test pattern, or watch a show.

Used by the tests and ``bench/relay.py``, and handy to check a deployment:
``python -m liveshow.signaling.client publish https://host/whip/1 STREAM_KEY``.
"""

from __future__ import annotations

import argparse
import asyncio
import fractions
import time
from typing import Any

import av
import httpx
from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack, MediaStreamError, MediaStreamTrack, VideoStreamTrack


class PatternTrack(VideoStreamTrack):
    """A moving bar over a gradient, so every frame differs (encoders cannot skip them)."""

    def __init__(self, width: int = 320, height: int = 240, fps: int = 30) -> None:
        super().__init__()
        self.width, self.height, self.fps = width, height, fps
        self._ramp = bytes(int(i * 255 / max(width - 1, 1)) for i in range(width))
        self._chroma = b"\x80" * (width // 2 * height // 2)
        self._count = 0
        self._began: float | None = None

    async def recv(self) -> av.VideoFrame:
        if self._began is None:
            self._began = time.time()
        self._count += 1
        wait = self._began + self._count / self.fps - time.time()
        if wait > 0:
            await asyncio.sleep(wait)
        row = bytearray(self._ramp)
        x = (self._count * 7) % max(self.width - 16, 1)
        row[x : x + 16] = b"\xff" * 16
        frame = av.VideoFrame(self.width, self.height, "yuv420p")
        frame.planes[0].update(bytes(row) * self.height)
        frame.planes[1].update(self._chroma)
        frame.planes[2].update(self._chroma)
        frame.pts = int(self._count * 90000 / self.fps)
        frame.time_base = fractions.Fraction(1, 90000)
        return frame


# An explicit empty list: by default aiortc would ask a public STUN server on the internet.
NO_ICE_SERVERS = RTCConfiguration(iceServers=[])


def prefer(pc: RTCPeerConnection, kind: str, codec: str | None) -> None:
    if codec is None:
        return
    caps = RTCRtpSender.getCapabilities(kind).codecs
    chosen = [c for c in caps if c.mimeType.lower() == f"{kind}/{codec}".lower()]
    rtx = [c for c in caps if c.mimeType.lower().endswith("/rtx")]
    for transceiver in pc.getTransceivers():
        if transceiver.kind == kind:
            transceiver.setCodecPreferences(chosen + rtx)


async def _exchange(url: str, offer: str, headers: dict[str, str]) -> tuple[str, str]:
    # WHEP may redirect (307) to the server process holding the show; the session URL is relative
    # to the URL that answered.
    async with httpx.AsyncClient(timeout=20, follow_redirects=True) as http:
        resp = await http.post(url, content=offer, headers={"Content-Type": "application/sdp", **headers})
    if resp.status_code != 201:
        raise RuntimeError(f"{url}: {resp.status_code} {resp.text}")
    location = str(resp.url.join(resp.headers["location"]))
    return resp.text, location


async def publish(
    url: str,
    stream_key: str,
    video: MediaStreamTrack | None = None,
    audio: bool = True,
    codec: str | None = None,
) -> tuple[RTCPeerConnection, str]:
    """Publish through WHIP; returns the peer and the session URL (DELETE it to stop)."""
    pc = RTCPeerConnection(NO_ICE_SERVERS)
    pc.addTransceiver(video or PatternTrack(), direction="sendonly")
    if audio:
        pc.addTransceiver(AudioStreamTrack(), direction="sendonly")
    prefer(pc, "video", codec)
    await pc.setLocalDescription(await pc.createOffer())
    answer, location = await _exchange(
        url, pc.localDescription.sdp, {"Authorization": f"Bearer {stream_key}"}
    )
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
    return pc, location


class Watcher:
    """A WHEP viewer that decodes what it receives and counts frames."""

    def __init__(self) -> None:
        self.pc = RTCPeerConnection(NO_ICE_SERVERS)
        self.frames: dict[str, int] = {"video": 0, "audio": 0}
        self.first_frame_at: float | None = None
        self.started_at = 0.0
        self.location = ""
        self._tasks: list[asyncio.Task[None]] = []
        self.sizes: set[tuple[int, int]] = set()
        # time.monotonic() of each decoded video frame: frame rates and freezes over any window
        self.video_times: list[float] = []

    async def watch(self, url: str) -> None:
        self.started_at = time.monotonic()
        self.pc.addTransceiver("video", direction="recvonly")
        self.pc.addTransceiver("audio", direction="recvonly")

        @self.pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            self._tasks.append(asyncio.ensure_future(self._consume(track)))

        await self.pc.setLocalDescription(await self.pc.createOffer())
        answer, self.location = await _exchange(url, self.pc.localDescription.sdp, {})
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))

    async def _consume(self, track: MediaStreamTrack) -> None:
        try:
            while True:
                frame: Any = await track.recv()
                self.frames[track.kind] += 1
                if track.kind == "video":
                    self.video_times.append(time.monotonic())
                    self.sizes.add((frame.width, frame.height))
                    if self.first_frame_at is None:
                        self.first_frame_at = time.monotonic()
        except MediaStreamError:
            pass

    async def close(self, delete: bool = True) -> None:
        if delete and self.location:
            async with httpx.AsyncClient(timeout=10) as http:
                await http.delete(self.location)
        await self.pc.close()
        for task in self._tasks:
            task.cancel()


async def _main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("mode", choices=["publish", "watch"])
    parser.add_argument("url")
    parser.add_argument("stream_key", nargs="?", default="")
    parser.add_argument("--codec", choices=["VP8", "H264"])
    parser.add_argument("--seconds", type=float, default=30)
    args = parser.parse_args()
    if args.mode == "publish":
        pc, location = await publish(args.url, args.stream_key, codec=args.codec)
        print("publishing:", location)
        await asyncio.sleep(args.seconds)
        async with httpx.AsyncClient() as http:
            await http.delete(location)
        await pc.close()
    else:
        watcher = Watcher()
        await watcher.watch(args.url)
        await asyncio.sleep(args.seconds)
        print("frames:", watcher.frames)
        await watcher.close()


if __name__ == "__main__":
    asyncio.run(_main())
