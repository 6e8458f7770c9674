"""Events and shortcuts that put channel messages on an incident's timeline."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncAck
from slack_sdk.errors import SlackApiError

from bot.errors import BadInput
from bot.slack import blocks
from bot.slack.listeners.common import Listen, Operations, guarded, privately

log = logging.getLogger(__name__)

Body = dict[str, Any]


def register(app: Listen, ops: Operations) -> None:
    settings = ops.settings

    @app.event("reaction_added")
    async def reaction_added(event: Body) -> None:
        item = event.get("item") or {}
        if event.get("reaction") != settings.timeline_emoji or item.get("type") != "message":
            return
        incident = await ops.find.by_channel(item.get("channel"))
        if incident is None:
            return  # a pin somewhere else is none of the bot's business
        try:
            await ops.timeline.add_message(incident, ts=item["ts"], actor=event["user"])
        except (BadInput, SlackApiError) as e:
            log.info("could not add a message to %s: %s", incident.ref, e)

    @app.shortcut(blocks.TIMELINE_SHORTCUT)
    async def timeline_shortcut(ack: AsyncAck, body: Body) -> None:
        await ack()
        channel = (body.get("channel") or {}).get("id")
        user_id = body["user"]["id"]
        reply = privately(ops, channel, user_id)

        async def work() -> None:
            incident = await ops.find.by_channel(channel)
            if incident is None:
                raise BadInput(
                    "*Add to incident timeline* works on messages in an incident's channel."
                )
            message = body.get("message") or {}
            done = await ops.timeline.add_message(
                incident, ts=message.get("ts") or body["message_ts"], actor=user_id, message=message
            )
            await reply(done.message, None)

        await guarded("add the message to the timeline", reply, work)
