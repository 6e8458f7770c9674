"""Status updates, resolving and reopening, through commands, the card and the modals."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from bot.operations.reminders import Reminders
from tests.support import (
    ALICE,
    ANNOUNCE,
    BOB,
    GENERAL,
    TRANSPORTS,
    Bot,
    StartBot,
    card_of,
    card_ts_of,
    channel_of,
    data_of,
    declared,
    element,
    entries,
    has_entries,
    human_messages,
    id_of,
    json_of,
    texts_of,
    until,
)


async def newest_view(bot: Bot, callback_id: str, seen: int = 0) -> dict[str, Any]:
    def find() -> dict[str, Any] | None:
        views = [v for v in bot.fake.views.values() if v["callback_id"] == callback_id]
        return views[seen] if len(views) > seen else None

    return await until(find, message=f"{callback_id} modal")


async def test_typed_update_posts_stores_and_refreshes(start_bot: StartBot) -> None:
    bot = await start_bot(announcements_channel=ANNOUNCE)
    bot.fake.add_channel("incidents", id=ANNOUNCE, members=["UBOT"])
    inc = await declared(bot)
    await bot.slack.command(
        "update Rolled back the deploy &amp; watching <@U0BOB|bob>",
        user=ALICE,
        channel=channel_of(inc),
    )
    await bot.settled()
    [entry] = await entries(bot, inc, "update")
    assert entry.text == "Rolled back the deploy & watching @bob"
    assert data_of(entry)["status"] == "investigating"

    posted = [
        t for t in human_messages(bot, channel_of(inc)) if "INC-1 update (investigating)" in t
    ]
    assert len(posted) == 1 and "Rolled back the deploy &amp; watching @bob" in posted[0]

    def card_after_update() -> str:
        shown = texts_of(card_of(bot, inc)["blocks"])
        return shown if "none yet" not in shown else ""

    shown = await until(card_after_update, message="card shows the last update")
    assert "Next update due" in shown
    [announcement] = bot.fake.messages(ANNOUNCE, include_system=False)
    await until(
        lambda: bot.fake.replies(ANNOUNCE, announcement["ts"]), message="announcement thread"
    )
    assert "Rolled back" in bot.fake.replies(ANNOUNCE, announcement["ts"])[0]["text"]

    stored = (await bot.incidents())[0]
    assert stored.last_update_at == entry.happened_at
    assert stored.next_update_due == entry.happened_at + timedelta(minutes=30)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_update_modal_from_the_card_sets_status(bot: Bot) -> None:
    inc = await declared(bot)
    assert element(card_of(bot, inc), "card_update")["text"]["text"] == "Post update"
    await bot.slack.block_action(
        user=BOB, channel=channel_of(inc), message_ts=card_ts_of(inc), action_id="card_update"
    )
    view = await newest_view(bot, "update")
    options = [o["value"] for o in view["blocks"][0]["element"]["options"]]
    assert options == ["investigating", "identified", "monitoring"]
    await bot.slack.submit_view(
        view["id"], user=BOB, inputs={"status": "monitoring", "summary": "Fix deployed; watching."}
    )
    await until(lambda: "Monitoring" in bot.fake.channels[channel_of(inc)].topic["value"])
    await bot.settled()
    assert "Monitoring" in texts_of(card_of(bot, inc)["blocks"])
    [entry] = await entries(bot, inc, "update")
    assert (entry.actor, data_of(entry)["status"], data_of(entry)["from"]) == (
        BOB,
        "monitoring",
        "investigating",
    )

    # `/incident update` with no text opens the same form; a double submit posts once.
    await bot.slack.command("update", user=ALICE, channel=channel_of(inc))
    view = await newest_view(bot, "update", seen=1)
    await asyncio.gather(
        *[
            bot.slack.submit_view(
                view["id"], user=ALICE, inputs={"status": "identified", "summary": "Cause found."}
            )
            for _ in range(2)
        ]
    )
    await until(lambda: has_entries(bot, inc, "update", 2))
    await bot.settled()
    assert len(await entries(bot, inc, "update")) == 2
    posted = [t for t in human_messages(bot, channel_of(inc)) if "Cause found" in t]
    assert len(posted) == 1


async def test_update_bad_input(bot: Bot) -> None:
    inc = await declared(bot)
    [told] = await bot.ask("update Something", user=ALICE, channel=GENERAL)
    assert "Run this in the incident's channel" in told["text"]
    assert told["response_type"] == "ephemeral"

    [told] = await bot.ask("update " + "x" * 3001, user=ALICE, channel=channel_of(inc))
    assert "3,000 characters" in told["text"]

    await bot.slack.command("update", user=ALICE, channel=channel_of(inc))
    view = await newest_view(bot, "update")
    reply = await bot.slack.submit_view(
        view["id"], user=ALICE, inputs={"summary": "   "}, check_required=False
    )
    assert json_of(reply)["response_action"] == "errors" and "summary" in json_of(reply)["errors"]
    await bot.settled()
    assert await entries(bot, inc, "update") == []


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_resolve_from_the_card_with_confirmation(start_bot: StartBot) -> None:
    bot = await start_bot(announcements_channel=ANNOUNCE)
    bot.fake.add_channel("incidents", id=ANNOUNCE, members=["UBOT"])
    inc = await declared(bot)
    # Two people click Resolve; both confirm in the modal; it resolves once.
    for user in (ALICE, BOB):
        await bot.slack.block_action(
            user=user, channel=channel_of(inc), message_ts=card_ts_of(inc), action_id="card_resolve"
        )
    first = await newest_view(bot, "resolve")
    second = await newest_view(bot, "resolve", seen=1)
    assert "stops update reminders" in texts_of(first["blocks"])
    await bot.slack.submit_view(first["id"], user=ALICE, inputs={"summary": "Rolled back v2.3."})
    await until(lambda: has_entries(bot, inc, "resolved", 1))
    await bot.slack.submit_view(second["id"], user=BOB, inputs={"summary": "Done."})
    note = await until(lambda: bot.private_to(BOB))
    await bot.settled()
    assert "already resolved" in note[0]
    assert len(await entries(bot, inc, "resolved")) == 1

    stored = (await bot.incidents())[0]
    assert stored.status == "resolved" and stored.resolved_at is not None
    assert stored.next_update_due is None
    assert bot.app.scheduler.get_job(Reminders.job_id(id_of(inc))) is None
    card = card_of(bot, inc)
    shown = texts_of(card["blocks"])
    assert "Resolved" in shown and "Next update due" not in shown
    assert element(card, "card_reopen")
    announcement = bot.fake.messages(ANNOUNCE, include_system=False)[0]
    await until(lambda: "resolved" in bot.fake.messages(ANNOUNCE, include_system=False)[0]["text"])
    assert len(bot.fake.messages(ANNOUNCE, include_system=False)) == 1
    assert any("Rolled back v2.3." in t for t in human_messages(bot, channel_of(inc)))
    assert announcement["ts"] == stored.announcement_ts


async def test_typed_resolve_and_reopen(bot: Bot) -> None:
    inc = await declared(bot)
    await bot.slack.command("resolve", user=ALICE, channel=channel_of(inc))
    await until(lambda: has_entries(bot, inc, "resolved", 1))
    [told] = await bot.ask("resolve", user=ALICE, channel=channel_of(inc))
    assert "already resolved" in told["text"]
    await bot.slack.command("reopen", user=BOB, channel=channel_of(inc))
    await bot.settled()
    stored = (await bot.incidents())[0]
    assert (stored.status, stored.resolved_at) == ("investigating", None)
    assert stored.next_update_due is not None
    assert bot.app.scheduler.get_job(Reminders.job_id(id_of(inc))) is not None
    assert element(card_of(bot, inc), "card_resolve")
    [told] = await bot.ask("reopen", user=BOB, channel=channel_of(inc))
    assert "is not resolved" in told["text"]
