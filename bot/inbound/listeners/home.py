"""The App Home: published when opened; its Declare button and its follow-ups' Take and
Done buttons."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from slack_bolt.async_app import AsyncBoltContext

from bot.inbound.listeners.common import (
    Body,
    Operations,
    guarded,
    installation_team,
    open_form,
    privately,
)
from bot.views import forms


async def opened(ops: Operations, event: Body, context: AsyncBoltContext) -> None:
    # The Messages tab opens this too; only the Home tab is the bot's to draw.
    if event.get("tab") != "home" or not event.get("user"):
        return
    async with ops.slots:
        await ops.home.opened(str(event["user"]), installation_team(context, None))


async def declare_clicked(ops: Operations, body: Body) -> None:
    user_id = str(body["user"]["id"])
    reply = privately(ops, None, user_id)
    modal = forms.declare_modal(ops.settings, user_id=user_id, origin_channel=None)
    await guarded(
        ops,
        "open the declare form",
        reply,
        lambda: open_form(ops, body["trigger_id"], modal, reply),
        waits=False,
    )


async def take_clicked(ops: Operations, body: Body) -> None:
    await _follow_up(ops, body, "take", ops.home.take_follow_up)


async def done_clicked(ops: Operations, body: Body) -> None:
    await _follow_up(ops, body, "finish", ops.home.finish_follow_up)


async def _follow_up(
    ops: Operations, body: Body, verb: str, act: Callable[[int, str], Awaitable[object]]
) -> None:
    user_id = str(body["user"]["id"])
    reply = privately(ops, None, user_id)
    value = str(body["actions"][0].get("value") or "")

    async def run() -> None:
        if not value.isdigit():
            await reply("That follow-up is gone.", None)
            return
        # The Home shows the change; a refusal (taken by someone else) is answered.
        await act(int(value), user_id)
        ops.home.refresh(user_id)

    await guarded(ops, f"{verb} the follow-up", reply, run)
