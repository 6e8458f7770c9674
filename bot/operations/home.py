"""The bot's App Home: each viewer's open incidents (their own roles first), a Declare
button, recently resolved incidents with their postmortem state, and follow-ups to do.

Published when a person opens the tab, and again for people who opened it when an incident
they may see changes: at most once every `min_seconds` per person, the latest state winning,
so a burst of changes costs each Home one or two publishes.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from datetime import timedelta

from cachetools import TTLCache
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.base.errors import BadInput, log_failure
from bot.base.work import InFlight
from bot.model.tables import FollowUp, Incident
from bot.operations.deps import Deps, Operation
from bot.operations.incidents.find import Finder
from bot.views import blocks

log = logging.getLogger(__name__)

# Whose Home follows changes: people who opened it within this long.
VIEWERS_WITHIN = timedelta(days=30)
RECENTLY_RESOLVED = 8
# How often the viewer list is read again (people who opened the Home in another process).
VIEWERS_REREAD_SECONDS = 30.0
# How long a private channel's members are trusted for what a Home lists, and for how many
# channels at most.
MEMBERS_KEPT_SECONDS = 30.0
MEMBERS_KEPT_CHANNELS = 1_000


class Home(Operation):
    def __init__(
        self,
        deps: Deps,
        client: AsyncWebClient,
        find: Finder,
        inflight: InFlight,
        *,
        min_seconds: float = 5.0,
    ):
        super().__init__(deps)
        self.client = client
        self.find = find
        self.inflight = inflight
        self.min_seconds = min_seconds
        # Per person: a publish is coming; when the last one started; its timer if it waits.
        self._pending: set[str] = set()
        self._last: dict[str, float] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._closed = False
        # Who opened the Home lately, as last read (None: not read yet).
        self._viewers: set[str] | None = None
        self._viewers_read = -math.inf
        self._reading = asyncio.Lock()
        # Private channels' members as last asked, while they are trusted.
        self._members: TTLCache[str, set[str]] = TTLCache(
            MEMBERS_KEPT_CHANNELS, MEMBERS_KEPT_SECONDS
        )

    async def opened(self, user_id: str, team_id: str) -> None:
        await self.store.home_opened(user_id, team_id, self.clock())
        if self._viewers is not None:
            self._viewers.add(user_id)
        self.refresh(user_id)

    def refresh(self, user_id: str) -> None:
        """Publish `user_id`'s Home soon: now if it was not published within the last
        `min_seconds`, else once that time is up. Requests meanwhile are one publish,
        which reads the state as it is then."""
        if user_id in self._pending:
            return
        self._pending.add(user_id)
        wait = self._last.get(user_id, -math.inf) + self.min_seconds - time.monotonic()
        if wait <= 0:
            self._start(user_id)
        else:
            # A timer, not a sleeping task: nothing is in flight until it fires.
            loop = asyncio.get_running_loop()
            self._timers[user_id] = loop.call_later(wait, self._start, user_id)

    def _start(self, user_id: str) -> None:
        self._timers.pop(user_id, None)
        if self._closed:
            return
        self.inflight.spawn(self._publish_now(user_id))

    async def _publish_now(self, user_id: str) -> None:
        # Changes from here on need another publish; this one reads the state now.
        self._pending.discard(user_id)
        self._last[user_id] = time.monotonic()
        try:
            await self.publish(user_id)
        except Exception as e:
            log_failure(log, "could not publish an App Home", e)

    def publish_waiting(self) -> None:
        """Start at once the publishes that wait for their person's `min_seconds` to pass.

        Tests call it instead of waiting for the timers, to see the last publish of a burst
        and then that nothing more is coming; the bot itself never does."""
        for user_id, timer in list(self._timers.items()):
            timer.cancel()
            self._start(user_id)

    def close(self) -> None:
        """Publish nothing more (the bot is stopping)."""
        self._closed = True
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()

    def changed(self, incident: Incident) -> None:
        """An incident changed: the Homes of people who may see it follow. Costs nothing
        while nobody (known to this process) looks at the Home."""
        if self._viewers is not None and not self._viewers and not self._viewers_stale():
            return
        self.inflight.spawn(self._changed(incident))

    def _viewers_stale(self) -> bool:
        return time.monotonic() - self._viewers_read >= VIEWERS_REREAD_SECONDS

    async def viewers(self) -> set[str]:
        """Who opened the Home lately: read from the database now and then (other
        processes' viewers), this process's own added as they open it."""
        async with self._reading:  # one read at a time; those waiting use its answer
            if self._viewers is None or self._viewers_stale():
                self._viewers_read = time.monotonic()
                since = self.clock() - VIEWERS_WITHIN
                self._viewers = set(await self.store.home_viewers(since))
            return self._viewers

    async def _changed(self, incident: Incident) -> None:
        try:
            for user_id in sorted(await self.viewers()):
                if await self._sees(incident, user_id):
                    self.refresh(user_id)
        except Exception as e:
            log_failure(log, "could not refresh App Homes", e)

    async def publish(self, user_id: str) -> None:
        team_id = self.directory.team_id or ""
        open_ = [
            i for i in await self.store.open_incidents(team_id) if await self._sees(i, user_id)
        ]
        resolved = [
            i
            for i in await self.store.recently_resolved(team_id, RECENTLY_RESOLVED * 2)
            if await self._sees(i, user_id)
        ][:RECENTLY_RESOLVED]
        roles = await self.store.roles_of([i.pk for i in open_])
        with_postmortem = await self.store.postmortem_ids([i.pk for i in resolved])
        follow_ups = [
            (f, i)
            for f, i in await self.store.open_follow_ups(team_id)
            if f.owner in (None, user_id) and await self._sees(i, user_id)
        ]
        view = blocks.home_view(
            self.settings,
            user_id,
            [blocks.IncidentState(i, roles.get(i.pk, {})) for i in open_],
            resolved,
            with_postmortem,
            follow_ups,
        )
        await self.client.views_publish(user_id=user_id, view=view)

    async def _sees(self, incident: Incident, user_id: str) -> bool:
        """What `Finder.may_see` says, with private channels' members kept for a little
        while: a Home lists every incident for every viewer, and is published often."""
        if not incident.private or not incident.channel_id:
            return await self.find.may_see(incident, user_id)
        members = self._members.get(incident.channel_id)
        if members is None:
            try:
                members = await self.directory.members(incident.channel_id)
            except SlackApiError:
                return False  # when in doubt, a private incident stays hidden
            self._members[incident.channel_id] = members
        return user_id in members

    # --- follow-ups from the Home ------------------------------------------------------

    async def take_follow_up(self, follow_up_id: int, user_id: str) -> str:
        item, incident = await self._follow_up(follow_up_id, user_id)
        if item.owner is not None:
            who = "you" if item.owner == user_id else f"<@{item.owner}>"
            raise BadInput(f"That follow-up of {incident.ref} is {who}'s already.")
        if not await self.store.change_follow_up(follow_up_id, owner=user_id):
            raise BadInput(f"Someone took that follow-up of {incident.ref} just now.")
        self.changed(incident)
        return f"The follow-up of {incident.ref} is yours."

    async def finish_follow_up(self, follow_up_id: int, user_id: str) -> str:
        item, incident = await self._follow_up(follow_up_id, user_id)
        if item.done_at is not None:
            return f"That follow-up of {incident.ref} is done already."
        if item.owner is None:
            raise BadInput(f"That follow-up of {incident.ref} has no owner: take it first.")
        if item.owner != user_id:
            raise BadInput(f"That follow-up of {incident.ref} is <@{item.owner}>'s to mark done.")
        await self.store.change_follow_up(follow_up_id, done_at=self.clock(), done_by=user_id)
        self.changed(incident)
        return f"Follow-up of {incident.ref} marked done."

    async def _follow_up(self, follow_up_id: int, user_id: str) -> tuple[FollowUp, Incident]:
        item = await self.store.follow_up(follow_up_id)
        incident = await self.store.incident(item.incident_id) if item else None
        if item is None or incident is None or not await self.find.may_see(incident, user_id):
            raise BadInput("That follow-up is gone.")
        return item, incident
