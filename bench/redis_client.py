"""The CPU one hot Redis command costs this process: through redis-py (the baseline) and through the lean
connection of the hot loops (liveshow/resp.py), measured in the same run against the same Redis.

The commands are the hot loops' own: a one-command XADD pipeline (the auction's sender and replier) and
an XREAD of a few entries (the bus readers, the reply reader, the leader's stream reader). CPU time of
this process only (time.process_time), so Redis's own work is not in it; the wall time beside it.

    .venv/bin/python bench/redis_client.py            # 5,000 of each
    .venv/bin/python bench/redis_client.py --count 20000
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import redis.asyncio as aioredis  # noqa: E402
import uvloop  # noqa: E402

from liveshow.redisconn import connect  # noqa: E402
from liveshow.resp import RespConnection  # noqa: E402

REDIS_URL = os.environ.get("LIVESHOW_TEST_REDIS", "redis://127.0.0.1:6379/0")
BODY = "x" * 200  # about a batch entry of a few commands


async def timed(name: str, count: int, one: Callable[[], Awaitable[object]]) -> tuple[float, int]:
    """CPU µs per command; and how many of them failed (each failure is printed once by kind)."""
    failed: dict[str, int] = {}
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(count):
        try:
            await one()
        except Exception as exc:  # counted, not hidden
            failed[type(exc).__name__] = failed.get(type(exc).__name__, 0) + 1
    cpu_us = (time.process_time() - cpu) / count * 1e6
    wall_us = (time.perf_counter() - wall) / count * 1e6
    print(
        f"  {name:<36} {cpu_us:7.1f} µs CPU  {wall_us:7.1f} µs wall  failed: {sum(failed.values())} {failed}"
    )
    return cpu_us, sum(failed.values())


async def main(count: int) -> int:
    stream = f"bench:redis_client:{secrets.token_hex(4)}"
    pool = connect(REDIS_URL)
    reader = aioredis.from_url(REDIS_URL, decode_responses=True)
    lean = RespConnection(REDIS_URL)
    try:
        await pool.xadd(stream, {"cs": BODY, "r": "k"})

        async def py_xadd() -> object:
            pipe = pool.pipeline(transaction=False)
            pipe.xadd(stream, {"cs": BODY, "r": "k"}, maxlen=1000, approximate=True)
            return await pipe.execute()

        async def lean_xadd() -> object:
            return await lean.pipeline([["XADD", stream, "MAXLEN", "~", 1000, "*", "cs", BODY, "r", "k"]])

        async def py_xread() -> object:
            return await reader.xread({stream: "0-0"}, count=5, block=10)

        async def lean_xread() -> object:
            return await lean.xread(stream, "0-0", count=5, block_ms=10)

        print(f"{count} of each against {REDIS_URL}, one after the other (this process's CPU):")
        results = [
            await timed("XADD pipeline, redis-py (baseline)", count, py_xadd),
            await timed("XADD pipeline, liveshow/resp.py", count, lean_xadd),
            await timed("XREAD of 5, redis-py (baseline)", count, py_xread),
            await timed("XREAD of 5, liveshow/resp.py", count, lean_xread),
        ]
        print(
            f"lean against redis-py: XADD x{results[0][0] / results[1][0]:.1f}, "
            f"XREAD x{results[2][0] / results[3][0]:.1f} less CPU per command"
        )
        return 1 if any(failed for _us, failed in results) else 0
    finally:
        await pool.delete(stream)
        await pool.aclose()
        await reader.aclose()
        await lean.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=5000)
    sys.exit(uvloop.run(main(parser.parse_args().count)))
