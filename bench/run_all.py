"""Run the benchmarks one after the other, each with its defaults, as `make bench` does.

Each prints its own figures (docs/performance.md says how to read them); this only runs them in
turn, never two at once (they share the machine's two cores with the servers they measure), and
says at the end which ones failed.

    .venv/bin/python bench/run_all.py               # all of them: 15 to 30 minutes here
    .venv/bin/python bench/run_all.py bids room     # some of them, in the order given
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# name -> (script, what it measures), shortest first
BENCHMARKS: dict[str, tuple[str, str]] = {
    "machine": ("machine.py", "how fast this machine is right now"),
    "recorder": ("recorder.py", "recording a live show to disk while it is relayed"),
    "bids": ("bids.py", "claims and bids through two server processes, Redis and PostgreSQL"),
    "room": ("room.py", "chat fan-out to thousands of room WebSockets"),
    "redisclient": ("redis_client.py", "CPU of one hot Redis command: redis-py against liveshow/resp.py"),
    "relay": ("relay.py", "WebRTC viewers per publisher, no transcoding"),
    "glass": ("glass.py", "glass to glass in Chromium, through the server and peer to peer"),
    "network": ("network.py", "viewers on lossy and narrow links (namespaces: root), features on/off"),
    "hls": ("hls.py", "LL-HLS muxing cost, and latency through nginx to hls.js viewers"),
    "cluster": ("cluster.py", "an origin and two edges: viewers held, CPU per edge, latency per hop"),
    "search": ("search.py", "search and similar items over 10,000 listings"),
    "faults": ("faults.py", "kills, Redis and PostgreSQL restarts under load: nothing acknowledged lost"),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("names", nargs="*", metavar="name", help=f"of {', '.join(BENCHMARKS)}; default: all")
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; choose from {list(BENCHMARKS)}")
    names = args.names or list(BENCHMARKS)
    failed: list[str] = []
    for name in names:
        script, what = BENCHMARKS[name]
        print(f"\n=== {name}: {what} (bench/{script})", flush=True)
        started = time.monotonic()
        code = subprocess.call([sys.executable, str(ROOT / "bench" / script)], cwd=ROOT)
        print(f"=== {name}: exit {code} after {time.monotonic() - started:.0f} s", flush=True)
        if code != 0:
            failed.append(name)
    verdict = f"; failed: {', '.join(failed)}" if failed else ""
    print(f"\n{len(names) - len(failed)} of {len(names)} benchmarks ran cleanly{verdict}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
