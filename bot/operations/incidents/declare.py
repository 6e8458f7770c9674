"""Declaring an incident: one path for the typed command and the form."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import IntegrityError

from bot.base.errors import BadInput
from bot.base.work import after_its_request, give_back
from bot.model import rules
from bot.model.tables import Incident, RoleAssignment
from bot.operations.deps import Deps, Operation
from bot.outbound.slack.surfaces import Channel
from bot.views import blocks

log = logging.getLogger(__name__)

OnChange = Callable[[Incident], Awaitable[None]]


@dataclass(frozen=True)
class Declaration:
    """What a person asked for; `key` names the request so a retry declares once."""

    team_id: str
    actor: str
    key: str
    title: str
    severity: str | None = None
    description: str = ""
    commander: str | None = None
    private: bool = False
    origin_channel: str | None = None
    # Declared by the bot itself (an alert): nobody commands until someone takes it.
    unassigned: bool = False
    # The alert that opened it (see Incident.alert).
    alert: dict[str, Any] | None = None
    # A test incident: labelled, not announced, left out of metrics and reports.
    drill: bool = False


class _DeclaredBefore(Exception):
    """The request's key belongs to an incident already."""


async def _start(numbered: Callable[[Incident], None], incident: Incident) -> None:
    numbered(incident)
    # Its call goes out before this transaction's next statement.
    await after_its_request()


class Declarations(Operation):
    def __init__(self, deps: Deps, *, on_change: OnChange):
        super().__init__(deps)
        self.on_change = on_change

    async def declare(
        self,
        request: Declaration,
        *,
        paced: OnChange | None = None,
        ready: OnChange | None = None,
    ) -> rules.Declared:
        """Store the incident, then create its channel, card and announcement. A repeated
        request answers with the incident it declared before (`created` False). When
        Slack's pacing holds its channel back, `paced` hears of the stored incident at once
        (the declarer learns its number now, not in a minute), its channel is set up in the
        background (`queued`), and `ready` hears of it once that is done."""
        creating: list[asyncio.Future[Channel]] = []
        held_back: list[bool] = []

        def numbered(incident: Incident) -> None:
            if paced is not None and self.surfaces.paced("conversations.create"):
                # Slack has no room for a channel now: stored with no lease, for the
                # background queue to take up (no second write to let one go).
                held_back.append(True)
                incident.provision_lease_until = None
                return
            # The channel is the first step of the path to the card: started as soon as
            # the incident has its number, while the rest of it is stored.
            creating.append(self.surfaces.start_channel(incident))

        try:
            declared = await self.record(request, numbered=numbered)
        except BaseException:
            for channel in creating:
                await self.surfaces.discard_channel(channel)
            raise
        if not declared.created:
            for channel in creating:
                await self.surfaces.discard_channel(channel)
            return declared
        if held_back and paced is not None:
            # Stored; its number is told now, and its channel is set up in the background
            # at Slack's pace (the declarer hears through `ready` once it is there).
            stored = declared.incident
            give_back()  # stored: telling the person is Slack's work, not the database's
            # Queued before the person is told, so a failure to tell them never leaves the
            # channel waiting for the repair pass.
            self.surfaces.provision_later(stored.pk, ready)
            await paced(stored)
            return rules.Declared(stored, created=True, queued=True)
        roles = {} if request.unassigned else {"commander": request.commander or request.actor}
        await self.surfaces.provision(
            declared.incident.pk,
            fresh=blocks.IncidentState(declared.incident, roles),
            channel=creating[0] if creating else None,
        )
        # Read again: provisioning records what Slack would not show (e.g. an archived
        # announcements channel), which the declarer is told about.
        incident = await self.store.incident(declared.incident.pk)
        assert incident is not None
        return rules.Declared(incident, created=True)

    async def record(
        self, request: Declaration, *, numbered: Callable[[Incident], None] | None = None
    ) -> rules.Declared:
        """Store a declaration once per `request.key`. `numbered` hears of the incident as
        soon as it has its number, before the transaction ends."""
        settings = self.settings
        title = rules.check_title(request.title)
        sev = settings.severity(request.severity or settings.default_severity or "")
        if sev is None:
            raise BadInput(rules.unknown_severity(settings, request.severity or ""))
        description = rules.check_description(request.description)
        commander = request.commander or request.actor
        now = self.clock()
        try:
            # No lookup of its own: the number's step says whether the key is taken, or
            # else a repeated key fails the insert on its unique index, and the except
            # below answers with the incident declared before.
            async with self.store.session() as s:
                number = await self.store.next_number(
                    s, request.team_id, unless_declared=request.key
                )
                if number is None:
                    raise _DeclaredBefore
                incident = Incident(
                    team_id=request.team_id,
                    number=number,
                    title=title,
                    description=description,
                    severity=sev.name,
                    private=request.private,
                    drill=request.drill,
                    declared_by=request.actor,
                    declared_at=now,
                    declare_key=request.key,
                    origin_channel_id=request.origin_channel,
                    alert=request.alert,
                    next_update_due=now + rules.reminder_interval(settings, sev.name),
                    version=1,
                    # The declaring process provisions it next; the lease keeps the repair
                    # pass (here or elsewhere) from starting the same work meanwhile.
                    provision_lease_until=now + self.surfaces.claims.lease,
                )
                # With the key known to be new, the channel starts before the insert.
                early = self.store.numbers_check_keys
                if early and numbered is not None:
                    await _start(numbered, incident)
                s.add(incident)
                await s.flush()
                if not early and numbered is not None:
                    await _start(numbered, incident)
                if not request.unassigned:
                    s.add(
                        RoleAssignment(
                            incident_id=incident.pk,
                            role="commander",
                            user_id=commander,
                            assigned_by=request.actor,
                            assigned_at=now,
                        )
                    )
                # A new incident has no entries yet: nothing to check for a duplicate.
                s.add(
                    rules.entry(
                        incident,
                        "declared",
                        request.actor,
                        f"Declared {'a drill, ' if request.drill else ''}{incident.ref} at "
                        f"{sev.name}: {title}",
                        {
                            "severity": sev.name,
                            "commander": None if request.unassigned else commander,
                        },
                        now=now,
                        source_key="declared",
                    )
                )
                await self.outgoing.happened(
                    s,
                    incident,
                    "declared",
                    {"title": title, "severity": sev.name, "description": description},
                    actor=request.actor,
                    commander=None if request.unassigned else commander,
                )
        except (IntegrityError, _DeclaredBefore):
            # A repeated request, or one that raced itself (a double submit): the other
            # one won.
            async with self.store.session() as s:
                existing = await self.store.incident_by_key(s, request.key)
            if existing is None:
                raise
            return rules.Declared(existing, created=False)
        log.info("declared %s (%s)", incident.ref, sev.name)
        await self.on_change(incident)
        return rules.Declared(incident, created=True)
