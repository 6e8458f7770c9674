"""What every figure shares: the fake Slack, the running bot, databases, statistics, rows."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import inspect
import logging
import math
import os
import re
import resource
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from sqlmodel import col

from bot.app import EVENTS_PATH, BotApp
from bot.settings import Settings
from bot.store import Incident, Store
from tests.fakeslack import FakeSlack, SlackSender

BOT_TOKEN = "xoxb-111-222-benchbottoken"  # noqa: S105 - the fake's token, not a secret
SIGNING_SECRET = "bench0signing0secret0000000000ab"  # noqa: S105 - a test value
ALICE = "U0ALICE"
GENERAL = "C0GENERAL"
DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"


def clean_environment() -> None:
    """Settings the shell may carry (ANNOUNCEMENTS_CHANNEL, ...) must not change the figures."""
    for name in Settings.model_fields:
        os.environ.pop(name.upper(), None)


# --- results ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One line of the results table."""

    figure: str
    measure: str
    result: str
    notes: str = ""


@dataclass
class Outcome:
    """What one figure reports: table rows plus lines that explain them."""

    rows: list[Row] = field(default_factory=list)
    details: list[str] = field(default_factory=list)

    def row(self, figure: str, measure: str, result: str, notes: str = "") -> None:
        self.rows.append(Row(figure, measure, result, notes))

    def say(self, line: str) -> None:
        self.details.append(line)
        print(f"  {line}", file=sys.stderr, flush=True)


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of a non-empty sequence."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def ms(seconds: float) -> str:
    """Milliseconds below a second, seconds above: `12.3 ms`, `840.0 ms`, `12.44 s`."""
    return f"{seconds * 1000:.1f} ms" if abs(seconds) < 1 else f"{seconds:.2f} s"


def max_rss_mib() -> float:
    """This process's peak resident set so far (ru_maxrss is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


async def wait_until(
    check: Callable[[], Any], *, within: float, interval: float = 0.01, what: str = ""
) -> Any:
    """Poll `check` (plain or async) until it returns something truthy, for at most `within`
    seconds; return that."""
    deadline = time.monotonic() + within
    while True:
        value = check()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up after {within:.0f} s waiting for {what or check}")
        await asyncio.sleep(interval)


class LoopStalls:
    """Measures how long the event loop goes without running other work: a task asks to
    wake every `tick` s and records how late it wakes. A request arriving meanwhile (an
    ack Slack waits for) waits at least that long. Garbage collections are timed too, as
    one cause of stalls."""

    def __init__(self, tick: float = 0.005) -> None:
        self.tick = tick
        self.longest = 0.0
        self.longest_gc = 0.0
        self._gc_started = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _watch(self) -> None:
        while True:
            before = time.perf_counter()
            await asyncio.sleep(self.tick)
            self.longest = max(self.longest, time.perf_counter() - before - self.tick)

    def _gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._gc_started = time.perf_counter()
        else:
            self.longest_gc = max(self.longest_gc, time.perf_counter() - self._gc_started)

    def summary(self) -> str:
        return (
            f"longest event-loop stall {self.longest * 1000:.0f} ms (longest garbage "
            f"collection {self.longest_gc * 1000:.0f} ms)"
        )

    async def __aenter__(self) -> LoopStalls:
        gc.callbacks.append(self._gc)
        self._task = asyncio.create_task(self._watch())
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        gc.callbacks.remove(self._gc)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


class Warnings(logging.Handler):
    """Counts the warnings and errors logged while a figure runs, by logger and message."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.seen: Counter[str] = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        # One entry per kind of message: numbers and times vary between repeats.
        shape = re.sub(r"\d[\d:.\-]*", "N", message)[:160]
        self.seen[f"{record.name}: {shape}"] += 1

    def __enter__(self) -> Warnings:
        logging.getLogger().addHandler(self)
        return self

    def __exit__(self, *exc_info: object) -> None:
        logging.getLogger().removeHandler(self)

    def summary(self) -> str:
        if not self.seen:
            return "no warnings logged"
        return "warnings logged: " + "; ".join(f"{n}× {what}" for what, n in self.seen.items())


# --- fake Slack, databases, the bot ----------------------------------------------------------


@contextlib.asynccontextmanager
async def fake_slack(people: int = 0) -> AsyncIterator[FakeSlack]:
    """A started fake workspace with Alice, `people` more users and #general."""
    async with FakeSlack(bot_token=BOT_TOKEN) as fake:
        fake.add_user(ALICE, "alice", real_name="Alice Archer")
        for i in range(people):
            fake.add_user(person(i), f"person{i}", real_name=f"Person {i}")
        members = [ALICE, fake.bot_user_id, *(person(i) for i in range(people))]
        fake.add_channel("general", id=GENERAL, members=members)
        yield fake


def person(i: int) -> str:
    return f"U0P{i:06d}"


async def postgres_problem(url: str) -> str | None:
    """None when PostgreSQL at `url` accepts connections; otherwise why not."""
    import asyncpg

    parsed = make_url(url)
    try:
        conn = await asyncpg.connect(
            host=parsed.host or "127.0.0.1",
            port=parsed.port or 5432,
            user=parsed.username or "postgres",
            password=parsed.password,
            database=parsed.database or "postgres",
            timeout=5,
        )
    except Exception as e:
        return f"{type(e).__name__}: {e}".strip()
    await conn.close()
    return None


async def postgres_version(url: str) -> str:
    import asyncpg

    parsed = make_url(url)
    conn = await asyncpg.connect(
        host=parsed.host or "127.0.0.1",
        port=parsed.port or 5432,
        user=parsed.username or "postgres",
        password=parsed.password,
        database=parsed.database or "postgres",
        timeout=5,
    )
    try:
        return str(await conn.fetchval("SHOW server_version"))
    finally:
        await conn.close()


async def _postgres_admin(url: str, sql: str) -> None:
    import asyncpg

    parsed = make_url(url)
    conn = await asyncpg.connect(
        host=parsed.host or "127.0.0.1",
        port=parsed.port or 5432,
        user=parsed.username or "postgres",
        password=parsed.password,
        database=parsed.database or "postgres",
        timeout=5,
    )
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def database(kind: str, postgres_url: str | None = None) -> AsyncIterator[str]:
    """A fresh, empty database URL: a SQLite file in a temporary directory, or a PostgreSQL
    database named bench_<random> that is dropped afterwards."""
    if kind == "sqlite":
        with tempfile.TemporaryDirectory(prefix="incident-bench-") as tmp:
            yield f"sqlite:///{tmp}/bench.db"
        return
    assert kind == "postgres" and postgres_url
    name = f"bench_{uuid.uuid4().hex[:12]}"
    await _postgres_admin(postgres_url, f'CREATE DATABASE "{name}"')
    try:
        yield make_url(postgres_url).set(database=name).render_as_string(hide_password=False)
    finally:
        await _postgres_admin(postgres_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass(frozen=True)
class Database:
    """Where a figure keeps the bot's data: SQLite, or PostgreSQL on `server`."""

    kind: str  # "sqlite" or "postgres"
    server: str | None = None

    @property
    def label(self) -> str:
        return "SQLite" if self.kind == "sqlite" else "PostgreSQL"

    def open(self) -> contextlib.AbstractAsyncContextManager[str]:
        return database(self.kind, self.server)


SQLITE = Database("sqlite")


class CallCounter:
    """Successful Web API calls per method since it was made, counted as they arrive."""

    def __init__(self, fake: FakeSlack) -> None:
        self.fake = fake
        self.first = self.seen = len(fake.calls)
        self.counts: Counter[str] = Counter()

    def ok(self, methods: Sequence[str]) -> list[int]:
        calls = self.fake.calls
        for call in calls[self.seen :]:
            if call.ok:
                self.counts[call.method] += 1
        self.seen = len(calls)
        return [self.counts[m] for m in methods]


def settings_for(fake: FakeSlack, database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "slack_bot_token": BOT_TOKEN,
        "slack_signing_secret": SIGNING_SECRET,
        "slack_api_url": fake.api_url,
        "database_url": database_url,
        "log_level": "WARNING",
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@dataclass
class RunningBot:
    app: BotApp
    slack: SlackSender
    url: str

    async def provisioned(self) -> int:
        async with self.app.store.sessions() as s:
            stmt = select(func.count()).select_from(Incident).where(col(Incident.provisioned))
            return int((await s.execute(stmt)).scalar_one())

    async def idle(self, within: float = 60) -> None:
        """Wait until no listener, background or reminder work is in flight."""
        await wait_until(
            lambda: self.app.busy() == 0 and scheduler_jobs() == 0,
            within=within,
            what="the bot to be idle",
        )


def scheduler_jobs() -> int:
    """APScheduler's own job-running tasks in flight (around what `BotApp.busy()` counts)."""
    running = 0
    for task in asyncio.all_tasks():
        code = getattr(task.get_coro(), "cr_code", None)
        if "apscheduler" in (getattr(code, "co_filename", "") or ""):
            running += 1
    return running


@contextlib.asynccontextmanager
async def running_bot(
    fake: FakeSlack, database_url: str, *, reminder_sync_seconds: float = 30.0, **overrides: Any
) -> AsyncIterator[RunningBot]:
    """The real bot serving HTTP on a free port, its Web API calls going to `fake`."""
    app = BotApp(
        settings_for(fake, database_url, **overrides), reminder_sync_seconds=reminder_sync_seconds
    )
    await app.start(host="127.0.0.1", port=0)
    url = f"http://127.0.0.1:{app.port}{EVENTS_PATH}"
    sender = SlackSender(url, SIGNING_SECRET, fake, timeout=120)
    try:
        yield RunningBot(app, sender, url)
    finally:
        await sender.close()
        await app.stop(grace=30)


async def migrated_store(database_url: str) -> Store:
    """The bot's store with its schema, for seeding rows before the bot starts."""
    store = Store(database_url)
    await store.migrate()
    return store
