"""Private copies of the dependencies, for tests and benchmarks that fault them.

A fault test kills and restarts Redis or PostgreSQL; it must never touch the shared servers at
127.0.0.1:6379 and :5432. These start a redis-server, or a whole PostgreSQL cluster (initdb), of the
caller's own on a free loopback port, in a directory it owns, and remove everything on ``close``.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path


class Unavailable(RuntimeError):
    """The binaries this needs are not installed (callers skip, with this as the reason)."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_port(port: int, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} on port {port} did not start within {timeout:g} s")


class PrivateRedis:
    """A redis-server that keeps nothing on disk: a restart comes back empty, as in the field."""

    def __init__(self, workdir: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise Unavailable("redis-server is not installed")
        self.binary = binary
        self.workdir = workdir
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        args = ["--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.proc = subprocess.Popen(
            [self.binary, *args, "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as conn:
                    conn.sendall(b"PING\r\n")
                    if conn.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"private redis-server on port {self.port} did not start")

    def kill(self) -> None:
        """kill -9: whatever it held is gone."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(5)
            self.proc = None

    def restart_empty(self, down_for: float = 0.0) -> None:
        self.kill()
        time.sleep(down_for)
        self.start()

    def close(self) -> None:
        self.kill()


def _pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if found:
        return found[-1]
    path = shutil.which(name)
    if path is None:
        raise Unavailable(f"PostgreSQL's {name} is not installed")
    return path


class PrivatePostgres:
    """A PostgreSQL cluster of its own (trust auth, loopback only, no fsync: it is for faults, not
    for keeping data across power loss). ``stop`` is a clean shutdown, ``crash`` an immediate one
    (the server recovers from its WAL on ``start``, like after kill -9)."""

    def __init__(self, workdir: Path) -> None:
        self.initdb, self.pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
        self.workdir = workdir
        self.datadir = workdir / "pgdata"
        self.port = free_port()
        # initdb and postgres refuse to run as root: run them as the system's postgres user then.
        self._as: list[str] = []
        if os.geteuid() == 0:
            runuser = shutil.which("runuser")
            if runuser is None:
                raise Unavailable("running as root without runuser")
            self._as = [runuser, "-u", "postgres", "--"]

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([*self._as, *args], check=check, capture_output=True, timeout=120)

    def init(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self._as:
            shutil.chown(self.workdir, "postgres", "postgres")
        self._run(self.initdb, "-D", str(self.datadir), "-U", "postgres", "--auth=trust", "-E", "UTF8")

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -c fsync=off -k {self.workdir}"
        self._run(
            self.pg_ctl,
            "-D",
            str(self.datadir),
            "-o",
            options,
            "-l",
            str(self.workdir / "log"),
            "-w",
            "start",
        )
        _wait_port(self.port, 30, "private PostgreSQL")

    def stop(self) -> None:
        self._run(self.pg_ctl, "-D", str(self.datadir), "-m", "fast", "-w", "stop", check=False)

    def crash(self) -> None:
        """An immediate shutdown: no checkpoint, connections cut; recovery runs on the next start."""
        self._run(self.pg_ctl, "-D", str(self.datadir), "-m", "immediate", "-w", "stop", check=False)

    def create_database(self, name: str) -> str:
        from sqlalchemy import create_engine, text

        admin = create_engine(
            self.url().replace("postgresql://", "postgresql+psycopg://"), isolation_level="AUTOCOMMIT"
        )
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
        return self.url(name)

    def close(self) -> None:
        self.crash()
        shutil.rmtree(self.workdir, ignore_errors=True)
