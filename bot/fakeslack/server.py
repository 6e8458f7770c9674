"""A fake of Slack's Web API: an aiohttp app on a local port with an in-memory workspace.

The bot under test talks to it through its real ``AsyncWebClient`` (``base_url=fake.api_url``).
Required arguments and error codes follow Slack's machine-readable method reference, kept in
``reference/methods.json`` (see ``reference/NOTICE.md``): a method missing there answers
``unknown_method``, so the bot cannot come to depend on a method the project has not reviewed.

Socket Mode: ``apps.connections.open`` takes the app-level token (``app_token``) and answers a
``ws://`` URL served on the same port by ``fake.socket_mode`` (see ``socket_mode.py``);
``revoke_app_token``, ``socket_mode_refuse`` and ``socket_mode_unreachable`` break it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import inspect
import itertools
import json
import math
import mimetypes
import random
import re
import string
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from aiohttp import web

from .socket_mode import SocketModeHub

JsonDict = dict[str, Any]

MAX_MESSAGE_BLOCKS = 50
MAX_VIEW_BLOCKS = 100
MAX_TEXT_LENGTH = 40_000
MAX_ATTACHMENTS = 100
MAX_TOPIC_LENGTH = 250
MAX_CHANNEL_NAME = 80
TRIGGER_TTL = 3.0

# Arguments that carry JSON when sent form-encoded (slack_sdk sends some methods as forms).
JSON_ARGS = frozenset(
    {"blocks", "attachments", "view", "files", "metadata", "document_content", "changes"}
)
# Slack answers these messages itself; helpers can leave them out of what they return.
SYSTEM_SUBTYPES = frozenset(
    {
        "channel_join",
        "channel_leave",
        "channel_topic",
        "channel_purpose",
        "channel_name",
        "channel_archive",
        "pinned_item",
    }
)
# Error codes Slack gives when a particular required argument is missing, in order of
# preference; the first one the method documents wins.
MISSING_ARG_ERRORS: dict[str, tuple[str, ...]] = {
    "channel": ("channel_not_found",),
    "channel_id": ("channel_not_found",),
    "name": ("invalid_name_required", "invalid_name"),
    "user": ("user_not_found",),
    "users": ("no_user",),
    "ts": ("message_not_found",),
    "message_ts": ("message_not_found",),
    "timestamp": ("message_not_found", "no_item_specified"),
    "file": ("file_not_found",),
    "usergroup": ("no_such_subteam",),
    "email": ("users_not_found",),
    "canvas_id": ("canvas_not_found",),
}
# Gaps in the scraped reference (see its README).
EXTRA_REQUIRED: dict[str, tuple[str, ...]] = {"bookmarks.add": ("channel_id",)}
# Methods that take the app-level token (xapp-), and only in the Authorization header.
APP_TOKEN_METHODS = frozenset({"apps.connections.open"})
# Bot and user tokens: the wrong type for app-token methods.
WORKSPACE_TOKEN_PREFIXES = ("xoxb-", "xoxp-")

CHANNEL_NAME_OK = re.compile(r"[a-z0-9_-]+")
REACTION_NAME_OK = re.compile(r"[\w+'-]+(::skin-tone-[2-6])?")
CHANNEL_TYPES = frozenset({"public_channel", "private_channel", "mpim", "im"})

STATEFUL_ELEMENTS = frozenset(
    {
        "plain_text_input",
        "email_text_input",
        "url_text_input",
        "number_input",
        "rich_text_input",
        "static_select",
        "external_select",
        "users_select",
        "conversations_select",
        "channels_select",
        "multi_static_select",
        "multi_external_select",
        "multi_users_select",
        "multi_conversations_select",
        "multi_channels_select",
        "radio_buttons",
        "checkboxes",
        "datepicker",
        "timepicker",
        "datetimepicker",
        "file_input",
    }
)
ELEMENT_TYPES = STATEFUL_ELEMENTS | {"button", "overflow", "image", "workflow_button"}
BLOCK_TYPES = frozenset(
    {
        "section",
        "divider",
        "image",
        "actions",
        "context",
        "input",
        "header",
        "rich_text",
        "markdown",
        "video",
        "file",
        "call",
        "table",
        "context_actions",
    }
)
OPTION_LIMITS: dict[str, tuple[int, int]] = {
    "static_select": (1, 100),
    "multi_static_select": (1, 100),
    "overflow": (1, 5),
    "radio_buttons": (1, 10),
    "checkboxes": (1, 10),
}


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
class _Fault:
    method: str
    error: str | None
    status: int
    retry_after: int | None
    remaining: int
    drop: bool

    def answer(self) -> tuple[JsonDict, int, dict[str, str]]:
        if self.retry_after is not None or self.status == 429:
            retry = self.retry_after if self.retry_after is not None else 1
            body = {"ok": False, "error": self.error or "ratelimited"}
            return body, 429, {"Retry-After": str(retry)}
        return {"ok": False, "error": self.error or "internal_error"}, self.status, {}


@dataclass
class _Trigger:
    issued: float
    user: str | None
    used: bool = False


@dataclass
class _ResponseTarget:
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


def _as_bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in {"1", "true", "yes"}
    return bool(value)


def _opt_str(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return str(value)


def _encode_cursor(kind: str, value: str) -> str:
    return base64.b64encode(f"{kind}:{value}".encode()).decode()


def _decode_cursor(cursor: str, kind: str) -> str:
    try:
        decoded = base64.b64decode(cursor.encode(), validate=True).decode()
    except ValueError as exc:
        raise SlackError("invalid_cursor") from exc
    prefix, sep, value = decoded.partition(":")
    if prefix != kind or not sep or not value:
        raise SlackError("invalid_cursor")
    return value


def _limit(args: JsonDict, default: int, maximum: int) -> int:
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


def _is_top_level(msg: JsonDict) -> bool:
    thread_ts = msg.get("thread_ts")
    return thread_ts is None or thread_ts == msg["ts"] or msg.get("subtype") == "thread_broadcast"


REFERENCE_FILE = Path(__file__).resolve().parent / "reference" / "methods.json"
RATE_LIMITS_FILE = REFERENCE_FILE.with_name("rate_limits.json")


@dataclass(frozen=True)
class RateLimit:
    """At most ``calls`` accepted calls in any sliding window of ``window`` seconds, per
    workspace and method (and per channel when ``per_channel``)."""

    calls: int
    window: float
    per_channel: bool = False

    @property
    def per_minute(self) -> float:
        return self.calls * 60 / self.window


# Slack's documented tiers ("Rate limits" in Slack's API documentation), at their floor:
# Tier 1 1+ per minute, Tier 2 20+, Tier 3 50+, Tier 4 100+.
TIERS: dict[int, RateLimit] = {
    1: RateLimit(1, 60.0),
    2: RateLimit(20, 60.0),
    3: RateLimit(50, 60.0),
    4: RateLimit(100, 60.0),
}
# chat.postMessage's special tier: about one message a second per channel, short bursts
# allowed (three within three seconds here). Its workspace-wide limit is undocumented and
# left out.
POSTING = RateLimit(3, 3.0, per_channel=True)


def load_rate_limits(path: Path = RATE_LIMITS_FILE) -> dict[str, RateLimit]:
    """Each method's documented limit; methods of the special tier other than
    chat.postMessage (auth.test, chat.getPermalink) have no published number and get none."""
    limits: dict[str, RateLimit] = {}
    for method, tier in json.loads(path.read_text(encoding="utf-8")).items():
        if tier == "special":
            if method == "chat.postMessage":
                limits[method] = POSTING
        else:
            limits[method] = TIERS[int(tier)]
    return limits


def load_reference(path: Path = REFERENCE_FILE) -> dict[str, JsonDict]:
    """Per method: ``required`` arguments, ``errors``, ``scopes`` and ``json_input_supported``."""
    return json.loads(path.read_text(encoding="utf-8"))


# ---------------------------------------------------------------------------------------------
# Block Kit checks: the limits real Slack enforces and bots most often trip over.


def _text_object(
    obj: Any, ptr: str, errors: list[str], *, plain: bool = False, max_len: int | None = None
) -> None:
    allowed = {"plain_text"} if plain else {"plain_text", "mrkdwn"}
    if not isinstance(obj, dict) or obj.get("type") not in allowed:
        kinds = " or ".join(sorted(allowed))
        errors.append(f"[ERROR] must be a {kinds} text object [json-pointer:{ptr}]")
        return
    text = obj.get("text")
    if not isinstance(text, str) or not text:
        errors.append(f"[ERROR] must be more than 0 characters [json-pointer:{ptr}/text]")
    elif max_len is not None and len(text) > max_len:
        errors.append(
            f"[ERROR] must be less than {max_len + 1} characters [json-pointer:{ptr}/text]"
        )


def _max_len(value: Any, limit: int, ptr: str, errors: list[str]) -> None:
    if value is not None and (not isinstance(value, str) or len(value) > limit):
        errors.append(
            f"[ERROR] must be a string of at most {limit} characters [json-pointer:{ptr}]"
        )


def options_of(element: JsonDict) -> list[JsonDict]:
    options = list(element.get("options") or [])
    for group in element.get("option_groups") or []:
        options.extend(group.get("options") or [])
    return options


def _check_options(element: JsonDict, ptr: str, errors: list[str]) -> None:
    etype = element["type"]
    plain = etype not in {"radio_buttons", "checkboxes"}
    if "options" not in element and "option_groups" not in element:
        errors.append(f"[ERROR] must provide either options or option_groups [json-pointer:{ptr}]")
        return
    options = options_of(element)
    low, high = OPTION_LIMITS[etype]
    if not low <= len(options) <= high:
        errors.append(
            f"[ERROR] must have between {low} and {high} options [json-pointer:{ptr}/options]"
        )
    values = set()
    for index, option in enumerate(options):
        optr = f"{ptr}/options/{index}"
        if not isinstance(option, dict):
            errors.append(f"[ERROR] must be an option object [json-pointer:{optr}]")
            continue
        _text_object(option.get("text"), f"{optr}/text", errors, plain=plain, max_len=75)
        value = option.get("value")
        if etype != "overflow" or value is not None:
            _max_len(value if value is not None else 0, 150, f"{optr}/value", errors)
        values.add(value)
    initial = [element["initial_option"]] if element.get("initial_option") else []
    initial += element.get("initial_options") or []
    for option in initial:
        if not isinstance(option, dict) or option.get("value") not in values:
            errors.append(
                f"[ERROR] must match one of the options [json-pointer:{ptr}/initial_option]"
            )


def _check_element(element: Any, ptr: str, errors: list[str]) -> None:
    if not isinstance(element, dict) or element.get("type") not in ELEMENT_TYPES:
        errors.append(f"[ERROR] unsupported element type [json-pointer:{ptr}/type]")
        return
    etype = element["type"]
    _max_len(element.get("action_id"), 255, f"{ptr}/action_id", errors)
    if etype == "button":
        _text_object(element.get("text"), f"{ptr}/text", errors, plain=True, max_len=75)
        _max_len(element.get("value"), 2000, f"{ptr}/value", errors)
        _max_len(element.get("url"), 3000, f"{ptr}/url", errors)
        if element.get("style") not in (None, "primary", "danger"):
            errors.append(f"[ERROR] must be primary or danger [json-pointer:{ptr}/style]")
    elif etype in OPTION_LIMITS:
        _check_options(element, ptr, errors)
    elif etype == "image":
        _max_len(element.get("alt_text") or 0, 2000, f"{ptr}/alt_text", errors)
    if "placeholder" in element:
        _text_object(element["placeholder"], f"{ptr}/placeholder", errors, plain=True, max_len=150)
    if etype == "plain_text_input":
        max_length = element.get("max_length")
        if max_length is not None and not (isinstance(max_length, int) and max_length <= 3000):
            errors.append(f"[ERROR] must be at most 3000 [json-pointer:{ptr}/max_length]")


def check_blocks(blocks: Any, *, max_blocks: int, pointer: str = "/blocks") -> list[str]:
    """Slack-style ``[ERROR] ... [json-pointer:...]`` messages for a blocks array."""
    if not isinstance(blocks, list):
        return [f"[ERROR] must be an array [json-pointer:{pointer}]"]
    errors: list[str] = []
    if len(blocks) > max_blocks:
        errors.append(f"[ERROR] no more than {max_blocks} items allowed [json-pointer:{pointer}]")
    block_ids: set[str] = set()
    for index, block in enumerate(blocks):
        ptr = f"{pointer}/{index}"
        if not isinstance(block, dict) or block.get("type") not in BLOCK_TYPES:
            errors.append(f"[ERROR] unsupported block type [json-pointer:{ptr}/type]")
            continue
        block_id = block.get("block_id")
        if block_id is not None:
            _max_len(block_id, 255, f"{ptr}/block_id", errors)
            if block_id in block_ids:
                errors.append(f"[ERROR] duplicate block_id [json-pointer:{ptr}/block_id]")
            block_ids.add(block_id)
        btype = block["type"]
        if btype == "section":
            if "text" in block or "fields" not in block:
                _text_object(block.get("text"), f"{ptr}/text", errors, max_len=3000)
            fields = block.get("fields")
            if fields is not None:
                if not isinstance(fields, list) or len(fields) > 10:
                    errors.append(
                        f"[ERROR] no more than 10 items allowed [json-pointer:{ptr}/fields]"
                    )
                else:
                    for fi, item in enumerate(fields):
                        _text_object(item, f"{ptr}/fields/{fi}", errors, max_len=2000)
            if "accessory" in block:
                _check_element(block["accessory"], f"{ptr}/accessory", errors)
        elif btype == "header":
            _text_object(block.get("text"), f"{ptr}/text", errors, plain=True, max_len=150)
        elif btype == "image":
            if not block.get("image_url") and not block.get("slack_file"):
                errors.append(f"[ERROR] missing required field: image_url [json-pointer:{ptr}]")
            alt = block.get("alt_text")
            if not isinstance(alt, str) or not alt or len(alt) > 2000:
                errors.append(f"[ERROR] must be 1-2000 characters [json-pointer:{ptr}/alt_text]")
        elif btype == "context":
            elements = block.get("elements")
            if not isinstance(elements, list) or not 1 <= len(elements) <= 10:
                errors.append(f"[ERROR] must have 1-10 elements [json-pointer:{ptr}/elements]")
            else:
                for ei, element in enumerate(elements):
                    eptr = f"{ptr}/elements/{ei}"
                    if isinstance(element, dict) and element.get("type") == "image":
                        _check_element(element, eptr, errors)
                    else:
                        _text_object(element, eptr, errors)
        elif btype == "actions":
            elements = block.get("elements")
            if not isinstance(elements, list) or not 1 <= len(elements) <= 25:
                errors.append(f"[ERROR] must have 1-25 elements [json-pointer:{ptr}/elements]")
            else:
                action_ids: set[str] = set()
                for ei, element in enumerate(elements):
                    _check_element(element, f"{ptr}/elements/{ei}", errors)
                    action_id = element.get("action_id") if isinstance(element, dict) else None
                    if action_id is not None and action_id in action_ids:
                        errors.append(
                            f"[ERROR] duplicate action_id [json-pointer:{ptr}/elements/{ei}]"
                        )
                    if action_id is not None:
                        action_ids.add(action_id)
        elif btype == "input":
            _text_object(block.get("label"), f"{ptr}/label", errors, plain=True, max_len=2000)
            if "element" not in block:
                errors.append(f"[ERROR] missing required field: element [json-pointer:{ptr}]")
            else:
                _check_element(block["element"], f"{ptr}/element", errors)
            if "hint" in block:
                _text_object(block["hint"], f"{ptr}/hint", errors, plain=True, max_len=2000)
    return errors


def iter_elements(blocks: Iterable[JsonDict]) -> Iterable[tuple[JsonDict, JsonDict]]:
    """(block, element) for every interactive element, in the order a user sees them."""
    for block in blocks:
        if not isinstance(block, dict):
            continue
        btype = block.get("type")
        if btype == "section" and isinstance(block.get("accessory"), dict):
            yield block, block["accessory"]
        elif btype == "actions":
            for element in block.get("elements") or []:
                if isinstance(element, dict):
                    yield block, element
        elif btype == "input" and isinstance(block.get("element"), dict):
            yield block, block["element"]


# ---------------------------------------------------------------------------------------------


class FakeSlack:
    """An in-memory Slack workspace served over HTTP on 127.0.0.1.

    Use ``async with FakeSlack() as fake:``; point the bot's client at ``fake.api_url``.
    Helpers return copies, so tests can't corrupt the workspace by editing what they read.
    """

    def __init__(
        self,
        *,
        bot_token: str = "xoxb-test-token",  # noqa: S107 - a fixture value, not a secret
        team_id: str = "T0TEST",
        team_domain: str = "acme",
        bot_user_id: str = "UBOT",
        bot_id: str = "BBOT",
        team_name: str = "Acme",
        app_id: str = "A0TEST",
        bot_name: str = "incident-bot",
        app_token: str | None = None,
        rate_limits: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``rate_limits=True`` enforces Slack's documented rate-limit tiers (see
        ``RateLimit``), measured on ``clock`` (seconds; tests may pass a settable one)."""
        self.bot_token = bot_token
        # The app-level token Socket Mode needs (default: xapp-1-<app_id>-1-fakeapptoken).
        self.app_token = app_token if app_token is not None else f"xapp-1-{app_id}-1-fakeapptoken"
        self.team_id = team_id
        self.team_domain = team_domain
        self.team_name = team_name
        self.bot_user_id = bot_user_id
        self.bot_id = bot_id
        self.app_id = app_id
        self.bot_name = bot_name
        self.reference = load_reference()

        self.users: dict[str, JsonDict] = {}
        self.channels: dict[str, Channel] = {}
        self.files: dict[str, JsonDict] = {}
        self.file_contents: dict[str, bytes] = {}
        self.usergroups: dict[str, JsonDict] = {}
        self.bots: dict[str, JsonDict] = {}
        # Users users.info will not show (Slack Connect people from another organisation).
        self.invisible_users: set[str] = set()
        self.views: dict[str, JsonDict] = {}
        self.view_users: dict[str, str | None] = {}
        self.view_stacks: dict[str | None, list[str]] = {}
        self.closed_views: set[str] = set()
        self.home_views: dict[str, str] = {}
        self.canvases: dict[str, JsonDict] = {}
        self.ephemerals: list[JsonDict] = []
        self.calls: list[Call] = []
        self.responses: list[ResponseUrlPost] = []
        self.socket_mode = SocketModeHub(self)

        self.delay = 0.0
        self.trigger_ttl = TRIGGER_TTL
        # Off like a bot without chat:write.public: posting needs channel membership.
        self.chat_write_public = False

        self._delays: dict[str, float] = {}
        self._faults: list[_Fault] = []
        # The client ends of the connections Web API calls came on.
        self.connections: set[Any] = set()
        # Calls being answered now, and the most at once, per method.
        self._open: dict[str, int] = {}
        self._most_open: dict[str, int] = {}
        # Calls read whole and waiting out a delay (set_delay), by method.
        self._holding: dict[str, int] = {}
        self._revoked_app_tokens: set[str] = set()
        self._socket_refusal: _Fault | None = None
        self._rate_limit: tuple[float, int, random.Random] | None = None
        self.rate_limits = load_rate_limits() if rate_limits else {}
        self.clock = clock
        # Times of the accepted calls in each limit's window, oldest first.
        self._windows: dict[tuple[str, ...], deque[float]] = {}
        self._triggers: dict[str, _Trigger] = {}
        self._response_targets: dict[str, _ResponseTarget] = {}
        self._seq = itertools.count(1)
        self._rng = random.Random(0)
        self._last_us = 0
        self._runner: web.AppRunner | None = None
        self._base_url: str | None = None
        self._handlers: dict[str, Callable[[JsonDict], JsonDict]] = {
            "auth.test": self._auth_test,
            "apps.connections.open": self._apps_connections_open,
            "team.info": self._team_info,
            "users.info": self._users_info,
            "users.list": self._users_list,
            "users.lookupByEmail": self._users_lookup_by_email,
            "bots.info": self._bots_info,
            "usergroups.list": self._usergroups_list,
            "usergroups.users.list": self._usergroups_users_list,
            "conversations.create": self._conversations_create,
            "conversations.info": self._conversations_info,
            "conversations.list": self._conversations_list,
            "conversations.invite": self._conversations_invite,
            "conversations.join": self._conversations_join,
            "conversations.members": self._conversations_members,
            "conversations.setTopic": self._conversations_set_topic,
            "conversations.setPurpose": self._conversations_set_purpose,
            "conversations.rename": self._conversations_rename,
            "conversations.archive": self._conversations_archive,
            "conversations.history": self._conversations_history,
            "conversations.replies": self._conversations_replies,
            "conversations.canvases.create": self._conversations_canvases_create,
            "chat.postMessage": self._chat_post_message,
            "chat.update": self._chat_update,
            "chat.delete": self._chat_delete,
            "chat.postEphemeral": self._chat_post_ephemeral,
            "chat.getPermalink": self._chat_get_permalink,
            "pins.add": self._pins_add,
            "pins.remove": self._pins_remove,
            "pins.list": self._pins_list,
            "reactions.add": self._reactions_add,
            "bookmarks.add": self._bookmarks_add,
            "bookmarks.list": self._bookmarks_list,
            "views.open": self._views_open,
            "views.push": self._views_push,
            "views.update": self._views_update,
            "views.publish": self._views_publish,
            "files.getUploadURLExternal": self._files_get_upload_url,
            "files.completeUploadExternal": self._files_complete_upload,
            "files.info": self._files_info,
            "canvases.create": self._canvases_create,
            "canvases.edit": self._canvases_edit,
        }
        self.add_user(bot_user_id, bot_name, real_name=bot_name, is_bot=True)

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(
        self, *, port: int = 0, extend: Callable[[web.Application], None] | None = None
    ) -> None:
        """Serve on 127.0.0.1 (`port` 0: a free one); `extend` adds routes of its own (the
        sandbox's page) to the same server."""
        app = web.Application(client_max_size=100 * 1024 * 1024)
        if extend is not None:
            extend(app)
        app.router.add_route("*", "/api/{method}", self._handle_api)
        app.router.add_post("/upload/{file_id}", self._handle_upload)
        app.router.add_get("/files-pri/{file_id}/{name}", self._handle_download)
        app.router.add_post("/response/{key}", self._handle_response_url)
        app.router.add_get("/link/", self.socket_mode.handle_link)
        app.router.add_get("/link", self.socket_mode.handle_link)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self._base_url = f"http://{host}:{port}"

    async def stop(self) -> None:
        await self.socket_mode.shutdown()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeSlack:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        if self._base_url is None:
            raise RuntimeError("FakeSlack is not started")
        return self._base_url

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/api/"

    # -- workspace setup and inspection ---------------------------------------------------------

    def add_user(
        self,
        id: str,
        name: str,
        *,
        real_name: str | None = None,
        display_name: str | None = None,
        is_bot: bool = False,
        deleted: bool = False,
        tz: str = "UTC",
        email: str | None = None,
    ) -> JsonDict:
        real = real_name if real_name is not None else name
        display = display_name if display_name is not None else ""
        profile: JsonDict = {
            "title": "",
            "phone": "",
            "skype": "",
            "real_name": real,
            "real_name_normalized": real,
            "display_name": display,
            "display_name_normalized": display,
            "fields": None,
            "status_text": "",
            "status_emoji": "",
            "status_expiration": 0,
            "avatar_hash": "g0000000000",
            "first_name": real.split(" ")[0],
            "last_name": " ".join(real.split(" ")[1:]),
            "image_24": f"https://secure.gravatar.com/avatar/{id}.jpg?s=24",
            "image_48": f"https://secure.gravatar.com/avatar/{id}.jpg?s=48",
            "image_72": f"https://secure.gravatar.com/avatar/{id}.jpg?s=72",
            "team": self.team_id,
        }
        if is_bot:
            profile.update(bot_id=self.bot_id, api_app_id=self.app_id, always_active=True)
        else:
            profile["email"] = email or f"{name}@{self.team_domain}.example.com"
        user: JsonDict = {
            "id": id,
            "team_id": self.team_id,
            "name": name,
            "deleted": deleted,
            "color": "9f69e7",
            "real_name": real,
            "tz": tz,
            "tz_label": tz,
            "tz_offset": _tz_offset(tz),
            "profile": profile,
            "is_admin": False,
            "is_owner": False,
            "is_primary_owner": False,
            "is_restricted": False,
            "is_ultra_restricted": False,
            "is_bot": is_bot,
            "is_app_user": False,
            "updated": int(time.time()),
            "is_email_confirmed": not is_bot,
            "who_can_share_contact_card": "EVERYONE",
        }
        self.users[id] = user
        return copy.deepcopy(user)

    def add_channel(
        self,
        name: str,
        *,
        is_private: bool = False,
        members: Iterable[str] = (),
        id: str | None = None,
        topic: str = "",
        purpose: str = "",
    ) -> Channel:
        if self.channel_by_name(name) is not None:
            raise ValueError(f"channel name {name!r} is taken")
        cid = id or self._new_id("C")
        if cid in self.channels:
            raise ValueError(f"channel id {cid!r} is taken")
        channel = Channel(
            id=cid,
            name=name,
            is_private=is_private,
            members=list(dict.fromkeys(members)),
            is_general=name == "general",
        )
        if topic:
            channel.topic = {"value": topic, "creator": "", "last_set": channel.created}
        if purpose:
            channel.purpose = {"value": purpose, "creator": "", "last_set": channel.created}
        self.channels[cid] = channel
        return channel

    def add_usergroup(
        self,
        handle: str,
        *,
        name: str | None = None,
        users: Iterable[str] = (),
        id: str | None = None,
    ) -> JsonDict:
        gid = id or self._new_id("S")
        now = int(time.time())
        group: JsonDict = {
            "id": gid,
            "team_id": self.team_id,
            "is_usergroup": True,
            "name": name or handle,
            "description": "",
            "handle": handle,
            "is_external": False,
            "date_create": now,
            "date_update": now,
            "date_delete": 0,
            "auto_type": None,
            "created_by": self.bot_user_id,
            "updated_by": self.bot_user_id,
            "deleted_by": None,
            "prefs": {"channels": [], "groups": []},
            "users": list(users),
        }
        self.usergroups[gid] = group
        return copy.deepcopy(group)

    def add_bot(self, bot_id: str, name: str, *, user_id: str | None = None) -> JsonDict:
        """An app's bot, as bots.info describes it."""
        bot: JsonDict = {
            "id": bot_id,
            "deleted": False,
            "name": name,
            "updated": int(time.time()),
            "app_id": self._new_id("A"),
            "icons": {"image_36": "https://a.slack-edge.com/bot_36.png"},
        }
        if user_id is not None:
            bot["user_id"] = user_id
        self.bots[bot_id] = bot
        return copy.deepcopy(bot)

    def channel_by_name(self, name: str) -> Channel | None:
        name = name.removeprefix("#")
        for channel in self.channels.values():
            if not channel.is_im and channel.name == name:
                return channel
        return None

    def dm_channel(self, user: str) -> Channel | None:
        """The bot's DM with ``user``, once the bot has written to them."""
        for channel in self.channels.values():
            if channel.is_im and channel.im_user == user:
                return channel
        return None

    def post_as_user(
        self,
        channel: str,
        user: str,
        text: str,
        *,
        ts: str | None = None,
        thread_ts: str | None = None,
        subtype: str | None = None,
        **extra: Any,
    ) -> JsonDict:
        """Store a message a human wrote (no event is sent; see ``SlackSender.user_message``)."""
        ch = self._helper_channel(channel)
        if ts is not None:
            ts_key(ts)
            if ch.find(ts) is not None:
                raise ValueError(f"ts {ts} already used in {ch.id}")
        msg: JsonDict = {
            "type": "message",
            "user": user,
            "text": text,
            "ts": ts or self._new_ts(ch),
            "team": self.team_id,
        }
        if subtype is not None:
            msg["subtype"] = subtype
        else:
            msg["client_msg_id"] = str(uuid.UUID(int=self._rng.getrandbits(128), version=4))
        msg.update(extra)
        self._store(ch, msg, thread_ts=thread_ts)
        return copy.deepcopy(msg)

    def add_reaction(self, channel: str, ts: str, user: str, name: str) -> None:
        ch = self._helper_channel(channel)
        msg = ch.find(ts)
        if msg is None:
            raise KeyError(f"no message {ts} in {ch.id}")
        self._react(msg, user, name)

    def messages(self, channel: str, *, include_system: bool = True) -> list[JsonDict]:
        """Top-level messages (and thread broadcasts), oldest first, as history shows them."""
        ch = self._helper_channel(channel)
        return [
            copy.deepcopy(msg)
            for msg in ch.history
            if _is_top_level(msg) and (include_system or msg.get("subtype") not in SYSTEM_SUBTYPES)
        ]

    def replies(self, channel: str, thread_ts: str) -> list[JsonDict]:
        """The replies in a thread, oldest first, without the parent."""
        ch = self._helper_channel(channel)
        return [
            copy.deepcopy(msg)
            for msg in ch.history
            if msg.get("thread_ts") == thread_ts and msg["ts"] != thread_ts
        ]

    def message(self, channel: str, ts: str) -> JsonDict | None:
        msg = self._helper_channel(channel).find(ts)
        return copy.deepcopy(msg) if msg is not None else None

    def pins(self, channel: str) -> list[str]:
        return list(self._helper_channel(channel).pinned)

    def private_answers(self, user: str) -> list[JsonDict]:
        """What only `user` sees, oldest first: chat.postEphemeral messages and the bot's
        ephemeral answers through response URLs, each with its channel."""
        answers = [dict(e) for e in self.ephemerals if e.get("user") == user]
        for post in self.responses:
            target = self._response_targets.get(post.key)
            body = post.body
            if target is None or target.user != user or not isinstance(body, dict):
                continue
            if body.get("response_type") == "in_channel" or _as_bool(body.get("replace_original")):
                continue
            if _as_bool(body.get("delete_original")):
                continue
            answers.append(
                {
                    "channel": target.channel,
                    "user": user,
                    "text": body.get("text", ""),
                    "blocks": body.get("blocks"),
                    # Ordered with the channel's messages by when it arrived.
                    "ts": f"{post.wall:.6f}",
                }
            )
        return sorted(answers, key=lambda a: float(a["ts"]))

    def view_stack(self, user: str | None) -> list[JsonDict]:
        """The modals open for ``user``, root first."""
        return [copy.deepcopy(self.views[vid]) for vid in self.view_stacks.get(user, [])]

    def calls_to(self, method: str) -> list[Call]:
        return [call for call in self.calls if call.method == method]

    def new_response_url(
        self,
        *,
        channel: str | None = None,
        user: str | None = None,
        message_ts: str | None = None,
        ephemeral: bool = False,
    ) -> tuple[str, str]:
        """A response_url; ``message_ts`` lets replace_original/delete_original act on it."""
        key = f"{next(self._seq):06d}{self._rng.getrandbits(64):016x}"
        self._response_targets[key] = _ResponseTarget(channel, user, message_ts, ephemeral)
        return f"{self.base_url}/response/{key}", key

    def new_trigger_id(self, user: str | None = None) -> str:
        trigger_id = f"{int(time.time())}.{next(self._seq)}.{self._rng.getrandbits(128):032x}"
        self._triggers[trigger_id] = _Trigger(issued=time.monotonic(), user=user)
        return trigger_id

    def close_view(self, view_id: str) -> None:
        """Take a modal (and what was pushed on it) off its user's stack, as closing it does."""
        user = self.view_users.get(view_id)
        stack = self.view_stacks.get(user, [])
        if view_id in stack:
            for vid in stack[stack.index(view_id) :]:
                self.closed_views.add(vid)
            del stack[stack.index(view_id) :]

    def apply_view_response(self, view_id: str, body: Any) -> None:
        """Do what Slack does with the bot's answer to a view_submission.

        No ``response_action`` closes the view (and any pushed on it); ``update``, ``push``,
        ``clear`` and ``errors`` behave as documented. Raises SlackError for a view Slack
        would refuse.
        """
        action = body.get("response_action") if isinstance(body, dict) else None
        user = self.view_users.get(view_id)
        if action == "errors":
            if not isinstance(body.get("errors"), dict) or not body["errors"]:
                raise invalid_arguments("[ERROR] errors must be a non-empty object")
            return
        if action == "update":
            current = self.views[view_id]
            spec = self._view_spec(body.get("view"), {"modal"})
            self.views[view_id] = self._make_view(
                spec,
                view_id=view_id,
                root=current["root_view_id"],
                previous=current["previous_view_id"],
            )
        elif action == "push":
            stack = self.view_stacks.setdefault(user, [])
            if len(stack) >= 3:
                raise SlackError("push_limit_reached")
            spec = self._view_spec(body.get("view"), {"modal"})
            new_id = self._new_id("V")
            root = stack[0] if stack else None
            self.views[new_id] = self._make_view(
                spec, view_id=new_id, root=root, previous=stack[-1] if stack else None
            )
            self.view_users[new_id] = user
            stack.append(new_id)
        elif action == "clear":
            stack = self.view_stacks.get(user) or [view_id]
            self.close_view(stack[0])
        else:
            self.close_view(view_id)

    # -- fault injection ------------------------------------------------------------------------

    def set_delay(self, method: str, seconds: float) -> None:
        self._delays[method] = seconds

    def fail(
        self,
        method: str,
        *,
        error: str | None = None,
        status: int = 200,
        retry_after: int | None = None,
        times: int = 1,
        drop: bool = False,
    ) -> None:
        """Make the next ``times`` calls to ``method`` ("*" = any) fail as described."""
        if times < 1:
            raise ValueError("times must be >= 1")
        self._faults.append(_Fault(method, error, status, retry_after, times, drop))

    def rate_limit_fraction(self, fraction: float, retry_after: int = 1, seed: int = 0) -> None:
        if not 0.0 <= fraction <= 1.0:
            raise ValueError("fraction must be within [0, 1]")
        self._rate_limit = (fraction, retry_after, random.Random(seed)) if fraction else None

    def revoke_app_token(self) -> None:
        """From now on apps.connections.open answers ``invalid_auth`` to the current app token.

        Sockets already open stay up; set ``app_token`` to a new value to issue another token.
        """
        self._revoked_app_tokens.add(self.app_token)

    def socket_mode_refuse(
        self,
        error: str | None = "internal_error",
        *,
        status: int = 200,
        retry_after: int | None = None,
    ) -> None:
        """apps.connections.open fails with ``error`` until called with None.

        ``status=429`` or ``retry_after`` answers ``ratelimited`` with a Retry-After header.
        """
        self._socket_refusal = (
            None
            if error is None
            else _Fault("apps.connections.open", error, status, retry_after, 1, False)
        )

    def socket_mode_unreachable(self, unreachable: bool = True) -> None:
        """Slack out of reach for Socket Mode, until called with False.

        Open sockets are cut without a close frame; apps.connections.open requests and new
        WebSocket handshakes have their connections dropped.
        """
        self.socket_mode.unreachable = unreachable
        if unreachable:
            self.socket_mode.drop()

    def clear_faults(self) -> None:
        self._faults.clear()
        self._rate_limit = None
        self._delays.clear()
        self.delay = 0.0

    async def wait_for(
        self,
        predicate: Callable[[], Any],
        timeout: float = 5.0,
        message: str = "",
    ) -> Any:
        """Poll ``predicate`` every 10 ms until it is truthy; return its value."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if inspect.isawaitable(value):
                value = await value
            if value:
                return value
            if time.monotonic() >= deadline:
                what = message or "condition not met"
                raise AssertionError(f"{what} (after {timeout}s); {self.summary()}")
            await asyncio.sleep(0.01)

    def summary(self, last: int = 12) -> str:
        recent = self.calls[-last:]
        if not recent:
            return "no Web API calls"
        parts = [f"{c.method} {'ok' if c.ok else f'{c.status} {c.error}'}" for c in recent]
        return f"last {len(recent)} of {len(self.calls)} calls: " + ", ".join(parts)

    # -- HTTP -----------------------------------------------------------------------------------

    async def _read_args(self, request: web.Request, method: str) -> tuple[JsonDict, str | None]:
        args: JsonDict = dict(request.query.items())
        if request.method == "POST" and request.can_read_body:
            if request.content_type == "application/json":
                raw = await request.read()
                try:
                    body = json.loads(raw or b"null")
                except ValueError as exc:
                    raise SlackError("invalid_json") from exc
                if not isinstance(body, dict):
                    raise SlackError("invalid_json")
                # Like Slack, methods without JSON support ignore a JSON body.
                if self.reference.get(method, {}).get("json_input_supported") is True:
                    args.update(body)
            else:
                form = await request.post()
                for key, value in form.items():
                    args[key] = _form_value(value)
        for key in JSON_ARGS & args.keys():
            value = args[key]
            if isinstance(value, str) and value[:1] in "[{":
                # Undecodable JSON stays a string; the handler answers the format error.
                with contextlib.suppress(ValueError):
                    args[key] = json.loads(value)
        return args, _opt_str(args.pop("token", None))

    def most_at_once(self, method: str) -> int:
        """The most calls of `method` this fake has been answering at the same time."""
        return self._most_open.get(method, 0)

    def holding(self, method: str) -> int:
        """Calls of `method` the fake has read whole and is holding now (a delay set with
        `set_delay`): a test can act while the caller waits for the answer."""
        return self._holding.get(method, 0)

    async def _handle_api(self, request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"]
        if request.transport is not None:
            self.connections.add(request.transport.get_extra_info("peername"))
        self._open[method] = self._open.get(method, 0) + 1
        self._most_open[method] = max(self._most_open.get(method, 0), self._open[method])
        try:
            return await self._answer_api(request, method)
        finally:
            self._open[method] -= 1

    async def _answer_api(self, request: web.Request, method: str) -> web.StreamResponse:
        at = time.monotonic()
        auth = request.headers.get("Authorization", "")
        header_token = auth.removeprefix("Bearer ").strip() if auth.startswith("Bearer ") else None
        token = header_token
        parse_error: SlackError | None = None
        try:
            args, body_token = await self._read_args(request, method)
            token = token or body_token
        except SlackError as exc:
            args, parse_error = {}, exc
        wait = self.delay + self._delays.get(method, 0.0) + self._delays.get("*", 0.0)
        if wait > 0:
            self._holding[method] = self._holding.get(method, 0) + 1
            try:
                await asyncio.sleep(wait)
            finally:
                self._holding[method] -= 1

        fault = self._take_fault(method)
        if method in APP_TOKEN_METHODS:
            if self.socket_mode.unreachable:
                fault = _Fault(method, None, 0, None, 1, True)
            fault = fault or self._socket_refusal
        if fault is not None and fault.drop:
            self.calls.append(Call(method, args, False, "connection_dropped", 0, at))
            if request.transport is not None:
                request.transport.abort()
            return web.Response(status=500)  # never reaches the client

        headers: dict[str, str] = {}
        if fault is not None:
            body, status, headers = fault.answer()
        elif self._rate_limited():
            assert self._rate_limit is not None
            body, status = {"ok": False, "error": "ratelimited"}, 429
            headers = {"Retry-After": str(self._rate_limit[1])}
        elif (retry_after := self._over_limit(method, args)) is not None:
            body, status = {"ok": False, "error": "ratelimited"}, 429
            headers = {"Retry-After": str(retry_after)}
        else:
            body = self._dispatch(method, args, token, parse_error, header_token=header_token)
            status = 200
        self.calls.append(
            Call(
                method,
                args,
                body.get("ok") is True,
                body.get("error"),
                status,
                at,
                body,
                time.monotonic(),
            )
        )
        return web.json_response(body, status=status, headers=headers)

    def _take_fault(self, method: str) -> _Fault | None:
        for fault in self._faults:
            if fault.method in (method, "*"):
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self._faults.remove(fault)
                return fault
        return None

    def _rate_limited(self) -> bool:
        if self._rate_limit is None:
            return False
        fraction, _, rng = self._rate_limit
        return rng.random() < fraction

    def _over_limit(self, method: str, args: JsonDict) -> int | None:
        """None when the call fits its method's limit (and counts it); otherwise the whole
        seconds until it would, as Slack's Retry-After gives them."""
        limit = self.rate_limits.get(method)
        if limit is None:
            return None
        key: tuple[str, ...] = (self.team_id, method)
        if limit.per_channel:
            key += (str(args.get("channel", "")),)
        now = self.clock()
        window = self._windows.setdefault(key, deque())
        while window and window[0] <= now - limit.window:
            window.popleft()
        if len(window) < limit.calls:
            window.append(now)
            return None
        return max(1, math.ceil(window[0] + limit.window - now))

    def _dispatch(
        self,
        method: str,
        args: JsonDict,
        token: str | None,
        parse_error: SlackError | None,
        *,
        header_token: str | None = None,
    ) -> JsonDict:
        ref = self.reference.get(method)
        handler = self._handlers.get(method)
        if ref is None or handler is None:
            return {"ok": False, "error": "unknown_method", "req_method": method}
        if not token:
            return {"ok": False, "error": "not_authed"}
        if method in APP_TOKEN_METHODS:
            auth_error = self._app_token_error(header_token)
            if auth_error is not None:
                return {"ok": False, "error": auth_error}
        elif token != self.bot_token:
            wrong_type = self._valid_app_token(token)
            return {
                "ok": False,
                "error": "not_allowed_token_type" if wrong_type else "invalid_auth",
            }
        if parse_error is not None:
            return parse_error.body()
        try:
            self._check_required(method, ref, args)
            return {"ok": True, **handler(args)}
        except SlackError as exc:
            return exc.body()

    def _valid_app_token(self, token: str) -> bool:
        return token == self.app_token and token not in self._revoked_app_tokens

    def _app_token_error(self, header_token: str | None) -> str | None:
        if header_token is None:
            # Slack takes an app-level token only from the Authorization header; the same
            # token as a POST parameter is refused.
            return "invalid_auth"
        if header_token.startswith(WORKSPACE_TOKEN_PREFIXES):
            return "not_allowed_token_type"
        if not self._valid_app_token(header_token):
            return "invalid_auth"
        return None

    def _check_required(self, method: str, ref: JsonDict, args: JsonDict) -> None:
        required = [*ref["required"], *EXTRA_REQUIRED.get(method, ())]
        errors = ref["errors"]
        for name in required:
            if name == "token" or args.get(name) not in (None, ""):
                continue
            for code in MISSING_ARG_ERRORS.get(name, ()):
                if code in errors:
                    raise SlackError(code)
            if "missing_argument" in errors:
                raise SlackError("missing_argument")
            raise invalid_arguments(f"[ERROR] missing required field: {name}")

    async def _handle_upload(self, request: web.Request) -> web.StreamResponse:
        file_id = request.match_info["file_id"]
        if file_id not in self.files:
            return web.Response(status=404, text="file_not_found")
        if request.content_type.startswith("multipart/"):
            form = await request.post()
            parts = [_form_value(v) for v in form.values() if not isinstance(v, str)]
            data = parts[0] if parts and isinstance(parts[0], bytes) else b""
        else:
            data = await request.read()
        self.file_contents[file_id] = data
        self.files[file_id]["size"] = len(data)
        return web.Response(text=f"OK - {len(data)}")

    async def _handle_download(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Authorization") != f"Bearer {self.bot_token}":
            return web.Response(status=403, text="forbidden")
        data = self.file_contents.get(request.match_info["file_id"])
        if data is None:
            return web.Response(status=404, text="not found")
        return web.Response(body=data, content_type="application/octet-stream")

    async def _handle_response_url(self, request: web.Request) -> web.StreamResponse:
        key = request.match_info["key"]
        target = self._response_targets.get(key)
        if target is None:
            return web.Response(status=404, text="expired_url")
        raw = await request.read()
        try:
            body = json.loads(raw)
        except ValueError:
            body = raw.decode(errors="replace")
        self.responses.append(ResponseUrlPost(key, body, time.monotonic(), time.time()))
        if not isinstance(body, dict):
            return web.Response(status=400, text="invalid_payload")
        try:
            self._apply_response(target, body)
        except SlackError as exc:
            return web.Response(status=400, text=exc.error)
        return web.Response(text="ok")

    def command_answered(self, *, channel: str, user: str, body: JsonDict) -> None:
        """What Slack does with a slash command's immediate answer (the body of its
        acknowledgement): shown only to the person who typed it, or posted in the channel
        as the app when its `response_type` is `in_channel`."""
        if not body.get("text") and not body.get("blocks"):
            return  # an empty acknowledgement shows nothing
        content = self._message_content(body, max_blocks=MAX_MESSAGE_BLOCKS)
        ch = self.channels.get(channel)
        if body.get("response_type") == "in_channel" and ch is not None:
            self._store(ch, self._bot_message(content), thread_ts=None)
            return
        self.ephemerals.append(
            {
                "channel": channel,
                "user": user,
                "text": content.get("text", ""),
                "blocks": content.get("blocks"),
                "attachments": content.get("attachments"),
                "thread_ts": None,
                "ts": self._new_ts(),
            }
        )

    def _apply_response(self, target: _ResponseTarget, body: JsonDict) -> None:
        ch = self.channels.get(target.channel or "")
        if _as_bool(body.get("delete_original")):
            if target.message_ts is None:
                return
            if target.ephemeral:
                self.ephemerals = [e for e in self.ephemerals if e["ts"] != target.message_ts]
            elif ch is not None and (msg := ch.find(target.message_ts)) is not None:
                self._remove(ch, msg)
            return
        content = self._message_content(body, max_blocks=MAX_MESSAGE_BLOCKS)
        if _as_bool(body.get("replace_original")) and target.message_ts is not None:
            if target.ephemeral:
                for eph in self.ephemerals:
                    if eph["ts"] == target.message_ts:
                        eph.update(content)
            elif ch is not None and (msg := ch.find(target.message_ts)) is not None:
                self._replace_content(msg, content)
            return
        if body.get("response_type") == "in_channel" and ch is not None:
            msg = self._bot_message(content)
            self._store(ch, msg, thread_ts=_opt_str(body.get("thread_ts")))

    # -- internals ------------------------------------------------------------------------------

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}{next(self._seq):08X}"

    def random_id(self, length: int = 5) -> str:
        """Alphanumerics like Slack's generated block_ids (seeded, so runs repeat)."""
        return "".join(
            self._rng.choice(string.ascii_letters + string.digits) for _ in range(length)
        )

    def _new_hash(self) -> str:
        return f"{int(time.time())}.{self._rng.getrandbits(32):08x}"

    def _new_ts(self, ch: Channel | None = None) -> str:
        # Real-time based like Slack's, and strictly increasing even within a microsecond.
        micros = max(time.time_ns() // 1000, self._last_us + 1)
        if ch is not None and ch.history:
            micros = max(micros, ts_key(ch.history[-1]["ts"]) + 1)
        self._last_us = micros
        return format_ts(micros)

    def _helper_channel(self, channel: str) -> Channel:
        ch = self.channels.get(channel) or self.channel_by_name(channel)
        if ch is None and channel in self.users:
            ch = self.dm_channel(channel)
        if ch is None:
            raise KeyError(f"unknown channel {channel!r}")
        return ch

    def _channel(self, args: JsonDict, key: str = "channel") -> Channel:
        """The channel named by ``args[key]`` as the bot sees it (private ones only if a member)."""
        ch = self.channels.get(str(args.get(key) or ""))
        if ch is None or (ch.is_private and self.bot_user_id not in ch.members):
            raise SlackError("channel_not_found")
        return ch

    def _require_member(self, ch: Channel) -> None:
        if not ch.is_im and self.bot_user_id not in ch.members:
            raise SlackError("not_in_channel")

    def _require_active(self, ch: Channel) -> None:
        if ch.is_archived:
            raise SlackError("is_archived")

    def _open_dm(self, user: str) -> Channel:
        ch = self.dm_channel(user)
        if ch is None:
            ch = Channel(id=self._new_id("D"), name="", is_im=True, im_user=user)
            ch.members = [self.bot_user_id, user]
            self.channels[ch.id] = ch
        return ch

    def _post_target(self, value: Any) -> Channel:
        """chat.* take a conversation id, a user id (their DM with the bot) or a channel name."""
        name = str(value or "")
        if name in self.channels:
            return self._channel({"channel": name})
        if name in self.users:
            if self.users[name]["deleted"]:
                raise SlackError("channel_not_found")
            return self._open_dm(name)
        ch = self.channel_by_name(name)
        if ch is None:
            raise SlackError("channel_not_found")
        return self._channel({"channel": ch.id})

    def _check_can_post(self, ch: Channel) -> None:
        self._require_active(ch)
        if ch.is_im or self.bot_user_id in ch.members:
            return
        if self.chat_write_public and not ch.is_private:
            return
        raise SlackError("not_in_channel")

    def _with_ids(self, blocks: list[JsonDict]) -> list[JsonDict]:
        """Copy of blocks with the block_id/action_id Slack assigns when they are left out."""
        blocks = copy.deepcopy(blocks)
        for block in blocks:
            block.setdefault("block_id", self.random_id())
        for _block, element in iter_elements(blocks):
            if element.get("type") != "image":
                element.setdefault("action_id", self.random_id())
        return blocks

    def _message_content(
        self, args: JsonDict, *, max_blocks: int, require: bool = True
    ) -> JsonDict:
        text = args.get("text")
        blocks = args.get("blocks")
        attachments = args.get("attachments")
        markdown = args.get("markdown_text")
        content: JsonDict = {}
        if blocks is not None:
            if not isinstance(blocks, list):
                raise SlackError("invalid_blocks_format")
            errors = check_blocks(blocks, max_blocks=max_blocks)
            if errors:
                raise SlackError(
                    "invalid_blocks", errors=errors, response_metadata={"messages": errors}
                )
            content["blocks"] = self._with_ids(blocks)
        if attachments is not None:
            if not isinstance(attachments, list):
                raise SlackError("invalid_attachments")
            if len(attachments) > MAX_ATTACHMENTS:
                raise SlackError("too_many_attachments")
            content["attachments"] = [
                {**copy.deepcopy(a), "id": index + 1} for index, a in enumerate(attachments)
            ]
        if markdown:
            if text or blocks:
                raise SlackError("markdown_text_conflict")
            text = markdown
        if require and not (text or blocks or attachments):
            raise SlackError("no_text")
        if text is not None:
            text = str(text)
            if len(text) > MAX_TEXT_LENGTH:
                raise SlackError("msg_too_long")
            content["text"] = text
        if isinstance(args.get("metadata"), dict):
            content["metadata"] = copy.deepcopy(args["metadata"])
        return content

    def _bot_message(self, content: JsonDict) -> JsonDict:
        return {
            "user": self.bot_user_id,
            "type": "message",
            "ts": "",
            "bot_id": self.bot_id,
            "app_id": self.app_id,
            "text": content.get("text", ""),
            "team": self.team_id,
            "bot_profile": {
                "id": self.bot_id,
                "app_id": self.app_id,
                "name": self.bot_name,
                "deleted": False,
                "team_id": self.team_id,
                "updated": 0,
                "icons": {"image_48": "https://a.slack-edge.com/bot_48.png"},
            },
            **{k: v for k, v in content.items() if k != "text"},
        }

    def _store(
        self, ch: Channel, msg: JsonDict, *, thread_ts: str | None = None, broadcast: bool = False
    ) -> JsonDict:
        if not msg.get("ts"):
            msg["ts"] = self._new_ts(ch)
        if thread_ts is not None:
            parent = ch.find(thread_ts)
            # Replying to a reply goes to its thread, as in Slack's clients.
            if parent is not None and parent.get("thread_ts") not in (None, parent["ts"]):
                parent = ch.find(parent["thread_ts"]) or parent
            root = parent["ts"] if parent is not None else thread_ts
            msg["thread_ts"] = root
            if parent is not None:
                msg["parent_user_id"] = parent.get("user")
            if broadcast:
                msg["subtype"] = "thread_broadcast"
        ch.insert(msg)
        if thread_ts is not None:
            self._refresh_thread(ch, msg["thread_ts"])
        return msg

    def _refresh_thread(self, ch: Channel, root_ts: str) -> None:
        parent = ch.find(root_ts)
        if parent is None:
            return
        replies = [m for m in ch.history if m.get("thread_ts") == root_ts and m["ts"] != root_ts]
        if replies:
            users = list(dict.fromkeys(m.get("user") for m in replies if m.get("user")))
            parent.update(
                thread_ts=root_ts,
                reply_count=len(replies),
                reply_users=users,
                reply_users_count=len(users),
                latest_reply=replies[-1]["ts"],
                is_locked=False,
                subscribed=False,
            )
        else:
            for key in (
                "thread_ts",
                "reply_count",
                "reply_users",
                "reply_users_count",
                "latest_reply",
                "is_locked",
                "subscribed",
            ):
                parent.pop(key, None)

    def _remove(self, ch: Channel, msg: JsonDict) -> None:
        ch.history.remove(msg)
        ch.pinned.pop(msg["ts"], None)
        thread_ts = msg.get("thread_ts")
        if thread_ts and thread_ts != msg["ts"]:
            self._refresh_thread(ch, thread_ts)

    def _post_system(self, ch: Channel, user: str, subtype: str, text: str, **extra: Any) -> None:
        msg = {"type": "message", "subtype": subtype, "user": user, "text": text, "ts": "", **extra}
        self._store(ch, msg)

    def _replace_content(self, msg: JsonDict, content: JsonDict) -> None:
        if "text" in content:
            msg["text"] = content["text"]
        for key in ("blocks", "attachments"):
            if key in content:
                if content[key]:
                    msg[key] = content[key]
                else:
                    msg.pop(key, None)  # an empty array removes them, as in Slack
        if "metadata" in content:
            msg["metadata"] = content["metadata"]

    def _react(self, msg: JsonDict, user: str, name: str) -> bool:
        reactions = msg.setdefault("reactions", [])
        for reaction in reactions:
            if reaction["name"] == name:
                if user in reaction["users"]:
                    return False
                reaction["users"].append(user)
                reaction["count"] += 1
                return True
        reactions.append({"name": name, "users": [user], "count": 1})
        return True

    def _permalink(self, ch: Channel, msg: JsonDict) -> str:
        link = (
            f"https://{self.team_domain}.slack.com/archives/{ch.id}/p{msg['ts'].replace('.', '')}"
        )
        thread_ts = msg.get("thread_ts")
        if thread_ts and thread_ts != msg["ts"]:
            link += f"?thread_ts={thread_ts}&cid={ch.id}"
        return link

    def _channel_api(self, ch: Channel, *, num_members: bool = False) -> JsonDict:
        return ch.to_api(self.team_id, self.bot_user_id, num_members=num_members)

    def _check_name(self, name: Any, *, exclude: Channel | None = None) -> str:
        name = str(name or "")
        if not name:
            raise SlackError("invalid_name_required")
        if len(name) > MAX_CHANNEL_NAME:
            raise SlackError("invalid_name_maxlength")
        if not CHANNEL_NAME_OK.fullmatch(name):
            raise SlackError("invalid_name_specials")
        if not re.search(r"[a-z0-9]", name):
            raise SlackError("invalid_name_punctuation")
        taken = self.channel_by_name(name)
        if taken is not None and taken is not exclude:
            raise SlackError("name_taken")
        return name

    # -- auth, team, users ----------------------------------------------------------------------

    def _apps_connections_open(self, args: JsonDict) -> JsonDict:
        return {"url": self.socket_mode.new_url()}

    def _auth_test(self, args: JsonDict) -> JsonDict:
        return {
            "url": f"https://{self.team_domain}.slack.com/",
            "team": self.team_name,
            "user": self.bot_name,
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
            "is_enterprise_install": False,
        }

    def _team_info(self, args: JsonDict) -> JsonDict:
        if args.get("team") not in (None, "", self.team_id):
            raise SlackError("team_not_found")
        return {
            "team": {
                "id": self.team_id,
                "name": self.team_name,
                "url": f"https://{self.team_domain}.slack.com/",
                "domain": self.team_domain,
                "email_domain": "",
                "icon": {"image_default": True},
                "avatar_base_url": "https://ca.slack-edge.com/",
                "is_verified": False,
            }
        }

    def _users_info(self, args: JsonDict) -> JsonDict:
        if str(args["user"]) in self.invisible_users:
            raise SlackError("user_not_visible")
        user = self.users.get(str(args["user"]))
        if user is None:
            raise SlackError("user_not_found")
        return {"user": copy.deepcopy(user)}

    def _bots_info(self, args: JsonDict) -> JsonDict:
        bot = self.bots.get(str(args.get("bot") or ""))
        if bot is None:
            raise SlackError("bot_not_found")
        return {"bot": copy.deepcopy(bot)}

    def _users_list(self, args: JsonDict) -> JsonDict:
        users = list(self.users.values())
        limit = _limit(args, len(users) or 1, 1000)
        page, cursor = self._page(users, [u["id"] for u in users], args, limit, "users")
        return {
            "members": copy.deepcopy(page),
            "cache_ts": int(time.time()),
            "response_metadata": {"next_cursor": cursor},
        }

    def _users_lookup_by_email(self, args: JsonDict) -> JsonDict:
        email = str(args["email"]).lower()
        for user in self.users.values():
            if str(user["profile"].get("email", "")).lower() == email:
                return {"user": copy.deepcopy(user)}
        raise SlackError("users_not_found")

    def _usergroups_list(self, args: JsonDict) -> JsonDict:
        groups = []
        for group in self.usergroups.values():
            data = copy.deepcopy(group)
            users = data.pop("users")
            if _as_bool(args.get("include_users")):
                data["users"] = users
            if _as_bool(args.get("include_count")):
                data["user_count"] = len(users)
            groups.append(data)
        return {"usergroups": groups}

    def _usergroups_users_list(self, args: JsonDict) -> JsonDict:
        group = self.usergroups.get(str(args["usergroup"]))
        if group is None:
            raise SlackError("no_such_subteam")
        return {"users": list(group["users"])}

    def _page(
        self, items: list[Any], ids: list[str], args: JsonDict, limit: int, kind: str
    ) -> tuple[list[Any], str]:
        start = 0
        cursor = _opt_str(args.get("cursor"))
        if cursor is not None:
            target = _decode_cursor(cursor, kind)
            if target not in ids:
                raise SlackError("invalid_cursor")
            start = ids.index(target)
        end = start + limit
        next_cursor = _encode_cursor(kind, ids[end]) if end < len(ids) else ""
        return items[start:end], next_cursor

    # -- conversations --------------------------------------------------------------------------

    def _conversations_create(self, args: JsonDict) -> JsonDict:
        name = self._check_name(args.get("name"))
        ch = Channel(
            id=self._new_id("C"),
            name=name,
            is_private=_as_bool(args.get("is_private")),
            members=[self.bot_user_id],
            creator=self.bot_user_id,
        )
        self.channels[ch.id] = ch
        self._post_system(
            ch, self.bot_user_id, "channel_join", f"<@{self.bot_user_id}> has joined the channel"
        )
        return {"channel": self._channel_api(ch)}

    def _conversations_info(self, args: JsonDict) -> JsonDict:
        ch = self._channel(args)
        return {
            "channel": self._channel_api(ch, num_members=_as_bool(args.get("include_num_members")))
        }

    def _conversations_list(self, args: JsonDict) -> JsonDict:
        types = {
            t.strip() for t in str(args.get("types") or "public_channel").split(",") if t.strip()
        }
        if not types or not types <= CHANNEL_TYPES:
            raise SlackError("invalid_types")
        exclude_archived = _as_bool(args.get("exclude_archived"))
        selected = []
        for ch in self.channels.values():
            if ch.is_im:
                wanted = "im" in types
            elif ch.is_private:
                wanted = "private_channel" in types and self.bot_user_id in ch.members
            else:
                wanted = "public_channel" in types
            if wanted and not (exclude_archived and ch.is_archived):
                selected.append(ch)
        limit = _limit(args, 100, 1000)
        page, cursor = self._page(selected, [c.id for c in selected], args, limit, "team")
        return {
            "channels": [self._channel_api(c, num_members=not c.is_im) for c in page],
            "response_metadata": {"next_cursor": cursor},
        }

    def _conversations_invite(self, args: JsonDict) -> JsonDict:
        ch = self._channel(args)
        raw = args["users"]
        users = [
            u.strip() for u in (raw if isinstance(raw, list) else str(raw).split(",")) if u.strip()
        ]
        if not users:
            raise SlackError("no_user")
        if ch.is_im:
            raise SlackError("method_not_supported_for_channel_type")
        self._require_active(ch)
        self._require_member(ch)
        for user in users:
            if user == self.bot_user_id:
                raise SlackError("cant_invite_self")
            if user not in self.users:
                raise SlackError("user_not_found")
            if self.users[user]["deleted"]:
                raise SlackError("cant_invite")
        new = [u for u in dict.fromkeys(users) if u not in ch.members]
        if not new:
            raise SlackError("already_in_channel")
        for user in new:
            ch.members.append(user)
            self._post_system(
                ch,
                user,
                "channel_join",
                f"<@{user}> has joined the channel",
                inviter=self.bot_user_id,
            )
        return {"channel": self._channel_api(ch)}

    def _conversations_join(self, args: JsonDict) -> JsonDict:
        ch = self._channel(args)
        if ch.is_im or ch.is_private:
            raise SlackError("method_not_supported_for_channel_type")
        self._require_active(ch)
        if self.bot_user_id in ch.members:
            return {
                "channel": self._channel_api(ch),
                "warning": "already_in_channel",
                "response_metadata": {"warnings": ["already_in_channel"]},
            }
        ch.members.append(self.bot_user_id)
        self._post_system(
            ch, self.bot_user_id, "channel_join", f"<@{self.bot_user_id}> has joined the channel"
        )
        return {"channel": self._channel_api(ch)}

    def _conversations_members(self, args: JsonDict) -> JsonDict:
        ch = self._channel(args)
        limit = _limit(args, 100, 1000)
        page, cursor = self._page(ch.members, ch.members, args, limit, "user")
        return {"members": list(page), "response_metadata": {"next_cursor": cursor}}

    def _set_text_field(self, args: JsonDict, key: str) -> JsonDict:
        ch = self._channel(args)
        if ch.is_im:
            raise SlackError("method_not_supported_for_channel_type")
        self._require_active(ch)
        self._require_member(ch)
        value = str(args[key])
        if len(value) > MAX_TOPIC_LENGTH:
            raise SlackError("too_long")
        now = int(time.time())
        record = {"value": value, "creator": self.bot_user_id, "last_set": now}
        if key == "topic":
            ch.topic = record
            text = f"set the channel topic: {value}" if value else "cleared the channel topic"
            self._post_system(ch, self.bot_user_id, "channel_topic", text, topic=value)
        else:
            ch.purpose = record
            text = (
                f"set the channel description: {value}"
                if value
                else "cleared the channel description"
            )
            self._post_system(ch, self.bot_user_id, "channel_purpose", text, purpose=value)
        return {"channel": self._channel_api(ch)}

    def _conversations_set_topic(self, args: JsonDict) -> JsonDict:
        return self._set_text_field(args, "topic")

    def _conversations_set_purpose(self, args: JsonDict) -> JsonDict:
        return self._set_text_field(args, "purpose")

    def _conversations_rename(self, args: JsonDict) -> JsonDict:
        ch = self._channel(args)
        if ch.is_im:
            raise SlackError("method_not_supported_for_channel_type")
        self._require_active(ch)
        self._require_member(ch)
        name = self._check_name(args.get("name"), exclude=ch)
        if name != ch.name:
            old = ch.name
            ch.previous_names.insert(0, old)
            ch.name = name
            self._post_system(
                ch,
                self.bot_user_id,
                "channel_name",
                f'renamed the channel from "{old}" to "{name}"',
                old_name=old,
                name=name,
            )
        return {"channel": self._channel_api(ch)}

    def _conversations_archive(self, args: JsonDict) -> JsonDict:
        ch = self._channel(args)
        if ch.is_im:
            raise SlackError("method_not_supported_for_channel_type")
        if ch.is_archived:
            raise SlackError("already_archived")
        if ch.is_general:
            raise SlackError("cant_archive_general")
        self._require_member(ch)
        self._post_system(ch, self.bot_user_id, "channel_archive", "archived the channel")
        ch.is_archived = True
        return {}

    def _ts_bounds(self, args: JsonDict) -> tuple[int, int, bool]:
        try:
            oldest = ts_key(str(args.get("oldest") or "0"))
        except ValueError as exc:
            raise SlackError("invalid_ts_oldest") from exc
        latest_arg = _opt_str(args.get("latest"))
        try:
            latest = ts_key(latest_arg) if latest_arg and latest_arg != "now" else 1 << 62
        except ValueError as exc:
            raise SlackError("invalid_ts_latest") from exc
        return oldest, latest, _as_bool(args.get("inclusive"))

    def _conversations_history(self, args: JsonDict) -> JsonDict:
        ch = self._channel(args)
        self._require_member(ch)
        oldest, latest, inclusive = self._ts_bounds(args)

        def wanted(msg: JsonDict) -> bool:
            key = ts_key(msg["ts"])
            low = key > oldest or (inclusive and key == oldest)
            high = key < latest or (inclusive and key == latest)
            return low and high

        items = [m for m in reversed(ch.history) if _is_top_level(m) and wanted(m)]
        cursor = _opt_str(args.get("cursor"))
        if cursor is not None:
            try:
                start_key = int(_decode_cursor(cursor, "next_ts"))
            except ValueError as exc:
                raise SlackError("invalid_cursor") from exc
            items = [m for m in items if ts_key(m["ts"]) <= start_key]
        limit = _limit(args, 100, 999)
        page, rest = items[:limit], items[limit:]
        next_cursor = _encode_cursor("next_ts", str(ts_key(rest[0]["ts"]))) if rest else ""
        return {
            "messages": copy.deepcopy(page),
            "has_more": bool(rest),
            "pin_count": len(ch.pinned),
            "channel_actions_ts": None,
            "channel_actions_count": 0,
            "response_metadata": {"next_cursor": next_cursor},
        }

    def _conversations_replies(self, args: JsonDict) -> JsonDict:
        ch = self._channel(args)
        self._require_member(ch)
        msg = ch.find(str(args["ts"]))
        if msg is None:
            raise SlackError("thread_not_found")
        root_ts = msg.get("thread_ts") or msg["ts"]
        parent = ch.find(root_ts) or msg
        oldest, latest, inclusive = self._ts_bounds(args)

        def wanted(reply: JsonDict) -> bool:
            key = ts_key(reply["ts"])
            low = key > oldest or (inclusive and key == oldest)
            high = key < latest or (inclusive and key == latest)
            return low and high

        replies = [
            m for m in ch.history if m.get("thread_ts") == root_ts and m is not parent and wanted(m)
        ]
        items = [parent, *replies]
        cursor = _opt_str(args.get("cursor"))
        if cursor is not None:
            try:
                start_key = int(_decode_cursor(cursor, "next_ts"))
            except ValueError as exc:
                raise SlackError("invalid_cursor") from exc
            items = [m for m in items if m is not parent and ts_key(m["ts"]) >= start_key]
        limit = _limit(args, 1000, 1000)
        page, rest = items[:limit], items[limit:]
        next_cursor = _encode_cursor("next_ts", str(ts_key(rest[0]["ts"]))) if rest else ""
        return {
            "messages": copy.deepcopy(page),
            "has_more": bool(rest),
            "response_metadata": {"next_cursor": next_cursor},
        }

    def _conversations_canvases_create(self, args: JsonDict) -> JsonDict:
        ch = self._channel(args, "channel_id")
        if ch.canvas_id is not None:
            raise SlackError("channel_canvas_already_exists")
        canvas_id = self._new_canvas(args, ch)
        ch.canvas_id = canvas_id
        return {"canvas_id": canvas_id}

    # -- chat -----------------------------------------------------------------------------------

    def _chat_post_message(self, args: JsonDict) -> JsonDict:
        ch = self._post_target(args["channel"])
        self._check_can_post(ch)
        content = self._message_content(args, max_blocks=MAX_MESSAGE_BLOCKS)
        msg = self._bot_message(content)
        if args.get("username"):
            msg["username"] = str(args["username"])
        self._store(
            ch,
            msg,
            thread_ts=_opt_str(args.get("thread_ts")),
            broadcast=_as_bool(args.get("reply_broadcast")),
        )
        return {"channel": ch.id, "ts": msg["ts"], "message": copy.deepcopy(msg)}

    def _own_message(self, args: JsonDict, ts_arg: str, not_yours: str) -> tuple[Channel, JsonDict]:
        ch = self._post_target(args["channel"])
        msg = ch.find(str(args[ts_arg]))
        if msg is None:
            raise SlackError("message_not_found")
        if msg.get("bot_id") != self.bot_id and msg.get("user") != self.bot_user_id:
            raise SlackError(not_yours)
        return ch, msg

    def _chat_update(self, args: JsonDict) -> JsonDict:
        ch, msg = self._own_message(args, "ts", "cant_update_message")
        if not any(
            args.get(k) is not None for k in ("text", "blocks", "attachments", "markdown_text")
        ):
            raise SlackError("no_text")
        content = self._message_content(args, max_blocks=MAX_MESSAGE_BLOCKS, require=False)
        self._replace_content(msg, content)
        msg["edited"] = {"user": self.bot_user_id, "ts": self._new_ts()}
        return {
            "channel": ch.id,
            "ts": msg["ts"],
            "text": msg.get("text", ""),
            "message": copy.deepcopy(msg),
        }

    def _chat_delete(self, args: JsonDict) -> JsonDict:
        ch, msg = self._own_message(args, "ts", "cant_delete_message")
        self._remove(ch, msg)
        return {"channel": ch.id, "ts": msg["ts"]}

    def _chat_post_ephemeral(self, args: JsonDict) -> JsonDict:
        ch = self._post_target(args["channel"])
        self._check_can_post(ch)
        user = str(args["user"])
        if user not in ch.members:
            raise SlackError("user_not_in_channel")
        content = self._message_content(args, max_blocks=MAX_MESSAGE_BLOCKS)
        ts = self._new_ts()
        self.ephemerals.append(
            {
                "channel": ch.id,
                "user": user,
                "text": content.get("text", ""),
                "blocks": content.get("blocks"),
                "attachments": content.get("attachments"),
                "thread_ts": _opt_str(args.get("thread_ts")),
                "ts": ts,
            }
        )
        return {"message_ts": ts}

    def _chat_get_permalink(self, args: JsonDict) -> JsonDict:
        ch = self._channel(args)
        msg = ch.find(str(args["message_ts"]))
        if msg is None:
            raise SlackError("message_not_found")
        return {"channel": ch.id, "permalink": self._permalink(ch, msg)}

    # -- pins, reactions, bookmarks -------------------------------------------------------------

    def _pin_target(self, args: JsonDict) -> tuple[Channel, JsonDict]:
        ch = self._channel(args)
        ts = _opt_str(args.get("timestamp"))
        if ts is None:
            raise SlackError("no_item_specified")
        try:
            ts_key(ts)
        except ValueError as exc:
            raise SlackError("bad_timestamp") from exc
        msg = ch.find(ts)
        if msg is None:
            raise SlackError("message_not_found")
        return ch, msg

    def _pins_add(self, args: JsonDict) -> JsonDict:
        ch, msg = self._pin_target(args)
        self._require_member(ch)
        if msg["ts"] in ch.pinned:
            raise SlackError("already_pinned")
        ch.pinned[msg["ts"]] = {"created": int(time.time()), "created_by": self.bot_user_id}
        msg.setdefault("pinned_to", []).append(ch.id)
        self._post_system(
            ch,
            self.bot_user_id,
            "pinned_item",
            f"<@{self.bot_user_id}> pinned a message to this channel.",
            item_type="C",
            item={"type": "message", "channel": ch.id, "ts": msg["ts"]},
        )
        return {}

    def _pins_remove(self, args: JsonDict) -> JsonDict:
        ch, msg = self._pin_target(args)
        if ch.pinned.pop(msg["ts"], None) is None:
            raise SlackError("no_pin")
        pinned_to = [c for c in msg.get("pinned_to", []) if c != ch.id]
        if pinned_to:
            msg["pinned_to"] = pinned_to
        else:
            msg.pop("pinned_to", None)
        return {}

    def _pins_list(self, args: JsonDict) -> JsonDict:
        ch = self._channel(args)
        items = []
        for ts, pin in ch.pinned.items():
            msg = ch.find(ts)
            if msg is None:
                continue
            items.append(
                {
                    "type": "message",
                    "channel": ch.id,
                    "created": pin["created"],
                    "created_by": pin["created_by"],
                    "message": {**copy.deepcopy(msg), "permalink": self._permalink(ch, msg)},
                }
            )
        return {"items": items}

    def _reactions_add(self, args: JsonDict) -> JsonDict:
        ch = self._channel(args)
        self._require_active(ch)
        name = str(args["name"])
        if not REACTION_NAME_OK.fullmatch(name):
            raise SlackError("invalid_name")
        ts = str(args["timestamp"])
        try:
            ts_key(ts)
        except ValueError as exc:
            raise SlackError("bad_timestamp") from exc
        msg = ch.find(ts)
        if msg is None:
            raise SlackError("message_not_found")
        if not self._react(msg, self.bot_user_id, name):
            raise SlackError("already_reacted")
        return {}

    def _bookmarks_add(self, args: JsonDict) -> JsonDict:
        ch = self._channel(args, "channel_id")
        if args["type"] != "link":
            raise SlackError("invalid_bookmark_type")
        link = _opt_str(args.get("link"))
        if link is None or not link.startswith(("http://", "https://")):
            raise SlackError("invalid_link")
        bookmark = {
            "id": self._new_id("Bk"),
            "channel_id": ch.id,
            "title": str(args["title"]),
            "link": link,
            "emoji": _opt_str(args.get("emoji")),
            "icon_url": None,
            "type": "link",
            "entity_id": None,
            "date_created": int(time.time()),
            "date_updated": 0,
            "rank": string.ascii_lowercase[len(ch.bookmarks) % 26],
            "last_updated_by_user_id": self.bot_user_id,
            "last_updated_by_team_id": self.team_id,
            "shortcut_id": None,
            "app_id": self.app_id,
        }
        ch.bookmarks.append(bookmark)
        return {"bookmark": copy.deepcopy(bookmark)}

    def _bookmarks_list(self, args: JsonDict) -> JsonDict:
        ch = self._channel(args, "channel_id")
        return {"bookmarks": copy.deepcopy(ch.bookmarks)}

    # -- views ----------------------------------------------------------------------------------

    def _take_trigger(self, args: JsonDict) -> str | None:
        trigger_id = _opt_str(args.get("trigger_id")) or _opt_str(args.get("interactivity_pointer"))
        if trigger_id is None:
            raise invalid_arguments("[ERROR] missing required field: trigger_id")
        trigger = self._triggers.get(trigger_id)
        if trigger is None:
            raise SlackError("invalid_trigger_id")
        if time.monotonic() - trigger.issued > self.trigger_ttl:
            raise SlackError("expired_trigger_id")
        if trigger.used:
            raise SlackError("exchanged_trigger_id")
        trigger.used = True
        return trigger.user

    def _view_spec(self, raw: Any, kinds: set[str]) -> JsonDict:
        if isinstance(raw, str):
            try:
                raw = json.loads(raw)
            except ValueError as exc:
                raise invalid_arguments(
                    "[ERROR] failed to parse view [json-pointer:/view]"
                ) from exc
        if not isinstance(raw, dict):
            raise invalid_arguments("[ERROR] must be an object [json-pointer:/view]")
        errors: list[str] = []
        vtype = raw.get("type")
        if vtype not in kinds:
            errors.append(f"[ERROR] must be one of {sorted(kinds)} [json-pointer:/view/type]")
        blocks = raw.get("blocks")
        errors += check_blocks(blocks, max_blocks=MAX_VIEW_BLOCKS, pointer="/view/blocks")
        if vtype == "modal":
            _text_object(raw.get("title"), "/view/title", errors, plain=True, max_len=24)
            for key in ("submit", "close"):
                if raw.get(key) is not None:
                    _text_object(raw[key], f"/view/{key}", errors, plain=True, max_len=24)
            has_input = isinstance(blocks, list) and any(
                isinstance(b, dict) and b.get("type") == "input" for b in blocks
            )
            if has_input and raw.get("submit") is None:
                errors.append(
                    "[ERROR] submit is required when an input block is within the blocks array "
                    "[json-pointer:/view/submit]"
                )
        _max_len(raw.get("private_metadata"), 3000, "/view/private_metadata", errors)
        _max_len(raw.get("callback_id"), 255, "/view/callback_id", errors)
        _max_len(raw.get("external_id"), 255, "/view/external_id", errors)
        if errors:
            raise invalid_arguments(*errors)
        return raw

    def _make_view(
        self, spec: JsonDict, *, view_id: str, root: str | None, previous: str | None
    ) -> JsonDict:
        external_id = spec.get("external_id") or ""
        if external_id:
            for other in self.views.values():
                if other["external_id"] == external_id and other["id"] != view_id:
                    raise SlackError("duplicate_external_id")
        return {
            "id": view_id,
            "team_id": self.team_id,
            "type": spec["type"],
            "title": copy.deepcopy(spec.get("title")),
            "submit": copy.deepcopy(spec.get("submit")),
            "close": copy.deepcopy(spec.get("close")),
            "blocks": self._with_ids(spec["blocks"]),
            "private_metadata": spec.get("private_metadata") or "",
            "callback_id": spec.get("callback_id") or "",
            "external_id": external_id,
            "state": {"values": {}},
            "hash": self._new_hash(),
            "clear_on_close": bool(spec.get("clear_on_close", False)),
            "notify_on_close": bool(spec.get("notify_on_close", False)),
            "submit_disabled": bool(spec.get("submit_disabled", False)),
            "previous_view_id": previous,
            "root_view_id": root or view_id,
            "app_id": self.app_id,
            "app_installed_team_id": self.team_id,
            "bot_id": self.bot_id,
        }

    def _views_open(self, args: JsonDict) -> JsonDict:
        user = self._take_trigger(args)
        spec = self._view_spec(args["view"], {"modal"})
        view_id = self._new_id("V")
        view = self._make_view(spec, view_id=view_id, root=None, previous=None)
        self.views[view_id] = view
        self.view_users[view_id] = user
        for old in self.view_stacks.get(user, []):
            self.closed_views.add(old)
        self.view_stacks[user] = [view_id]
        return {"view": copy.deepcopy(view)}

    def _views_push(self, args: JsonDict) -> JsonDict:
        user = self._take_trigger(args)
        spec = self._view_spec(args["view"], {"modal"})
        stack = self.view_stacks.get(user) or []
        if not stack:
            raise SlackError("not_found")
        if len(stack) >= 3:
            raise SlackError("push_limit_reached")
        view_id = self._new_id("V")
        view = self._make_view(spec, view_id=view_id, root=stack[0], previous=stack[-1])
        self.views[view_id] = view
        self.view_users[view_id] = user
        stack.append(view_id)
        return {"view": copy.deepcopy(view)}

    def _views_update(self, args: JsonDict) -> JsonDict:
        view_id = _opt_str(args.get("view_id"))
        external_id = _opt_str(args.get("external_id"))
        if view_id is None and external_id is None:
            raise invalid_arguments("[ERROR] either view_id or external_id is required")
        current = None
        if view_id is not None:
            current = self.views.get(view_id)
        else:
            current = next(
                (v for v in self.views.values() if v["external_id"] == external_id), None
            )
        if current is None or current["id"] in self.closed_views:
            raise SlackError("not_found")
        given_hash = _opt_str(args.get("hash"))
        if given_hash is not None and given_hash != current["hash"]:
            raise SlackError("hash_conflict")
        spec = self._view_spec(args["view"], {current["type"]})
        view = self._make_view(
            spec,
            view_id=current["id"],
            root=current["root_view_id"],
            previous=current["previous_view_id"],
        )
        # Slack keeps what the user typed into inputs that are still there.
        kept = {(b["block_id"], e.get("action_id")) for b, e in iter_elements(view["blocks"])}
        for block_id, actions in current["state"]["values"].items():
            for action_id, value in actions.items():
                if (block_id, action_id) in kept:
                    view["state"]["values"].setdefault(block_id, {})[action_id] = value
        self.views[current["id"]] = view
        return {"view": copy.deepcopy(view)}

    def _views_publish(self, args: JsonDict) -> JsonDict:
        user = str(args["user_id"])
        if user not in self.users:
            raise SlackError("user_not_found")
        spec = self._view_spec(args["view"], {"home"})
        current_id = self.home_views.get(user)
        given_hash = _opt_str(args.get("hash"))
        if current_id is not None and given_hash not in (None, self.views[current_id]["hash"]):
            raise SlackError("hash_conflict")
        view_id = current_id or self._new_id("V")
        view = self._make_view(spec, view_id=view_id, root=None, previous=None)
        self.views[view_id] = view
        self.view_users[view_id] = user
        self.home_views[user] = view_id
        return {"view": copy.deepcopy(view)}

    # -- files and canvases ---------------------------------------------------------------------

    def _files_get_upload_url(self, args: JsonDict) -> JsonDict:
        try:
            length = int(args["length"])
        except (TypeError, ValueError) as exc:
            raise invalid_arguments("[ERROR] must be an integer [json-pointer:/length]") from exc
        if length < 1:
            raise SlackError("missing_argument")
        name = str(args["filename"])
        file_id = self._new_id("F")
        now = int(time.time())
        mimetype = mimetypes.guess_type(name)[0] or "application/octet-stream"
        filetype = name.rsplit(".", 1)[-1].lower() if "." in name else "binary"
        self.files[file_id] = {
            "id": file_id,
            "created": now,
            "timestamp": now,
            "name": name,
            "title": name,
            "mimetype": mimetype,
            "filetype": filetype,
            "pretty_type": filetype.upper(),
            "user": self.bot_user_id,
            "user_team": self.team_id,
            "editable": False,
            "size": length,
            "mode": "hosted",
            "is_external": False,
            "external_type": "",
            "is_public": False,
            "public_url_shared": False,
            "display_as_bot": False,
            "username": "",
            "url_private": f"{self.base_url}/files-pri/{file_id}/{name}",
            "url_private_download": f"{self.base_url}/files-pri/{file_id}/{name}",
            "permalink": f"https://{self.team_domain}.slack.com/files/{self.bot_user_id}/{file_id}/{name}",
            "permalink_public": f"https://slack-files.com/{self.team_id}-{file_id}",
            "comments_count": 0,
            "is_starred": False,
            "shares": {},
            "channels": [],
            "groups": [],
            "ims": [],
            "has_rich_preview": False,
            "file_access": "visible",
            "alt_txt": _opt_str(args.get("alt_txt")),
        }
        return {"upload_url": f"{self.base_url}/upload/{file_id}", "file_id": file_id}

    def _files_complete_upload(self, args: JsonDict) -> JsonDict:
        items = args["files"]
        if (
            not isinstance(items, list)
            or not items
            or not all(isinstance(i, dict) and i.get("id") for i in items)
        ):
            raise invalid_arguments(
                "[ERROR] must be a non-empty array of {id, title} [json-pointer:/files]"
            )
        for item in items:
            if item["id"] not in self.files or item["id"] not in self.file_contents:
                raise SlackError("file_not_found")
        channel_ids = []
        if _opt_str(args.get("channel_id")):
            channel_ids.append(str(args["channel_id"]))
        elif _opt_str(args.get("channels")):
            channel_ids += [c.strip() for c in str(args["channels"]).split(",") if c.strip()]
        targets = [self._channel({"channel": cid}) for cid in channel_ids]
        for ch in targets:
            self._check_can_post(ch)
        for item in items:
            if item.get("title"):
                self.files[item["id"]]["title"] = str(item["title"])
        thread_ts = _opt_str(args.get("thread_ts"))
        for ch in targets:
            content = self._message_content(args, max_blocks=MAX_MESSAGE_BLOCKS, require=False)
            content["text"] = str(args.get("initial_comment") or "")
            msg = self._bot_message(content)
            msg.update(upload=True, display_as_bot=False, ts=self._new_ts(ch))
            for item in items:
                file = self.files[item["id"]]
                share: JsonDict = {
                    "ts": msg["ts"],
                    "channel_name": ch.name,
                    "team_id": self.team_id,
                    "share_user_id": self.bot_user_id,
                    "source": "UNKNOWN",
                }
                if thread_ts:
                    share["thread_ts"] = thread_ts
                visibility = "private" if ch.is_private or ch.is_im else "public"
                file["shares"].setdefault(visibility, {}).setdefault(ch.id, []).append(share)
                bucket = "ims" if ch.is_im else "groups" if ch.is_private else "channels"
                if ch.id not in file[bucket]:
                    file[bucket].append(ch.id)
                file["is_public"] = file["is_public"] or visibility == "public"
            msg["files"] = [copy.deepcopy(self.files[item["id"]]) for item in items]
            self._store(ch, msg, thread_ts=thread_ts)
        return {"files": [{"id": i["id"], "title": self.files[i["id"]]["title"]} for i in items]}

    def _files_info(self, args: JsonDict) -> JsonDict:
        file = self.files.get(str(args["file"]))
        if file is None:
            raise SlackError("file_not_found")
        return {
            "file": copy.deepcopy(file),
            "comments": [],
            "response_metadata": {"next_cursor": ""},
        }

    def _new_canvas(self, args: JsonDict, ch: Channel | None) -> str:
        canvas_id = self._new_id("F")
        self.canvases[canvas_id] = {
            "id": canvas_id,
            "title": _opt_str(args.get("title")) or "",
            "channel_id": ch.id if ch else None,
            "document_content": copy.deepcopy(args.get("document_content")),
            "changes": [],
        }
        return canvas_id

    def _canvases_create(self, args: JsonDict) -> JsonDict:
        ch = self._channel(args, "channel_id") if _opt_str(args.get("channel_id")) else None
        return {"canvas_id": self._new_canvas(args, ch)}

    def _canvases_edit(self, args: JsonDict) -> JsonDict:
        canvas = self.canvases.get(str(args["canvas_id"]))
        if canvas is None:
            raise SlackError("canvas_not_found")
        changes = args["changes"]
        if not isinstance(changes, list):
            raise invalid_arguments("[ERROR] must be an array [json-pointer:/changes]")
        canvas["changes"].extend(copy.deepcopy(changes))
        return {}


def _form_value(value: str | bytes | bytearray | web.FileField) -> str | bytes:
    if isinstance(value, str):
        return value
    if isinstance(value, web.FileField):
        return value.file.read()
    return bytes(value)


def _tz_offset(tz: str) -> int:
    try:
        offset = datetime.now(ZoneInfo(tz)).utcoffset()
    except (ZoneInfoNotFoundError, ValueError):
        return 0
    return int(offset.total_seconds()) if offset is not None else 0
