"""A lean Redis connection for the hot loops: the bus's publisher and readers, the auction's command
sender, reply reader, stream reader and replier.

redis-py spends tens of µs of Python on every command (a pool checkout under a condition, the retry
wrapper, its event dispatch, a timeout context around each write and read, per-argument encoding), on
the event loop, and these loops send several hundred commands a second at 2,000 bids/s: about a tenth
of the servers' CPU in bench/bids.py (perf). Here a command is packed with one join, written to the
transport, and its reply parsed by hiredis (C) as it arrives; the waiters are futures in the order
the commands were written, so a pipeline is several commands in one write. Everything else (the
presence, leases, limits, setup) stays on redis-py.

Errors are redis-py's classes, so the callers' handling stays what it was: a lost connection fails
every waiter with ConnectionError and the next call connects again; an error reply is ResponseError
(NoScriptError for NOSCRIPT, BusyLoadingError while Redis loads); a reply later than the timeout drops
the connection (a late reply must never be taken for the next command's) with an error that is both a
TimeoutError and a ConnectionError.
"""

from __future__ import annotations

import asyncio
import hashlib
import ssl
from collections import deque
from collections.abc import Sequence
from typing import Any, cast

import hiredis
import redis.exceptions as rx
from redis.asyncio.connection import SSLConnection, parse_url

Arg = str | bytes | int | float
DEFAULT_TIMEOUT = 10.0


class ReplyTimeout(rx.TimeoutError, rx.ConnectionError):
    """No reply within the timeout: the connection was dropped."""


def pack(commands: Sequence[Sequence[Arg]]) -> bytes:
    """RESP arrays of bulk strings, one per command."""
    out: list[bytes] = []
    for command in commands:
        out.append(b"*%d\r\n" % len(command))
        for arg in command:
            if isinstance(arg, str):
                raw = arg.encode()
            elif isinstance(arg, bytes):
                raw = arg
            elif isinstance(arg, int):  # a bool goes as 1 or 0
                raw = b"%d" % arg
            else:
                raw = repr(arg).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(raw), raw))
    return b"".join(out)


def _reply_error(message: str) -> rx.RedisError:
    if message.startswith("NOSCRIPT"):
        return rx.NoScriptError(message)
    if message.startswith("LOADING"):
        return rx.BusyLoadingError(message)  # a ConnectionError: the callers wait and try again
    return rx.ResponseError(message)


class _Protocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.reader = hiredis.Reader(encoding="utf-8", replyError=_reply_error)
        self.waiters: deque[asyncio.Future[Any]] = deque()
        self.transport: asyncio.Transport | None = None
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        waiters = self.waiters
        while True:
            try:
                reply = self.reader.gets()
            except hiredis.ProtocolError:  # not RESP: nothing after it can be trusted
                self._out_of_step()
                return
            if reply is False:
                return
            if not waiters:  # a reply nobody asked for: the stream is out of step
                self._out_of_step()
                return
            future = waiters.popleft()
            if not future.done():  # else its caller was cancelled: the reply is dropped in order
                future.set_result(reply)

    def _out_of_step(self) -> None:
        """Drop the connection: its waiters fail (connection_lost) and the next call reconnects."""
        self.lost = True
        assert self.transport is not None
        self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        error = rx.ConnectionError(f"Redis connection lost: {exc or 'closed'}")
        while self.waiters:
            future = self.waiters.popleft()
            if not future.done():
                future.set_exception(error)


class Script:
    """A Lua script sent by its SHA1 (the text itself once Redis does not know it)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.sha = hashlib.sha1(text.encode()).hexdigest()


class RespConnection:
    """One connection to ``url`` (redis://, rediss:// or unix://, as redis-py reads them), opened on
    first use and again after it was lost."""

    def __init__(self, url: str, timeout: float = DEFAULT_TIMEOUT) -> None:
        self._options = parse_url(url)
        self.timeout = timeout
        self._protocol: _Protocol | None = None
        self._connecting: asyncio.Lock | None = None

    async def _ready(self) -> _Protocol:
        protocol = self._protocol
        if protocol is not None and not protocol.lost:
            return protocol
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            protocol = self._protocol
            if protocol is None or protocol.lost:
                protocol = self._protocol = await self._connect()
        return protocol

    async def _connect(self) -> _Protocol:
        loop = asyncio.get_running_loop()
        options = self._options
        try:
            if "path" in options:
                _t, protocol = await asyncio.wait_for(
                    loop.create_unix_connection(_Protocol, options["path"]), self.timeout
                )
            else:
                secure = options.get("connection_class") is SSLConnection
                tls = ssl.create_default_context() if secure else None
                _t, protocol = await asyncio.wait_for(
                    loop.create_connection(
                        _Protocol, options.get("host", "localhost"), options.get("port", 6379), ssl=tls
                    ),
                    self.timeout,
                )
        except (OSError, TimeoutError) as exc:
            raise rx.ConnectionError(f"cannot connect to Redis: {exc}") from exc
        hello: list[list[Arg]] = []
        if options.get("password"):
            user = options.get("username")
            hello.append(["AUTH", user, options["password"]] if user else ["AUTH", options["password"]])
        if options.get("db"):
            hello.append(["SELECT", int(options["db"])])
        if hello:
            try:
                await self._send(protocol, hello)
            except BaseException:  # a wrong password, say: this connection is not kept
                if protocol.transport is not None:
                    protocol.transport.close()
                raise
        return protocol

    async def _send(
        self, protocol: _Protocol, commands: Sequence[Sequence[Arg]], timeout: float | None = None
    ) -> list[Any]:
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in commands]
        protocol.waiters.extend(futures)
        assert protocol.transport is not None
        transport = protocol.transport
        transport.write(pack(commands))
        timer = loop.call_later(self.timeout if timeout is None else timeout, _expire, protocol, futures[-1])
        try:
            replies = [await future for future in futures]
        finally:
            timer.cancel()
            for future in futures:  # after a failure or a cancellation part way through a pipeline:
                if not future.done():
                    future.cancel()  # its reply is dropped in order when it comes
                elif not future.cancelled():
                    future.exception()  # seen: no "exception was never retrieved" in the log
        for reply in replies:
            if isinstance(reply, rx.RedisError):
                raise reply
        return replies

    async def call(self, *args: Arg, timeout: float | None = None) -> Any:
        """One command's reply; ``timeout`` instead of the connection's (a blocking read's, longer)."""
        return (await self._send(await self._ready(), [args], timeout))[0]

    async def pipeline(self, commands: Sequence[Sequence[Arg]]) -> list[Any]:
        """Several commands in one write; their replies in order (the first error reply raised, after
        every reply was read)."""
        return await self._send(await self._ready(), commands) if commands else []

    async def xread(
        self, stream: str, after: str, *, count: int, block_ms: int
    ) -> list[tuple[str, dict[str, str]]]:
        """The entries of ``stream`` after the id ``after`` as (id, fields), up to ``count``, waiting up
        to ``block_ms`` for the first; none when none came. The reply may take the block time longer
        than any other command's."""
        reply = await self.call(
            "XREAD",
            "COUNT",
            count,
            "BLOCK",
            block_ms,
            "STREAMS",
            stream,
            after,
            timeout=self.timeout + block_ms / 1000,
        )
        return _stream_entries(reply)

    async def run(self, script: Script, keys: Sequence[Arg], args: Sequence[Arg]) -> Any:
        try:
            return await self.call("EVALSHA", script.sha, len(keys), *keys, *args)
        except rx.NoScriptError:  # a Redis that restarted (empty) or never saw it: EVAL caches it
            return await self.call("EVAL", script.text, len(keys), *keys, *args)

    async def close(self) -> None:
        protocol, self._protocol = self._protocol, None
        if protocol is not None and protocol.transport is not None:
            protocol.transport.close()


def _expire(protocol: _Protocol, last: asyncio.Future[Any]) -> None:
    """The reply is late: drop the connection, so no later reply is taken for another command's."""
    if last.done():
        return
    error = ReplyTimeout("no reply from Redis in time")
    while protocol.waiters:
        future = protocol.waiters.popleft()
        if not future.done():
            future.set_exception(error)
    protocol.lost = True
    if protocol.transport is not None:
        protocol.transport.abort()


def _stream_entries(reply: Any) -> list[tuple[str, dict[str, str]]]:
    """The entries of an XREAD reply, as (id, fields); none when it timed out."""
    if not reply:
        return []
    return [(entry_id, _fields(flat)) for _key, entries in reply for entry_id, flat in entries]


def _fields(flat: list[str] | None) -> dict[str, str]:
    if not flat:
        return {}
    it = iter(flat)
    return dict(zip(it, it, strict=True))
