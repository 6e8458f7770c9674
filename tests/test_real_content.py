"""Real Slack content, end to end: a channel built from real payload shapes
(tests/fixtures/real_channel.json) is compiled by the running bot (`/incident postmortem`
over signed HTTP), and the draft is read as a person reads it (a CommonMark/GFM parser)."""

from __future__ import annotations

import asyncio
import copy
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from bot.model.tables import Incident
from tests.readable import shape, shows_itself, squash, tokens, visible
from tests.support import (
    ALICE,
    BOB,
    CAROL,
    GENERAL,
    ROOT,
    Bot,
    channel_of,
    data_of,
    declared,
    entries,
    id_of,
    uploaded,
)

FIXTURE = Path(__file__).parent / "fixtures" / "real_channel.json"
IDS = re.compile(r"\b[UWBCSF]0[A-Z0-9]{2,}\b")


def load(bot: Bot, channel: str) -> dict[str, dict[str, Any]]:
    """Post the fixture's messages into ``channel``, in order; the stored messages by key."""
    fake = bot.fake
    posted: dict[str, dict[str, Any]] = {}
    for spec in json.loads(FIXTURE.read_text(encoding="utf-8"))["messages"]:
        spec = {k: v for k, v in spec.items() if not k.startswith("_")}
        key = spec.pop("key")
        thread = spec.pop("thread", None)
        no_user = spec.pop("no_user", False)
        root = spec.pop("root", False)
        user, text = spec.pop("user", ""), spec.pop("text")
        thread_ts = posted[thread]["ts"] if thread else None
        msg = fake.post_as_user(channel, user or "", text, thread_ts=thread_ts, **spec)
        stored = fake.channels[channel].find(msg["ts"])
        assert stored is not None
        if no_user:
            stored.pop("user")
        if root and thread_ts:
            parent = fake.message(channel, thread_ts)
            assert parent is not None
            stored["root"] = copy.deepcopy(parent)
        posted[key] = stored
    return posted


def workspace(bot: Bot) -> None:
    """The people, apps, channels and user groups the fixture names."""
    fake = bot.fake
    fake.add_user("U0GITHUB", "github", real_name="GitHub", is_bot=True)
    # Slack Connect people Slack will not show the bot (users.info: user_not_visible).
    fake.invisible_users.update({"U0EXT", "U0EXT2"})
    fake.add_bot("B0GRAFANA", "Grafana")
    fake.add_channel("ops", id="C0OPS", members=[ALICE])
    fake.add_channel("secret-war-room", id="C0SECRET", is_private=True, members=[ALICE])
    fake.add_usergroup("sre-team", name="SRE", id="S0SRE", users=[BOB])
    fake.add_usergroup("oncall", id="S0ONCALL", users=[CAROL])


def section(md: str, title: str) -> str:
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", md, re.M | re.S)
    assert match is not None, title
    return match[1]


def item_of(timeline: str, marker: str) -> str:
    """The top-level timeline item (with what is nested in it) whose text holds ``marker``."""
    items = re.split(r"\n(?=- )", timeline)
    found = [item for item in items if marker in item]
    assert len(found) == 1, (marker, found)
    return found[0]


def block_types(md: str) -> list[str]:
    return [t.type for t in tokens(md) if t.nesting == 1 or t.type in ("fence", "code_block")]


async def compile_real_channel(bot: Bot) -> tuple[Incident, dict[str, dict[str, Any]], str]:
    workspace(bot)
    inc = await declared(bot, "declare sev2 Checkout 5xx")
    ch = channel_of(inc)
    posted = load(bot, ch)
    # The alert is pinned with the reaction, the GitHub note and the forward with the
    # shortcut; then GitHub's message is deleted: its entry keeps what it showed.
    await bot.slack.reaction_added(user=BOB, channel=ch, ts=posted["alert"]["ts"])
    for key in ("github", "forward"):
        await bot.slack.message_shortcut(
            callback_id="add_to_timeline", user=ALICE, channel=ch, message_ts=posted[key]["ts"]
        )
    await bot.settled()
    bot.fake.channels[ch].history.remove(posted["github"])
    await bot.ask("postmortem", user=ALICE, channel=ch)
    [draft] = uploaded(bot)
    return inc, posted, draft


async def test_real_channel_compiles_to_a_draft_a_person_can_read(
    bot: Bot, database_url: str
) -> None:
    inc, _, draft = await compile_real_channel(bot)
    ch = channel_of(inc)
    timeline = section(draft, "Timeline")
    seen = squash(visible(draft))

    # Names, never ids: no user, app, channel, group or file id anywhere in the draft.
    assert IDS.findall(draft) == []

    # 1. An alert in attachments, pinned: under the app's name (bots.info), with its
    # title as a link, its text, fields and footer, quoted as Slack shows it beside a bar.
    alert = item_of(timeline, "HighErrorRate")
    assert "📌 Grafana (pinned by Bob Baker)" in alert
    assert shape(alert).links[0].href.startswith("https://grafana.example.com/alerting/list")
    alert_text = squash(visible(alert))
    for shown in (
        "[FIRING:1] HighErrorRate checkout (prod)",
        "Summary: 5xx rate is 12% on checkout-api",
        "Runbook: checkout 5xx",
        "severity: critical",
        "instance: checkout-api-7f9c",
        "Grafana v10.2.0 · 2024-05-01 12:00:00 UTC",
        "↳",
        "Bob Baker: ack, looking",
    ):
        assert shown in alert_text, shown
    assert "blockquote_open" in block_types(alert)

    # The GitHub note, added with the shortcut and deleted since, keeps what it showed.
    github = item_of(timeline, "Revert payments_v2 rollout")
    assert "📌 GitHub (pinned by Alice Archer)" in github
    assert "Pull request opened by alice" in squash(visible(github))
    assert "Reverts the 02:10 deploy" in github

    # 2. A forwarded message: who wrote it and when, and what it said.
    forward = item_of(timeline, "Saw the same 502s")
    assert "Forwarded message from Bob Baker, 2024-05-01 11:00:00 UTC" in squash(visible(forward))
    assert "📌 Carol Chen (pinned by Alice Archer)" in forward

    # 3. A blocks-only rich-text message: paragraphs, a real list with a nested ordered
    # list, a quote, a code block, mentions by name, emoji.
    rich = item_of(timeline, "Rollback plan for")
    kinds = block_types(rich)
    assert kinds.count("bullet_list_open") == 2  # the timeline's item and the message's list
    assert "ordered_list_open" in kinds and "blockquote_open" in kinds and "fence" in kinds
    rich_text = squash(visible(rich))
    for shown in (
        "Rollback plan for #ops:",
        "drain checkout-api-7f9c",
        "turn off payments_v2",
        "watch the checkout dashboard",
        "if 5xx stays over 5%, @Bob Baker pages @sre-team @here",
        "kubectl rollout undo deploy/checkout-api https://runbooks.example.com/rollback",
        "# not a heading 🔥 see cities_120 in #rich-text-blocks",
    ):
        assert shown in rich_text, shown
    assert "**payments\\_v2**" not in rich and "**payments_v2**" in rich
    assert "`checkout-api-7f9c`" in rich
    assert "[checkout dashboard](https://grafana.example.com/d/checkout)" in rich
    assert "  ```\n  kubectl rollout undo deploy/checkout-api\n" in rich

    # 4. An edited message is marked; 5. a deleted parent keeps its replies under a stub.
    assert "Bob Baker *(edited)*: Error rate **back under 1%** after the rollback" in timeline
    tomb = item_of(timeline, "thread under a deleted message")
    assert "Carol Chen: the deleted question was about the token cache" in tomb
    # 6. A reply also sent to the channel shows once, in its thread.
    assert draft.count("Flag flipped back; payments recovering") == 1
    owner = item_of(timeline, "Who owns the payments flag?")
    assert "↳" in owner and "Flag flipped back" in owner

    # 7. Files by title; a canvas by its title, not "Untitled"; a deleted file and a file
    # from another organisation said plainly.
    files = item_of(timeline, "exports and notes")
    assert "📎 p99 latency export · 📝 Checkout incident notes · 📎 a file no longer available" in (
        files
    )
    assert "Untitled" not in draft
    external = item_of(timeline, "We see the errors on our side too")
    assert "💬 Sam at Partner: We see the errors on our side too\n  📎 a file" in external

    # 8. Mentions with and without labels, channels the bot may not see, user groups,
    # special mentions and dates; a person Slack will not show gets a neutral label.
    mentions = squash(visible(item_of(timeline, "paging @oncall")))
    assert (
        "@Bob Baker and @Alice Archer see #general and #ops, not #private-channel; "
        "paging @oncall and @sre-team @here @channel since May 1st, 2024 at 12:00 PM UTC; "
        "asked @Unknown person"
    ) in mentions

    # 9. Code shows as Slack shows it: link tokens unwrapped, entities decoded, no escapes.
    assert (
        "```\nwget http://downloads.example.io/mesos.egg\n"
        "curl -X POST https://api.example.com/v1/flags?name=payments_v2&state=off\n```"
    ) in timeline.replace("\n  ", "\n")
    assert "call `28919.8689279` if paged" in timeline

    # Readable Markdown: people's text never becomes a heading, list, link, image or HTML,
    # and stays free of escapes that change nothing.
    markup = item_of(timeline, "not a heading\n")
    found = shape(markup)
    assert found.html == [] and found.images == 0
    # Only URLs are links, each shown as itself: "[click](…)" and "![img](…)" stay text.
    assert all(shows_itself(link) for link in found.links)
    assert "https://status.example.com" in [link.href for link in found.links]
    assert block_types(markup).count("bullet_list_open") == 1  # the timeline's own
    assert (
        "# not a heading - not a list [click](http://evil.example.com) "
        "![img](http://evil.example.com/x.png) <script>alert(1)</script> a & b, 2*3*4, "
        "snake_case &copy; status: https://status.example.com"
    ) in squash(visible(markup))
    for noise in ("\\:", "cities\\_", "snake\\_", "\\#rich", "&#32;", "&gt;", "\\|", "\\."):
        assert noise not in draft, noise
    assert "snake_case" in markup and "cities_120" in rich

    # Housekeeping left out; renames and going private on one line each.
    for gone in (
        "has joined",
        "posting permissions",
        "channel description",
        "added an integration",
        "Slackbot",
    ):
        assert gone not in draft, gone
    assert "Alice Archer *renamed the channel from #inc-1-checkout-latency to " in timeline
    assert "#inc-1-checkout-5xx*" in timeline
    assert "Alice Archer *made the channel private*" in timeline

    # Participants are people, each once: no app, no Slackbot, no one only mentioned.
    people = section(draft, "Participants").strip().splitlines()
    assert [line.split(" — ")[0] for line in people] == [
        "- Alice Archer",
        "- Bob Baker",
        "- Carol Chen",
        "- Sam at Partner",
    ]

    assert "Saw the same 502s on the status page yesterday" in seen

    # History took the fewest calls; names were looked up once each.
    fake = bot.fake
    assert len(fake.calls_to("conversations.history")) == 1
    threads = [m for m in fake.messages(ch) if m.get("reply_count")]
    assert len(fake.calls_to("conversations.replies")) == len(threads) + 1  # + the pin's fetch
    assert len(fake.calls_to("bots.info")) == 1
    assert len(fake.calls_to("usergroups.list")) == 1
    assert sorted(c.args["channel"] for c in fake.calls_to("conversations.info")) == [
        "C0OPS",
        "C0SECRET",
    ]
    asked = [c.args["user"] for c in fake.calls_to("users.info")]
    assert len(asked) == len(set(asked))

    # The same draft, byte for byte, when compiled again: nothing new is posted, no name is
    # looked up again, and the stored draft is what `incident-bot postmortem` prints.
    calls = len(fake.calls)
    told = await bot.ask("postmortem", user=ALICE, channel=ch)
    assert any("unchanged since version 1" in t.get("text", "") for t in told), told
    assert uploaded(bot) == [draft]
    lookups = ("users.info", "bots.info", "conversations.info", "usergroups.list")
    assert [c.method for c in fake.calls[calls:] if c.method in lookups] == []
    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "bot", "postmortem", inc.ref],
        env={"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT), "DATABASE_URL": database_url},
        cwd=ROOT.parent,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == draft

    # The draft reads as Slack showed each message, line by line: tests/drafts.py checks
    # every draft the suite renders when its test ends, this one too, compiled again.
    assert await bot.app.ops.postmortems.draft(id_of(inc)) == draft


async def test_pinned_content_is_kept_on_the_timeline(bot: Bot) -> None:
    """A pin or the shortcut keeps what the message showed, not only its text field."""
    workspace(bot)
    inc = await declared(bot)
    posted = load(bot, channel_of(inc))
    await bot.slack.reaction_added(user=BOB, channel=channel_of(inc), ts=posted["alert"]["ts"])
    await bot.slack.message_shortcut(
        callback_id="add_to_timeline",
        user=ALICE,
        channel=channel_of(inc),
        message_ts=posted["rich"]["ts"],
    )
    await bot.settled()
    alert, rich = await entries(bot, inc, "message")
    assert data_of(alert)["user"] == "B0GRAFANA" and alert.actor == BOB
    assert "[FIRING:1] HighErrorRate checkout (prod)" in alert.text
    assert "5xx rate is 12%" in alert.text and "severity" in alert.text
    assert data_of(alert)["message"]["attachments"][0]["fields"][0]["value"] == "critical"
    assert "• drain `checkout-api-7f9c`" in rich.text
    assert "<@U0BOB>" in rich.text and "<!subteam^S0SRE>" in rich.text
    assert data_of(rich)["message"]["blocks"] == posted["rich"]["blocks"]


async def test_a_lookup_that_fails_never_aborts_the_draft(bot: Bot) -> None:
    """Slack refusing or failing a name lookup leaves a neutral label, and the draft is
    still posted."""
    inc = await declared(bot)
    ch = channel_of(inc)
    bot.fake.invisible_users.add("U0EXT")
    bot.fake.post_as_user(ch, "U0EXT", "from a partner, <@U0GONE2> and <#C0NOWHERE>")
    app = bot.fake.post_as_user(ch, "", "deploy done", bot_id="B0NOBODY", subtype="bot_message")
    bot.fake.post_as_user(ch, BOB, "paging <!subteam^S0X> in <#C0OPS2>")
    await bot.slack.message_shortcut(
        callback_id="add_to_timeline", user=ALICE, channel=ch, message_ts=app["ts"]
    )
    await bot.settled()
    bot.fake.fail("usergroups.list", error="missing_scope")
    bot.fake.fail("conversations.info", error="internal_error", times=20)
    told = await bot.ask("postmortem", user=ALICE, channel=ch)
    assert any("Posted version 1" in t.get("text", "") for t in told), told
    [draft] = uploaded(bot)
    timeline = section(draft, "Timeline")
    assert "💬 Unknown person 1: from a partner, @Unknown person 2 and #unknown-channel" in (
        timeline
    )
    assert "paging @unknown-group in #unknown-channel" in timeline
    assert "📌 An app (pinned by Alice Archer): deploy done" in timeline
    assert IDS.findall(draft) == []
    assert GENERAL not in draft
