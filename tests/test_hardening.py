"""Hardening: databases that hang or are locked, the request protocol, and the bounds on
settings and inputs. Each test drives the real bot over HTTP, as Slack would."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.pool import QueuePool

from bot.app import BotApp
from bot.base import settings as bot_settings
from bot.base.errors import DatabaseUnavailable
from bot.base.settings import SettingsError, load_settings
from bot.fakeslack import FakeSlack, SlackSender
from bot.outbound.store import Store
from bot.outbound.store.engine import DEFAULT_TIMEOUT
from tests.support import (
    ALICE,
    BOB,
    BOT_TOKEN,
    GENERAL,
    POSTGRES_URL,
    SIGNING_SECRET,
    Bot,
    StartBot,
    channel_of,
    declared,
    entries,
    postgres_admin,
    settings_for,
    until,
)
from tests.tcpproxy import FreezableProxy
from tests.test_running import run_bot

# The tests' bound on a database wait (DATABASE_TIMEOUT_SECONDS); the default is 5 s.
SHORT = 1.0
HEALTH_LIMIT = 2.0
UNAVAILABLE = "the database is unavailable, so nothing was changed"


# --- holding the database ----------------------------------------------------------------

# Another process holding SQLite's write lock until its stdin closes.
SQLITE_LOCKER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
conn.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.read()
conn.execute("ROLLBACK")
"""


@contextlib.asynccontextmanager
async def locked(database_url: str, table: str = "incident") -> AsyncIterator[None]:
    """The database as another program can leave it: SQLite write-locked by another
    process (BEGIN EXCLUSIVE), or a PostgreSQL table locked by another connection."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            SQLITE_LOCKER,
            str(url.database),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        assert proc.stdin is not None and proc.stdout is not None
        assert await proc.stdout.readline() == b"locked\n"
        try:
            yield
        finally:
            proc.stdin.close()
            await proc.wait()
        return
    import asyncpg  # type: ignore[import-untyped]

    conn = await asyncpg.connect(database_url)
    try:
        tx = conn.transaction()
        await tx.start()
        await conn.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
        yield
        await tx.rollback()
    finally:
        await conn.close()


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    """A fresh PostgreSQL database (the proxy tests need a server to freeze)."""
    if not POSTGRES_URL:
        pytest.skip("PostgreSQL not configured (TEST_POSTGRES_URL unset)")
    name = f"incident_bot_test_{uuid.uuid4().hex[:12]}"
    await postgres_admin(f'CREATE DATABASE "{name}"')
    yield make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    await postgres_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


StartOn = Callable[..., Awaitable[Bot]]


@pytest.fixture
async def start_on(fake: FakeSlack) -> AsyncIterator[StartOn]:
    """Start the bot on a database of the test's choosing (behind a proxy, say)."""
    running: list[Bot] = []

    async def start(database_url: str, **overrides: Any) -> Bot:
        app = BotApp(settings_for(fake, database_url, **overrides))
        await app.start(host="127.0.0.1", port=0)
        url = f"http://127.0.0.1:{app.port}/slack/events"
        bot = Bot(app=app, fake=fake, slack=SlackSender(url, SIGNING_SECRET, fake), url=url)
        running.append(bot)
        return bot

    yield start
    for bot in running:
        await bot.slack.close()
        await bot.app.stop(grace=5)


@contextlib.asynccontextmanager
async def through_proxy(postgres_url: str) -> AsyncIterator[tuple[str, FreezableProxy]]:
    url = make_url(postgres_url)
    async with FreezableProxy(url.host or "127.0.0.1", url.port or 5432) as proxy:
        proxied = url.set(host="127.0.0.1", port=proxy.port)
        yield proxied.render_as_string(hide_password=False), proxy


# --- what the person hears, and when ------------------------------------------------------


async def timed_answer(
    bot: Bot, text: str, *, channel: str, words: str, timeout: float = 15
) -> tuple[str, float]:
    """Run a slash command; the first private answer containing `words`, and the seconds
    from sending the command to that answer."""
    before = len(bot.fake.responses)
    sent = time.monotonic()
    reply = await bot.slack.command(text, user=ALICE, channel=channel)
    assert reply.status == 200 and reply.acked_in_time, reply

    def answered() -> Any:
        for r in bot.fake.responses[before:]:
            if words in r.body.get("text", ""):
                return r
        return None

    post = await until(answered, timeout=timeout, message=f"an answer saying {words!r}")
    return post.body["text"], post.at - sent


async def health(bot: Bot) -> tuple[int, dict[str, Any], float]:
    url = bot.url.replace("/slack/events", "/healthz")
    started = time.monotonic()
    async with aiohttp.ClientSession() as http, http.get(url) as resp:
        body = await resp.json()
        return resp.status, body, time.monotonic() - started


async def severity_of(bot: Bot) -> str:
    return (await bot.incidents())[0].severity


# --- 6. databases that hang or are locked ---------------------------------------------------


async def test_a_locked_database_is_told_within_the_bound_then_works(
    start_bot: StartBot, database_url: str
) -> None:
    bot = await start_bot(database_timeout_seconds=SHORT)
    inc = await declared(bot)
    ch = channel_of(inc)

    async with locked(database_url):
        said, took = await timed_answer(bot, "severity sev1", channel=ch, words="database")
        assert UNAVAILABLE in said and "try again" in said, said
        assert took < SHORT + 2, took
        # The read-only status waits no longer, and a declaration creates nothing in Slack.
        said, took = await timed_answer(bot, "status", channel=ch, words="database")
        assert UNAVAILABLE in said and took < SHORT + 2, (said, took)
        channels = len(bot.fake.calls_to("conversations.create"))
        said, took = await timed_answer(
            bot, "declare sev2 Locked out", channel=GENERAL, words="database"
        )
        assert "Could not declare the incident" in said and UNAVAILABLE in said, said
        assert took < SHORT + 2, took
        # /healthz answers in time, whatever it finds.
        _, _, took = await health(bot)
        assert took < HEALTH_LIMIT, took
        await bot.settled()
        assert len(bot.fake.calls_to("conversations.create")) == channels

    # The lock is released: the same commands work, and nothing was half-done before.
    await bot.ask("severity sev1", user=ALICE, channel=ch)
    assert await severity_of(bot) == "SEV1"
    assert len(await entries(bot, inc, "severity")) == 1
    await bot.ask("declare sev2 Locked out", user=ALICE, channel=GENERAL)
    second = await bot.wait_provisioned(2)
    assert second.title == "Locked out"
    assert [i.number for i in await bot.incidents()] == [1, 2]
    status, body, _ = await health(bot)
    assert (status, body["database"]) == (200, "ok")


async def test_the_default_bound_answers_within_ten_seconds(
    start_bot: StartBot, database_url: str
) -> None:
    bot = await start_bot()
    assert bot.app.settings.database_timeout_seconds == DEFAULT_TIMEOUT == 5
    inc = await declared(bot)
    async with locked(database_url):
        said, took = await timed_answer(
            bot, "severity sev1", channel=channel_of(inc), words="database"
        )
    assert UNAVAILABLE in said
    assert took < 10, took


async def test_a_frozen_postgres_is_told_within_the_bound_and_healthz_answers(
    start_on: StartOn, postgres_url: str
) -> None:
    async with through_proxy(postgres_url) as (url, proxy):
        bot = await start_on(url, database_timeout_seconds=SHORT)
        inc = await declared(bot)
        ch = channel_of(inc)
        proxy.freeze()
        # A statement times out, then SQLAlchemy gives the connection up to 2 s to close.
        said, took = await timed_answer(bot, "severity sev1", channel=ch, words="database")
        assert UNAVAILABLE in said, said
        assert took < SHORT + 1 + 2 + 1.5, took
        for _ in range(3):
            status, body, took = await health(bot)
            assert (status, body["database"]) == (503, "unreachable")
            assert took < HEALTH_LIMIT, took
        said, took = await timed_answer(bot, "status", channel=ch, words="database")
        assert UNAVAILABLE in said and took < SHORT + 1 + 2 + 1.5, (said, took)

        proxy.thaw()
        await until(lambda: health_ok(bot), timeout=10, message="healthy again")
        await bot.ask("severity sev1", user=ALICE, channel=ch)
        assert await severity_of(bot) == "SEV1"
        assert len(await entries(bot, inc, "severity")) == 1


async def test_a_frozen_postgres_with_the_default_bound_is_told_within_ten_seconds(
    start_on: StartOn, postgres_url: str
) -> None:
    async with through_proxy(postgres_url) as (url, proxy):
        bot = await start_on(url)
        inc = await declared(bot)
        proxy.freeze()
        said, took = await timed_answer(
            bot, "severity sev1", channel=channel_of(inc), words="database"
        )
        assert UNAVAILABLE in said
        assert took < 10, took
        _, _, took = await health(bot)
        assert took < HEALTH_LIMIT
        proxy.thaw()


async def health_ok(bot: Bot) -> bool:
    status, _, _ = await health(bot)
    return status == 200


async def test_connections_killed_by_the_server_are_replaced_without_an_error(
    start_on: StartOn, postgres_url: str
) -> None:
    bot = await start_on(postgres_url, database_timeout_seconds=SHORT)
    inc = await declared(bot)
    name = make_url(postgres_url).database
    assert name is not None and name.isidentifier()
    kill = f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"  # noqa: S608
    await postgres_admin(kill)
    told = await bot.ask("severity sev1", user=ALICE, channel=channel_of(inc))
    assert told == [], told
    assert await severity_of(bot) == "SEV1"


async def test_a_change_stored_before_the_database_stopped_is_not_retried(
    start_on: StartOn, postgres_url: str
) -> None:
    bot = await start_on(postgres_url, database_timeout_seconds=SHORT)
    inc = await declared(bot)
    # The severity is stored; reading the roles to show it again waits on the lock.
    async with locked(postgres_url, "role_assignment"):
        said, took = await timed_answer(
            bot, "severity sev1", channel=channel_of(inc), words="database"
        )
    assert "was saved" in said and "no need to try again" in said, said
    assert "nothing was changed" not in said
    assert took < SHORT + 2
    assert await severity_of(bot) == "SEV1"


def queue_pool(store: Store) -> QueuePool:
    """The store's pool: a queue pool for every database on disk (see make_engine)."""
    pool = store.engine.pool
    assert isinstance(pool, QueuePool), pool
    return pool


async def test_every_wait_is_bounded_by_default(database_url: str) -> None:
    store = Store(database_url)
    try:
        await store.migrate()
        async with store.engine.connect() as conn:
            if store.dialect == "sqlite":
                busy = (await conn.exec_driver_sql("PRAGMA busy_timeout")).scalar()
                assert busy == DEFAULT_TIMEOUT * 1000
            else:
                for name in ("statement_timeout", "lock_timeout"):
                    shown = (await conn.exec_driver_sql(f"SHOW {name}")).scalar()
                    assert shown == f"{DEFAULT_TIMEOUT:g}s", (name, shown)
        assert queue_pool(store).timeout() == DEFAULT_TIMEOUT
    finally:
        await store.close()


async def test_a_burst_queues_for_a_connection_but_a_stuck_pool_fails_fast(
    database_url: str,
) -> None:
    bound = 0.5
    store = Store(database_url, timeout=bound)
    await store.migrate()
    pool = queue_pool(store)
    held = [await store.engine.connect() for _ in range(pool.size() + pool._max_overflow)]
    try:
        # Every connection is taken and nobody's statements finish: the wait is the bound.
        started = time.monotonic()
        with pytest.raises(DatabaseUnavailable, match="no connection came free"):
            async with store.engine.connect():
                pass
        assert bound <= time.monotonic() - started < bound + 1

        # Every connection is taken, but the database keeps answering one of them (a
        # burst): the wait goes on past the bound until a connection comes free.
        async def busy_then_done() -> None:
            for _ in range(15):
                await held[0].exec_driver_sql("SELECT 1")
                await held[0].commit()
                await asyncio.sleep(0.1)
            await held.pop(0).close()

        worker = asyncio.create_task(busy_then_done())
        started = time.monotonic()
        async with store.engine.connect() as conn:
            await conn.exec_driver_sql("SELECT 1")
        assert time.monotonic() - started > bound * 2
        await worker
    finally:
        for conn in held:
            await conn.close()
        await store.close()


# --- 7. protocol ------------------------------------------------------------------------------


def no_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    bad = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert bad == [], [r.getMessage() for r in bad]


FORM = {"Content-Type": "application/x-www-form-urlencoded"}
JSON = {"Content-Type": "application/json"}


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        (b"payload=%7Bnot+json", FORM),
        (b"{oops", JSON),
        (b"\xff\xfe not utf-8", FORM),
        (b"[1, 2]", JSON),
    ],
)
async def test_unsigned_requests_are_refused_before_anything_reads_them(
    bot: Bot, caplog: pytest.LogCaptureFixture, body: bytes, headers: dict[str, str]
) -> None:
    caplog.set_level(logging.DEBUG)
    reply = await bot.slack.raw(body, headers)
    assert reply.status == 401
    forged = {**headers, "X-Slack-Request-Timestamp": str(int(time.time()))}
    forged["X-Slack-Signature"] = "v0=" + "0" * 64
    assert (await bot.slack.raw(body, forged)).status == 401
    no_tracebacks(caplog)
    assert [c.method for c in bot.fake.calls if c.method != "auth.test"] == []


def command_fields(**changes: str | None) -> dict[str, str]:
    fields = {
        "command": "/incident",
        "text": "declare sev1 Malformed",
        "user_id": ALICE,
        "channel_id": GENERAL,
        "team_id": "T0TEST",
        "trigger_id": "1.2.abc",
        "response_url": "http://127.0.0.1:9/never",
    }
    for key, value in changes.items():
        if value is None:
            fields.pop(key)
        else:
            fields[key] = value
    return fields


def as_form(fields: dict[str, str]) -> bytes:
    from urllib.parse import urlencode

    return urlencode(fields).encode()


def as_payload(payload: Any) -> bytes:
    return as_form({"payload": json.dumps(payload)})


VIEW = {"id": "V1", "callback_id": "declare", "state": {"values": {}}}
USER = {"id": ALICE}
MALFORMED: list[tuple[str, bytes, dict[str, str]]] = [
    ("command without user_id", as_form(command_fields(user_id=None)), FORM),
    ("command without trigger_id", as_form(command_fields(trigger_id=None)), FORM),
    ("payload not JSON", as_form({"payload": "{not json"}), FORM),
    ("payload a JSON list", as_payload([1, 2]), FORM),
    ("body not UTF-8", b"payload=\xff\xfe", FORM),
    ("JSON body not JSON", b"{oops", JSON),
    ("JSON of no known kind", b"{}", JSON),
    (
        "view without state",
        as_payload(
            {
                "type": "view_submission",
                "user": USER,
                "view": {"id": "V1", "callback_id": "declare"},
            }
        ),
        FORM,
    ),
    ("view without user", as_payload({"type": "view_submission", "view": VIEW}), FORM),
    (
        "block_actions without actions",
        as_payload({"type": "block_actions", "user": USER, "trigger_id": "1.2.x"}),
        FORM,
    ),
    (
        "block_actions with a string action",
        as_payload(
            {"type": "block_actions", "user": USER, "trigger_id": "1.2.x", "actions": ["x"]}
        ),
        FORM,
    ),
    (
        "shortcut without user",
        as_payload({"type": "message_action", "callback_id": "timeline", "trigger_id": "1"}),
        FORM,
    ),
    ("event without event", json.dumps({"type": "event_callback"}).encode(), JSON),
    (
        "reaction without item",
        json.dumps(
            {
                "type": "event_callback",
                "event": {"type": "reaction_added", "user": BOB, "reaction": "pushpin"},
            }
        ).encode(),
        JSON,
    ),
]


@pytest.mark.parametrize(("what", "body", "headers"), MALFORMED, ids=[m[0] for m in MALFORMED])
async def test_malformed_signed_payloads_get_400_without_a_traceback(
    bot: Bot, caplog: pytest.LogCaptureFixture, what: str, body: bytes, headers: dict[str, str]
) -> None:
    caplog.set_level(logging.DEBUG)
    reply = await bot.slack.raw(body, {**headers, **bot.slack.sign(body)})
    assert reply.status == 400, (what, reply)
    await bot.settled()
    no_tracebacks(caplog)
    assert "Traceback" not in reply.text
    assert await bot.incidents() == []
    assert [c.method for c in bot.fake.calls if c.method != "auth.test"] == []


async def test_slacks_own_checks_still_get_their_answers(bot: Bot) -> None:
    reply = await bot.slack.url_verification("the-challenge")
    assert reply.status == 200 and "the-challenge" in reply.text
    # Slack's SSL check comes unsigned and carries nothing.
    reply = await bot.slack.raw(b"ssl_check=1&token=legacy-verification-token", FORM)
    assert reply.status == 200


async def test_events_the_bot_does_not_use_are_acknowledged_quietly(
    bot: Bot, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    rate_limited = {
        "token": "legacy-verification-token",
        "type": "app_rate_limited",
        "team_id": bot.fake.team_id,
        "minute_rate_limited": 1518467820,
        "api_app_id": bot.fake.app_id,
    }
    body = json.dumps(rate_limited).encode()
    reply = await bot.slack.raw(body, {**JSON, **bot.slack.sign(body)})
    assert reply.status == 200
    for event in (
        {"type": "tokens_revoked", "tokens": {"oauth": [], "bot": ["UBOT"]}},
        {"type": "app_uninstalled"},
        {"type": "emoji_changed", "subtype": "add", "name": "party", "value": "https://x"},
        {"type": "reaction_added", "user": BOB, "reaction": "tada", "item": {"type": "file"}},
    ):
        reply = await bot.slack.event(event)
        assert reply.status == 200, (event, reply)
    await bot.settled()
    loud = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert loud == [], [r.getMessage() for r in loud]


async def test_numbering_belongs_to_the_installation_not_the_requests_team(bot: Bot) -> None:
    await bot.ask("declare sev2 Home team", user=ALICE, channel=GENERAL)
    await bot.wait_provisioned(1)
    # A Slack Connect (or Enterprise Grid) request carries another team.
    await bot.slack.command("declare sev2 Visiting team", user=BOB, team_id="T0OTHER")
    await bot.wait_provisioned(2)
    await bot.slack.command("declare", user=BOB, team_id="T0OTHER")
    view = await until(lambda: next(iter(bot.fake.views.values()), None))
    await bot.slack.submit_view(
        view["id"],
        user=BOB,
        inputs={"title": "Visiting by form"},
        team={"id": "T0OTHER", "domain": "other"},
    )
    await bot.wait_provisioned(3)
    await bot.settled()
    incidents = await bot.incidents()
    assert [(i.number, i.title) for i in incidents] == [
        (1, "Home team"),
        (2, "Visiting team"),
        (3, "Visiting by form"),
    ]
    assert {i.team_id for i in incidents} == {bot.fake.team_id}
    # The list is the installation's, whoever asks.
    told = await bot.ask("list", user=BOB, channel=GENERAL)
    listed = json.dumps(told)
    assert all(f"INC-{n}" in listed for n in (1, 2, 3)), listed


# --- 8. settings and inputs with sane bounds ----------------------------------------------


def base_env() -> dict[str, str]:
    return {"SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_SIGNING_SECRET": SIGNING_SECRET}


OUT_OF_BOUNDS = [
    ("REMINDER_INTERVAL_MINUTES", "1e10"),
    ("REMINDER_INTERVAL_MINUTES", "inf"),
    ("REMINDER_INTERVAL_MINUTES", "nan"),
    ("REMINDER_INTERVAL_MINUTES", "0.01"),
    ("REMINDER_INTERVAL_MINUTES", "1441"),
    ("SEVERITIES", '[{"name": "SEV1", "label": "Critical", "reminder_minutes": 0.01}]'),
    ("SEVERITIES", '[{"name": "SEV1", "label": "Critical", "reminder_minutes": 1e10}]'),
    ("DATABASE_TIMEOUT_SECONDS", "0"),
    ("DATABASE_TIMEOUT_SECONDS", "inf"),
    ("EXTRA_ROLES", '[{"name": "communications", "label": "Comms"}]'),
    ("EXTRA_ROLES", '[{"name": "ic", "label": "IC"}]'),
    ("EXTRA_ROLES", '[{"name": "incident_commander", "label": "Boss"}]'),
    ("EXTRA_ROLES", '[{"name": "Incident-Commander", "label": "Boss"}]'),
    ("EXTRA_ROLES", '[{"name": "COMMS", "label": "Press"}]'),
    ("EXTRA_ROLES", '[{"name": "lead", "label": "Incident Commander"}]'),
]


@pytest.mark.parametrize(("name", "value"), OUT_OF_BOUNDS)
def test_settings_out_of_bounds_stop_start_up_with_one_line(
    name: str, value: str, tmp_path: Path
) -> None:
    result = run_bot({**base_env(), name: value}, tmp_path)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert name in lines[0] and "Traceback" not in result.stderr


def test_the_documented_bounds_are_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bot_settings, "REMINDER_MINUTES", bot_settings.Limits(1, 1440, "minutes"))
    for minutes in ("1", "7.5", "1440"):
        settings = load_settings(
            slack_bot_token=BOT_TOKEN,
            slack_signing_secret=SIGNING_SECRET,
            reminder_interval_minutes=minutes,
            extra_roles='[{"name": "Scribe", "label": "Scribe"}]',
            _env_file=None,
        )
        assert settings.reminder_interval_minutes == float(minutes)
        assert [r.name for r in settings.extra_roles] == ["scribe"]
    with pytest.raises(SettingsError):
        load_settings(
            slack_bot_token=BOT_TOKEN,
            slack_signing_secret=SIGNING_SECRET,
            reminder_interval_minutes="0.5",
            _env_file=None,
        )


async def test_a_forged_snooze_is_refused(start_bot: StartBot) -> None:
    bot = await start_bot(reminder_interval_minutes=0.5 / 60, reminder_sync_seconds=0.2)
    inc = await declared(bot)

    def reminders() -> list[dict[str, Any]]:
        said = bot.fake.messages(channel_of(inc), include_system=False)
        return [m for m in said if "needs a status update" in m.get("text", "")]

    [reminder, *_] = await until(reminders, message="a reminder")
    for forged in ("999999", "0", "9" * 200):
        # A client that rewrote the button: the action id carries the minutes.
        message = bot.fake.channels[channel_of(inc)].find(reminder["ts"])
        assert message is not None
        snooze = next(
            el
            for block in message["blocks"]
            for el in block.get("elements") or []
            if str(el.get("action_id", "")).startswith("reminder_snooze:")
        )
        snooze["action_id"] = f"reminder_snooze:{forged}"
        before = (await bot.incidents())[0].next_update_due
        await bot.slack.block_action(
            user=BOB,
            channel=channel_of(inc),
            message_ts=reminder["ts"],
            action_id=f"reminder_snooze:{forged}",
        )
        await bot.settled()
        assert await entries(bot, inc, "snooze") == []
        after = (await bot.incidents())[0].next_update_due
        assert after is not None and before is not None
        assert after - datetime.now(UTC) < timedelta(minutes=1), forged
    told = bot.private_to(BOB)
    assert len([t for t in told if "can be snoozed from 1 to 1440 minutes" in t]) == 3, told
    assert not any("went wrong" in t for t in told), told
