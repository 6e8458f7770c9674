"""Submitted forms: check what Slack can show under a field before the ack, then act."""

from __future__ import annotations

import asyncio
from typing import Any

from slack_bolt.async_app import AsyncAck
from slack_sdk.errors import SlackApiError

from bot.base.errors import BadInput
from bot.inbound.listeners.common import Listen, Operations, declare, guarded, privately, tell
from bot.model import rules
from bot.operations.incidents.declare import Declaration
from bot.views import answers
from bot.views.forms import DeclareForm, Field, FollowUpForm, Form, ResolveForm, UpdateForm, errors

Body = dict[str, Any]
# The form must be answered within Slack's 3 seconds; a slower check is skipped.
CHECK_SECONDS = 1.5


def register(app: Listen, ops: Operations) -> None:
    settings = ops.settings

    @app.view(UpdateForm.VIEW)
    async def update_submitted(ack: AsyncAck, body: Body) -> None:
        form = Form(body["view"])
        summary = form.text(UpdateForm.SUMMARY)
        status = form.option(UpdateForm.STATUS)
        if not summary.strip():
            await ack(
                response_action="errors", errors=errors({UpdateForm.SUMMARY: "Write a summary."})
            )
            return
        # Nothing typed is lost: a form its incident can no longer take stays open, text
        # intact, saying why.
        target = await ops.find.by_id(form.incident_id() or 0)
        if target is not None and not target.is_open:
            await ack(
                response_action="errors",
                errors=errors({UpdateForm.SUMMARY: answers.update_too_late(target)}),
            )
            return
        await ack()
        user_id = body["user"]["id"]

        async def work() -> None:
            inc = await ops.find.for_form(form.incident_id(), user_id)
            answer = privately(ops, inc.channel_id, user_id)
            try:
                done = await ops.response.post_update(
                    inc.pk, summary=summary, status=status, actor=user_id, key=f"view:{form.id}"
                )
            except BadInput as e:
                await answer(f":warning: {e}", None)
                return
            await tell(done, answer)

        await guarded(ops, "post the update", privately(ops, None, user_id), work)

    @app.view(FollowUpForm.VIEW)
    async def follow_up_submitted(ack: AsyncAck, body: Body) -> None:
        form = Form(body["view"])
        text = form.text(FollowUpForm.TEXT)
        owner = form.user(FollowUpForm.OWNER)
        if not text.strip():
            await ack(response_action="errors", errors=errors({FollowUpForm.TEXT: "Describe it."}))
            return
        await ack()
        user_id = body["user"]["id"]

        async def work() -> None:
            incident = await ops.find.for_form(form.incident_id(), user_id)
            if owner:
                await ops.find.check_person(owner, "The owner")
            done = await ops.timeline.add_follow_up(
                incident, text, owner, user_id, key=f"view:{form.id}"
            )
            await tell(done, privately(ops, incident.channel_id, user_id))

        await guarded(ops, "record the follow-up", privately(ops, None, user_id), work)

    @app.view(ResolveForm.VIEW)
    async def resolve_submitted(ack: AsyncAck, body: Body) -> None:
        form = Form(body["view"])
        summary = form.text(ResolveForm.SUMMARY)
        await ack()
        user_id = body["user"]["id"]

        async def work() -> None:
            incident = await ops.find.for_form(form.incident_id(), user_id)
            done = await ops.response.resolve(incident.pk, summary=summary, actor=user_id)
            await tell(done, privately(ops, done.incident.channel_id, user_id))

        await guarded(ops, "resolve the incident", privately(ops, None, user_id), work)

    @app.view(DeclareForm.VIEW)
    async def declare_submitted(ack: AsyncAck, body: Body, context: Any) -> None:
        form = Form(body["view"])
        user_id: str = body["user"]["id"]
        # The installation's team, as for the command (see commands.py).
        team_id: str = context.authorize_result.team_id or (body.get("team") or {}).get("id") or ""
        title = form.text(DeclareForm.TITLE)
        severity = form.option(DeclareForm.SEVERITY)
        commander = form.user(DeclareForm.COMMANDER) or user_id
        origin = form.metadata.get("channel")

        problems: dict[Field, str] = {}
        try:
            rules.check_title(title)
        except BadInput as e:
            problems[DeclareForm.TITLE] = str(e)
        if severity is not None and settings.severity(severity) is None:
            problems[DeclareForm.SEVERITY] = "Pick one of the listed severities."
        if commander != user_id:
            try:
                await asyncio.wait_for(
                    ops.find.check_person(commander, "The commander"), CHECK_SECONDS
                )
            except BadInput as e:
                problems[DeclareForm.COMMANDER] = str(e)
            except (TimeoutError, SlackApiError):
                pass  # Slack is slow or down: accept the pick rather than block the declaration
        if problems:
            await ack(response_action="errors", errors=errors(problems))
            return
        await ack()
        reply = privately(ops, origin if isinstance(origin, str) else None, user_id)
        request = Declaration(
            team_id=team_id,
            actor=user_id,
            key=f"view:{form.id}",
            title=title,
            severity=severity,
            description=form.text(DeclareForm.DESCRIPTION),
            commander=commander,
            private="private" in form.checked(DeclareForm.PRIVATE),
            drill="drill" in form.checked(DeclareForm.PRIVATE),
            origin_channel=origin if isinstance(origin, str) else None,
        )
        await guarded(ops, "declare the incident", reply, lambda: declare(ops, request, reply))
