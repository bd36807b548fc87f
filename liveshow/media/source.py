"""A frame source that stands in for a publisher: a re-air pushes a recording's frames through it."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable

from liveshow.media.frames import EncodedFrame
from liveshow.media.relay import ShowRelay


class FrameSource:
    """Push EncodedFrames (pts on the show clock, monotonic per kind) into a show's relay.

    ``on_keyframe_request`` is called when viewers need a keyframe (a re-air can seek to one).
    ``await close()`` detaches it like a publisher leaving: the show goes "reconnecting" and ends after
    the grace period unless another source comes; ``await close(end_show=True)`` ends the show.
    """

    def __init__(
        self,
        show_id: int,
        relay: ShowRelay,
        codecs: dict[str, str],
        detach: Callable[[FrameSource, bool], Awaitable[None]],
    ) -> None:
        self.session_id = secrets.token_urlsafe(24)
        self.show_id = show_id
        self.codecs = dict(codecs)
        self.on_keyframe_request: Callable[[], None] | None = None
        self._relay = relay
        self._detach = detach
        self.closed = False

    def push(self, frame: EncodedFrame) -> None:
        if not self.closed:
            self._relay.push(frame)

    def request_keyframe(self) -> None:
        if self.on_keyframe_request is not None:
            self.on_keyframe_request()

    async def close(self, end_show: bool = False) -> None:
        if not self.closed:
            self.closed = True
            await self._detach(self, end_show)
