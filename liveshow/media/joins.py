"""How many viewers may be joining (ICE + DTLS in progress) at once: a pure ledger, time injected.

A viewer's join costs the process far more than watching: its answer, ICE checks and the DTLS
handshake (public-key work, run on the event loop by aiortc) all happen on the loop that also
receives the publisher's packets and sends every viewer's. Hundreds of joins at once leave the
publisher's packets queued behind them until its socket overflows, and the show stops for everyone.
So joins take a slot here: a slot is held from the offer until the viewer's connection is up or has
failed, and expires after ``timeout_s`` (a client that never completes ICE must not keep it).
"""

from __future__ import annotations


class JoinLedger:
    def __init__(self, max_joining: int, timeout_s: float) -> None:
        if max_joining < 0 or timeout_s <= 0:
            raise ValueError("max_joining must be >= 0 (0: no limit) and timeout_s > 0")
        self.max_joining = max_joining
        self.timeout_s = timeout_s
        self._until: dict[str, float] = {}  # token -> when its slot expires

    def _expire(self, now: float) -> None:
        for token in [t for t, until in self._until.items() if until <= now]:
            del self._until[token]

    def enter(self, token: str, now: float) -> bool:
        """Take a slot for ``token``; False when every slot is held."""
        self._expire(now)
        if token in self._until:
            return True
        if self.max_joining > 0 and len(self._until) >= self.max_joining:
            return False
        self._until[token] = now + self.timeout_s
        return True

    def leave(self, token: str) -> bool:
        """Give the slot back (joined, failed or gone); False when it was not held (expired already)."""
        return self._until.pop(token, None) is not None

    def rename(self, token: str, new_token: str) -> None:
        """The slot taken before the session had an id now belongs to that session."""
        until = self._until.pop(token, None)
        if until is not None:
            self._until[new_token] = until

    def joining(self, now: float) -> int:
        self._expire(now)
        return len(self._until)

    def next_expiry(self) -> float | None:
        return min(self._until.values(), default=None)
