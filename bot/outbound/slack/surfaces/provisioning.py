"""A declaration's Slack side: the channel, invitations, card, topic and announcement, set up once
and resumed where it stopped."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any

from slack_sdk.errors import SlackApiError

from bot.base.errors import SlackFailure, log_failure, slack_error
from bot.model.tables import Incident
from bot.outbound.slack.surfaces.announcement import Announcement
from bot.outbound.slack.surfaces.base import PROVISIONERS, Card, Channel, all_steps
from bot.views import blocks
from bot.views.text import channel_name, with_suffix

log = logging.getLogger(__name__)


class Provisioning(Announcement):
    def provision_later(
        self, incident_id: int, then: Callable[[Incident], Awaitable[None]] | None = None
    ) -> None:
        """Set up a declaration's Slack side in the background, a few at a time and in the
        order they came: what Slack's pacing holds back waits here as an id (and whom to
        tell), not as a task of its own with its lease renewed, however many there are.
        `then` hears of the incident once it is ready."""
        told = self._to_provision.setdefault(incident_id, [])
        if then is not None:
            told.append(then)
        while self._provisioners < PROVISIONERS and len(self._to_provision) > self._provisioners:
            self._provisioners += 1
            self.inflight.spawn(self._provision_queued())

    def queued(self, incident_id: int) -> bool:
        return incident_id in self._to_provision

    async def _provision_queued(self) -> None:
        try:
            while self._to_provision:
                incident_id = next(iter(self._to_provision))
                told = self._to_provision.pop(incident_id)
                try:
                    inc = await self.provision(incident_id)
                except Exception as e:
                    # Its lease is let go or runs out: the repair pass queues it again.
                    log_failure(log, f"could not complete declaration {incident_id}", e)
                    continue
                if not inc.provisioned:
                    continue  # another process holds it
                log.info("completed the declaration of %s", inc.ref)
                for then in told:
                    try:
                        await then(inc)
                    except Exception as e:
                        log_failure(log, f"could not tell that {inc.ref} is ready", e)
        finally:
            self._provisioners -= 1

    def start_channel(self, inc: Incident) -> asyncio.Future[Channel]:
        """Start creating a just-numbered incident's channel while its declaration is still
        being stored: the channel is the first step of the critical path. Hand the future
        to `provision`, or to `discard_channel` if the declaration is not stored."""
        return asyncio.ensure_future(self._new_channel(inc))

    async def discard_channel(self, creating: asyncio.Future[Channel]) -> None:
        """The channel of a declaration that was not stored after all: archived, so no
        incident channel exists without its incident."""
        try:
            channel = await creating
        except Exception:  # nothing was created, so nothing to undo
            return
        try:
            await self.client.conversations_archive(channel=channel["id"])
        except SlackApiError as e:
            log.warning("could not archive #%s: %s", channel.get("name"), slack_error(e))

    async def provision(
        self,
        incident_id: int,
        *,
        fresh: blocks.IncidentState | None = None,
        channel: Awaitable[Channel] | None = None,
    ) -> Incident:
        """Create what Slack shows for an incident; resumes where an earlier try stopped.
        `fresh`: the state of an incident this process has just stored, holding its lease,
        so the declaration's path to its card reads and writes nothing more first;
        `channel`: its channel, already being created (`start_channel`)."""
        async with self._provision_locks.hold(incident_id):
            lease = fresh.incident.provision_lease_until if fresh is not None else None
            if fresh is not None and lease is not None:
                state, held = fresh, lease
            else:
                state = await self.state(incident_id)
                if state.incident.provisioned:
                    return state.incident
                taken = await self.claims.take_provisioning(incident_id)
                if taken is None:
                    return state.incident  # another process is doing it right now
                held = taken

            async def renew(until: datetime) -> datetime | None:
                return await self.claims.renew_provisioning(incident_id, until)

            async def let_go(until: datetime) -> None:
                await self.claims.release_provisioning(incident_id, until)

            return await self.claims.keep_alive(
                renew, held, self._provision(state, channel), let_go=let_go
            )

    async def _provision(
        self, state: blocks.IncidentState, creating: Awaitable[Channel] | None = None
    ) -> Incident:
        inc = state.incident
        incident_id = inc.pk
        channel_saved: asyncio.Future[None] | None = None
        card: Card | None = None
        channel: Channel | None = None
        if not inc.channel_id:
            if creating is None:
                creating = asyncio.ensure_future(self._new_channel(inc))
            # Worked out while Slack creates the channel: the card is the next call.
            card = self._card(state)
            # Set on `inc`, which `state` holds.
            channel = await creating
            inc.channel_id, inc.channel_name = channel["id"], channel["name"]
        # After the channel exists the card is the critical path (create -> post card ->
        # pin); everything else waits until the card's call is answered, then runs
        # alongside the pin, so nothing delays the card's call or its answer.
        posted = asyncio.Event()

        async def after_card(step: Awaitable[None]) -> None:
            await posted.wait()
            await step

        if channel is not None:
            # Stored while the card is posted, not before. A retry that finds no channel
            # stored adopts the bot's own unused channel of that name rather than making
            # a second one.
            channel_saved = asyncio.ensure_future(
                after_card(
                    self.store.save_fields(
                        incident_id, channel_id=inc.channel_id, channel_name=inc.channel_name
                    )
                )
            )
        steps: list[Awaitable[None]] = [
            self._post_card(state, after=channel_saved, ready=card, posted=posted),
            after_card(self.invite(inc, {inc.declared_by, *state.roles.values()})),
            after_card(self._set_topic(state)),
        ]
        if channel_saved is not None:
            steps.append(channel_saved)
        problems: list[str] = []
        later = False
        if self._announces(inc):
            # The incident works without its announcement: a broken announcements channel
            # is reported, never a reason to call the declaration failed.
            announcing = self._surface("announcement", self._announce(state), problems)
            if self.paced("chat.postMessage", channel=self.settings.announcements_channel):
                # Slack posts about one message a second in a channel: under a burst of
                # declarations the announcements queue up there, and no declarer waits
                # for them to hear that their channel is ready.
                self.inflight.spawn(self._announce_later(inc, announcing, problems))
                later = True
            else:
                steps.append(after_card(announcing))
        await all_steps(steps)
        await self.bring_in(inc, inc.severity)
        # An announcement still to come leaves the incident behind what Slack shows, so a
        # stop before it goes out leaves it to the repair pass.
        shown = inc.version - 1 if later else inc.version
        await self.store.save_fields(
            incident_id, provisioned=True, provision_lease_until=None, shown_version=shown
        )
        inc.provisioned = True
        self.changed(inc)
        if problems:
            await self._trouble(inc, problems)
        return inc

    async def _new_channel(self, inc: Incident) -> Channel:
        """Create the incident's channel (reading `inc`, never changing it)."""
        base = channel_name(
            self.settings.incident_channel_prefix,
            inc.number,
            f"drill {inc.title}" if inc.drill else inc.title,
        )
        name = base
        channel: Mapping[str, Any] | None = None
        for attempt in range(2, 60):
            try:
                resp = await self.client.conversations_create(name=name, is_private=inc.private)
                channel = resp["channel"]
                break
            except SlackApiError as e:
                if slack_error(e) != "name_taken":
                    raise SlackFailure(
                        f"{inc.ref} is recorded, but Slack would not create its channel "
                        f"(`{slack_error(e)}`)."
                    ) from e
                channel = await self._own_unused_channel(name)
                if channel is not None:
                    # Slack created it but the answer was lost (a crash or a dropped
                    # connection): take it instead of making a second channel.
                    break
                # A random suffix after many tries: a declaration never fails on naming.
                name = with_suffix(base, attempt if attempt < 50 else secrets.randbelow(10**6))
        if channel is None:
            raise SlackFailure(f"{inc.ref} is recorded, but no free channel name was found.")
        return channel

    async def _own_unused_channel(self, name: str) -> Mapping[str, Any] | None:
        """A channel of that name the bot created and no incident uses, if any."""
        async for page in await self.client.conversations_list(
            types="public_channel,private_channel", exclude_archived=True, limit=1000
        ):
            for channel in page.get("channels", []):
                if channel.get("name") == name:
                    if channel.get("creator") != self.directory.bot_user_id:
                        return None
                    taken = await self.store.incident_by_channel(channel["id"])
                    return dict(channel) if taken is None else None
        return None
