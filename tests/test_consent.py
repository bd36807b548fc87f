"""Consent freshness for the publisher's peer: only silence ends it, never answers read late."""

from __future__ import annotations

import asyncio
from typing import Any

from aioice import stun

from liveshow.media.peers import consent_until_silent


class FakeProtocol:
    def __init__(self, answers: list[bool]) -> None:
        self.answers = answers  # one per check: answered, or not
        self.retransmissions: list[int] = []

    async def request(self, request: Any, addr: Any, integrity_key: bytes, retransmissions: int) -> None:
        self.retransmissions.append(retransmissions)
        answered = self.answers.pop(0) if self.answers else False
        if not answered:
            raise stun.TransactionTimeout()


class FakeConnection:
    def __init__(self, answers: list[bool]) -> None:
        self.protocol = FakeProtocol(answers)
        pair = type("Pair", (), {"protocol": self.protocol, "remote_addr": ("127.0.0.1", 9)})()
        self._nominated = {1: pair}
        self.remote_password = "secret"
        self._query_consent_task: object = "running"
        self.closed_at: float | None = None

    def build_request(self, pair: Any, nominate: bool) -> object:
        assert nominate is False
        return object()

    async def close(self) -> None:
        self.closed_at = asyncio.get_running_loop().time()


async def test_checks_that_go_unanswered_for_less_than_the_limit_do_not_end_consent() -> None:
    # 10 ms between checks, 150 ms of silence allowed: 8 unanswered checks (~80 ms), then answers.
    connection = FakeConnection([False] * 8 + [True] * 100)
    task = asyncio.create_task(consent_until_silent(connection, give_up_s=0.15, interval=0.01))
    await asyncio.sleep(0.5)
    assert not task.done() and connection.closed_at is None
    assert set(connection.protocol.retransmissions) == {2}  # each check is retransmitted
    task.cancel()


async def test_silence_past_the_limit_closes_the_connection() -> None:
    connection = FakeConnection([True] * 3)  # answers three checks, then nothing
    started = asyncio.get_running_loop().time()
    await asyncio.wait_for(consent_until_silent(connection, give_up_s=0.15, interval=0.01), 5)
    assert connection.closed_at is not None and connection.closed_at - started >= 0.15
    assert connection._query_consent_task is None
