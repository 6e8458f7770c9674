"""Timeline capture and the postmortem draft, end to end."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bot.views.postmortem import PROMPT_MARKER
from tests.support import (
    ALICE,
    BOB,
    CAROL,
    GENERAL,
    ROOT,
    TRANSPORTS,
    Bot,
    card_of,
    card_ts_of,
    channel_of,
    data_of,
    declared,
    element,
    entries,
    until,
    uploaded,
)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_pushpin_reaction_adds_a_message_once_at_its_own_time(bot: Bot) -> None:
    inc = await declared(bot)
    msg = bot.fake.post_as_user(channel_of(inc), ALICE, "Error rate at 40% on <#C0GENERAL|general>")
    await bot.slack.reaction_added(user=BOB, channel=channel_of(inc), ts=msg["ts"], event_id="Ev1")
    await bot.settled()
    # Slack's retry of the same event, and a second person pinning it, add nothing.
    await bot.slack.reaction_added(
        user=BOB, channel=channel_of(inc), ts=msg["ts"], event_id="Ev1", retry_num=1
    )
    await bot.slack.reaction_added(user=CAROL, channel=channel_of(inc), ts=msg["ts"])
    # Other emoji, and pins outside incident channels, are ignored.
    await bot.slack.reaction_added(user=BOB, channel=channel_of(inc), ts=msg["ts"], reaction="eyes")
    other = bot.fake.post_as_user(GENERAL, ALICE, "unrelated")
    await bot.slack.reaction_added(user=BOB, channel=GENERAL, ts=other["ts"])
    await bot.settled()

    [entry] = await entries(bot, inc, "message")
    assert entry.happened_at == datetime.fromtimestamp(float(msg["ts"]), UTC)
    assert (entry.actor, data_of(entry)["ts"], data_of(entry)["user"]) == (BOB, msg["ts"], ALICE)
    assert entry.text == msg["text"]
    # What the message showed is kept with the entry.
    assert data_of(entry)["message"]["text"] == msg["text"]


async def test_thread_reply_can_be_pinned(bot: Bot) -> None:
    inc = await declared(bot)
    parent = bot.fake.post_as_user(channel_of(inc), ALICE, "Looking at the DB")
    reply = bot.fake.post_as_user(channel_of(inc), BOB, "Replica lag 30 s", thread_ts=parent["ts"])
    await bot.slack.reaction_added(user=CAROL, channel=channel_of(inc), ts=reply["ts"])
    await bot.settled()
    [entry] = await entries(bot, inc, "message")
    assert entry.text == "Replica lag 30 s" and data_of(entry)["user"] == BOB


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_message_shortcut(bot: Bot) -> None:
    inc = await declared(bot)
    msg = bot.fake.post_as_user(channel_of(inc), CAROL, "Rollback finished")
    for _ in range(2):
        reply = await bot.slack.message_shortcut(
            callback_id="add_to_timeline", user=ALICE, channel=channel_of(inc), message_ts=msg["ts"]
        )
        assert reply.status == 200
        await bot.settled()
    assert len(await entries(bot, inc, "message")) == 1
    said = bot.private_to(ALICE)
    assert any("Added to INC-1's timeline" in t for t in said)
    assert any("already on INC-1's timeline" in t for t in said)

    outside = bot.fake.post_as_user(GENERAL, CAROL, "hello")
    await bot.slack.message_shortcut(
        callback_id="add_to_timeline", user=ALICE, channel=GENERAL, message_ts=outside["ts"]
    )
    await bot.settled()
    assert any("works on messages in an incident's channel" in t for t in bot.private_to(ALICE))


async def test_notes_and_follow_ups(bot: Bot) -> None:
    inc = await declared(bot)
    [told] = await bot.ask("note Failover started on db-2", user=BOB, channel=channel_of(inc))
    assert "Noted" in told["text"]
    [told] = await bot.ask(
        "action Add an alert on queue depth <@U0CAROL|carol>", user=BOB, channel=channel_of(inc)
    )
    assert "Follow-up recorded" in told["text"]
    await bot.ask("action Write the runbook", user=BOB, channel=channel_of(inc))
    [told] = await bot.ask("action", user=BOB, channel=channel_of(inc))
    assert "Describe the follow-up" in told["text"]
    [told] = await bot.ask("note", user=BOB, channel=GENERAL)
    assert "Run this in the incident's channel" in told["text"]

    [note] = await entries(bot, inc, "note")
    assert (note.text, note.actor) == ("Failover started on db-2", BOB)
    follow_ups = await entries(bot, inc, "follow_up")
    assert [(f.text, data_of(f)["owner"]) for f in follow_ups] == [
        ("Add an alert on queue depth", CAROL),
        ("Write the runbook", None),
    ]


async def test_follow_up_from_the_card(bot: Bot) -> None:
    inc = await declared(bot)
    await bot.slack.block_action(
        user=BOB, channel=channel_of(inc), message_ts=card_ts_of(inc), action_id="card_follow_up"
    )
    view = await until(
        lambda: [v for v in bot.fake.views.values() if v["callback_id"] == "follow_up"]
    )
    inputs = {"text": "Alert on queue depth", "owner": CAROL}
    await asyncio.gather(  # a double submit records one follow-up
        *[bot.slack.submit_view(view[0]["id"], user=BOB, inputs=inputs) for _ in range(2)]
    )
    await bot.settled()
    [entry] = await entries(bot, inc, "follow_up")
    assert (entry.text, entry.actor, data_of(entry)["owner"]) == (
        "Alert on queue depth",
        BOB,
        CAROL,
    )


async def test_postmortem_outside_a_channel_and_for_a_quiet_incident(bot: Bot) -> None:
    [told] = await bot.ask("postmortem", user=ALICE, channel=GENERAL)
    assert "no open incident" in told["text"]
    inc = await declared(bot)
    await bot.ask("postmortem", user=ALICE, channel=channel_of(inc))
    [draft] = uploaded(bot)
    assert draft.startswith("# INC-1: Checkout latency")
    assert draft.count(PROMPT_MARKER) >= 5


async def test_incident_to_postmortem(bot: Bot, database_url: str) -> None:
    """Declare, talk (threads too), pin, update, resolve, compile: a draft to start from."""
    inc = await declared(bot, "declare sev2 Checkout latency")
    ch = channel_of(inc)
    fake = bot.fake
    fake.post_as_user(ch, "UBOT", "ignored", subtype="channel_join")
    first = fake.post_as_user(
        ch, BOB, "p99 is 8 s since the 02:10 deploy. <@U0ALICE> rolling back?"
    )
    thread = fake.post_as_user(ch, ALICE, "Rolling back *now*", thread_ts=first["ts"])
    fake.post_as_user(ch, CAROL, "Customers report failed payments", thread_ts=first["ts"])
    fake.post_as_user(ch, CAROL, "Status page updated: <https://status.example.com|status>")
    await bot.slack.reaction_added(user=ALICE, channel=ch, ts=first["ts"])
    await bot.slack.message_shortcut(
        callback_id="add_to_timeline", user=ALICE, channel=ch, message_ts=thread["ts"]
    )
    await bot.ask("comms <@U0CAROL|carol>", user=ALICE, channel=ch)
    await bot.ask("update Rolled back; watching error rates", user=CAROL, channel=ch)
    await bot.slack.block_action(
        user=CAROL, channel=ch, message_ts=card_ts_of(inc), action_id="card_update"
    )
    view = await until(lambda: [v for v in fake.views.values() if v["callback_id"] == "update"])
    await fake_submit(
        bot, view[0]["id"], CAROL, {"status": "monitoring", "summary": "Latency normal."}
    )
    await bot.ask("action Add a canary stage <@U0BOB|bob>", user=ALICE, channel=ch)
    await bot.ask("resolve Rolled back the 02:10 deploy", user=ALICE, channel=ch)

    # The resolved message offers Postmortem; clicking it compiles and uploads the file.
    resolved = next(m for m in fake.messages(ch, include_system=False) if "resolved" in m["text"])
    await bot.slack.block_action(
        user=ALICE, channel=ch, message_ts=resolved["ts"], action_id="card_postmortem"
    )
    await bot.settled()
    [draft] = uploaded(bot)
    assert fake.calls_to("files.getUploadURLExternal")
    shared = fake.messages(ch, include_system=False)[-1]
    assert shared.get("files") and "compiled the postmortem draft" in shared["text"]

    sections = [line for line in draft.splitlines() if line.startswith("## ")]
    for name in ("Summary", "Impact", "Severity history", "Roles", "Key times", "Timeline"):
        assert f"## {name}" in sections
    for name in ("Status updates", "Follow-ups", "Participants", "Root cause", "Lessons"):
        assert f"## {name}" in sections
    # Every human message once, names not ids, markup as Markdown, noise left out.
    assert draft.count("p99 is 8 s since the 02:10 deploy") == 1
    assert draft.count("Customers report failed payments") == 1
    assert "Rolling back **now**" in draft
    assert "[status](https://status.example.com)" in draft
    assert "@alice" in draft or "@Alice" in draft or "Alice Archer" in draft
    assert "U0ALICE" not in draft and "U0BOB" not in draft
    assert "has joined the channel" not in draft
    # Threads sit under their parent; pinned messages are marked.
    assert draft.index("p99 is 8 s") < draft.index("Rolling back") < draft.index("Status page")
    assert draft.count("📌") >= 2
    # Key times come from stored facts.
    stored = (await bot.incidents())[0]
    monitoring = [
        e for e in await entries(bot, inc, "update") if data_of(e)["status"] == "monitoring"
    ]
    key_times = draft[draft.index("## Key times") : draft.index("## Timeline")]
    assert monitoring[0].happened_at.strftime("%Y-%m-%d %H:%M:%S UTC") in key_times
    assert stored.resolved_at is not None
    assert stored.resolved_at.strftime("%Y-%m-%d %H:%M:%S UTC") in key_times
    assert "Add a canary stage" in draft
    assert draft.count(PROMPT_MARKER) >= 5

    # Nothing changed: compiling again keeps one copy; the stored draft is the same bytes.
    await bot.ask("postmortem", user=ALICE, channel=ch)
    assert len(uploaded(bot)) == 1
    fake.post_as_user(ch, BOB, "One more thing: the cache was cold")
    await bot.ask("postmortem", user=ALICE, channel=ch)
    assert len(uploaded(bot)) == 2
    assert "version 2" in fake.messages(ch, include_system=False)[-1]["text"]

    # `incident-bot postmortem INC-1` prints the latest version.
    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "bot", "postmortem", "INC-1"],
        env={"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT), "DATABASE_URL": database_url},
        cwd=ROOT.parent,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == uploaded(bot)[-1]


async def fake_submit(bot: Bot, view_id: str, user: str, inputs: dict[str, Any]) -> None:
    await bot.slack.submit_view(view_id, user=user, inputs=inputs)
    await bot.settled()


def test_cli_answers_for_unknown_incidents(tmp_path: Path) -> None:
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT)}
    for ref, code, says in (("INC-9", 1, "no INC-9"), ("banana", 2, "not an incident")):
        result = subprocess.run(
            [sys.executable, "-m", "bot", "postmortem", ref],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == code and says in result.stderr


def test_card_offers_postmortem(bot_card: Any = None) -> None:
    from bot.base.settings import load_settings
    from bot.model.tables import Incident
    from bot.views.blocks import IncidentState, incident_card

    settings = load_settings(http=False, _env_file=None, slack_bot_token="xoxb-1")
    inc = Incident(
        id=1,
        team_id="T",
        number=1,
        title="x",
        severity="SEV1",
        declared_by=ALICE,
        declared_at=datetime.now(UTC),
        declare_key="k",
    )
    card = {"blocks": [b.to_dict() for b in incident_card(IncidentState(inc, {}), settings)]}
    assert element(card, "card_postmortem")["text"]["text"] == "Postmortem"
    _ = card_of  # the e2e tests above click it on real cards
