"""Figures: time to respond, mitigate and resolve and update cadence, the same in
`/incident stats`, /metrics, the postmortem and `incident-bot report`; drills left out."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.model import figures, rules
from bot.model.tables import FollowUp, Incident, Status, StatusUpdate, TimelineEntry
from bot.outbound.store import Store
from tests.support import (
    ALICE,
    ANNOUNCE,
    BOB,
    CAROL,
    GENERAL,
    Bot,
    StartBot,
    card_of,
    card_ts_of,
    channel_of,
    entries,
    texts_of,
    until,
    view_of,
)
from tests.test_metrics import scrape, value

T0 = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)


class Clock:
    """The bot's clock, moved by the test; a day ahead, so no reminder falls due."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def at(self, minutes: float) -> datetime:
        self.now = T0 + timedelta(minutes=minutes)
        return self.now


def said(answer: dict[str, Any]) -> str:
    """What a person reads in an answer: its text and its blocks."""
    return f"{answer.get('text', '')}\n{texts_of(answer.get('blocks') or [])}"


async def update_through_form(
    bot: Bot, inc: Incident, user: str, status: str, summary: str
) -> None:
    before = len(await entries(bot, inc, "update"))
    await bot.slack.block_action(
        user=user, channel=channel_of(inc), message_ts=card_ts_of(inc), action_id="card_update"
    )
    view = await until(lambda: view_of(bot, "update"), message="the update form")
    await bot.slack.submit_view(
        view["id"], user=user, inputs={"status": status, "summary": summary}
    )

    async def posted() -> bool:
        return len(await entries(bot, inc, "update")) > before

    await until(posted, message="the update")
    await bot.settled()
    bot.fake.views.pop(view["id"], None)


async def person_says(bot: Bot, channel: str, user: str, text: str, at: datetime) -> None:
    """A message written at `at` (Slack's ts), delivered as Slack's message event."""
    message = bot.fake.post_as_user(channel, user, text, ts=f"{at.timestamp():.6f}")
    reply = await bot.slack.event(
        {**message, "channel": channel, "channel_type": "channel", "event_ts": message["ts"]}
    )
    assert reply.status == 200
    await bot.settled()


async def scripted(bot: Bot, clock: Clock) -> Incident:
    """Declared by Alice at T0 (SEV2, one update due every 30 min); Bob answers after 2 min;
    monitoring after 10 min (on time); the next update after 50 min (due at 40: late);
    resolved after 70 min."""
    await bot.slack.command("declare sev2 Checkout errors", user=ALICE, channel=GENERAL)
    inc = await bot.wait_provisioned(1)
    await bot.settled()
    await person_says(bot, channel_of(inc), ALICE, "Looking", clock.at(1))
    await person_says(bot, channel_of(inc), BOB, "I see 500s on checkout-api", clock.at(2))
    await person_says(bot, channel_of(inc), CAROL, "Me too", clock.at(3))
    clock.at(10)
    await update_through_form(bot, inc, ALICE, "monitoring", "Rolled back; watching.")
    clock.at(50)
    await update_through_form(bot, inc, ALICE, "monitoring", "Error rate normal.")
    clock.at(70)
    await bot.ask("resolve Fixed by the rollback", user=ALICE, channel=channel_of(inc))
    assert await entries(bot, inc, "resolved")
    [stored] = [i for i in await bot.incidents() if i.number == 1]
    return stored


async def test_one_scripted_incident_gives_the_same_figures_everywhere(
    start_bot: StartBot,
) -> None:
    clock = Clock()
    bot = await start_bot(clock=clock, reminder_interval_minutes=30)
    inc = await scripted(bot, clock)
    assert inc.responded_by == BOB
    assert inc.responded_at == T0 + timedelta(minutes=2)
    assert inc.mitigated_at == T0 + timedelta(minutes=10)

    # /incident stats, privately.
    reply = await bot.slack.command("stats", user=CAROL, channel=GENERAL)
    assert reply.status == 200
    await bot.settled()
    [stats] = [said(r) for r in bot.fake.private_answers(CAROL) if "Incident figures" in said(r)]
    text = " ".join(stats.split())
    assert "1 declared, 1 resolved" in text
    assert "respond 2 min median, 2 min p90" in text
    assert "mitigate 10 min median" in text
    assert "resolve 1 h 10 min median" in text
    assert "Updates on time: 50% (1 of 2)" in text
    assert "longest gap 40 min" in text

    # /metrics: histograms by severity and updates by timeliness.
    samples = await scrape(bot)
    assert value(samples, "incident_bot_time_to_respond_seconds_count", severity="SEV2") == 1
    assert value(samples, "incident_bot_time_to_respond_seconds_sum", severity="SEV2") == 120
    assert (
        value(samples, "incident_bot_time_to_respond_seconds_bucket", severity="SEV2", le="60.0")
        == 0
    )
    assert (
        value(samples, "incident_bot_time_to_respond_seconds_bucket", severity="SEV2", le="120.0")
        == 1
    )
    assert value(samples, "incident_bot_time_to_mitigate_seconds_sum", severity="SEV2") == 600
    assert value(samples, "incident_bot_time_to_resolve_seconds_sum", severity="SEV2") == 4200
    assert value(samples, "incident_bot_status_updates_total", timeliness="on_time") == 1
    assert value(samples, "incident_bot_status_updates_total", timeliness="late") == 1

    # The postmortem's key times and cadence.
    await bot.ask("postmortem", user=ALICE, channel=channel_of(inc))
    draft = await bot.store.latest_postmortem(inc.pk)
    assert draft is not None
    assert "- Time to respond: 2 min" in draft.markdown
    assert "- Time to mitigate: 10 min" in draft.markdown
    assert "- Updates on time: 1 of 2 intervals met (50%; one every 30 min)" in draft.markdown
    assert "- Longest gap without an update: 40 min" in draft.markdown


async def test_a_message_from_the_declarer_or_an_app_is_no_response(bot: Bot) -> None:
    await bot.slack.command("declare sev3 Quiet", user=ALICE, channel=GENERAL)
    inc = await bot.wait_provisioned(1)
    now = datetime.now(UTC)
    await person_says(bot, channel_of(inc), ALICE, "Anyone?", now)
    # An integration's message: a bot_id, as Slack sends it.
    msg = bot.fake.post_as_user(
        channel_of(inc), "U0DEPLOYBOT", "deploy finished", bot_id="B0DEPLOY", subtype="bot_message"
    )
    await bot.slack.event({**msg, "channel": inc.channel_id, "channel_type": "channel"})
    await bot.settled()
    [stored] = await bot.incidents()
    assert stored.responded_at is None
    # A role assignment by someone else is a response (a click counts).
    await bot.ask(f"commander <@{BOB}>", user=BOB, channel=channel_of(inc))
    [stored] = await bot.incidents()
    assert stored.responded_by == BOB


async def test_a_drill_is_labelled_not_announced_and_not_counted(start_bot: StartBot) -> None:
    bot = await start_bot(announcements_channel=ANNOUNCE)
    bot.fake.add_channel("incidents", id=ANNOUNCE, members=["UBOT"])
    await bot.slack.command("declare --drill sev1 Failover practice", user=ALICE, channel=GENERAL)
    drill = await bot.wait_provisioned(1)
    await bot.settled()
    assert drill.drill
    assert drill.title == "Failover practice"
    assert drill.severity == "SEV1"
    assert drill.channel_name == "inc-1-drill-failover-practice"
    card = texts_of(card_of(bot, drill)["blocks"])
    assert "INC-1 (DRILL)" in card and "not announced" in card
    assert bot.fake.channels[channel_of(drill)].topic["value"].startswith("DRILL | ")
    assert bot.fake.messages(ANNOUNCE, include_system=False) == []

    # A real incident beside it is announced and counted; the drill is not.
    await bot.slack.command("declare sev1 Real outage", user=ALICE, channel=GENERAL)
    real = await bot.wait_provisioned(2)
    await bot.settled()
    assert not real.drill
    assert len(bot.fake.messages(ANNOUNCE, include_system=False)) == 1
    samples = await scrape(bot)
    assert value(samples, "incident_bot_incidents_declared_total", severity="SEV1") == 1
    assert (
        value(samples, "incident_bot_incidents_open", severity="SEV1", status="investigating") == 1
    )
    await bot.slack.command("stats", user=ALICE, channel=GENERAL)
    await bot.settled()
    [stats] = [said(r) for r in bot.fake.private_answers(ALICE) if "Incident figures" in said(r)]
    assert "1 declared" in stats
    listing = " ".join(said(r) for r in await bot.ask("list", user=ALICE, channel=GENERAL))
    assert "INC-1 (DRILL)" in listing


async def test_the_form_declares_a_drill(bot: Bot) -> None:
    reply = await bot.slack.command("declare", user=ALICE, channel=GENERAL)
    assert reply.status == 200
    view = await until(lambda: view_of(bot, "declare"), message="the declare form")
    options = [
        o["value"]
        for b in view["blocks"]
        if b["block_id"] == "private"
        for o in b["element"]["options"]
    ]
    assert options == ["private", "drill"]
    await bot.slack.submit_view(
        view["id"],
        user=ALICE,
        inputs={"title": "Game day", "severity": "SEV3", "private": ["drill"]},
    )
    inc = await bot.wait_provisioned(1)
    assert inc.drill and not inc.private


async def test_stats_refuses_a_period_it_cannot_read(bot: Bot) -> None:
    told = await bot.ask("stats fortnight", user=ALICE, channel=GENERAL)
    assert any("Name a period" in said(t) for t in told)


# --- the report on a seeded history ------------------------------------------------------

BASE = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def _at(minutes: float) -> datetime:
    return BASE + timedelta(minutes=minutes)


async def seed(store: Store) -> None:
    """Four incidents and a drill, with times chosen so every figure is worked out by hand
    (the comments give the figures; intervals are 30 min)."""
    rows: list[
        tuple[int, str, float, float | None, float | None, float | None, list[tuple[float, float]]]
    ] = [
        # number, severity, declared, responded, mitigated, resolved, updates (posted, due)
        # INC-1: respond 4, mitigate 20, resolve 60; updates at 20 (due 30) and 55 (due 50):
        # 1 on time, 1 late; gaps 20, 35, 5 -> longest 35.
        (1, "SEV1", 0, 4, 20, 60, [(20, 30), (55, 50)]),
        # INC-2: respond 10, mitigate 40, resolve 120; updates at 25 (due 30), 50 (due 55),
        # 75 (due 80): 3 on time; the resolution at 120 is past 105: 1 late; longest 45.
        (2, "SEV1", 1000, 1010, 1040, 1120, [(1025, 1030), (1050, 1055), (1075, 1080)]),
        # INC-3: respond 2, never mitigated, resolve 30; no update; resolved at 30, due at 30:
        # on time, no interval counted; longest gap 30.
        (3, "SEV2", 2000, 2002, None, 2030, []),
        # INC-4: responded after 6, open, no update yet, next due far ahead: nothing counted.
        (4, "SEV3", 3000, 3006, None, None, []),
    ]
    async with store.session() as s:
        for number, sev, declared, responded, mitigated, resolved, updates in rows:
            inc = Incident(
                team_id="T0TEST",
                number=number,
                title=f"Incident {number}",
                severity=sev,
                status=Status.resolved.value
                if resolved is not None
                else Status.investigating.value,
                declared_by=ALICE,
                declared_at=_at(declared),
                declare_key=f"seed:{number}",
                responded_at=_at(responded) if responded is not None else None,
                responded_by=BOB if responded is not None else None,
                mitigated_at=_at(mitigated) if mitigated is not None else None,
                resolved_at=_at(resolved) if resolved is not None else None,
                next_update_due=None if resolved is not None else datetime(2099, 1, 1, tzinfo=UTC),
                provisioned=True,
            )
            s.add(inc)
            await s.flush()
            for i, (posted, due) in enumerate(updates):
                s.add(
                    StatusUpdate(
                        incident_id=inc.pk,
                        status="monitoring",
                        summary=f"update {i}",
                        posted_by=ALICE,
                        posted_at=_at(posted),
                        due_at=_at(due),
                        source_key=f"seed:{number}:{i}",
                    )
                )
        drill = Incident(
            team_id="T0TEST",
            number=5,
            title="Game day",
            severity="SEV1",
            status=Status.resolved.value,
            declared_by=ALICE,
            declared_at=_at(4000),
            declare_key="seed:5",
            responded_at=_at(4001),
            resolved_at=_at(4500),
            drill=True,
        )
        s.add(drill)
    async with store.session() as s:
        one = await store.incident_by_number("T0TEST", 1)
        two = await store.incident_by_number("T0TEST", 2)
        assert one is not None and two is not None
        s.add(
            FollowUp(
                incident_id=one.pk,
                text="Alert on checkout 5xx",
                owner=BOB,
                created_by=ALICE,
                created_at=_at(70),
                source_key="f1",
                done_at=_at(2000),
                done_by=BOB,
            )
        )
        s.add(
            FollowUp(
                incident_id=one.pk,
                text="Runbook for rollbacks",
                owner=BOB,
                created_by=ALICE,
                created_at=_at(71),
                source_key="f2",
            )
        )
        s.add(
            FollowUp(
                incident_id=two.pk,
                text="Find an owner for the cache",
                created_by=ALICE,
                created_at=_at(1130),
                source_key="f3",
            )
        )


async def run_report(database_url: str, *args: str) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "DATABASE_"))}
    env["DATABASE_URL"] = database_url
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "report",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_report_on_a_seeded_history_matches_figures_worked_by_hand(
    database_url: str,
) -> None:
    store = Store(database_url)
    await store.migrate()
    try:
        await seed(store)
    finally:
        await store.close()

    code, out, err = await run_report(database_url, "--since", "2026-11-01", "--format", "json")
    assert code == 0, err
    data = json.loads(out)
    by = {row["severity"]: row for row in data["by_severity"]}
    assert list(by) == ["SEV1", "SEV2", "SEV3", "All"]
    sev1 = by["SEV1"]
    assert (sev1["incidents"], sev1["resolved"]) == (2, 2)
    # Respond 4 and 10 min: median 7, p90 4 + 0.9 * 6 = 9.4 min.
    assert sev1["respond_median_s"] == 7 * 60
    assert sev1["respond_p90_s"] == pytest.approx(9.4 * 60)
    # Mitigate 20 and 40: median 30, p90 38. Resolve 60 and 120: median 90, p90 114.
    assert (sev1["mitigate_median_s"], sev1["mitigate_p90_s"]) == (30 * 60, 38 * 60)
    assert (sev1["resolve_median_s"], sev1["resolve_p90_s"]) == (90 * 60, 114 * 60)
    # Intervals: INC-1 1 of 2, INC-2 3 of 4.
    assert (sev1["update_intervals_met"], sev1["update_intervals"]) == (4, 6)
    assert sev1["longest_gap_s"] == 45 * 60
    assert (sev1["follow_ups_open"], sev1["follow_ups_done"]) == (2, 1)
    sev2 = by["SEV2"]
    assert (sev2["respond_median_s"], sev2["mitigate_median_s"]) == (120, None)
    assert (sev2["update_intervals"], sev2["longest_gap_s"]) == (0, 30 * 60)
    everyone = by["All"]
    # Respond 2, 4, 6, 10: median 5, p90 6 + 0.7 * 4 = 8.8 min. The drill is left out.
    assert everyone["incidents"] == 4
    assert everyone["respond_median_s"] == 5 * 60
    assert everyone["respond_p90_s"] == pytest.approx(8.8 * 60)
    assert everyone["update_adherence"] == round(4 / 6, 4)
    assert [i["incident"] for i in data["incidents"]] == ["INC-1", "INC-2", "INC-3", "INC-4"]
    assert data["incidents"][3]["resolve_s"] is None
    assert sorted((f["owner"], f["done"]) for f in data["follow_ups"] if f["owner"]) == [
        (BOB, False),
        (BOB, True),
    ]

    code, out, _ = await run_report(database_url, "--since", "2026-11-01", "--format", "csv")
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["severity"] for r in rows] == ["SEV1", "SEV2", "SEV3", "All"]
    assert rows[0]["respond_median_s"] == "420.0" and rows[0]["update_intervals_met"] == "4"

    code, out, _ = await run_report(database_url, "--since", "2026-11-01")
    assert code == 0
    # One duration rule everywhere: seconds shown under an hour, cut rather than rounded.
    assert "| SEV1 | 2 | 2 | 7 min / 9 min 24 s | 30 min / 38 min | 1 h 30 min / 1 h 54 min " in out
    assert "| 67% (4 of 6) | 45 min |" in out
    assert f"| {BOB} | 1 | 1 |" in out and "| no owner | 1 | 0 |" in out
    assert "Game day" not in out

    # Nothing in the period: said plainly. A period it cannot read: a clear refusal.
    code, out, _ = await run_report(database_url, "--since", "2099-01-01")
    assert code == 0 and "No incidents were declared in this period." in out
    code, _, err = await run_report(database_url, "--since", "a while")
    assert code == 2 and "30d" in err


def test_cadence_counts_an_overdue_open_incident_as_one_missed_interval() -> None:
    inc = Incident(
        team_id="T",
        number=1,
        title="t",
        severity="SEV2",
        declared_by=ALICE,
        declared_at=BASE,
        declare_key="k",
        next_update_due=_at(30),
    )
    interval = timedelta(minutes=30)
    assert figures.cadence(inc, [], _at(20), interval).intervals == 0
    late = figures.cadence(inc, [], _at(45), interval)
    assert (late.on_time, late.late, late.longest_gap) == (0, 1, timedelta(minutes=45))
    assert figures.percentile([], 50) is None
    assert figures.percentile([3.0], 90) == 3.0


def _entry(kind: str, actor: str | None, data: dict[str, Any] | None = None) -> TimelineEntry:
    return TimelineEntry(
        incident_id=1, kind=kind, happened_at=T0, recorded_at=T0, actor=actor, text="", data=data
    )


@pytest.mark.parametrize(
    ("entry", "who"),
    [
        (_entry("severity", BOB), BOB),
        (_entry("update", "W0ENTERPRISE"), "W0ENTERPRISE"),
        (_entry("note", CAROL), CAROL),
        # A pinned message responds as its author, whoever pinned it.
        (_entry("message", ALICE, {"user": CAROL}), CAROL),
        (_entry("message", ALICE, {"user": "B0ALERTS"}), None),
        (_entry("message", ALICE, {}), None),
        # The bot's own kinds of entry never respond, whoever is named on them.
        (_entry("declared", BOB), None),
        (_entry("reminder", BOB), None),
        (_entry("alert", None), None),
        (_entry("invite", BOB), None),
        (_entry("severity", None), None),
        (_entry("severity", "B0BOT"), None),
    ],
)
def test_who_responds_by_a_timeline_entry(entry: TimelineEntry, who: str | None) -> None:
    assert rules.responder(entry) == who


def test_the_bots_own_user_never_responds() -> None:
    assert rules.responder(_entry("severity", "U0BOT"), {"U0BOT"}) is None
    assert rules.responder(_entry("severity", BOB), {"U0BOT"}) == BOB
