"""What the fake workspace is made of, shared by every family of methods: the error answer
(SlackError), the record of each call (Call, ResponseUrlPost), channels (Channel), and the
helpers that read Slack's arguments: booleans, timestamps, cursors and page limits. It fakes no
Slack method itself."""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

JsonDict = dict[str, Any]


class SlackError(Exception):
    """A Web API error answer: ``{"ok": false, "error": code, **extra}``."""

    def __init__(self, error: str, **extra: Any) -> None:
        super().__init__(error)
        self.error = error
        self.extra = extra

    def body(self) -> JsonDict:
        return {"ok": False, "error": self.error, **self.extra}


def invalid_arguments(*messages: str) -> SlackError:
    return SlackError("invalid_arguments", response_metadata={"messages": list(messages)})


@dataclass
class Call:
    """One Web API request as the fake saw it (``at``, when it arrived, and ``answered``
    are ``time.monotonic()``)."""

    method: str
    args: JsonDict
    ok: bool
    error: str | None
    status: int
    at: float
    response: Any = None
    answered: float = 0.0


@dataclass
class ResponseUrlPost:
    """A JSON body the bot posted to a response_url (``at`` is ``time.monotonic()``)."""

    key: str
    body: Any
    at: float
    wall: float = 0.0


def _empty_topic() -> JsonDict:
    return {"value": "", "creator": "", "last_set": 0}


@dataclass
class Channel:
    """A conversation. ``history`` holds every message, thread replies included, oldest first."""

    id: str
    name: str
    is_private: bool = False
    is_im: bool = False
    im_user: str | None = None
    members: list[str] = field(default_factory=list)
    created: int = field(default_factory=lambda: int(time.time()))
    creator: str = ""
    is_archived: bool = False
    is_general: bool = False
    topic: JsonDict = field(default_factory=_empty_topic)
    purpose: JsonDict = field(default_factory=_empty_topic)
    previous_names: list[str] = field(default_factory=list)
    history: list[JsonDict] = field(default_factory=list)
    pinned: dict[str, JsonDict] = field(default_factory=dict)
    bookmarks: list[JsonDict] = field(default_factory=list)
    canvas_id: str | None = None

    def find(self, ts: str) -> JsonDict | None:
        for msg in self.history:
            if msg["ts"] == ts:
                return msg
        return None

    def insert(self, msg: JsonDict) -> None:
        key = ts_key(msg["ts"])
        index = len(self.history)
        while index > 0 and ts_key(self.history[index - 1]["ts"]) > key:
            index -= 1
        self.history.insert(index, msg)

    def to_api(self, team_id: str, bot_user_id: str, *, num_members: bool = False) -> JsonDict:
        if self.is_im:
            return {
                "id": self.id,
                "created": self.created,
                "is_archived": False,
                "is_im": True,
                "is_org_shared": False,
                "context_team_id": team_id,
                "updated": self.created * 1000,
                "user": self.im_user,
                "is_user_deleted": False,
                "priority": 0,
            }
        data: JsonDict = {
            "id": self.id,
            "name": self.name,
            "is_channel": True,
            "is_group": False,
            "is_im": False,
            "is_mpim": False,
            "is_private": self.is_private,
            "created": self.created,
            "is_archived": self.is_archived,
            "is_general": self.is_general,
            "unlinked": 0,
            "name_normalized": self.name,
            "is_shared": False,
            "is_org_shared": False,
            "is_pending_ext_shared": False,
            "pending_shared": [],
            "context_team_id": team_id,
            "updated": self.created * 1000,
            "parent_conversation": None,
            "creator": self.creator,
            "is_ext_shared": False,
            "shared_team_ids": [team_id],
            "pending_connected_team_ids": [],
            "is_member": bot_user_id in self.members,
            "topic": dict(self.topic),
            "purpose": dict(self.purpose),
            "previous_names": list(self.previous_names),
        }
        if num_members:
            data["num_members"] = len(self.members)
        return data


@dataclass
class Trigger:
    """A trigger_id handed out with an interaction: good once, for ``trigger_ttl`` seconds
    after ``issued`` (``time.monotonic()``)."""

    issued: float
    user: str | None
    used: bool = False


@dataclass
class ResponseTarget:
    """What a response_url answers for: its channel and user, and the message
    ``replace_original`` and ``delete_original`` act on."""

    channel: str | None
    user: str | None
    message_ts: str | None
    ephemeral: bool


def as_typed(text: str) -> str:
    """What Slack's client sends for text a person typed: `&`, `<` and `>` escaped, so a
    message or command never carries markup of its own (mentions and links come from the
    client's pickers, as `<@U…>` and `<https://…>`)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def ts_key(ts: str) -> int:
    """Microseconds of a Slack ts, for ordering; raises ValueError on a malformed one."""
    seconds, _, fraction = str(ts).partition(".")
    if not seconds.isdigit() or (fraction and not fraction.isdigit()):
        raise ValueError(f"bad ts {ts!r}")
    return int(seconds) * 1_000_000 + int(fraction.ljust(6, "0")[:6])


def format_ts(micros: int) -> str:
    return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"


def as_bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in {"1", "true", "yes"}
    return bool(value)


def opt_str(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return str(value)


def encode_cursor(kind: str, value: str) -> str:
    return base64.b64encode(f"{kind}:{value}".encode()).decode()


def decode_cursor(cursor: str, kind: str) -> str:
    try:
        decoded = base64.b64decode(cursor.encode(), validate=True).decode()
    except ValueError as exc:
        raise SlackError("invalid_cursor") from exc
    prefix, sep, value = decoded.partition(":")
    if prefix != kind or not sep or not value:
        raise SlackError("invalid_cursor")
    return value


def page_limit(args: JsonDict, default: int, maximum: int) -> int:
    raw = args.get("limit")
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except (TypeError, ValueError) as exc:
        raise SlackError("invalid_limit") from exc
    if value <= 0:
        return default
    return min(value, maximum)


def paginate(
    items: list[Any], ids: list[str], args: JsonDict, limit: int, kind: str
) -> tuple[list[Any], str]:
    """The page of ``items`` (named by ``ids``) that the cursor in ``args`` starts, and the
    cursor of the next page ("" after the last)."""
    start = 0
    cursor = opt_str(args.get("cursor"))
    if cursor is not None:
        target = decode_cursor(cursor, kind)
        if target not in ids:
            raise SlackError("invalid_cursor")
        start = ids.index(target)
    end = start + limit
    next_cursor = encode_cursor(kind, ids[end]) if end < len(ids) else ""
    return items[start:end], next_cursor


def is_top_level(msg: JsonDict) -> bool:
    thread_ts = msg.get("thread_ts")
    return thread_ts is None or thread_ts == msg["ts"] or msg.get("subtype") == "thread_broadcast"


def form_value(value: str | bytes | bytearray | web.FileField) -> str | bytes:
    if isinstance(value, str):
        return value
    if isinstance(value, web.FileField):
        return value.file.read()
    return bytes(value)
