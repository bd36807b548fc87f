"""How many WHEP sessions may be open at once: per show, and per address within a show.

Each session is a full peer connection (ICE, DTLS, SRTP, a relay output), so one address opening
hundreds would take a show's capacity from everyone else. A slot is reserved before the offer is
answered (which awaits), so concurrent offers cannot all slip under the cap; slots of sessions that
have since closed are reclaimed on the next check, asking ``alive`` (the media service) about each.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterator

from liveshow.errors import DomainError, RateLimited

RETRY_MS = 10_000  # a viewer leaves or a session is closed within seconds; try again then


class ShowFull(DomainError):
    code = "full"
    status = 503


class WhepCaps:
    def __init__(self, per_show: int, per_address: int) -> None:
        self.per_show = per_show
        self.per_address = per_address
        # show id -> session id (or a "reserved-N" slot while its offer is answered) -> address
        self._open: dict[int, dict[str, str]] = {}
        self._ids = itertools.count(1)

    def reserve(self, show_id: int, address: str, alive: Callable[[str], bool]) -> str:
        """A slot for one more session from ``address``, or raise (503 show full / 429 this address)."""
        sessions = self._open.setdefault(show_id, {})
        for sid in [s for s in sessions if not s.startswith("reserved-") and not alive(s)]:
            del sessions[sid]
        if self.per_show > 0 and len(sessions) >= self.per_show:
            raise ShowFull(
                f"This show is full ({self.per_show} viewers); try again shortly.", retry_after_ms=RETRY_MS
            )
        mine = sum(1 for a in sessions.values() if a == address)
        if self.per_address > 0 and mine >= self.per_address:
            raise RateLimited(
                f"At most {self.per_address} players per address may watch this show; close one first.",
                retry_after=RETRY_MS / 1000,
                retry_after_ms=RETRY_MS,
            )
        slot = f"reserved-{next(self._ids)}"
        sessions[slot] = address
        return slot

    def confirm(self, show_id: int, slot: str, session_id: str) -> None:
        sessions = self._open.setdefault(show_id, {})
        address = sessions.pop(slot, None)
        if address is not None:
            sessions[session_id] = address

    def release(self, show_id: int, slot: str) -> None:
        sessions = self._open.get(show_id)
        if sessions is not None:
            sessions.pop(slot, None)
            if not sessions:
                del self._open[show_id]

    def count(self, show_id: int) -> int:
        return len(self._open.get(show_id, {}))

    @contextlib.contextmanager
    def slot(self, show_id: int, address: str, alive: Callable[[str], bool]) -> Iterator[Slot]:
        """A reserved slot for the length of the block: kept if ``confirm``ed, else given back."""
        slot = Slot(self, show_id, self.reserve(show_id, address, alive))
        try:
            yield slot
        finally:
            if not slot.confirmed:
                self.release(show_id, slot.token)


class Slot:
    def __init__(self, caps: WhepCaps, show_id: int, token: str) -> None:
        self.caps, self.show_id, self.token = caps, show_id, token
        self.confirmed = False

    def confirm(self, session_id: str) -> None:
        self.caps.confirm(self.show_id, self.token, session_id)
        self.confirmed = True
