"""A liveshow server process for the network tests and benchmarks: one show ready to publish, served
on loopback and on the root-side address of each narrow link (bench/netns.py), so a viewer inside a
namespace reaches it for signaling (HTTP) and media (ICE) alike. Nothing listens anywhere else.

    python bench/netserver.py --listen 127.0.0.1,10.200.0.1 --port 8123 --data /tmp/x

prints {"show": ID, "key": STREAM_KEY} once the show exists, then serves until SIGTERM. LIVESHOW_*
variables apply as in `liveshow serve` (the benchmark turns LIVESHOW_RELAY_RTX / LIVESHOW_RELAY_LAYERS
off with them); ``Server`` starts and stops it from the test or benchmark.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.services import free_port  # noqa: E402


def serve(listen: list[str], port: int, data: Path) -> None:
    import uvicorn

    from liveshow.accounts.service import create_user
    from liveshow.app import create_app
    from liveshow.db import migrate
    from liveshow.ratelimit.service import UNLIMITED
    from liveshow.settings import coerce_values, load_settings
    from liveshow.shows.models import Show

    url = f"sqlite:///{data / 'net.db'}"
    migrate(url)
    settings = load_settings().with_overrides(
        data_dir=data,
        database_url=url,
        log_level="WARNING",
        host=listen[0],
        port=port,
        ice_interfaces=tuple(listen),  # media only where the viewers are: loopback and the links
        **coerce_values(UNLIMITED),
    )
    app = create_app(settings)
    with app.state.ctx.db.session() as session:
        user = create_user(session, "net", "correct horse battery")
        show = Show(seller_id=user.id or 0, title="net", stream_key=secrets.token_urlsafe(16))
        session.add(show)
        session.commit()
        recordings = app.state.ctx.recordings
        if recordings is not None:
            recordings.not_recorded.add(show.id or 0)  # measured here: the relay, not the recorder
        print(json.dumps({"show": show.id, "key": show.stream_key}), flush=True)
    sockets = []
    for address in listen:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((address, port))
        sockets.append(sock)
    config = uvicorn.Config(app, log_level="warning", access_log=False, ws="websockets-sansio")
    uvicorn.Server(config).run(sockets=sockets)


def relay_settings() -> dict[str, bool]:
    """The relay's feature switches this code base has (LIVESHOW_RELAY_RTX, LIVESHOW_RELAY_LAYERS),
    with their defaults; absent ones cannot be turned off, and the benchmark says so."""
    from liveshow.settings import Settings

    return {
        f.name: bool(f.default)
        for f in dataclasses.fields(Settings)
        if f.name in ("relay_rtx", "relay_layers")
    }


class Server:
    """``serve`` in a child process with ``env`` added to this one's."""

    def __init__(self, listen: list[str], env: dict[str, str] | None = None) -> None:
        self.listen = listen
        self.port = free_port()
        self.data = Path(tempfile.mkdtemp(prefix="liveshow-net-"))
        self.log = open(self.data / "server.log", "w+b")  # closed in stop()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--listen",
                ",".join(listen),
                "--port",
                str(self.port),
                "--data",
                str(self.data),
            ],
            env={**os.environ, **(env or {})},
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
        )
        try:
            assert self.proc.stdout is not None
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"the server did not start: {self.log_tail()}")
            made: dict[str, Any] = json.loads(line)
            self.show: int = made["show"]
            self.key: str = made["key"]
            self._wait_healthy()
        except BaseException:
            self.stop()
            raise

    def url(self, address: str = "127.0.0.1") -> str:
        return f"http://{address}:{self.port}"

    def whip(self) -> str:
        return f"{self.url()}/whip/{self.show}"

    def whep(self, address: str = "127.0.0.1") -> str:
        return f"{self.url(address)}/whep/{self.show}"

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited: {self.log_tail()}")
            try:
                with urllib.request.urlopen(self.url() + "/healthz", timeout=1) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("the server did not answer /healthz in 30 s")

    def metrics(self, prefix: str = "liveshow_") -> dict[str, float]:
        with urllib.request.urlopen(self.url() + "/metrics", timeout=5) as resp:
            text = resp.read().decode()
        out = {}
        for line in text.splitlines():
            if line.startswith(prefix) and " " in line:
                name, value = line.rsplit(" ", 1)
                out[name] = float(value)
        return out

    def cpu_seconds(self) -> float:
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def log_tail(self) -> str:
        self.log.flush()
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-3000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.log.close()
        shutil.rmtree(self.data, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--listen", required=True, help="comma-separated addresses (loopback first)")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--data", type=Path, required=True)
    args = parser.parse_args()
    serve([a for a in args.listen.split(",") if a], args.port, args.data)


if __name__ == "__main__":
    main()
