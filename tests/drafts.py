"""Every postmortem draft the test suite renders, read back as a person reads it.

An autouse fixture (imported by conftest.py) records each draft the renderer produces in a
test, with the facts it came from, and when the test ends parses each draft with a
CommonMark/GFM parser (tests/readable.py) and checks:

- its only headings are the draft's own (the title and the fixed sections), and it has no
  HTML and no image: people's text never becomes any of them;
- every link is either a bare URL shown as itself or one Slack showed as a link;
- what Slack showed of each message the draft shows (its text, blocks, attachments, files,
  with mentions as names) is there to read, line by line: nothing lost, no id instead of a
  name, no escape left visible. Emphasis markers and whitespace are not compared.

"What Slack showed" is worked out here from the message itself, independently of the code
that writes the draft: as it was when it arrived, before the compile let go of what the
render no longer needed of it.
"""

from __future__ import annotations

import copy
import dataclasses
import re
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from bot.views import postmortem as render_module
from bot.views.postmortem import PostmortemFacts
from tests.readable import PARSER, shape, shows_itself, squash, visible

SECTIONS = [
    "Summary",
    "Impact",
    "Severity history",
    "Roles",
    "Key times",
    "Detection",
    "Timeline",
    "Status updates",
    "Follow-ups",
    "Participants",
    "Root cause",
    "Contributing factors",
    "What went well",
    "What went badly",
    "Lessons",
]
# Checking every message of a huge channel would take minutes; a spread sample will do.
SAMPLE = 300
TOKEN = re.compile(r"<([^<>\n]*)>")
LINK = re.compile(r"<((?:https?|mailto):[^|<>\s]*)(?:\|[^<>]*)?>", re.IGNORECASE)
MARKS = re.compile(r"[*_~`]")
HOUSEKEEPING_OK = {None, "thread_broadcast", "file_share", "me_message"}


def unescape(text: str) -> str:
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


class Slack:
    """What Slack shows for a message, as plain text lines."""

    def __init__(self, facts: PostmortemFacts) -> None:
        self.facts = facts

    def user(self, uid: str, label: str = "") -> str:
        return self.facts.names.get(uid) or label or "Unknown person"

    def token(self, body: str) -> str:
        target, _, label = body.partition("|")
        label = unescape(label)
        if target.startswith("@"):
            return "@" + self.user(target[1:], label)
        if target.startswith("#"):
            return "#" + (self.facts.channels.get(target[1:]) or label or "private-channel")
        if target.startswith("!subteam^"):
            group = target.removeprefix("!subteam^")
            return "@" + (self.facts.usergroups.get(group) or label.lstrip("@") or "unknown-group")
        if target.startswith("!date"):
            return label
        if target.startswith("!"):
            return label or "@" + target[1:]
        return label or unescape(target)

    def mrkdwn(self, text: str) -> list[str]:
        lines = []
        for line in text.split("\n"):
            for marker in ("&gt;&gt;&gt;", "&gt;"):
                if line.startswith(marker):
                    line = line[len(marker) :]
                    break
            lines.append(unescape(TOKEN.sub(lambda m: self.token(m[1]), line)))
        return lines

    def element(self, el: Mapping[str, Any]) -> str:
        kind = el.get("type")
        if kind == "text":
            return str(el.get("text", ""))
        if kind == "link":
            return str(el.get("text") or el.get("url", ""))
        if kind == "user":
            return "@" + self.user(el["user_id"])
        if kind == "channel":
            return "#" + (self.facts.channels.get(el["channel_id"]) or "private-channel")
        if kind == "usergroup":
            return "@" + (self.facts.usergroups.get(el["usergroup_id"]) or "unknown-group")
        if kind == "broadcast":
            return "@" + str(el.get("range"))
        if kind == "emoji":
            code = str(el.get("unicode") or "")
            if code:
                return "".join(chr(int(c, 16)) for c in code.split("-"))
            return f":{el.get('name')}:"
        return str(el.get("fallback") or el.get("text") or "")

    def runs(self, elements: Any) -> str:
        return "".join(self.element(e) for e in elements or ())

    def text_object(self, obj: Any) -> list[str]:
        if not isinstance(obj, Mapping) or not isinstance(obj.get("text"), str):
            return []
        return self.mrkdwn(obj["text"]) if obj.get("type") == "mrkdwn" else obj["text"].split("\n")

    def blocks(self, blocks: Any) -> list[str]:
        out: list[str] = []
        for block in blocks or ():
            kind = block.get("type")
            if kind == "rich_text":
                for part in block.get("elements") or ():
                    items = part.get("elements") or ()
                    if part.get("type") == "rich_text_list":
                        for item in items:
                            out += self.runs(item.get("elements")).split("\n")
                    else:
                        out += self.runs(items).split("\n")
            elif kind in ("section", "header"):
                out += self.text_object(block.get("text"))
                for item in block.get("fields") or ():
                    out += self.text_object(item)
            elif kind == "context":
                for item in block.get("elements") or ():
                    out += self.text_object(item)
        return out

    def files(self, files: Any) -> list[str]:
        out = []
        for f in files or ():
            title = f.get("title") or f.get("name")
            if title and f.get("mode") not in ("tombstone", "hidden_by_limit"):
                out.append(str(title))
        return out

    def attachment(self, att: Mapping[str, Any]) -> list[str]:
        if att.get("is_share") or att.get("is_msg_unfurl"):
            shown = []
            for shared in att.get("message_blocks") or ():
                shown += self.blocks((shared.get("message") or {}).get("blocks"))
            if not shown:
                shown = self.mrkdwn(str(att.get("text") or ""))
            return shown + self.files(att.get("files"))
        out: list[str] = []
        for key in ("pretext", "title", "text", "footer"):
            if isinstance(att.get(key), str):
                out += self.mrkdwn(att[key])
        for item in att.get("fields") or ():
            out += [str(item.get("title") or ""), *self.mrkdwn(str(item.get("value") or ""))]
        out += self.blocks(att.get("blocks")) + self.files(att.get("files"))
        return out

    def message(self, msg: Mapping[str, Any]) -> list[str]:
        shown = self.blocks(msg.get("blocks"))
        if not any(line.strip() for line in shown):
            shown = self.mrkdwn(str(msg.get("text") or ""))
        for att in msg.get("attachments") or ():
            shown += self.attachment(att)
        return shown + self.files(msg.get("files"))


def pinned(facts: PostmortemFacts) -> set[str]:
    return {
        str((e.data or {}).get("ts"))
        for e in facts.timeline
        if e.kind == "message" and (e.data or {}).get("ts")
    }


def shown_messages(facts: PostmortemFacts) -> Iterator[Mapping[str, Any]]:
    """People's messages, and apps' messages someone pinned: what a draft shows."""
    pins = pinned(facts)
    for top in facts.messages:
        for msg in [top, *(top.get("replies") or ())]:
            subtype = msg.get("subtype")
            mine = msg.get("user") == facts.bot_user_id or (
                facts.bot_id is not None and msg.get("bot_id") == facts.bot_id
            )
            if mine or msg.get("hidden"):
                continue
            if msg.get("bot_id") or subtype == "bot_message":
                if msg.get("ts") in pins:
                    yield msg
            elif subtype in HOUSEKEEPING_OK and msg.get("user"):
                yield msg
    for entry in facts.timeline:
        message = (entry.data or {}).get("message")
        if entry.kind == "message" and isinstance(message, Mapping):
            yield message


def slack_links(value: Any) -> Iterator[str]:
    """Every URL Slack shows as a link in a payload: link tokens, rich-text links, titles."""
    if isinstance(value, str):
        for match in LINK.finditer(value):
            yield unescape(match[1])
    elif isinstance(value, Mapping):
        if value.get("type") == "link" and isinstance(value.get("url"), str):
            yield value["url"]
        for key in ("title_link", "title_url"):
            if isinstance(value.get(key), str):
                yield value[key]
        for item in value.values():
            yield from slack_links(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from slack_links(item)


def check_draft(facts: PostmortemFacts, md: str) -> None:
    found = shape(md)
    ref = facts.incident.ref
    assert found.headings[:1] and found.headings[0].startswith(f"{ref}: "), found.headings[:1]
    assert found.headings[1:] == SECTIONS, found.headings
    assert found.html == [], found.html[:3]
    assert found.images == 0
    sources: list[Any] = [facts.messages, [e.text for e in facts.timeline]]
    sources += [(e.data or {}).get("message") for e in facts.timeline]
    allowed = {PARSER.normalizeLink(url) for url in slack_links(sources)}
    for link in found.links:
        assert shows_itself(link) or link.href in allowed, link

    seen = squash(MARKS.sub("", visible(md)))
    slack = Slack(facts)
    messages = list(shown_messages(facts))
    if len(messages) > SAMPLE:
        step = len(messages) / SAMPLE
        messages = [messages[int(i * step)] for i in range(SAMPLE)]
    for msg in messages:
        for line in slack.message(msg):
            expected = squash(MARKS.sub("", line))
            assert expected in seen, (expected, msg.get("ts"))


# A message (kept alive, so its id is not reused) and a copy of it as it arrived.
Arrived = dict[int, tuple[Mapping[str, Any], Mapping[str, Any]]]


def as_arrived(facts: PostmortemFacts, arrived: Arrived) -> PostmortemFacts:
    """The facts with every message whole again, as it was when it arrived."""

    def whole(msg: Mapping[str, Any]) -> dict[str, Any]:
        found = arrived.get(id(msg))
        return dict(found[1] if found is not None and found[0] is msg else msg)

    messages = []
    for top in facts.messages:
        restored = whole(top)
        if top.get("replies"):
            restored["replies"] = [whole(reply) for reply in top["replies"]]
        messages.append(restored)
    return dataclasses.replace(facts, messages=messages)


@pytest.fixture(autouse=True)
def every_draft_reads_as_slack_showed(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Check every draft rendered during a test once the test is done."""
    rendered: list[tuple[PostmortemFacts, str]] = []
    arrived: Arrived = {}
    render = render_module._Renderer.render
    prepare = render_module.Preparer.prepare

    def recording(self: Any) -> str:
        md = render(self)
        rendered.append((self.f, md))
        return md

    def keeping(self: Any, msg: Mapping[str, Any], reply: bool) -> None:
        arrived[id(msg)] = (msg, copy.deepcopy(msg))
        prepare(self, msg, reply)

    monkeypatch.setattr(render_module._Renderer, "render", recording)
    monkeypatch.setattr(render_module.Preparer, "prepare", keeping)
    yield
    for facts, md in rendered:
        check_draft(as_arrived(facts, arrived), md)
