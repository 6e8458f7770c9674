"""manifest.yml creates the app as-is: valid for Slack, and declaring all the code uses."""

from __future__ import annotations

import json
import re

import jsonschema  # type: ignore[import-untyped]
import yaml  # type: ignore[import-untyped]

from bot.fakeslack.server import REFERENCE_FILE, load_reference
from bot.inbound.listeners import COMMAND, EVENTS, SHORTCUTS
from tests.support import ROOT

REFERENCE = REFERENCE_FILE.parent
METHODS = load_reference()
MANIFEST = yaml.safe_load((ROOT / "manifest.yml").read_text())
SOURCE = "\n".join(p.read_text() for p in (ROOT / "bot").rglob("*.py"))


def test_manifest_is_valid_against_slacks_schema() -> None:
    schema = json.loads((REFERENCE / "manifest.schema.1.0.0.json").read_text())
    jsonschema.Draft7Validator(schema).validate(MANIFEST)


def test_manifest_declares_the_command() -> None:
    commands = {c["command"]: c for c in MANIFEST["features"]["slash_commands"]}
    assert COMMAND in commands
    # Mentions arrive as <@U…> ids only when Slack escapes them.
    assert commands[COMMAND]["should_escape"] is True
    assert "commands" in MANIFEST["oauth_config"]["scopes"]["bot"]


def methods_called() -> set[str]:
    """Web API methods the bot calls through a client: names in a family of Slack's methods
    (a Socket Mode client's own `connect_to_new_endpoint` is not one)."""
    families = {name.split(".")[0] for name in METHODS}
    calls = re.findall(r"client\.([a-z]+(?:_[A-Za-z]+)+)\(", SOURCE)
    return {c.replace("_", ".") for c in calls if c.split("_")[0] in families}


def test_manifest_grants_a_scope_for_every_web_api_method_used() -> None:
    granted = set(MANIFEST["oauth_config"]["scopes"]["bot"])
    methods = methods_called()
    assert {"chat.postMessage", "conversations.create", "pins.add"} <= methods
    for method in sorted(methods):
        assert method in METHODS, f"{method} is not in the Slack method reference"
        needed = METHODS[method]["scopes"]["bot"]
        if needed:
            assert granted & set(needed), f"{method} needs one of {needed}"


def test_manifest_subscribes_to_every_event_and_shortcut_handled() -> None:
    events = set(EVENTS)
    subscribed = set(MANIFEST["settings"].get("event_subscriptions", {}).get("bot_events", []))
    # Message events are subscribed to per kind of conversation.
    if "message" in events:
        assert {"message.channels", "message.groups"} <= subscribed
        events.discard("message")
    assert events <= subscribed
    shortcuts = set(SHORTCUTS)
    declared = {s["callback_id"] for s in MANIFEST["features"].get("shortcuts", [])}
    assert shortcuts == declared == {"add_to_timeline"}
    assert MANIFEST["settings"]["interactivity"]["is_enabled"] is True
