"""What operations reach outside themselves, built once by the composition root (bot/app.py)
and handed to each operation whole, instead of the same arguments to every constructor."""

from __future__ import annotations

from dataclasses import dataclass

from bot.base.clock import Clock, utcnow
from bot.base.settings import Settings
from bot.operations.outgoing import Outgoing
from bot.outbound.slack.directory import Directory
from bot.outbound.slack.surfaces import Surfaces
from bot.outbound.store import Claims, Store


@dataclass(frozen=True)
class Deps:
    settings: Settings
    store: Store
    # Which process does a piece of Slack work (leases).
    claims: Claims
    # The incident's Slack side.
    surfaces: Surfaces
    # The bot's identity and people.
    directory: Directory
    # What follows a change outside the bot (recorded with it, delivered by the outbox).
    outgoing: Outgoing
    clock: Clock = utcnow


class Operation:
    """An operation: its dependencies as attributes, from one `Deps`."""

    def __init__(self, deps: Deps):
        self.deps = deps
        self.settings = deps.settings
        self.store = deps.store
        self.claims = deps.claims
        self.surfaces = deps.surfaces
        self.directory = deps.directory
        self.outgoing = deps.outgoing
        self.clock = deps.clock
