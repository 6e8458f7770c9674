"""The timeline people add to: channel messages (pin reaction, message shortcut), notes and
follow-ups. Each source is recorded once, however often it is sent."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from bot.base.errors import BadInput, log_failure, problem
from bot.model import rules
from bot.model.rules import Changed
from bot.model.tables import FollowUp, Incident, TimelineEntry
from bot.operations.deps import Deps, Operation
from bot.outbound.store import Store
from bot.views import blocks, content
from bot.views.text import clean

log = logging.getLogger(__name__)

ENTRY_TEXT_MAX = 40000


async def noted(store: Store, session: AsyncSession, entry: TimelineEntry) -> None:
    """After `entry` joined its incident's timeline: the first entry a person other than the
    declarer caused (a click, a command, a pinned message; see `rules.responder`) is the
    incident's first response, kept with who and when."""
    who = rules.responder(entry, store.not_people)
    if who is not None:
        await store.note_first_response(session, entry.incident_id, who, entry.happened_at)


async def record(store: Store, session: AsyncSession, entry: TimelineEntry) -> None:
    """Append an entry known to be new (its source, if any, checked by the caller)."""
    session.add(entry)
    await noted(store, session, entry)


async def record_once(store: Store, session: AsyncSession, entry: TimelineEntry) -> bool:
    """Append an entry unless its source is recorded already; False when it was."""
    if not await store.add_entry(session, entry):
        return False
    await noted(store, session, entry)
    return True


class Timeline(Operation):
    def __init__(self, deps: Deps):
        super().__init__(deps)
        self._responded: set[str] = set()

    async def person_spoke(self, channel_id: str, user: str, ts: str) -> None:
        """A person's message somewhere: in an incident's channel, the first one by someone
        other than the declarer is its first response. Only a read for other channels and
        messages; channels known to have their response are not looked at again."""
        if channel_id in self._responded:
            return
        try:
            at = datetime.fromtimestamp(float(ts), UTC)
        except (TypeError, ValueError):
            return
        incident = await self.store.incident_by_channel(channel_id)
        if incident is None or incident.declared_by == user:
            return
        if incident.responded_at is not None or await self.store.responded_in_channel(
            channel_id, user, at
        ):
            self._responded.add(channel_id)

    async def add_message(
        self,
        incident: Incident,
        *,
        ts: str,
        actor: str,
        message: Mapping[str, Any] | None = None,
    ) -> Changed:
        """Put a channel message on the timeline at its own time; once per message."""
        assert incident.channel_id
        if message is None:
            message = await self.surfaces.message(incident.channel_id, ts)
        if message is None:
            raise BadInput("That message is gone, so it cannot go on the timeline.")
        author = message.get("user") or message.get("bot_id")
        # What the message shows (blocks, attachments, files), not only its text field;
        # the snapshot lets the postmortem show it even once it is deleted or edited.
        text = clean(content.mrkdwn(message))
        async with self.store.session() as s:
            added = await record_once(
                self.store,
                s,
                rules.entry(
                    incident,
                    "message",
                    actor,
                    text[:ENTRY_TEXT_MAX],
                    {"ts": ts, "user": author, "message": content.snapshot(message)},
                    now=self.clock(),
                    at=datetime.fromtimestamp(float(ts), UTC),
                    source_key=f"msg:{ts}",
                ),
            )
        if not added:
            return Changed(
                incident, False, f"That message is already on {incident.ref}'s timeline."
            )
        return Changed(incident, True, f"Added to {incident.ref}'s timeline.")

    async def add_note(self, incident: Incident, text: str, actor: str, key: str) -> Changed:
        text = rules.check_note(text)
        async with self.store.session() as s:
            added = await record_once(
                self.store,
                s,
                rules.entry(incident, "note", actor, text, now=self.clock(), source_key=key),
            )
        problems = await self._post(incident, blocks.note_added(actor, text)) if added else []
        return Changed(incident, added, f"Noted on {incident.ref}'s timeline.", tuple(problems))

    async def add_follow_up(
        self, incident: Incident, text: str, owner: str | None, actor: str, key: str
    ) -> Changed:
        text = rules.check_follow_up(text)
        now = self.clock()
        async with self.store.session() as s:
            if await self.store.follow_up_by_key(s, incident.pk, key) is not None:
                return Changed(incident, False, "That follow-up is recorded already.")
            s.add(
                FollowUp(
                    incident_id=incident.pk,
                    text=text,
                    owner=owner,
                    created_by=actor,
                    created_at=now,
                    source_key=key,
                )
            )
            await record(
                self.store,
                s,
                rules.entry(
                    incident, "follow_up", actor, text, {"owner": owner}, now=now, source_key=key
                ),
            )
            await self.outgoing.happened(
                s, incident, "follow_up_created", {"text": text, "owner": owner}, actor=actor
            )
        self.surfaces.changed(incident)
        problems = await self._post(incident, blocks.follow_up_recorded(actor, text, owner))
        return Changed(incident, True, f"Follow-up recorded on {incident.ref}.", tuple(problems))

    async def _post(self, incident: Incident, text: str) -> list[str]:
        """Say in the channel what was recorded; stored already, so a failure is reported
        as a problem rather than raised."""
        try:
            await self.surfaces.post(incident, text)
        except Exception as e:
            log_failure(log, f"could not post in the channel of {incident.ref}", e)
            return [problem("message", e)]
        return []
