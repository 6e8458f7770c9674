"""Compiling the postmortem draft: gather the facts, render, keep every version, share it."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence

from bot.base.errors import BadInput
from bot.base.work import KeyedLocks, full_collections_held
from bot.model import rules
from bot.model.rules import Changed
from bot.model.tables import (
    FollowUp,
    Incident,
    Postmortem,
    RoleAssignment,
    StatusUpdate,
    TimelineEntry,
)
from bot.operations.deps import Deps, Operation
from bot.outbound.slack.directory import Directory, Person
from bot.outbound.slack.history import Message, OnMessages
from bot.views import blocks, content
from bot.views.content import UNKNOWN_PERSON, References
from bot.views.postmortem import PostmortemFacts, Prepared, Preparer, render

History = Callable[[str, OnMessages], Awaitable[list[Message]]]
# Messages prepared between two turns of the event loop: acks and the history's own
# requests wait for at most this much work.
PREPARE_SLICE = 40
MENTIONED = re.compile(r"<@([UW][A-Z0-9]+)")


class Postmortems(Operation):
    def __init__(self, deps: Deps, history: History):
        super().__init__(deps)
        self.history = history
        self._compiling = KeyedLocks()

    async def facts(self, incident_id: int) -> PostmortemFacts:
        incident = await self.store.incident(incident_id)
        assert incident is not None and incident.channel_id
        # The stored side first: the lines prepared while the history arrives show the
        # same pinned messages as the render.
        async with self.store.sessions() as s:
            assignments = await self.store.all_of(s, RoleAssignment, incident_id)
            updates = await self.store.all_of(s, StatusUpdate, incident_id)
            follow_ups = await self.store.all_of(s, FollowUp, incident_id)
        timeline = await self.store.timeline(incident_id)
        ahead = _Ahead(self.directory, incident, timeline)
        try:
            messages = await self.history(incident.channel_id, ahead.messages)
            prepared = await ahead.done()
        finally:
            await ahead.cancel()
        # What the messages mention was gathered as they arrived, and the names found then
        # are kept: the lines prepared with them hold, and their messages were let go.
        wanted = References()
        wanted.update(ahead.wanted)
        hints = ahead.hints
        p = ahead.preparer
        wanted.users.add(incident.declared_by)
        texts: list[str] = []
        for entry in timeline:
            data = entry.data or {}
            wanted.users.add(entry.actor or "")
            if entry.kind == "message":
                # Who wrote it: a person, or an app (by its bot user or its bot id).
                author = str(data.get("user") or "")
                (wanted.bots if author.startswith("B") else wanted.users).add(author)
            if entry.kind == "message" and isinstance(data.get("message"), dict):
                wanted.update(content.references(data["message"]))
            else:
                texts.append(entry.text)
        wanted.users.update(a.user_id for a in assignments)
        wanted.users.update(a.assigned_by for a in assignments)
        wanted.users.update(u.posted_by for u in updates)
        wanted.users.update(f.owner or "" for f in follow_ups)
        wanted.users.update(f.created_by for f in follow_ups)
        wanted.users.update(MENTIONED.findall("\n".join(texts)))
        wanted.users.discard("")
        wanted.channels.discard(incident.channel_id)
        people, bots, channels, usergroups = await asyncio.gather(
            # Anyone not shown by name yet is asked about again (a lookup may have failed).
            self.directory.people(wanted.users - p.settled),
            self.directory.bot_names(wanted.bots - p.bot_names.keys()),
            self.directory.channel_names(wanted.channels - p.channels.keys()),
            self.directory.usergroup_handles(wanted.usergroups - p.usergroups.keys()),
        )
        people = {**ahead.people, **people}
        bots = {**p.bot_names, **bots}
        channels = {**p.channels, **channels}
        usergroups = {**p.usergroups, **usergroups}
        return PostmortemFacts(
            incident=incident,
            severities=self.settings.severities,
            roles_config=self.settings.roles,
            assignments=assignments,
            timeline=timeline,
            updates=updates,
            follow_ups=follow_ups,
            messages=messages,
            names=_names(people, hints),
            channels={**channels, incident.channel_id: incident.channel_name or "this channel"},
            bot_user_id=self.directory.bot_user_id or "",
            bot_id=self.directory.bot_id,
            usergroups=usergroups,
            bots=bots,
            apps=frozenset(uid for uid, person in people.items() if person.app),
            update_interval=rules.reminder_interval(self.settings, incident.severity),
            prepared=prepared,
        )

    async def draft(self, incident_id: int) -> str:
        """The draft's Markdown, from the channel and the timeline as they are now. The
        facts (the whole history) are let go as soon as it is rendered."""
        with full_collections_held():
            facts = await self.facts(incident_id)
            # What is left of the render after the history arrived: a worker thread keeps
            # acks prompt meanwhile.
            return await asyncio.to_thread(render, facts)

    async def compile(self, incident_id: int, actor: str) -> Changed:
        """Compile the draft from the channel and the timeline, keep it, post it as a file."""
        async with self._compiling.hold(incident_id):
            incident = await self.store.incident(incident_id)
            assert incident is not None
            if not incident.channel_id:
                raise BadInput(f"{incident.ref} has no channel yet; try again in a moment.")
            markdown = await self.draft(incident_id)
            latest = await self.store.latest_draft(incident_id, markdown)
            if latest is not None and latest.same and latest.file_id:
                # Nothing happened since the last draft (or a double click): no new copy.
                return Changed(
                    incident,
                    False,
                    f"{incident.ref}'s draft is unchanged since version {latest.version}.",
                )
            if latest is not None and latest.same:
                # Stored, but the upload was interrupted: share it now.
                pk, version = latest.pk, latest.version
            else:
                async with self.store.session() as s:
                    saved = await self.store.save_postmortem(
                        s,
                        Postmortem(
                            incident_id=incident_id,
                            version=(latest.version if latest else 0) + 1,
                            markdown=markdown,
                            created_by=actor,
                            created_at=self.clock(),
                        ),
                    )
                    await self.outgoing.happened(
                        s, incident, "postmortem_compiled", {"version": saved.version}, actor=actor
                    )
                pk, version = saved.pk, saved.version
            self.surfaces.changed(incident)
            file_id = await self.surfaces.upload(
                incident,
                content=markdown,
                filename=f"{incident.ref}-postmortem-v{version}.md",
                title=f"{incident.ref} postmortem draft (version {version})",
                comment=blocks.postmortem_comment(incident, actor, version),
            )
            await self.store.set_postmortem_file(pk, file_id)
            return Changed(incident, True, f"Posted version {version} of the draft.")


async def _sliced(batch: list[Message]) -> AsyncIterator[Message]:
    """`batch`, with a turn of the event loop after every PREPARE_SLICE messages."""
    for n, msg in enumerate(batch, start=1):
        yield msg
        if n % PREPARE_SLICE == 0:
            await asyncio.sleep(0)


class _Ahead:
    """The bulk of the render done while the history downloads: each batch's names are
    looked up (the directory keeps them for the final lookup), then its messages' lines
    are worked out on the event loop, a slice at a time, while the next batches arrive.
    The render uses what still holds with the final names and works out the rest."""

    def __init__(
        self, directory: Directory, incident: Incident, timeline: Sequence[TimelineEntry]
    ) -> None:
        self.directory = directory
        self.own_channel = {str(incident.channel_id): incident.channel_name or "this channel"}
        self.preparer = Preparer(
            timeline, directory.bot_user_id or "", directory.bot_id, let_go=True
        )
        self.people: dict[str, Person] = {}
        # Every id the messages mention, and the names some carry themselves (exports,
        # Slack Connect) for people users.info will not show.
        self.wanted = References()
        self.hints: dict[str, str] = {}
        self._batches: deque[tuple[list[Message], bool]] = deque()
        self._more = asyncio.Event()
        self._fetched = False
        self._worker: asyncio.Task[None] | None = None

    def messages(self, batch: list[Message], replies: bool) -> None:
        if batch:
            self._batches.append((batch, replies))
            self._more.set()
            if self._worker is None:
                self._worker = asyncio.ensure_future(self._work())

    async def done(self) -> dict[int, Prepared]:
        self._fetched = True
        self._more.set()
        if self._worker is not None:
            await self._worker
        return self.preparer.prepared

    async def cancel(self) -> None:
        if self._worker is not None and not self._worker.done():
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker

    async def _work(self) -> None:
        while True:
            while self._batches:
                batch, replies = self._batches.popleft()
                try:
                    await self._learn_names(batch)
                except Exception:  # noqa: S112 - the final lookup says why; the render copes
                    continue
                async for msg in _sliced(batch):
                    self.preparer.prepare(msg, replies)
            if self._fetched:
                return
            self._more.clear()
            await self._more.wait()

    async def _learn_names(self, batch: list[Message]) -> None:
        wanted = References()
        async for m in _sliced(batch):
            wanted.update(content.references(m))
            if m.get("user") and content.profile_name(m):
                self.hints.setdefault(str(m["user"]), content.profile_name(m))
        self.wanted.update(wanted)
        wanted.users.discard("")
        wanted.users -= self.people.keys()
        people, bots, channels, usergroups = await asyncio.gather(
            self.directory.people(wanted.users),
            self.directory.bot_names(wanted.bots - self.preparer.bot_names.keys()),
            self.directory.channel_names(
                wanted.channels - self.preparer.channels.keys() - self.own_channel.keys()
            ),
            self.directory.usergroup_handles(wanted.usergroups - self.preparer.usergroups.keys()),
        )
        self.people.update(people)
        p = self.preparer
        p.users.clear()
        p.users.update(_names(self.people, self.hints))
        # Shown by their own names, which no later message can change.
        p.settled.update(uid for uid, person in people.items() if person.known and person.name)
        p.bot_names.update(bots)
        p.channels.update({**channels, **self.own_channel})
        p.usergroups.update(usergroups)


def _names(people: Mapping[str, Person], hints: Mapping[str, str]) -> dict[str, str]:
    """A name per user id. Someone Slack would not show takes the name their own messages
    carry, else a neutral label, numbered when there are several."""
    names = {uid: person.name for uid, person in people.items() if person.known and person.name}
    unseen = sorted(uid for uid in people if uid not in names)
    for uid in [uid for uid in unseen if hints.get(uid)]:
        names[uid] = hints[uid]
    nameless = [uid for uid in unseen if uid not in names]
    for n, uid in enumerate(nameless, start=1):
        names[uid] = UNKNOWN_PERSON if len(nameless) == 1 else f"{UNKNOWN_PERSON} {n}"
    return names
