"""Events and shortcuts that put channel messages on an incident's timeline."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncAck
from slack_sdk.errors import SlackApiError

from bot.base.errors import BadInput
from bot.inbound.listeners.common import Listen, Operations, guarded, privately
from bot.model.tables import ChannelState
from bot.views import blocks

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

    # --- Slack changing under the bot ----------------------------------------------------

    @app.event("message")
    async def message(event: Body) -> None:
        # Housekeeping, and the first response; people's messages are read when they are
        # pinned or when the postmortem is compiled.
        subtype = event.get("subtype")
        channel = event.get("channel")
        user = event.get("user")
        if subtype in (None, "thread_broadcast", "file_share") and not event.get("bot_id"):
            # A person speaking in an incident's channel may be its first response.
            if isinstance(channel, str) and isinstance(user, str):
                await ops.timeline.person_spoke(channel, user, str(event.get("ts") or ""))
        elif subtype == "message_deleted":
            await ops.drift.message_deleted(channel, event.get("deleted_ts"))
        elif subtype == "channel_convert_to_private":
            await ops.drift.made_private(channel)

    @app.event("pin_removed")
    async def pin_removed(event: Body) -> None:
        item = event.get("item") or {}
        ts = (item.get("message") or {}).get("ts") or item.get("ts")
        await ops.drift.card_unpinned(event.get("channel_id") or item.get("channel"), ts)

    @app.event("channel_archive")
    @app.event("group_archive")
    async def archived(event: Body) -> None:
        await ops.drift.channel_state(event.get("channel"), ChannelState.archived)

    @app.event("channel_unarchive")
    @app.event("group_unarchive")
    async def unarchived(event: Body) -> None:
        await ops.drift.channel_state(event.get("channel"), ChannelState.ok)

    @app.event("channel_deleted")
    @app.event("group_deleted")
    async def deleted(event: Body) -> None:
        await ops.drift.channel_state(event.get("channel"), ChannelState.gone)

    @app.event("channel_left")
    @app.event("group_left")
    async def bot_left(event: Body) -> None:
        await ops.drift.bot_left(event.get("channel"))

    @app.event("member_joined_channel")
    async def member_joined(event: Body) -> None:
        await ops.drift.member_joined(event.get("channel"), event.get("user"))

    @app.event("channel_rename")
    @app.event("group_rename")
    async def renamed(event: Body) -> None:
        channel = event.get("channel") or {}
        await ops.drift.renamed(channel.get("id"), channel.get("name"))

    @app.event("user_change")
    async def user_changed(event: Body) -> None:
        ops.drift.person_changed((event.get("user") or {}).get("id"))

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

        await guarded(ops, "add the message to the timeline", reply, work)
