"""A local cluster: N liveshow processes behind nginx (config/nginx.conf), sharing Redis and a database.

Used by the HLS-through-a-cache test, ``bench/hls.py`` and ``make cluster``:

    stack = Stack(workdir, database_url, "redis://127.0.0.1:6379/0", processes=3).start()
    stack.url                # http://127.0.0.1:<nginx port>, process N also at stack.url + "/pN"
    stack.stop()             # SIGTERM to every process (they drain), then nginx

``python -m bench.stack --processes 3 [--port 8080]`` runs one in the foreground until Ctrl-C: it
migrates the database, loads the demo and prints the demo seller's password.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench.services import _wait_port, free_port
from liveshow.nginxconf import CONFIG_DIR, render

ROOT = Path(__file__).resolve().parent.parent


def nginx_binary() -> str | None:
    return shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)


class Stack:
    def __init__(
        self,
        workdir: Path,
        database_url: str,
        bus_url: str,
        bus_prefix: str = "liveshow",
        processes: int = 2,
        port: int | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        binary = nginx_binary()
        if binary is None:
            raise RuntimeError("nginx is not installed (scripts/ensure-nginx.sh)")
        self.nginx_bin = binary
        self.workdir = workdir
        self.database_url = database_url
        self.bus_url = bus_url
        self.bus_prefix = bus_prefix
        self.port = port or free_port()
        self.ports = [free_port() for _ in range(processes)]
        self.extra_env = env or {}
        self.secret = secrets.token_urlsafe(32)
        self.procs: list[subprocess.Popen[bytes]] = []
        self.nginx: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def process_url(self, index: int) -> str:
        """The direct URL of process ``index`` (0-based), bypassing nginx."""
        return f"http://127.0.0.1:{self.ports[index]}"

    def env(self, index: int) -> dict[str, str]:
        return {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "LIVESHOW_DATA_DIR": str(self.workdir / "data"),
            "LIVESHOW_DATABASE_URL": self.database_url,
            "LIVESHOW_BUS_URL": self.bus_url,
            "LIVESHOW_BUS_PREFIX": self.bus_prefix,
            "LIVESHOW_SECRET_KEY": self.secret,
            "LIVESHOW_ADVERTISE_URL": f"{self.url}/p{index + 1}",
            "LIVESHOW_TRUSTED_PROXIES": "127.0.0.1",
            "LIVESHOW_ICE_INTERFACES": "127.0.0.1",
            # The cluster is where a show outgrows WebRTC: the studio publishes H.264 so that its LL-HLS
            # rendition exists (browsers cannot play VP8 over HLS).
            "LIVESHOW_STUDIO_VIDEO": "h264",
            **self.extra_env,
        }

    def liveshow(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run a liveshow command (migrate, demo, token, ...) against the stack's database."""
        return subprocess.run(
            [sys.executable, "-m", "liveshow.cli", *args],
            env=self.env(0),
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        )

    def start(self, timeout: float = 60.0) -> Stack:
        self.workdir.mkdir(parents=True, exist_ok=True)
        run_dir = self.workdir / "nginx"
        run_dir.mkdir(exist_ok=True)
        conf = run_dir / "nginx.conf"
        backends = [f"127.0.0.1:{p}" for p in self.ports]
        conf.write_text(
            render((CONFIG_DIR / "nginx.conf").read_text(), f"127.0.0.1:{self.port}", backends, run_dir)
        )
        try:
            for index, port in enumerate(self.ports):
                log = (self.workdir / f"liveshow-{index + 1}.log").open("wb")
                self.procs.append(
                    subprocess.Popen(
                        [
                            sys.executable,
                            "-m",
                            "liveshow.cli",
                            "serve",
                            "--host",
                            "127.0.0.1",
                            "--port",
                            str(port),
                        ],
                        env=self.env(index),
                        stdout=log,
                        stderr=subprocess.STDOUT,
                    )
                )
            # As root, nginx's workers would drop to "nobody", who cannot write our (root-owned, private)
            # cache directory: they stay the user that runs this, as they do when it is not root.
            directives = "daemon off;" + (" user root;" if os.geteuid() == 0 else "")
            self.nginx = subprocess.Popen(
                [self.nginx_bin, "-c", str(conf), "-p", str(run_dir), "-g", directives],
                stdout=subprocess.DEVNULL,
                stderr=(run_dir / "stderr.log").open("wb"),
            )
            _wait_port(self.port, timeout, "nginx")
            for index in range(len(self.ports)):
                self._wait_ready(index, timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self, index: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.procs[index].poll() is not None:
                raise RuntimeError(f"liveshow process {index + 1} exited: {self.log_tail(index)}")
            try:
                if httpx.get(f"{self.url}/p{index + 1}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"liveshow process {index + 1} not ready in {timeout:g} s: {self.log_tail(index)}")

    def log_tail(self, index: int, chars: int = 3000) -> str:
        path = self.workdir / f"liveshow-{index + 1}.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        self.procs = []
        if self.nginx is not None:
            self.nginx.send_signal(signal.SIGQUIT)
            try:
                self.nginx.wait(10)
            except subprocess.TimeoutExpired:
                self.nginx.kill()
                self.nginx.wait(5)
            self.nginx = None


def ensure_database(url: str) -> None:
    """Create a PostgreSQL database named by ``url`` when it does not exist yet (``make cluster``)."""
    if not url.startswith("postgresql"):
        return
    import psycopg

    parsed = httpx.URL(url.replace("postgresql+psycopg://", "postgresql://", 1))
    name = parsed.path.lstrip("/")
    admin = url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin.replace("postgresql+psycopg://", "postgresql://", 1), autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
            conn.execute(f'CREATE DATABASE "{name}"')


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="liveshow processes behind nginx on this machine")
    parser.add_argument("--processes", type=int, default=3)
    parser.add_argument("--port", type=int, default=8080, help="nginx's port (the public origin)")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("LIVESHOW_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/liveshow"),
    )
    parser.add_argument("--bus-url", default=os.environ.get("LIVESHOW_BUS_URL", "redis://127.0.0.1:6379/0"))
    parser.add_argument(
        "--workdir", type=Path, default=None, help="logs, data and nginx files (default: a temp dir)"
    )
    args = parser.parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="liveshow-cluster-"))
    stack = Stack(workdir, args.database_url, args.bus_url, processes=args.processes, port=args.port)
    ensure_database(args.database_url)
    stack.liveshow("migrate")
    password = secrets.token_urlsafe(9)
    print(stack.liveshow("demo", "--password", password).stdout.strip())
    stack.start()
    print(f"liveshow x{args.processes} behind nginx at {stack.url} (logs in {workdir}); Ctrl-C stops it")
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    finally:
        stack.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
