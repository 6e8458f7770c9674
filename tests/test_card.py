"""Severity and roles from the card and by command: what people see after each step."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.support import (
    ALICE,
    ANNOUNCE,
    BOB,
    CAROL,
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
    texts_of,
    until,
)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_card_controls_change_severity_and_roles(start_bot: StartBot) -> None:
    bot = await start_bot(announcements_channel=ANNOUNCE)
    bot.fake.add_channel("incidents", id=ANNOUNCE, members=["UBOT"])
    inc = await declared(bot)
    card = card_of(bot, inc)

    # The severity menu offers every level, with the current one selected.
    menu = element(card, "card_severity")
    assert [o["value"] for o in menu["options"]] == ["SEV1", "SEV2", "SEV3", "SEV4"]
    assert menu["initial_option"]["value"] == "SEV3"
    commander_picker = element(card, "card_role:commander")
    assert commander_picker["type"] == "users_select"
    assert commander_picker["initial_user"] == ALICE
    assert element(card, "card_role:comms")["type"] == "users_select"

    reply = await bot.slack.block_action(
        user=BOB,
        channel=channel_of(inc),
        message_ts=card_ts_of(inc),
        action_id="card_severity",
        selected_option="SEV1",
    )
    assert reply.status == 200

    async def severity_shown() -> bool:
        return "SEV1 · Critical" in texts_of(card_of(bot, inc)["blocks"])

    await until(severity_shown, message="card shows SEV1")
    await until(lambda: "SEV1" in bot.fake.channels[channel_of(inc)].topic["value"])

    def announced() -> list[dict[str, Any]]:
        posts = bot.fake.messages(ANNOUNCE, include_system=False)
        return posts if "SEV1" in texts_of(posts[0]["blocks"]) else []

    announcement = await until(announced, message="announcement edited in place")
    assert len(announcement) == 1
    # Getting worse is said in the channel and in the announcement's thread.
    await until(
        lambda: any("raised INC-1 from SEV3" in t for t in human_messages(bot, channel_of(inc)))
    )
    await until(lambda: bot.fake.replies(ANNOUNCE, announcement[0]["ts"]), message="thread")
    assert "SEV1" in bot.fake.replies(ANNOUNCE, announcement[0]["ts"])[0]["text"]

    [change] = await entries(bot, inc, "severity")
    assert (change.actor, change.data) == (BOB, {"from": "SEV3", "to": "SEV1"})
    assert element(card_of(bot, inc), "card_severity")["initial_option"]["value"] == "SEV1"

    # Comms lead from the card's picker: invited, told what the role does.
    await bot.slack.block_action(
        user=ALICE,
        channel=channel_of(inc),
        message_ts=card_ts_of(inc),
        action_id="card_role:comms",
        selected_user=CAROL,
    )
    await bot.settled()
    assert f"*Communications Lead*\n<@{CAROL}>" in texts_of(card_of(bot, inc)["blocks"])
    assert CAROL in bot.fake.channels[channel_of(inc)].members
    told = [t for t in human_messages(bot, channel_of(inc)) if "Communications Lead" in t]
    assert len(told) == 1 and "stakeholders" in told[0]

    # Commander handover from the card: recorded as from -> to; the topic follows.
    await bot.slack.block_action(
        user=ALICE,
        channel=channel_of(inc),
        message_ts=card_ts_of(inc),
        action_id="card_role:commander",
        selected_user=BOB,
    )
    await until(lambda: f"<@{BOB}>" in bot.fake.channels[channel_of(inc)].topic["value"])
    await bot.settled()  # the handover message is posted after the re-render
    roles = [e.data for e in await entries(bot, inc, "role")]
    assert roles == [
        {"role": "comms", "from": None, "to": CAROL},
        {"role": "commander", "from": ALICE, "to": BOB},
    ]
    assert any("handed over from" in t for t in human_messages(bot, channel_of(inc)))
    assert (await bot.store.roles(id_of(inc))) == {"commander": BOB, "comms": CAROL}


async def test_commands_change_severity_and_roles(bot: Bot) -> None:
    inc = await declared(bot)
    ch = channel_of(inc)

    await bot.slack.command("sev sev2", user=ALICE, channel=ch)
    await until(lambda: has_entries(bot, inc, "severity", 1))
    await bot.slack.command("severity SEV2", user=ALICE, channel=ch)  # already SEV2
    await until(lambda: any("already SEV2" in r.body.get("text", "") for r in bot.fake.responses))
    await bot.slack.command("severity sev4", user=ALICE, channel=ch)  # better: no alarm
    await until(lambda: has_entries(bot, inc, "severity", 2))
    assert [data_of(e)["to"] for e in await entries(bot, inc, "severity")] == ["SEV2", "SEV4"]

    await bot.slack.command("commander <@U0BOB|bob>", user=ALICE, channel=ch)
    await until(lambda: has_entries(bot, inc, "role", 1))
    await bot.slack.command("comms me", user=CAROL, channel=ch)
    await until(lambda: has_entries(bot, inc, "role", 2))
    await bot.slack.command("comms @alice", user=CAROL, channel=ch)  # unescaped @name
    await until(lambda: has_entries(bot, inc, "role", 3))
    await bot.settled()
    assert (await bot.store.roles(id_of(inc))) == {"commander": BOB, "comms": ALICE}
    assert {BOB, CAROL, ALICE} <= set(bot.fake.channels[ch].members)
    shown = texts_of(card_of(bot, inc)["blocks"])
    assert f"*Incident Commander*\n<@{BOB}>" in shown and "SEV4 · Low" in shown


async def test_extra_roles_from_settings(start_bot: StartBot) -> None:
    bot = await start_bot(
        extra_roles='[{"name": "scribe", "label": "Scribe", "description": "Keeps notes."}]'
    )
    inc = await declared(bot)
    assert element(card_of(bot, inc), "card_role:scribe")["type"] == "users_select"
    await bot.slack.command("role scribe <@U0CAROL|carol>", user=ALICE, channel=channel_of(inc))
    await until(lambda: "*Scribe*\n<@U0CAROL>" in texts_of(card_of(bot, inc)["blocks"]))


async def test_no_argument_shows_choices_privately(bot: Bot) -> None:
    inc = await declared(bot)
    [answer] = await bot.ask("severity", user=ALICE, channel=channel_of(inc))
    assert answer["response_type"] == "ephemeral"
    assert "SEV1" in answer["text"] and "SEV4" in answer["text"]
    assert any(b.get("accessory", {}).get("action_id") == "card_severity" for b in answer["blocks"])

    [answer] = await bot.ask("commander", user=ALICE, channel=channel_of(inc))
    picker = answer["blocks"][0]["accessory"]
    assert (picker["type"], picker["action_id"]) == ("users_select", "card_role:commander")


async def test_status_is_private(bot: Bot) -> None:
    inc = await declared(bot)
    [answer] = await bot.ask("status", user=CAROL, channel=channel_of(inc))
    assert answer["response_type"] == "ephemeral"
    shown = texts_of(answer["blocks"])
    assert "INC-1 · Checkout latency" in shown and "SEV3" in shown and f"<@{ALICE}>" in shown
    # No controls in a private copy.
    assert not any(b.get("accessory") or b["type"] == "actions" for b in answer["blocks"])


async def test_bad_input_is_answered_privately_and_changes_nothing(bot: Bot) -> None:
    inc = await declared(bot)
    ch = channel_of(inc)
    cases = [
        ("severity sev9", GENERAL, "Run this in the incident's channel"),
        ("severity sev9", ch, "`sev9` is not a severity"),
        ("severity critical", ch, "is not a severity"),
        ("role chef @bob", ch, "`chef` is not a role"),
        ("commander <@U0HELPER|deploybot>", ch, "is an app, not a person"),
        ("commander <@U0GONE|gone>", ch, "deactivated"),
        ("commander <@U0NOBODY>", ch, "not in this workspace"),
        ("commander @nobody", ch, "Nobody called `@nobody`"),
        ("comms <@U0BOB|bob> <@U0CAROL|carol>", ch, "Name one person"),
    ]
    for text, channel, expected in cases:
        [answer] = await bot.ask(text, user=ALICE, channel=channel)
        assert expected in answer["text"], (text, answer["text"])
        assert answer["response_type"] == "ephemeral"
        if "channel" in expected:
            assert f"<#{ch}>" in answer["text"]  # names the channel to use
    assert [e.kind for e in await bot.timeline(inc)] == ["declared"]
    assert (await bot.store.roles(id_of(inc))) == {"commander": ALICE}


async def test_resolved_incident_refuses_changes(bot: Bot) -> None:
    inc = await declared(bot)
    await bot.slack.command("resolve Fixed by rollback", user=ALICE, channel=channel_of(inc))
    await bot.settled()
    card = card_of(bot, inc)
    assert not any(b.get("accessory") for b in card["blocks"])  # menus gone once resolved
    for text in ("severity sev1", "commander me", "update still fine"):
        [answer] = await bot.ask(text, user=ALICE, channel=channel_of(inc))
        assert "is resolved" in answer["text"]
    # A stale menu click on an old copy of the card is refused too.
    await bot.slack.block_action(
        user=ALICE,
        channel=channel_of(inc),
        message_ts=card_ts_of(inc),
        action_id="card_reopen",
    )
    await until(lambda: has_entries(bot, inc, "reopened", 1))
    kinds = [e.kind for e in await bot.timeline(inc)]
    assert kinds == ["declared", "resolved", "reopened"]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_double_click_gives_one_change(bot: Bot) -> None:
    inc = await declared(bot)
    clicks = [
        bot.slack.block_action(
            user=BOB,
            channel=channel_of(inc),
            message_ts=card_ts_of(inc),
            action_id="card_severity",
            selected_option="SEV2",
        )
        for _ in range(3)
    ] + [
        bot.slack.block_action(
            user=BOB,
            channel=channel_of(inc),
            message_ts=card_ts_of(inc),
            action_id="card_role:comms",
            selected_user=CAROL,
        )
        for _ in range(3)
    ]
    await asyncio.gather(*clicks)
    await until(lambda: has_entries(bot, inc, "role", 1))
    await until(lambda: has_entries(bot, inc, "severity", 1))
    await bot.settled()
    assert len(await entries(bot, inc, "severity")) == 1
    assert len(await entries(bot, inc, "role")) == 1
    said = human_messages(bot, channel_of(inc))
    assert len([t for t in said if "from SEV3 to" in t]) == 1
    assert len([t for t in said if "Communications Lead" in t]) == 1


async def test_an_unchanged_topic_is_not_set_again(bot: Bot) -> None:
    # Slack posts "set the channel topic" in the channel for every change.
    inc = await declared(bot)
    await bot.ask("comms <@U0CAROL|carol>", user=ALICE, channel=channel_of(inc))
    await bot.ask("update Looking", user=ALICE, channel=channel_of(inc))
    assert len(bot.fake.calls_to("conversations.setTopic")) == 1
    await bot.ask("severity sev1", user=ALICE, channel=channel_of(inc))
    assert len(bot.fake.calls_to("conversations.setTopic")) == 2
    topics = [m for m in bot.fake.messages(channel_of(inc)) if m.get("subtype") == "channel_topic"]
    assert len(topics) == 2
