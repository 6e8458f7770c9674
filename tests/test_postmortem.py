"""Postmortem compiler: channel history over the fake Slack's Web API, and the Markdown draft."""

from __future__ import annotations

import dataclasses
import math
import random
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient

from bot.base.settings import BUILTIN_ROLES, DEFAULT_SEVERITIES
from bot.fakeslack import FakeSlack
from bot.model.figures import duration
from bot.model.tables import FollowUp, Incident, RoleAssignment, StatusUpdate, TimelineEntry
from bot.outbound.slack.directory import Directory, Person
from bot.outbound.slack.history import fetch_history
from bot.views import postmortem as render_module
from bot.views.postmortem import PROMPT_MARKER, PostmortemFacts, Preparer, render
from tests.drafts import SECTIONS, check_draft
from tests.readable import shape, shows_itself
from tests.support import ALICE, BOB, BOT_TOKEN, CAROL, GENERAL

BOT_USER, BOT_ID = "UBOT", "BBOT"
HELPER_BOT = "U0HELPER"
NAMES = {
    ALICE: "Alice Archer",
    BOB: "Bob Baker",
    CAROL: "Carol Chen",
    BOT_USER: "incident-bot",
}
PROMPTED = SECTIONS[-5:]


def client_for(fake: FakeSlack) -> AsyncWebClient:
    return AsyncWebClient(
        token=BOT_TOKEN,
        base_url=fake.api_url,
        retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=20)],
    )


def ok_calls(fake: FakeSlack, method: str) -> int:
    return sum(1 for call in fake.calls_to(method) if call.ok)


def section(md: str, title: str) -> str:
    """The body of one ``## title`` section."""
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", md, re.M | re.S)
    assert match is not None, f"no section {title!r}"
    return match[1]


def outside_code(md: str) -> list[str]:
    """The lines of ``md`` that are not inside fenced code blocks."""
    out: list[str] = []
    fence = ""
    for line in md.splitlines():
        stripped = line.strip()
        if fence:
            if stripped.startswith(fence) and not stripped.strip("`"):
                fence = ""
        elif stripped.startswith("```"):
            fence = stripped[: len(stripped) - len(stripped.lstrip("`"))]
        else:
            out.append(line)
    return out


# ---------------------------------------------------------------------------------------------
# Fetching history


@pytest.fixture
async def incident_channel(fake: FakeSlack) -> AsyncIterator[tuple[FakeSlack, str, list[str]]]:
    """A busy incident channel; yields the fake, the channel id, and every human marker."""
    channel = fake.add_channel("inc-7-db", members=[ALICE, BOB, CAROL, BOT_USER]).id
    rng = random.Random(7)
    people = [ALICE, BOB, CAROL]
    human: list[str] = []

    def say(user: str, words: str, **extra: Any) -> dict[str, Any]:
        marker = f"m{len(human):05d}"
        human.append(marker)
        return fake.post_as_user(channel, user, f"{marker} {words}", **extra)

    fake.post_as_user(channel, BOT_USER, "card: INC-7", bot_id=BOT_ID)
    for user in people:
        fake.post_as_user(channel, user, "has joined", subtype="channel_join")
    threads: list[str] = []
    for i in range(2_940):
        user = people[i % 3]
        if i % 50 == 10:
            threads.append(say(user, "does anyone see errors?")["ts"])
        elif i % 97 == 5:
            fake.post_as_user(
                channel, HELPER_BOT, "noise-deploy finished", subtype="bot_message", bot_id="B0H"
            )
            say(user, f"<@{BOB}> see <#{GENERAL}> and <https://status.example.com|status>")
        elif i % 211 == 3:
            say(user, "graph", files=[{"id": f"F{i}", "name": f"graph-{i}.png"}])
        elif i % 173 == 7:
            say(user, "*fixed* typo", edited={"user": user, "ts": "1.0"})
        else:
            say(user, "working on it")
    assert len(threads) == 59
    # A deleted message whose thread lives on, as Slack keeps it: a tombstone.
    tomb = fake.post_as_user(
        channel, "USLACKBOT", "This message was deleted.", subtype="tombstone", hidden=True
    )
    threads.append(tomb["ts"])
    for n, parent in enumerate(threads):
        for _ in range(rng.randint(1, 3)):
            say(rng.choice(people), "reply", thread_ts=parent)
        if n == 3:
            fake.post_as_user(channel, BOT_USER, "noise-reminder", thread_ts=parent, bot_id=BOT_ID)
    # One thread longer than a page of replies.
    for _ in range(1_050):
        say(rng.choice(people), "long thread reply", thread_ts=threads[0])
    fake.post_as_user(channel, BOB, "has left", subtype="channel_leave")
    yield fake, channel, human


def minimum_calls(fake: FakeSlack, channel: str) -> tuple[int, int]:
    top = fake.messages(channel)
    history = max(1, math.ceil(len(top) / 999))
    replies = sum(
        math.ceil((len(fake.replies(channel, m["ts"])) + 1) / 999)
        for m in top
        if m.get("reply_count")
    )
    return history, replies


def check_history(fake: FakeSlack, channel: str, got: list[dict[str, Any]]) -> None:
    assert [m["ts"] for m in got] == [m["ts"] for m in fake.messages(channel)]
    threads = 0
    for msg in got:
        if msg.get("reply_count"):
            threads += 1
            expected = [r["ts"] for r in fake.replies(channel, msg["ts"])]
            assert [r["ts"] for r in msg["replies"]] == expected
            assert msg["ts"] not in expected
    assert threads == 60


async def test_fetch_history_reads_every_page_with_the_fewest_calls(
    incident_channel: tuple[FakeSlack, str, list[str]],
) -> None:
    fake, channel, human = incident_channel
    client = client_for(fake)
    history_calls, replies_calls = minimum_calls(fake, channel)
    assert history_calls == 3 and replies_calls == 61  # the long thread takes two pages

    got = await fetch_history(client, channel)

    check_history(fake, channel, got)
    assert len(fake.calls_to("conversations.history")) == history_calls
    assert len(fake.calls_to("conversations.replies")) == replies_calls
    assert all(c.args.get("limit") in ("999", 999) for c in fake.calls)
    # The longest threads are asked for first: their pages follow one another, so they must
    # not be the last ones left.
    counts = {m["ts"]: int(m["reply_count"]) for m in got if m.get("reply_count")}
    firsts = [
        c.args["ts"] for c in fake.calls_to("conversations.replies") if "cursor" not in c.args
    ]
    asked = [counts[ts] for ts in firsts]
    assert len(set(asked)) > 2 and asked == sorted(asked, reverse=True)

    # Rendered, each human message shows exactly once and the noise not at all.
    md = render(facts_for(got, channel=channel))
    timeline = section(md, "Timeline")
    counts = {marker: 0 for marker in human}
    for marker in re.findall(r"\bm\d{5}\b", timeline):
        counts[marker] += 1
    assert set(counts.values()) == {1}
    assert re.findall(r"\bm\d{5}\b", timeline)[:3] == human[:3]
    for noise in ("noise-", "card: INC-7", "has joined", "has left", "This message was deleted"):
        assert noise not in md
    assert "*thread under a deleted message*" in timeline
    assert "📎 graph-3.png" in timeline and "*(edited)*" in timeline
    assert "@Bob Baker see #general and [status](https://status.example.com)" in timeline
    assert f"<@{BOB}>" not in md and BOB not in md


async def test_fetch_history_survives_rate_limits_without_extra_calls(
    incident_channel: tuple[FakeSlack, str, list[str]],
) -> None:
    fake, channel, _ = incident_channel
    history_calls, replies_calls = minimum_calls(fake, channel)
    fake.rate_limit_fraction(0.2, retry_after=0, seed=3)

    got = await fetch_history(client_for(fake), channel)

    check_history(fake, channel, got)
    assert ok_calls(fake, "conversations.history") == history_calls
    assert ok_calls(fake, "conversations.replies") == replies_calls
    limited = [c for c in fake.calls if c.status == 429]
    assert limited, "the fake should have rate limited some calls"
    assert len(fake.calls) == history_calls + replies_calls + len(limited)


async def test_fetch_history_of_a_quiet_channel_takes_one_call(fake: FakeSlack) -> None:
    channel = fake.add_channel("inc-8-quiet", members=[BOT_USER]).id
    assert await fetch_history(client_for(fake), channel) == []
    assert len(fake.calls_to("conversations.history")) == 1
    assert fake.calls_to("conversations.replies") == []


async def test_names_for_a_draft_never_fail_and_are_asked_once(fake: FakeSlack) -> None:
    fake.add_bot("B0GRAF", "Grafana")
    fake.add_channel("ops", id="C0OPS")
    fake.add_channel("secret", id="C0SECRET", is_private=True, members=[ALICE])
    fake.add_usergroup("sre-team", id="S0SRE")
    fake.invisible_users.add("U0EXT")
    fake.add_user("U0DEPLOY", "deploys", is_bot=True)
    directory = Directory(client_for(fake))

    async def everything() -> tuple[Any, ...]:
        return (
            await directory.people([ALICE, "U0EXT", "U0NOBODY", "USLACKBOT", "U0DEPLOY"]),
            await directory.bot_names(["B0GRAF", "B0NONE"]),
            await directory.channel_names(["C0OPS", "C0SECRET"]),
            await directory.usergroup_handles(["S0SRE", "S0GONE"]),
        )

    people, bots, channels, groups = await everything()
    assert people[ALICE] == Person("Alice Archer")
    # Slack Connect people users.info will not show, and ids Slack does not know.
    assert not people["U0EXT"].known and not people["U0NOBODY"].known
    assert people["USLACKBOT"].app and people["U0DEPLOY"].app
    assert bots == {"B0GRAF": "Grafana"}
    assert channels == {"C0OPS": "ops", "C0SECRET": "private-channel"}
    assert groups == {"S0SRE": "sre-team", "S0GONE": "unknown-group"}
    asked = len(fake.calls)
    assert asked == 4 + 2 + 2 + 1  # no users.info for Slackbot; one usergroups.list
    # A second draft asks Slack nothing: every answer, "no" included, is kept.
    assert await everything() == (people, bots, channels, groups)
    assert len(fake.calls) == asked


async def test_a_failed_name_lookup_is_neutral_and_asked_again(fake: FakeSlack) -> None:
    directory = Directory(client_for(fake))
    fake.fail("users.info", error="fatal_error")
    fake.fail("bots.info", error="fatal_error")
    fake.fail("usergroups.list", error="missing_scope")
    fake.fail("conversations.info", error="fatal_error")
    fake.add_bot("B0GRAF", "Grafana")
    fake.add_usergroup("sre-team", id="S0SRE")
    assert await directory.people([BOB]) == {BOB: Person("", known=False)}
    assert await directory.bot_names(["B0GRAF"]) == {}
    assert await directory.usergroup_handles(["S0SRE"]) == {"S0SRE": "unknown-group"}
    assert await directory.channel_names([GENERAL]) == {GENERAL: "unknown-channel"}
    # Errors are not kept: the next draft asks again and gets the names.
    assert await directory.people([BOB]) == {BOB: Person("Bob Baker")}
    assert await directory.bot_names(["B0GRAF"]) == {"B0GRAF": "Grafana"}
    assert await directory.usergroup_handles(["S0SRE"]) == {"S0SRE": "sre-team"}
    assert await directory.channel_names([GENERAL]) == {GENERAL: "general"}


async def test_name_lookups_overlap_a_few_at_a_time(fake: FakeSlack) -> None:
    ids = [f"U0P{i:03d}" for i in range(40)]
    for uid in ids:
        fake.add_user(uid, uid.lower())
    fake.set_delay("users.info", 0.1)
    directory = Directory(client_for(fake))
    people = await directory.people(ids)
    assert all(p.known for p in people.values())
    # 40 lookups of 0.1 s each overlap: eight at a time, never more.
    assert fake.most_at_once("users.info") == 8


# ---------------------------------------------------------------------------------------------
# Rendering

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
EVIL = "<!channel> # heading [x](http://evil) <script>alert(1)</script>"


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def ts(minutes: float) -> str:
    micros = int(at(minutes).timestamp() * 1_000_000)
    return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"


def msg(minutes: float, user: str, text: str, **extra: Any) -> dict[str, Any]:
    return {"type": "message", "user": user, "text": text, "ts": ts(minutes), **extra}


def incident(**changes: Any) -> Incident:
    values: dict[str, Any] = {
        "id": 1,
        "team_id": "T0TEST",
        "number": 42,
        "title": f"Checkout down {EVIL}",
        "description": "Payments fail.\n# not a heading\n[x](http://evil)",
        "severity": "SEV2",
        "status": "resolved",
        "declared_by": ALICE,
        "declared_at": T0,
        "declare_key": "k",
        "channel_id": "C0INC",
        "channel_name": "inc-42-checkout-down",
        "resolved_at": at(65),
    }
    values.update(changes)
    return Incident(**values)


def entry(
    id: int, minutes: float, kind: str, actor: str | None, text: str = "", **data: Any
) -> TimelineEntry:
    return TimelineEntry(
        id=id,
        incident_id=1,
        kind=kind,
        happened_at=at(minutes),
        recorded_at=at(minutes),
        actor=actor,
        text=text,
        data=data or None,
    )


def facts_for(
    messages: list[dict[str, Any]],
    *,
    channel: str = "C0INC",
    timeline: list[TimelineEntry] | None = None,
    **changes: Any,
) -> PostmortemFacts:
    return PostmortemFacts(
        incident=incident(channel_id=channel, **changes),
        severities=DEFAULT_SEVERITIES,
        roles_config=BUILTIN_ROLES,
        assignments=[],
        timeline=timeline or [entry(1, 0, "declared", ALICE, "Declared", severity="SEV2")],
        updates=[],
        follow_ups=[],
        messages=messages,
        names=NAMES,
        channels={GENERAL: "general", "C0INC": "inc-42-checkout-down"},
        bot_user_id=BOT_USER,
        bot_id=BOT_ID,
    )


PINNED_TS = ts(7)


def story() -> dict[str, Any]:
    """An incident from declaration to resolution, with everything a draft must show."""
    timeline = [
        entry(1, 0, "declared", ALICE, f"Declared INC-42 at SEV3: {EVIL}", severity="SEV3"),
        entry(2, 0, "role", ALICE, f"<@{ALICE}> is Incident Commander", role="commander"),
        entry(3, 3, "severity", BOB, "SEV3 → SEV1", **{"from": "SEV3", "to": "SEV1"}),
        entry(4, 5, "role", BOB, f"<@{CAROL}> is Communications Lead", role="comms"),
        entry(5, 7, "message", ALICE, "pinned-one the *cache* is cold", ts=PINNED_TS, user=CAROL),
        entry(6, 10, "note", CAROL, f"note-one {EVIL}\n- [x] done?"),
        entry(7, 20, "update", CAROL, "identified", status="identified"),
        entry(8, 30, "role", ALICE, f"<@{BOB}> is Incident Commander", role="commander"),
        entry(9, 40, "severity", BOB, "SEV1 → SEV2", **{"from": "SEV1", "to": "SEV2"}),
        entry(10, 45, "update", CAROL, "monitoring", status="monitoring"),
        entry(11, 65, "resolved", BOB, "Resolved"),
    ]
    assignments = [
        RoleAssignment(
            id=1,
            incident_id=1,
            role="commander",
            user_id=ALICE,
            assigned_by=ALICE,
            assigned_at=T0,
            ended_at=at(30),
        ),
        RoleAssignment(
            id=2, incident_id=1, role="comms", user_id=CAROL, assigned_by=BOB, assigned_at=at(5)
        ),
        RoleAssignment(
            id=3,
            incident_id=1,
            role="commander",
            user_id=BOB,
            assigned_by=ALICE,
            assigned_at=at(30),
        ),
    ]
    updates = [
        StatusUpdate(
            id=1,
            incident_id=1,
            status="identified",
            summary=f"update-one {EVIL}",
            posted_by=CAROL,
            posted_at=at(20),
            source_key="u1",
        ),
        StatusUpdate(
            id=2,
            incident_id=1,
            status="monitoring",
            summary="update-two: fix deployed,\nwatching error rates",
            posted_by=CAROL,
            posted_at=at(45),
            source_key="u2",
        ),
    ]
    follow_ups = [
        FollowUp(
            id=1,
            incident_id=1,
            text="Alert on cache hit rate [x](http://evil)",
            owner=BOB,
            created_by=ALICE,
            created_at=at(60),
            source_key="f1",
        ),
        FollowUp(
            id=2,
            incident_id=1,
            text="Write the cache runbook",
            created_by=CAROL,
            created_at=at(61),
            source_key="f2",
        ),
    ]
    # Human messages carry a "h-" marker; anything carrying "noise" must not be shown.
    messages = [
        msg(
            0,
            BOT_USER,
            "noise card",
            bot_id=BOT_ID,
            reply_count=1,
            thread_ts=ts(0),
            replies=[msg(2, BOB, "h-bob-ack looking", thread_ts=ts(0))],
        ),
        msg(0.5, ALICE, "h-alice-page paging the on-call <!here>"),
        msg(1, BOB, "noise joined", subtype="channel_join"),
        msg(4, HELPER_BOT, "noise deploy", subtype="bot_message", bot_id="B0H"),
        msg(
            7,
            CAROL,
            "pinned-one the *cache* is cold",
            reply_count=3,
            thread_ts=PINNED_TS,
            replies=[
                msg(8, ALICE, "h-alice-reply which cache?", thread_ts=PINNED_TS),
                msg(9, BOB, "h-bob-reply the session cache", thread_ts=PINNED_TS),
                msg(
                    9.5,
                    BOB,
                    "h-bob-broadcast flushing it",
                    thread_ts=PINNED_TS,
                    subtype="thread_broadcast",
                ),
            ],
        ),
        msg(
            9.5, BOB, "h-bob-broadcast flushing it", thread_ts=PINNED_TS, subtype="thread_broadcast"
        ),
        msg(12, BOB, "h-bob-file graph", files=[{"id": "F1", "name": "latency.png"}]),
        msg(15, ALICE, "h-alice-edit *now* fixed", edited={"user": ALICE, "ts": ts(16)}),
        msg(
            16,
            "USLACKBOT",
            "This message was deleted.",
            subtype="tombstone",
            hidden=True,
            reply_count=1,
            thread_ts=ts(16),
            replies=[msg(17, CAROL, "h-carol-orphan still here", thread_ts=ts(16))],
        ),
        msg(25, CAROL, f"h-carol-mention <@{BOB}> check <#{GENERAL}> <https://status.example.com>"),
        msg(26, BOB, "h-bob-evil &lt;script&gt;x&lt;/script&gt; # hi [x](http://evil) <!channel>"),
        msg(50, ALICE, "h-alice-code\n```\nSELECT 1;\n# not a heading\n```\nafter\n&gt; quoted"),
        msg(55, BOT_USER, "noise reminder", bot_id=BOT_ID),
    ]
    return {
        "timeline": timeline,
        "assignments": assignments,
        "updates": updates,
        "follow_ups": follow_ups,
        "messages": messages,
    }


def story_facts(**changes: Any) -> PostmortemFacts:
    parts = story()
    parts.update(changes)
    return PostmortemFacts(
        incident=parts.pop("incident", None) or incident(),
        severities=DEFAULT_SEVERITIES,
        roles_config=BUILTIN_ROLES,
        names=NAMES,
        channels={GENERAL: "general", "C0INC": "inc-42-checkout-down"},
        bot_user_id=BOT_USER,
        bot_id=BOT_ID,
        **parts,
    )


HUMAN_ORDER = [
    "h-bob-ack",
    "h-alice-page",
    "pinned-one",
    "h-alice-reply",
    "h-bob-reply",
    "h-bob-broadcast",
    "h-bob-file",
    "h-alice-edit",
    "h-carol-orphan",
    "h-carol-mention",
    "h-bob-evil",
    "h-alice-code",
]


def test_sections_come_in_order_with_the_five_prompts() -> None:
    md = render(story_facts())
    assert md.startswith("# INC-42: Checkout down ")
    assert re.findall(r"^## (.+)$", md, re.M) == SECTIONS
    for title in PROMPTED:
        body = section(md, title)
        assert body.strip().startswith(PROMPT_MARKER), title
    assert md.count(PROMPT_MARKER) == 7  # plus summary and impact
    assert md.endswith("\n") and not md.endswith("\n\n")


def test_user_text_never_becomes_markup() -> None:
    md = render(story_facts())
    headings = [line for line in outside_code(md) if re.match(r"\s*#", line)]
    assert headings == [md.splitlines()[0], *(f"## {s}" for s in SECTIONS)]
    assert md.splitlines()[0] == (
        "# INC-42: Checkout down &lt;!channel> # heading [x\\](http://evil) "
        "&lt;script>alert(1)&lt;/script>"
    )
    assert "<script" not in md and "<!channel>" not in md and "<!here>" not in md
    # Parsed as a reader's Markdown viewer parses it: the one heading is the title, no HTML,
    # and only the links people posted in Slack are links (a bare URL shows itself).
    found = shape(md)
    assert found.headings[0] == (
        "INC-42: Checkout down <!channel> # heading [x](http://evil) <script>alert(1)</script>"
    )
    assert found.html == [] and found.images == 0
    assert [link.href for link in found.links if not shows_itself(link)] == []
    assert "https://status.example.com" in [link.href for link in found.links]
    # A note's own list line stays text inside its timeline item.
    assert "  \\- [x] done?" in md.splitlines()
    # Code is kept as code, inside the message's list item.
    assert "  ```\n  SELECT 1;\n  # not a heading\n  ```" in md


def test_key_times_and_durations() -> None:
    md = render(story_facts())
    times = section(md, "Key times")
    assert "| Declared | 2024-05-01 12:00:00 UTC | Alice Archer |" in times
    # Alice declared, so her own page does not count; Bob's thread reply is first.
    assert "| First response | 2024-05-01 12:02:00 UTC | Bob Baker |" in times
    assert "| Mitigated | 2024-05-01 12:45:00 UTC | Carol Chen |" in times
    assert "| Resolved | 2024-05-01 13:05:00 UTC | Bob Baker |" in times
    assert "- Time to respond: 2 min" in times
    assert "- Time to mitigate: 45 min" in times
    assert "- Time to resolve: 1 h 05 min" in times
    impact = section(md, "Impact")
    assert "- Worst severity reached: **SEV1 (Critical)**" in impact
    assert "- Duration: 1 h 05 min" in impact
    assert "**Severity:** SEV2 (Major) · **Status:** resolved" in md
    assert "**Channel:** #inc-42-checkout-down" in md


def test_missing_key_times_are_never_guessed() -> None:
    still_open = incident(status="identified", resolved_at=None)
    quiet = story_facts(
        incident=still_open,
        updates=[],
        messages=[msg(1, ALICE, "h-alice talking to myself")],
        timeline=[entry(1, 0, "declared", ALICE, "Declared", severity="SEV2")],
        assignments=[],
    )
    times = section(render(quiet), "Key times")
    for row in ("First response", "Mitigated", "Resolved"):
        assert f"| {row} | — | — |" in times
    for row in ("respond", "mitigate", "resolve"):
        assert f"- Time to {row}: —" in times
    assert "- Duration: still open" in render(quiet)
    assert duration(3900) == "1 h 05 min" and duration(750) == "12 min 30 s"
    assert duration(45) == "45 s" and duration(26 * 3600 + 60) == "26 h 01 min"
    # The one rule of every surface (report, stats, App Home, postmortem): 90 s is 1 min 30 s
    # everywhere, never "2 min" in one place and "1 min 30 s" in another.
    assert duration(90) == "1 min 30 s" and duration(120) == "2 min"
    assert duration(3 * 86400 + 4 * 3600 + 59) == "3 d 4 h"
    assert duration(None) == duration(-1) == "—"


def test_severity_roles_updates_and_follow_ups() -> None:
    md = render(story_facts())
    history = section(md, "Severity history").strip().splitlines()
    assert history == [
        "- **2024-05-01 12:00:00 UTC** · declared at **SEV3 (Minor)** by Alice Archer",
        "- **2024-05-01 12:03:00 UTC** · SEV3 (Minor) → **SEV1 (Critical)** by Bob Baker",
        "- **2024-05-01 12:40:00 UTC** · SEV1 (Critical) → **SEV2 (Major)** by Bob Baker",
    ]
    roles = section(md, "Roles").strip().splitlines()
    assert roles == [
        "- **Incident Commander**: Bob Baker, since 2024-05-01 12:30:00 UTC "
        "(assigned by Alice Archer)",
        "  - earlier: Alice Archer, 2024-05-01 12:00:00 UTC to 2024-05-01 12:30:00 UTC "
        "(assigned by Alice Archer)",
        "- **Communications Lead**: Carol Chen, since 2024-05-01 12:05:00 UTC "
        "(assigned by Bob Baker)",
    ]
    updates = section(md, "Status updates")
    assert "- **2024-05-01 12:45:00 UTC** · monitoring · Carol Chen: update-two" in updates
    assert "update-one &lt;!channel> # heading" in updates
    summary = section(md, "Summary")
    assert "Payments fail.\n\\# not a heading\n\\[x\\](http://evil)" in summary
    assert "**Last status update** (2024-05-01 12:45:00 UTC, monitoring" in summary
    assert summary.index("update-two") < summary.index(PROMPT_MARKER)
    follow = section(md, "Follow-ups").strip().splitlines()
    assert follow == [
        "- [ ] Alert on cache hit rate [x\\](http://evil) (owner: Bob Baker)",
        "- [ ] Write the cache runbook (no owner yet)",
    ]
    assert "None recorded." in section(render(story_facts(follow_ups=[])), "Follow-ups")
    people = section(md, "Participants").strip().splitlines()
    assert people == [
        "- Alice Archer — 4 messages",
        "- Bob Baker — 5 messages",
        "- Carol Chen — 3 messages",
    ]


def test_timeline_shows_each_message_once_in_order() -> None:
    md = render(story_facts())
    timeline = section(md, "Timeline")
    lines = timeline.splitlines()
    for marker in HUMAN_ORDER:
        assert timeline.count(marker) == 1, marker
    positions = [timeline.index(marker) for marker in HUMAN_ORDER]
    assert positions == sorted(positions)
    assert "noise" not in md
    for uid in (ALICE, BOB, CAROL, BOT_USER, HELPER_BOT):
        assert uid not in md
    # The pinned message is shown once, where it was said, with its thread under it.
    pinned = next(line for line in lines if "pinned-one" in line)
    assert pinned == "- **2024-05-01 12:07:00 UTC** · 📌 Carol Chen (pinned by Alice Archer): " + (
        "pinned-one the **cache** is cold"
    )
    after = lines[lines.index(pinned) + 1 : lines.index(pinned) + 4]
    assert [line.split(" · ")[1].split(":")[0] for line in after] == [
        "Alice Archer",
        "Bob Baker",
        "Bob Baker",
    ]
    assert all(line.startswith("  - ↳ **2024-05-01 12:0") for line in after)
    # Replies to the bot's card and to a deleted message keep a stub parent.
    assert "- **2024-05-01 12:00:00 UTC** · *thread under a bot message*" in lines
    assert "- **2024-05-01 12:16:00 UTC** · *thread under a deleted message*" in lines
    assert "  - ↳ **2024-05-01 12:02:00 UTC** · Bob Baker: h-bob-ack looking" in lines
    # Entries and messages interleave by time; entries first on a tie.
    assert lines.index(
        "- **2024-05-01 12:00:00 UTC** · *declared* · Alice Archer: Declared INC-42 at SEV3: "
        "&lt;!channel> # heading [x\\](http://evil) "
        "&lt;script>alert(1)&lt;/script>"
    ) < lines.index(
        "- **2024-05-01 12:00:00 UTC** · *role* · Alice Archer: @Alice Archer is Incident Commander"
    )
    assert "· *note* · Carol Chen: note-one &lt;!channel> # heading" in timeline
    assert "💬 Bob Baker: h-bob-file graph\n  📎 latency.png" in timeline
    assert "💬 Alice Archer *(edited)*: h-alice-edit **now** fixed" in timeline
    assert "h-carol-mention @Bob Baker check #general <https://status.example.com>" in timeline
    assert "h-alice-page paging the on-call @here" in timeline


def test_pinned_message_outside_the_transcript_is_still_shown() -> None:
    parts = story()
    messages = [m for m in parts["messages"] if m["ts"] != PINNED_TS]
    timeline = section(render(story_facts(messages=messages)), "Timeline")
    assert timeline.count("pinned-one") == 1
    assert "- **2024-05-01 12:07:00 UTC** · 📌 Carol Chen (pinned by Alice Archer): pinned-one" in (
        timeline
    )


def test_same_facts_give_the_same_bytes() -> None:
    first = render(story_facts())
    assert render(story_facts()) == first
    rng = random.Random(1)
    for _ in range(5):
        parts = story()
        for key in ("timeline", "assignments", "updates", "follow_ups", "messages"):
            rng.shuffle(parts[key])
        for m in parts["messages"]:
            if m.get("replies"):
                rng.shuffle(m["replies"])
        assert render(story_facts(**parts)) == first


def test_lines_worked_out_ahead_give_the_same_draft_even_where_names_changed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The compile works out messages' lines while the history arrives, with the names
    known so far. The draft is the same bytes as a render from scratch: lines that read a
    name that changed since (Bob renamed, Carol's name not yet looked up) are worked out
    again, the rest are used as they are, and a render never changes what it was given."""
    facts = story_facts()
    ahead = Preparer(facts.timeline, facts.bot_user_id, facts.bot_id)
    ahead.users.update({**facts.names, BOB: "Bob (old name)"})
    del ahead.users[CAROL]
    ahead.channels.update(facts.channels)
    for message in facts.messages:
        ahead.prepare(message, False)
        for reply in message.get("replies") or ():
            ahead.prepare(reply, True)
    assert len(ahead.prepared) >= 10
    fresh = render(facts)
    prepared = dataclasses.replace(facts, prepared=ahead.prepared)
    assert render(prepared) == fresh
    assert render(prepared) == fresh  # and again: the prepared lines are not consumed
    assert "Bob (old name)" not in fresh and "Bob Baker" in fresh

    # With the names as they are, the prepared lines are used, not worked out again.
    same = Preparer(facts.timeline, facts.bot_user_id, facts.bot_id)
    same.users.update(facts.names)
    same.channels.update(facts.channels)
    for message in facts.messages:
        same.prepare(message, False)
    worked_out: list[Any] = []
    original = render_module._Lines.message_lines

    def counting(self: Any, *args: Any, **kwargs: Any) -> list[str]:
        worked_out.append(args[0])
        return original(self, *args, **kwargs)

    monkeypatch.setattr(render_module._Lines, "message_lines", counting)
    assert render(dataclasses.replace(facts, prepared=same.prepared)) == fresh
    with_prepared = len(worked_out)
    worked_out.clear()
    render(facts)
    # Every prepared top-level message shown as itself (a broadcast reply is shown in
    # its thread instead).
    shown = [p for p in same.prepared.values() if p.lines]
    assert len(worked_out) - with_prepared == len(shown) - 1


def test_messages_whose_lines_are_final_are_let_go_and_the_draft_is_the_same() -> None:
    """A long history is not held whole: once a message's lines read only names the compile
    keeps (people shown by name, apps, channels found), all but what the render still reads
    of it is let go. One that read a name not settled yet (Carol) is kept whole, worked
    out again, and the draft is the same bytes."""
    fresh = render(story_facts())
    facts = story_facts()
    ahead = Preparer(facts.timeline, facts.bot_user_id, facts.bot_id, let_go=True)
    ahead.users.update({**facts.names, CAROL: "Carol (not looked up yet)"})
    ahead.channels.update(facts.channels)
    ahead.usergroups.update(facts.usergroups)
    ahead.bot_names.update(facts.bots)
    ahead.settled.update(set(facts.names) - {CAROL})
    everything = [m for top in facts.messages for m in (top, *(top.get("replies") or ()))]
    for message in facts.messages:
        ahead.prepare(message, False)
        for reply in message.get("replies") or ():
            ahead.prepare(reply, True)
    let_go = [m for m in everything if set(m) - {"text"} <= set(render_module._KEPT)]
    kept = [m for m in everything if m not in let_go]
    assert len(let_go) >= 8
    assert kept and all(b"Carol" in ahead.prepared[id(m)].lines for m in kept)
    assert not any(m.get("blocks") or m.get("client_msg_id") for m in let_go)
    assert render(dataclasses.replace(facts, prepared=ahead.prepared)) == fresh


def test_a_big_channel_renders_every_message() -> None:
    # How fast is measured side by side in bench/ (figure 3), not against a wall clock here.
    messages: list[dict[str, Any]] = []
    people = [ALICE, BOB, CAROL]
    for i in range(10_000 - 300 * 10):
        messages.append(msg(i / 10, people[i % 3], f"line {i}: *bold*, <@{BOB}> and `code`"))
    for t in range(300):
        parent = messages[t * 20]
        parent["reply_count"] = 10
        parent["replies"] = [
            msg(t * 2 + r / 100 + 0.001, people[r % 3], f"reply {t}.{r}", thread_ts=parent["ts"])
            for r in range(10)
        ]
    md = render(facts_for(messages))
    assert md.count("↳") == 3_000 and md.count("💬") == 7_000
    assert md.count("@Bob Baker and `code`") == 7_000


def test_the_draft_check_notices_what_a_reader_would() -> None:
    """tests/drafts.py reads every draft the suite renders; it must catch each defect."""
    facts = story_facts()
    md = render(facts)
    check_draft(facts, md)
    line = next(line for line in md.splitlines() if "h-carol-mention" in line)
    broken = {
        "lost content": md.replace("h-bob-file graph", "h-bob-file"),
        "an id for a name": md.replace("@Bob Baker check", "@U0BOB check"),
        "an escape left visible": md.replace("h-alice-page paging", "h-alice-page paging\\"),
        "a heading from people's text": md.replace(line, line + "\n\n# h-carol heading"),
        "HTML": md.replace(line, line + " <b>bold</b>"),
        "an image": md.replace(line, line + " ![x](https://status.example.com)"),
        "a hidden link": md.replace(line, line + " [status](https://evil.example.com)"),
    }
    for defect, draft in broken.items():
        assert draft != md, defect
        with pytest.raises(AssertionError):
            check_draft(facts, draft)
