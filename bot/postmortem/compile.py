"""Compiling the postmortem draft: gather the facts, render, keep every version, share it."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable

from bot.errors import BadInput
from bot.incidents.rules import Changed
from bot.postmortem.history import Message
from bot.postmortem.render import PostmortemFacts, render
from bot.settings import Settings
from bot.slack import blocks
from bot.slack.directory import Directory
from bot.slack.surfaces import Surfaces
from bot.store import FollowUp, Postmortem, RoleAssignment, StatusUpdate, Store, utcnow
from bot.store.claims import Clock

History = Callable[[str], Awaitable[list[Message]]]
MENTIONED = re.compile(r"<@([UW][A-Z0-9]+)")


class Postmortems:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        surfaces: Surfaces,
        directory: Directory,
        history: History,
        *,
        clock: Clock = utcnow,
    ):
        self.settings = settings
        self.store = store
        self.surfaces = surfaces
        self.directory = directory
        self.history = history
        self.clock = clock
        self._compiling: dict[int, asyncio.Lock] = {}

    async def facts(self, incident_id: int) -> PostmortemFacts:
        incident = await self.store.incident(incident_id)
        assert incident is not None and incident.channel_id
        messages = await self.history(incident.channel_id)
        async with self.store.sessions() as s:
            assignments = await self.store.all_of(s, RoleAssignment, incident_id)
            updates = await self.store.all_of(s, StatusUpdate, incident_id)
            follow_ups = await self.store.all_of(s, FollowUp, incident_id)
        timeline = await self.store.timeline(incident_id)
        people: set[str] = {incident.declared_by}
        texts: list[str] = []
        for msg in messages:
            for m in [msg, *msg.get("replies", [])]:
                people.add(m.get("user") or "")
                texts.append(m.get("text") or "")
        for entry in timeline:
            people.update([entry.actor or "", str((entry.data or {}).get("user") or "")])
            texts.append(entry.text)
        people.update(a.user_id for a in assignments)
        people.update(u.posted_by for u in updates)
        people.update(f.owner or "" for f in follow_ups)
        people.update(MENTIONED.findall("\n".join(texts)))
        people.discard("")
        names = await self.directory.display_names(people)
        return PostmortemFacts(
            incident=incident,
            severities=self.settings.severities,
            roles_config=self.settings.roles,
            assignments=assignments,
            timeline=timeline,
            updates=updates,
            follow_ups=follow_ups,
            messages=messages,
            names=names,
            channels={incident.channel_id: incident.channel_name or incident.channel_id},
            bot_user_id=self.directory.bot_user_id or "",
            bot_id=self.directory.bot_id,
        )

    async def compile(self, incident_id: int, actor: str) -> Changed:
        """Compile the draft from the channel and the timeline, keep it, post it as a file."""
        async with self._compiling.setdefault(incident_id, asyncio.Lock()):
            incident = await self.store.incident(incident_id)
            assert incident is not None
            if not incident.channel_id:
                raise BadInput(f"{incident.ref} has no channel yet; try again in a moment.")
            # Rendering a long channel takes CPU time; a worker thread keeps acks prompt.
            markdown = await asyncio.to_thread(render, await self.facts(incident_id))
            latest = await self.store.latest_postmortem(incident_id)
            if latest is not None and latest.markdown == markdown and latest.file_id:
                # Nothing happened since the last draft (or a double click): no new copy.
                return Changed(
                    incident,
                    False,
                    f"{incident.ref}'s draft is unchanged since version {latest.version}.",
                )
            if latest is not None and latest.markdown == markdown:
                saved = latest  # stored, but the upload was interrupted: share it now
            else:
                saved = await self.store.save_postmortem(
                    Postmortem(
                        incident_id=incident_id,
                        version=(latest.version if latest else 0) + 1,
                        markdown=markdown,
                        created_by=actor,
                        created_at=self.clock(),
                    )
                )
            version = saved.version
            file_id = await self.surfaces.upload(
                incident,
                content=markdown,
                filename=f"{incident.ref}-postmortem-v{version}.md",
                title=f"{incident.ref} postmortem draft (version {version})",
                comment=blocks.postmortem_comment(incident, actor, version),
            )
            await self.store.set_postmortem_file(saved.pk, file_id)
            return Changed(incident, True, f"Posted version {version} of the draft.")
