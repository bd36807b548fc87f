"""The lean Redis connection of the hot loops (liveshow/resp.py), against real redis-servers: replies in
order, errors as redis-py's classes, a script Redis forgot, a restart, a server that stops answering,
a caller cancelled mid-wait, a password and a database."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import secrets
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest
import redis.exceptions as rx

from bench.services import PrivateRedis
from liveshow.resp import ReplyTimeout, RespConnection, Script, pack
from tests.conftest import REDIS_URL, free_port

pytestmark = pytest.mark.redis


def test_pack_writes_resp_arrays_of_bulk_strings() -> None:
    assert pack([["SET", "k", "é"], ["INCRBY", "n", -3]]) == (
        b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\n\xc3\xa9\r\n*3\r\n$6\r\nINCRBY\r\n$1\r\nn\r\n$2\r\n-3\r\n"
    )
    assert pack([[b"GET", 1.5]]) == b"*2\r\n$3\r\nGET\r\n$3\r\n1.5\r\n"


async def test_replies_come_back_in_order_with_errors_as_redis_py_raises_them() -> None:
    conn = RespConnection(REDIS_URL)
    key = f"test:resp:{secrets.token_hex(4)}"
    try:
        assert await conn.pipeline([["SET", key, "1"], ["INCRBY", key, 41], ["GET", key]]) == ["OK", 42, "42"]
        assert await conn.call("GET", key + ":none") is None
        with pytest.raises(rx.ResponseError, match="WRONGTYPE"):
            await conn.call("LPUSH", key, "x")
        # Every reply of a failed pipeline was read: the next command gets its own.
        with pytest.raises(rx.ResponseError):
            await conn.pipeline([["INCRBY", key, 1], ["LPUSH", key, "x"], ["INCRBY", key, 1]])
        assert await conn.call("GET", key) == "44"
        stream = key + ":s"
        first = await conn.call("XADD", stream, "MAXLEN", "~", 100, "*", "a", "1", "b", "é")
        assert await conn.xread(stream, "0-0", count=10, block_ms=100) == [(first, {"a": "1", "b": "é"})]
        assert await conn.xread(stream, first, count=10, block_ms=50) == []  # none came in the block time
        await conn.call("DEL", key, stream)
    finally:
        await conn.close()


async def test_a_cancelled_caller_leaves_the_next_reply_to_the_next_command() -> None:
    conn = RespConnection(REDIS_URL)
    stream = f"test:resp:{secrets.token_hex(4)}"
    try:
        waiting = asyncio.create_task(conn.call("XREAD", "BLOCK", 300, "STREAMS", stream, "$", timeout=5))
        await asyncio.sleep(0.05)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        # The blocked XREAD's own (empty) reply comes first and is dropped; PING gets PONG.
        assert await conn.call("PING") == "PONG"
    finally:
        await conn.close()


async def test_a_script_redis_does_not_know_is_sent_whole_then_by_its_hash(
    private_redis: PrivateRedis,
) -> None:
    conn = RespConnection(private_redis.url)
    script = Script("return {tonumber(ARGV[1]) + 1, KEYS[1]}")
    try:
        assert await conn.run(script, ["k"], [41]) == [42, "k"]
        assert await conn.call("SCRIPT", "EXISTS", script.sha) == [1]
        private_redis.restart_empty()  # the scripts are gone with everything else
        with pytest.raises(rx.ConnectionError):
            await conn.call("PING")  # the old connection died with the server: said, not hung
        assert await conn.run(script, ["k"], [1]) == [2, "k"]  # a new connection, EVAL again
    finally:
        await conn.close()


async def test_a_server_that_never_answers_times_out_and_drops_the_connection() -> None:
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()
    port = silent.getsockname()[1]
    conn = RespConnection(f"redis://127.0.0.1:{port}/0", timeout=0.3)
    try:
        started = time.monotonic()
        with pytest.raises(ReplyTimeout) as info:
            await conn.call("PING")
        assert 0.25 < time.monotonic() - started < 3
        # Both, so that callers treating either as "try again" do.
        assert isinstance(info.value, rx.TimeoutError) and isinstance(info.value, rx.ConnectionError)
    finally:
        await conn.close()
        silent.close()


async def test_nothing_listening_is_a_connection_error() -> None:
    conn = RespConnection(f"redis://127.0.0.1:{free_port()}/0", timeout=1)
    with pytest.raises(rx.ConnectionError):
        await conn.call("PING")


@pytest.fixture
def redis_with_password(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--requirepass", "s3cret"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        yield f"redis://:s3cret@127.0.0.1:{port}/3"
    finally:
        proc.kill()
        proc.wait(5)


async def test_the_url_s_password_and_database_are_used(redis_with_password: str) -> None:
    conn = RespConnection(redis_with_password)
    try:
        await conn.call("SET", "k", "v")
        assert await conn.call("CLIENT", "INFO") is not None
        assert "db=3" in await conn.call("CLIENT", "INFO")
    finally:
        await conn.close()
    wrong = RespConnection(redis_with_password.replace("s3cret", "nope"))
    for _ in range(3):
        with pytest.raises(rx.ResponseError):
            await wrong.call("PING")
    await wrong.close()
    # A connection refused at AUTH is closed, not left open on the server once per try.
    checker = RespConnection(redis_with_password)
    try:
        for _ in range(50):
            if (await checker.call("CLIENT", "LIST")).count("\n") == 1:  # itself alone
                break
            await asyncio.sleep(0.02)
        assert (await checker.call("CLIENT", "LIST")).count("\n") == 1
    finally:
        await checker.close()


Serve = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@contextlib.asynccontextmanager
async def fake_server(serve: Serve) -> AsyncIterator[tuple[RespConnection, list[dict[str, object]]]]:
    """A connection to a server that answers as ``serve`` does, and what the event loop logged meanwhile
    (a protocol callback that raised, a future's exception nobody retrieved)."""
    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    conn = RespConnection(f"redis://127.0.0.1:{port}/0", timeout=2)
    loop = asyncio.get_running_loop()
    logged: list[dict[str, object]] = []
    loop.set_exception_handler(lambda _loop, context: logged.append(context))
    try:
        yield conn, logged
    finally:
        loop.set_exception_handler(None)
        await conn.close()
        server.close()
        await server.wait_closed()


async def test_a_reply_that_is_not_resp_drops_the_connection_and_the_next_call_connects_again() -> None:
    connections = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        first = connections == 1
        while await reader.read(4096):
            # First connection: not Redis at all (an HTTP server, say); then a Redis that says PONG.
            writer.write(b"HTTP/1.1 400 Bad Request\r\n\r\n" if first else b"+PONG\r\n")
            await writer.drain()
        writer.close()

    async with fake_server(serve) as (conn, logged):
        with pytest.raises(rx.ConnectionError):
            await conn.call("PING")
        assert await conn.call("PING") == "PONG"
        assert connections == 2
        assert logged == []  # dropped on purpose, not a callback that raised


async def test_a_pipeline_cut_off_part_way_fails_once_and_logs_nothing() -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(4096)
        writer.write(b"+OK\r\n")  # the first of three replies, then the server goes away
        await writer.drain()
        writer.close()

    async with fake_server(serve) as (conn, logged):
        with pytest.raises(rx.ConnectionError):
            await conn.pipeline([["SET", "a", "1"], ["SET", "b", "2"], ["SET", "c", "3"]])
        await asyncio.sleep(0.05)
        gc.collect()  # a failed future nobody looked at would be reported now
        assert logged == []
