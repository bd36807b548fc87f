"""Private copies of the dependencies, for tests and benchmarks that fault them.

A fault test kills and restarts Redis or PostgreSQL; it must never touch the shared servers at
127.0.0.1:6379 and :5432. These start a redis-server, or a whole PostgreSQL cluster (initdb with
Debian's binaries from /usr/lib/postgresql/<version>/bin), of the caller's own on a free loopback port
in a directory it owns, and remove everything on ``close``:

    pg = PrivatePostgres.create()   # initdb + start; Unavailable when the binaries are absent
    url = pg.new_database()          # a fresh database on it (migrated unless migrated=False)
    pg.crash()                       # pg_ctl stop -m immediate: what a killed server leaves
    pg.start()                       # crash recovery, then the same port and data again
    pg.stop()                        # a clean (fast) shutdown
    pg.close()                       # stop if running and remove the directory

``initdb`` refuses to run as root, so as root every command runs as the ``postgres`` user
(``runuser``), and the directory is handed to that user. fsync is off: a crash here is the server
process dying, not the machine, so the operating system still holds every write it was handed.
Commits stay synchronous (WAL written before the commit is acknowledged): an asynchronous commit
would let a crash lose an acknowledged transaction, which is what fault tests look for.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
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


SUPERUSER = "postgres"


def find_bindir() -> Path | None:
    """The newest Debian PostgreSQL bin directory that has initdb and pg_ctl, or None."""
    found = [Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/initdb")]
    found = [d for d in found if (d / "pg_ctl").is_file()]
    if not found:
        return None
    return max(found, key=lambda d: int(d.parent.name) if d.parent.name.isdigit() else 0)


class PrivatePostgres:
    """One private cluster: ``url`` names its ``postgres`` database (psycopg 3 driver)."""

    def __init__(self, bindir: Path, root: Path, port: int, run_as: str | None) -> None:
        self.bindir = bindir
        self.root = root
        self.data = root / "data"
        self.logfile = root / "server.log"
        self.port = port
        self.run_as = run_as
        self.databases: list[str] = []

    # ------------------------------------------------------------ building one

    @classmethod
    def create(cls) -> PrivatePostgres:
        """initdb a new cluster and start it; Unavailable when that cannot be done here."""
        bindir = find_bindir()
        if bindir is None:
            raise Unavailable("PostgreSQL server binaries not found (apt-get install postgresql)")
        run_as: str | None = None
        root = Path(tempfile.mkdtemp(prefix="liveshow-pg-"))
        if os.geteuid() == 0:
            # initdb will not run as root: the cluster belongs to the postgres user.
            if shutil.which("runuser") is None:
                shutil.rmtree(root, ignore_errors=True)
                raise Unavailable("running as root without runuser: cannot run initdb as another user")
            try:
                owner = pwd.getpwnam(SUPERUSER)
            except KeyError:
                shutil.rmtree(root, ignore_errors=True)
                raise Unavailable(
                    f"running as root and there is no {SUPERUSER!r} user to run initdb as"
                ) from None
            os.chown(root, owner.pw_uid, owner.pw_gid)
            run_as = SUPERUSER
        pg = cls(bindir, root, free_port(), run_as)
        try:
            pg._run("initdb", "-D", str(pg.data), "-U", SUPERUSER, "-A", "trust", "--no-sync", "-E", "UTF8")
            with (pg.data / "postgresql.conf").open("a") as conf:
                conf.write(
                    f"\nport = {pg.port}\nlisten_addresses = '127.0.0.1'\n"
                    f"unix_socket_directories = '{pg.root}'\nfsync = off\n"
                    "full_page_writes = off\nmax_connections = 60\n"
                )
            pg.start()
        except BaseException:
            pg.close()
            raise
        return pg

    # ------------------------------------------------------------ the API tests use

    @property
    def admin_url(self) -> str:
        return self.url_for("postgres")

    @property
    def url(self) -> str:
        return self.admin_url

    def url_for(self, database: str) -> str:
        return f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def new_database(self, migrated: bool = True) -> str:
        """CREATE a database on this cluster (migrated to head by default) and return its URL."""
        import psycopg

        name = f"liveshow_p_{len(self.databases)}_{os.getpid()}"
        with psycopg.connect(self._dsn("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        self.databases.append(name)
        url = self.url_for(name)
        if migrated:
            from liveshow.db import migrate

            migrate(url)
        return url

    def start(self, timeout: float = 60.0) -> None:
        """Start (after a crash: recover) and return once it accepts connections."""
        self._pg_ctl("start", "-w", "-t", str(int(timeout)), "-l", str(self.logfile))
        self.wait_ready(timeout)

    def stop(self) -> None:
        """A clean shutdown: sessions are ended, everything is checkpointed."""
        self._pg_ctl("stop", "-w", "-m", "fast")

    def crash(self) -> None:
        """``stop -m immediate``: the postmaster and its backends quit at once, no checkpoint, so the
        next start runs crash recovery, as after a killed server."""
        self._pg_ctl("stop", "-w", "-m", "immediate")

    def restart(self) -> None:
        self.stop()
        self.start()

    @property
    def running(self) -> bool:
        return self._pg_ctl("status", check=False).returncode == 0

    def wait_ready(self, timeout: float = 60.0) -> None:
        import psycopg

        deadline = time.monotonic() + timeout
        while True:
            try:
                with psycopg.connect(self._dsn("postgres"), connect_timeout=2) as conn:
                    conn.execute("SELECT 1")
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def close(self) -> None:
        """Stop the server if it runs and remove its directory: nothing is left behind."""
        if self.data.is_dir() and self.running:
            self._pg_ctl("stop", "-w", "-m", "immediate", check=False)
        shutil.rmtree(self.root, ignore_errors=True)

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.logfile.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    # ------------------------------------------------------------ plumbing

    def _dsn(self, database: str) -> str:
        return f"host=127.0.0.1 port={self.port} user={SUPERUSER} dbname={database}"

    def _pg_ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self._run("pg_ctl", "-D", str(self.data), *args, check=check)

    def _run(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = [str(self.bindir / tool), *args]
        if self.run_as is not None:
            command = ["runuser", "-u", self.run_as, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=self.root)
        if check and done.returncode != 0:
            what = f"{tool} {' '.join(args)} failed ({done.returncode})"
            raise RuntimeError(f"{what}: {done.stderr.strip()}\n{self.log_tail()}")
        return done
