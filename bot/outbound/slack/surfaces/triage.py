"""Alerts waiting for a person, posted with Declare and Dismiss."""

from __future__ import annotations

from slack_sdk.errors import SlackApiError
from slack_sdk.models.blocks import Block

from bot.base.errors import slack_error
from bot.outbound.slack.surfaces.base import SurfacesBase


class Triage(SurfacesBase):
    async def show_triage(
        self, channel: str, text: str, body: list[Block], ts: str | None = None
    ) -> str:
        """Post (or, with `ts`, update) an alert group's message in the alerts channel."""
        if ts is not None:
            await self.client.chat_update(channel=channel, ts=ts, text=text, blocks=body)
            return ts
        try:
            resp = await self.client.chat_postMessage(channel=channel, text=text, blocks=body)
        except SlackApiError as e:
            if slack_error(e) != "not_in_channel":
                raise
            # A public alerts channel the bot was never added to: join it once.
            await self.client.conversations_join(channel=channel)
            resp = await self.client.chat_postMessage(channel=channel, text=text, blocks=body)
        return str(resp["ts"])
