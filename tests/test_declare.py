"""Declaring incidents end to end: signed requests to the real bot, Slack played by the fake."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest

from tests.support import (
    ALICE,
    BOB,
    GENERAL,
    TRANSPORTS,
    Bot,
    StartBot,
    card_of,
    card_ts_of,
    channel_of,
    json_of,
    texts_of,
    until,
)


def responses_text(bot: Bot) -> str:
    return "\n".join(str(r.body.get("text", "")) for r in bot.fake.responses)


async def declared_channel(bot: Bot, number: int = 1) -> dict[str, Any]:
    inc = await bot.wait_provisioned(number)
    channel = bot.fake.channels[channel_of(inc)]
    return {"incident": inc, "channel": channel}


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_typed_declare_creates_channel_card_and_timeline(bot: Bot) -> None:
    reply = await bot.slack.command("declare sev2 Checkout latency", user=ALICE, channel=GENERAL)
    assert reply.status == 200
    assert "Declaring" in reply.text and "Checkout latency" in reply.text

    inc = await bot.wait_provisioned(1)
    assert (inc.number, inc.title, inc.severity, inc.status) == (
        1,
        "Checkout latency",
        "SEV2",
        "investigating",
    )
    channel = bot.fake.channels[channel_of(inc)]
    assert channel.name == "inc-1-checkout-latency"
    assert not channel.is_private
    assert ALICE in channel.members

    # The topic names severity, status and commander.
    assert "SEV2" in channel.topic["value"] and "Investigating" in channel.topic["value"]
    assert f"<@{ALICE}>" in channel.topic["value"]

    # One card, pinned, rendered from the stored incident.
    card = bot.fake.message(channel_of(inc), card_ts_of(inc))
    assert card is not None and card["ts"] in bot.fake.pins(channel_of(inc))
    shown = texts_of(card["blocks"])
    assert "INC-1 · Checkout latency" in shown
    assert "SEV2 · Major" in shown and "Investigating" in shown
    assert f"<@{ALICE}>" in shown  # commander defaults to the declarer
    assert "Next update due" in shown

    # The declarer hears where to go, privately.
    await until(lambda: f"<#{inc.channel_id}>" in responses_text(bot), message="reply")
    answers = [r.body for r in bot.fake.responses]
    assert all(a.get("response_type", "ephemeral") == "ephemeral" for a in answers)

    timeline = await bot.timeline(inc)
    assert [(e.kind, e.actor) for e in timeline] == [("declared", ALICE)]
    assert "SEV2" in timeline[0].text
    assert bot.fake.calls_to("conversations.create")[0].args["name"] == "inc-1-checkout-latency"


async def test_typed_declare_without_severity_uses_the_default(bot: Bot) -> None:
    await bot.slack.command("declare Search is slow", user=ALICE)
    inc = await bot.wait_provisioned(1)
    assert inc.severity == "SEV3"


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_modal_declare(bot: Bot) -> None:
    reply = await bot.slack.command("declare", user=ALICE, channel=GENERAL)
    assert reply.status == 200
    view = await bot.fake.wait_for(lambda: next(iter(bot.fake.views.values()), None))
    assert view["callback_id"] == "declare"
    # The declare form: title, severity (default preselected), description, commander
    # (the declarer), private yes/no.
    elements = {b["block_id"]: b["element"] for b in view["blocks"] if b["type"] == "input"}
    assert set(elements) == {"title", "severity", "description", "commander", "private"}
    assert elements["commander"]["initial_user"] == ALICE
    assert elements["severity"]["initial_option"]["value"] == "SEV3"
    assert [o["value"] for o in elements["severity"]["options"]] == [
        "SEV1",
        "SEV2",
        "SEV3",
        "SEV4",
    ]

    reply = await bot.slack.submit_view(
        view["id"],
        user=ALICE,
        inputs={
            "title": "Payments failing",
            "severity": "SEV1",
            "description": "Card payments return 502 for EU customers.",
            "commander": BOB,
        },
    )
    assert reply.status == 200
    assert not reply.text or reply.json in (None, {}) or "errors" not in (reply.json or {})

    inc = await bot.wait_provisioned(1)
    assert (inc.title, inc.severity, inc.private) == ("Payments failing", "SEV1", False)
    assert inc.description == "Card payments return 502 for EU customers."
    channel = bot.fake.channels[channel_of(inc)]
    assert channel.name == "inc-1-payments-failing"
    assert {ALICE, BOB} <= set(channel.members)
    card = texts_of(card_of(bot, inc)["blocks"])
    assert f"*Incident Commander*\n<@{BOB}>" in card
    assert "Card payments return 502" in card
    # The declarer is told in the channel they declared from, privately.
    note = await bot.fake.wait_for(
        lambda: [e for e in bot.fake.ephemerals if e["user"] == ALICE], message="ephemeral"
    )
    assert f"<#{inc.channel_id}>" in note[0]["text"]


async def test_modal_declare_private(bot: Bot) -> None:
    await bot.slack.command("declare", user=ALICE)
    view = await bot.fake.wait_for(lambda: next(iter(bot.fake.views.values()), None))
    await bot.slack.submit_view(
        view["id"], user=ALICE, inputs={"title": "Credential leak", "private": ["private"]}
    )
    inc = await bot.wait_provisioned(1)
    assert inc.private
    assert bot.fake.channels[channel_of(inc)].is_private


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_modal_rejects_blank_title_and_bot_commander(bot: Bot) -> None:
    await bot.slack.command("declare", user=ALICE)
    view = await bot.fake.wait_for(lambda: next(iter(bot.fake.views.values()), None))
    reply = await bot.slack.submit_view(
        view["id"], user=ALICE, inputs={"title": "   ", "commander": "U0HELPER"}
    )
    assert json_of(reply)["response_action"] == "errors"
    assert set(json_of(reply)["errors"]) == {"title", "commander"}
    assert "title" in json_of(reply)["errors"]["title"]
    assert "app, not a person" in json_of(reply)["errors"]["commander"]
    await bot.settled()
    assert await bot.incidents() == []
    assert bot.fake.calls_to("conversations.create") == []


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_double_submit_of_the_form_declares_once(bot: Bot) -> None:
    await bot.slack.command("declare", user=ALICE)
    view = await bot.fake.wait_for(lambda: next(iter(bot.fake.views.values()), None))
    replies = await asyncio.gather(
        *[
            bot.slack.submit_view(view["id"], user=ALICE, inputs={"title": "DNS outage"})
            for _ in range(3)
        ]
    )
    assert all(r.status == 200 for r in replies)
    await bot.wait_provisioned(1)
    await bot.settled()
    assert len(await bot.incidents()) == 1
    assert len(bot.fake.calls_to("conversations.create")) == 1
    assert len([e for e in bot.fake.ephemerals if e["user"] == ALICE]) == 1


async def test_announcement_posted_once_per_incident(start_bot: StartBot) -> None:
    bot = await start_bot(announcements_channel="C0ANNOUNCE")
    bot.fake.add_channel("incidents", id="C0ANNOUNCE", members=[ALICE])  # bot not a member yet
    await bot.slack.command("declare sev1 Login broken", user=ALICE)
    inc = await bot.wait_provisioned(1)
    posts = bot.fake.messages("C0ANNOUNCE", include_system=False)
    assert len(posts) == 1
    shown = texts_of(posts[0]["blocks"])
    assert "INC-1" in shown and "Login broken" in shown and "SEV1" in shown
    assert f"<#{inc.channel_id}>" in shown
    assert inc.announcement_ts == posts[0]["ts"]

    # A private incident stays out of announcements.
    await bot.slack.command("declare", user=ALICE)
    view = await bot.fake.wait_for(lambda: next(iter(bot.fake.views.values()), None))
    await bot.slack.submit_view(
        view["id"], user=ALICE, inputs={"title": "Secret thing", "private": ["private"]}
    )
    await bot.wait_provisioned(2)
    assert len(bot.fake.messages("C0ANNOUNCE", include_system=False)) == 1


# --- channel names -------------------------------------------------------------------


async def test_emoji_only_title_gets_a_plain_channel_name(bot: Bot) -> None:
    await bot.slack.command("declare 🔥🔥🔥", user=ALICE)
    inc = await bot.wait_provisioned(1)
    assert inc.channel_name == "inc-1"
    assert inc.title == "🔥🔥🔥"


async def test_non_latin_title(bot: Bot) -> None:
    await bot.slack.command("declare 支払いが失敗 Café down", user=ALICE)
    inc = await bot.wait_provisioned(1)
    assert inc.channel_name == "inc-1-cafe-down"


async def test_long_title_is_kept_and_channel_name_cut_to_80(bot: Bot) -> None:
    title = ("Database primary failover loop " * 10)[:200].strip()
    await bot.slack.command(f"declare sev1 {title}", user=ALICE)
    inc = await bot.wait_provisioned(1)
    assert inc.title == title
    assert inc.channel_name is not None
    assert len(inc.channel_name) <= 80
    assert re.fullmatch(r"inc-1-[a-z0-9_-]+", inc.channel_name)
    assert not inc.channel_name.endswith("-")
    card = card_of(bot, inc)
    assert len(card["blocks"][0]["text"]["text"]) <= 150  # Slack's header limit


async def test_taken_channel_name_gets_a_suffix(bot: Bot) -> None:
    bot.fake.add_channel("inc-1-checkout-latency")
    bot.fake.add_channel("inc-1-checkout-latency-2")
    await bot.slack.command("declare Checkout latency", user=ALICE)
    inc = await bot.wait_provisioned(1)
    assert inc.channel_name == "inc-1-checkout-latency-3"
    names = [c.args["name"] for c in bot.fake.calls_to("conversations.create")]
    assert names == [
        "inc-1-checkout-latency",
        "inc-1-checkout-latency-2",
        "inc-1-checkout-latency-3",
    ]


async def test_custom_prefix(start_bot: StartBot) -> None:
    bot = await start_bot(incident_channel_prefix="INCIDENT")
    await bot.slack.command("declare API errors", user=ALICE)
    inc = await bot.wait_provisioned(1)
    assert inc.channel_name == "incident-1-api-errors"


# --- numbering -------------------------------------------------------------------------


async def test_concurrent_declarations_get_sequential_numbers(bot: Bot) -> None:
    replies = await asyncio.gather(
        *[bot.slack.command(f"declare Outage number {i}", user=ALICE) for i in range(12)]
    )
    assert all(r.status == 200 for r in replies)
    await until(
        lambda: _incidents_provisioned(bot, 12), timeout=20, message="12 incidents provisioned"
    )
    incidents = await bot.incidents()
    assert sorted(i.number for i in incidents) == list(range(1, 13))
    assert len({i.channel_id for i in incidents}) == 12


async def test_two_bots_on_one_database_number_without_gaps(start_bot: StartBot) -> None:
    a = await start_bot()
    b = await start_bot()
    await asyncio.gather(
        *[(a if i % 2 else b).slack.command(f"declare Race {i}", user=ALICE) for i in range(10)]
    )
    await until(lambda: _incidents_provisioned(a, 10), timeout=20, message="10 incidents")
    assert sorted(i.number for i in await a.incidents()) == list(range(1, 11))


async def _incidents_provisioned(bot: Bot, n: int) -> bool:
    incidents = await bot.incidents()
    return len(incidents) == n and all(i.provisioned for i in incidents)


# The declarations' own step of the database refuses titles with this word, after the
# incident row: as a disk that fills up mid-transaction would.
REFUSE_ON_SQLITE = """
CREATE TRIGGER refuse_doomed BEFORE INSERT ON timeline_entry
WHEN NEW.text LIKE '%Doomed%' BEGIN SELECT RAISE(ABORT, 'disk trouble'); END
"""
REFUSE_ON_POSTGRES = [
    """
    CREATE FUNCTION refuse_doomed() RETURNS trigger AS $$
    BEGIN
        IF NEW.text LIKE '%Doomed%' THEN RAISE EXCEPTION 'disk trouble'; END IF;
        RETURN NEW;
    END $$ LANGUAGE plpgsql
    """,
    """
    CREATE TRIGGER refuse_doomed BEFORE INSERT ON timeline_entry
    FOR EACH ROW EXECUTE FUNCTION refuse_doomed()
    """,
]


async def test_a_declaration_that_could_not_be_stored_leaves_no_channel(bot: Bot) -> None:
    """The channel is created while the declaration is being stored. When storing fails
    after all, the declarer hears so, nothing is stored, and the channel begun for it is
    archived: no incident channel exists without its incident."""
    engine = bot.app.store.engine
    async with engine.begin() as conn:
        for sql in (
            REFUSE_ON_POSTGRES if engine.dialect.name == "postgresql" else [REFUSE_ON_SQLITE]
        ):
            await conn.exec_driver_sql(sql)

    await bot.slack.command("declare sev2 Doomed launch", user=ALICE, channel=GENERAL)
    await until(lambda: "went wrong" in responses_text(bot), message="the declarer's answer")
    await bot.settled()
    assert "try again" in responses_text(bot)
    assert await bot.incidents() == []
    [created] = bot.fake.calls_to("conversations.create")
    channel = bot.fake.channels[created.response["channel"]["id"]]
    assert channel.is_archived
    assert not channel.pinned

    # Trying again works, with the number the failed attempt did not keep.
    await bot.slack.command("declare sev2 Launch checks", user=ALICE, channel=GENERAL)
    inc = await bot.wait_provisioned(1)
    assert inc.number == 1
    assert not bot.fake.channels[channel_of(inc)].is_archived
