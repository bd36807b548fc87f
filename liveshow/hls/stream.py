"""One show's HLS rendition as a MediaSink on its relay: frames in, the window updated, waiters woken.

``on_frame`` runs on the relay's event loop. Unlike the recorder (PyAV and file writes, so a thread),
the work here is copying the frame's bytes into MP4 form and, every 200 ms, a part's boxes around
them: tens of microseconds per frame (``bench/hls.py`` prints it). Requests that wait for a part
(blocking playlist reload, preload hints) wait on futures woken when a part completes.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable

from liveshow.hls.assembler import PART_TARGET, TARGET_DURATION, Assembler
from liveshow.hls.playlist import render
from liveshow.hls.window import Window
from liveshow.media.frames import EncodedFrame


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


class HlsStream:
    def __init__(
        self,
        show_id: int,
        audio: bool,
        want_keyframe: Callable[[], None],
        on_close: Callable[[HlsStream], None] | None = None,
        clock_ms: Callable[[], int] = wall_ms,
    ) -> None:
        self.show_id = show_id
        # In every URL of this stream: a restart never reuses a URL that caches may still hold.
        self.key = secrets.token_hex(6)
        self.window = Window()
        self.assembler = Assembler(self.window, audio)
        self.public: bool | None = None  # set once the show is looked up; only public shows are served
        self._want_keyframe = want_keyframe
        self._on_close = on_close
        self._clock_ms = clock_ms
        self._waiters: set[asyncio.Future[None]] = set()
        self.closed = False
        self.frames = 0
        self.mux_ns = 0  # time spent in on_frame, for the benchmark

    # ------------------------------------------------------------ MediaSink

    def on_frame(self, frame: EncodedFrame) -> None:
        if self.closed:
            return
        began = time.perf_counter_ns()
        self.frames += 1
        if frame.kind == "audio":
            self.assembler.audio_frame(frame)
        else:
            changed = self.assembler.video(frame, self._clock_ms())
            if self.assembler.wants_keyframe():
                self._want_keyframe()
            if changed:
                self._wake()
        self.mux_ns += time.perf_counter_ns() - began

    def set_public(self, public: bool) -> None:
        """The show's lookup answered; requests waiting for it go on."""
        self.public = public
        self._wake()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.assembler.finish()
        self._wake()
        if self._on_close is not None:
            self._on_close(self)

    # ------------------------------------------------------------ serving

    def playlist(self) -> str:
        return render(self.window, self.key, TARGET_DURATION, PART_TARGET)

    async def until(self, ready: Callable[[], bool], timeout: float) -> bool:
        """Wait until ``ready()`` holds (checked whenever a part completes) or ``timeout`` passes."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not ready():
            left = deadline - loop.time()
            if left <= 0 or self.closed:
                return ready()
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiters.add(waiter)
            try:
                await asyncio.wait_for(asyncio.shield(waiter), left)
            except TimeoutError:
                pass
            finally:
                self._waiters.discard(waiter)
        return True

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, set()
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)
