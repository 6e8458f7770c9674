"""Under load: Slack's rate limits (the bot waits for room in them instead of being
refused), bursts of declarations (a bounded number at once, every declarer told the truth),
changes faster than Slack shows them (few card updates, the latest state wins), and one HTTP
session for every call.

Where a test enforces Slack's tiers in the fake (it does not unless asked), the bot's pacing
is on as it is by default in production."""

from __future__ import annotations

import asyncio
from functools import partial

import pytest

from bot.app import BUSY_SLOTS
from bot.base.work import KeyedLocks, Slots, give_back
from bot.fakeslack.server import load_rate_limits
from bot.model.tables import Incident
from bot.outbound.slack.budget import KEEP_CHANNELS, Budget, Window
from bot.outbound.store.engine import POOL_SIZE
from tests.support import (
    ALICE,
    ANNOUNCE,
    BOB,
    GENERAL,
    Bot,
    StartBot,
    card_of,
    channel_of,
    declared,
    entries,
    texts_of,
    until,
)


def test_a_window_makes_the_next_call_wait_until_the_oldest_leaves_it() -> None:
    window = Window(calls=3, seconds=3.0)
    for at in (0.0, 0.5, 1.0):
        assert window.wait(at) == 0.0
        window.sent.append(at)
    assert window.wait(1.5) == 1.5  # the call at 0.0 leaves the window at 3.0
    assert window.wait(3.0) == 0.0


async def test_a_budget_paces_one_channel_and_lets_others_through(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [100.0]
    slept: list[float] = []
    budget = Budget(clock=lambda: now[0])

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    monkeypatch.setattr(asyncio, "sleep", sleep)
    for _ in range(3):
        await budget.spend("chat.postMessage", "C1")
    assert slept == []
    await budget.spend("chat.postMessage", "C2")  # another channel has its own room
    assert slept == []
    await budget.spend("chat.postMessage", "C1")  # the fourth in C1 waits its turn
    assert len(slept) == 1 and 3.0 < slept[0] <= 3.5
    # A tier-2 method: 20 a minute, then the 21st waits for the first to leave the minute.
    for _ in range(20):
        await budget.spend("conversations.setTopic")
    await budget.spend("conversations.setTopic")
    assert len(slept) == 2 and 55.0 < slept[1] <= 60.5


async def test_rapid_changes_wait_for_slacks_limits_and_are_never_refused(
    start_bot: StartBot,
) -> None:
    bot: Bot = await start_bot()
    bot.fake.rate_limits = load_rate_limits()
    again: Bot = await start_bot()  # started with the limits on: paces its calls
    assert again.app.client.budget is not None
    await bot.app.stop()
    inc = await declared(again)
    levels = ["sev2", "sev1", "sev2", "sev1", "sev2", "sev1"]
    # As fast as people click: each change is stored before the next one comes, while
    # Slack is still catching up with the ones before.
    for done, level in enumerate(levels, start=1):
        await again.slack.command(f"severity {level}", user=ALICE, channel=channel_of(inc))
        await until(partial(_count, again, inc, done), message=f"change {done}")
    await again.settled()

    refused = [c.method for c in again.fake.calls if c.error == "ratelimited"]
    assert refused == []
    posted = [
        m["text"]
        for m in again.fake.messages(channel_of(inc), include_system=False)
        if " from SEV" in m.get("text", "")
    ]
    assert len(posted) == len(levels)
    assert "SEV1" in texts_of(card_of(again, inc)["blocks"])


async def _count(bot: Bot, inc: Incident, n: int) -> bool:
    return len(await entries(bot, inc, "severity")) >= n


async def test_web_api_calls_share_connections_and_the_session_closes_on_stop(
    start_bot: StartBot,
) -> None:
    bot = await start_bot()
    before = len(bot.fake.calls)
    for n in range(1, 4):
        await bot.slack.command(f"declare sev3 Shared connections {n}", user=ALICE, channel=GENERAL)
        await bot.wait_provisioned(n)
    await bot.settled()
    calls = len(bot.fake.calls) - before
    # Each call on a connection of its own would open one per call.
    assert calls >= 15
    assert len(bot.fake.connections) <= 6, (calls, len(bot.fake.connections))
    session = bot.app.client.session
    assert session is not None and session is bot.app.bolt.client.session
    await bot.app.stop()
    assert session.closed


async def test_a_burst_of_declarations_runs_a_bounded_number_at_once_and_every_one_is_told(
    bot: Bot,
) -> None:
    """30 declarations at once while Slack is slow: they wait in line (never more at once
    than the database pool serves), and each declarer hears that theirs is declared."""
    bot.fake.set_delay("conversations.create", 0.1)
    count = 30
    await asyncio.gather(
        *(
            bot.slack.command(f"declare sev3 Burst {n}", user=ALICE, channel=GENERAL)
            for n in range(count)
        )
    )
    await until(
        lambda: sum("declared" in r.body.get("text", "") for r in bot.fake.responses) >= count,
        timeout=30,
        message="every declarer told",
    )
    await bot.settled()
    assert len(await bot.incidents()) == count
    assert all(inc.provisioned for inc in await bot.incidents())
    assert 1 < bot.fake.most_at_once("conversations.create") <= POOL_SIZE


async def test_while_requests_keep_arriving_background_work_gives_way(bot: Bot) -> None:
    """Eight declarations, then someone asking for help every 10 ms: while requests keep
    arriving (their acks are due), at most BUSY_SLOTS operations run at once; once they
    pause, the rest go ahead together, and every declaration completes."""
    bot.fake.set_delay("conversations.create", 0.2)
    asking = asyncio.Event()

    async def keep_asking() -> None:
        while not asking.is_set():
            await bot.slack.command("help", user=BOB, channel=GENERAL)
            await asyncio.sleep(0.01)

    asker = asyncio.create_task(keep_asking())
    await asyncio.gather(
        *(
            bot.slack.command(f"declare sev3 Busy {n}", user=ALICE, channel=GENERAL)
            for n in range(8)
        )
    )
    await until(
        lambda: len(bot.fake.calls_to("conversations.create")) >= 2 * BUSY_SLOTS,
        timeout=10,
        message="a few channels created while requests arrive",
    )
    while_asked = bot.fake.most_at_once("conversations.create")
    asking.set()
    await asker
    await until(
        lambda: len(bot.fake.calls_to("conversations.create")) == 8,
        timeout=10,
        message="every channel created",
    )
    await bot.settled()
    assert while_asked == BUSY_SLOTS
    assert bot.fake.most_at_once("conversations.create") > BUSY_SLOTS
    assert all(inc.provisioned for inc in await bot.incidents())


async def test_slots_count_a_waiter_cancelled_while_waiting_once() -> None:
    """A stop can cancel operations still waiting in line: none of them keeps a slot."""
    slots = Slots(2, while_busy=1)
    slots.arrived()
    entered = asyncio.Event()
    leave = asyncio.Event()

    async def hold() -> None:
        async with slots:
            entered.set()
            await leave.wait()

    holder = asyncio.create_task(hold())
    await entered.wait()
    waiters = [asyncio.create_task(hold()) for _ in range(3)]
    await asyncio.sleep(0)
    assert slots.running == 1  # arrivals: one at a time
    waiters[0].cancel()
    await asyncio.gather(waiters[0], return_exceptions=True)
    leave.set()
    await asyncio.gather(holder, *waiters[1:])
    assert slots.running == 0


async def test_changes_faster_than_slack_shows_them_cost_few_card_updates(bot: Bot) -> None:
    """Ten changes while every card update takes 0.3 s: the card is rendered a few times,
    not ten, and ends showing the last change."""
    inc = await declared(bot)
    bot.fake.set_delay("chat.update", 0.3)
    before = len(bot.fake.calls_to("chat.update"))
    levels = ["sev2", "sev1", "sev4", "sev2", "sev1", "sev4", "sev2", "sev1", "sev4", "sev2"]
    for done, level in enumerate(levels, start=1):
        await bot.slack.command(f"severity {level}", user=ALICE, channel=channel_of(inc))
        await until(partial(_count, bot, inc, done), message=f"change {done}")
    await bot.settled()
    updates = len(bot.fake.calls_to("chat.update")) - before
    assert updates <= 5, updates
    assert "SEV2" in texts_of(card_of(bot, inc)["blocks"])


async def test_per_incident_locks_are_kept_only_while_in_use() -> None:
    locks = KeyedLocks()
    order: list[str] = []
    release = asyncio.Event()

    async def first() -> None:
        async with locks.hold(7):
            order.append("first in")
            await release.wait()
        order.append("first out")

    async def second() -> None:
        async with locks.hold(7):
            order.append("second in")

    one = asyncio.ensure_future(first())
    await asyncio.sleep(0)
    two = asyncio.ensure_future(second())
    await asyncio.sleep(0)
    assert order == ["first in"] and len(locks) == 1  # the second waits on the same lock
    release.set()
    await asyncio.gather(one, two)
    assert order == ["first in", "first out", "second in"]
    assert len(locks) == 0


def _fill(bot: Bot, method: str, free_in: float, channel: str | None = None) -> None:
    """Slack's window for `method` (in `channel`) full of calls, the first of them leaving
    it in `free_in` seconds (as if other work had just spent it)."""
    budget = bot.app.client.budget
    assert budget is not None
    window = budget._windows(method, channel)[-1]
    oldest = budget.clock() - window.seconds + free_in
    window.sent.clear()
    window.sent.extend([oldest] * window.calls)


async def test_a_declaration_held_back_by_slacks_pacing_is_stored_and_its_number_told_at_once(
    start_bot: StartBot,
) -> None:
    """conversations.create's window is full: each declaration is stored and its declarer
    told its number and that the channel is being set up, before any channel can be made;
    the channels follow once Slack has room, and each declarer hears where."""
    bot = await start_bot(slack_pacing=True)
    _fill(bot, "conversations.create", free_in=3.0)
    count = POOL_SIZE + 2  # more than run at once: each gives its slot back as it waits
    await asyncio.gather(
        *(
            bot.slack.command(f"declare sev2 Paced {n}", user=ALICE, channel=GENERAL)
            for n in range(count)
        )
    )

    def told(words: str) -> list[str]:
        return [
            r.body.get("text", "") for r in bot.fake.responses if words in r.body.get("text", "")
        ]

    await until(lambda: len(told("is declared and recorded")) == count, message="numbers told")
    assert bot.fake.calls_to("conversations.create") == []  # Slack had no room yet
    stored = await bot.incidents()
    assert sorted(i.number for i in stored) == list(range(1, count + 1))
    numbers = sorted(int(t.split("*")[1].removeprefix("INC-")) for t in told("is declared"))
    assert numbers == list(range(1, count + 1))

    await until(lambda: len(told("You are in the channel")) == count, timeout=15)
    await bot.settled()
    assert all(i.provisioned for i in await bot.incidents())
    assert len(bot.fake.calls_to("conversations.create")) == count


async def test_changes_held_back_by_slacks_pacing_are_stored_at_once_and_shown_once(
    start_bot: StartBot,
) -> None:
    """conversations.setTopic's window is full: 12 changes to 12 incidents are all stored
    before Slack has room for one topic, and each incident's card and topic then show its
    latest state once."""
    bot = await start_bot(slack_pacing=True)
    count = 12
    incs = []
    for n in range(1, count + 1):
        await bot.slack.command(f"declare sev3 Paced change {n}", user=ALICE, channel=GENERAL)
        incs.append(await bot.wait_provisioned(n))
    await bot.settled()
    _fill(bot, "conversations.setTopic", free_in=2.0)
    topics = len(bot.fake.calls_to("conversations.setTopic"))
    updates = len(bot.fake.calls_to("chat.update"))

    await asyncio.gather(
        *(bot.slack.command("severity sev1", user=ALICE, channel=channel_of(i)) for i in incs)
    )

    async def all_stored() -> bool:
        return all(i.severity == "SEV1" for i in await bot.incidents())

    await until(all_stored, message="every change stored")
    assert len(bot.fake.calls_to("conversations.setTopic")) == topics  # none could go yet

    await bot.settled(timeout=20)
    assert len(bot.fake.calls_to("conversations.setTopic")) == topics + count
    assert len(bot.fake.calls_to("chat.update")) == updates + count
    for inc in incs:
        assert "SEV1" in bot.fake.channels[channel_of(inc)].topic["value"]
        assert "SEV1" in texts_of(card_of(bot, inc)["blocks"])
    assert all(i.shown_version == i.version for i in await bot.incidents())


async def test_a_stop_while_slack_paces_declarations_leaves_none_unknown(
    start_bot: StartBot,
) -> None:
    """SIGTERM's path (`stop`) while declarations wait a minute for Slack's room: each one
    is stored and its declarer knows its number; the next start sets up their channels at
    once (the stopped process gave its claims up) instead of after the lease runs out."""
    bot = await start_bot(slack_pacing=True)
    _fill(bot, "conversations.create", free_in=60.0)
    count = 3
    await asyncio.gather(
        *(
            bot.slack.command(f"declare sev2 Stopped {n}", user=ALICE, channel=GENERAL)
            for n in range(count)
        )
    )
    await until(
        lambda: sum("is declared" in r.body.get("text", "") for r in bot.fake.responses) == count,
        message="numbers told",
    )
    await bot.app.stop(grace=0.2)
    assert bot.fake.calls_to("conversations.create") == []

    again = await start_bot()
    stored = await again.incidents()
    assert len(stored) == count
    for inc in stored:
        await again.wait_provisioned(inc.number)
    await again.settled()
    assert len(bot.fake.calls_to("conversations.create")) == count


async def test_a_declarer_does_not_wait_for_a_paced_announcements_channel(
    start_bot: StartBot,
) -> None:
    """Slack posts about one message a second in a channel: with the announcements
    channel's room spent, the declarer hears the channel is ready at once, and the
    announcement follows once Slack has room, once."""
    bot = await start_bot(slack_pacing=True, announcements_channel=ANNOUNCE)
    bot.fake.add_channel("incidents", id=ANNOUNCE, members=["UBOT", ALICE])
    _fill(bot, "chat.postMessage", free_in=2.0, channel=ANNOUNCE)
    await bot.slack.command("declare sev2 Paced announcement", user=ALICE, channel=GENERAL)
    await until(
        lambda: any("You are in the channel" in r.body.get("text", "") for r in bot.fake.responses),
        message="the declarer told",
    )
    assert bot.fake.messages(ANNOUNCE, include_system=False) == []

    await bot.settled()
    announced = bot.fake.messages(ANNOUNCE, include_system=False)
    assert len(announced) == 1 and "Paced announcement" in str(announced[0])
    (inc,) = await bot.incidents()
    assert inc.announcement_ts == announced[0]["ts"] and inc.shown_version == inc.version


async def test_an_operation_waiting_behind_anothers_slack_work_gives_its_slot_back() -> None:
    """One slot. The first operation stores, then waits for Slack's pacing with the
    incident's lock held; the second stores, then waits for that lock: each gives its slot
    back as it starts waiting, so the third stores at once instead of after both."""
    slots = Slots(1, while_busy=1)
    locks = KeyedLocks()
    paced = asyncio.Event()
    done: list[str] = []

    async def first() -> None:
        async with slots:
            done.append("first stored")
            async with locks.hold(1):
                give_back()  # as Budget.spend does before it waits
                await paced.wait()

    async def second() -> None:
        async with slots:
            done.append("second stored")
            async with locks.hold(1):
                done.append("second shown")

    async def third() -> None:
        async with slots:
            done.append("third stored")

    tasks = [asyncio.ensure_future(op()) for op in (first, second, third)]
    await until(lambda: "third stored" in done, message="the third stored")
    assert done == ["first stored", "second stored", "third stored"]
    assert slots.running == 0  # nobody holds a slot while waiting
    paced.set()
    await asyncio.gather(*tasks)
    assert done[-1] == "second shown" and slots.running == 0


async def test_a_budget_forgets_quiet_channels_and_keeps_busy_ones() -> None:
    """Posts to more channels than it keeps windows for: busy channels keep theirs (their
    pacing holds), quiet ones are forgotten once the least recently used are quiet."""
    now = [100.0]
    budget = Budget(clock=lambda: now[0])
    many = KEEP_CHANNELS + 200
    for n in range(many):
        await budget.spend("chat.postMessage", f"C{n}")
    assert len(budget._channels) == many  # all still busy: none forgotten
    for _ in range(2):
        await budget.spend("chat.postMessage", "C0")  # C0's burst of three is spent
    assert budget.paced("chat.postMessage", "C0")

    now[0] += 10  # every window is empty again
    await budget.spend("chat.postMessage", "Cnew")
    assert len(budget._channels) <= KEEP_CHANNELS
    assert not budget.paced("chat.postMessage", "C0")
