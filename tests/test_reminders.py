"""Reminders: on time, to the right person, restarted by updates, durable across restarts,
and sent exactly once by several processes sharing a database.

Intervals are fractions of a second (REMINDER_INTERVAL_MINUTES accepts decimals), so
these tests wait for seconds, never minutes.
"""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlmodel import col

from bot.model.tables import Incident, RoleAssignment, TimelineEntry
from bot.operations.reminders import SENDS_AT_ONCE, Reminders
from bot.outbound.store import Store
from tests.support import (
    ALICE,
    ANNOUNCE,
    BOB,
    CAROL,
    GENERAL,
    Bot,
    StartBot,
    channel_of,
    data_of,
    element,
    entries,
    id_of,
    until,
)

INTERVAL_S = 0.6
FAST = {"reminder_interval_minutes": INTERVAL_S / 60, "reminder_sync_seconds": 0.2}


def reminders_in(bot: Bot, channel: str) -> list[dict[str, Any]]:
    return [
        m
        for m in bot.fake.messages(channel, include_system=False)
        if "needs a status update" in m.get("text", "")
    ]


def posted_at(message: dict[str, Any]) -> datetime:
    return datetime.fromtimestamp(float(message["ts"]), UTC)


async def start_fast(start_bot: StartBot, **overrides: Any) -> Bot:
    settings = {**FAST, **overrides}
    sync = settings.pop("reminder_sync_seconds")
    return await start_bot(reminder_sync_seconds=sync, **settings)


async def declare(bot: Bot, text: str = "declare sev2 Checkout latency") -> Incident:
    await bot.slack.command(text, user=ALICE, channel=GENERAL)
    return await bot.wait_provisioned(1)


async def test_reminder_on_time_mentions_the_right_person(start_bot: StartBot) -> None:
    bot = await start_fast(start_bot)
    inc = await declare(bot)
    first = await until(lambda: reminders_in(bot, channel_of(inc)), message="first reminder")
    # Not before it was due (an interval after the declaration; on a slow machine the
    # stored due time may already be the next one); the declarer commands, so the declarer
    # is reminded.
    due = inc.declared_at + timedelta(seconds=INTERVAL_S)
    assert posted_at(first[0]) >= due
    assert posted_at(first[0]) - due < timedelta(seconds=1.5)
    assert f"<@{ALICE}>" in first[0]["text"]
    assert element(first[0], "reminder_update") and element(first[0], "reminder_snooze:15")

    # The comms lead takes over reminders once there is one.
    await bot.slack.command("comms <@U0CAROL|carol>", user=ALICE, channel=channel_of(inc))
    await until(lambda: len(reminders_in(bot, channel_of(inc))) >= 3, timeout=5)
    assert f"<@{CAROL}>" in reminders_in(bot, channel_of(inc))[-1]["text"]
    # Each reminder is on the timeline, once.
    sent = await entries(bot, inc, "reminder")
    assert len(sent) >= 2
    assert len({data_of(e)["due"] for e in sent}) == len(sent)


async def test_a_reminder_edits_the_card_but_not_the_unchanged_announcement(
    start_bot: StartBot,
) -> None:
    """A reminder moves the next update's due time, which the card shows and the public
    announcement does not: the card is edited, the announcement is left alone."""
    bot = await start_fast(start_bot, announcements_channel=ANNOUNCE)
    bot.fake.add_channel("incidents", id=ANNOUNCE, members=["UBOT", ALICE])
    inc = await declare(bot)
    await bot.settled()

    def edits(channel: str) -> int:
        return sum(c.args.get("channel") == channel for c in bot.fake.calls_to("chat.update"))

    card, announcement = edits(channel_of(inc)), edits(ANNOUNCE)
    await until(lambda: len(reminders_in(bot, channel_of(inc))) >= 2, message="two reminders")
    await bot.settled()
    assert edits(channel_of(inc)) >= card + 2
    assert edits(ANNOUNCE) == announcement

    # A change the announcement shows still reaches it.
    await bot.slack.command("severity sev1", user=ALICE, channel=channel_of(inc))
    await bot.settled()
    assert edits(ANNOUNCE) == announcement + 1
    shown = bot.fake.channels[ANNOUNCE].find(str((await bot.incidents())[0].announcement_ts))
    assert shown is not None and "SEV1" in str(shown)


async def test_an_update_restarts_the_interval(start_bot: StartBot) -> None:
    bot = await start_fast(start_bot, reminder_interval_minutes=1.5 / 60)
    inc = await declare(bot)
    await asyncio.sleep(1.0)
    await bot.slack.command("update Mitigating", user=ALICE, channel=channel_of(inc))
    [update] = await until(lambda: entries(bot, inc, "update"))
    # The first reminder after the update (on a slow machine one may have fallen due
    # before the update landed) waits a whole interval from it.
    after = await until(
        lambda: [
            m for m in reminders_in(bot, channel_of(inc)) if posted_at(m) > update.happened_at
        ],
        timeout=5,
    )
    assert posted_at(after[0]) >= update.happened_at + timedelta(seconds=1.5)


async def test_snooze_moves_the_reminder(start_bot: StartBot) -> None:
    bot = await start_fast(start_bot)
    inc = await declare(bot)
    [reminder] = await until(lambda: reminders_in(bot, channel_of(inc)))
    for _ in range(2):  # a double click snoozes once
        await bot.slack.block_action(
            user=BOB,
            channel=channel_of(inc),
            message_ts=reminder["ts"],
            action_id="reminder_snooze:15",
        )
    await bot.settled()
    stored = (await bot.incidents())[0]
    assert stored.next_update_due is not None
    assert stored.next_update_due - datetime.now(UTC) > timedelta(minutes=14)
    assert len(await entries(bot, inc, "snooze")) == 1
    await asyncio.sleep(INTERVAL_S * 2)
    assert len(reminders_in(bot, channel_of(inc))) == 1
    assert any("in 15 min" in t for t in bot.private_to(BOB))


async def test_reminder_button_opens_the_update_form(start_bot: StartBot) -> None:
    bot = await start_fast(start_bot, reminder_interval_minutes=1 / 60)
    inc = await declare(bot)
    [reminder] = await until(lambda: reminders_in(bot, channel_of(inc)))
    await bot.slack.block_action(
        user=ALICE, channel=channel_of(inc), message_ts=reminder["ts"], action_id="reminder_update"
    )
    view = await until(lambda: [v for v in bot.fake.views.values() if v["callback_id"] == "update"])
    await bot.slack.submit_view(view[0]["id"], user=ALICE, inputs={"summary": "On it."})
    await until(lambda: entries(bot, inc, "update"))


async def test_severity_change_recomputes_the_due_time(start_bot: StartBot) -> None:
    severities = (
        '[{"name": "SEV1", "label": "Critical", "reminder_minutes": 0.01},'
        ' {"name": "SEV2", "label": "Major"}]'
    )
    bot = await start_fast(start_bot, severities=severities, reminder_interval_minutes=10)
    inc = await declare(bot, "declare sev2 Slow")
    await asyncio.sleep(0.5)
    assert reminders_in(bot, channel_of(inc)) == []
    await bot.slack.command("severity sev1", user=ALICE, channel=channel_of(inc))
    # SEV1's 0.6 s cadence counts from the declaration, so it is already overdue.
    await until(lambda: reminders_in(bot, channel_of(inc)), timeout=3)


async def test_resolve_stops_reminders(start_bot: StartBot) -> None:
    bot = await start_fast(start_bot)
    inc = await declare(bot)
    await until(lambda: reminders_in(bot, channel_of(inc)))
    await bot.slack.command("resolve Fixed", user=ALICE, channel=channel_of(inc))
    await bot.settled()
    count = len(reminders_in(bot, channel_of(inc)))
    await asyncio.sleep(INTERVAL_S * 3)
    assert len(reminders_in(bot, channel_of(inc))) == count
    assert bot.app.scheduler.get_job(Reminders.job_id(id_of(inc))) is None


async def test_restart_in_the_middle_of_an_interval(start_bot: StartBot) -> None:
    bot = await start_fast(start_bot, reminder_interval_minutes=2 / 60)
    inc = await declare(bot)
    await asyncio.sleep(0.5)
    await bot.app.stop()
    assert reminders_in(bot, channel_of(inc)) == []

    again = await start_fast(start_bot, reminder_interval_minutes=2 / 60)
    first = await until(lambda: reminders_in(again, channel_of(inc)), timeout=5)
    assert inc.next_update_due is not None
    assert posted_at(first[0]) >= inc.next_update_due
    await asyncio.sleep(0.5)
    assert len(reminders_in(again, channel_of(inc))) == 1


async def test_reminder_due_while_stopped_is_sent_once_at_start_up(start_bot: StartBot) -> None:
    bot = await start_fast(start_bot, reminder_interval_minutes=0.3 / 60)
    inc = await declare(bot)
    await bot.app.stop()
    already = len(reminders_in(bot, channel_of(inc)))
    await asyncio.sleep(1.5)  # five intervals pass while nothing runs

    await start_fast(start_bot, reminder_interval_minutes=1 / 60)
    await until(lambda: len(reminders_in(bot, channel_of(inc))) > already, timeout=5)
    await asyncio.sleep(0.4)
    assert len(reminders_in(bot, channel_of(inc))) == already + 1


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_two_processes_send_each_reminder_once(start_bot: StartBot) -> None:
    """Two bots on one PostgreSQL database, one restarted midway: every reminder once."""
    a = await start_fast(start_bot)
    b = await start_fast(start_bot)
    inc = await declare(a)
    await asyncio.sleep(INTERVAL_S * 2.5)
    await b.app.stop()
    await start_fast(start_bot)
    await asyncio.sleep(INTERVAL_S * 3)

    sent = reminders_in(a, channel_of(inc))
    dues = [data_of(e)["due"] for e in await entries(a, inc, "reminder")]
    assert len(sent) >= 4
    assert len(sent) == len(dues) == len(set(dues))
    # Consecutive reminders are an interval apart: none doubled, none skipped.
    times = [posted_at(m) for m in sent]
    gaps = [(b_ - a_).total_seconds() for a_, b_ in itertools.pairwise(times)]
    assert all(gap > INTERVAL_S * 0.8 for gap in gaps), gaps
    assert all(gap < INTERVAL_S * 2.5 for gap in gaps), gaps


async def _seed_due(bot: Bot, database_url: str, count: int, due: datetime) -> list[str]:
    """`count` open, provisioned incidents whose next update falls due at `due`, each with
    its channel and pinned card as after declaring. Returns their channels."""
    fake = bot.fake
    store = Store(database_url)
    channels: list[str] = []
    try:
        async with store.session() as s:
            for i in range(count):
                channel = fake.add_channel(f"inc-{900 + i}-many", members=[fake.bot_user_id])
                card = fake.post_as_user(channel.id, fake.bot_user_id, "card", bot_id=fake.bot_id)
                incident = Incident(
                    team_id=fake.team_id,
                    number=900 + i,
                    title=f"Many due {i}",
                    severity="SEV2",
                    declared_by=ALICE,
                    declared_at=due - timedelta(minutes=30),
                    declare_key=f"many:{i}",
                    channel_id=channel.id,
                    channel_name=channel.name,
                    card_ts=card["ts"],
                    card_pinned=True,
                    provisioned=True,
                    next_update_due=due,
                    version=1,
                )
                s.add(incident)
                await s.flush()
                s.add(
                    RoleAssignment(
                        incident_id=incident.pk,
                        role="commander",
                        user_id=BOB,
                        assigned_by=ALICE,
                        assigned_at=due,
                    )
                )
                channels.append(channel.id)
    finally:
        await store.close()
    return channels


@pytest.mark.parametrize("database_url", ["sqlite", "postgres"], indirect=True)
async def test_many_reminders_due_at_once_go_out_once_each_a_bounded_number_at_a_time(
    start_bot: StartBot, database_url: str
) -> None:
    """Two processes, 150 reminders due in the same instant: each is posted once, recorded
    once, and never more than a bounded number of posts are in flight at once."""
    a = await start_bot(reminder_interval_minutes=60, reminder_sync_seconds=0.2)
    b = await start_bot(reminder_interval_minutes=60, reminder_sync_seconds=0.2)
    a.fake.set_delay("chat.postMessage", 0.05)
    count = 150
    channels = await _seed_due(a, database_url, count, datetime.now(UTC) + timedelta(seconds=0.5))

    def reminders() -> int:
        return sum(len(reminders_in(a, channel)) for channel in channels)

    await until(lambda: reminders() >= count, timeout=30, message="every reminder")
    await a.settled()
    await b.settled()
    for channel in channels:
        assert len(reminders_in(a, channel)) == 1, channel
    store = a.app.store
    async with store.sessions() as s:
        recorded = (
            await s.execute(
                select(col(TimelineEntry.incident_id)).where(col(TimelineEntry.kind) == "reminder")
            )
        ).all()
        held = (
            await s.execute(
                select(col(Incident.id)).where(col(Incident.reminder_sending_since).is_not(None))
            )
        ).all()
    assert len(recorded) == len({r[0] for r in recorded}) == count
    assert held == []
    assert all(f"<@{BOB}>" in reminders_in(a, channel)[0]["text"] for channel in channels)
    # Slow posts overlap, up to the bound each process keeps.
    assert SENDS_AT_ONCE <= a.fake.most_at_once("chat.postMessage") <= 2 * SENDS_AT_ONCE
