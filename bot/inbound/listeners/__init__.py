"""Slack listeners: parse the payload, ack, call one operation, answer the person.

Each is a Bolt listener in two parts: an ack function, run before Slack has its answer
(which it may carry: help, a refusal, a form's errors), and lazy work after it (lazy.py).
commands.py (`/incident`), controls.py (the card's, reminders' and alerts' buttons and
menus), submissions.py (forms), events.py (the timeline, first responses, Slack changing
under the bot), home.py (the App Home). All of them are registered here.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Concatenate

from slack_bolt.async_app import AsyncApp

from bot.base.work import InFlight
from bot.inbound.listeners import commands, controls, events, home, submissions
from bot.inbound.listeners.common import Matcher, Operations
from bot.inbound.listeners.lazy import LazyWork, acknowledge
from bot.views import blocks
from bot.views.forms import DeclareForm, FollowUpForm, ResolveForm, UpdateForm

COMMAND = "/incident"

# What `bolt.command(...)` and the like return: registration, given `ack=` and `lazy=`.
Route = Callable[..., object]
Listener = Callable[..., Awaitable[None]]
Work = Callable[Concatenate[Operations, ...], Awaitable[None]]

# The events and shortcuts handled, by name (manifest.yml subscribes to each).
EVENTS: dict[str, Work] = {
    "reaction_added": events.reaction_added,
    "message": events.message,
    "pin_removed": events.pin_removed,
    "channel_archive": events.archived,
    "group_archive": events.archived,
    "channel_unarchive": events.unarchived,
    "group_unarchive": events.unarchived,
    "channel_deleted": events.deleted,
    "group_deleted": events.deleted,
    "channel_left": events.bot_left,
    "group_left": events.bot_left,
    "member_joined_channel": events.member_joined,
    "channel_rename": events.renamed,
    "group_rename": events.renamed,
    "user_change": events.user_changed,
    "app_home_opened": home.opened,
}
SHORTCUTS: dict[str, Work] = {blocks.TIMELINE_SHORTCUT: events.timeline_shortcut}


def register(bolt: AsyncApp, ops: Operations, inflight: InFlight) -> None:
    """Every listener, in the order Bolt tries them. Each takes `ops` first, bound here with
    functools.partial (see Operations); Bolt passes the rest by name."""
    LazyWork.install(bolt, inflight)
    _commands(bolt, ops)
    _controls(bolt, ops)
    _forms(bolt, ops)
    _events(bolt, ops)
    _home(bolt, ops)


def _on(route: Route, ack: Listener, lazy: Listener | None = None) -> None:
    route(ack=ack, lazy=[lazy] if lazy is not None else [])


def _commands(bolt: AsyncApp, ops: Operations) -> None:
    """`/incident`: the first listener whose verb matches answers."""

    def verb(*verbs: str, text: bool | None = None) -> Route:
        return bolt.command(COMMAND, matchers=[commands.said(*verbs, text=text)])

    _on(verb("", "help"), partial(commands.help_, ops))
    _on(verb("declare", text=False), acknowledge, partial(commands.declare_form, ops))
    _on(
        verb("declare", text=True),
        partial(commands.check_declare, ops),
        partial(commands.declare_now, ops),
    )
    _on(verb("stats"), acknowledge, partial(commands.stats, ops))
    _on(verb("list"), acknowledge, partial(commands.list_open, ops))
    _on(verb(*commands.VERBS), acknowledge, partial(commands.in_incident, ops))
    _on(bolt.command(COMMAND), partial(commands.unknown, ops))


def _controls(bolt: AsyncApp, ops: Operations) -> None:
    """The alert triage buttons; the card's and the reminders' controls."""

    def control(action_id: Matcher, what: str, work: controls.Control) -> None:
        _on(bolt.action(action_id), acknowledge, partial(controls.on_incident, ops, what, work))

    _on(bolt.action(blocks.ALERT_DECLARE), acknowledge, partial(controls.alert_declare, ops))
    _on(bolt.action(blocks.ALERT_DISMISS), acknowledge, partial(controls.alert_dismiss, ops))
    control(blocks.CARD_SEVERITY, "change the severity", controls.severity_picked)
    control(re.compile(rf"^{re.escape(blocks.CARD_ROLE)}"), "assign the role", controls.role_picked)
    control(blocks.CARD_UPDATE, "open the update form", controls.update_clicked)
    control(blocks.REMINDER_UPDATE, "open the update form", controls.update_clicked)
    control(blocks.CARD_RESOLVE, "open the resolve form", controls.resolve_clicked)
    control(blocks.CARD_REOPEN, "reopen the incident", controls.reopen_clicked)
    snooze = re.compile(rf"^{re.escape(blocks.REMINDER_SNOOZE)}\d+$")
    control(snooze, "snooze the reminder", controls.snooze_clicked)
    control(blocks.CARD_FOLLOW_UP, "open the follow-up form", controls.follow_up_clicked)
    control(blocks.CARD_POSTMORTEM, "compile the postmortem", controls.postmortem_clicked)


def _forms(bolt: AsyncApp, ops: Operations) -> None:
    update, follow_up = bolt.view(UpdateForm.VIEW), bolt.view(FollowUpForm.VIEW)
    resolve, declare = bolt.view(ResolveForm.VIEW), bolt.view(DeclareForm.VIEW)
    _on(update, partial(submissions.check_update, ops), partial(submissions.update_submitted, ops))
    _on(follow_up, submissions.check_follow_up, partial(submissions.follow_up_submitted, ops))
    _on(resolve, acknowledge, partial(submissions.resolve_submitted, ops))
    _on(
        declare,
        partial(submissions.check_declare, ops),
        partial(submissions.declare_submitted, ops),
    )


def _events(bolt: AsyncApp, ops: Operations) -> None:
    """Bolt acks events itself; `acknowledge` lets their work follow."""
    for event, work in EVENTS.items():
        _on(bolt.event(event), acknowledge, partial(work, ops))
    for callback_id, work in SHORTCUTS.items():
        _on(bolt.shortcut(callback_id), acknowledge, partial(work, ops))


def _home(bolt: AsyncApp, ops: Operations) -> None:
    _on(bolt.action(blocks.HOME_DECLARE), acknowledge, partial(home.declare_clicked, ops))
    _on(bolt.action(blocks.HOME_TAKE), acknowledge, partial(home.take_clicked, ops))
    _on(bolt.action(blocks.HOME_DONE), acknowledge, partial(home.done_clicked, ops))


__all__ = ["COMMAND", "EVENTS", "SHORTCUTS", "Operations", "register"]
