"""The announcement in the announcements channel, edited in place as the incident changes."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable

from slack_sdk.errors import SlackApiError

from bot.base.errors import log_failure, slack_error
from bot.model.tables import Incident
from bot.outbound.slack.surfaces.base import KEEP_ANNOUNCED
from bot.outbound.slack.surfaces.card import CardAndTopic
from bot.views import blocks

log = logging.getLogger(__name__)


class Announcement(CardAndTopic):
    async def _announce(self, state: blocks.IncidentState) -> None:
        channel = self.settings.announcements_channel
        assert channel
        text, body = blocks.announcement(state, self.settings)
        digest = hash((text, json.dumps([b.to_dict() for b in body], sort_keys=True)))
        if self._announced.get(state.incident.pk) == (state.incident.announcement_ts, digest):
            return  # it shows this already (a reminder moved only the card's due time)
        # Decided and saved with the public side held: a privacy change either comes first
        # (nothing is posted) or finds this announcement saved, to take it down.
        async with self.store.publicly(state.incident.pk) as side:
            inc = side.incident
            if not self._announces(inc):
                return
            if inc.announcement_ts is not None:
                try:
                    await self.client.chat_update(
                        channel=channel, ts=inc.announcement_ts, text=text, blocks=body
                    )
                    self._shown_announcement(inc.pk, inc.announcement_ts, digest)
                    return
                except SlackApiError as e:
                    if slack_error(e) != "message_not_found":
                        raise
                    log.info("the announcement of %s was deleted; posting it again", inc.ref)
            try:
                resp = await self.client.chat_postMessage(channel=channel, text=text, blocks=body)
            except SlackApiError as e:
                if slack_error(e) != "not_in_channel":
                    raise
                # A public announcements channel the bot was never added to: join it once.
                await self.client.conversations_join(channel=channel)
                resp = await self.client.chat_postMessage(channel=channel, text=text, blocks=body)
            await side.save(announcement_ts=resp["ts"])
        state.incident.announcement_ts = resp["ts"]
        self._shown_announcement(inc.pk, resp["ts"], digest)

    def _shown_announcement(self, incident_id: int, ts: str, digest: int) -> None:
        self._announced.pop(incident_id, None)
        self._announced[incident_id] = (ts, digest)
        if len(self._announced) > KEEP_ANNOUNCED:
            del self._announced[next(iter(self._announced))]  # the longest unchanged

    async def _announce_later(
        self, inc: Incident, announcing: Awaitable[None], problems: list[str]
    ) -> None:
        try:
            await announcing
            if problems:
                await self._trouble(inc, problems)
            else:
                await self.store.mark_shown(inc.pk, inc.version)
        except Exception as e:
            log_failure(log, f"could not announce {inc.ref}", e)

    async def withdraw_announcement(self, inc: Incident) -> None:
        """Take a now-private incident's announcement out of the public channel."""
        channel = self.settings.announcements_channel
        if not channel or not inc.announcement_ts:
            return
        try:
            await self.client.chat_delete(channel=channel, ts=inc.announcement_ts)
        except SlackApiError as e:
            if slack_error(e) != "message_not_found":
                raise
        await self.store.save_fields(inc.pk, announcement_ts=None)
