"""Shared fixtures: a fake Slack, databases (SQLite and PostgreSQL), and the real bot over HTTP.

PostgreSQL tests run when TEST_POSTGRES_URL points at a server (`.ci/run` sets it); each test
gets a database of its own. Without it they are skipped and the summary says so. What tests
share besides fixtures (people, channels, the Bot wrapper, polling) is in support.py.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from bot.app import BotApp
from bot.base import settings as bot_settings
from bot.base.settings import Settings
from bot.fakeslack import FakeSlack, SlackSender, SocketModeSender
from tests.drafts import every_draft_reads_as_slack_showed  # noqa: F401 (autouse fixture)
from tests.support import (
    ALICE,
    BOB,
    BOT_TOKEN,
    CAROL,
    GENERAL,
    POSTGRES_URL,
    SIGNING_SECRET,
    TEST_REMINDER_MINUTES,
    Bot,
    StartBot,
    postgres_admin,
    settings_for,
)

# Settings the developer's shell may carry must not leak into tests.
for _name in Settings.model_fields:
    os.environ.pop(_name.upper(), None)

POSTGRES_SKIP = "PostgreSQL not configured (TEST_POSTGRES_URL unset)"


def pytest_terminal_summary(terminalreporter: Any) -> None:
    # Counted from the reports, so the count holds with test workers (pytest-xdist) too.
    skips = sum(
        1 for r in terminalreporter.stats.get("skipped", []) if POSTGRES_SKIP in str(r.longrepr)
    )
    if not POSTGRES_URL and skips:
        terminalreporter.write_sep(
            "=",
            f"PostgreSQL SKIPPED: {skips} database tests ran on SQLite only. "
            "Set TEST_POSTGRES_URL=postgresql://user@host:5432/db to run them "
            "(bash .ci/run does).",
            yellow=True,
            bold=True,
        )


@pytest.fixture(autouse=True)
def _reminders_in_fractions_of_a_second(monkeypatch: pytest.MonkeyPatch) -> None:
    """Reminder tests use intervals of a second or less; the bot itself refuses less than a
    minute (tests of that limit start `python -m bot`, which has it)."""
    monkeypatch.setattr(bot_settings, "REMINDER_MINUTES", TEST_REMINDER_MINUTES)


@pytest.fixture(params=["sqlite", "postgres"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Any) -> AsyncIterator[str]:
    """A fresh, empty database of each kind."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/incident-bot.db"
        return
    if not POSTGRES_URL:
        pytest.skip(POSTGRES_SKIP)
    name = f"incident_bot_test_{uuid.uuid4().hex[:12]}"
    try:
        await postgres_admin(f'CREATE DATABASE "{name}"')
    except Exception as e:
        # Asked for and unreachable is a failure, never a silent skip.
        pytest.fail(f"TEST_POSTGRES_URL is set but PostgreSQL is not usable: {e}")
    yield make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    await postgres_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


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


@pytest.fixture
def transport() -> str:
    """How Slack reaches the bot: signed HTTP requests ("http"), or envelopes over Socket
    Mode ("socket"). Tests where it matters run with both:
    `@pytest.mark.parametrize("transport", TRANSPORTS)`."""
    return "http"


@pytest.fixture
async def start_bot(fake: FakeSlack, database_url: str, transport: str) -> AsyncIterator[StartBot]:
    """Start a bot (several, for restarts or multiple processes) on the same database."""
    running: list[Bot] = []

    async def start(
        clock: Callable[[], datetime] | None = None,
        reminder_sync_seconds: float = 30.0,
        lease_seconds: float = 30.0,
        home_refresh_seconds: float = 5.0,
        nudge_seconds: float = 300.0,
        **overrides: Any,
    ) -> Bot:
        socket = transport == "socket"
        if socket:
            overrides.setdefault("slack_app_token", fake.app_token)
        settings = settings_for(fake, database_url, **overrides)
        app = BotApp(
            settings,
            reminder_sync_seconds=reminder_sync_seconds,
            lease_seconds=lease_seconds,
            home_refresh_seconds=home_refresh_seconds,
            nudge_seconds=nudge_seconds,
            # Reconnects are paced by the ping interval; a short one keeps tests fast.
            socket_ping_seconds=0.1,
            **({"clock": clock} if clock else {}),
        )
        await app.start(host="127.0.0.1", port=0)
        sender: SlackSender
        if socket:
            await fake.socket_mode.wait_connected()
            sender, url = SocketModeSender(fake), ""
        else:
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
