"""Nudges after the incident: each fires once at its time (an injected clock), not before and
not again, with two processes on one database too; switched off at 0. The test runs the
periodic passes itself once it has moved the clock (`passes`)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from bot.model.tables import Incident
from tests.support import (
    ALICE,
    BOB,
    GENERAL,
    Bot,
    StartBot,
    channel_of,
    human_messages,
)

T0 = datetime.now(UTC).replace(microsecond=0)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def to(self, delta: timedelta) -> None:
        self.now = T0 + delta


NUDGES = {
    "nudge_postmortem_hours": 24,
    "nudge_follow_ups_hours": 24,
    "nudge_inactive_days": 3,
    "archive_after_days": 7,
}


def said(bot: Bot, inc: Incident, words: str) -> list[str]:
    return [t for t in human_messages(bot, channel_of(inc)) if words in t]


def archived(bot: Bot, inc: Incident) -> bool:
    return bot.fake.channels[channel_of(inc)].is_archived


async def passes(*bots: Bot, n: int = 2) -> None:
    """`n` rounds of the periodic pass at the clock's time (the second shows what the first
    did is not done again), each bot's pass of a round run side by side as their schedulers
    would; returns once they and what they set off are done."""
    for _ in range(n):
        await asyncio.gather(*(bot.nudge_pass() for bot in bots))


async def test_each_nudge_fires_once_at_its_time(start_bot: StartBot) -> None:
    clock = Clock()
    bot = await start_bot(clock=clock, **NUDGES)
    # A second process on the same database runs the same passes.
    other = await start_bot(clock=clock, **NUDGES)

    await bot.slack.command("declare sev2 Cache stampede", user=ALICE, channel=GENERAL)
    resolved = await bot.wait_provisioned(1)
    await bot.ask("action Add jitter to cache expiry", user=ALICE, channel=channel_of(resolved))
    await bot.ask(f"action Load test <@{BOB}>", user=ALICE, channel=channel_of(resolved))
    await bot.ask("resolve Expiry spread out", user=ALICE, channel=channel_of(resolved))

    await bot.slack.command("declare sev3 Written up", user=ALICE, channel=GENERAL)
    written = await bot.wait_provisioned(2)
    await bot.ask("resolve Done", user=ALICE, channel=channel_of(written))
    await bot.ask("postmortem", user=ALICE, channel=channel_of(written))

    await bot.slack.command("declare sev3 Forgotten", user=ALICE, channel=GENERAL)
    quiet = await bot.wait_provisioned(3)
    await bot.slack.command("declare sev3 Still worked on", user=ALICE, channel=GENERAL)
    busy = await bot.wait_provisioned(4)
    await bot.slack.command("declare --drill sev3 Game day", user=ALICE, channel=GENERAL)
    drill = await bot.wait_provisioned(5)
    await bot.ask("resolve Practice over", user=ALICE, channel=channel_of(drill))
    await bot.settled()

    # Not yet: a day is not over.
    clock.to(timedelta(hours=23, minutes=59))
    await passes(bot, other)
    assert not said(bot, resolved, "no postmortem draft")
    assert not said(bot, resolved, "no owner")

    clock.to(timedelta(hours=24, minutes=1))
    await passes(bot, other)
    [nudge] = said(bot, resolved, "no postmortem draft")
    assert f"<@{ALICE}>" in nudge and "INC-1 was resolved 24 hours ago" in nudge
    [owners] = said(bot, resolved, "no owner")
    assert "1 follow-up of INC-1 has no owner" in owners
    # The one with a draft, and the drill, are left alone.
    assert not said(bot, written, "no postmortem draft")
    assert not said(bot, drill, "no postmortem draft")

    # A note keeps INC-4 active; INC-3 goes quiet for three days.
    clock.to(timedelta(days=2))
    await bot.ask("note Still digging into the slow queries", user=ALICE, channel=channel_of(busy))
    clock.to(timedelta(days=3, minutes=1))
    await passes(bot, other)
    [idle] = said(bot, quiet, "no activity")
    assert "INC-3 has been open with no activity for 3 days" in idle
    assert not said(bot, busy, "no activity")

    # A week after resolution: a closing message, then the channel is archived.
    clock.to(timedelta(days=7, minutes=1))
    await passes(bot, other)
    for inc in (resolved, written, drill):
        assert archived(bot, inc)
        assert len(said(bot, inc, "this channel is archived now")) == 1
    assert not bot.fake.channels[channel_of(quiet)].is_archived
    stored = {i.number: i for i in await bot.incidents()}
    assert stored[1].channel_state == "archived"
    # Nothing was sent twice by either process.
    assert len(said(bot, resolved, "no postmortem draft")) == 1
    assert len(said(bot, quiet, "no activity")) == 1
    # Both processes run the pass on their schedule.
    for each in (bot, other):
        job = each.app.scheduler.get_job("nudges")
        assert job is not None and job.func == each.app.nudge_pass


async def test_nudges_switched_off_send_nothing(start_bot: StartBot) -> None:
    clock = Clock()
    bot = await start_bot(
        clock=clock,
        nudge_postmortem_hours=0,
        nudge_follow_ups_hours=0,
        nudge_inactive_days=0,
    )
    await bot.slack.command("declare sev2 Left alone", user=ALICE, channel=GENERAL)
    inc = await bot.wait_provisioned(1)
    await bot.ask("action Something nobody owns", user=ALICE, channel=channel_of(inc))
    await bot.slack.command("declare sev2 Resolved", user=ALICE, channel=GENERAL)
    done = await bot.wait_provisioned(2)
    await bot.ask("resolve ok", user=ALICE, channel=channel_of(done))
    # Past every nudge's time had it been on, within the passes' 30-day look-back.
    clock.to(timedelta(days=5))
    await passes(bot, n=4)
    for i in (inc, done):
        texts = human_messages(bot, channel_of(i))
        assert not [t for t in texts if "no postmortem" in t or "no activity" in t]
        assert not bot.fake.channels[channel_of(i)].is_archived


async def test_a_nudge_slack_refused_for_a_moment_is_sent_on_a_later_pass(
    start_bot: StartBot,
) -> None:
    clock = Clock()
    bot = await start_bot(clock=clock, nudge_inactive_days=1)
    await bot.slack.command("declare sev2 Quiet one", user=ALICE, channel=GENERAL)
    inc = await bot.wait_provisioned(1)
    await bot.settled()
    # Slack refuses the post once, for a reason that passes (and that slack_sdk leaves to
    # the caller rather than retrying after a backoff).
    bot.fake.fail("chat.postMessage", error="internal_error")
    clock.to(timedelta(days=1, minutes=1))
    await passes(bot, n=1)
    assert not said(bot, inc, "no activity")
    assert [c.error for c in bot.fake.calls_to("chat.postMessage")][-1:] == ["internal_error"]
    await passes(bot)
    assert len(said(bot, inc, "no activity")) == 1
