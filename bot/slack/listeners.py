"""Slack listeners: parse the payload, ack at once, call one operation, answer the person.

Bolt runs each listener as a task and answers Slack as soon as `ack()` is called, so
everything after `ack()` is off Slack's 3-second clock.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.errors import SlackApiError
from slack_sdk.models.blocks import Block

from bot.incidents import BadInput, Incidents, SlackFailure, slack_error
from bot.slack import blocks
from bot.slack.text import literal, one_line, split_command

log = logging.getLogger(__name__)

COMMAND = "/incident"

Reply = Callable[[str, list[Block] | None], Awaitable[None]]


def sorry(action: str, e: Exception) -> str:
    if isinstance(e, BadInput | SlackFailure):
        return f":warning: {e}"
    if isinstance(e, SlackApiError):
        return f":warning: Slack refused to {action} (`{slack_error(e)}`). Please try again."
    return (
        f":warning: Something went wrong while trying to {action}. "
        "The details are in the bot's log; please try again."
    )


def register(app: AsyncApp, ops: Incidents) -> None:
    settings = ops.settings

    async def guarded(action: str, reply: Reply, work: Callable[[], Awaitable[None]]) -> None:
        """Run work after the ack; whatever fails, the person hears about it privately."""
        try:
            await work()
        except (BadInput, SlackFailure) as e:
            await reply(sorry(action, e), None)
        except Exception as e:
            log.exception("failed to %s", action)
            await reply(sorry(action, e), None)

    def responder(respond: AsyncRespond) -> Reply:
        async def reply(text: str, body: list[Block] | None = None) -> None:
            await respond(text=text, blocks=body, response_type="ephemeral", replace_original=False)

        return reply

    def dm_or_ephemeral(channel: str | None, user: str) -> Reply:
        """Answer privately where the person is; a DM when the bot cannot post there."""

        async def reply(text: str, body: list[Block] | None = None) -> None:
            if channel:
                try:
                    await ops.client.chat_postEphemeral(
                        channel=channel, user=user, text=text, blocks=body
                    )
                    return
                except SlackApiError as e:
                    log.debug("ephemeral answer failed (%s); sending a DM", slack_error(e))
            await ops.client.chat_postMessage(channel=user, text=text, blocks=body)

        return reply

    async def announce_declared(reply: Reply, incident_id: int) -> None:
        inc = await ops.provision(incident_id)
        lock = " (private)" if inc.private else ""
        await reply(
            f":rotating_light: *{inc.ref}*{lock} declared: <#{inc.channel_id}>. "
            "You are in the channel; the incident card is pinned there.",
            None,
        )

    # --- /incident -----------------------------------------------------------------------

    @app.command(COMMAND)
    async def incident_command(
        ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, context: Any
    ) -> None:
        sub, rest = split_command(body.get("text") or "")
        user_id: str = body["user_id"]
        team_id: str = body.get("team_id") or context.team_id
        reply = responder(respond)

        if sub in ("", "help"):
            text, help_ = blocks.help_blocks(settings)
            await ack(text=text, blocks=help_)
            return

        if sub == "declare":
            if not rest:
                await ack()
                modal = blocks.declare_modal(
                    settings, user_id=user_id, origin_channel=body.get("channel_id")
                )

                async def open_modal() -> None:
                    try:
                        await ops.client.views_open(trigger_id=body["trigger_id"], view=modal)
                    except SlackApiError as e:
                        if slack_error(e) not in ("expired_trigger_id", "invalid_trigger_id"):
                            raise
                        await reply(
                            ":hourglass: Slack took too long to open the form. Run "
                            "`/incident declare` again, or type `/incident declare sev2 <title>`.",
                            None,
                        )

                await guarded("open the declare form", reply, open_modal)
                return
            try:
                severity, title = ops.parse_declare(rest)
                title = ops.check_title(title)
            except BadInput as e:
                await ack(text=f":warning: {e}")
                return
            await ack(text=f":hourglass_flowing_sand: Declaring _{literal(one_line(title, 100))}_…")

            async def declare_now() -> None:
                declared = await ops.declare(
                    team_id=team_id,
                    actor=user_id,
                    key=f"command:{body['trigger_id']}",
                    title=title,
                    severity=severity,
                    origin_channel=body.get("channel_id"),
                )
                if declared.created:
                    await announce_declared(reply, declared.incident.id)  # type: ignore[arg-type]

            await guarded("declare the incident", reply, declare_now)
            return

        if sub == "list":
            await ack()

            async def list_open() -> None:
                states = await ops.visible_open(team_id, user_id)
                text, body_ = blocks.incident_list(states, settings)
                await reply(text, body_)

            await guarded("list incidents", reply, list_open)
            return

        text, help_ = blocks.help_blocks(
            settings,
            intro=f":thinking_face: `{literal(one_line(sub, 40))}` is not an incident command. "
            "Here is what you can do:",
        )
        await ack(text=text, blocks=help_)

    # --- the declare modal ----------------------------------------------------------------

    @app.view(blocks.DECLARE_VIEW)
    async def declare_submitted(ack: AsyncAck, body: dict[str, Any], context: Any) -> None:
        view = body["view"]
        values = view["state"]["values"]
        user_id: str = body["user"]["id"]
        team_id: str = (body.get("team") or {}).get("id") or context.team_id

        def value(field: tuple[str, str]) -> dict[str, Any]:
            return values.get(field[0], {}).get(field[1], {}) or {}

        title = value(blocks.DECLARE_TITLE).get("value") or ""
        severity = (value(blocks.DECLARE_SEVERITY).get("selected_option") or {}).get("value")
        description = value(blocks.DECLARE_DESCRIPTION).get("value") or ""
        commander = value(blocks.DECLARE_COMMANDER).get("selected_user") or user_id
        private = any(
            o.get("value") == "private"
            for o in value(blocks.DECLARE_PRIVATE).get("selected_options") or []
        )
        try:
            origin = json.loads(view.get("private_metadata") or "{}").get("channel")
        except (ValueError, AttributeError):
            origin = None

        errors: dict[str, str] = {}
        try:
            ops.check_title(title)
        except BadInput as e:
            errors[blocks.DECLARE_TITLE[0]] = str(e)[:150]
        if severity is not None and settings.severity(severity) is None:
            errors[blocks.DECLARE_SEVERITY[0]] = "Pick one of the listed severities."
        if commander != user_id:
            try:
                # Bounded: the modal must be answered within Slack's 3 seconds.
                await asyncio.wait_for(ops.check_person(commander, "The commander"), 1.5)
            except BadInput as e:
                errors[blocks.DECLARE_COMMANDER[0]] = str(e)[:150]
            except (TimeoutError, SlackApiError):
                pass  # Slack is slow or down: accept the pick rather than block the declaration
        if errors:
            await ack(response_action="errors", errors=errors)
            return
        await ack()
        reply = dm_or_ephemeral(origin, user_id)

        async def declare_now() -> None:
            declared = await ops.declare(
                team_id=team_id,
                actor=user_id,
                key=f"view:{view['id']}",
                title=title,
                severity=severity,
                description=description,
                commander=commander,
                private=private,
                origin_channel=origin,
            )
            if declared.created:
                await announce_declared(reply, declared.incident.id)  # type: ignore[arg-type]

        await guarded("declare the incident", reply, declare_now)
