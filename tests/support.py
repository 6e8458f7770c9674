"""What the tests share: the workspace's people and channels, the running bot, polling, and
ways of reading what Slack shows. Fixtures and pytest hooks are in conftest.py."""

from __future__ import annotations

import asyncio
import inspect
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar, overload

from sqlalchemy.engine import make_url

from bot.app import BotApp
from bot.base.settings import Limits, Settings
from bot.fakeslack import Channel, FakeSlack, Reply, SlackSender
from bot.model.tables import Incident, TimelineEntry
from bot.outbound.store import Store

ROOT = Path(__file__).resolve().parent.parent

SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
BOT_TOKEN = "xoxb-111-222-fakebottoken"
POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "").strip()

ALICE, BOB, CAROL = "U0ALICE", "U0BOB", "U0CAROL"
GENERAL = "C0GENERAL"
ANNOUNCE = "C0ANNOUNCE"
# Both ways Slack reaches the bot, for tests where it matters (the `transport` fixture).
TRANSPORTS = ("http", "socket")

# How long the bot must stay idle for Bot.settled() to count it settled.
QUIET_SECONDS = 0.05

# Reminder intervals the tests may use (the bot's own floor is a minute).
TEST_REMINDER_MINUTES = Limits(0.001, 24 * 60, "minutes")


# --- polling ---------------------------------------------------------------------------------


T = TypeVar("T")


@overload
async def until(
    check: Callable[[], Awaitable[T | None]], *, timeout: float = 10, message: str = ""
) -> T: ...


@overload
async def until(check: Callable[[], T | None], *, timeout: float = 10, message: str = "") -> T: ...


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


# --- time ------------------------------------------------------------------------------------


class Clock:
    """The bot's clock (`start_bot(clock=...)`), moved only by the test.

    It starts at the real time, and the intervals a test moves it through are minutes or
    more, so nothing the scheduler holds (it wakes by the wall clock) comes due while the
    test runs: the test moves the clock, then runs the round that would have come
    (`Bot.reminders_due`, `Bot.repair_pass`, `Bot.nudge_pass`) and goes on once it is done.
    """

    def __init__(self) -> None:
        self.now = datetime.now(UTC).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, by: timedelta) -> datetime:
        self.now += by
        return self.now


def tasks_running(package: str) -> list[asyncio.Task[Any]]:
    """The tasks of this event loop still running code of `package` (e.g. slack_sdk's Socket
    Mode client): none left means nothing of it can act any more, however long one waits."""
    prefix = package.replace(".", os.sep) + os.sep
    running: list[asyncio.Task[Any]] = []
    for task in asyncio.all_tasks():
        code = getattr(task.get_coro(), "cr_code", None)
        if not task.done() and code is not None and prefix in code.co_filename:
            running.append(task)
    return running


async def settled(app: BotApp, timeout: float = 10, quiet: float = QUIET_SECONDS) -> None:
    """Wait until `app` has no listener or background work in flight (`Bot.settled`)."""

    async def idle() -> bool:
        if app.busy():
            return False
        await asyncio.sleep(quiet)
        return app.busy() == 0

    await until(idle, timeout=timeout, message="bot idle")


# --- databases -------------------------------------------------------------------------------


async def postgres_admin(sql: str) -> None:
    """Run one statement on the TEST_POSTGRES_URL server (creating and dropping databases)."""
    import asyncpg  # type: ignore[import-untyped]

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


# --- the bot ---------------------------------------------------------------------------------


def settings_for(fake: FakeSlack, database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "slack_bot_token": BOT_TOKEN,
        "slack_signing_secret": SIGNING_SECRET,
        "slack_api_url": fake.api_url,
        "database_url": database_url,
        "port": 3000,
        # The fake enforces no rate limits unless a test asks; pacing is tested with them.
        "slack_pacing": bool(fake.rate_limits),
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
        from sqlmodel import col, select

        async with self.store.sessions() as s:
            rows = (await s.execute(select(Incident).order_by(col(Incident.number)))).scalars()
            return list(rows)

    async def timeline(self, incident: Incident) -> list[TimelineEntry]:
        assert incident.id is not None
        return list(await self.store.timeline(incident.id))

    async def settled(self, timeout: float = 10, quiet: float = QUIET_SECONDS) -> None:
        """Wait until no listener or background work is in flight: every operation has finished.

        Idle must be seen twice, `quiet` seconds apart, so that work handed on between two
        tasks is not taken for the end. A request only counts once the bot has it: wait for
        its answer (the ack) first, then for this.
        """

        await settled(self.app, timeout=timeout, quiet=quiet)

    async def reminders_due(self) -> None:
        """A round of reminders at the bot's clock, as the scheduler runs it once the time
        comes: its jobs matched to the stored due times (the periodic sync), every one due
        by now fired; returns once all of it, and what it set off, is done."""
        await self.app.reminders.sync()
        await self.app.reminders.fire_due()
        await self.settled()

    async def repair_pass(self) -> None:
        """One repair pass, as the scheduler runs it; returns once it and what it set off
        are done."""
        await self.app.repair_pass()
        await self.settled()

    async def nudge_pass(self) -> None:
        """One pass of nudges at the bot's clock, as the scheduler runs it; returns once it
        and what it set off are done."""
        await self.app.nudge_pass()
        await self.settled()

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


StartBot = Callable[..., Awaitable[Bot]]


async def declared(bot: Bot, text: str = "declare sev3 Checkout latency") -> Incident:
    """Declare INC-1 as Alice from #general; the incident once provisioned and settled."""
    await bot.slack.command(text, user=ALICE, channel=GENERAL)
    inc = await bot.wait_provisioned(1)
    await bot.settled()
    return inc


def dms_to(bot: Bot, user: str) -> list[str]:
    """What the bot said to `user` in their DM."""
    channel = bot.fake.dm_channel(user)
    if channel is None:
        return []
    return [m.get("text", "") for m in bot.fake.messages(channel.id, include_system=False)]


def channel_of(inc: Incident) -> str:
    """The incident's channel id: set once it is provisioned, which tests wait for."""
    assert inc.channel_id is not None, f"{inc.ref} has no channel"
    return inc.channel_id


def card_ts_of(inc: Incident) -> str:
    """Where the incident's card is: set once it is provisioned, which tests wait for."""
    assert inc.card_ts is not None, f"{inc.ref} has no card"
    return inc.card_ts


def id_of(inc: Incident) -> int:
    """The incident's row id: set once it is stored, as every incident a test reads is."""
    assert inc.id is not None, f"{inc.ref} is not stored"
    return inc.id


def data_of(entry: TimelineEntry) -> dict[str, Any]:
    """A timeline entry's structured facts, for the kinds that have them."""
    assert entry.data is not None, f"a {entry.kind} entry without data"
    return entry.data


async def entries(bot: Bot, inc: Incident, kind: str) -> list[TimelineEntry]:
    return [e for e in await bot.timeline(inc) if e.kind == kind]


async def has_entries(bot: Bot, inc: Incident, kind: str, n: int) -> bool:
    """At least `n` timeline entries of this kind."""
    return len(await entries(bot, inc, kind)) >= n


# --- what Slack shows ------------------------------------------------------------------------


def texts_of(
    blocks: list[dict[str, Any]], kinds: tuple[str, ...] = ("plain_text", "mrkdwn")
) -> str:
    """All visible text of a message's blocks, as a person would read it."""
    out: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") in kinds and "text" in node:
                out.append(node["text"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(blocks)
    return "\n".join(out)


def view_of(bot: Bot, callback_id: str) -> dict[str, Any] | None:
    """The newest view (modal) of this kind the bot opened, or None."""
    views = [v for v in bot.fake.views.values() if v["callback_id"] == callback_id]
    return views[-1] if views else None


def card_of(bot: Bot, inc: Incident) -> dict[str, Any]:
    card = bot.fake.message(channel_of(inc), card_ts_of(inc))
    assert card is not None
    return card


def message_in(channel: Channel, ts: str) -> dict[str, Any]:
    """The message at `ts` in one of the fake's channels, which must still be there."""
    msg = channel.find(ts)
    assert msg is not None, f"no message {ts} in {channel.id}"
    return msg


def json_of(reply: Reply) -> dict[str, Any]:
    """The JSON object the bot answered with (an ack with a body, or an HTTP response)."""
    body = reply.json
    assert isinstance(body, dict), reply
    return body


def element(card: dict[str, Any], action_id: str) -> dict[str, Any]:
    """An interactive element of the card, found as Slack's client would render it."""
    for block in card["blocks"]:
        candidates: list[dict[str, Any] | None] = [
            block.get("accessory"),
            *(block.get("elements") or []),
        ]
        for el in candidates:
            if el and el.get("action_id") == action_id:
                return el
    raise AssertionError(f"no {action_id} on the card")


def human_messages(bot: Bot, channel: str) -> list[str]:
    return [m.get("text", "") for m in bot.fake.messages(channel, include_system=False)]


def uploaded(bot: Bot) -> list[str]:
    """Markdown files the bot uploaded, in order."""
    return [
        bot.fake.file_contents[c.args["files"][0]["id"]].decode()
        for c in bot.fake.calls_to("files.completeUploadExternal")
        if c.ok
    ]
