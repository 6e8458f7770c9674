"""Submitted forms: the ack function checks what Slack can show under a field (the form
stays open, text intact, saying why); the lazy work acts and answers privately."""

from __future__ import annotations

import asyncio

from slack_bolt.async_app import AsyncAck, AsyncBoltContext
from slack_sdk.errors import SlackApiError

from bot.base.errors import BadInput
from bot.inbound.listeners.common import (
    Body,
    Operations,
    declare,
    guarded,
    installation_team,
    privately,
    tell,
)
from bot.inbound.listeners.lazy import accept
from bot.model import rules
from bot.operations.incidents.declare import Declaration
from bot.views import answers
from bot.views.forms import DeclareForm, Field, FollowUpForm, Form, ResolveForm, UpdateForm, errors

# The form must be answered within Slack's 3 seconds; a slower check is skipped.
CHECK_SECONDS = 1.5


async def check_update(
    ops: Operations, ack: AsyncAck, body: Body, context: AsyncBoltContext
) -> None:
    form = Form(body["view"])
    if not form.text(UpdateForm.SUMMARY).strip():
        await ack(response_action="errors", errors=errors({UpdateForm.SUMMARY: "Write a summary."}))
        return
    # Nothing typed is lost: a form its incident can no longer take stays open, saying why.
    target = await ops.find.by_id(form.incident_id() or 0)
    if target is not None and not target.is_open:
        too_late = answers.update_too_late(target)
        await ack(response_action="errors", errors=errors({UpdateForm.SUMMARY: too_late}))
        return
    await accept(ack, context)


async def update_submitted(ops: Operations, body: Body) -> None:
    form = Form(body["view"])
    user_id = body["user"]["id"]

    async def work() -> None:
        inc = await ops.find.for_form(form.incident_id(), user_id)
        answer = privately(ops, inc.channel_id, user_id)
        try:
            done = await ops.response.post_update(
                inc.pk,
                summary=form.text(UpdateForm.SUMMARY),
                status=form.option(UpdateForm.STATUS),
                actor=user_id,
                key=f"view:{form.id}",
            )
        except BadInput as e:
            await answer(f":warning: {e}", None)
            return
        await tell(done, answer)

    await guarded(ops, "post the update", privately(ops, None, user_id), work)


async def check_follow_up(ack: AsyncAck, body: Body, context: AsyncBoltContext) -> None:
    if not Form(body["view"]).text(FollowUpForm.TEXT).strip():
        await ack(response_action="errors", errors=errors({FollowUpForm.TEXT: "Describe it."}))
        return
    await accept(ack, context)


async def follow_up_submitted(ops: Operations, body: Body) -> None:
    form = Form(body["view"])
    user_id = body["user"]["id"]

    async def work() -> None:
        incident = await ops.find.for_form(form.incident_id(), user_id)
        owner = form.user(FollowUpForm.OWNER)
        if owner:
            await ops.find.check_person(owner, "The owner")
        done = await ops.timeline.add_follow_up(
            incident, form.text(FollowUpForm.TEXT), owner, user_id, key=f"view:{form.id}"
        )
        await tell(done, privately(ops, incident.channel_id, user_id))

    await guarded(ops, "record the follow-up", privately(ops, None, user_id), work)


async def resolve_submitted(ops: Operations, body: Body) -> None:
    form = Form(body["view"])
    user_id = body["user"]["id"]

    async def work() -> None:
        incident = await ops.find.for_form(form.incident_id(), user_id)
        summary = form.text(ResolveForm.SUMMARY)
        done = await ops.response.resolve(incident.pk, summary=summary, actor=user_id)
        await tell(done, privately(ops, done.incident.channel_id, user_id))

    await guarded(ops, "resolve the incident", privately(ops, None, user_id), work)


def declaration(body: Body, context: AsyncBoltContext) -> Declaration:
    """What the declare form asks for (checked by check_declare)."""
    form = Form(body["view"])
    user_id: str = body["user"]["id"]
    origin = form.metadata.get("channel")
    return Declaration(
        team_id=installation_team(context, (body.get("team") or {}).get("id")),
        actor=user_id,
        key=f"view:{form.id}",
        title=form.text(DeclareForm.TITLE),
        severity=form.option(DeclareForm.SEVERITY),
        description=form.text(DeclareForm.DESCRIPTION),
        commander=form.user(DeclareForm.COMMANDER) or user_id,
        private="private" in form.checked(DeclareForm.PRIVATE),
        drill="drill" in form.checked(DeclareForm.PRIVATE),
        origin_channel=origin if isinstance(origin, str) else None,
    )


async def check_declare(
    ops: Operations, ack: AsyncAck, body: Body, context: AsyncBoltContext
) -> None:
    request = declaration(body, context)
    problems: dict[Field, str] = {}
    try:
        rules.check_title(request.title)
    except BadInput as e:
        problems[DeclareForm.TITLE] = str(e)
    if request.severity is not None and ops.settings.severity(request.severity) is None:
        problems[DeclareForm.SEVERITY] = "Pick one of the listed severities."
    if request.commander is not None and request.commander != request.actor:
        try:
            await asyncio.wait_for(
                ops.find.check_person(request.commander, "The commander"), CHECK_SECONDS
            )
        except BadInput as e:
            problems[DeclareForm.COMMANDER] = str(e)
        except (TimeoutError, SlackApiError):
            pass  # Slack is slow or down: accept the pick rather than block the declaration
    if problems:
        await ack(response_action="errors", errors=errors(problems))
        return
    await accept(ack, context)


async def declare_submitted(ops: Operations, body: Body, context: AsyncBoltContext) -> None:
    request = declaration(body, context)
    reply = privately(ops, request.origin_channel, request.actor)
    await guarded(ops, "declare the incident", reply, lambda: declare(ops, request, reply))
