"""The fake workspace's shared state and its HTTP side, which every family of methods builds on.

``Workspace`` holds the team, its people, channels, views, files and the log of calls. It serves
``/api/<method>`` and hands each call to its handler (the table is ``FakeSlack._api_handlers``
in ``server.py``) once the call has passed Slack's method reference (required arguments, token
types) and any faults or rate limits a test set. The handlers live in one module per family of
methods; this module fakes no Slack method itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import inspect
import itertools
import json
import math
import random
import string
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from aiohttp import web

from .blocks import iter_elements
from .model import (
    Call,
    Channel,
    JsonDict,
    ResponseTarget,
    ResponseUrlPost,
    SlackError,
    Trigger,
    form_value,
    format_ts,
    invalid_arguments,
    opt_str,
    ts_key,
)
from .ratelimits import load_rate_limits
from .socket_mode import SocketModeHub

TRIGGER_TTL = 3.0

# Arguments that carry JSON when sent form-encoded (slack_sdk sends some methods as forms).
JSON_ARGS = frozenset(
    {"blocks", "attachments", "view", "files", "metadata", "document_content", "changes"}
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

REFERENCE_FILE = Path(__file__).resolve().parent / "reference" / "methods.json"


def load_reference(path: Path = REFERENCE_FILE) -> dict[str, JsonDict]:
    """Per method: ``required`` arguments, ``errors``, ``scopes`` and ``json_input_supported``."""
    return json.loads(path.read_text(encoding="utf-8"))


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


# A method's handler: the call's arguments in, the answer's fields besides "ok" out (or
# SlackError for an error answer).
Handler = Callable[[JsonDict], JsonDict]


class Workspace:
    """The state of one fake Slack workspace and the server that answers for it.

    The method families (``users.py``, ``conversations.py``, ``chat.py`` and the rest) extend
    it; ``FakeSlack`` in ``server.py`` puts them together.
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
        self._triggers: dict[str, Trigger] = {}
        self._response_targets: dict[str, ResponseTarget] = {}
        self._seq = itertools.count(1)
        self._rng = random.Random(0)
        self._last_us = 0
        self._runner: web.AppRunner | None = None
        self._base_url: str | None = None
        self._handlers: dict[str, Handler] = self._api_handlers()
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
        self._add_routes(app)
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

    async def __aenter__(self) -> Self:
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

    # -- handlers of the method families --------------------------------------------------------

    def _api_handlers(self) -> dict[str, Handler]:
        """Each Web API method the fake answers, and its handler; ``FakeSlack`` lists them."""
        return {}

    def _add_routes(self, app: web.Application) -> None:
        """Routes besides ``/api/<method>``: the families that serve URLs of their own (file
        uploads and downloads, response URLs) add them in ``FakeSlack``."""

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

    def calls_to(self, method: str) -> list[Call]:
        return [call for call in self.calls if call.method == method]

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
                    args[key] = form_value(value)
        for key in JSON_ARGS & args.keys():
            value = args[key]
            if isinstance(value, str) and value[:1] in "[{":
                # Undecodable JSON stays a string; the handler answers the format error.
                with contextlib.suppress(ValueError):
                    args[key] = json.loads(value)
        return args, opt_str(args.pop("token", None))

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

    def _with_ids(self, blocks: list[JsonDict]) -> list[JsonDict]:
        """Copy of blocks with the block_id/action_id Slack assigns when they are left out."""
        blocks = copy.deepcopy(blocks)
        for block in blocks:
            block.setdefault("block_id", self.random_id())
        for _block, element in iter_elements(blocks):
            if element.get("type") != "image":
                element.setdefault("action_id", self.random_id())
        return blocks


def _tz_offset(tz: str) -> int:
    try:
        offset = datetime.now(ZoneInfo(tz)).utcoffset()
    except (ZoneInfoNotFoundError, ValueError):
        return 0
    return int(offset.total_seconds()) if offset is not None else 0
