"""bot.views.content: a Slack message's whole content, as Markdown and as mrkdwn.

Shapes follow Slack's payloads (see tests/fixtures/real_channel.json for where each comes
from); every Markdown result is read back with a CommonMark/GFM parser."""

from __future__ import annotations

import random
from typing import Any

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from bot.views import content
from bot.views.content import (
    UNKNOWN_APP,
    Names,
    author_of,
    markdown,
    mrkdwn,
    references,
    snapshot,
)
from tests.readable import shape, squash, tokens, visible
from tests.test_text import FRAGMENTS, URL_LIKE

NAMES = Names(
    users={"U1": "Alice Archer", "U2": "Bob *the* Builder"},
    channels={"C1": "ops"},
    usergroups={"S1": "sre"},
    bots={"B9": "Grafana"},
)


def md(message: dict[str, Any]) -> str:
    return "\n".join(markdown(message, NAMES))


def rich(*elements: dict[str, Any]) -> dict[str, Any]:
    return {"user": "U1", "text": "", "blocks": [{"type": "rich_text", "elements": list(elements)}]}


def section(*runs: dict[str, Any]) -> dict[str, Any]:
    return {"type": "rich_text_section", "elements": list(runs)}


def text(value: str, **style: bool) -> dict[str, Any]:
    return {"type": "text", "text": value, **({"style": style} if style else {})}


def block_types(markdown_text: str) -> list[str]:
    return [t.type for t in tokens(markdown_text) if t.nesting == 1 or t.type == "fence"]


def test_text_only_message_is_its_text() -> None:
    message = {"user": "U1", "text": "see <#C1> and <@U2|bob>"}
    assert md(message) == "see #ops and @Bob \\*the\\* Builder"
    assert mrkdwn(message) == message["text"]


def test_blocks_win_over_the_text_fallback() -> None:
    message = {
        "bot_id": "B1",
        "text": "CircleCI job failed.",
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": "Job Failed. :red_circle:"}},
            {
                "type": "section",
                "fields": [
                    {"type": "mrkdwn", "text": "*Job*: build"},
                    {"type": "mrkdwn", "text": "*Mentions*: <!subteam^S7|@release>"},
                ],
                "accessory": {"type": "image", "image_url": "https://x", "alt_text": "logo"},
            },
            {"type": "context", "elements": [{"type": "mrkdwn", "text": "run <https://ci/1|#1>"}]},
            {"type": "actions", "elements": [{"type": "button", "text": {"type": "plain_text"}}]},
            {"type": "image", "image_url": "https://x/g.png", "alt_text": "error graph"},
        ],
    }
    out = md(message)
    assert "CircleCI job failed." not in out
    assert squash(visible(out)) == (
        "Job Failed. :red_circle: Job: build Mentions: @release run #1 🖼️ error graph"
    )
    assert out.splitlines()[0] == "**Job Failed. :red\\_circle:**".replace("\\_", "_")
    assert shape(out).links[0].href == "https://ci/1"


def test_rich_text_lists_quotes_and_code() -> None:
    message = rich(
        section(text("plan:\n")),
        {
            "type": "rich_text_list",
            "style": "bullet",
            "indent": 0,
            "elements": [section(text("# one")), section(text("two ")), section()],
        },
        {
            "type": "rich_text_list",
            "style": "ordered",
            "indent": 1,
            "offset": 2,
            "elements": [section(text("three"))],
        },
        {
            "type": "rich_text_list",
            "style": "bullet",
            "indent": 3,
            "elements": [section(text("deep"))],
        },
        {"type": "rich_text_quote", "elements": [text("said "), {"type": "user", "user_id": "U1"}]},
        {
            "type": "rich_text_preformatted",
            "elements": [text("a `b` ```c```\n"), {"type": "link", "url": "http://x.io/y"}],
        },
    )
    out = md(message)
    assert out.split("\n") == [
        "plan:",
        "",
        "- \\# one",
        "- two",
        "-",
        "  3. three",
        "     - deep",
        "",
        "> said @Alice Archer",
        "",
        "````",
        "a `b` ```c```",
        "http://x.io/y",
        "````",
    ]
    assert block_types(out).count("bullet_list_open") == 2
    assert "ordered_list_open" in block_types(out) and "blockquote_open" in block_types(out)
    assert shape(out).code == ["a `b` ```c```\nhttp://x.io/y\n"]
    assert mrkdwn(message).split("\n") == [
        "plan:",
        "• # one",
        "• two ",
        "• ",
        "    3. three",
        "            • deep",
        "&gt; said <@U1>",
        "```a `b` ```c```",
        "<http://x.io/y>```",
    ]


def test_rich_text_styles_links_mentions_emoji_and_dates() -> None:
    message = rich(
        section(
            text("Deploy "),
            text("failed", bold=True),
            text(" on "),
            {"type": "channel", "channel_id": "C1"},
            text(", cc "),
            {"type": "usergroup", "usergroup_id": "S1"},
            text(" "),
            {"type": "broadcast", "range": "channel"},
            text(" "),
            {"type": "emoji", "name": "flag-us", "unicode": "1f1fa-1f1f8"},
            {"type": "emoji", "name": "custom-thing"},
            text(" at "),
            {"type": "date", "timestamp": 1714564800, "format": "{date_short}"},
            text(" "),
            {"type": "link", "url": "https://x.io/a_b", "text": "the *doc*"},
            text(" "),
            text("ls -la", code=True),
            text(" "),
            text("gone", strike=True, italic=True),
        )
    )
    out = md(message)
    assert out == (
        "Deploy **failed** on #ops, cc @sre @channel 🇺🇸:custom-thing: at 2024-05-01 12:00 UTC "
        "[the \\*doc\\*](https://x.io/a_b) `ls -la` *~~gone~~*"
    )
    found = shape(out)
    assert found.emphasis == 3 and found.code == ["ls -la"]
    assert [(link.href, link.text) for link in found.links] == [("https://x.io/a_b", "the *doc*")]


def test_styles_that_would_not_parse_keep_their_words() -> None:
    # "(x)" bold right after a letter: "**" could not open there, so no markers at all.
    message = rich(section(text("a"), text("(x)", bold=True), text("b", italic=True)))
    out = md(message)
    assert squash(visible(out)) == "a(x)b" and "**" not in out
    # Two styles side by side would merge their markers: the second goes plain.
    message = rich(section(text("x "), text("bold", bold=True), text("it", italic=True)))
    out = md(message)
    assert out == "x **bold**it" and squash(visible(out)) == "x boldit"
    # Style around spaces: the spaces stay outside the markers.
    assert md(rich(section(text("a"), text(" b ", bold=True), text("c")))) == "a **b** c"


def test_alert_in_attachments() -> None:
    message = {
        "subtype": "bot_message",
        "bot_id": "B9",
        "text": "",
        "attachments": [
            {
                "pretext": "New alert for <@U1>",
                "author_name": "Alertmanager",
                "title": "[FIRING:2] DiskFull",
                "title_link": "https://am.example.com/#/alerts",
                "text": "*host*: db-1\n&gt; full",
                "fields": [
                    {"title": "severity", "value": "```critical```", "short": True},
                    {"title": "", "value": "no title"},
                ],
                "footer": "prom",
                "ts": "1714564800",
                "actions": [{"type": "button", "text": "Silence"}],
            },
            {"fallback": "only a fallback"},
        ],
    }
    out = md(message)
    assert author_of(message, NAMES) == "Grafana"
    assert out.split("\n") == [
        "New alert for @Alice Archer",
        "",
        "> **Alertmanager**",
        ">",
        "> **[[FIRING:2] DiskFull](https://am.example.com/#/alerts)**",
        ">",
        "> **host**: db-1",
        "> > full",
        ">",
        "> **severity:**",
        "> ```",
        "> critical",
        "> ```",
        ">",
        "> no title",
        ">",
        "> prom · 2024-05-01 12:00:00 UTC",
        "",
        "> only a fallback",
    ]
    assert "Silence" not in out
    # A webhook's message names no app of its own: bots.info will.
    assert references(message).users == {"U1"} and references(message).bots == {"B9"}


def test_forwarded_and_linked_messages() -> None:
    forwarded = {
        "user": "U2",
        "text": "fyi",
        "attachments": [
            {
                "is_share": True,
                "author_id": "U1",
                "author_subname": "alice",
                "ts": "1714561200.000100",
                "text": "the original",
                "files": [{"name": "a.png", "title": "graph"}],
            }
        ],
    }
    assert md(forwarded).split("\n") == [
        "fyi",
        "",
        "> ↪️ Forwarded message from **Alice Archer**, 2024-05-01 11:00:00 UTC",
        ">",
        "> the original",
        "> 📎 graph",
    ]
    assert references(forwarded).users == {"U1", "U2"}
    linked = {
        "user": "U2",
        "text": "<https://acme.slack.com/archives/C1/p1>",
        "attachments": [
            {"is_msg_unfurl": True, "author_name": "someone else", "ts": "x", "text": "hi"}
        ],
    }
    assert "> ↪️ Linked message from **someone else**" in md(linked)
    assert mrkdwn(forwarded).split("\n") == [
        "fyi",
        "&gt; Forwarded message from <@U1>, 2024-05-01 11:00:00 UTC",
        "&gt; the original",
        "&gt; 📎 graph",
    ]


def test_files_by_title() -> None:
    message = {
        "user": "U1",
        "text": "",
        "files": [
            {"name": "x.png"},
            {"name": "Untitled", "title": "Runbook", "filetype": "quip"},
            {"name": "Untitled", "filetype": "canvas"},
            {"mode": "hidden_by_limit"},
            {"mode": "file_access", "file_access": "check_file_info"},
        ],
    }
    assert md(message) == (
        "📎 x.png · 📝 Runbook · 📝 Untitled · 📎 a file no longer available · 📎 a file"
    )


def test_authors_are_names() -> None:
    assert author_of({"user": "U1"}, NAMES) == "Alice Archer"
    assert author_of({"user": "U7", "user_profile": {"display_name": "Sam"}}, NAMES) == "Sam"
    assert author_of({"user": "U7"}, NAMES) == "Unknown person"
    assert author_of({"bot_id": "B9", "username": "deploys"}, NAMES) == "deploys"
    assert author_of({"bot_id": "B9", "bot_profile": {"name": "GitHub"}}, NAMES) == "GitHub"
    assert author_of({"bot_id": "B9"}, NAMES) == "Grafana"
    assert author_of({"bot_id": "B8", "user": "U1"}, NAMES) == "Alice Archer"
    assert author_of({"bot_id": "B8"}, NAMES) == UNKNOWN_APP
    assert references({"bot_id": "B8", "text": ""}).bots == {"B8"}
    assert references({"bot_id": "B8", "username": "x", "text": ""}).bots == set()


def test_references_leave_out_what_carries_its_own_label() -> None:
    found = references(
        {
            "user": "U1",
            "text": "<@U2|b> <#C1> <#C2|two> <!subteam^S1> <!subteam^S2|@two> <!here>",
            "blocks": [],
        }
    )
    assert (found.users, found.channels, found.usergroups) == ({"U1", "U2"}, {"C1"}, {"S1"})


def test_snapshot_keeps_what_shows() -> None:
    message = {
        "type": "message",
        "user": "U1",
        "ts": "1.000001",
        "text": "x",
        "client_msg_id": "abc",
        "reactions": [{"name": "pushpin"}],
        "files": [{"id": "F1", "name": "a", "preview": "lots of text", "url_private": "https://"}],
        "attachments": [{"text": "t", "actions": [{}], "image_url": "https://", "is_share": True}],
    }
    assert snapshot(message) == {
        "type": "message",
        "user": "U1",
        "ts": "1.000001",
        "text": "x",
        "files": [{"id": "F1", "name": "a"}],
        "attachments": [{"text": "t", "is_share": True}],
    }
    assert md(snapshot(message)) == md(message)


STYLES = st.fixed_dictionaries(
    {},
    optional={
        "bold": st.booleans(),
        "italic": st.booleans(),
        "strike": st.booleans(),
        "code": st.booleans(),
    },
)
WORDS = st.sampled_from([*FRAGMENTS, "(x)", "a.", "é", "🔥", "  ", "word"]) | st.text(max_size=6)
RUNS = st.lists(
    st.one_of(
        st.builds(lambda t, s: {"type": "text", "text": t, "style": s}, WORDS, STYLES),
        st.builds(
            lambda t, s: {"type": "link", "url": "https://example.com/p", "text": t, "style": s},
            WORDS,
            STYLES,
        ),
        st.just({"type": "user", "user_id": "U2"}),
        st.just({"type": "emoji", "name": "fire", "unicode": "1f525"}),
    ),
    min_size=1,
    max_size=12,
)


@settings(max_examples=300, deadline=None)
@given(RUNS)
def test_rich_text_reads_as_slack_shows_it(runs: list[dict[str, Any]]) -> None:
    """Any mix of styled text, links and mentions reads as its words: styles either work
    or are left out, and nothing becomes a heading, list, HTML, image or stray link."""
    shown = "".join(
        "@Bob *the* Builder"
        if run["type"] == "user"
        else "🔥"
        if run["type"] == "emoji"
        else run["text"]
        if run["type"] == "text" or run["text"].strip()
        else run["url"]
        for run in runs
    )
    assume(not URL_LIKE.search(shown))
    out = md(rich(section(*runs)))
    found = shape(out)
    assert found.headings == [] and found.html == [] and found.images == 0, out
    assert {link.href for link in found.links} <= {"https://example.com/p"}, out
    kinds = {t.type for t in tokens(out)} - {"paragraph_open", "paragraph_close", "inline"}
    assert kinds == set(), (out, kinds)
    assert squash(visible(out)) == squash(shown), out


def test_plain_lines_take_the_short_way_to_the_same_markdown() -> None:
    """Most of what people write is one plain line; the postmortem copies it without the
    full conversion. Both ways give the same lines, for a typed message (one rich-text
    section) and for one an integration posted as text."""
    rng = random.Random(20261206)
    names = content.Names(users={"U0ALICE": "Alice"}, channels={}, usergroups={}, bots={})
    plain = "abcXYZéß 0123456789 ,.;:'?/()@#%=+\"-"
    anything = plain + "*_~`<>&[]|!$\\\t\n>"
    short = 0
    for n in range(3000):
        alphabet = plain if n % 2 else anything
        text = rng.choice("aXé1-*>#") + "".join(
            rng.choice(alphabet) for _ in range(rng.randint(0, 40))
        )
        typed = {
            "type": "message",
            "user": "U0ALICE",
            "text": text,
            "ts": "1700000000.000100",
            "blocks": [
                {
                    "type": "rich_text",
                    "block_id": "Zx1",
                    "elements": [
                        {"type": "rich_text_section", "elements": [{"type": "text", "text": text}]}
                    ],
                }
            ],
        }
        posted = {"type": "message", "user": "U0ALICE", "text": text, "ts": "1700000000.000200"}
        for message in (typed, posted):
            full = content._Markdown(names).parts(content.parts(message))
            assert content.Writer(names).markdown(message) == full, message
            short += content.plain_text(message) is not None
    # Both ways were really compared.
    assert 1000 < short < 6000
