"""The database adapter: one engine per app, short sessions, migrations through Alembic."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import Table, event, insert, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, SQLModel, create_engine

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
log = logging.getLogger(__name__)


def normalize_url(url: str) -> str:
    """Accept the plain postgresql:// form users write and pick the psycopg 3 driver."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def make_engine(url: str) -> Engine:
    url = normalize_url(url)
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            # WAL lets readers go on while the single writer commits; foreign keys are off by default.
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    return create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)


class Database:
    def __init__(self, url: str) -> None:
        self.url = normalize_url(url)
        self.engine = make_engine(url)

    @contextmanager
    def session(self) -> Iterator[Session]:
        with Session(self.engine, expire_on_commit=False) as session:
            yield session

    def ping(self) -> bool:
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return True
        except Exception:
            return False

    def migrate(self) -> None:
        migrate(self.url)

    def close(self) -> None:
        self.engine.dispose()


def bulk_insert(session: Session, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert rows (all with the same keys) in the session's transaction.

    On PostgreSQL through COPY: one statement for the server instead of one per row, and no
    SQLAlchemy parameter processing in Python, which on a busy writer's thread waits for the GIL.
    """
    if not rows:
        return
    conn = session.connection()
    if conn.dialect.name != "postgresql":
        session.execute(insert(table), list(rows))
        return
    from psycopg import sql

    columns = list(rows[0])
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table.name), sql.SQL(", ").join(map(sql.Identifier, columns))
    )
    raw: Any = conn.connection.dbapi_connection
    try:
        with raw.cursor() as cursor, cursor.copy(statement) as copy:
            for row in rows:
                copy.write_row([row[c] for c in columns])
    except psycopg.IntegrityError as exc:
        # Raw COPY errors are not wrapped by SQLAlchemy: callers catch one type on both paths.
        raise IntegrityError(str(statement), None, exc) from exc


def insert_new(session: Session, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert rows, skipping those whose unique key is stored already (ON CONFLICT DO NOTHING on both
    PostgreSQL and SQLite): for rows that several processes may write, the first one wins."""
    if not rows:
        return
    dialect = session.connection().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as upsert
    else:
        from sqlalchemy.dialects.sqlite import insert as upsert  # type: ignore[assignment]
    session.execute(upsert(table).on_conflict_do_nothing(), list(rows))


class LoopConnection:
    """One autocommit PostgreSQL connection used from the event loop (async psycopg), for a hot
    statement that is a single round trip: no thread to hop to, no pool ping, no BEGIN and COMMIT. In a
    process busy writing to sockets, each of those round trips also waited for the GIL in a thread.

    Opened on first use; dropped on any error, the caller deciding what a failed statement means.
    Concurrent callers take turns (psycopg serializes a connection's statements).
    """

    def __init__(self, sqlalchemy_url: str) -> None:
        self.dsn = make_url(sqlalchemy_url).set(drivername="postgresql").render_as_string(hide_password=False)
        self._conn: psycopg.AsyncConnection[Any] | None = None

    async def fetchone(self, query: str, params: dict[str, Any]) -> tuple[Any, ...] | None:
        try:
            cursor = await (await self._open()).execute(query, params, prepare=True)
            row: tuple[Any, ...] | None = await cursor.fetchone()
            return row
        except psycopg.Error:
            await self.close()
            raise

    async def execute(self, query: str, params: dict[str, Any]) -> None:
        """Run a statement that returns no rows."""
        try:
            await (await self._open()).execute(query, params, prepare=True)
        except psycopg.Error:
            await self.close()
            raise

    async def _open(self) -> psycopg.AsyncConnection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = await psycopg.AsyncConnection.connect(self.dsn, autocommit=True)
        return self._conn

    async def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            try:
                await conn.close()
            except psycopg.Error as exc:
                log.debug("closing a loop connection: %s", exc)


def loop_connection(db: Database) -> LoopConnection | None:
    """A LoopConnection on PostgreSQL; None elsewhere (SQLite keeps the Session path in a thread)."""
    return LoopConnection(db.url) if db.engine.dialect.name == "postgresql" else None


def table_of(model: type[SQLModel]) -> Table:
    """The Core table of a table model (bulk rows skip building ORM objects)."""
    table: Table = getattr(model, "__table__")  # noqa: B009 (not typed on SQLModel classes)
    return table


def alembic_config(url: str):  # type: ignore[no-untyped-def]
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", normalize_url(url).replace("%", "%%"))
    return cfg


def migrate(url: str) -> None:
    from alembic import command

    command.upgrade(alembic_config(url), "head")
