"""One show's media state: its relay, clock, current source (publisher or re-air) and viewers."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from liveshow.media.clock import ShowClock
from liveshow.media.relay import ShowRelay
from liveshow.media.viewer import Viewer

if TYPE_CHECKING:
    from liveshow.media.publisher import Publisher
    from liveshow.media.source import FrameSource


@dataclass(eq=False)
class ShowMedia:
    show_id: int
    relay: ShowRelay
    clock: ShowClock = field(default_factory=ShowClock)
    # scheduled | live | reconnecting | ended ("reconnecting" is announced, never stored)
    state: str = "scheduled"
    source: Publisher | FrameSource | None = None
    viewers: dict[str, Viewer] = field(default_factory=dict)
    codecs: dict[str, str] = field(default_factory=dict)  # what the (last) source sends
    grace: asyncio.Task[None] | None = None
    sinks_opened: bool = False
    owned: bool = False  # this process holds the show in the owner registry (liveshow.media.owners)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def request_keyframe(self) -> None:
        if self.source is not None:
            self.source.request_keyframe()
