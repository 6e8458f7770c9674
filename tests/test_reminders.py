"""Reminders: on time, to the right person, restarted by updates, durable across restarts,
and sent exactly once by several processes sharing a database.

The bots run on a clock the test moves (`Clock`); each round of reminders runs once the
clock has reached it (`Bot.reminders_due`), so these tests wait for no interval to pass.
"""

from __future__ import annotations

import asyncio
import itertools
from datetime import datetime, timedelta
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
    Clock,
    StartBot,
    channel_of,
    data_of,
    element,
    entries,
    id_of,
)

INTERVAL = timedelta(minutes=30)  # REMINDER_INTERVAL_MINUTES, the default
SECOND = timedelta(seconds=1)


def reminders_in(bot: Bot, channel: str) -> list[dict[str, Any]]:
    return [
        m
        for m in bot.fake.messages(channel, include_system=False)
        if "needs a status update" in m.get("text", "")
    ]


async def dues(bot: Bot, inc: Incident) -> list[datetime]:
    """The due time each recorded reminder was sent for, in order."""
    return [datetime.fromisoformat(data_of(e)["due"]) for e in await entries(bot, inc, "reminder")]


async def declare(bot: Bot, text: str = "declare sev2 Checkout latency") -> Incident:
    await bot.slack.command(text, user=ALICE, channel=GENERAL)
    inc = await bot.wait_provisioned(1)
    await bot.settled()
    return inc


async def test_reminder_on_time_mentions_the_right_person(start_bot: StartBot) -> None:
    clock = Clock()
    bot = await start_bot(clock=clock)
    inc = await declare(bot)
    due = inc.declared_at + INTERVAL
    # The scheduler wakes for it when it is due.
    job = bot.app.scheduler.get_job(Reminders.job_id(id_of(inc)))
    assert job is not None and job.next_run_time == due

    # Not a moment before it is due; then at once. The declarer commands, so the declarer
    # is reminded.
    clock.advance(INTERVAL - SECOND)
    await bot.reminders_due()
    assert reminders_in(bot, channel_of(inc)) == []
    clock.advance(SECOND)
    await bot.reminders_due()
    [first] = reminders_in(bot, channel_of(inc))
    assert await dues(bot, inc) == [due]
    assert f"<@{ALICE}>" in first["text"]
    assert element(first, "reminder_update") and element(first, "reminder_snooze:15")

    # The comms lead takes over reminders once there is one.
    await bot.ask("comms <@U0CAROL|carol>", user=ALICE, channel=channel_of(inc))
    for _ in range(2):
        clock.advance(INTERVAL)
        await bot.reminders_due()
    sent = reminders_in(bot, channel_of(inc))
    assert len(sent) == 3
    assert f"<@{CAROL}>" in sent[-1]["text"]
    # Each reminder is on the timeline, once, an interval after the one before.
    assert await dues(bot, inc) == [due, due + INTERVAL, due + 2 * INTERVAL]


async def test_a_reminder_edits_the_card_but_not_the_unchanged_announcement(
    start_bot: StartBot,
) -> None:
    """A reminder moves the next update's due time, which the card shows and the public
    announcement does not: the card is edited, the announcement is left alone."""
    clock = Clock()
    bot = await start_bot(clock=clock, announcements_channel=ANNOUNCE)
    bot.fake.add_channel("incidents", id=ANNOUNCE, members=["UBOT", ALICE])
    inc = await declare(bot)

    def edits(channel: str) -> int:
        return sum(c.args.get("channel") == channel for c in bot.fake.calls_to("chat.update"))

    card, announcement = edits(channel_of(inc)), edits(ANNOUNCE)
    for _ in range(2):
        clock.advance(INTERVAL)
        await bot.reminders_due()
    assert len(reminders_in(bot, channel_of(inc))) == 2
    assert edits(channel_of(inc)) >= card + 2
    assert edits(ANNOUNCE) == announcement

    # A change the announcement shows still reaches it.
    await bot.ask("severity sev1", user=ALICE, channel=channel_of(inc))
    assert edits(ANNOUNCE) == announcement + 1
    shown = bot.fake.channels[ANNOUNCE].find(str((await bot.incidents())[0].announcement_ts))
    assert shown is not None and "SEV1" in str(shown)


async def test_an_update_restarts_the_interval(start_bot: StartBot) -> None:
    clock = Clock()
    bot = await start_bot(clock=clock)
    inc = await declare(bot)
    clock.advance(INTERVAL * 2 / 3)
    await bot.ask("update Mitigating", user=ALICE, channel=channel_of(inc))
    [update] = await entries(bot, inc, "update")
    assert update.happened_at == clock.now
    # The first reminder waits a whole interval from the update: none falls due at the
    # declaration's interval, nor a moment before the update's.
    clock.advance(INTERVAL - SECOND)
    await bot.reminders_due()
    assert reminders_in(bot, channel_of(inc)) == []
    clock.advance(SECOND)
    await bot.reminders_due()
    assert len(reminders_in(bot, channel_of(inc))) == 1
    assert await dues(bot, inc) == [update.happened_at + INTERVAL]


async def test_snooze_moves_the_reminder(start_bot: StartBot) -> None:
    clock = Clock()
    interval = timedelta(minutes=10)  # shorter than the snooze, which must win over it
    bot = await start_bot(clock=clock, reminder_interval_minutes=10)
    inc = await declare(bot)
    clock.advance(interval)
    await bot.reminders_due()
    [reminder] = reminders_in(bot, channel_of(inc))
    for _ in range(2):  # a double click snoozes once
        await bot.slack.block_action(
            user=BOB,
            channel=channel_of(inc),
            message_ts=reminder["ts"],
            action_id="reminder_snooze:15",
        )
    await bot.settled()
    stored = (await bot.incidents())[0]
    assert stored.next_update_due == clock.now + timedelta(minutes=15)
    assert len(await entries(bot, inc, "snooze")) == 1
    assert any("in 15 min" in t for t in bot.private_to(BOB))
    # The interval passes and the snooze holds the next reminder back until it is over.
    clock.advance(timedelta(minutes=15) - SECOND)
    await bot.reminders_due()
    assert len(reminders_in(bot, channel_of(inc))) == 1
    clock.advance(SECOND)
    await bot.reminders_due()
    assert len(reminders_in(bot, channel_of(inc))) == 2


async def test_reminder_button_opens_the_update_form(start_bot: StartBot) -> None:
    clock = Clock()
    bot = await start_bot(clock=clock)
    inc = await declare(bot)
    clock.advance(INTERVAL)
    await bot.reminders_due()
    [reminder] = reminders_in(bot, channel_of(inc))
    await bot.slack.block_action(
        user=ALICE, channel=channel_of(inc), message_ts=reminder["ts"], action_id="reminder_update"
    )
    await bot.settled()
    [view] = [v for v in bot.fake.views.values() if v["callback_id"] == "update"]
    await bot.slack.submit_view(view["id"], user=ALICE, inputs={"summary": "On it."})
    await bot.settled()
    assert len(await entries(bot, inc, "update")) == 1


async def test_severity_change_recomputes_the_due_time(start_bot: StartBot) -> None:
    severities = (
        '[{"name": "SEV1", "label": "Critical", "reminder_minutes": 5},'
        ' {"name": "SEV2", "label": "Major"}]'
    )
    clock = Clock()
    bot = await start_bot(clock=clock, severities=severities, reminder_interval_minutes=60)
    inc = await declare(bot, "declare sev2 Slow")
    clock.advance(timedelta(minutes=10))
    await bot.reminders_due()
    assert reminders_in(bot, channel_of(inc)) == []
    await bot.ask("severity sev1", user=ALICE, channel=channel_of(inc))
    # SEV1's 5 minutes count from the declaration, so it is already overdue.
    await bot.reminders_due()
    assert len(reminders_in(bot, channel_of(inc))) == 1
    assert await dues(bot, inc) == [inc.declared_at + timedelta(minutes=5)]


async def test_resolve_stops_reminders(start_bot: StartBot) -> None:
    clock = Clock()
    bot = await start_bot(clock=clock)
    inc = await declare(bot)
    clock.advance(INTERVAL)
    await bot.reminders_due()
    assert len(reminders_in(bot, channel_of(inc))) == 1
    await bot.ask("resolve Fixed", user=ALICE, channel=channel_of(inc))
    assert bot.app.scheduler.get_job(Reminders.job_id(id_of(inc))) is None
    for _ in range(3):
        clock.advance(INTERVAL)
        await bot.reminders_due()
    assert len(reminders_in(bot, channel_of(inc))) == 1
    assert bot.app.scheduler.get_job(Reminders.job_id(id_of(inc))) is None


async def test_restart_in_the_middle_of_an_interval(start_bot: StartBot) -> None:
    clock = Clock()
    bot = await start_bot(clock=clock)
    inc = await declare(bot)
    assert inc.next_update_due == inc.declared_at + INTERVAL
    clock.advance(INTERVAL / 2)
    await bot.reminders_due()
    await bot.app.stop()
    assert reminders_in(bot, channel_of(inc)) == []

    # The new process reminds at the stored due time: not before, not twice.
    again = await start_bot(clock=clock)
    await again.reminders_due()
    assert reminders_in(again, channel_of(inc)) == []
    clock.advance(INTERVAL / 2 - SECOND)
    await again.reminders_due()
    assert reminders_in(again, channel_of(inc)) == []
    clock.advance(SECOND)
    await again.reminders_due()
    await again.reminders_due()
    assert len(reminders_in(again, channel_of(inc))) == 1
    assert await dues(again, inc) == [inc.next_update_due]


async def test_reminder_due_while_stopped_is_sent_once_at_start_up(start_bot: StartBot) -> None:
    clock = Clock()
    bot = await start_bot(clock=clock, reminder_interval_minutes=10)
    inc = await declare(bot)
    await bot.app.stop()
    clock.advance(timedelta(minutes=50))  # five intervals pass while nothing runs

    again = await start_bot(clock=clock)
    # Its job comes due at once after start-up: one reminder, not one per missed interval.
    await again.reminders_due()
    await again.reminders_due()
    assert len(reminders_in(bot, channel_of(inc))) == 1
    assert await dues(again, inc) == [inc.declared_at + timedelta(minutes=10)]
    # The next is a (new) interval after it.
    [stored] = await again.incidents()
    assert stored.next_update_due == clock.now + INTERVAL


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_two_processes_send_each_reminder_once(start_bot: StartBot) -> None:
    """Two bots on one PostgreSQL database, one replaced midway: every reminder once. Both
    run each round at the same moment, as their schedulers would."""
    clock = Clock()
    a = await start_bot(clock=clock)
    b = await start_bot(clock=clock)
    inc = await declare(a)
    for _ in range(5):
        clock.advance(INTERVAL / 2)
        await asyncio.gather(a.reminders_due(), b.reminders_due())
    await b.app.stop()
    c = await start_bot(clock=clock)
    for _ in range(6):
        clock.advance(INTERVAL / 2)
        await asyncio.gather(a.reminders_due(), c.reminders_due())

    sent = reminders_in(a, channel_of(inc))
    due = await dues(a, inc)
    assert len(sent) == len(due) == 5
    # Consecutive reminders are an interval apart: none doubled, none skipped.
    assert [later - earlier for earlier, later in itertools.pairwise(due)] == [INTERVAL] * 4
    assert due[0] == inc.declared_at + INTERVAL


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
    clock = Clock()
    a = await start_bot(clock=clock, reminder_interval_minutes=60)
    b = await start_bot(clock=clock, reminder_interval_minutes=60)
    a.fake.set_delay("chat.postMessage", 0.05)
    count = 150
    channels = await _seed_due(a, database_url, count, clock.now + timedelta(minutes=1))
    clock.advance(timedelta(minutes=1))
    # Both processes' schedulers wake for all of them at the same moment.
    await asyncio.gather(a.reminders_due(), b.reminders_due())
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
