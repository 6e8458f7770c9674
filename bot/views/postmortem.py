"""The postmortem draft as Markdown: the channel history merged with the stored timeline.

Rendering is a pure function of :class:`PostmortemFacts`, so the same stored incident and
history always give the same bytes.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from operator import itemgetter
from typing import Any, NamedTuple

from bot.base.settings import Role, Severity
from bot.model import figures
from bot.model.figures import duration
from bot.model.tables import FollowUp, Incident, RoleAssignment, Status, StatusUpdate, TimelineEntry
from bot.views import content
from bot.views.text import markdown_escape, markdown_link, slack_to_markdown

__all__ = [
    "EVENT_SUBTYPES",
    "NOISE_SUBTYPES",
    "PROMPT_MARKER",
    "PostmortemFacts",
    "Preparer",
    "duration",
    "render",
    "ts_key",
]

# Channel housekeeping, not conversation.
NOISE_SUBTYPES = frozenset(
    {
        "channel_join",
        "channel_leave",
        "channel_topic",
        "channel_purpose",
        "channel_archive",
        "channel_unarchive",
        "channel_posting_permissions",
        "channel_canvas_updated",
        "group_join",
        "group_leave",
        "group_topic",
        "group_purpose",
        "group_archive",
        "group_unarchive",
        "pinned_item",
        "unpinned_item",
        "bot_add",
        "bot_remove",
        "bot_enable",
        "bot_disable",
        "app_conversation_join",
        "app_conversation_leave",
        "joiner_notification",
        "joiner_notification_for_inviter",
        "huddle_thread",
        "sh_room_created",
        "reminder_add",
        "ekm_access_denied",
        "tombstone",
        "message_deleted",
        "message_changed",
        "message_replied",
    }
)
# Housekeeping that matters to the story: one line each.
EVENT_SUBTYPES = frozenset(
    {"channel_name", "group_name", "channel_convert_to_private", "channel_convert_to_public"}
)
DELETED_TEXT = "This message was deleted."
SLACKBOT = "USLACKBOT"

PROMPT_MARKER = "> ✍️ **To be written by the team.**"
PROMPTS = {
    "summary": "In a few sentences: what happened, what did it affect, and how did it end?",
    "impact": (
        "Who and what was affected (customers, internal teams, systems), how badly, and for "
        "how long? Describe the impact, not the people involved."
    ),
    "root_cause": (
        "Which conditions in the system made this possible? Look for causes in systems and "
        "processes, not in people."
    ),
    "contributing": (
        "What made detection, diagnosis or recovery slower or harder: alerts, tooling, "
        "documentation, process, timing?"
    ),
    "went_well": "What helped: alerts that fired, tools, runbooks, decisions that worked?",
    "went_badly": (
        "Where did the response get stuck or go wrong? Describe what the system and the "
        "process made hard, not who erred."
    ),
    "lessons": ("What will we change? Add each concrete action to the follow-ups, with an owner."),
}

# Deterministic order for entries recorded at the same instant: cause before effect.
KIND_ORDER = {
    kind: rank
    for rank, kind in enumerate(
        [
            "declared",
            "role",
            "severity",
            "status",
            "update",
            "note",
            "message",
            "follow_up",
            "reminder",
            "snooze",
            "resolved",
            "reopened",
        ]
    )
}

NONE = figures.NONE
_MENTION = re.compile(r"<@([UW][A-Z0-9]+)(?:\|[^<>\n]*)?>")
_PLACEHOLDER = "\ue000"
_HELD = re.compile(r"\ue000(\d+)\ue000")


# ---------------------------------------------------------------------------------------------
# Ordering


def ts_key(ts: Any) -> int:
    """Microseconds of a Slack ts; Slack's own ordering key."""
    seconds, _, fraction = str(ts).partition(".")
    try:
        return int(seconds) * 1_000_000 + int((fraction or "0").ljust(6, "0")[:6])
    except ValueError:
        return 0


_ORDER = itemgetter(0, 1, 2)
_FIRST = itemgetter(0)


def _in_order(
    messages: Sequence[Mapping[str, Any]], prepared: Mapping[int, Prepared]
) -> list[tuple[int, str, int, Mapping[str, Any], Prepared | None]]:
    """(microseconds, ts, position, message, what was prepared of it) in Slack's order;
    each ts read once, none that was prepared. The position breaks ties, so messages are
    never compared."""
    keyed: list[tuple[int, str, int, Mapping[str, Any], Prepared | None]] = []
    append, get = keyed.append, prepared.get
    for n, m in enumerate(messages):
        held = get(id(m))
        if held is not None:
            append((held.micros, held.ts, n, m, held))
        else:
            ts = m.get("ts")
            append((ts_key(ts), str(ts), n, m, None))
    keyed.sort(key=_ORDER)
    return keyed


# ---------------------------------------------------------------------------------------------
# Facts


@dataclass(frozen=True)
class PostmortemFacts:
    """Everything a postmortem is compiled from; nothing else is read while rendering."""

    incident: Incident
    severities: Sequence[Severity]
    roles_config: Sequence[Role]
    # Every assignment, ended ones included: they are the handovers.
    assignments: Sequence[RoleAssignment]
    timeline: Sequence[TimelineEntry]
    updates: Sequence[StatusUpdate]
    follow_ups: Sequence[FollowUp]
    # As returned by fetch_history.
    messages: Sequence[dict]
    # Display names by user id (people, and neutral labels for those Slack does not show).
    names: Mapping[str, str]
    channels: Mapping[str, str]
    bot_user_id: str
    bot_id: str | None
    # User group handles and app names by id, for mentions and app messages.
    usergroups: Mapping[str, str] = field(default_factory=dict)
    bots: Mapping[str, str] = field(default_factory=dict)
    # User ids that are apps, not people (integrations' bot users, Slackbot).
    apps: frozenset[str] = frozenset()
    # The severity's reminder interval: the cadence updates are measured against.
    update_interval: timedelta = timedelta(minutes=30)
    # Messages' lines worked out while the history was still arriving (`Preparer`); each
    # is used if it is final, or if every name it read is the same in these facts.
    prepared: Mapping[int, Prepared] = field(default_factory=dict)


_MISSING = object()
_ANY = "\0any"  # a key no id can be: "are there any names of this kind?"
# What one message's lines read: (which names, key, value) for every name looked up.
Reads = tuple[tuple[str, str | None, object], ...]


class Prepared(NamedTuple):
    """One message as worked out ahead of the render (`Preparer`), keyed by the message's
    id: the facts hold every message for as long as the render runs, so no id is reused.
    Strings and numbers only, which the garbage collector stops tracking."""

    reply: bool
    # Every name its lines read, and what it was then.
    reads: Reads
    # Its lines, joined, in UTF-8 (a quarter of a string with emoji in it); empty for a
    # message not shown as itself.
    lines: bytes
    kind: str
    ts: str
    micros: int
    # The names it read are the compile's for good: the lines need no check, and the
    # message itself was let go of all the render no longer reads.
    final: bool


# What the render still reads of a message whose lines are final.
_KEPT = ("ts", "user", "subtype", "hidden", "bot_id", "thread_ts", "reply_count", "replies")


class _Recording(Mapping[str, str]):
    """A names mapping that notes every name read from it (into `into.reads`)."""

    def __init__(self, data: Mapping[str, str], kind: str, into: Preparer):
        self._data, self._kind, self._into = data, kind, into

    def __getitem__(self, key: str) -> str:
        try:
            value = self._data[key]
        except KeyError:
            self._into.reads.append((self._kind, key, _MISSING))
            raise
        self._into.reads.append((self._kind, key, value))
        return value

    def __iter__(self) -> Iterator[str]:
        self._into.reads.append((self._kind, None, _MISSING))  # everything: never reused
        return iter(self._data)

    def __len__(self) -> int:
        self._into.reads.append((self._kind, None, _MISSING))
        return len(self._data)

    def __bool__(self) -> bool:
        # `names or {}` asks only whether there are any.
        self._into.reads.append((self._kind, _ANY, bool(self._data)))
        return bool(self._data)


def _pinned_ts(entry: TimelineEntry) -> str:
    """The ts of the channel message a "message" entry was made from ("" if none)."""
    ts = (entry.data or {}).get("ts")
    return str(ts) if ts is not None else ""


def _is_deleted(msg: Mapping[str, Any]) -> bool:
    # Slack keeps a deleted thread parent as a placeholder while replies remain.
    return msg.get("subtype") == "tombstone" or (
        msg.get("text") == DELETED_TEXT and (msg.get("hidden") or msg.get("user") == SLACKBOT)
    )


def _kind(msg: Mapping[str, Any], bot_user_id: str, bot_id: str | None) -> str:
    """ "person", "app" (an integration's message), "event" (housekeeping worth a line)
    or "noise" (housekeeping, the bot's own posts, deleted messages)."""
    subtype = msg.get("subtype")
    if subtype in EVENT_SUBTYPES:
        return "event" if msg.get("user") else "noise"
    if subtype in NOISE_SUBTYPES or _is_deleted(msg):
        return "noise"
    user = msg.get("user")
    if user == bot_user_id or (bot_id and msg.get("bot_id") == bot_id):
        return "noise"
    if content.is_app(msg) or user == SLACKBOT:
        return "app"
    return "person" if user else "noise"


# ---------------------------------------------------------------------------------------------
# Formatting helpers


def _when(moment: datetime) -> str:
    # Naive values only come from callers that already mean UTC.
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _when_micros(micros: int) -> str:
    """`_when` of a Slack ts's microseconds, without building a datetime (one per message)."""
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(micros // 1_000_000))


def _micros(moment: datetime) -> int:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _from_micros(micros: int) -> datetime:
    return datetime.fromtimestamp(micros // 1_000_000, UTC).replace(microsecond=micros % 1_000_000)


def _between(start: datetime, end: datetime | None) -> str:
    if end is None:
        return NONE
    return duration((_micros(end) - _micros(start)) / 1_000_000)


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _one_line(text: str) -> str:
    return markdown_escape(" ".join(text.split()))


def _lines(text: str) -> str:
    # Markdown ends a line at \r too; one kind of break lets every line be indented.
    return text.replace("\r\n", "\n").replace("\r", "\n").strip("\n")


def _block(text: str) -> list[str]:
    """Escaped multi-line user text; trailing blank lines dropped so items stay tight."""
    lines = markdown_escape(_lines(text)).split("\n")
    return [line.rstrip() for line in lines] if any(lines) else []


def _item(head: str, body: Sequence[str], indent: str = "") -> list[str]:
    """A list item: ``head``, then ``body`` lines inside the item.

    The first body line joins the head unless it opens a block (fence or quote) that only
    works at the start of a line. Every further line is indented to the item's content, so
    nothing in it can end the list or start a block of its own at the top level.
    """
    inner = indent + "  "
    first = f"{indent}- {head}"
    rest = list(body)
    if rest and rest[0] and not _OPENS_BLOCK.match(rest[0]):
        first += ": " + rest.pop(0)
    elif rest and rest[0]:
        first += ":"
    elif rest:
        rest.pop(0)
    return [first, *[inner + line if line else "" for line in rest]]


# A line that starts a block of its own (fence, quote, list item) cannot follow a head.
_OPENS_BLOCK = re.compile(r"```|~~~|>|(?:[-+*]|\d{1,9}[.)])(?:[ \t]|$)")


# ---------------------------------------------------------------------------------------------
# Rendering


def _sections(sections: Sequence[Sequence[str]]) -> bytes:
    """Sections of lines, a blank line between them, in UTF-8."""
    return "\n\n".join("\n".join(lines) for lines in sections).encode()


def _entry_key(e: TimelineEntry) -> tuple[int, int, str, int, str, str, str]:
    return (
        _micros(e.happened_at),
        KIND_ORDER.get(e.kind, len(KIND_ORDER)),
        e.kind,
        e.id if e.id is not None else -1,
        e.actor or "",
        e.text,
        _pinned_ts(e),
    )


class _Message(NamedTuple):
    ts: str
    micros: int
    msg: Mapping[str, Any]
    replies: tuple[_Message, ...]
    # False for a thread parent shown only to hold its replies (a bot or deleted message).
    shown: bool
    kind: str
    held: Prepared | None = None


class _Lines:
    """A message's lines in the timeline, from the names and the pinned messages alone:
    what the render and the work done ahead of it (`Preparer`) share."""

    def __init__(
        self,
        *,
        names: Mapping[str, str],
        channels: Mapping[str, str],
        usergroups: Mapping[str, str],
        bots: Mapping[str, str],
        timeline: Sequence[TimelineEntry],
        bot_user_id: str,
        bot_id: str | None,
    ) -> None:
        self.names = names
        self.bots = bots
        self.content_names = content.Names(
            users=names, channels=channels, usergroups=usergroups, bots=bots
        )
        self.writer = content.Writer(self.content_names)
        self.bot_user_id = bot_user_id
        self.bot_id = bot_id
        self._escaped: dict[str, str] = {}
        # Pinned messages found in the transcript are shown there, once.
        self.pinned: dict[str, TimelineEntry] = {}
        for entry in timeline:
            ts = _pinned_ts(entry)
            if entry.kind == "message" and ts and ts not in self.pinned:
                self.pinned[ts] = entry

    def _shows(self, kind: str, ts: str) -> bool:
        """People's messages and one-line events; an app's message once someone pinned it."""
        return kind in ("person", "event") or (kind == "app" and ts in self.pinned)

    def raw_name(self, user_id: str | None) -> str:
        if not user_id:
            return "someone"
        if user_id in self.bots:
            return " ".join(self.bots[user_id].split()) or content.UNKNOWN_APP
        name = " ".join((self.names.get(user_id) or "").split())
        if name:
            return name
        return content.UNKNOWN_APP if user_id.startswith("B") else content.UNKNOWN_PERSON

    def name(self, user_id: str | None) -> str:
        return self.escaped(self.raw_name(user_id))

    def author(self, msg: Mapping[str, Any]) -> str:
        return self.escaped(content.author_of(msg, self.content_names))

    def escaped(self, name: str) -> str:
        """A name escaped for Markdown; the same few names come up for every message."""
        found = self._escaped.get(name)
        if found is None:
            found = self._escaped[name] = markdown_escape(name)
        return found

    def event(self, msg: Mapping[str, Any]) -> str:
        """What a rename or a change of visibility did, in words."""
        subtype = msg.get("subtype")
        if subtype in ("channel_name", "group_name"):
            old, new = str(msg.get("old_name") or ""), str(msg.get("name") or "")
            if old and new:
                return f"renamed the channel from #{_one_line(old)} to #{_one_line(new)}"
            return "renamed the channel"
        if subtype == "channel_convert_to_private":
            return "made the channel private"
        return "made the channel public"

    def message_lines(self, m: _Message, indent: str = "", reply: bool = False) -> list[str]:
        msg = m.msg
        when = f"**{_when_micros(m.micros)}**"
        arrow = "↳ " if reply else ""
        if not m.shown:
            if _is_deleted(msg):
                why = "a deleted message"
            elif m.kind == "app" or msg.get("user") == self.bot_user_id:
                why = "a bot message"
            else:
                why = "a message left out"
            return _item(f"{arrow}{when} · *thread under {why}*", [], indent)
        kind = m.kind
        if kind == "event":
            head = f"{arrow}{when} · {self.author(msg)} *{self.event(msg)}*"
            return _item(head, [], indent)
        pin = self.pinned.get(m.ts)
        author = str(msg.get("user") or msg.get("bot_id") or "")
        icon = "📌 " if pin else ("" if reply else "💬 ")
        head = f"{arrow}{when} · {icon}{self.author(msg)}"
        if msg.get("edited"):
            head += " *(edited)*"
        if pin is not None and pin.actor and pin.actor != author:
            head += f" (pinned by {self.name(pin.actor)})"
        return _item(head, self.writer.markdown(msg), indent)


class Preparer(_Lines):
    """Messages' lines worked out ahead of the render, while the history still arrives,
    with the names known so far (`names` etc. are updated in place as more are looked
    up). The render uses a message's lines where they are final or every name they read
    still holds; the rest it works out itself.

    Names the compile will use as they are (`settled` people, and any app, channel or
    group found) make a message's lines final. With `let_go`, such a message is then cut
    down to what the render still reads of it, so a long history is not held whole.
    """

    def __init__(
        self,
        timeline: Sequence[TimelineEntry],
        bot_user_id: str,
        bot_id: str | None,
        *,
        let_go: bool = False,
    ) -> None:
        self.reads: list[tuple[str, str | None, object]] = []
        self.users: dict[str, str] = {}
        self.channels: dict[str, str] = {}
        self.usergroups: dict[str, str] = {}
        self.bot_names: dict[str, str] = {}
        # People whose names the compile keeps as they are.
        self.settled: set[str] = set()
        self.let_go = let_go
        super().__init__(
            names=_Recording(self.users, "users", self),
            channels=_Recording(self.channels, "channels", self),
            usergroups=_Recording(self.usergroups, "usergroups", self),
            bots=_Recording(self.bot_names, "bots", self),
            timeline=timeline,
            bot_user_id=bot_user_id,
            bot_id=bot_id,
        )
        self.prepared: dict[int, Prepared] = {}
        # Thousands of messages read the same few names: one tuple for each set of reads.
        self._reads: dict[Reads, Reads] = {(): ()}

    def prepare(self, msg: Mapping[str, Any], reply: bool) -> None:
        ts = str(msg.get("ts"))
        kind = _kind(msg, self.bot_user_id, self.bot_id)
        micros = ts_key(ts)
        lines = b""
        reads: Reads = ()
        if kind in ("person", "event") or (kind == "app" and ts in self.pinned):
            self.reads = []
            m = _Message(ts, micros, msg, (), True, kind)
            lines = "\n".join(self.message_lines(m, "  " if reply else "", reply)).encode()
            found = tuple(self.reads)
            reads = self._reads.setdefault(found, found)
        # Not shown as itself, it needs no names: the render says why, in a line of its own.
        final = all(map(self._settled, reads))
        self.prepared[id(msg)] = Prepared(reply, reads, lines, kind, ts, micros, final)
        if final and self.let_go and isinstance(msg, dict):
            kept = {key: msg[key] for key in _KEPT if key in msg}
            if msg.get("text") == DELETED_TEXT:
                kept["text"] = DELETED_TEXT
            msg.clear()
            msg.update(kept)

    def _settled(self, read: tuple[str, str | None, object]) -> bool:
        kind, key, value = read
        if key is None:
            return False  # read every name of a kind
        if key == _ANY:
            return value is True  # names are only ever added
        if kind == "users":
            return key in self.settled
        return value is not _MISSING


class _Renderer(_Lines):
    def __init__(self, facts: PostmortemFacts) -> None:
        self.f = facts
        self.inc = facts.incident
        self.timeline = sorted(facts.timeline, key=_entry_key)
        super().__init__(
            names=facts.names,
            channels=facts.channels,
            usergroups=facts.usergroups,
            bots=facts.bots,
            timeline=self.timeline,
            bot_user_id=facts.bot_user_id,
            bot_id=facts.bot_id,
        )
        self.apps = set(facts.apps) | {SLACKBOT, facts.bot_user_id}
        # A first response: after the declaration, by someone else than the declarer.
        self.start = _micros(self.inc.declared_at)
        self.ignore = {self.inc.declared_by, facts.bot_user_id, "", None}
        self._by_kind: dict[str, Mapping[str, str]] = {
            "users": facts.names,
            "channels": facts.channels,
            "usergroups": facts.usergroups,
            "bots": facts.bots,
        }
        self._checked: dict[tuple[str, str | None, object], bool] = {}
        # By the id of a (shared) reads tuple: whether all its names still hold.
        self._checked_reads: dict[int, bool] = {}
        self.severity_rank = {s.name: i for i, s in enumerate(facts.severities)}
        self.severity_label = {s.name: s.label for s in facts.severities}
        self.updates = sorted(
            facts.updates,
            key=lambda u: (_micros(u.posted_at), u.id or 0, u.status, u.posted_by, u.summary),
        )
        self.transcript, self.wrote, self.responses = self._transcript()
        self.shown_ts = {m.ts for top in self.transcript for m in (top, *top.replies) if m.shown}

    def message_chunk(self, m: _Message, indent: str = "", reply: bool = False) -> bytes:
        """A message's lines, joined, in UTF-8."""
        held = m.held
        if held is not None and held.reply == reply and m.shown and self._holds(held):
            return held.lines
        return "\n".join(self.message_lines(m, indent, reply)).encode()

    def _holds(self, held: Prepared) -> bool:
        """Whether prepared lines are this render's lines: final ones always are (their
        message kept only what the render reads besides), others if their names hold."""
        if held.final:
            return True
        known = self._checked_reads.get(id(held.reads))
        if known is None:
            known = self._checked_reads[id(held.reads)] = all(map(self._still, held.reads))
        return known

    def _still(self, read: tuple[str, str | None, object]) -> bool:
        # The same few names are read by thousands of messages: each is checked once.
        known = self._checked.get(read)
        if known is None:
            kind, key, value = read
            names = self._by_kind[kind]
            if key is None:
                known = False
            elif key == _ANY:
                known = bool(names) == value
            else:
                known = names.get(key, _MISSING) == value
            self._checked[read] = known
        return known

    # -- ordering ------------------------------------------------------------------------------

    def _transcript(self) -> tuple[list[_Message], Counter[str], list[tuple[int, str]]]:
        """The messages shown, in order, each top-level one with its replies; with, on the
        way, how many each person wrote and each thread's first response (someone other
        than the declarer answering after the declaration)."""
        shows, prepared = self._shows, self.f.prepared
        bot_user_id, bot_id = self.bot_user_id, self.bot_id
        start, ignore, is_person = self.start, self.ignore, self.is_person
        wrote: list[str] = []
        responses: list[tuple[int, str]] = []
        tops = _in_order(self.f.messages, prepared)
        threads = [
            _in_order(msg["replies"], prepared) if msg.get("replies") else []
            for _, _, _, msg, _ in tops
        ]
        in_threads = {
            ts
            for (_, top_ts, _, _, _), replies in zip(tops, threads, strict=True)
            for _, ts, _, _, _ in replies
            if ts != top_ts
        }
        out: list[_Message] = []
        seen: set[str] = set()
        for (micros, ts, _, msg, held), thread in zip(tops, threads, strict=True):
            # A reply also sent to the channel is shown once, in its thread.
            if ts in seen or (ts in in_threads and msg.get("subtype") == "thread_broadcast"):
                continue
            seen.add(ts)
            replies: list[_Message] = []
            first: tuple[int, str] | None = None
            for r_micros, rts, _, reply, r_held in thread:
                r_kind = r_held.kind if r_held is not None else _kind(reply, bot_user_id, bot_id)
                if rts in seen or not shows(r_kind, rts):
                    continue
                seen.add(rts)
                replies.append(_Message(rts, r_micros, reply, (), True, r_kind, r_held))
                user = reply.get("user")
                if r_kind == "person":
                    wrote.append(str(user))
                if (
                    first is None
                    and r_kind != "app"
                    and r_micros >= start
                    and user not in ignore
                    and is_person(user)
                ):
                    first = (r_micros, str(user))
            kind = held.kind if held is not None else _kind(msg, bot_user_id, bot_id)
            visible = shows(kind, ts)
            if not (visible or replies):
                continue
            out.append(_Message(ts, micros, msg, tuple(replies), visible, kind, held))
            if visible:
                user = msg.get("user")
                if kind == "person":
                    wrote.append(str(user))
                if kind != "app" and micros >= start and user not in ignore and is_person(user):
                    first = (micros, str(user))  # the parent comes before its replies
            if first is not None:
                responses.append(first)
        return out, Counter(wrote), responses

    def is_person(self, user_id: str | None) -> bool:
        return bool(user_id) and user_id not in self.apps and not str(user_id).startswith("B")

    # -- names ---------------------------------------------------------------------------------

    def severity(self, name: str) -> str:
        label = self.severity_label.get(name)
        return _one_line(f"{name} ({label})" if label else name)

    def entry_text(self, text: str) -> list[str]:
        """Stored entry text: escaped, with Slack user mentions shown as names."""
        # Mentions become placeholders that escaping leaves alone, then names.
        text = _lines(text).replace(_PLACEHOLDER, "\ufffd")
        users: list[str] = []

        def hold(match: re.Match[str]) -> str:
            users.append(match[1])
            return f"{_PLACEHOLDER}{len(users) - 1}{_PLACEHOLDER}"

        escaped = markdown_escape(_MENTION.sub(hold, text))
        escaped = _HELD.sub(lambda m: "@" + self.name(users[int(m[1])]), escaped)
        lines = [line.rstrip() for line in escaped.split("\n")]
        return lines if any(lines) else []

    def slack_text(self, text: str) -> list[str]:
        md = slack_to_markdown(
            text, users=self.names, channels=self.f.channels, usergroups=self.f.usergroups
        )
        lines = [line.rstrip() for line in md.strip("\n").split("\n")]
        return lines if any(lines) else []

    # -- sections ------------------------------------------------------------------------------

    def render(self) -> str:
        before = [
            self.header(),
            self.summary(),
            self.impact(),
            self.severity_history(),
            self.roles(),
            self.key_times(),
            self.detection(),
        ]
        timeline = self.merged_timeline()
        after = [
            self.status_updates(),
            self.follow_ups(),
            self.participants(),
            self.prompt("Root cause", "root_cause"),
            self.prompt("Contributing factors", "contributing"),
            self.prompt("What went well", "went_well"),
            self.prompt("What went badly", "went_badly"),
            self.prompt("Lessons", "lessons"),
        ]
        # Joined once, in UTF-8: a long channel's draft is never copied whole on the way,
        # and is a wide string only at the end.
        out = [_sections(before), b"", *timeline, b"", _sections(after), b""]
        return b"\n".join(out).decode()

    def header(self) -> list[str]:
        inc = self.inc
        channel = inc.channel_name or self.f.channels.get(inc.channel_id or "") or inc.channel_id
        meta = [
            f"**Severity:** {self.severity(inc.severity)}",
            f"**Status:** {_one_line(inc.status)}",
            f"**Declared:** {_when(inc.declared_at)} by {self.name(inc.declared_by)}",
        ]
        if channel:
            meta.append(f"**Channel:** #{_one_line(channel)}")
        title = f"# {_one_line(inc.ref)}: {_one_line(inc.title)}"
        if inc.drill:
            meta.insert(0, "**Drill** (a test incident, left out of metrics and reports)")
        return [title, "", " · ".join(meta)]

    def prompt_lines(self, key: str) -> list[str]:
        return [f"{PROMPT_MARKER} {PROMPTS[key]}"]

    def prompt(self, title: str, key: str) -> list[str]:
        return [f"## {title}", "", *self.prompt_lines(key)]

    def summary(self) -> list[str]:
        out = ["## Summary", ""]
        description = _block(self.inc.description)
        if description:
            out += [*description, ""]
        resolution = next(
            (
                e
                for e in reversed(self.timeline)
                if e.kind == "resolved" and (e.data or {}).get("summary")
            ),
            None,
        )
        if resolution is not None and self.inc.resolved_at is not None:
            out.append(
                f"**Resolution** ({_when(resolution.happened_at)}, "
                f"by {self.name(resolution.actor or '')}):"
            )
            out += [*_block(str((resolution.data or {})["summary"])), ""]
        if self.updates:
            last = self.updates[-1]
            out.append(
                f"**Last status update** ({_when(last.posted_at)}, {_one_line(last.status)}, "
                f"by {self.name(last.posted_by)}):"
            )
            out += [*(_block(last.summary) or ["*(no summary)*"]), ""]
        return out + self.prompt_lines("summary")

    def severities_reached(self) -> list[str]:
        reached = [self.initial_severity()]
        for entry in self.timeline:
            data = entry.data or {}
            if entry.kind == "severity":
                reached += [str(data.get("from", "")), str(data.get("to", ""))]
        reached.append(self.inc.severity)
        return [s for s in reached if s]

    def initial_severity(self) -> str:
        for entry in self.timeline:
            if entry.kind == "declared" and (entry.data or {}).get("severity"):
                return str((entry.data or {})["severity"])
        for entry in self.timeline:
            if entry.kind == "severity" and (entry.data or {}).get("from"):
                return str((entry.data or {})["from"])
        return self.inc.severity

    def impact(self) -> list[str]:
        reached = self.severities_reached()
        known = [s for s in reached if s in self.severity_rank]
        if known:
            worst = min(known, key=self.severity_rank.__getitem__)
        else:
            worst = reached[0] if reached else self.inc.severity
        resolved = self.inc.resolved_at
        if resolved is None or self.inc.is_open:
            length = "still open"
        else:
            length = (
                f"{_between(self.inc.declared_at, resolved)} "
                f"(declared {_when(self.inc.declared_at)}, resolved {_when(resolved)})"
            )
        return [
            "## Impact",
            "",
            *self.prompt_lines("impact"),
            "",
            f"- Worst severity reached: **{self.severity(worst)}**",
            f"- Duration: {length}",
        ]

    def severity_history(self) -> list[str]:
        out = ["## Severity history", ""]
        declared = next((e for e in self.timeline if e.kind == "declared"), None)
        at = declared.happened_at if declared else self.inc.declared_at
        who = declared.actor if declared and declared.actor else self.inc.declared_by
        out.append(
            f"- **{_when(at)}** · declared at **{self.severity(self.initial_severity())}** "
            f"by {self.name(who)}"
        )
        for entry in self.timeline:
            if entry.kind != "severity":
                continue
            data = entry.data or {}
            change = f"{self.severity(str(data.get('from', '?')))} → "
            change += f"**{self.severity(str(data.get('to', '?')))}**"
            out.append(f"- **{_when(entry.happened_at)}** · {change} by {self.name(entry.actor)}")
        return out

    def roles(self) -> list[str]:
        out = ["## Roles", ""]
        by_role: dict[str, list[RoleAssignment]] = {}
        for a in self.f.assignments:
            by_role.setdefault(a.role, []).append(a)
        labels = {r.name: r.label for r in self.f.roles_config}
        order = [r.name for r in self.f.roles_config]
        order += sorted(set(by_role) - set(order))
        for role in order:
            rows = sorted(
                by_role.get(role, []),
                key=lambda a: (_micros(a.assigned_at), a.id or 0, a.user_id, a.assigned_by),
            )
            label = f"**{_one_line(labels.get(role, role))}**"
            current = [a for a in rows if a.ended_at is None]
            earlier = [a for a in rows if a.ended_at is not None]
            if current:
                now = current[-1]
                out.append(
                    f"- {label}: {self.name(now.user_id)}, since {_when(now.assigned_at)} "
                    f"(assigned by {self.name(now.assigned_by)})"
                )
            else:
                out.append(f"- {label}: {'nobody now' if earlier else 'never assigned'}")
            for a in [*earlier, *current[:-1]]:
                until = _when(a.ended_at) if a.ended_at else "now"
                out.append(
                    f"  - earlier: {self.name(a.user_id)}, {_when(a.assigned_at)} to {until} "
                    f"(assigned by {self.name(a.assigned_by)})"
                )
        return out

    def first_response(self) -> tuple[datetime, str] | None:
        start, ignore = self.start, self.ignore
        found = list(self.responses)
        for entry in self.timeline:
            actor = entry.actor
            if entry.kind == "message":
                # An app's message is not a response, whoever pinned it.
                actor = (entry.data or {}).get("user") or actor
            if (
                self.is_person(actor)
                and actor not in ignore
                and _micros(entry.happened_at) >= start
            ):
                found.append((_micros(entry.happened_at), str(actor)))
                break
        for update in self.updates:
            if update.posted_by not in ignore and _micros(update.posted_at) >= start:
                found.append((_micros(update.posted_at), update.posted_by))
                break
        if not found:
            return None
        micros, user = min(found)
        return _from_micros(micros), user

    def mitigated(self) -> tuple[datetime, str] | None:
        for update in self.updates:
            if update.status == Status.monitoring.value:
                return update.posted_at, update.posted_by
        for entry in self.timeline:
            data = entry.data or {}
            if entry.kind in ("update", "status") and data.get("status") == Status.monitoring.value:
                return entry.happened_at, entry.actor or ""
        return None

    def resolved(self) -> tuple[datetime, str] | None:
        at = self.inc.resolved_at
        if at is None:
            return None
        by = [e.actor for e in self.timeline if e.kind == "resolved" and e.actor]
        return at, by[-1] if by else ""

    def key_times(self) -> list[str]:
        declared = self.inc.declared_at
        rows: list[tuple[str, tuple[datetime, str] | None]] = [
            ("Declared", (declared, self.inc.declared_by)),
            ("First response", self.first_response()),
            ("Mitigated", self.mitigated()),
            ("Resolved", self.resolved()),
        ]
        out = ["## Key times", "", "| Milestone | When | Who |", "| --- | --- | --- |"]
        for label, fact in rows:
            if fact is None:
                out.append(f"| {label} | {NONE} | {NONE} |")
            else:
                who = self.name(fact[1]) if fact[1] else NONE
                out.append(f"| {label} | {_when(fact[0])} | {who} |")
        out.append("")
        for label, (_, fact) in zip(
            ("Time to respond", "Time to mitigate", "Time to resolve"), rows[1:], strict=True
        ):
            out.append(f"- {label}: {_between(declared, fact[0] if fact else None)}")
        out += self.cadence()
        return out

    def cadence(self) -> list[str]:
        """Whether stakeholders heard every interval: updates measured against when each
        was due. Up to the resolution, or (still open) the last update, so the same stored
        incident always reads the same."""
        inc = self.inc
        last = max((u.posted_at for u in self.updates), default=inc.declared_at)
        end = inc.resolved_at if not inc.is_open and inc.resolved_at else last
        c = figures.cadence(inc, self.updates, end, self.f.update_interval)
        every = duration(self.f.update_interval.total_seconds())
        if c.adherence is None:
            met = f"no update was due yet (one every {every})"
        else:
            met = (
                f"{c.on_time} of {c.intervals} intervals met ({c.adherence:.0%}; one every {every})"
            )
        return [
            f"- Updates on time: {met}",
            f"- Longest gap without an update: {duration(c.longest_gap.total_seconds())}",
        ]

    def detection(self) -> list[str]:
        """How the incident was found: the alert that opened it, and how long that took."""
        alert = self.inc.alert
        out = ["## Detection", ""]
        if not alert:
            out.append(f"Declared by {self.name(self.inc.declared_by)}; no alert opened it.")
            out.append("")
            out.append("> _How was it noticed, and could an alert have noticed it sooner?_")
            return out
        title = str(alert.get("title") or "an alert")
        url = alert.get("url")
        shown = markdown_link(url, title) if isinstance(url, str) and url else _one_line(title)
        out.append(f"- Alert: {shown} ({_one_line(str(alert.get('source') or 'webhook'))})")
        for key, label in (("runbook", "Runbook"), ("dashboard", "Dashboard")):
            link = alert.get(key)
            if isinstance(link, str) and link:
                out.append(f"- {label}: {markdown_link(link, link)}")
        fired = _parse_time(alert.get("fired_at"))
        declared = self.inc.declared_at
        out.append(f"- Fired: {_when(fired) if fired else NONE}")
        out.append(f"- Declared: {_when(declared)}")
        out.append(f"- Time to declare: {_between(fired, declared) if fired else NONE}")
        return out

    # -- timeline ------------------------------------------------------------------------------

    def entry_lines(self, entry: TimelineEntry) -> list[str]:
        when = f"**{_when(entry.happened_at)}**"
        if entry.kind == "message":
            data = entry.data or {}
            author = str(data.get("user") or entry.actor or "")
            message = data.get("message")
            if isinstance(message, Mapping):
                # Kept when it was added: what the message showed, even if it is gone now.
                head = f"{when} · 📌 {self.author(message)}"
                body = self.writer.markdown(message)
            else:
                head = f"{when} · 📌 {self.name(author)}"
                body = self.slack_text(entry.text)
            if entry.actor and entry.actor != author:
                head += f" (pinned by {self.name(entry.actor)})"
            return _item(head, body)
        head = f"{when} · *{_one_line(entry.kind.replace('_', '-'))}*"
        if entry.actor:
            head += f" · {self.name(entry.actor)}"
        return _item(head, self.entry_text(entry.text))

    def merged_timeline(self) -> list[bytes]:
        """The timeline section in UTF-8, an entry or a message per chunk: a long channel's
        lines are joined once, as bytes (a quarter of a string with emoji in it)."""
        # Entries and top-level messages share one key shape, so any two compare.
        items: list[tuple[tuple[int, int, int, str, int, str, str, str], list[bytes]]] = []
        for entry in self.timeline:
            if entry.kind == "message" and _pinned_ts(entry) in self.shown_ts:
                continue  # shown, once, where the message is in the transcript
            micros, rank, kind, id_, actor, text, ts = _entry_key(entry)
            chunk = "\n".join(self.entry_lines(entry)).encode()
            items.append(((micros, 0, rank, kind, id_, actor, text, ts), [chunk]))
        chunk_of = self.message_chunk
        for top in self.transcript:
            chunks = [chunk_of(top)]
            for reply in top.replies:
                chunks.append(chunk_of(reply, indent="  ", reply=True))
            items.append(((top.micros, 1, 0, "", 0, "", "", top.ts), chunks))
        items.sort(key=_FIRST)
        out = [b"## Timeline", b""]
        if not items:
            out.append(b"Nothing recorded.")
        for _, chunks in items:
            out += chunks
        return out

    def status_updates(self) -> list[str]:
        out = ["## Status updates", ""]
        if not self.updates:
            return [*out, "None posted."]
        for u in self.updates:
            head = f"**{_when(u.posted_at)}** · {_one_line(u.status)} · {self.name(u.posted_by)}"
            out += _item(head, _block(u.summary))
        return out

    def follow_ups(self) -> list[str]:
        out = ["## Follow-ups", ""]
        rows = sorted(
            self.f.follow_ups,
            key=lambda f: (_micros(f.created_at), f.id or 0, f.text, f.owner or ""),
        )
        if not rows:
            return [*out, "None recorded."]
        for f in rows:
            owner = f"(owner: {self.name(f.owner)})" if f.owner else "(no owner yet)"
            lines = _block(f.text) or ["*(no text)*"]
            lines[-1] += f" {owner}"
            # Done ones are ticked, as a task list shows them.
            out.append(f"- [{'x' if f.done_at else ' '}] {lines[0]}")
            out += ["  " + line if line else "" for line in lines[1:]]
        return out

    def participants(self) -> list[str]:
        """The people involved (never apps), with how many messages each wrote."""
        counts = self.wrote
        people = set(counts)
        people.add(self.inc.declared_by)
        for entry in self.timeline:
            people.add(entry.actor or "")
            if entry.kind == "message":
                people.add(str((entry.data or {}).get("user") or ""))
        people.update(u.posted_by for u in self.updates)
        people.update(f.created_by for f in self.f.follow_ups)
        for a in self.f.assignments:
            people.update((a.user_id, a.assigned_by))
        people = {uid for uid in people if self.is_person(uid)}
        out = ["## Participants", ""]
        for uid in sorted(people, key=lambda u: (self.raw_name(u).casefold(), self.raw_name(u), u)):
            n = counts[uid]
            out.append(f"- {self.name(uid)} — {n} message{'' if n == 1 else 's'}")
        return out


def render(facts: PostmortemFacts) -> str:
    """The postmortem draft as Markdown; a pure function of ``facts``."""
    return _Renderer(facts).render()
