"""Shared fixtures: a fake Slack, databases (SQLite and PostgreSQL), and the real bot over HTTP.

PostgreSQL tests run when TEST_POSTGRES_URL points at a server (`.ci/run` sets it); each test
gets a database of its own. Without it they are skipped and the summary says so.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from bot.app import BotApp
from bot.settings import Settings
from bot.store import Incident, Store, TimelineEntry
from tests.fakeslack import FakeSlack, SlackSender

SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
BOT_TOKEN = "xoxb-111-222-fakebottoken"
POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "").strip()

ALICE, BOB, CAROL = "U0ALICE", "U0BOB", "U0CAROL"
GENERAL = "C0GENERAL"

# Settings the developer's shell may carry must not leak into tests.
for _name in Settings.model_fields:
    os.environ.pop(_name.upper(), None)

_postgres_skips = 0


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not POSTGRES_URL and _postgres_skips:
        terminalreporter.write_sep(
            "=",
            f"PostgreSQL SKIPPED: {_postgres_skips} database tests ran on SQLite only. "
            "Set TEST_POSTGRES_URL=postgresql://user@host:5432/db to run them "
            "(bash .ci/run does).",
            yellow=True,
            bold=True,
        )


async def _admin(sql: str) -> None:
    import asyncpg

    url = make_url(POSTGRES_URL)
    conn = await asyncpg.connect(
        host=url.host or "127.0.0.1",
        port=url.port or 5432,
        user=url.username or "postgres",
        password=url.password,
        database=url.database or "postgres",
        timeout=5,
    )
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture(params=["sqlite", "postgres"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Any) -> AsyncIterator[str]:
    """A fresh, empty database of each kind."""
    global _postgres_skips
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/incident-bot.db"
        return
    if not POSTGRES_URL:
        _postgres_skips += 1
        pytest.skip("PostgreSQL not configured (TEST_POSTGRES_URL unset)")
    name = f"incident_bot_test_{uuid.uuid4().hex[:12]}"
    try:
        await _admin(f'CREATE DATABASE "{name}"')
    except Exception as e:
        # Asked for and unreachable is a failure, never a silent skip.
        pytest.fail(f"TEST_POSTGRES_URL is set but PostgreSQL is not usable: {e}")
    yield make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    async with FakeSlack(bot_token=BOT_TOKEN) as slack:
        slack.add_user(ALICE, "alice", real_name="Alice Archer")
        slack.add_user(BOB, "bob", real_name="Bob Baker")
        slack.add_user(CAROL, "carol", real_name="Carol Chen")
        slack.add_user("U0HELPER", "deploybot", real_name="Deploy Bot", is_bot=True)
        slack.add_user("U0GONE", "gone", real_name="Gone Person", deleted=True)
        slack.add_channel("general", id=GENERAL, members=[ALICE, BOB, CAROL, "UBOT"])
        yield slack


def settings_for(fake: FakeSlack, database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "slack_bot_token": BOT_TOKEN,
        "slack_signing_secret": SIGNING_SECRET,
        "slack_api_url": fake.api_url,
        "database_url": database_url,
        "port": 3000,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@dataclass
class Bot:
    """A running bot, the fake Slack it talks to, and a sender that plays Slack."""

    app: BotApp
    fake: FakeSlack
    slack: SlackSender
    url: str
    _extra: list[Any] = field(default_factory=list)

    @property
    def store(self) -> Store:
        return self.app.store

    async def incidents(self) -> list[Incident]:
        from sqlmodel import select

        async with self.store.sessions() as s:
            rows = (await s.execute(select(Incident).order_by(Incident.number))).scalars()
            return list(rows)

    async def timeline(self, incident: Incident) -> list[TimelineEntry]:
        assert incident.id is not None
        return list(await self.store.timeline(incident.id))

    async def settled(self, timeout: float = 10) -> None:
        """Wait until no listener work is in flight: every operation has finished."""
        await until(lambda: self.app.busy() == 0, timeout=timeout, message="bot idle")

    async def ask(self, text: str, *, user: str, channel: str) -> list[dict[str, Any]]:
        """Run a slash command to completion; what the person was told (ack first)."""
        before = len(self.fake.responses)
        reply = await self.slack.command(text, user=user, channel=channel)
        assert reply.status == 200, reply
        await self.settled()
        told: list[dict[str, Any]] = []
        if reply.text:
            told.append(reply.json if reply.json is not None else {"text": reply.text})
        return told + [r.body for r in self.fake.responses[before:]]

    def private_to(self, user: str) -> list[str]:
        """What the bot told one person privately: ephemerals, then DMs."""
        said = [e.get("text", "") for e in self.fake.ephemerals if e.get("user") == user]
        if self.fake.dm_channel(user) is not None:
            said += [m.get("text", "") for m in self.fake.messages(user, include_system=False)]
        return said

    async def wait_provisioned(self, number: int = 1, timeout: float = 10) -> Incident:
        async def ready() -> Incident | None:
            for inc in await self.incidents():
                if inc.number == number and inc.provisioned:
                    return inc
            return None

        return await until(ready, timeout=timeout, message=f"INC-{number} provisioned")


async def until(check: Callable[[], Any], *, timeout: float = 10, message: str = "") -> Any:
    """Poll a check (plain or async) until it returns something truthy; return that."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = check()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {message or check}")
        await asyncio.sleep(0.02)


StartBot = Callable[..., Awaitable[Bot]]


@pytest.fixture
async def start_bot(fake: FakeSlack, database_url: str) -> AsyncIterator[StartBot]:
    """Start a bot (several, for restarts or multiple processes) on the same database."""
    running: list[Bot] = []

    async def start(
        clock: Callable[[], datetime] | None = None,
        reminder_sync_seconds: float = 30.0,
        lease_seconds: float = 30.0,
        **overrides: Any,
    ) -> Bot:
        settings = settings_for(fake, database_url, **overrides)
        app = BotApp(
            settings,
            reminder_sync_seconds=reminder_sync_seconds,
            lease_seconds=lease_seconds,
            **({"clock": clock} if clock else {}),
        )
        await app.start(host="127.0.0.1", port=0)
        url = f"http://127.0.0.1:{app.port}/slack/events"
        sender = SlackSender(url, SIGNING_SECRET, fake)
        bot = Bot(app=app, fake=fake, slack=sender, url=url)
        running.append(bot)
        return bot

    yield start
    for bot in running:
        await bot.slack.close()
        await bot.app.stop(grace=5)


@pytest.fixture
async def bot(start_bot: StartBot) -> Bot:
    return await start_bot()
