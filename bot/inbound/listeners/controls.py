"""The card's controls, the reminder's buttons and the alert triage buttons: acked at once;
the lazy work finds the incident and acts once, and a failure is told to the person."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from bot.base.errors import BadInput
from bot.inbound.listeners.common import (
    Body,
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

Control = Callable[[Operations, Body, Incident, Reply], Awaitable[None]]


def channel_of(body: Body) -> str | None:
    channel = (body.get("channel") or {}).get("id") or (body.get("container") or {}).get(
        "channel_id"
    )
    return str(channel) if channel else None


def clicker(body: Body) -> str:
    return str(body["user"]["id"])


async def alert_declare(ops: Operations, body: Body) -> None:
    user = clicker(body)
    reply = privately(ops, channel_of(body), user)

    async def run() -> None:
        declared = await ops.alerts.declare_triaged(int(body["actions"][0]["value"]), user)
        inc = declared.incident
        if declared.created:
            await reply(answers.declared_answer(inc), None)
        else:
            await reply(f"{inc.ref} is declared for this alert already: <#{inc.channel_id}>.", None)

    await guarded(ops, "declare an incident for the alert", reply, run)


async def alert_dismiss(ops: Operations, body: Body) -> None:
    user = clicker(body)
    reply = privately(ops, channel_of(body), user)

    async def run() -> None:
        said = await ops.alerts.dismiss_triaged(int(body["actions"][0]["value"]), user)
        if said != "Dismissed.":
            await reply(said, None)

    await guarded(ops, "dismiss the alert", reply, run)


async def on_incident(ops: Operations, what: str, control: Control, body: Body) -> None:
    """A card or reminder control: find its incident, then `control` (to `what`)."""
    reply = privately(ops, channel_of(body), clicker(body))

    async def run() -> None:
        value = body["actions"][0].get("value")
        incident = await ops.find.for_control(value, channel_of(body), clicker(body))
        await control(ops, body, incident, reply)

    await guarded(ops, what, reply, run)


async def severity_picked(ops: Operations, body: Body, inc: Incident, reply: Reply) -> None:
    picked = body["actions"][0]["selected_option"]["value"]
    await tell(await ops.response.set_severity(inc.pk, picked, clicker(body)), reply)


async def role_picked(ops: Operations, body: Body, inc: Incident, reply: Reply) -> None:
    action = body["actions"][0]
    role = action["action_id"][len(blocks.CARD_ROLE) :]
    user = action.get("selected_user")
    if not user:
        return  # the picker was cleared; a role is never left empty this way
    await tell(await ops.response.assign_role(inc.pk, role, user, clicker(body)), reply)


async def update_clicked(ops: Operations, body: Body, inc: Incident, reply: Reply) -> None:
    rules.require_open(inc)
    await open_form(ops, body["trigger_id"], forms.update_modal(inc, ops.settings), reply)


async def resolve_clicked(ops: Operations, body: Body, inc: Incident, reply: Reply) -> None:
    if not inc.is_open:
        raise BadInput(f"{inc.ref} is already resolved.")
    await open_form(ops, body["trigger_id"], forms.resolve_modal(inc), reply)


async def reopen_clicked(ops: Operations, body: Body, inc: Incident, reply: Reply) -> None:
    await tell(await ops.response.reopen(inc.pk, clicker(body)), reply)


async def snooze_clicked(ops: Operations, body: Body, inc: Incident, reply: Reply) -> None:
    minutes = int(body["actions"][0]["action_id"][len(blocks.REMINDER_SNOOZE) :])
    # One snooze per reminder message, however often it is clicked.
    reminder_ts = (body.get("container") or {}).get("message_ts") or "?"
    done = await ops.response.snooze(inc.pk, minutes, clicker(body), key=f"snooze:{reminder_ts}")
    await tell(done, reply, always=True)


async def follow_up_clicked(ops: Operations, body: Body, inc: Incident, reply: Reply) -> None:
    await open_form(ops, body["trigger_id"], forms.follow_up_modal(inc), reply)


async def postmortem_clicked(ops: Operations, body: Body, inc: Incident, reply: Reply) -> None:
    await tell(await ops.postmortems.compile(inc.pk, clicker(body)), reply)
