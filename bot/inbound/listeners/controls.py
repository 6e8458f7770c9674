"""The card's controls and the reminder's buttons: ack, find the incident, act once."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.async_app import AsyncAck

from bot.base.errors import BadInput
from bot.inbound.listeners.common import (
    Listen,
    Matcher,
    Operations,
    Reply,
    guarded,
    open_form,
    privately,
    tell,
)
from bot.model import rules
from bot.model.tables import Incident
from bot.views import answers, blocks, forms

Body = dict[str, Any]
ButtonWork = Callable[[Body, Incident, Reply], Awaitable[None]]


def channel_of(body: Body) -> str | None:
    channel = (body.get("channel") or {}).get("id") or (body.get("container") or {}).get(
        "channel_id"
    )
    return str(channel) if channel else None


def clicker(body: Body) -> str:
    return str(body["user"]["id"])


def register(app: Listen, ops: Operations) -> None:
    settings = ops.settings

    @app.action(blocks.ALERT_DECLARE)
    async def alert_declare(ack: AsyncAck, body: Body) -> None:
        await ack()
        user = clicker(body)
        reply = privately(ops, channel_of(body), user)

        async def run() -> None:
            declared = await ops.alerts.declare_triaged(int(body["actions"][0]["value"]), user)
            inc = declared.incident
            if declared.created:
                await reply(answers.declared_answer(inc), None)
            else:
                await reply(
                    f"{inc.ref} is declared for this alert already: <#{inc.channel_id}>.", None
                )

        await guarded(ops, "declare an incident for the alert", reply, run)

    @app.action(blocks.ALERT_DISMISS)
    async def alert_dismiss(ack: AsyncAck, body: Body) -> None:
        await ack()
        user = clicker(body)
        reply = privately(ops, channel_of(body), user)

        async def run() -> None:
            said = await ops.alerts.dismiss_triaged(int(body["actions"][0]["value"]), user)
            if said != "Dismissed.":
                await reply(said, None)

        await guarded(ops, "dismiss the alert", reply, run)

    def button(*action_ids: Matcher, what: str) -> Callable[[ButtonWork], ButtonWork]:
        """A card or reminder control: ack at once, find its incident, do `work`, and tell
        the person privately if it fails."""

        def register_(work: ButtonWork) -> ButtonWork:
            async def clicked(ack: AsyncAck, body: Body) -> None:
                await ack()
                reply = privately(ops, channel_of(body), clicker(body))

                async def run() -> None:
                    value = body["actions"][0].get("value")
                    incident = await ops.find.for_control(value, channel_of(body), clicker(body))
                    await work(body, incident, reply)

                await guarded(ops, what, reply, run)

            for action_id in action_ids:
                app.action(action_id)(clicked)
            return work

        return register_

    @button(blocks.CARD_SEVERITY, what="change the severity")
    async def severity_picked(body: Body, inc: Incident, reply: Reply) -> None:
        picked = body["actions"][0]["selected_option"]["value"]
        await tell(await ops.response.set_severity(inc.pk, picked, clicker(body)), reply)

    @button(re.compile(rf"^{re.escape(blocks.CARD_ROLE)}"), what="assign the role")
    async def role_picked(body: Body, inc: Incident, reply: Reply) -> None:
        action = body["actions"][0]
        role = action["action_id"][len(blocks.CARD_ROLE) :]
        user = action.get("selected_user")
        if not user:
            return  # the picker was cleared; a role is never left empty this way
        await tell(await ops.response.assign_role(inc.pk, role, user, clicker(body)), reply)

    @button(blocks.CARD_UPDATE, blocks.REMINDER_UPDATE, what="open the update form")
    async def update_clicked(body: Body, inc: Incident, reply: Reply) -> None:
        rules.require_open(inc)
        await open_form(ops, body["trigger_id"], forms.update_modal(inc, settings), reply)

    @button(blocks.CARD_RESOLVE, what="open the resolve form")
    async def resolve_clicked(body: Body, inc: Incident, reply: Reply) -> None:
        if not inc.is_open:
            raise BadInput(f"{inc.ref} is already resolved.")
        await open_form(ops, body["trigger_id"], forms.resolve_modal(inc), reply)

    @button(blocks.CARD_REOPEN, what="reopen the incident")
    async def reopen_clicked(body: Body, inc: Incident, reply: Reply) -> None:
        await tell(await ops.response.reopen(inc.pk, clicker(body)), reply)

    @button(re.compile(rf"^{re.escape(blocks.REMINDER_SNOOZE)}\d+$"), what="snooze the reminder")
    async def snooze_clicked(body: Body, inc: Incident, reply: Reply) -> None:
        minutes = int(body["actions"][0]["action_id"][len(blocks.REMINDER_SNOOZE) :])
        # One snooze per reminder message, however often it is clicked.
        reminder_ts = (body.get("container") or {}).get("message_ts") or "?"
        done = await ops.response.snooze(
            inc.pk, minutes, clicker(body), key=f"snooze:{reminder_ts}"
        )
        await tell(done, reply, always=True)

    @button(blocks.CARD_FOLLOW_UP, what="open the follow-up form")
    async def follow_up_clicked(body: Body, inc: Incident, reply: Reply) -> None:
        await open_form(ops, body["trigger_id"], forms.follow_up_modal(inc), reply)

    @button(blocks.CARD_POSTMORTEM, what="compile the postmortem")
    async def postmortem_clicked(body: Body, inc: Incident, reply: Reply) -> None:
        await tell(await ops.postmortems.compile(inc.pk, clicker(body)), reply)
