"""The pinned card and the channel topic."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any

from slack_sdk.errors import SlackApiError

from bot.base.errors import slack_error
from bot.base.work import after_its_request
from bot.model.tables import Incident
from bot.outbound.slack.surfaces.base import Card, all_steps
from bot.outbound.slack.surfaces.posts import Posts
from bot.views import blocks

log = logging.getLogger(__name__)


class CardAndTopic(Posts):
    async def _set_topic(self, state: blocks.IncidentState) -> None:
        inc = state.incident
        assert inc.channel_id
        topic = blocks.topic(state, self.settings)
        if topic == inc.topic:
            return
        await self.client.conversations_setTopic(channel=inc.channel_id, topic=topic)
        await self.store.save_fields(inc.pk, topic=topic)

    def _card(self, state: blocks.IncidentState) -> Card:
        return blocks.card_text(state, self.settings), [
            b.to_dict() for b in blocks.incident_card(state, self.settings)
        ]

    async def _post_card(
        self,
        state: blocks.IncidentState,
        *,
        after: Awaitable[None] | None = None,
        ready: Card | None = None,
        posted: asyncio.Event | None = None,
    ) -> None:
        """Post (or update) and pin the card. `after`: the channel's own record, which the
        card's is never stored before (a card is found through its channel); `ready`: the
        card already worked out; `posted`: set once the post or update is answered."""
        try:
            posting = await self._show_card(state, ready)
        except BaseException:
            if posted is not None:
                posted.set()
            raise
        inc = state.incident
        steps: list[Awaitable[None]] = []
        if not inc.card_pinned:
            # The pin is on the critical path: started before anything waiting for the
            # card, so its call goes out first.
            steps.append(asyncio.ensure_future(self._pin(inc, str(inc.channel_id))))
        if posted is not None:
            # The pin's call goes out before anything waiting for the card starts its own.
            await after_its_request()
            posted.set()
        if posting:
            # Stored while it is pinned: the pin is on the critical path, the write is not.
            steps.append(self._save_card_ts(inc, after))
        await all_steps(steps)

    async def _show_card(self, state: blocks.IncidentState, ready: Card | None) -> bool:
        """Update the card, or post it when there is none (True: posted, ts not stored)."""
        inc = state.incident
        channel = inc.channel_id
        assert channel
        text, card = ready or self._card(state)
        if inc.card_ts is not None:
            ts = inc.card_ts
            try:
                await self._in_channel(
                    inc,
                    lambda: self.client.chat_update(channel=channel, ts=ts, text=text, blocks=card),
                )
            except SlackApiError as e:
                if slack_error(e) != "message_not_found":
                    raise
                # Someone deleted the card: post it again, and pin the new one.
                log.info("the card of %s was deleted; posting it again", inc.ref)
                inc.card_ts, inc.card_pinned = None, False
                await self.store.save_fields(inc.pk, card_ts=None, card_pinned=False)
            else:
                return False
        resp = await self._in_channel(
            inc,
            lambda: self.client.chat_postMessage(
                channel=channel, text=text, blocks=card, unfurl_links=False
            ),
        )
        inc.card_ts = resp["ts"]
        return True

    async def _save_card_ts(self, inc: Incident, after: Awaitable[None] | None) -> None:
        if after is not None:
            await after
        await self.store.save_fields(inc.pk, card_ts=inc.card_ts)

    async def card_still_pinned(self, inc: Incident) -> bool:
        """Whether Slack still shows the card pinned (pins.list, Tier 2): an unpin or a
        deletion whose event never came (a dropped socket, a restart) is found here."""
        channel = str(inc.channel_id)
        resp = await self._in_channel(inc, lambda: self.client.pins_list(channel=channel))
        items: list[dict[str, Any]] = resp.get("items", [])
        return any((item.get("message") or {}).get("ts") == inc.card_ts for item in items)

    async def _pin(self, inc: Incident, channel: str) -> None:
        try:
            await self.client.pins_add(channel=channel, timestamp=str(inc.card_ts))
        except SlackApiError as e:
            if slack_error(e) != "already_pinned":
                raise
        inc.card_pinned = True
        await self.store.save_fields(inc.pk, card_pinned=True)
