"""How fast this machine is right now, printed beside a benchmark's figures.

Two readings that the servers' work is made of: a pure-Python loop (the interpreter's speed on this
core) and a small write to a loopback TCP socket whose reader is asleep in another process (a
syscall that wakes another process: one per socket per round of the room's fan-out). Both vary with
the host and with other virtual machines on it, by 2-3x between sessions here: compare figures from
different days only next to these.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import selectors
import socket
import time
from typing import Any

SOCKETS = 100
ROUNDS = 30


def python_loop_ms() -> float:
    """Best of three: 5 million additions in a Python loop."""
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        total = 0
        for i in range(5_000_000):
            total += i
        best = min(best, time.perf_counter() - started)
    return best * 1000


def _reader(port: int, ready: Any, done: Any) -> None:
    socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(SOCKETS)]
    selector = selectors.DefaultSelector()
    for sock in socks:
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ)
    ready.set()
    while not done.is_set():
        for key, _events in selector.select(0.1):
            try:
                key.fileobj.recv(65536)  # type: ignore[union-attr]
            except BlockingIOError:
                pass


def loopback_write_us() -> float:
    """Median per-write cost of rounds of 300-byte writes to SOCKETS loopback sockets."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(SOCKETS)
    ctx = mp.get_context("spawn")
    ready, done = ctx.Event(), ctx.Event()
    reader = ctx.Process(target=_reader, args=(listener.getsockname()[1], ready, done))
    reader.start()
    conns = [listener.accept()[0] for _ in range(SOCKETS)]
    ready.wait(10)
    payload = b"x" * 300
    costs = []
    try:
        for _ in range(ROUNDS):
            started = time.perf_counter()
            for conn in conns:
                os.write(conn.fileno(), payload)
            costs.append((time.perf_counter() - started) / SOCKETS)
            time.sleep(0.01)
    finally:
        done.set()
        reader.join(5)
        for conn in conns:
            conn.close()
        listener.close()
    costs.sort()
    return costs[len(costs) // 2] * 1e6


def describe() -> str:
    return (
        f"machine now: 5M Python additions {python_loop_ms():.0f} ms, "
        f"loopback socket write {loopback_write_us():.1f} µs (bench/machine.py)"
    )


if __name__ == "__main__":
    print(describe())
