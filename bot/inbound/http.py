"""What reaches Bolt over HTTP: signed, parseable, complete requests.

Bolt parses the body when it builds its request, before its middleware verifies the
signature, so an unsigned body that is not JSON would end in a 500 and a traceback. Here
the signature is checked on the raw bytes first, by slack_sdk's `SignatureVerifier` (Slack's
v0 scheme, as Bolt checks it, refusing requests older than five minutes), then the body is
parsed and checked for what the listeners read. Bolt verifies the signature again; that
costs nothing and keeps it doing its job.

The verifier decodes the body as UTF-8 before it signs it and reads the timestamp header as
a number; a forged request need be neither. A timestamp that is not a number, or a signature
that is not ASCII, is a refusal here (401), never a 500; a body that is not UTF-8 is signed
as the bytes it is (`Verifier`, the verifier's one override), so one signed with the secret
still gets its 400 and a forged one its 401.

| request                                  | answer                                      |
|------------------------------------------|---------------------------------------------|
| Slack's `ssl_check` (a form, unsigned)   | 200, as Bolt answers it                     |
| unsigned, wrongly signed or stale        | 401, nothing parsed, one info line          |
| signed, but not UTF-8, JSON or a form    | 400, one info line, no traceback            |
| signed, of no known kind, or without     | 400, one info line, no traceback            |
| what its kind must carry                 |                                             |
| `app_rate_limited`                       | 200; one info line (Slack dropped events)   |
| an event no listener takes               | 200, without Bolt's warning                 |
| anything else                            | Bolt                                        |
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs, parse_qsl

from slack_bolt.async_app import AsyncApp
from slack_sdk.signature import SignatureVerifier

log = logging.getLogger(__name__)

Body = dict[str, Any]

# Top-level payloads Slack sends that need no listener: acknowledged here.
QUIET_TYPES = frozenset({"app_rate_limited"})


class Malformed(Exception):
    """A signed request the listeners could not read; the message says what is wrong."""


class Verifier(SignatureVerifier):
    """slack_sdk's verifier, for any bytes: its own raises on a body that is not UTF-8."""

    def generate_signature(self, *, timestamp: str, body: str | bytes) -> str | None:
        if isinstance(body, bytes):
            try:
                text = body.decode("utf-8")
            except UnicodeDecodeError:
                # Slack's scheme signs bytes; the verifier signs text. Only such bodies
                # (never Slack's) are signed here, so that one signed with the secret is
                # answered 400, like any other signed body the listeners cannot read.
                base = b"v0:" + timestamp.encode() + b":" + body
                digest = hmac.new(self.signing_secret.encode(), base, hashlib.sha256)
                return "v0=" + digest.hexdigest()
            return super().generate_signature(timestamp=timestamp, body=text)
        return super().generate_signature(timestamp=timestamp, body=body)


def signed(verifier: SignatureVerifier, raw: bytes, headers: Mapping[str, str]) -> bool:
    """Slack's v0 signature over the raw bytes, made within the last five minutes."""
    try:
        return verifier.is_valid(
            raw, headers.get("X-Slack-Request-Timestamp"), headers.get("X-Slack-Signature")
        )
    except (ValueError, TypeError):
        # A timestamp that is not a number; a signature that is not ASCII.
        return False


def is_ssl_check(raw: bytes) -> bool:
    try:
        form = parse_qs(raw.decode("utf-8"), keep_blank_values=True)
    except UnicodeDecodeError:
        return False
    return form.get("ssl_check") == ["1"] and "payload" not in form


def parse(raw: bytes, content_type: str) -> Body:
    """The body as Bolt will parse it (JSON, a form, or a form whose `payload` is JSON,
    decided by Bolt's rules from the Content-Type header); Malformed when it cannot be, or
    lacks what its kind of request must carry."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise Malformed("the body is not UTF-8") from None
    body: Any
    try:
        if content_type.split(";")[0] == "application/json" or text.startswith("{"):
            body = json.loads(text) if text else {}
        elif "payload" in text:
            form = dict(parse_qsl(text, keep_blank_values=True))
            body = json.loads(form["payload"]) if "payload" in form else {}
        else:
            body = dict(parse_qsl(text, keep_blank_values=True))
    except ValueError:
        raise Malformed("the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise Malformed("the body is not a JSON object")
    missing = lacks(body)
    if missing:
        raise Malformed(f"{_kind(body)} without {missing}")
    return body


# --- what each kind of request must carry -------------------------------------------------

# Paths the listeners read, per kind of payload; "a.b" is body["a"]["b"].
_STRINGS: dict[str, tuple[str, ...]] = {
    "command": ("command", "user_id", "trigger_id", "response_url"),
    "block_actions": ("user.id", "trigger_id"),
    "view_submission": ("user.id", "view.id", "view.callback_id"),
    "view_closed": ("user.id", "view.id"),
    "shortcut": ("user.id", "callback_id", "trigger_id"),
    "message_action": ("user.id", "callback_id", "trigger_id", "channel.id"),
    "block_suggestion": ("user.id", "action_id"),
    "event_callback": ("event.type",),
    "url_verification": ("challenge",),
}
# Slack sends these empty for views and shortcuts made without one.
MAY_BE_EMPTY = frozenset({"view.callback_id", "callback_id"})
_OBJECTS: dict[str, tuple[str, ...]] = {
    "view_submission": ("view.state.values",),
    "message_action": ("message",),
    "event_callback": ("event",),
}
# Events whose listeners read more than their type.
_EVENT_STRINGS: dict[str, tuple[str, ...]] = {
    "reaction_added": ("event.user", "event.reaction"),
}
_EVENT_OBJECTS: dict[str, tuple[str, ...]] = {
    "reaction_added": ("event.item",),
}


def _kind(body: Body) -> str:
    if "command" in body and "type" not in body:
        return "command"
    kind = body.get("type")
    return kind if isinstance(kind, str) else "request"


def _at(body: Body, path: str) -> Any:
    node: Any = body
    for key in path.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node


def lacks(body: Body) -> str | None:
    """What a parsed payload lacks that its listener reads (also for Socket Mode's
    envelopes, which arrive parsed); None when it is complete."""
    kind = _kind(body)
    if kind == "request":
        return "a `type` or `command`"
    strings = _STRINGS.get(kind, ())
    objects = _OBJECTS.get(kind, ())
    if kind == "event_callback":
        event = _at(body, "event.type")
        strings += _EVENT_STRINGS.get(event, ()) if isinstance(event, str) else ()
        objects += _EVENT_OBJECTS.get(event, ()) if isinstance(event, str) else ()
    for path in objects:
        if not isinstance(_at(body, path), dict):
            return f"`{path}`"
    for path in strings:
        value = _at(body, path)
        if not isinstance(value, str) or not (value or path in MAY_BE_EMPTY):
            return f"`{path}`"
    if kind == "block_actions":
        actions = body.get("actions")
        if not isinstance(actions, list) or not actions:
            return "`actions`"
        if not all(isinstance(a, dict) and isinstance(a.get("action_id"), str) for a in actions):
            return "`actions[].action_id`"
    return None


# --- events and payloads the bot does not use -------------------------------------------


def quiet(body: Body) -> bool:
    """A payload acknowledged without Bolt (it has no listener, and needs none)."""
    kind = body.get("type")
    if kind == "app_rate_limited":
        log.info(
            "Slack dropped events for this app in minute %s (more than its rate limit)",
            body.get("minute_rate_limited", "?"),
        )
    return kind in QUIET_TYPES


def acknowledge_unused_events(bolt: AsyncApp) -> None:
    """Register last: every event no other listener took is acknowledged without Bolt's
    "unhandled request" warning (Slack would otherwise retry it, and then disable the
    subscription)."""

    @bolt.event(re.compile(".*"))
    async def unused(event: Body) -> None:
        kind = event.get("type")
        if kind == "app_uninstalled" or (kind == "tokens_revoked" and _at(event, "tokens.bot")):
            log.info("Slack sent %s: the bot can no longer act in this workspace", kind)
        else:
            log.debug("ignored a %s event", kind)
