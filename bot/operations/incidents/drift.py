"""Slack changes under the bot: people delete or unpin the card, archive, rename, delete or
convert the channel, remove the bot, deactivate accounts. The database stays the truth;
these follow what Slack now is and converge what Slack shows back to the stored state."""

from __future__ import annotations

import logging

from bot.model.tables import ChannelState, Incident
from bot.operations.deps import Deps, Operation
from bot.operations.incidents.declare import OnChange

log = logging.getLogger(__name__)


class Drift(Operation):
    def __init__(self, deps: Deps, *, on_change: OnChange):
        super().__init__(deps)
        self.on_change = on_change

    async def _incident(self, channel: str | None) -> Incident | None:
        return await self.store.incident_by_channel(channel) if channel else None

    async def card_unpinned(self, channel: str | None, ts: str | None) -> None:
        inc = await self._incident(channel)
        if inc is None or not ts or ts != inc.card_ts:
            return
        log.info("the card of %s was unpinned; pinning it again", inc.ref)
        await self.store.save_fields(inc.pk, card_pinned=False)
        await self.surfaces.refresh(inc.pk)

    async def message_deleted(self, channel: str | None, ts: str | None) -> None:
        """The card or an announcement was deleted: post it again."""
        if not ts:
            return
        inc = await self._incident(channel)
        if inc is not None and ts == inc.card_ts:
            await self.store.save_fields(inc.pk, card_ts=None, card_pinned=False)
            await self.surfaces.refresh(inc.pk)
            return
        if channel and channel == self.settings.announcements_channel:
            announced = await self.store.incident_by_announcement(ts)
            if announced is not None:
                await self.store.save_fields(announced.pk, announcement_ts=None)
                await self.surfaces.refresh(announced.pk)

    async def channel_state(self, channel: str | None, state: ChannelState) -> None:
        """Archived, unarchived, deleted, or the bot left or joined again."""
        inc = await self._incident(channel)
        if inc is None or inc.channel_state == state.value:
            return
        log.info("the channel of %s is now %s", inc.ref, state.value)
        await self.surfaces.channel_changed(inc, state)
        latest = await self.store.incident(inc.pk)
        if latest is not None:
            await self.on_change(latest)  # reminders stop or resume

    async def bot_left(self, channel: str | None) -> None:
        """The bot was removed from an incident's channel: join a public one again."""
        inc = await self._incident(channel)
        if inc is None:
            return
        if not inc.private and await self.surfaces.rejoin(inc):
            return
        await self.channel_state(channel, ChannelState.gone)

    async def member_joined(self, channel: str | None, user: str | None) -> None:
        if user and user == self.directory.bot_user_id:
            await self.channel_state(channel, ChannelState.ok)

    async def renamed(self, channel: str | None, name: str | None) -> None:
        inc = await self._incident(channel)
        if inc is not None and name and name != inc.channel_name:
            await self.store.save_fields(inc.pk, channel_name=name)

    async def made_private(self, channel: str | None) -> None:
        """The channel was made private: so is the incident (no public announcement
        updates, left out of lists for people who are not members). Stored with the
        incident's public side held, so a public post decided before it has gone out and
        been saved, and none decided after it goes out at all."""
        inc = await self._incident(channel)
        if inc is None or inc.private:
            return
        async with self.store.publicly(inc.pk) as side:
            inc = side.incident
            if inc.private:
                return
            await side.save(private=True)
        log.info("the channel of %s was made private; so is the incident", inc.ref)
        inc.private = True
        await self.surfaces.withdraw_announcement(inc)

    def person_changed(self, user_id: str | None) -> None:
        if user_id:
            self.directory.forget(user_id)
