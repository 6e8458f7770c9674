"""The async engine for SQLite or PostgreSQL, the migrations run at start-up, and the bound
on every wait for the database.

One `timeout` (DATABASE_TIMEOUT_SECONDS, 5 s by default) bounds each wait, so a person hears
within about 10 s that the database is unavailable instead of waiting for ever:

| wait                | SQLite                        | PostgreSQL                              |
|---------------------|-------------------------------|-----------------------------------------|
| connecting          | the driver's timeout          | asyncpg's connect `timeout`             |
| a lock              | busy_timeout (BEGIN IMMEDIATE | lock_timeout                            |
|                     | waits for the write lock)     |                                         |
| a statement         | (only locks make SQLite wait) | statement_timeout on the server, and    |
|                     |                               | asyncpg's command_timeout a second      |
|                     |                               | later for a server that stopped         |
|                     |                               | answering altogether                    |
| a pooled connection | the pool's timeout, extended while the database keeps answering others |
|                     | (a burst queues; a database that answers nobody fails the wait)        |

A wait that runs out, or a lost connection, raises `DatabaseUnavailable` instead of the
driver's error. SQLAlchemy invalidates connections that timed out and the pool pings a
connection before lending it, so the bot recovers by itself when the database is back.
Migrations run on an engine of their own without statement limits (one process may wait
for another's migration), and `/healthz` asks through a `Probe` that never queues behind
the pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import sqlite3
import time
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, Connection, ExceptionContext, ExecutionContext, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import AsyncAdaptedQueuePool, ConnectionPoolEntry, NullPool
from sqlalchemy.pool.base import PoolProxiedConnection
from sqlalchemy.util import await_

from bot.base.errors import DatabaseUnavailable

# Seconds any one wait for the database may take (DATABASE_TIMEOUT_SECONDS).
DEFAULT_TIMEOUT = 5.0
# A burst of work may queue this long for a pooled connection while the database keeps
# answering; a database that answers nobody fails the wait after `timeout`.
POOL_PATIENCE = 120.0
# SQLite locks during migrations: another process may be migrating the same file.
MIGRATION_BUSY_SECONDS = 30.0
# /healthz's own connection: connect and one statement, each within this.
PROBE_SECONDS = 1.0

# PostgreSQL error classes that mean "not now" rather than "wrong": connection exceptions,
# insufficient resources, operator intervention (includes query_canceled by
# statement_timeout, admin_shutdown), and lock_not_available (lock_timeout).
UNAVAILABLE_CLASSES = frozenset({"08", "53", "57"})
UNAVAILABLE_STATES = frozenset({"55P03"})
# SQLite primary result codes that mean the same: BUSY, LOCKED, IOERR, FULL, CANTOPEN.
UNAVAILABLE_SQLITE = frozenset({5, 6, 10, 13, 14})


def async_url(url: str) -> URL:
    """Pick the async driver for a plain sqlite:/// or postgresql:// URL."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend in ("postgres", "postgresql"):
        return parsed.set(drivername="postgresql+asyncpg")
    if backend == "sqlite":
        return parsed.set(drivername="sqlite+aiosqlite")
    raise ValueError(f"unsupported database {backend!r}: use SQLite or PostgreSQL")


def _is_memory(target: URL) -> bool:
    return target.get_backend_name() == "sqlite" and target.database in (None, "", ":memory:")


# --- what counts as "the database is unavailable" ----------------------------------------


def unavailable(e: BaseException) -> bool:
    """Whether a driver error means the database cannot be used right now."""
    if isinstance(e, OSError):  # includes TimeoutError: connect or command timeout
        return True
    cause = e.__cause__ if e.__cause__ is not None else e
    sqlstate = getattr(e, "sqlstate", None) or getattr(cause, "sqlstate", None)
    if isinstance(sqlstate, str):
        return sqlstate[:2] in UNAVAILABLE_CLASSES or sqlstate in UNAVAILABLE_STATES
    if isinstance(e, sqlite3.Error):
        code = getattr(e, "sqlite_errorcode", None)
        if isinstance(code, int):
            return code & 0xFF in UNAVAILABLE_SQLITE
        return "locked" in str(e)
    return False


def explain(e: BaseException, timeout: float) -> DatabaseUnavailable:
    """The driver's reason in one line, never the statement or its parameters."""
    if isinstance(e, sa_exc.TimeoutError):
        return DatabaseUnavailable(f"no connection came free within {timeout:g} s")
    if isinstance(e, TimeoutError):
        return DatabaseUnavailable(f"no answer within {timeout:g} s")
    first = (str(e).strip().splitlines() or [""])[0][:200]
    reason = f"{type(e).__name__}: {first}" if first else type(e).__name__
    return DatabaseUnavailable(reason)


# --- the pool ---------------------------------------------------------------------------


class _Progress:
    """When a statement last finished: whether the database is answering anyone."""

    def __init__(self) -> None:
        self.last = -math.inf

    def mark(self) -> None:
        self.last = time.monotonic()


def _bounded_pool(progress: _Progress, timeout: float) -> type[AsyncAdaptedQueuePool]:
    """A queue pool whose checkouts fail with DatabaseUnavailable, and that keeps queueing
    past `timeout` only while other statements finish (a class per engine, because
    SQLAlchemy re-creates pools from their class)."""

    class BoundedPool(AsyncAdaptedQueuePool):
        # Logs as SQLAlchemy's own pool does (quiet below WARNING unless asked).
        _sqla_logger_namespace = "sqlalchemy.pool.impl.AsyncAdaptedQueuePool"

        def connect(self) -> PoolProxiedConnection:
            try:
                return super().connect()
            except (OSError, sa_exc.TimeoutError) as e:
                raise explain(e, timeout) from e

        def _do_get(self) -> ConnectionPoolEntry:
            give_up = time.monotonic() + POOL_PATIENCE
            while True:
                asked = time.monotonic()
                try:
                    return super()._do_get()
                except sa_exc.TimeoutError:
                    if progress.last < asked or time.monotonic() >= give_up:
                        raise

    return BoundedPool


# --- what an operation stored ------------------------------------------------------------


@dataclass
class Writes:
    """Whether a transaction that wrote something was committed (or its commit sent)."""

    stored: bool = False


_writes: ContextVar[Writes | None] = ContextVar("database_writes", default=None)


@contextlib.contextmanager
def watching_writes() -> Iterator[Writes]:
    """Record, for the work run inside, whether anything was stored: a database error
    after that must not tell the person that nothing was changed."""
    writes = Writes()
    token = _writes.set(writes)
    try:
        yield writes
    finally:
        _writes.reset(token)


WRITE_VERBS = ("INSERT", "UPDATE", "DELETE")


def _writes_data(statement: str, context: ExecutionContext | None) -> bool:
    if context is not None and any(
        getattr(context, flag, False) for flag in ("isinsert", "isupdate", "isdelete")
    ):
        return True
    return statement.lstrip()[:6].upper() in WRITE_VERBS


def _watch(engine: AsyncEngine, progress: _Progress, timeout: float) -> None:
    sync = engine.sync_engine

    @event.listens_for(sync, "after_cursor_execute")
    def _executed(
        conn: Connection,
        cursor: Any,
        statement: str,
        parameters: Any,
        context: ExecutionContext | None,
        executemany: bool,
    ) -> None:
        progress.mark()
        if _writes_data(statement, context):
            conn.info["wrote"] = True

    @event.listens_for(sync, "commit")
    def _commit(conn: Connection) -> None:
        writes = _writes.get()
        if conn.info.pop("wrote", False) and writes is not None:
            writes.stored = True

    @event.listens_for(sync, "rollback")
    def _rollback(conn: Connection) -> None:
        # A connection lost mid-statement (a cancelled task) cannot be asked for its info;
        # it is discarded anyway, and what it wrote was not committed.
        with contextlib.suppress(sa_exc.SQLAlchemyError):
            conn.info.pop("wrote", None)

    @event.listens_for(sync, "handle_error")
    def _translate(ctx: ExceptionContext) -> BaseException | None:
        # A failed ping before lending a connection is SQLAlchemy's cue to reconnect.
        if ctx.is_pre_ping:
            return None
        # A cancelled task (a heartbeat stopped, a stop's grace ran out) stays cancelled:
        # SQLAlchemy counts the interrupted connection as lost, but the database is fine.
        if isinstance(ctx.original_exception, asyncio.CancelledError):
            return None
        if ctx.is_disconnect or unavailable(ctx.original_exception):
            return explain(ctx.original_exception, timeout)
        return None


@contextlib.contextmanager
def _as_the_engine_says(patience: float) -> Iterator[None]:
    """A SQLite error from a call made past SQLAlchemy, as the engine's error hook would
    have said it (busy past the timeout: DatabaseUnavailable)."""
    try:
        yield
    except sqlite3.Error as e:
        if unavailable(e):
            raise explain(e, patience) from e
        raise


async def sqlite_rows(
    conn: AsyncConnection, sql: str, args: tuple[Any, ...], *, patience: float
) -> list[Any]:
    """One SQLite statement in the connection's transaction, straight through aiosqlite:
    one trip to its thread, where SQLAlchemy's cursor takes four (open, execute, fetch,
    close). Counts as a write, and its errors read as the engine's own would (`patience`:
    the engine's timeout, which they name)."""
    raw = await conn.get_raw_connection()
    driver: Any = raw.driver_connection
    with _as_the_engine_says(patience):
        rows = await driver.execute_fetchall(sql, args)
    if _writes_data(sql, None):
        conn.info["wrote"] = True
    return list(rows)


# --- engines ----------------------------------------------------------------------------


def _sqlite(target: URL, *, busy: float, immediate: bool, **options: Any) -> AsyncEngine:
    if target.database and target.database != ":memory:":
        Path(target.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(target, connect_args={"timeout": busy}, **options)

    @event.listens_for(engine.sync_engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={int(busy * 1000)}")
        cur.close()

    if immediate:
        # SQLite's default deferred transactions fail with "database is locked" when two
        # writers upgrade their read locks at once; taking the write lock at BEGIN makes
        # them queue instead (SQLAlchemy's documented recipe for pysqlite/aiosqlite).
        @event.listens_for(engine.sync_engine, "begin")
        def _begin(conn: Connection) -> None:
            # Straight to aiosqlite: one trip to its thread, where a statement through
            # SQLAlchemy's cursor takes three (open, execute, close), on every transaction.
            driver: Any = conn.connection.driver_connection
            with _as_the_engine_says(busy):
                await_(driver.execute_fetchall("BEGIN IMMEDIATE"))

    return engine


def _postgres_args(connect: float, statements: float | None) -> dict[str, Any]:
    args: dict[str, Any] = {"timeout": connect}
    if statements is not None:
        ms = str(int(statements * 1000))
        args["command_timeout"] = statements + 1
        args["server_settings"] = {"statement_timeout": ms, "lock_timeout": ms}
    return args


# Connections kept open to PostgreSQL; operations run at once are sized to it (app.py).
POOL_SIZE = 10


def make_engine(url: str, *, timeout: float = DEFAULT_TIMEOUT) -> AsyncEngine:
    """The bot's engine: every wait bounded by `timeout` seconds."""
    target = async_url(url)
    progress = _Progress()
    pooled: dict[str, Any] = {}
    if not _is_memory(target):
        pooled = {"poolclass": _bounded_pool(progress, timeout), "pool_timeout": timeout}
    if target.get_backend_name() == "sqlite":
        engine = _sqlite(target, busy=timeout, immediate=True, **pooled)
    else:
        engine = create_async_engine(
            target,
            pool_pre_ping=True,
            pool_size=POOL_SIZE,
            max_overflow=10,
            connect_args=_postgres_args(timeout, timeout),
            **pooled,
        )
    _watch(engine, progress, timeout)
    return engine


def _migration_engine(target: URL, timeout: float) -> AsyncEngine:
    """Connecting is bounded; statements are not (one process waits for another's
    migration, and a migration may take its time)."""
    if target.get_backend_name() == "sqlite":
        return _sqlite(target, busy=MIGRATION_BUSY_SECONDS, immediate=True, poolclass=NullPool)
    return create_async_engine(
        target, poolclass=NullPool, connect_args=_postgres_args(timeout, None)
    )


MIGRATIONS = Path(__file__).parent / "migrations"


class _MigrationLines(logging.Filter):
    """A start says what it does in a few lines: a migration applied is one line (its
    summary's first), and Alembic's set-up chatter (plugins, the dialect) is left out."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.WARNING:
            return True
        message = record.getMessage()
        if not message.startswith("Running upgrade"):
            return False
        record.msg, record.args = message.splitlines()[0], None
        return True


for _name in ("alembic.runtime.plugins", "alembic.runtime.migration"):
    logging.getLogger(_name).addFilter(_MigrationLines())


def _upgrade(conn: Connection) -> None:
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = conn
    if conn.dialect.name == "postgresql":
        # Several bot processes may start at once; one migrates, the others wait.
        conn.exec_driver_sql("SELECT pg_advisory_xact_lock(727274)")
    command.upgrade(cfg, "head")


async def migrate(engine: AsyncEngine, *, connect_within: float = DEFAULT_TIMEOUT) -> None:
    """Bring the schema up to date, on an engine of its own (an in-memory SQLite
    database only exists on `engine` itself)."""
    if _is_memory(engine.url):
        async with engine.begin() as conn:
            await conn.run_sync(_upgrade)
        return
    migrating = _migration_engine(engine.url, connect_within)
    try:
        async with migrating.begin() as conn:
            await conn.run_sync(_upgrade)
    except (OSError, sa_exc.TimeoutError) as e:
        raise explain(e, connect_within) from e
    finally:
        await migrating.dispose()


# --- /healthz ---------------------------------------------------------------------------


class Probe:
    """Whether the database answers, asked on a connection of its own (never queued
    behind a pool whose connections hang), one question at a time: callers arriving
    while one is under way share its answer."""

    def __init__(self, url: str, *, timeout: float = PROBE_SECONDS):
        target = async_url(url)
        if target.get_backend_name() == "sqlite":
            # Reading the schema touches the file; a reader is not blocked by a writer.
            self._sql = "SELECT count(*) FROM sqlite_master"
            self.engine = create_async_engine(
                target, poolclass=NullPool, connect_args={"timeout": timeout}
            )
        else:
            self._sql = "SELECT 1"
            self.engine = create_async_engine(
                target,
                poolclass=NullPool,
                connect_args={"timeout": timeout, "command_timeout": timeout},
            )
        self._asking: asyncio.Task[bool] | None = None

    async def answers(self, within: float) -> bool:
        """True if the database answered within `within` seconds; never waits longer,
        whatever state the database is in."""
        if self._asking is None or self._asking.done():
            self._asking = asyncio.create_task(self._ask())
        done, _ = await asyncio.wait({self._asking}, timeout=within)
        return self._asking in done and self._asking.result()

    async def _ask(self) -> bool:
        try:
            async with self.engine.connect() as conn:
                await conn.exec_driver_sql(self._sql)
            return True
        except Exception:
            return False

    async def close(self) -> None:
        if self._asking is not None and not self._asking.done():
            self._asking.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._asking
        await self.engine.dispose()
