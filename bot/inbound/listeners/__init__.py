"""Slack listeners: parse the payload, ack at once, call one operation, answer the person.

Bolt runs each listener as a task and answers Slack as soon as `ack()` is called, so
everything after `ack()` is off Slack's 3-second clock. commands.py (`/incident`),
controls.py (the card's and reminders' buttons and menus), submissions.py (forms),
events.py (timeline capture, Slack changing under the bot), home.py (the App Home).
"""

from bot.inbound.listeners import commands, controls, events, home, submissions
from bot.inbound.listeners.common import COMMAND, Listen, Operations


def register(app: Listen, ops: Operations) -> None:
    for kind in (commands, controls, submissions, events, home):
        kind.register(app, ops)


__all__ = ["COMMAND", "Listen", "Operations", "register"]
