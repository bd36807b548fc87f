"""One show's LL-HLS window: the parts and segments made so far, bounded, and the blocking-reload rule.

Pure state: no I/O, no clock. Parts arrive in order; a segment is the run of parts from one cut to the
next, and its bytes are its parts' bytes one after the other (a CMAF segment may hold several
fragments). Old segments fall off the front (``max_segments``); only the last ``part_segments``
segments keep their parts listed, as the playlist lists parts only near the live edge.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

# _HLS_part may run ahead of the last part by this many (RFC 8216bis 6.2.5.2, the Advance Part Limit).
ADVANCE_PART_LIMIT = 3
# _HLS_msn may run ahead of the last segment by this many.
ADVANCE_MSN_LIMIT = 2


@dataclass(frozen=True, slots=True)
class Part:
    duration: float  # seconds
    independent: bool  # starts with a keyframe
    data: bytes


@dataclass(slots=True)
class Segment:
    msn: int
    init_id: int
    discontinuity: bool  # the stream restarted (codec or picture size changed) before this segment
    wall_ms: int  # when its first frame reached the server (EXT-X-PROGRAM-DATE-TIME)
    parts: list[Part] = field(default_factory=list)
    closed: bool = False
    data: bytes | None = None  # set when closed

    @property
    def duration(self) -> float:
        return sum(p.duration for p in self.parts)


class Reload(Enum):
    READY = "ready"
    WAIT = "wait"
    BAD = "bad"


class Window:
    def __init__(self, max_segments: int = 8, part_segments: int = 3) -> None:
        self.max_segments = max_segments
        self.part_segments = part_segments
        self.segments: list[Segment] = []
        self.inits: dict[int, bytes] = {}
        self.discontinuity_sequence = 0
        self.ended = False

    # ------------------------------------------------------------ writing

    def add_init(self, init_id: int, data: bytes) -> None:
        self.inits[init_id] = data

    def open_segment(self, init_id: int, discontinuity: bool, wall_ms: int) -> Segment:
        assert not self.segments or self.segments[-1].closed, "the open segment must be closed first"
        msn = self.segments[-1].msn + 1 if self.segments else 0
        segment = Segment(msn=msn, init_id=init_id, discontinuity=discontinuity, wall_ms=wall_ms)
        self.segments.append(segment)
        return segment

    def add_part(self, part: Part) -> tuple[int, int]:
        segment = self.segments[-1]
        assert not segment.closed, "no open segment"
        segment.parts.append(part)
        return segment.msn, len(segment.parts) - 1

    def close_segment(self) -> None:
        segment = self.segments[-1]
        if segment.closed:
            return
        segment.closed = True
        segment.data = b"".join(p.data for p in segment.parts)
        self._trim()

    def _trim(self) -> None:
        closed = [s for s in self.segments if s.closed]
        while len(closed) > self.max_segments:
            gone = self.segments.pop(0)
            closed.pop(0)
            if self.segments and self.segments[0].discontinuity:
                self.discontinuity_sequence += 1
            del gone
        # Parts far from the live edge are never asked for again: their bytes live on in the segment.
        for segment in closed[: -self.part_segments]:
            if segment.parts and segment.parts[0].data:
                segment.parts = [Part(p.duration, p.independent, b"") for p in segment.parts]
        used = {s.init_id for s in self.segments}
        for init_id in [i for i in self.inits if i not in used]:
            del self.inits[init_id]

    # ------------------------------------------------------------ reading

    @property
    def first_msn(self) -> int:
        return self.segments[0].msn if self.segments else 0

    def last_part(self) -> tuple[int, int] | None:
        """(msn, index) of the newest part, None before the first."""
        for segment in reversed(self.segments):
            if segment.parts:
                return segment.msn, len(segment.parts) - 1
        return None

    def segment(self, msn: int) -> Segment | None:
        index = msn - self.first_msn
        if 0 <= index < len(self.segments):
            return self.segments[index]
        return None

    def segment_data(self, msn: int) -> bytes | None:
        segment = self.segment(msn)
        return segment.data if segment is not None else None

    def part_data(self, msn: int, index: int) -> bytes | None:
        segment = self.segment(msn)
        if segment is None or not 0 <= index < len(segment.parts):
            return None
        return segment.parts[index].data or None

    def part_state(self, msn: int, index: int) -> Reload:
        """A part request: READY (it exists), WAIT (it is the next to come, or close behind), BAD (it
        will never exist: fell off the window, its segment closed without it, or too far ahead)."""
        if self.part_data(msn, index) is not None:
            return Reload.READY
        if self.ended or msn < self.first_msn:
            return Reload.BAD
        segment = self.segment(msn)
        if segment is not None and (segment.closed or index < len(segment.parts)):
            return Reload.BAD
        return Reload.WAIT if self.reload(msn, index) is Reload.WAIT else Reload.BAD

    def reload(self, msn: int | None, part: int | None) -> Reload:
        """Blocking playlist reload (``_HLS_msn``/``_HLS_part``): answer now, hold, or refuse."""
        if msn is None:
            return Reload.BAD if part is not None else Reload.READY
        if msn < 0 or (part is not None and part < 0):
            return Reload.BAD
        if self.ended:
            return Reload.READY  # nothing more will come: the playlist as it is (with ENDLIST)
        last = self.last_part()
        current = self.segments[-1].msn if self.segments else 0
        if msn > current + ADVANCE_MSN_LIMIT:
            return Reload.BAD
        if last is None:
            return Reload.WAIT
        if part is None:
            # "Segment msn or later": a complete segment, listed with EXTINF.
            done = [s.msn for s in self.segments if s.closed]
            return Reload.READY if done and done[-1] >= msn else Reload.WAIT
        if msn == last[0] and part > last[1] + ADVANCE_PART_LIMIT:
            return Reload.BAD
        return Reload.READY if last >= (msn, part) else Reload.WAIT
