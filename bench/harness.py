"""What every figure shares: the fake Slack, the running bot, databases, statistics, rows."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import math
import os
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy.engine import make_url

from bot.app import EVENTS_PATH
from bot.base.settings import Settings
from bot.fakeslack import FakeSlack, SlackSender
from bot.outbound.store import Store

BOT_TOKEN = "xoxb-111-222-benchbottoken"  # noqa: S105 - the fake's token, not a secret
SIGNING_SECRET = "bench0signing0secret0000000000ab"  # noqa: S105 - a test value
ALICE = "U0ALICE"
GENERAL = "C0GENERAL"
# The announcements channel every figure's bot posts to, as a deployed bot does.
ANNOUNCE = "C0INCIDENTS"
DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"
ROOT = Path(__file__).resolve().parent.parent


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


# --- fake Slack, databases, the bot ----------------------------------------------------------


@contextlib.asynccontextmanager
async def fake_slack(people: int = 0, *, rate_limits: bool = False) -> AsyncIterator[FakeSlack]:
    """A started fake workspace with Alice, `people` more users and #general; Slack's
    rate-limit tiers enforced when `rate_limits`."""
    async with FakeSlack(bot_token=BOT_TOKEN, rate_limits=rate_limits) as fake:
        fake.add_user(ALICE, "alice", real_name="Alice Archer")
        for i in range(people):
            fake.add_user(person(i), f"person{i}", real_name=f"Person {i}")
        members = [ALICE, fake.bot_user_id, *(person(i) for i in range(people))]
        fake.add_channel("general", id=GENERAL, members=members)
        fake.add_channel("incidents", id=ANNOUNCE, members=members)
        yield fake


def person(i: int) -> str:
    return f"U0P{i:06d}"


async def postgres_problem(url: str) -> str | None:
    """None when PostgreSQL at `url` accepts connections; otherwise why not."""
    import asyncpg  # type: ignore[import-untyped]

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
        # What a team deploys: INFO logs, Slack's pacing on, an announcements channel.
        # A figure that measures the bot's own capacity rather than Slack's says so.
        "log_level": "INFO",
        "slack_pacing": True,
        "announcements_channel": ANNOUNCE,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


# Warnings the bot's processes logged during this figure, by kind (see `Warnings`).
BOT_WARNINGS: Counter[str] = Counter()


def proc_status(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM (peak) of process `pid` in MiB, from /proc (Linux)."""
    values: dict[str, float] = {}
    try:
        text = Path(f"/proc/{pid}/status").read_text(encoding="utf-8")
    except OSError:
        return values
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) / 1024
    return values


class BotSide:
    """A `python -m bench.botside` process: the bot (or bare Bolt) alone, measured from
    outside (/proc) and asked through its control port."""

    def __init__(self, proc: asyncio.subprocess.Process, port: int, control: int) -> None:
        self.proc = proc
        self.pid = proc.pid
        self.url = f"http://127.0.0.1:{port}{EVENTS_PATH}"
        self._control = f"http://127.0.0.1:{control}"
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=900))

    @classmethod
    async def launch(cls, config: dict[str, Any]) -> BotSide:
        # Its log goes to a file, as a deployed bot's goes to its collector, not to the
        # terminal the figures print on.
        log = Path(tempfile.gettempdir()) / f"bench-{config['mode']}-{os.getpid()}.log"
        with log.open("a", encoding="utf-8") as sink:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bench.botside",
                json.dumps(config),
                cwd=ROOT,
                stdout=asyncio.subprocess.PIPE,
                stderr=sink,
            )
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), timeout=120)
        if not line:
            await proc.wait()
            raise RuntimeError(f"the bot's process exited with {proc.returncode} on start")
        ready = json.loads(line)
        return cls(proc, ready["port"], ready["control"])

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        async with self._http.request(method, self._control + path, **kwargs) as response:
            response.raise_for_status()
            return await response.json()

    async def state(self, *, provisioned: bool = False) -> dict[str, Any]:
        query = "?provisioned=1" if provisioned else ""
        return dict(await self._call("GET", f"/state{query}"))

    async def reset_stalls(self) -> None:
        await self._call("POST", "/stalls/reset")

    async def postmortem(self, what: str, channel: str, incident_id: int = 0) -> dict[str, Any]:
        """Time `what` ("compile", "history" or "plain") once in the bot's process."""
        body = {"channel": channel, "incident_id": incident_id, "what": what}
        return dict(await self._call("POST", "/postmortem", json=body))

    def memory(self) -> dict[str, float]:
        """{"VmRSS": now, "VmHWM": peak} in MiB."""
        return proc_status(self.pid)

    def reset_peak(self) -> bool:
        """Restart the process's peak-RSS count (VmHWM) from its current RSS; False where
        the kernel does not allow it (the peak then covers the whole process life)."""
        try:
            Path(f"/proc/{self.pid}/clear_refs").write_text("5", encoding="utf-8")
        except OSError:
            return False
        return True

    async def stop(self, grace: float = 30) -> None:
        try:
            answer = await self._call("POST", f"/stop?grace={grace}")
            BOT_WARNINGS.update(answer.get("warnings") or {})
        finally:
            await self._http.close()
            try:
                await asyncio.wait_for(self.proc.wait(), timeout=grace + 30)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()


@dataclass
class RunningBot:
    side: BotSide
    slack: SlackSender
    url: str

    async def provisioned(self) -> int:
        return int((await self.side.state(provisioned=True))["provisioned"])

    async def idle(self, within: float = 60) -> None:
        """Wait until no listener, background or reminder work is in flight."""

        async def quiet() -> bool:
            return int((await self.side.state())["busy"]) == 0

        await wait_until(quiet, within=within, interval=0.1, what="the bot to be idle")


def side_config(
    fake: FakeSlack, database_url: str, *, mode: str = "bot", **kw: Any
) -> dict[str, Any]:
    sync = kw.pop("reminder_sync_seconds", 30.0)
    values: dict[str, Any] = {
        "slack_bot_token": BOT_TOKEN,
        "slack_signing_secret": SIGNING_SECRET,
        "slack_api_url": fake.api_url,
        "database_url": database_url,
        # What a team deploys: INFO logs, Slack's pacing on, an announcements channel.
        # A figure that measures the bot's own capacity rather than Slack's says so.
        "log_level": "INFO",
        "slack_pacing": True,
        "announcements_channel": ANNOUNCE,
    }
    values.update(kw)
    return {"mode": mode, "settings": values, "reminder_sync_seconds": sync}


@contextlib.asynccontextmanager
async def running_bot(
    fake: FakeSlack, database_url: str, *, reminder_sync_seconds: float = 30.0, **overrides: Any
) -> AsyncIterator[RunningBot]:
    """The real bot in a process of its own, serving HTTP on a free port, its Web API calls
    going to `fake` (which runs in this process)."""
    config = side_config(
        fake, database_url, reminder_sync_seconds=reminder_sync_seconds, **overrides
    )
    side = await BotSide.launch(config)
    sender = SlackSender(side.url, SIGNING_SECRET, fake, timeout=120)
    try:
        yield RunningBot(side, sender, side.url)
    finally:
        await sender.close()
        await side.stop(grace=30)


@contextlib.asynccontextmanager
async def bare_bolt(fake: FakeSlack) -> AsyncIterator[RunningBot]:
    """A bare Bolt app (one listener that only acks) in a process of its own, served the
    same way as the bot."""
    side = await BotSide.launch(side_config(fake, "", mode="bare"))
    sender = SlackSender(side.url, SIGNING_SECRET, fake, timeout=120)
    try:
        yield RunningBot(side, sender, side.url)
    finally:
        await sender.close()
        await side.stop(grace=5)


async def migrated_store(database_url: str) -> Store:
    """The bot's store with its schema, for seeding rows before the bot starts."""
    store = Store(database_url)
    await store.migrate()
    return store
