"""Answers to one person: privately where they are, and the forms they open."""

from __future__ import annotations

import logging
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.models.blocks import Block
from slack_sdk.web.async_client import AsyncWebClient

from bot.base.errors import slack_error

log = logging.getLogger(__name__)

# Slack answers these when a form is opened too late after the click or command.
EXPIRED_TRIGGER = frozenset({"expired_trigger_id", "invalid_trigger_id"})


class Replies:
    def __init__(self, client: AsyncWebClient):
        self.client = client

    async def privately(
        self, channel: str | None, user: str, text: str, body: list[Block] | None = None
    ) -> None:
        """An ephemeral message where the person is; a DM when the bot cannot post there."""
        if channel:
            try:
                await self.client.chat_postEphemeral(
                    channel=channel, user=user, text=text, blocks=body
                )
                return
            except SlackApiError as e:
                log.debug("ephemeral answer failed (%s); sending a DM", slack_error(e))
        await self.client.chat_postMessage(channel=user, text=text, blocks=body)

    async def open_form(self, trigger_id: str, view: Any) -> bool:
        """Open a modal; False when Slack says the trigger expired."""
        try:
            await self.client.views_open(trigger_id=trigger_id, view=view)
        except SlackApiError as e:
            if slack_error(e) not in EXPIRED_TRIGGER:
                raise
            return False
        return True
