"""Messages put on an incident's timeline (the pin reaction; the message shortcut, answered
like a control), a person's first response, and Slack changing under the bot (drift). An
event is acked at once; its lazy work waits for a slot, and a failure is logged (lazy.py)."""

from __future__ import annotations

import logging

from slack_sdk.errors import SlackApiError

from bot.base.errors import BadInput
from bot.inbound.listeners.common import Body, Operations, guarded, privately
from bot.model.tables import ChannelState

log = logging.getLogger(__name__)


async def reaction_added(ops: Operations, event: Body) -> None:
    item = event.get("item") or {}
    if event.get("reaction") != ops.settings.timeline_emoji or item.get("type") != "message":
        return
    async with ops.slots:
        incident = await ops.find.by_channel(item.get("channel"))
        if incident is None:
            return  # a pin somewhere else is none of the bot's business
        try:
            await ops.timeline.add_message(incident, ts=item["ts"], actor=event["user"])
        except (BadInput, SlackApiError) as e:
            log.info("could not add a message to %s: %s", incident.ref, e)


async def timeline_shortcut(ops: Operations, body: Body) -> None:
    """*Add to incident timeline* on a message."""
    channel = (body.get("channel") or {}).get("id")
    user_id = body["user"]["id"]
    reply = privately(ops, channel, user_id)

    async def work() -> None:
        incident = await ops.find.by_channel(channel)
        if incident is None:
            raise BadInput("*Add to incident timeline* works on messages in an incident's channel.")
        message = body.get("message") or {}
        done = await ops.timeline.add_message(
            incident, ts=message.get("ts") or body["message_ts"], actor=user_id, message=message
        )
        await reply(done.message, None)

    await guarded(ops, "add the message to the timeline", reply, work)


async def message(ops: Operations, event: Body) -> None:
    # Housekeeping, and the first response; people's messages are read when they are
    # pinned or when the postmortem is compiled.
    subtype = event.get("subtype")
    channel = event.get("channel")
    user = event.get("user")
    async with ops.slots:
        if subtype in (None, "thread_broadcast", "file_share") and not event.get("bot_id"):
            # A person speaking in an incident's channel may be its first response.
            if isinstance(channel, str) and isinstance(user, str):
                await ops.timeline.person_spoke(channel, user, str(event.get("ts") or ""))
        elif subtype == "message_deleted":
            await ops.drift.message_deleted(channel, event.get("deleted_ts"))
        elif subtype == "channel_convert_to_private":
            await ops.drift.made_private(channel)


# --- Slack changing under the bot ----------------------------------------------------------


async def pin_removed(ops: Operations, event: Body) -> None:
    item = event.get("item") or {}
    ts = (item.get("message") or {}).get("ts") or item.get("ts")
    async with ops.slots:
        await ops.drift.card_unpinned(event.get("channel_id") or item.get("channel"), ts)


async def archived(ops: Operations, event: Body) -> None:
    async with ops.slots:
        await ops.drift.channel_state(event.get("channel"), ChannelState.archived)


async def unarchived(ops: Operations, event: Body) -> None:
    async with ops.slots:
        await ops.drift.channel_state(event.get("channel"), ChannelState.ok)


async def deleted(ops: Operations, event: Body) -> None:
    async with ops.slots:
        await ops.drift.channel_state(event.get("channel"), ChannelState.gone)


async def bot_left(ops: Operations, event: Body) -> None:
    async with ops.slots:
        await ops.drift.bot_left(event.get("channel"))


async def member_joined(ops: Operations, event: Body) -> None:
    async with ops.slots:
        await ops.drift.member_joined(event.get("channel"), event.get("user"))


async def renamed(ops: Operations, event: Body) -> None:
    channel = event.get("channel") or {}
    async with ops.slots:
        await ops.drift.renamed(channel.get("id"), channel.get("name"))


async def user_changed(ops: Operations, event: Body) -> None:
    ops.drift.person_changed((event.get("user") or {}).get("id"))
