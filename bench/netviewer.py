"""One WHEP viewer as a process of its own, so it can run inside a network namespace (bench/netns.py):
an aiortc viewer that decodes what it gets (bench/lossy.py: it drops a share of the incoming video
RTP when told to, and asks again for what is still missing, as browsers do).

    python bench/netviewer.py WHEP_URL [--loss 0.05 --seed 5] [--no-rtx]

It prints one JSON line once its first video frame is decoded ({"playing": true}, or {"error": ...}),
then answers each line on stdin: ``report`` with what it saw so far (the monotonic time of every
decoded video frame, frames per kind, packets it dropped, NACKs it sent again), ``quit`` (or end of
input) by leaving the show (DELETE) and exiting. CLOCK_MONOTONIC is the machine's, so the times
compare across processes and namespaces.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import select
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.lossy import LossyWatcher

FIRST_FRAME_TIMEOUT = 30.0


def report(viewer: LossyWatcher) -> dict[str, Any]:
    return {
        "video_times": viewer.video_times,
        "frames": viewer.frames,
        "sizes": sorted(viewer.sizes),
        "dropped": viewer.dropped,
        "dropped_video": viewer.dropped_video,
        "nacked_again": viewer.nacked_again,
        "rtx_received": viewer.rtx_received,
        "missing_now": viewer.missing_now,
        "keyframes_asked": viewer.keyframes_asked,
        "resyncs": viewer.resyncs,
        "given_up": viewer.given_up,
        "rtt": round(viewer.rtt, 3),
        "connection": viewer.pc.connectionState,
    }


def say(line: dict[str, Any]) -> None:
    print(json.dumps(line), flush=True)


async def run(url: str, loss: float, seed: int, codec: str, rtx: bool) -> int:
    viewer = LossyWatcher(loss, seed, codec, rtx=rtx)
    try:
        try:
            await viewer.watch(url)
            deadline = asyncio.get_running_loop().time() + FIRST_FRAME_TIMEOUT
            while not viewer.video_times:
                if asyncio.get_running_loop().time() > deadline:
                    state = viewer.pc.connectionState
                    raise TimeoutError(f"no video frame in {FIRST_FRAME_TIMEOUT:g} s (connection {state})")
                await asyncio.sleep(0.05)
        except Exception as exc:  # the parent reads why, instead of a traceback on a pipe
            say({"error": f"{type(exc).__name__}: {exc}"})
            return 1
        say({"playing": True})
        loop = asyncio.get_running_loop()
        while True:
            command = (await loop.run_in_executor(None, sys.stdin.readline)).strip()
            if command == "report":
                say(report(viewer))
            elif command in ("quit", ""):
                return 0
            else:
                say({"error": f"unknown command {command!r}"})
    finally:
        await viewer.close()


class ViewerProcess:
    """The parent's side: ``argv`` runs this script (under ``ip netns exec`` for a narrow link)."""

    def __init__(self, name: str, argv: list[str]) -> None:
        self.name = name
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    @staticmethod
    def argv(url: str, loss: float = 0.0, seed: int = 1, rtx: bool = True) -> list[str]:
        extra = [] if rtx else ["--no-rtx"]
        return [sys.executable, __file__, url, "--loss", str(loss), "--seed", str(seed), *extra]

    def _line(self, timeout: float) -> dict[str, Any]:
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline() if ready else ""
        if not line:
            raise RuntimeError(f"viewer {self.name}: no answer in {timeout:g} s (exit {self.proc.poll()})")
        answer: dict[str, Any] = json.loads(line)
        if "error" in answer:
            raise RuntimeError(f"viewer {self.name}: {answer['error']}")
        return answer

    def wait_playing(self, timeout: float = FIRST_FRAME_TIMEOUT + 15) -> None:
        self._line(timeout)

    def report(self) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write("report\n")
        self.proc.stdin.flush()
        return self._line(15)

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.write("quit\n")
                self.proc.stdin.flush()
                self.proc.wait(15)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait(10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("url")
    parser.add_argument("--loss", type=float, default=0.0, help="share of incoming video RTP dropped")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--codec", default="VP8", help="offered alone when --no-rtx")
    parser.add_argument("--no-rtx", action="store_true", help="offer the codec without RTX")
    args = parser.parse_args()
    return asyncio.run(run(args.url, args.loss, args.seed, args.codec, not args.no_rtx))


if __name__ == "__main__":
    sys.exit(main())
