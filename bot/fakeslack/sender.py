"""Sends the bot what Slack sends it: to its request URL, signed as Slack signs it
(SlackSender), or as Socket Mode envelopes over the fake's WebSocket (SocketModeSender).

Payloads are built from the FakeSlack workspace (stored messages, views, users), so a test
clicks a button that the bot really posted, with the block_id Slack really assigned. Both
senders build the same payloads and answer with a Reply; only the transport differs.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import itertools
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import aiohttp

from .blocks import STATEFUL_ELEMENTS, iter_elements, options_of
from .model import JsonDict, SlackError
from .server import FakeSlack
from .socket_mode import SLACK_ACK_DEADLINE

SINGLE_OPTION = frozenset({"static_select", "external_select", "radio_buttons", "overflow"})
MULTI_OPTION = frozenset({"multi_static_select", "multi_external_select", "checkboxes"})
TEXT_VALUE = frozenset({"plain_text_input", "email_text_input", "url_text_input", "number_input"})
# element type -> (state key, whether it holds a list)
SELECTED_KEYS: dict[str, tuple[str, bool]] = {
    "users_select": ("selected_user", False),
    "multi_users_select": ("selected_users", True),
    "conversations_select": ("selected_conversation", False),
    "multi_conversations_select": ("selected_conversations", True),
    "channels_select": ("selected_channel", False),
    "multi_channels_select": ("selected_channels", True),
    "datepicker": ("selected_date", False),
    "timepicker": ("selected_time", False),
    "datetimepicker": ("selected_date_time", False),
    "file_input": ("files", True),
}
INITIAL_KEYS: dict[str, str] = {
    "selected_user": "initial_user",
    "selected_users": "initial_users",
    "selected_conversation": "initial_conversation",
    "selected_conversations": "initial_conversations",
    "selected_channel": "initial_channel",
    "selected_channels": "initial_channels",
    "selected_date": "initial_date",
    "selected_time": "initial_time",
    "selected_date_time": "initial_date_time",
}


@dataclass
class Reply:
    """The bot's answer; ``elapsed`` is seconds from sending to the full response.

    Over HTTP: the response's status, body and headers. Over Socket Mode: status 200 with
    the ack's payload in ``json`` (and as JSON text in ``text``; None and "" for an ack
    without one), or status 0 when no ack came within the ack window; ``envelope_id`` names
    the envelope (see ``fake.socket_mode.delivery``).
    """

    status: int
    text: str
    json: Any | None
    elapsed: float
    headers: dict[str, str]
    trigger_id: str | None = None
    response_url_key: str | None = None
    envelope_id: str | None = None

    @property
    def acked_in_time(self) -> bool:
        """Slack shows an error (and retries events) when the ack takes 3 s or more."""
        return self.status != 0 and self.elapsed < SLACK_ACK_DEADLINE


def _find_option(element: JsonDict, choice: Any) -> JsonDict:
    if isinstance(choice, dict):
        return copy.deepcopy(choice)
    if element.get("type", "").endswith("external_select"):
        # Options come from the bot's options endpoint, so echo the value as its label.
        return {"text": {"type": "plain_text", "text": str(choice), "emoji": True}, "value": choice}
    options = options_of(element)
    for option in options:
        if option.get("value") == choice:
            picked = {"text": copy.deepcopy(option["text"]), "value": option["value"]}
            if "description" in option:
                picked["description"] = copy.deepcopy(option["description"])
            return picked
    values = [o.get("value") for o in options]
    raise AssertionError(f"{element.get('action_id')!r} has no option {choice!r}; it has {values}")


def _rich_text(text: str) -> JsonDict:
    return {
        "type": "rich_text",
        "elements": [{"type": "rich_text_section", "elements": [{"type": "text", "text": text}]}],
    }


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple | set) else [value]


def typed_value(element: JsonDict, given: Any) -> JsonDict:
    """One element's entry in ``state.values`` (Slack's shape) for what the user entered."""
    etype = element["type"]
    if isinstance(given, dict) and "type" in given:
        return copy.deepcopy(given)
    if etype in TEXT_VALUE:
        return {"type": etype, "value": None if given is None else str(given)}
    if etype == "rich_text_input":
        rich = given if isinstance(given, dict) or given is None else _rich_text(str(given))
        return {"type": etype, "rich_text_value": rich}
    if etype in SINGLE_OPTION:
        option = None if given is None else _find_option(element, given)
        return {"type": etype, "selected_option": option}
    if etype in MULTI_OPTION:
        return {
            "type": etype,
            "selected_options": [_find_option(element, v) for v in _as_list(given)],
        }
    if etype in SELECTED_KEYS:
        key, many = SELECTED_KEYS[etype]
        return {"type": etype, key: _as_list(given) if many else given}
    return {"type": etype, "value": given}


def initial_value(element: JsonDict) -> JsonDict:
    """An element's state before the user touches it: its ``initial_*`` value, if any."""
    etype = element["type"]
    if etype in TEXT_VALUE:
        initial = element.get("initial_value")
        return {"type": etype, "value": None if initial is None else str(initial)}
    if etype == "rich_text_input":
        return {"type": etype, "rich_text_value": copy.deepcopy(element.get("initial_value"))}
    if etype in SINGLE_OPTION:
        return {"type": etype, "selected_option": copy.deepcopy(element.get("initial_option"))}
    if etype in MULTI_OPTION:
        return {
            "type": etype,
            "selected_options": copy.deepcopy(element.get("initial_options", [])),
        }
    if etype in SELECTED_KEYS:
        key, many = SELECTED_KEYS[etype]
        initial = copy.deepcopy(element.get(INITIAL_KEYS.get(key, "")))
        return {"type": etype, key: (initial or []) if many else initial}
    return {"type": etype, "value": None}


def build_state(
    blocks: list[JsonDict],
    inputs: Mapping[str, Any],
    current: Mapping[str, Mapping[str, JsonDict]] | None = None,
) -> dict[str, dict[str, JsonDict]]:
    """``state.values`` for blocks: ``inputs`` (by action_id) over ``current`` over initials."""
    pending = dict(inputs)
    current = current or {}
    state: dict[str, dict[str, JsonDict]] = {}
    for block, element in iter_elements(blocks):
        action_id = element.get("action_id")
        if element.get("type") not in STATEFUL_ELEMENTS or action_id is None:
            continue
        block_id = block["block_id"]
        if action_id in pending:
            entry = typed_value(element, pending.pop(action_id))
        elif action_id in current.get(block_id, {}):
            entry = copy.deepcopy(current[block_id][action_id])
        else:
            entry = initial_value(element)
        state.setdefault(block_id, {})[action_id] = entry
    if pending:
        have = [e.get("action_id") for _b, e in iter_elements(blocks)]
        raise AssertionError(f"no input with action_id {sorted(pending)}; the view has {have}")
    return state


def fake_view_values(
    view: Mapping[str, Any], **by_action_id: Any
) -> dict[str, dict[str, JsonDict]]:
    """``view.state.values`` as a user filling ``view`` in would produce.

    Keys are action_ids; values are the text typed, an option value (or list of them for
    multi-selects and checkboxes), a user/channel id, a date, or a ready Slack-shaped dict.
    """
    current = view.get("state", {}).get("values", {})
    return build_state(view.get("blocks") or [], by_action_id, current)


def _is_empty(entry: Mapping[str, Any]) -> bool:
    return all(v in (None, "", [], {}) for k, v in entry.items() if k != "type")


def check_submittable(
    view: Mapping[str, Any], values: Mapping[str, Mapping[str, JsonDict]]
) -> None:
    """Raise AssertionError where Slack's client would refuse to submit the modal."""
    for block, element in iter_elements(view.get("blocks") or []):
        if block.get("type") != "input":
            continue
        entry = values.get(block["block_id"], {}).get(element.get("action_id", ""), {})
        where = f"input {block['block_id']!r}/{element.get('action_id')!r}"
        if not block.get("optional", False) and _is_empty(entry):
            raise AssertionError(f"{where} is required; Slack would not submit the view")
        text = entry.get("value")
        if isinstance(text, str) and element.get("type") == "plain_text_input":
            if len(text) < element.get("min_length", 0):
                raise AssertionError(f"{where} is shorter than its min_length")
            if len(text) > element.get("max_length", 3000):
                raise AssertionError(f"{where} is longer than its max_length")


class SlackSender:
    """Posts signed Slack requests to the bot's request URL through one aiohttp session."""

    def __init__(
        self,
        bot_url: str,
        signing_secret: str,
        fake: FakeSlack,
        *,
        verification_token: str = "legacy-verification-token",  # noqa: S107 - fixture value
        timeout: float = 10.0,
    ) -> None:
        self.bot_url = bot_url
        self.signing_secret = signing_secret
        self.fake = fake
        self.verification_token = verification_token
        self.timeout = timeout
        self._session: aiohttp.ClientSession | None = None
        self._seq = itertools.count(1)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> SlackSender:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- signing and transport ------------------------------------------------------------------

    def sign(self, body: bytes, timestamp: int | None = None) -> dict[str, str]:
        """Slack's v0 signature headers for ``body`` at ``timestamp`` (default: now)."""
        ts = str(int(time.time()) if timestamp is None else timestamp)
        base = b"v0:" + ts.encode() + b":" + body
        digest = hmac.new(self.signing_secret.encode(), base, hashlib.sha256).hexdigest()
        return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={digest}"}

    async def raw(self, body: bytes, headers: dict[str, str]) -> Reply:
        """Post ``body`` with exactly ``headers`` (no signing), e.g. to test bad signatures."""
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        started = time.monotonic()
        async with self._session.post(self.bot_url, data=body, headers=headers) as resp:
            text = await resp.text()
            elapsed = time.monotonic() - started
            try:
                parsed = json.loads(text) if text else None
            except ValueError:
                parsed = None
            return Reply(resp.status, text, parsed, elapsed, dict(resp.headers))

    async def _send(
        self,
        body: bytes,
        content_type: str,
        *,
        timestamp: int | None = None,
        extra_headers: dict[str, str] | None = None,
    ) -> Reply:
        headers = {
            "Content-Type": content_type,
            "User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)",
            **self.sign(body, timestamp),
            **(extra_headers or {}),
        }
        return await self.raw(body, headers)

    async def _post_form(self, fields: Mapping[str, str], timestamp: int | None) -> Reply:
        body = urlencode(fields).encode()
        return await self._send(body, "application/x-www-form-urlencoded", timestamp=timestamp)

    async def _post_payload(self, payload: JsonDict, timestamp: int | None) -> Reply:
        # Interactivity payloads arrive as a form with one JSON-encoded field.
        return await self._post_form({"payload": json.dumps(payload)}, timestamp)

    async def _post_event(
        self,
        body: JsonDict,
        retry_num: int | None,
        retry_reason: str | None,
        timestamp: int | None,
    ) -> Reply:
        headers: dict[str, str] = {}
        if retry_num is not None:
            headers["X-Slack-Retry-Num"] = str(retry_num)
            headers["X-Slack-Retry-Reason"] = retry_reason or "http_timeout"
        return await self._send(
            json.dumps(body).encode(),
            "application/json",
            timestamp=timestamp,
            extra_headers=headers,
        )

    # -- workspace lookups ----------------------------------------------------------------------

    def _channel_id(self, channel: str) -> str:
        if channel in self.fake.channels:
            return channel
        found = self.fake.channel_by_name(channel)
        return found.id if found is not None else channel

    def _channel_name(self, channel_id: str) -> str:
        ch = self.fake.channels.get(channel_id)
        if ch is not None and not ch.is_im:
            return ch.name
        if channel_id.startswith("D") or (ch is not None and ch.is_im):
            return "directmessage"
        return channel_id.lower()

    def _user_name(self, user: str) -> str:
        found = self.fake.users.get(user)
        return found["name"] if found is not None else user.lower()

    def _user(self, user: str) -> JsonDict:
        name = self._user_name(user)
        return {"id": user, "username": name, "name": name, "team_id": self.fake.team_id}

    def _team(self) -> JsonDict:
        return {"id": self.fake.team_id, "domain": self.fake.team_domain}

    def _common(self, kind: str, user: str) -> JsonDict:
        return {
            "type": kind,
            "user": self._user(user),
            "api_app_id": self.fake.app_id,
            "token": self.verification_token,
            "team": self._team(),
            "enterprise": None,
            "is_enterprise_install": False,
        }

    @staticmethod
    def _element(blocks: list[JsonDict], action_id: str, where: str) -> tuple[JsonDict, JsonDict]:
        for block, element in iter_elements(blocks):
            if element.get("action_id") == action_id:
                return block, element
        have = [e.get("action_id") for _b, e in iter_elements(blocks)]
        raise AssertionError(f"no element with action_id {action_id!r} in {where}; have {have}")

    @staticmethod
    def _action(
        block: JsonDict,
        element: JsonDict,
        *,
        value: Any,
        selected_option: Any,
        selected_user: str | None,
        selected_options: list[Any] | None,
        extra: Mapping[str, Any],
    ) -> JsonDict:
        etype = element["type"]
        action: JsonDict = {
            "type": etype,
            "action_id": element["action_id"],
            "block_id": block["block_id"],
            "action_ts": f"{time.time():.6f}",
        }
        if etype == "button":
            action["text"] = copy.deepcopy(element.get("text"))
            chosen = value if value is not None else element.get("value")
            if chosen is not None:
                action["value"] = chosen
            if element.get("style"):
                action["style"] = element["style"]
        else:
            given = next(
                (
                    v
                    for v in (selected_option, selected_user, selected_options, value)
                    if v is not None
                ),
                None,
            )
            if given is None:
                raise AssertionError(f"{etype} {element['action_id']!r} needs a value to act on")
            entry = typed_value(element, given)
            entry.pop("type", None)
            action.update(entry)
        action.update(extra)
        return action

    # -- what Slack sends -----------------------------------------------------------------------

    async def command(
        self,
        text: str = "",
        *,
        user: str = "U0ALICE",
        channel: str = "C0GENERAL",
        command: str = "/incident",
        timestamp: int | None = None,
        **extra: Any,
    ) -> Reply:
        """A slash command; ``extra`` adds or overrides form fields."""
        channel_id = self._channel_id(channel)
        url, key = self.fake.new_response_url(channel=channel_id, user=user)
        trigger_id = self.fake.new_trigger_id(user)
        fields = {
            "token": self.verification_token,
            "team_id": self.fake.team_id,
            "team_domain": self.fake.team_domain,
            "channel_id": channel_id,
            "channel_name": self._channel_name(channel_id),
            "user_id": user,
            "user_name": self._user_name(user),
            "command": command,
            "text": text,
            "api_app_id": self.fake.app_id,
            "is_enterprise_install": "false",
            "response_url": url,
            "trigger_id": trigger_id,
            **{k: str(v) for k, v in extra.items()},
        }
        reply = await self._post_form(fields, timestamp)
        reply.trigger_id, reply.response_url_key = trigger_id, key
        return reply

    async def block_action(
        self,
        *,
        user: str,
        channel: str,
        message_ts: str,
        action_id: str,
        value: Any = None,
        selected_option: Any = None,
        selected_user: str | None = None,
        selected_options: list[Any] | None = None,
        timestamp: int | None = None,
        **extra: Any,
    ) -> Reply:
        """A click/selection on an element of a stored (or ephemeral) message.

        ``selected_option(s)`` take option values; ``extra`` is merged into the action
        (e.g. ``selected_date="2024-01-31"``).
        """
        channel_id = self._channel_id(channel)
        message = self.fake.message(channel_id, message_ts)
        ephemeral = None
        if message is None:
            ephemeral = next(
                (
                    e
                    for e in self.fake.ephemerals
                    if e["ts"] == message_ts and e["channel"] == channel_id
                ),
                None,
            )
        if message is None and ephemeral is None:
            raise AssertionError(f"no message {message_ts} in {channel_id}")
        source = message if message is not None else ephemeral
        assert source is not None
        blocks = source.get("blocks") or []
        block, element = self._element(blocks, action_id, f"message {message_ts}")
        action = self._action(
            block,
            element,
            value=value,
            selected_option=selected_option,
            selected_user=selected_user,
            selected_options=selected_options,
            extra=extra,
        )
        url, key = self.fake.new_response_url(
            channel=channel_id, user=user, message_ts=message_ts, ephemeral=ephemeral is not None
        )
        trigger_id = self.fake.new_trigger_id(user)
        container: JsonDict = {
            "type": "message",
            "message_ts": message_ts,
            "channel_id": channel_id,
            "is_ephemeral": ephemeral is not None,
        }
        thread_ts = source.get("thread_ts")
        if thread_ts and thread_ts != message_ts:
            container["thread_ts"] = thread_ts
        payload = self._common("block_actions", user)
        payload.update(
            container=container,
            trigger_id=trigger_id,
            channel={"id": channel_id, "name": self._channel_name(channel_id)},
            state={"values": build_state(blocks, {})},
            response_url=url,
            actions=[action],
        )
        if message is not None:
            payload["message"] = message
        reply = await self._post_payload(payload, timestamp)
        reply.trigger_id, reply.response_url_key = trigger_id, key
        return reply

    async def view_block_action(
        self,
        *,
        user: str,
        view_id: str,
        action_id: str,
        value: Any = None,
        selected_option: Any = None,
        selected_user: str | None = None,
        selected_options: list[Any] | None = None,
        inputs: Mapping[str, Any] | None = None,
        timestamp: int | None = None,
        **extra: Any,
    ) -> Reply:
        """An interaction inside an open modal; ``inputs`` is what the user typed first."""
        view = self._view(view_id)
        if inputs:
            view["state"]["values"] = fake_view_values(view, **inputs)
        block, element = self._element(view["blocks"], action_id, f"view {view_id}")
        action = self._action(
            block,
            element,
            value=value,
            selected_option=selected_option,
            selected_user=selected_user,
            selected_options=selected_options,
            extra=extra,
        )
        if element.get("type") in STATEFUL_ELEMENTS:
            entry = {
                k: v for k, v in action.items() if k not in ("action_id", "block_id", "action_ts")
            }
            view["state"]["values"].setdefault(block["block_id"], {})[action_id] = entry
        trigger_id = self.fake.new_trigger_id(user)
        payload = self._common("block_actions", user)
        view_payload = copy.deepcopy(view)
        view_payload["state"] = {"values": fake_view_values(view)}
        payload.update(
            container={"type": "view", "view_id": view_id},
            trigger_id=trigger_id,
            view=view_payload,
            actions=[action],
        )
        reply = await self._post_payload(payload, timestamp)
        reply.trigger_id = trigger_id
        return reply

    def _view(self, view_id: str) -> JsonDict:
        view = self.fake.views.get(view_id)
        if view is None:
            raise AssertionError(f"no view {view_id}; the bot has opened {list(self.fake.views)}")
        if view_id in self.fake.closed_views:
            raise AssertionError(f"view {view_id} is closed")
        return view

    async def submit_view(
        self,
        view_id: str,
        *,
        user: str,
        values: Mapping[str, Mapping[str, JsonDict]] | None = None,
        inputs: Mapping[str, Any] | None = None,
        check_required: bool = True,
        timestamp: int | None = None,
        **extra: Any,
    ) -> Reply:
        """Submit a modal and apply the bot's ``response_action`` to the fake's views.

        ``inputs`` (by action_id, see ``fake_view_values``) and raw Slack-shaped ``values``
        (block_id -> action_id -> entry) overlay the state; ``extra`` goes into the payload.
        Raises AssertionError where Slack's client would refuse to submit, or where Slack
        would reject the bot's answer.
        """
        view = self._view(view_id)
        state = fake_view_values(view, **dict(inputs or {}))
        for block_id, actions in (values or {}).items():
            state.setdefault(block_id, {}).update(copy.deepcopy(dict(actions)))
        if check_required:
            check_submittable(view, state)
        view_payload = copy.deepcopy(view)
        view_payload["state"] = {"values": state}
        payload = self._common("view_submission", user)
        payload.update(
            trigger_id=self.fake.new_trigger_id(user),
            view=view_payload,
            response_urls=[],
            **extra,
        )
        reply = await self._post_payload(payload, timestamp)
        if reply.status == 200:
            try:
                self.fake.apply_view_response(view_id, reply.json)
            except SlackError as exc:
                raise AssertionError(f"Slack would reject this answer: {exc.body()}") from exc
        return reply

    async def close_view(
        self, view_id: str, *, user: str, timestamp: int | None = None
    ) -> Reply | None:
        """The user closes a modal: view_closed is sent only if it has notify_on_close."""
        view = self._view(view_id)
        self.fake.close_view(view_id)
        if not view.get("notify_on_close"):
            return None
        payload = self._common("view_closed", user)
        payload.update(view=copy.deepcopy(view), is_cleared=False)
        return await self._post_payload(payload, timestamp)

    async def message_shortcut(
        self,
        *,
        callback_id: str,
        user: str,
        channel: str,
        message_ts: str,
        timestamp: int | None = None,
    ) -> Reply:
        channel_id = self._channel_id(channel)
        message = self.fake.message(channel_id, message_ts)
        if message is None:
            raise AssertionError(f"no message {message_ts} in {channel_id}")
        url, key = self.fake.new_response_url(channel=channel_id, user=user)
        trigger_id = self.fake.new_trigger_id(user)
        payload = self._common("message_action", user)
        payload.update(
            callback_id=callback_id,
            trigger_id=trigger_id,
            action_ts=f"{time.time():.6f}",
            message_ts=message_ts,
            response_url=url,
            channel={"id": channel_id, "name": self._channel_name(channel_id)},
            message=message,
        )
        reply = await self._post_payload(payload, timestamp)
        reply.trigger_id, reply.response_url_key = trigger_id, key
        return reply

    async def shortcut(self, *, callback_id: str, user: str, timestamp: int | None = None) -> Reply:
        trigger_id = self.fake.new_trigger_id(user)
        payload = self._common("shortcut", user)
        payload.update(
            callback_id=callback_id, trigger_id=trigger_id, action_ts=f"{time.time():.6f}"
        )
        reply = await self._post_payload(payload, timestamp)
        reply.trigger_id = trigger_id
        return reply

    async def event(
        self,
        event: JsonDict,
        *,
        event_id: str | None = None,
        retry_num: int | None = None,
        retry_reason: str | None = None,
        event_time: int | None = None,
        timestamp: int | None = None,
    ) -> Reply:
        """An Events API ``event_callback``; a retry reuses the first delivery's ``event_id``."""
        inner = dict(event)
        inner.setdefault("event_ts", f"{time.time():.6f}")
        envelope = {
            "token": self.verification_token,
            "team_id": self.fake.team_id,
            "context_team_id": self.fake.team_id,
            "context_enterprise_id": None,
            "api_app_id": self.fake.app_id,
            "event": inner,
            "type": "event_callback",
            "event_id": event_id or f"Ev{next(self._seq):04d}{self.fake.random_id(6).upper()}",
            "event_time": event_time if event_time is not None else int(time.time()),
            "authorizations": [
                {
                    "enterprise_id": None,
                    "team_id": self.fake.team_id,
                    "user_id": self.fake.bot_user_id,
                    "is_bot": True,
                    "is_enterprise_install": False,
                }
            ],
            "is_ext_shared_channel": False,
            "event_context": f"4-{self.fake.random_id(24)}",
        }
        return await self._post_event(envelope, retry_num, retry_reason, timestamp)

    async def reaction_added(
        self,
        *,
        user: str,
        channel: str,
        ts: str,
        reaction: str = "pushpin",
        event_id: str | None = None,
        retry_num: int | None = None,
        timestamp: int | None = None,
    ) -> Reply:
        """Adds the reaction to the fake's message, then sends ``reaction_added``."""
        channel_id = self._channel_id(channel)
        self.fake.add_reaction(channel_id, ts, user, reaction)
        message = self.fake.message(channel_id, ts) or {}
        event = {
            "type": "reaction_added",
            "user": user,
            "reaction": reaction,
            "item": {"type": "message", "channel": channel_id, "ts": ts},
            "item_user": message.get("user"),
            "event_ts": f"{time.time():.6f}",
        }
        return await self.event(event, event_id=event_id, retry_num=retry_num, timestamp=timestamp)

    async def user_message(
        self,
        *,
        user: str,
        channel: str,
        text: str,
        thread_ts: str | None = None,
        event_id: str | None = None,
        timestamp: int | None = None,
    ) -> Reply:
        """A person posts ``text``: stored in the fake, then sent as a ``message`` event."""
        channel_id = self._channel_id(channel)
        message = self.fake.post_as_user(channel_id, user, text, thread_ts=thread_ts)
        ch = self.fake.channels[channel_id]
        channel_type = "im" if ch.is_im else "group" if ch.is_private else "channel"
        event = {**message, "channel": channel_id, "channel_type": channel_type}
        event["event_ts"] = message["ts"]
        return await self.event(event, event_id=event_id, timestamp=timestamp)

    async def url_verification(self, challenge: str = "challenge-token") -> Reply:
        body = {
            "token": self.verification_token,
            "challenge": challenge,
            "type": "url_verification",
        }
        return await self._send(json.dumps(body).encode(), "application/json")


class SocketModeSender(SlackSender):
    """Delivers what SlackSender builds as Socket Mode envelopes through ``fake.socket_mode``.

    The same methods and payloads: slash commands go as ``slash_commands`` envelopes (the
    form fields as a dict), interactivity as ``interactive``, Events API bodies as
    ``events_api`` (``retry_num`` becomes ``retry_attempt``). Nothing is signed, so
    ``timestamp`` arguments are ignored. Each call waits up to ``ack_timeout`` s for the
    ack; an envelope no socket could take, or one not acked in time, answers status 0.
    """

    def __init__(
        self,
        fake: FakeSlack,
        *,
        verification_token: str = "legacy-verification-token",  # noqa: S107 - fixture value
        ack_timeout: float = SLACK_ACK_DEADLINE,
    ) -> None:
        super().__init__("", "", fake, verification_token=verification_token)
        self.ack_timeout = ack_timeout

    async def _deliver(
        self,
        type: str,
        payload: JsonDict,
        *,
        retry_attempt: int | None = None,
        retry_reason: str | None = None,
    ) -> Reply:
        delivery = await self.fake.socket_mode.deliver(
            type,
            payload,
            retry_attempt=retry_attempt,
            retry_reason=retry_reason,
            timeout=self.ack_timeout,
        )
        elapsed = delivery.elapsed
        if elapsed is None or elapsed >= self.ack_timeout:
            waited = 0.0 if delivery.undeliverable else time.monotonic() - delivery.sent_at
            return Reply(0, "", None, waited, {}, envelope_id=delivery.envelope_id)
        answer = delivery.ack_payload
        text = "" if answer is None else json.dumps(answer)
        return Reply(200, text, answer, elapsed, {}, envelope_id=delivery.envelope_id)

    async def _post_form(self, fields: Mapping[str, str], timestamp: int | None) -> Reply:
        return await self._deliver("slash_commands", dict(fields))

    async def _post_payload(self, payload: JsonDict, timestamp: int | None) -> Reply:
        return await self._deliver("interactive", payload)

    async def _post_event(
        self,
        body: JsonDict,
        retry_num: int | None,
        retry_reason: str | None,
        timestamp: int | None,
    ) -> Reply:
        if retry_num is None:
            return await self._deliver("events_api", body)
        reason = retry_reason or "timeout"
        return await self._deliver("events_api", body, retry_attempt=retry_num, retry_reason=reason)

    async def raw(self, body: bytes, headers: dict[str, str]) -> Reply:
        raise AssertionError(
            "Socket Mode has no request URL; send frames with fake.socket_mode.send_raw()"
        )

    async def url_verification(self, challenge: str = "challenge-token") -> Reply:
        raise AssertionError("Slack sends no url_verification over Socket Mode")
