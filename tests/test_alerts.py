"""Alert intake: Alertmanager, Grafana and generic webhooks posted to a running bot open one
incident per alert group, put each change on its timeline once, and tell the incident when
the group resolves. Bodies are in the documented shapes (tests/fixtures/alerts)."""

from __future__ import annotations

import asyncio
import copy
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.model.tables import Incident
from tests.support import (
    ALICE,
    BOB,
    CAROL,
    TRANSPORTS,
    Bot,
    StartBot,
    card_of,
    channel_of,
    entries,
    id_of,
    until,
    uploaded,
)

TOKEN = "alert-token-0123456789abcdef"
FIXTURES = Path(__file__).parent / "fixtures" / "alerts"


def fixture(name: str) -> dict[str, Any]:
    body: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return body


async def post(
    bot: Bot,
    source: str,
    body: Any,
    *,
    token: str = TOKEN,
    raw: bytes | None = None,
    content_type: str = "application/json",
) -> tuple[int, dict[str, Any]]:
    data = raw if raw is not None else json.dumps(body).encode()
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"http://127.0.0.1:{bot.app.port}/alerts/{source}",
            data=data,
            headers={"Authorization": f"Bearer {token}", "Content-Type": content_type},
        ) as response,
    ):
        try:
            answer = await response.json(content_type=None)
        except ValueError:
            answer = {}
        return response.status, answer


async def start(start_bot: StartBot, **settings: Any) -> Bot:
    return await start_bot(alert_webhook_token=TOKEN, **settings)


async def only_incident(bot: Bot) -> Incident:
    [inc] = await bot.incidents()
    return inc


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_an_alertmanager_alert_opens_one_incident_and_repeats_add_nothing(
    start_bot: StartBot,
) -> None:
    bot = await start(start_bot)
    body = fixture("alertmanager_firing")
    status, answer = await post(bot, "alertmanager", body)
    assert (status, answer) == (200, {"action": "declared", "incident": "INC-1"})
    inc = await bot.wait_provisioned(1)
    assert inc.severity == "SEV1"  # severity="critical"
    assert inc.title == "Checkout 5xx above 5% for 5 minutes"
    assert "alertmanager" in inc.description
    fired = await entries(bot, inc, "alert")
    assert [e.text for e in fired] == [
        "Alert firing: CheckoutHighErrorRate — Checkout 5xx above 5% for 5 minutes"
    ]
    assert fired[0].happened_at.isoformat().startswith("2026-11-23T22:01:02")
    # Nobody commands an incident an alert opened until someone takes it.
    assert await bot.store.roles(id_of(inc)) == {}
    # The card links the alert, its runbook (links the bot made; the alert's text is text).
    await bot.settled()
    shown = json.dumps(card_of(bot, inc)["blocks"])
    assert "<http://prometheus.example.com:9090/graph?g0.expr=" in shown
    assert "|Checkout 5xx above 5% for 5 minutes>" in shown
    assert "<https://runbooks.example.com/checkout/errors|Runbook>" in shown

    # Alertmanager repeats the notification (repeat_interval) and retries: nothing new.
    for _ in range(3):
        assert (await post(bot, "alertmanager", body))[1]["action"] == "attached"
    await bot.settled()
    assert len(await bot.incidents()) == 1
    assert len(await entries(bot, inc, "alert")) == 1

    # A second alert of the group: one timeline entry.
    more = copy.deepcopy(body)
    second = copy.deepcopy(more["alerts"][0])
    second.update(fingerprint="d00dfeed01234567", startsAt="2026-11-23T22:03:00Z")
    second["labels"]["instance"] = "checkout-5c2aa:8080"
    more["alerts"].append(second)
    await post(bot, "alertmanager", more)
    await post(bot, "alertmanager", more)
    assert len(await entries(bot, inc, "alert")) == 2
    assert len(await bot.incidents()) == 1


async def test_a_resolved_group_tells_the_incident_once_and_leaves_resolving_to_people(
    start_bot: StartBot,
) -> None:
    bot = await start(start_bot)
    body = fixture("alertmanager_firing")
    await post(bot, "alertmanager", body)
    inc = await bot.wait_provisioned(1)
    # Someone takes command; the resolved group is then theirs to close.
    await bot.slack.command("commander me", user=BOB, channel=channel_of(inc))
    await until(lambda: _commander_is(bot, inc, BOB))
    resolved = copy.deepcopy(body)
    resolved["status"] = "resolved"
    for alert in resolved["alerts"]:
        alert.update(status="resolved", endsAt="2026-11-23T22:31:02Z")
    assert (await post(bot, "alertmanager", resolved))[1] == {
        "action": "resolved",
        "incident": "INC-1",
    }
    assert (await post(bot, "alertmanager", resolved))[1]["action"] == "attached"
    await bot.settled()
    told = [
        m
        for m in bot.fake.messages(channel_of(inc), include_system=False)
        if "has resolved" in m.get("text", "")
    ]
    assert len(told) == 1
    assert f"<@{BOB}>" in told[0]["text"]
    button = json.dumps(told[0]["blocks"])
    assert "Resolve incident" in button and "card_resolve" in button
    assert (await only_incident(bot)).is_open  # never resolved on its own
    # The draft tells how it was detected and how long declaring took.
    await bot.slack.command("postmortem", user=ALICE, channel=channel_of(inc))
    await until(lambda: uploaded(bot), message="the draft")
    draft = uploaded(bot)[-1]
    detection = draft.split("## Detection", 1)[1].split("## ", 1)[0]
    assert "(alertmanager)" in detection
    assert "- Runbook: <https://runbooks.example.com/checkout/errors>" in detection
    assert "- Fired: 2026-11-23 22:01:02 UTC" in detection
    assert "- Time to declare: " in detection and "None" not in detection
    texts = [e.text for e in await entries(bot, inc, "alert")]
    assert texts[-2:] == [
        "Alert resolved: CheckoutHighErrorRate — Checkout 5xx above 5% for 5 minutes",
        "All alerts of Checkout 5xx above 5% for 5 minutes resolved",
    ]


async def test_grafana_and_generic_alerts_with_their_severities(start_bot: StartBot) -> None:
    bot = await start(start_bot)
    status, answer = await post(bot, "grafana", fixture("grafana_firing"))
    assert (status, answer["action"]) == (200, "declared")
    inc = await bot.wait_provisioned(1)
    assert (inc.severity, inc.title) == ("SEV3", "Payment queue depth above 10k")

    generic = {
        "title": "Login failures <!channel> spike",
        "severity": "error",
        "status": "firing",
        "dedup_key": "login-failures",
        "url": "https://status.example.com/checks/login",
        "description": "Synthetic login check failing from 3 regions",
        "labels": {"service": "auth"},
    }
    assert (await post(bot, "generic", generic))[1] == {"action": "declared", "incident": "INC-2"}
    assert (await post(bot, "generic", generic))[1]["action"] == "attached"
    second = await bot.wait_provisioned(2)
    assert second.severity == "SEV2"
    await bot.settled()
    # Alert text stays text: no @channel in anything Slack would parse for mentions.
    for channel in (channel_of(second), "C0GENERAL"):
        for message in bot.fake.messages(channel, include_system=False):
            assert all("<!channel>" not in text for text in _parsed_texts(message)), message


async def test_alert_rules_choose_the_severity(start_bot: StartBot) -> None:
    rules = [{"match": {"service": "checkout"}, "severity": "sev2"}]
    bot = await start(start_bot, alert_rules=json.dumps(rules))
    await post(bot, "alertmanager", fixture("alertmanager_firing"))
    assert (await bot.wait_provisioned(1)).severity == "SEV2"


async def test_bad_requests_are_refused_and_change_nothing(start_bot: StartBot) -> None:
    bot = await start(start_bot)
    body = fixture("alertmanager_firing")
    assert (await post(bot, "alertmanager", body, token="wrong-token-0000000000"))[0] == 401
    assert (await post(bot, "alertmanager", body, token=""))[0] == 401
    status, answer = await post(bot, "alertmanager", None, raw=b"{not json")
    assert status == 400 and "JSON" in answer["error"]
    status, answer = await post(bot, "alertmanager", {"version": "4", "alerts": []})
    assert status == 400 and "alerts" in answer["error"]
    broken = copy.deepcopy(body)
    broken["alerts"][0]["status"] = "exploded"
    assert (await post(bot, "alertmanager", broken))[0] == 400
    assert (await post(bot, "alertmanager", body, content_type="text/plain"))[0] == 415
    huge = copy.deepcopy(body)
    huge["commonAnnotations"]["description"] = "x" * (1024 * 1024)
    assert (await post(bot, "alertmanager", huge))[0] == 413
    assert (await post(bot, "nagios", body))[0] == 404
    await bot.settled()
    assert await bot.incidents() == []


async def test_without_a_token_the_alert_endpoints_are_off(start_bot: StartBot) -> None:
    bot = await start_bot()
    status, _ = await post(bot, "alertmanager", fixture("alertmanager_firing"))
    assert status in (404, 405)
    assert await bot.incidents() == []


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_two_processes_receiving_the_same_alert_open_one_incident(
    start_bot: StartBot,
) -> None:
    a = await start(start_bot)
    b = await start(start_bot)
    body = fixture("alertmanager_firing")
    answers = await asyncio.gather(*(post(bot, "alertmanager", body) for bot in (a, b, a, b, a, b)))
    assert all(status == 200 for status, _ in answers)
    assert sorted(answer["action"] for _, answer in answers).count("declared") == 1
    await until(lambda: _provisioned(a), message="the incident provisioned")
    await a.settled()
    await b.settled()
    [inc] = await a.incidents()
    assert len(await entries(a, inc, "alert")) == 1
    assert len([c for c in a.fake.channels.values() if c.name.startswith("inc-")]) == 1


async def _provisioned(bot: Bot) -> bool:
    incidents = await bot.incidents()
    return bool(incidents) and all(i.provisioned for i in incidents)


def _parsed_texts(node: Any) -> list[str]:
    """A message's text and every mrkdwn text object in it (plain_text is never parsed)."""
    found: list[str] = []
    if isinstance(node, dict):
        if isinstance(node.get("text"), str) and node.get("type") in (None, "mrkdwn", "message"):
            found.append(node["text"])
        for value in node.values():
            if isinstance(value, dict | list):
                found += _parsed_texts(value)
    elif isinstance(node, list):
        for value in node:
            found += _parsed_texts(value)
    return found


ALERTS = "C0ALERTS"


async def start_triage(start_bot: StartBot, fake: Any) -> Bot:
    fake.add_channel("alerts", id=ALERTS, members=[ALICE, BOB, fake.bot_user_id])
    return await start(start_bot, alerts_channel=ALERTS)


def triage_posts(bot: Bot) -> list[dict[str, Any]]:
    return [m for m in bot.fake.messages(ALERTS, include_system=False) if m.get("blocks")]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_triage_declares_only_on_click_and_once(start_bot: StartBot, fake: Any) -> None:
    bot = await start_triage(start_bot, fake)
    body = fixture("alertmanager_firing")
    assert (await post(bot, "alertmanager", body))[1] == {"action": "triaged", "incident": None}
    assert (await post(bot, "alertmanager", body))[1]["action"] == "triaged"
    await bot.settled()
    assert await bot.incidents() == []
    [posted] = triage_posts(bot)
    assert "Checkout 5xx above 5% for 5 minutes" in posted["text"]

    # Two people click Declare at once: one incident, commanded by whoever came first.
    clicks = await asyncio.gather(
        *(
            bot.slack.block_action(
                user=who, channel=ALERTS, message_ts=posted["ts"], action_id="alert_declare"
            )
            for who in (ALICE, BOB)
        )
    )
    assert all(c.status == 200 for c in clicks)
    inc = await bot.wait_provisioned(1)
    await bot.settled()
    assert len(await bot.incidents()) == 1
    assert inc.severity == "SEV1" and inc.alert is not None
    [commander] = (await bot.store.roles(id_of(inc))).values()
    assert commander in (ALICE, BOB)
    [updated] = triage_posts(bot)
    assert f"Declared as INC-1 by <@{commander}>" in json.dumps(updated["blocks"])
    assert "alert_declare" not in json.dumps(updated["blocks"])
    # The alert's next notification attaches to that incident.
    assert (await post(bot, "alertmanager", body))[1] == {"action": "attached", "incident": "INC-1"}


async def test_a_dismissed_alert_stays_dismissed(start_bot: StartBot, fake: Any) -> None:
    bot = await start_triage(start_bot, fake)
    body = fixture("grafana_firing")
    await post(bot, "grafana", body)
    await bot.settled()
    [posted] = triage_posts(bot)
    await bot.slack.block_action(
        user=BOB, channel=ALERTS, message_ts=posted["ts"], action_id="alert_dismiss"
    )
    await until(lambda: "Dismissed by" in json.dumps(triage_posts(bot)[0]["blocks"]))
    assert (await post(bot, "grafana", body))[1]["action"] == "dismissed"
    await bot.settled()
    assert await bot.incidents() == []
    assert len(triage_posts(bot)) == 1


SEVERITIES_WITH_INVITES = json.dumps(
    [
        {"name": "SEV1", "label": "Critical", "invite": ["U0CAROL", "@oncall-payments", "@ghosts"]},
        {"name": "SEV2", "label": "Major"},
        {"name": "SEV3", "label": "Minor"},
    ]
)


async def test_severity_brings_in_people_and_groups_once(start_bot: StartBot, fake: Any) -> None:
    fake.add_user("U0DAVE", "dave", real_name="Dave Diaz")
    fake.add_user("U0ERIN", "erin", real_name="Erin Eze")
    fake.add_usergroup("oncall-payments", users=["U0DAVE", "U0ERIN"])
    bot = await start(start_bot, severities=SEVERITIES_WITH_INVITES)

    # Declared at SEV1 by an alert: the configured people and the group's members join.
    await post(bot, "alertmanager", fixture("alertmanager_firing"))
    inc = await bot.wait_provisioned(1)
    await bot.settled()
    assert {CAROL, "U0DAVE", "U0ERIN"} <= set(bot.fake.channels[channel_of(inc)].members)
    [brought] = await entries(bot, inc, "invite")
    assert brought.text.startswith("Brought in for SEV1: <@U0CAROL>, <@U0DAVE>, <@U0ERIN>")
    assert "(from @oncall-payments)" in brought.text
    assert "could not bring in @ghosts" in brought.text

    # Raised to SEV1 by a person: brought in then, once.
    await bot.slack.command("declare sev3 Payments slow", user=ALICE, channel="C0GENERAL")
    second = await bot.wait_provisioned(2)
    assert await entries(bot, second, "invite") == []
    await bot.slack.command("severity sev1", user=ALICE, channel=channel_of(second))
    await until(lambda: _has_invite(bot, second))
    await bot.slack.command("severity sev2", user=ALICE, channel=channel_of(second))
    await bot.slack.command("severity sev1", user=ALICE, channel=channel_of(second))
    await bot.settled()
    assert len(await entries(bot, second, "invite")) == 1
    assert "U0DAVE" in bot.fake.channels[channel_of(second)].members


async def _has_invite(bot: Bot, inc: Incident) -> bool:
    return bool(await entries(bot, inc, "invite"))


async def test_a_rule_can_resolve_the_incident_when_its_alerts_resolve(
    start_bot: StartBot,
) -> None:
    rules = [{"match": {"source": "generic"}, "resolve": True}]
    bot = await start(start_bot, alert_rules=json.dumps(rules))
    alert = {"title": "Disk almost full", "severity": "warning", "dedup_key": "disk-db1"}
    await post(bot, "generic", alert)
    await bot.wait_provisioned(1)
    await post(bot, "generic", {**alert, "status": "resolved"})
    await bot.settled()
    inc = await only_incident(bot)
    assert not inc.is_open
    [resolved] = await entries(bot, inc, "resolved")
    assert resolved.text == "Every alert of Disk almost full resolved."


async def _commander_is(bot: Bot, inc: Incident, user: str) -> bool:
    return (await bot.store.roles(id_of(inc))).get("commander") == user
