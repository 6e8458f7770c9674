"""The App Home: publish it when opened; its Declare button and follow-up buttons."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncAck

from bot.inbound.listeners.common import Listen, Operations, guarded, open_form, privately
from bot.views import blocks, forms

Body = dict[str, Any]


def register(app: Listen, ops: Operations) -> None:
    settings = ops.settings

    @app.event("app_home_opened")
    async def home_opened(event: Body, context: Any) -> None:
        # The Messages tab opens this too; only the Home tab is the bot's to draw.
        if event.get("tab") != "home" or not event.get("user"):
            return
        team_id = context.authorize_result.team_id if context.authorize_result else None
        await ops.home.opened(str(event["user"]), team_id or "")

    @app.action(blocks.HOME_DECLARE)
    async def declare_clicked(ack: AsyncAck, body: Body) -> None:
        await ack()
        user_id = str(body["user"]["id"])
        reply = privately(ops, None, user_id)
        modal = forms.declare_modal(settings, user_id=user_id, origin_channel=None)
        await guarded(
            ops,
            "open the declare form",
            reply,
            lambda: open_form(ops, body["trigger_id"], modal, reply),
            waits=False,
        )

    def follow_up_button(action_id: str, verb: str) -> None:
        @app.action(action_id)
        async def follow_up_clicked(ack: AsyncAck, body: Body) -> None:
            await ack()
            user_id = str(body["user"]["id"])
            reply = privately(ops, None, user_id)
            value = str(body["actions"][0].get("value") or "")

            async def run() -> None:
                if not value.isdigit():
                    await reply("That follow-up is gone.", None)
                    return
                act = ops.home.take_follow_up if verb == "take" else ops.home.finish_follow_up
                # The Home shows the change; a refusal (taken by someone else) is answered.
                await act(int(value), user_id)
                ops.home.refresh(user_id)

            await guarded(ops, f"{verb} the follow-up", reply, run)

    follow_up_button(blocks.HOME_TAKE, "take")
    follow_up_button(blocks.HOME_DONE, "finish")
