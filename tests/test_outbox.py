"""The outbox, through its first door: outgoing webhooks.

Changes made in Slack reach a receiver as signed events, in order per incident, once per
change however the delivery goes: a receiver that is down for a while, one that refuses for
good, one that does the work and answers too late, a process killed between sending and
recording, two processes sharing the database.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import textwrap
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from jsonschema import Draft202012Validator  # type: ignore[import-untyped]

from bot.base.settings import Settings
from bot.model.tables import Effect
from bot.outbound.outbox import Outbox
from bot.outbound.store import Store
from bot.outbound.store.effects import Effects, Planned
from bot.outbound.webhooks import WebhookCourier
from tests.botprocess import ROOT
from tests.receiver import Receiver
from tests.support import (
    ALICE,
    BOB,
    GENERAL,
    TRANSPORTS,
    Bot,
    Clock,
    StartBot,
    channel_of,
    declared,
    dms_to,
    until,
)
from tests.test_metrics import scrape, value
from tests.test_updates import newest_view

# What receivers are told to expect (docs/webhook-event.schema.json).
SCHEMA = Draft202012Validator(
    json.loads((ROOT / "docs" / "webhook-event.schema.json").read_text()),
    format_checker=Draft202012Validator.FORMAT_CHECKER,
)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = await Receiver().start()
    yield r
    await r.close()


async def effects_of(bot: Bot, number: int = 1) -> list[Effect]:
    inc = next(i for i in await bot.incidents() if i.number == number)
    return await bot.app.effects.of_incident(inc.pk)


async def settled_effect(bot: Bot, *, state: str) -> Effect:
    async def one() -> Effect | None:
        found = [e for e in await effects_of(bot) if e.state == state]
        return found[0] if found else None

    return await until(one, message=f"an effect {state}")


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_receiver_gets_each_change_signed_and_in_order(
    start_bot: StartBot, receiver: Receiver
) -> None:
    bot = await start_bot(outgoing_webhooks=[receiver.hook()])
    inc = await declared(bot, "declare sev3 Checkout latency")
    # Each change stored before the next is made: events go in the order changes are stored.
    await bot.ask("severity sev1", user=ALICE, channel=channel_of(inc))
    await bot.ask(f"commander <@{BOB}>", user=ALICE, channel=channel_of(inc))
    await bot.slack.command("update", user=BOB, channel=channel_of(inc))
    view = await newest_view(bot, "update")
    await bot.slack.submit_view(
        view["id"], user=BOB, inputs={"status": "monitoring", "summary": "Rolled back."}
    )
    await bot.settled()
    await bot.slack.command("resolve Fixed by the rollback", user=BOB, channel=channel_of(inc))
    await until(lambda: len(receiver.done) == 6, message="six events delivered")
    assert receiver.events() == [
        ("declared", 1),
        ("severity_changed", 1),
        ("role_assigned", 1),
        ("update_posted", 1),
        ("status_changed", 1),
        ("resolved", 1),
    ]
    first, severity, role, update, status, resolved = receiver.done.values()
    assert first.body["incident"]["ref"] == "INC-1"
    assert first.body["incident"]["commander"] == ALICE
    assert first.body["actor"] == ALICE
    assert first.body["change"]["title"] == "Checkout latency"
    assert severity.body["change"] == {"from": "SEV3", "to": "SEV1"}
    assert severity.body["incident"]["severity"] == "SEV1"
    assert role.body["change"] == {"role": "commander", "from": ALICE, "to": BOB}
    assert role.body["incident"]["commander"] == BOB
    assert update.body["change"] == {"status": "monitoring", "summary": "Rolled back."}
    assert status.body["change"] == {"from": "investigating", "to": "monitoring"}
    assert resolved.body["incident"]["status"] == "resolved"
    assert resolved.body["incident"]["resolved_at"] is not None
    assert receiver.refused_signatures == 0
    for delivery in receiver.done.values():
        SCHEMA.validate(delivery.body)
    # Each delivered once, and the outbox says so.
    assert len(receiver.arrivals) == 6
    await until(lambda: _all_done(bot), message="every effect recorded as done")


async def test_private_incidents_reach_only_receivers_marked_for_them_and_drills_say_so(
    start_bot: StartBot, receiver: Receiver
) -> None:
    other = await Receiver().start()
    try:
        bot = await start_bot(outgoing_webhooks=[receiver.hook(), other.hook(include_private=True)])
        await bot.slack.command("declare", user=ALICE, channel=GENERAL)
        view = await newest_view(bot, "declare")
        await bot.slack.submit_view(
            view["id"], user=ALICE, inputs={"title": "Credential leak", "private": ["private"]}
        )
        await bot.wait_provisioned(1)
        await bot.slack.command("declare --drill sev2 Failover practice", user=ALICE)
        await bot.wait_provisioned(2)
        await until(lambda: len(other.done) == 2, message="both to the private receiver")
        await until(lambda: len(receiver.done) == 1, message="the drill to the other")
        await bot.settled()
        assert receiver.events() == [("declared", 2)]
        [drill] = receiver.done.values()
        assert drill.body["drill"] is True
        assert drill.body["incident"]["drill"] is True
        assert sorted(other.events()) == [("declared", 1), ("declared", 2)]
        # Nothing was recorded for the receiver the private incident must not reach.
        assert len(await effects_of(bot, 1)) == 1
    finally:
        await other.close()


async def test_a_receiver_down_for_a_while_gets_each_event_once_in_order(
    start_bot: StartBot, receiver: Receiver
) -> None:
    clock = Clock()
    receiver.answers = [503, 429]
    receiver.retry_after = "120"
    bot = await start_bot(clock=clock, outgoing_webhooks=[receiver.hook()])
    inc = await declared(bot, "declare sev3 Queue backlog")
    pending = await until(lambda: _with_error(bot), message="the first attempt refused for now")
    assert pending.state == "pending"
    assert pending.last_error == "503 Service Unavailable: answer 503"
    assert pending.attempts == 1
    told = await bot.ask("status", user=ALICE, channel=channel_of(inc))
    assert "1 being tried again (last: 503 Service Unavailable: answer 503)" in str(told)
    # A later change waits behind the first: its lane keeps the order.
    await bot.slack.command("severity sev2", user=ALICE, channel=channel_of(inc))
    await bot.settled()
    assert receiver.done == {}
    assert [e.attempts for e in await effects_of(bot)] == [1, 0]

    clock.advance(timedelta(seconds=10))  # past the first backoff (5 s, spread to at most 5 s)
    bot.app.outbox.wake()
    await until(lambda: len(receiver.arrivals) == 2, message="a second attempt")
    [first, _] = await until(lambda: _both(bot), message="the 429 recorded")
    assert first.last_error is not None and first.last_error.startswith("429")
    # The receiver asked for two minutes: not sooner.
    assert first.next_attempt_at >= clock.now + timedelta(seconds=120)
    clock.advance(timedelta(seconds=60))
    bot.app.outbox.wake()
    await bot.settled()
    assert len(receiver.arrivals) == 2
    clock.advance(timedelta(seconds=61))
    bot.app.outbox.wake()
    await until(lambda: len(receiver.done) == 2, message="both delivered")
    assert receiver.events() == [("declared", 1), ("severity_changed", 1)]
    # Three tries of the first (503, 429, 200), one of the second, the same id each time.
    assert [d.event for d in receiver.arrivals] == ["declared"] * 3 + ["severity_changed"]
    assert len({d.delivery for d in receiver.arrivals}) == 2
    await until(lambda: _all_done(bot), message="both recorded as done")
    assert [(e.state, e.attempts) for e in await effects_of(bot)] == [("done", 3), ("done", 1)]


async def _all_done(bot: Bot) -> bool:
    return {e.state for e in await effects_of(bot)} == {"done"}


async def _with_error(bot: Bot) -> Effect | None:
    found = [e for e in await effects_of(bot) if e.last_error]
    return found[0] if found else None


async def _both(bot: Bot) -> list[Effect] | None:
    found = await effects_of(bot)
    return found if found and (found[0].last_error or "").startswith("429") else None


async def test_a_receiver_refusing_for_good_is_not_retried_and_the_commander_hears_once(
    start_bot: StartBot, receiver: Receiver
) -> None:
    clock = Clock()
    receiver.answers = [404]
    bot = await start_bot(clock=clock, outgoing_webhooks=[receiver.hook()])
    await declared(bot, "declare sev2 Search down")
    failed = await settled_effect(bot, state="failed")
    assert failed.last_error == "404 Not Found: answer 404"
    told = await until(
        lambda: [m for m in dms_to(bot, ALICE) if "stopped trying" in m],
        message="the commander told",
    )
    assert "`declared`" in told[0] and "404 Not Found" in told[0] and "INC-1" in told[0]
    # Where, by host only: a receiver's path may be its secret.
    assert "127.0.0.1:" in told[0] and "/hook" not in told[0]
    clock.advance(timedelta(hours=1))
    bot.app.outbox.wake()
    await bot.settled()
    await bot.app.outbox.report_failures()
    assert len(receiver.arrivals) == 1
    assert len([m for m in dms_to(bot, ALICE) if "stopped trying" in m]) == 1
    samples = await scrape(bot)
    assert value(samples, "incident_bot_effects", kind="webhook", state="failed") == 1
    # Whoever looks at the incident sees it too.
    inc = (await bot.incidents())[0]
    status = await bot.ask("status", user=BOB, channel=channel_of(inc))
    assert "Outgoing webhooks: 0 delivered · 1 failed (last: 404 Not Found: answer 404)" in str(
        status
    )


async def test_a_receiver_that_does_the_work_but_answers_late_sees_one_effect(
    start_bot: StartBot, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock()
    monkeypatch.setattr(WebhookCourier, "timeout", 0.05)
    receiver.hang_after_work = 1.0
    bot = await start_bot(clock=clock, outgoing_webhooks=[receiver.hook()])
    await declared(bot, "declare sev2 Slow receiver")
    pending = await until(lambda: _with_error(bot), message="the attempt timed out")
    assert pending.last_error == "no answer within 0.05 s"
    assert len(receiver.done) == 1  # the work was done all the same
    receiver.hang_after_work = 0.0
    clock.advance(timedelta(seconds=10))
    bot.app.outbox.wake()
    done = await settled_effect(bot, state="done")
    assert done.attempts == 2
    # Sent twice with one delivery id; done once.
    assert [d.delivery for d in receiver.arrivals] == [done.key.removeprefix("webhook:")] * 2
    assert len(receiver.done) == 1


async def test_two_processes_deliver_each_event_once(
    start_bot: StartBot, receiver: Receiver
) -> None:
    hooks = [receiver.hook()]
    one = await start_bot(outgoing_webhooks=hooks)
    two = await start_bot(outgoing_webhooks=hooks)
    for n in range(6):
        sender = (one if n % 2 else two).slack
        await sender.command(f"declare sev3 Shared {n}", user=ALICE, channel=GENERAL)
    await until(lambda: len(receiver.done) == 6, message="six declarations delivered")
    await one.settled()
    await two.settled()
    assert sorted(n for _, n in receiver.events()) == [1, 2, 3, 4, 5, 6]
    assert len(receiver.arrivals) == 6


CRASHING_SENDER = textwrap.dedent(
    """
    import asyncio, json, sys
    import aiohttp
    from bot.base.settings import Settings
    from bot.outbound.outbox import Outbox
    from bot.outbound.store import Store
    from bot.outbound.store.effects import Effects, Planned
    from bot.outbound.webhooks import WebhookCourier

    async def main() -> None:
        url, hooks = sys.argv[1], json.loads(sys.argv[2])
        settings = Settings(slack_bot_token="xoxb-0", database_url=url, outgoing_webhooks=hooks)
        store = Store(url)
        async with aiohttp.ClientSession() as http:
            outbox = Outbox(Effects(store), {"webhook": WebhookCourier(settings, lambda: http)})
            await outbox.drain()

    asyncio.run(main())
    """
)


async def test_a_process_killed_between_sending_and_recording_is_taken_over_without_a_second_effect(
    start_bot: StartBot, receiver: Receiver, database_url: str, tmp_path: Path
) -> None:
    clock = Clock()
    bot = await start_bot(clock=clock, outgoing_webhooks=[receiver.hook()])
    # The bot's own outbox stands aside: another process sends this one.
    await _stand_aside(bot)
    await declared(bot, "declare sev2 Crash test")
    [effect] = await effects_of(bot)
    assert effect.state == "pending" and effect.attempts == 0

    receiver.hold = asyncio.Event()
    script = tmp_path / "sender.py"
    script.write_text(CRASHING_SENDER)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(script),
        database_url,
        json.dumps([receiver.hook()]),
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        await asyncio.wait_for(receiver.held.wait(), 30)
    finally:
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
    receiver.hold.set()
    # The work was done; the killed process never recorded it.
    assert len(receiver.done) == 1
    [claimed] = await effects_of(bot)
    assert (claimed.state, claimed.attempts) == ("pending", 1)
    assert claimed.lease_until is not None

    # Another process leaves it while the dead one's claim holds, then, once the claim
    # has lapsed, sends it again: same key.
    store = Store(database_url)
    try:
        values: dict[str, Any] = {
            "slack_bot_token": "xoxb-0",
            "database_url": database_url,
            "outgoing_webhooks": [receiver.hook()],
        }
        settings = Settings(_env_file=None, **values)  # type: ignore[call-arg]
        async with aiohttp.ClientSession() as http:
            outbox = Outbox(
                Effects(store), {"webhook": WebhookCourier(settings, lambda: http)}, clock=clock
            )
            await outbox.drain()
            assert len(receiver.arrivals) == 1
            clock.advance(timedelta(minutes=2))
            await outbox.drain()
    finally:
        await store.close()
    [done] = await effects_of(bot)
    assert (done.state, done.attempts) == ("done", 2)
    assert [d.delivery for d in receiver.arrivals] == [done.key.removeprefix("webhook:")] * 2
    assert len(receiver.done) == 1


async def _stand_aside(bot: Bot) -> None:
    bot.app.outbox.couriers.clear()


async def test_of_two_processes_claiming_one_effect_at_once_one_gets_it(
    database_url: str, start_bot: StartBot
) -> None:
    bot = await start_bot()
    await _stand_aside(bot)
    await declared(bot, "declare sev3 Contended")
    inc = (await bot.incidents())[0]
    now = datetime.now(UTC)
    stores = [Store(database_url) for _ in range(2)]
    try:
        effects = [Effects(s) for s in stores]
        async with stores[0].session() as session:
            await effects[0].record(
                session, [Planned(key="k1", kind="webhook", lane="l", incident_id=inc.pk)], now=now
            )
        [effect] = await effects[0].of_incident(inc.pk)
        assert effect.id is not None
        until_ = now + timedelta(minutes=1)
        got = await asyncio.gather(
            *(e.claim(effect.id, f"p{n}", now=now, until=until_) for n, e in enumerate(effects))
        )
        assert sorted(got) == [False, True]
        # Held: nobody else takes it until the lease passes.
        assert not await effects[0].claim(effect.id, "p3", now=now, until=until_)
        later = until_ + timedelta(seconds=1)
        assert await effects[1].claim(effect.id, "p4", now=later, until=later)
    finally:
        for store in stores:
            await store.close()


async def _cli(*args: str, env: dict[str, str]) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        *args,
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    return int(proc.returncode or 0), out.decode()


async def test_webhooks_test_sends_a_signed_sample_and_prints_the_answer(
    receiver: Receiver, tmp_path: Path
) -> None:
    env = {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'bot.db'}",
        "OUTGOING_WEBHOOKS": json.dumps([receiver.hook()]),
    }
    code, out = await _cli("webhooks", "test", receiver.url, env=env)
    assert code == 0, out
    [sample] = receiver.arrivals
    assert f"answered 200 to delivery {sample.delivery}" in out
    SCHEMA.validate(sample.body)
    assert sample.body["drill"] is True
    assert receiver.refused_signatures == 0

    receiver.answers = [410]
    code, out = await _cli("webhooks", "test", receiver.url, env=env)
    assert code == 1 and "answered 410 Gone: answer 410" in out

    code, out = await _cli("webhooks", "test", "https://elsewhere.example.com/x", env=env)
    assert code == 2 and "is not in OUTGOING_WEBHOOKS" in out
    assert receiver.hook()["secret"] not in out
