"""A Slack message as a person reads it: its text, blocks, attachments and files.

Slack keeps a message's content in several places. ``text`` is what people type (and,
for apps, often only a notification fallback); ``blocks`` hold what Slack shows when
present: ``rich_text`` (lists, quotes, code, mentions) from people, ``section``,
``header``, ``context`` from apps; ``attachments`` hold integration alerts (pretext,
title, fields, footer) and forwarded messages (``is_share``, with the original author
and time); ``files`` hold uploads and canvases. :func:`parts` reads all of them into one
shape, which is written out as Markdown for the postmortem (:func:`markdown`) or as
Slack mrkdwn for a timeline entry's text (:func:`mrkdwn`). :func:`references` lists the
people, channels, user groups and apps whose names the Markdown needs.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bot.views.text import (
    NOT_PLAIN,
    SlackNames,
    escape,
    markdown_code_block,
    markdown_code_span,
    markdown_escape,
    markdown_link,
    markdown_piece,
    markdown_with_pieces,
    slack_to_markdown,
)

__all__ = [
    "CONTENT_KEYS",
    "UNKNOWN_APP",
    "UNKNOWN_PERSON",
    "Names",
    "References",
    "author_of",
    "is_app",
    "markdown",
    "mrkdwn",
    "parts",
    "profile_name",
    "references",
    "snapshot",
]

Message = Mapping[str, Any]

# What a message shows and who wrote it; a snapshot keeps only these.
CONTENT_KEYS = (
    "type",
    "subtype",
    "ts",
    "user",
    "bot_id",
    "username",
    "bot_profile",
    "user_profile",
    "text",
    "blocks",
    "attachments",
    "files",
    "edited",
    "name",
    "old_name",
)

UNKNOWN_PERSON = "Unknown person"
UNKNOWN_APP = "An app"
_SAFE_URL = re.compile(r"(?:https?|mailto):", re.IGNORECASE)
_TOKEN = re.compile(r"<([@#!])([^<>|\n]*)(\|[^<>\n]*)?>")
_LIST_MARKER = "•"


# ---------------------------------------------------------------------------------------------
# Names


@dataclass(frozen=True)
class Names:
    """Display names for the ids a message refers to. ``users`` also holds the neutral
    label of a person Slack does not show; ``bots`` holds apps by bot id."""

    users: Mapping[str, str] = field(default_factory=dict)
    channels: Mapping[str, str] = field(default_factory=dict)
    usergroups: Mapping[str, str] = field(default_factory=dict)
    bots: Mapping[str, str] = field(default_factory=dict)

    @property
    def slack(self) -> SlackNames:
        return SlackNames(self.users, self.channels, self.usergroups)

    def user(self, user_id: str, label: str = "") -> str:
        return _tidy(self.users.get(user_id) or label) or UNKNOWN_PERSON

    def channel(self, channel_id: str, label: str = "") -> str:
        return self.slack.channel(channel_id, label)

    def usergroup(self, group_id: str, label: str = "") -> str:
        return self.slack.usergroup(group_id, label)


@dataclass
class References:
    """Ids a message mentions whose names must be looked up."""

    users: set[str] = field(default_factory=set)
    channels: set[str] = field(default_factory=set)
    usergroups: set[str] = field(default_factory=set)
    bots: set[str] = field(default_factory=set)

    def update(self, other: References) -> None:
        self.users |= other.users
        self.channels |= other.channels
        self.usergroups |= other.usergroups
        self.bots |= other.bots


def _tidy(name: str) -> str:
    return " ".join(name.split())


def is_app(message: Message) -> bool:
    """Posted by an app or integration rather than a person."""
    return bool(message.get("bot_id")) or message.get("subtype") == "bot_message"


def author_of(message: Message, names: Names) -> str:
    """Who wrote ``message``, as a name: a person by their profile, an app by the name it
    posted under, its bot profile or ``bots.info``; never an id."""
    if is_app(message):
        profile = message.get("bot_profile") or {}
        for name in (
            message.get("username"),
            profile.get("name") if isinstance(profile, Mapping) else None,
            names.bots.get(str(message.get("bot_id") or "")),
            names.users.get(str(message.get("user") or "")),
        ):
            if isinstance(name, str) and _tidy(name):
                return _tidy(name)
        return UNKNOWN_APP
    user = str(message.get("user") or "")
    if user in names.users:
        return _tidy(names.users[user]) or UNKNOWN_PERSON
    return profile_name(message) or UNKNOWN_PERSON


def profile_name(message: Message) -> str:
    """The name in the profile Slack attaches to some messages (exports, Slack Connect)."""
    profile = message.get("user_profile")
    if not isinstance(profile, Mapping):
        return ""
    for key in ("display_name", "real_name", "name"):
        value = profile.get(key)
        if isinstance(value, str) and _tidy(value):
            return _tidy(value)
    return ""


# ---------------------------------------------------------------------------------------------
# The shape of a message's content


@dataclass(frozen=True)
class Run:
    """A piece of rich text: plain or styled text, a link, a mention, an emoji, a date."""

    kind: str
    text: str = ""
    target: str = ""
    bold: bool = False
    italic: bool = False
    strike: bool = False
    code: bool = False

    @property
    def styles(self) -> tuple[bool, bool, bool]:
        return self.bold, self.italic, self.strike


@dataclass(frozen=True)
class Paragraph:
    runs: tuple[Run, ...]


@dataclass(frozen=True)
class Item:
    """One item of a rich-text list; ``level`` 0 is the outermost."""

    runs: tuple[Run, ...]
    ordered: bool
    level: int
    number: int


@dataclass(frozen=True)
class Quote:
    runs: tuple[Run, ...]


@dataclass(frozen=True)
class Code:
    runs: tuple[Run, ...]


@dataclass(frozen=True)
class Mrkdwn:
    """Slack mrkdwn as delivered (escaped), e.g. ``text`` or a section's text."""

    text: str
    strong: bool = False


@dataclass(frozen=True)
class Plain:
    text: str
    strong: bool = False


@dataclass(frozen=True)
class Field:
    title: str
    value: str


@dataclass(frozen=True)
class Forwarded:
    """The head of a forwarded (shared) or linked message: its author and original time."""

    verb: str
    author_id: str
    author_name: str
    ts: str


@dataclass(frozen=True)
class Files:
    """Files by title: (kind, title) with kind "file", "canvas" or "gone"."""

    files: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Attachment:
    """An attachment's body, shown as Slack shows it: beside a bar (a quote)."""

    parts: tuple[Part, ...]


Part = Paragraph | Item | Quote | Code | Mrkdwn | Plain | Field | Forwarded | Files | Attachment


# ---------------------------------------------------------------------------------------------
# Reading a message


def _text_of(obj: Any) -> tuple[str, bool] | None:
    """A text object as (text, is_mrkdwn), or None."""
    if isinstance(obj, Mapping) and isinstance(obj.get("text"), str) and obj["text"].strip():
        return obj["text"], obj.get("type") == "mrkdwn"
    return None


def _text_part(obj: Any, strong: bool = False) -> Part | None:
    found = _text_of(obj)
    if found is None:
        return None
    text, is_mrkdwn = found
    return Mrkdwn(text, strong) if is_mrkdwn else Plain(text, strong)


def _run(kind: str, text: Any, target: Any = "", style: Mapping[str, Any] | None = None) -> Run:
    style = style or {}
    return Run(
        kind,
        str(text or ""),
        str(target or ""),
        bold=bool(style.get("bold")),
        italic=bool(style.get("italic")),
        strike=bool(style.get("strike")),
        code=bool(style.get("code")),
    )


def _runs(elements: Any) -> tuple[Run, ...]:
    out: list[Run] = []
    for el in elements if isinstance(elements, list) else ():
        if not isinstance(el, Mapping):
            continue
        raw_style = el.get("style")
        style: Mapping[str, Any] = raw_style if isinstance(raw_style, Mapping) else {}
        kind = el.get("type")
        if kind == "text":
            out.append(_run("text", el.get("text"), style=style))
        elif kind == "link":
            out.append(_run("link", el.get("text"), el.get("url"), style))
        elif kind in ("user", "channel", "usergroup"):
            out.append(_run(kind, "", el.get(f"{kind}_id"), style))
        elif kind == "broadcast":
            out.append(_run("broadcast", "", el.get("range") or "here", style))
        elif kind == "emoji":
            out.append(_run("emoji", el.get("name"), el.get("unicode")))
        elif kind == "date":
            shown = el.get("fallback") or _when_short(el.get("timestamp"))
            out.append(_run("text", shown, style=style))
        elif kind == "color":
            out.append(_run("text", el.get("value"), style=style))
        else:
            # Newer elements (canvas, file, message mentions…) carry a readable fallback.
            shown = el.get("text") or el.get("fallback") or el.get("name")
            if isinstance(shown, str) and shown:
                out.append(_run("text", shown, style=style))
    return tuple(out)


def _strip_trailing_newlines(runs: tuple[Run, ...]) -> tuple[Run, ...]:
    items = list(runs)
    while items and items[-1].kind == "text" and not items[-1].text.strip("\n"):
        items.pop()
    if items and items[-1].kind == "text" and items[-1].text.endswith("\n"):
        last = items[-1]
        items[-1] = Run(last.kind, last.text.rstrip("\n"), last.target, *last.styles, last.code)
    return tuple(items)


def _rich_text(block: Mapping[str, Any]) -> list[Part]:
    out: list[Part] = []
    for el in block.get("elements") or ():
        if not isinstance(el, Mapping):
            continue
        kind = el.get("type")
        if kind == "rich_text_section":
            runs = _strip_trailing_newlines(_runs(el.get("elements")))
            if runs:
                out.append(Paragraph(runs))
        elif kind == "rich_text_list":
            ordered = el.get("style") == "ordered"
            level = int(el.get("indent") or 0)
            number = int(el.get("offset") or 0)
            for item in el.get("elements") or ():
                if isinstance(item, Mapping):
                    number += 1
                    runs = _strip_trailing_newlines(_runs(item.get("elements")))
                    out.append(Item(runs, ordered, level, number))
        elif kind == "rich_text_quote":
            runs = _strip_trailing_newlines(_runs(el.get("elements")))
            if runs:
                out.append(Quote(runs))
        elif kind == "rich_text_preformatted":
            out.append(Code(_strip_trailing_newlines(_runs(el.get("elements")))))
    return out


def _blocks(blocks: Any) -> list[Part]:
    out: list[Part] = []
    for block in blocks if isinstance(blocks, list) else ():
        if not isinstance(block, Mapping):
            continue
        kind = block.get("type")
        if kind == "rich_text":
            out += _rich_text(block)
        elif kind == "section":
            text = _text_part(block.get("text"))
            if text is not None:
                out.append(text)
            for item in block.get("fields") or ():
                text = _text_part(item)
                if text is not None:
                    out.append(text)
        elif kind == "header":
            text = _text_part(block.get("text"), strong=True)
            if text is not None:
                out.append(text)
        elif kind == "context":
            texts: list[str] = []
            for el in block.get("elements") or ():
                found = _text_of(el)
                if found is not None:
                    texts.append(found[0] if found[1] else escape(found[0]))
            if texts:
                out.append(Mrkdwn(" ".join(texts)))
        elif kind == "image":
            title = _text_of(block.get("title"))
            alt = block.get("alt_text")
            shown = title[0] if title else (alt if isinstance(alt, str) else "")
            if shown.strip():
                out.append(Plain("🖼️ " + shown))
        elif kind == "video":
            title = _text_of(block.get("title"))
            url = block.get("title_url") or block.get("video_url")
            if title and isinstance(url, str) and _SAFE_URL.match(url):
                out.append(Mrkdwn(f"🎬 <{url}|{escape(title[0])}>"))
            elif title:
                out.append(Plain("🎬 " + title[0]))
        elif kind == "markdown":
            # Standard Markdown from an app; shown as text so it cannot restructure the draft.
            text = block.get("text")
            if isinstance(text, str) and text.strip():
                out.append(Plain(text))
    return out


def _when_short(value: Any) -> str:
    try:
        moment = datetime.fromtimestamp(float(value), UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return ""
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def _when(value: Any) -> str:
    try:
        moment = datetime.fromtimestamp(float(value), UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return ""
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _file_parts(files: Any) -> list[Part]:
    shown: list[tuple[str, str]] = []
    for f in files if isinstance(files, list) else ():
        if not isinstance(f, Mapping):
            continue
        if f.get("mode") in ("tombstone", "hidden_by_limit"):
            shown.append(("gone", "a file no longer available"))
            continue
        title = next(
            (
                _tidy(v)
                for v in (f.get("title"), f.get("name"))
                if isinstance(v, str) and _tidy(v) and not (v == "Untitled" and f.get("title"))
            ),
            "",
        )
        canvas = f.get("filetype") in ("quip", "canvas") or f.get("pretty_type") == "Canvas"
        kind = "canvas" if canvas else "file"
        shown.append((kind, title or f"a {kind}"))
    return [Files(tuple(shown))] if shown else []


def _forwarded(att: Mapping[str, Any]) -> list[Part]:
    verb = "Forwarded message" if att.get("is_share") else "Linked message"
    head = Forwarded(
        verb,
        str(att.get("author_id") or ""),
        str(att.get("author_name") or att.get("author_subname") or ""),
        str(att.get("ts") or ""),
    )
    body: list[Part] = []
    for shared in att.get("message_blocks") or ():
        message = shared.get("message") if isinstance(shared, Mapping) else None
        if isinstance(message, Mapping):
            body += _blocks(message.get("blocks"))
    if not body and isinstance(att.get("text"), str) and att["text"].strip():
        body.append(Mrkdwn(att["text"]))
    body += _file_parts(att.get("files"))
    if not body and isinstance(att.get("fallback"), str) and att["fallback"].strip():
        body.append(Plain(att["fallback"]))
    return [Attachment((head, *body))]


def _attachment(att: Mapping[str, Any]) -> list[Part]:
    if att.get("is_share") or att.get("is_msg_unfurl"):
        return _forwarded(att)
    out: list[Part] = []
    pretext = att.get("pretext")
    if isinstance(pretext, str) and pretext.strip():
        out.append(Mrkdwn(pretext))
    body: list[Part] = []
    author = att.get("author_name") or att.get("service_name")
    if isinstance(author, str) and author.strip():
        sub = att.get("author_subname")
        shown = f"{author} ({sub})" if isinstance(sub, str) and sub.strip() else author
        body.append(Plain(shown, strong=True))
    title = att.get("title")
    if isinstance(title, str) and title.strip():
        link = att.get("title_link")
        if isinstance(link, str) and _SAFE_URL.match(link) and "<" not in title:
            body.append(Mrkdwn(f"<{link}|{title}>", strong=True))
        else:
            body.append(Mrkdwn(title, strong=True))
    text = att.get("text")
    if isinstance(text, str) and text.strip():
        body.append(Mrkdwn(text))
    for item in att.get("fields") or ():
        if isinstance(item, Mapping):
            name, shown = str(item.get("title") or ""), str(item.get("value") or "")
            if name.strip() or shown.strip():
                body.append(Field(name, shown))
    body += _blocks(att.get("blocks"))
    footer = att.get("footer")
    when = _when(att.get("ts")) if att.get("ts") else ""
    foot = [s for s in (footer if isinstance(footer, str) else "", escape(when)) if s.strip()]
    if foot:
        body.append(Mrkdwn(" · ".join(foot)))
    body += _file_parts(att.get("files"))
    if not body:
        for key in ("fallback", "from_url"):
            value = att.get(key)
            if isinstance(value, str) and value.strip():
                body.append(Plain(value))
                break
    if body:
        out.append(Attachment(tuple(body)))
    return out


def parts(message: Message) -> list[Part]:
    """What ``message`` shows, in order: its blocks (or its text when it has none that
    show anything), its attachments, its files."""
    out = _blocks(message.get("blocks"))
    text = message.get("text")
    if not out and isinstance(text, str) and text.strip():
        out.append(Mrkdwn(text))
    for att in message.get("attachments") or ():
        if isinstance(att, Mapping):
            out += _attachment(att)
    out += _file_parts(message.get("files"))
    return out


_FILE_KEYS = ("id", "name", "title", "filetype", "pretty_type", "mode")
_ATTACHMENT_KEYS = (
    "pretext",
    "author_id",
    "author_name",
    "author_subname",
    "service_name",
    "title",
    "title_link",
    "text",
    "fields",
    "blocks",
    "footer",
    "ts",
    "fallback",
    "from_url",
    "is_share",
    "is_msg_unfurl",
    "message_blocks",
)


def _files_snapshot(files: Any) -> list[dict[str, Any]]:
    return [
        {key: f[key] for key in _FILE_KEYS if f.get(key) not in (None, "")}
        for f in (files if isinstance(files, list) else ())
        if isinstance(f, Mapping)
    ]


def snapshot(message: Message) -> dict[str, Any]:
    """The part of a message that says what it shows and who wrote it (no previews,
    thumbnails or buttons), for keeping with a timeline entry."""
    kept = {key: message[key] for key in CONTENT_KEYS if message.get(key) not in (None, "", [])}
    if "files" in kept:
        kept["files"] = _files_snapshot(kept["files"])
    if "attachments" in kept:
        kept["attachments"] = [
            {
                **{key: att[key] for key in _ATTACHMENT_KEYS if att.get(key) not in (None, "", [])},
                **({"files": _files_snapshot(att["files"])} if att.get("files") else {}),
            }
            for att in kept["attachments"]
            if isinstance(att, Mapping)
        ]
    return kept


# ---------------------------------------------------------------------------------------------
# References


def _walk(items: Iterable[Part]) -> Iterator[Part]:
    for part in items:
        yield part
        if isinstance(part, Attachment):
            yield from _walk(part.parts)


def _mrkdwn_references(text: str, found: References) -> None:
    for sigil, body, label in _TOKEN.findall(text):
        if sigil == "@" and body:
            found.users.add(body)
        elif sigil == "#" and body and not label:
            found.channels.add(body)
        elif sigil == "!" and body.startswith("subteam^") and not label:
            found.usergroups.add(body.removeprefix("subteam^"))


def references(message: Message) -> References:
    """The people, channels, user groups and apps ``message`` names by id: its author,
    every mention, a forwarded message's author. Channels and user groups that carry
    their own label need no lookup and are left out."""
    found = References()
    if is_app(message):
        if message.get("bot_id") and not (message.get("username") or message.get("bot_profile")):
            found.bots.add(str(message["bot_id"]))
    elif message.get("user"):
        found.users.add(str(message["user"]))
    for part in _walk(parts(message)):
        if isinstance(part, Paragraph | Item | Quote | Code):
            for run in part.runs:
                if run.kind == "user" and run.target:
                    found.users.add(run.target)
                elif run.kind == "channel" and run.target:
                    found.channels.add(run.target)
                elif run.kind == "usergroup" and run.target:
                    found.usergroups.add(run.target)
        elif isinstance(part, Mrkdwn):
            _mrkdwn_references(part.text, found)
        elif isinstance(part, Field):
            _mrkdwn_references(part.title + "\n" + part.value, found)
        elif isinstance(part, Forwarded) and part.author_id:
            found.users.add(part.author_id)
    return found


# ---------------------------------------------------------------------------------------------
# Markdown


def _emoji(run: Run) -> str:
    try:
        return "".join(chr(int(code, 16)) for code in run.target.split("-") if code)
    except (ValueError, OverflowError):
        return f":{run.text}:"


def _is_punct(ch: str, symbols: bool) -> bool:
    category = unicodedata.category(ch)
    return category.startswith("P") or (symbols and category.startswith("S"))


def _is_space(ch: str, loose: bool) -> bool:
    if ch in " \t\n\r\f" or unicodedata.category(ch) == "Zs":
        return True
    return loose and ch.isspace()


def _can_wrap(first: str, last: str, before: str, after: str) -> bool:
    """Whether emphasis markers around text from ``first`` to ``last`` open and close
    between the characters ``before`` and ``after`` (CommonMark's flanking rules) for
    every reading of what is punctuation (Unicode symbols count since CommonMark 0.31)
    and whitespace (some parsers count a vertical tab and other separators)."""
    for symbols in (False, True):
        for loose in (False, True):
            space, punct = _is_space, _is_punct
            if space(first, loose) or space(last, loose):
                return False
            opens = not punct(first, symbols) or space(before, loose) or punct(before, symbols)
            closes = not punct(last, symbols) or space(after, loose) or punct(after, symbols)
            if not (opens and closes):
                return False
    return True


def _markers_work(bit: _Bit, before: str, after: str) -> bool:
    """Whether ``bit``'s markers ("**", "*", "~~" or a mix) open and close around it."""
    stars = bit.marks.rstrip("~")
    if stars and stars != bit.marks:
        # "**~~x~~**": the stars sit next to tildes, the tildes next to the text.
        return _can_wrap("~", "~", before, after) and _can_wrap(bit.first, bit.last, "~", "~")
    return _can_wrap(bit.first, bit.last, before, after)


@dataclass
class _Bit:
    """A stretch of a paragraph: raw text, a Markdown piece, or styled bits."""

    kind: str  # "raw", "piece" or "styled"
    value: str = ""
    first: str = ""
    last: str = ""
    marks: str = ""
    inner: list[_Bit] = field(default_factory=list)


def _neighbour(bits: list[_Bit], index: int, step: int) -> str:
    """The character next to ``bits[index]``: a line end counts as a space, a piece as a
    letter (the neighbour that asks most of emphasis markers)."""
    other = index + step
    if other < 0 or other >= len(bits):
        return " "
    bit = bits[other]
    if bit.kind == "raw":
        if not bit.value:
            return _neighbour(bits, other, step)
        return bit.value[-1] if step < 0 else bit.value[0]
    return "a"


def _with_pieces(bits: Iterable[_Bit]) -> tuple[str, list[str]]:
    text = ""
    pieces: list[str] = []
    for bit in bits:
        if bit.kind == "raw":
            text += bit.value
        else:
            text += markdown_piece(len(pieces))
            pieces.append(bit.value)
    return text, pieces


class _Inline:
    """Rich-text runs -> one Markdown paragraph (its line breaks kept as soft breaks)."""

    def __init__(self, names: Names) -> None:
        self.names = names

    def shown(self, run: Run, *, in_code: bool = False) -> str:
        """What a run shows, as plain text."""
        if run.kind == "link":
            return run.text if run.text.strip() else run.target
        if run.kind == "user":
            return "@" + self.names.user(run.target)
        if run.kind == "channel":
            return "#" + self.names.channel(run.target)
        if run.kind == "usergroup":
            return "@" + self.names.usergroup(run.target)
        if run.kind == "broadcast":
            return "@" + run.target
        if run.kind == "emoji":
            return f":{run.text}:" if in_code or not run.target else _emoji(run)
        return run.text

    def piece(self, run: Run) -> str | None:
        """The Markdown of a run that is markup of its own (code, link, mention)."""
        if run.code:
            code = self.shown(run, in_code=True)
            return markdown_code_span(code) if code else ""
        if run.kind == "link" and _SAFE_URL.match(run.target):
            return markdown_link(run.target, self.shown(run))
        if run.kind in ("user", "channel", "usergroup", "broadcast"):
            return markdown_escape(self.shown(run))
        return None

    def render(self, runs: Sequence[Run]) -> str:
        # Code next to code is one code span (two would run their backticks together).
        merged: list[Run] = []
        for run in runs:
            if run.kind == "text" and not run.text:
                continue
            if run.code and run.kind != "text":
                # A link or mention in code shows as its text, in the code.
                run = Run("text", self.shown(run, in_code=True), "", *run.styles, code=True)
            last = merged[-1] if merged else None
            if last is not None and last.code and run.code:
                merged[-1] = Run("text", last.text + run.text, "", *last.styles, code=True)
            else:
                merged.append(run)
        runs = merged
        bits: list[_Bit] = []
        # Consecutive runs in the same style read as one.
        groups: list[list[Run]] = []
        for run in runs:
            if groups and any(run.styles) and groups[-1][0].styles == run.styles:
                groups[-1].append(run)
            else:
                groups.append([run])
        for group in groups:
            bold, italic, strike = group[0].styles
            marks = ("**" if bold else "") + ("*" if italic else "") + ("~~" if strike else "")
            line: list[_Bit] = []
            for run in group:
                piece = self.piece(run)
                if piece:
                    # A link's text keeps its outer spaces outside the link, as shown.
                    label = self.shown(run) if run.kind == "link" and not run.code else ""
                    lead = " " if label[:1].isspace() else ""
                    trail = " " if label[-1:].isspace() else ""
                    line += [_Bit("raw", lead)] if lead else []
                    line.append(_Bit("piece", piece, piece[0], piece[-1]))
                    line += [_Bit("raw", trail)] if trail else []
                    continue
                # NUL and SOH mark pieces; in people's text they are nothing to show.
                plain = self.shown(run).replace("\x00", "\ufffd").replace("\x01", "\ufffd")
                for i, chunk in enumerate(plain.split("\n")):
                    if i:
                        bits += self._styled(line, marks)
                        bits.append(_Bit("raw", "\n"))
                        line = []
                    if chunk:
                        line.append(_Bit("raw", chunk))
            bits += self._styled(line, marks)
        return self._join(bits)

    @staticmethod
    def _styled(line: list[_Bit], marks: str) -> list[_Bit]:
        """One line of a styled group between markers, its outer spaces outside them."""
        if not marks or not line:
            return line
        head: list[_Bit] = []
        tail: list[_Bit] = []
        if line[0].kind == "raw" and line[0].value != line[0].value.lstrip():
            value = line[0].value
            head = [_Bit("raw", value[: len(value) - len(value.lstrip())])]
            line = [_Bit("raw", value.lstrip()), *line[1:]]
        if line[-1].kind == "raw" and line[-1].value != line[-1].value.rstrip():
            value = line[-1].value
            tail = [_Bit("raw", value[len(value.rstrip()) :])]
            line = [*line[:-1], _Bit("raw", value.rstrip())]
        line = [bit for bit in line if bit.kind != "raw" or bit.value]
        if not line:
            return head + tail
        first = line[0].first if line[0].kind == "piece" else line[0].value[0]
        last = line[-1].last if line[-1].kind == "piece" else line[-1].value[-1]
        return [*head, _Bit("styled", first=first, last=last, marks=marks, inner=line), *tail]

    @staticmethod
    def _join(bits: list[_Bit]) -> str:
        """Raw text escaped in its context, pieces as they are; styled bits keep their
        markers only where CommonMark lets them open and close, and never right after
        other markers (the two runs would merge)."""
        flat: list[_Bit] = []
        wrapped_last = False
        for index, bit in enumerate(bits):
            if bit.kind != "styled":
                flat.append(bit)
                wrapped_last = False
                continue
            before, after = _neighbour(bits, index, -1), _neighbour(bits, index, +1)
            if wrapped_last or not _markers_work(bit, before, after):
                # The markers would show as text: keep the words, lose the style.
                flat += bit.inner
                wrapped_last = False
                continue
            inner = markdown_with_pieces(*_with_pieces(bit.inner), mid_line=True)
            flat.append(_Bit("piece", f"{bit.marks}{inner}{bit.marks[::-1]}"))
            wrapped_last = True
        return markdown_with_pieces(*_with_pieces(flat))


# ---------------------------------------------------------------------------------------------
# Writing it out: Markdown for the postmortem


_BLOCK_START = re.compile(r"(?:[-+*]|\d{1,9}[.)])(?:[ \t]|$)|>|```|~~~")
_FILE_ICONS = {"file": "📎", "canvas": "📝", "gone": "📎"}


def _strong(md: str) -> str:
    """One line of Markdown in bold, where bold markers work around it (at a line's ends)."""
    md = md.strip()
    if not md or not _can_wrap(md[0], md[-1], " ", " "):
        return md
    return f"**{md}**"


def _code_text(runs: Sequence[Run], names: Names) -> str:
    inline = _Inline(names)
    return "".join(inline.shown(run, in_code=True) for run in runs)


class _Markdown:
    def __init__(self, names: Names) -> None:
        self.names = names
        self.inline = _Inline(names)

    def mrkdwn(self, text: str) -> list[str]:
        md = slack_to_markdown(
            text,
            users=self.names.users,
            channels=self.names.channels,
            usergroups=self.names.usergroups,
        )
        return [line.rstrip() for line in md.strip("\n").split("\n")]

    def items(self, items: list[Item]) -> list[str]:
        out: list[str] = []
        widths: list[int] = []
        for item in items:
            level = min(item.level, len(widths))
            widths = widths[:level]
            marker = f"{item.number}." if item.ordered else "-"
            indent = " " * sum(widths)
            lines = self.inline.render(item.runs).split("\n")
            out.append(f"{indent}{marker} {lines[0]}".rstrip())
            inner = indent + " " * (len(marker) + 1)
            out += [inner + line if line else "" for line in lines[1:]]
            widths.append(len(marker) + 1)
        return out

    def part(self, part: Part) -> list[str]:
        if isinstance(part, Paragraph):
            return self.inline.render(part.runs).split("\n")
        if isinstance(part, Quote):
            lines = self.inline.render(part.runs).split("\n")
            return [f"> {line}" if line else ">" for line in lines]
        if isinstance(part, Code):
            block: str = markdown_code_block(_code_text(part.runs, self.names))
            return block.split("\n")
        if isinstance(part, Mrkdwn):
            lines = self.mrkdwn(part.text)
            if part.strong and len(lines) == 1 and not _BLOCK_START.match(lines[0]):
                return [_strong(lines[0])]
            return lines
        if isinstance(part, Plain):
            lines = [line.rstrip() for line in markdown_escape(part.text.strip("\n")).split("\n")]
            return [_strong(line) for line in lines] if part.strong else lines
        if isinstance(part, Field):
            title = _strong(markdown_escape(_tidy(part.title)) + ":") if part.title.strip() else ""
            value = self.mrkdwn(part.value) if part.value.strip() else []
            if title and value and value[0] and not _BLOCK_START.match(value[0]):
                return [f"{title} {value[0]}", *value[1:]]
            return [title, *value] if title else value
        if isinstance(part, Forwarded):
            name = self.names.user(part.author_id, part.author_name) if part.author_id else ""
            name = name or _tidy(part.author_name) or "someone"
            head = f"↪️ {part.verb} from {_strong(markdown_escape(name))}"
            when = _when(part.ts)
            return [f"{head}, {when}" if when else head]
        if isinstance(part, Files):
            shown = [f"{_FILE_ICONS[kind]} {markdown_escape(title)}" for kind, title in part.files]
            return [" · ".join(shown)]
        if isinstance(part, Attachment):
            return [f"> {line}" if line else ">" for line in self.parts(part.parts)]
        return []

    def parts(self, parts: Sequence[Part]) -> list[str]:
        """Blocks separated by blank lines; a files line follows a paragraph directly."""
        out: list[str] = []
        last_kind = ""
        i = 0
        while i < len(parts):
            part = parts[i]
            if isinstance(part, Item):
                j = i
                while j < len(parts) and isinstance(parts[j], Item):
                    j += 1
                lines = self.items([p for p in parts[i:j] if isinstance(p, Item)])
                i = j
            else:
                lines = [line.rstrip() for line in self.part(part)]
                i += 1
            while lines and not lines[-1]:
                lines.pop()
            while lines and not lines[0]:
                lines.pop(0)
            if not lines:
                continue
            paragraph_before = last_kind == "text" and out and not _BLOCK_START.match(out[-1])
            if isinstance(part, Files) and paragraph_before:
                out += lines
            else:
                out += ([""] if out else []) + lines
            last_kind = "text" if isinstance(part, Paragraph | Mrkdwn | Plain | Field) else "other"
        return out


def markdown(message: Message, names: Names) -> list[str]:
    """What ``message`` shows, as Markdown lines (blank lines between blocks)."""
    return Writer(names).markdown(message)


class Writer:
    """`markdown` for many messages with the same names (a postmortem's thousands)."""

    def __init__(self, names: Names) -> None:
        self._md = _Markdown(names)

    def markdown(self, message: Message) -> list[str]:
        plain = plain_text(message)
        if plain is not None:
            return [plain] if plain else []
        return self._md.parts(parts(message))


_PLAIN_KEYS = frozenset(
    {
        "type",
        "subtype",
        "user",
        "text",
        "ts",
        "team",
        "client_msg_id",
        "blocks",
        "thread_ts",
        "parent_user_id",
        "reply_count",
        "reply_users",
        "reply_users_count",
        "latest_reply",
        "is_locked",
        "subscribed",
        "last_read",
        "edited",
        "replies",
        "reactions",
        "user_team",
        "source_team",
        "user_profile",
        "app_id",
        "bot_id",
        "bot_profile",
        "username",
        "display_as_bot",
        "is_starred",
        "pinned_to",
    }
)


def _only_text(blocks: Any, text: str) -> bool:
    """Whether `blocks` is one rich-text section of unstyled text that reads `text`."""
    if len(blocks) != 1 or blocks[0].get("type") != "rich_text":
        return False
    elements: list[Any] = blocks[0].get("elements") or []
    if len(elements) != 1 or elements[0].get("type") != "rich_text_section":
        return False
    runs: list[Any] = elements[0].get("elements") or []
    return all(e.get("type") == "text" and not e.get("style") for e in runs) and (
        "".join(e.get("text", "") for e in runs) == text
    )


def plain_text(message: Message) -> str | None:
    """The text of a message that shows nothing but one plain line (most of what people
    write during an incident), as its Markdown already: the same line. None when it shows
    anything else, for the full conversion."""
    text = message.get("text")
    if not isinstance(text, str) or not message.keys() <= _PLAIN_KEYS:
        return None
    blocks = message.get("blocks")
    # People's messages carry their text as one rich-text section as well.
    if blocks and not _only_text(blocks, text):
        return None
    # One line that starts with a letter and holds nothing escaping, emphasis, mentions or
    # links look at.
    if not text[:1].isalpha() or NOT_PLAIN.search(text) is not None:
        return None
    return text.rstrip()


# ---------------------------------------------------------------------------------------------
# Writing it out: Slack mrkdwn for a timeline entry's text


def _slack_text(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _run_mrkdwn(run: Run) -> str:
    if run.kind == "link":
        label = _slack_text(run.text) if run.text and run.text != run.target else ""
        body = f"<{run.target}|{label}>" if label else f"<{run.target}>"
    elif run.kind == "user":
        body = f"<@{run.target}>"
    elif run.kind == "channel":
        body = f"<#{run.target}>"
    elif run.kind == "usergroup":
        body = f"<!subteam^{run.target}>"
    elif run.kind == "broadcast":
        body = f"<!{run.target}>"
    elif run.kind == "emoji":
        body = f":{run.text}:"
    else:
        body = _slack_text(run.text)
    if not body.strip():
        return body
    for flag, mark in ((run.code, "`"), (run.strike, "~"), (run.italic, "_"), (run.bold, "*")):
        if flag:
            lead = body[: len(body) - len(body.lstrip())]
            trail = body[len(body.rstrip()) :]
            body = f"{lead}{mark}{body.strip()}{mark}{trail}"
    return body


def _part_mrkdwn(part: Part) -> str:
    if isinstance(part, Paragraph):
        return "".join(_run_mrkdwn(run) for run in part.runs)
    if isinstance(part, Item):
        text = "".join(_run_mrkdwn(run) for run in part.runs)
        marker = f"{part.number}." if part.ordered else _LIST_MARKER
        return "    " * part.level + f"{marker} {text}"
    if isinstance(part, Quote):
        text = "".join(_run_mrkdwn(run) for run in part.runs)
        return "\n".join(f"&gt; {line}" for line in text.split("\n"))
    if isinstance(part, Code):
        code = "".join(_run_mrkdwn(Run(r.kind, r.text, r.target)) for r in part.runs)
        return f"```{code}```"
    if isinstance(part, Mrkdwn):
        return f"*{part.text.strip()}*" if part.strong and "\n" not in part.text else part.text
    if isinstance(part, Plain):
        text = _slack_text(part.text)
        return f"*{text.strip()}*" if part.strong and "\n" not in text else text
    if isinstance(part, Field):
        return "\n".join(s for s in (f"*{_slack_text(part.title)}*", part.value) if s.strip("*"))
    if isinstance(part, Forwarded):
        who = f"<@{part.author_id}>" if part.author_id else _slack_text(part.author_name)
        when = _when(part.ts)
        return f"{part.verb} from {who or 'someone'}" + (f", {when}" if when else "")
    if isinstance(part, Files):
        return " · ".join(f"{_FILE_ICONS[k]} {_slack_text(t)}" for k, t in part.files)
    inner = "\n".join(_part_mrkdwn(p) for p in part.parts)
    return "\n".join(f"&gt; {line}" for line in inner.split("\n"))


def mrkdwn(message: Message) -> str:
    """What ``message`` shows, as one Slack mrkdwn text: its ``text`` when that is all it
    has, else its blocks, attachments and files written out."""
    found = parts(message)
    text = message.get("text")
    if isinstance(text, str) and found == [Mrkdwn(text)]:
        return text
    return "\n".join(s for s in (_part_mrkdwn(p) for p in found) if s)
