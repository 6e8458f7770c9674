"""Slack listeners: parse the payload, ack at once, call one operation, answer the person.

Bolt runs each listener as a task and answers Slack as soon as `ack()` is called, so
everything after `ack()` is off Slack's 3-second clock.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.errors import SlackApiError
from slack_sdk.models.blocks import Block

from bot.incidents import BadInput, Capture, Changed, Incidents, SlackFailure, slack_error
from bot.slack import blocks
from bot.slack.text import (
    clean,
    literal,
    one_line,
    parse_user_name,
    parse_user_ref,
    slack_to_plain,
    split_command,
)
from bot.store import Incident

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
    capture = Capture(ops)

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
        if not inc.channel_id:
            await reply(
                f":rotating_light: *{inc.ref}*{lock} declared; its channel is being set up.", None
            )
            return
        await reply(
            f":rotating_light: *{inc.ref}*{lock} declared: <#{inc.channel_id}>. "
            "You are in the channel; the incident card is pinned there.",
            None,
        )

    # --- /incident -----------------------------------------------------------------------

    in_incident: dict[str, Callable[..., Awaitable[None]]] = {}

    def subcommand(*names: str) -> Callable[[Any], Any]:
        def register_(fn: Any) -> Any:
            for name in names:
                in_incident[name] = fn
            return fn

        return register_

    @app.command(COMMAND)
    async def incident_command(
        ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, context: Any
    ) -> None:
        sub, rest = split_command(clean(body.get("text") or ""))
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
                await guarded("open the declare form", reply, lambda: open_view(body, modal, reply))
                return
            try:
                severity, title = ops.parse_declare(slack_to_plain(rest))
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

        handler = in_incident.get(sub)
        if handler is not None:
            await ack()

            async def run() -> None:
                incident = await ops.in_channel(body.get("channel_id"), team_id)
                await handler(incident, rest, body, reply)

            await guarded(f"run `/incident {sub}`", reply, run)
            return

        text, help_ = blocks.help_blocks(
            settings,
            intro=f":thinking_face: `{literal(one_line(sub, 40))}` is not an incident command. "
            "Here is what you can do:",
        )
        await ack(text=text, blocks=help_)

    async def open_view(body: dict[str, Any], view: Any, reply: Reply) -> None:
        try:
            await ops.client.views_open(trigger_id=body["trigger_id"], view=view)
        except SlackApiError as e:
            if slack_error(e) not in ("expired_trigger_id", "invalid_trigger_id"):
                raise
            await reply(":hourglass: Slack took too long to open the form. Please try again.", None)

    @subcommand("severity", "sev")
    async def severity_cmd(inc: Incident, rest: str, body: dict[str, Any], reply: Reply) -> None:
        if not rest.strip():
            text, choices = blocks.severity_choices(inc, settings)
            await reply(text, choices)
            return
        done = await ops.set_severity(inc.id, rest.split()[0], body["user_id"])  # type: ignore[arg-type]
        if not done.changed:
            await reply(done.message, None)

    async def assign(
        role: str, inc: Incident, who: str, body: dict[str, Any], reply: Reply
    ) -> None:
        role_ = ops.role(role)
        if not who.strip():
            text, picker = blocks.role_picker(inc, role_)
            await reply(text, picker)
            return
        tokens = who.split()
        if len(tokens) > 1:
            raise BadInput(f"Name one person for {role_.label}: `/incident {role} @name`.")
        user_id = await ops.find_user(tokens[0], body["user_id"])
        done = await ops.assign_role(inc.id, role_.name, user_id, body["user_id"])  # type: ignore[arg-type]
        if not done.changed:
            await reply(done.message, None)

    @subcommand("commander", "ic")
    async def commander_cmd(inc: Incident, rest: str, body: dict[str, Any], reply: Reply) -> None:
        await assign("commander", inc, rest, body, reply)

    @subcommand("comms")
    async def comms_cmd(inc: Incident, rest: str, body: dict[str, Any], reply: Reply) -> None:
        await assign("comms", inc, rest, body, reply)

    @subcommand("role")
    async def role_cmd(inc: Incident, rest: str, body: dict[str, Any], reply: Reply) -> None:
        role, _, who = rest.strip().partition(" ")
        if not role:
            roles = ", ".join(f"`{r.name}`" for r in settings.roles)
            raise BadInput(f"Say which role: `/incident role scribe @name`. Roles: {roles}.")
        await assign(role, inc, who, body, reply)

    @subcommand("update")
    async def update_cmd(inc: Incident, rest: str, body: dict[str, Any], reply: Reply) -> None:
        if not inc.is_open:
            raise BadInput(f"{inc.ref} is resolved. `/incident reopen` it first.")
        if not rest.strip():
            await open_view(body, blocks.update_modal(inc, settings), reply)
            return
        await ops.post_update(
            inc.id,  # type: ignore[arg-type]
            summary=slack_to_plain(rest),
            actor=body["user_id"],
            key=f"command:{body['trigger_id']}",
        )

    @subcommand("status")
    async def status_cmd(inc: Incident, rest: str, body: dict[str, Any], reply: Reply) -> None:
        state = await ops.state(inc.id)  # type: ignore[arg-type]
        latest = await ops.store.latest_update(inc.id)  # type: ignore[arg-type]
        view = blocks.private_status(state, settings, latest.summary if latest else None)
        await reply(blocks.card_text(state, settings), view)

    @subcommand("resolve")
    async def resolve_cmd(inc: Incident, rest: str, body: dict[str, Any], reply: Reply) -> None:
        done = await ops.resolve(inc.id, summary=slack_to_plain(rest), actor=body["user_id"])  # type: ignore[arg-type]
        if not done.changed:
            await reply(done.message, None)

    @subcommand("reopen")
    async def reopen_cmd(inc: Incident, rest: str, body: dict[str, Any], reply: Reply) -> None:
        done = await ops.reopen(inc.id, body["user_id"])  # type: ignore[arg-type]
        if not done.changed:
            await reply(done.message, None)

    @subcommand("note")
    async def note_cmd(inc: Incident, rest: str, body: dict[str, Any], reply: Reply) -> None:
        done = await capture.add_note(
            inc, slack_to_plain(rest), body["user_id"], key=f"command:{body['trigger_id']}"
        )
        await reply(done.message, None)

    @subcommand("action", "followup", "follow-up")
    async def action_cmd(inc: Incident, rest: str, body: dict[str, Any], reply: Reply) -> None:
        words = rest.split()
        owner = None
        # A trailing mention names the owner: `/incident action Add alerting @bob`.
        if words and (parse_user_ref(words[-1]) or parse_user_name(words[-1])):
            owner = await ops.find_user(words[-1], body["user_id"])
            rest = rest.rstrip()[: -len(words[-1])]
        done = await capture.add_follow_up(
            inc, slack_to_plain(rest), owner, body["user_id"], key=f"command:{body['trigger_id']}"
        )
        await reply(done.message, None)

    @subcommand("postmortem", "pm")
    async def postmortem_cmd(inc: Incident, rest: str, body: dict[str, Any], reply: Reply) -> None:
        await reply(f":hourglass_flowing_sand: Compiling {inc.ref}'s postmortem draft…", None)
        done = await capture.compile_postmortem(inc.id, body["user_id"])  # type: ignore[arg-type]
        await reply(done.message, None)

    # --- timeline capture ----------------------------------------------------------------

    @app.event("reaction_added")
    async def reaction_added(event: dict[str, Any]) -> None:
        item = event.get("item") or {}
        if event.get("reaction") != settings.timeline_emoji or item.get("type") != "message":
            return
        incident = await ops.store.incident_by_channel(item.get("channel", ""))
        if incident is None:
            return  # a pin somewhere else is none of the bot's business
        try:
            await capture.add_message(incident, ts=item["ts"], actor=event["user"])
        except (BadInput, SlackApiError) as e:
            log.info("could not add a message to %s: %s", incident.ref, e)

    @app.shortcut(blocks.TIMELINE_SHORTCUT)
    async def timeline_shortcut(ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        channel = (body.get("channel") or {}).get("id")
        user_id = body["user"]["id"]
        reply = dm_or_ephemeral(channel, user_id)

        async def work() -> None:
            incident = await ops.store.incident_by_channel(channel) if channel else None
            if incident is None:
                raise BadInput(
                    "*Add to incident timeline* works on messages in an incident's channel."
                )
            message = body.get("message") or {}
            done = await capture.add_message(
                incident, ts=message.get("ts") or body["message_ts"], actor=user_id, message=message
            )
            await reply(done.message, None)

        await guarded("add the message to the timeline", reply, work)

    # --- the card's controls and the reminder's buttons ------------------------------------

    async def incident_for_action(body: dict[str, Any]) -> Incident:
        action = body["actions"][0]
        value = action.get("value")
        if value and value.isdigit():
            incident = await ops.store.incident(int(value))
        else:
            channel = (body.get("channel") or {}).get("id") or (body.get("container") or {}).get(
                "channel_id"
            )
            incident = await ops.store.incident_by_channel(channel) if channel else None
        if incident is None:
            raise BadInput("This control belongs to an incident the bot no longer knows.")
        return incident

    def action_reply(body: dict[str, Any]) -> Reply:
        channel = (body.get("channel") or {}).get("id") or (body.get("container") or {}).get(
            "channel_id"
        )
        return dm_or_ephemeral(channel, body["user"]["id"])

    async def quietly(done: Changed, reply: Reply) -> None:
        """Tell the person only when their click did nothing (a repeat, or no change)."""
        if not done.changed and done.message:
            await reply(done.message, None)

    ButtonWork = Callable[[dict[str, Any], Incident, Reply], Awaitable[None]]

    def button(*action_ids: str | re.Pattern[str], what: str) -> Callable[[ButtonWork], ButtonWork]:
        """A card or reminder control: ack at once, find its incident, do `work`, and tell
        the person privately if it fails."""

        def register_(work: ButtonWork) -> ButtonWork:
            async def clicked(ack: AsyncAck, body: dict[str, Any]) -> None:
                await ack()
                reply = action_reply(body)

                async def run() -> None:
                    await work(body, await incident_for_action(body), reply)

                await guarded(what, reply, run)

            for action_id in action_ids:
                app.action(action_id)(clicked)
            return work

        return register_

    def clicker(body: dict[str, Any]) -> str:
        return str(body["user"]["id"])

    @button(blocks.CARD_SEVERITY, what="change the severity")
    async def severity_picked(body: dict[str, Any], inc: Incident, reply: Reply) -> None:
        picked = body["actions"][0]["selected_option"]["value"]
        await quietly(await ops.set_severity(inc.id, picked, clicker(body)), reply)  # type: ignore[arg-type]

    @button(re.compile(rf"^{re.escape(blocks.CARD_ROLE)}"), what="assign the role")
    async def role_picked(body: dict[str, Any], inc: Incident, reply: Reply) -> None:
        action = body["actions"][0]
        role = action["action_id"][len(blocks.CARD_ROLE) :]
        user = action.get("selected_user")
        if not user:
            return  # the picker was cleared; a role is never left empty this way
        await quietly(await ops.assign_role(inc.id, role, user, clicker(body)), reply)  # type: ignore[arg-type]

    @button(blocks.CARD_UPDATE, blocks.REMINDER_UPDATE, what="open the update form")
    async def update_clicked(body: dict[str, Any], inc: Incident, reply: Reply) -> None:
        if not inc.is_open:
            raise BadInput(f"{inc.ref} is resolved. `/incident reopen` it first.")
        await open_view(body, blocks.update_modal(inc, settings), reply)

    @button(blocks.CARD_RESOLVE, what="open the resolve form")
    async def resolve_clicked(body: dict[str, Any], inc: Incident, reply: Reply) -> None:
        if not inc.is_open:
            raise BadInput(f"{inc.ref} is already resolved.")
        await open_view(body, blocks.resolve_modal(inc), reply)

    @button(blocks.CARD_REOPEN, what="reopen the incident")
    async def reopen_clicked(body: dict[str, Any], inc: Incident, reply: Reply) -> None:
        await quietly(await ops.reopen(inc.id, clicker(body)), reply)  # type: ignore[arg-type]

    @button(re.compile(rf"^{re.escape(blocks.REMINDER_SNOOZE)}\d+$"), what="snooze the reminder")
    async def snooze_clicked(body: dict[str, Any], inc: Incident, reply: Reply) -> None:
        minutes = int(body["actions"][0]["action_id"][len(blocks.REMINDER_SNOOZE) :])
        # One snooze per reminder message, however often it is clicked.
        reminder_ts = (body.get("container") or {}).get("message_ts") or "?"
        done = await ops.snooze(inc.id, minutes, clicker(body), key=f"snooze:{reminder_ts}")  # type: ignore[arg-type]
        await reply(done.message, None)

    @button(blocks.CARD_FOLLOW_UP, what="open the follow-up form")
    async def follow_up_clicked(body: dict[str, Any], inc: Incident, reply: Reply) -> None:
        await open_view(body, blocks.follow_up_modal(inc), reply)

    @button(blocks.CARD_POSTMORTEM, what="compile the postmortem")
    async def postmortem_clicked(body: dict[str, Any], inc: Incident, reply: Reply) -> None:
        await quietly(await capture.compile_postmortem(inc.id, clicker(body)), reply)  # type: ignore[arg-type]

    # --- the update and resolve modals --------------------------------------------------------

    def view_incident(view: dict[str, Any]) -> int | None:
        try:
            value = json.loads(view.get("private_metadata") or "{}").get("incident")
        except (ValueError, AttributeError):
            return None
        return value if isinstance(value, int) else None

    def view_value(view: dict[str, Any], field: tuple[str, str]) -> dict[str, Any]:
        return view["state"]["values"].get(field[0], {}).get(field[1], {}) or {}

    @app.view(blocks.UPDATE_VIEW)
    async def update_submitted(ack: AsyncAck, body: dict[str, Any]) -> None:
        view = body["view"]
        summary = clean(view_value(view, blocks.UPDATE_SUMMARY).get("value") or "")
        status = (view_value(view, blocks.UPDATE_STATUS).get("selected_option") or {}).get("value")
        if not summary.strip():
            await ack(
                response_action="errors", errors={blocks.UPDATE_SUMMARY[0]: "Write a summary."}
            )
            return
        await ack()
        incident_id = view_incident(view)
        user_id = body["user"]["id"]

        async def work() -> None:
            if incident_id is None:
                raise BadInput("That form no longer matches an incident.")
            inc = await ops.store.incident(incident_id)
            reply_ = dm_or_ephemeral(inc.channel_id if inc else None, user_id)
            try:
                await ops.post_update(
                    incident_id,
                    summary=summary,
                    status=status,
                    actor=user_id,
                    key=f"view:{view['id']}",
                )
            except BadInput as e:
                await reply_(f":warning: {e}", None)

        await guarded("post the update", dm_or_ephemeral(None, user_id), work)

    @app.view(blocks.FOLLOW_UP_VIEW)
    async def follow_up_submitted(ack: AsyncAck, body: dict[str, Any]) -> None:
        view = body["view"]
        text = clean(view_value(view, blocks.FOLLOW_UP_TEXT).get("value") or "")
        owner = view_value(view, blocks.FOLLOW_UP_OWNER).get("selected_user")
        if not text.strip():
            await ack(response_action="errors", errors={blocks.FOLLOW_UP_TEXT[0]: "Describe it."})
            return
        await ack()
        incident_id = view_incident(view)
        user_id = body["user"]["id"]

        async def work() -> None:
            incident = await ops.store.incident(incident_id) if incident_id else None
            if incident is None:
                raise BadInput("That form no longer matches an incident.")
            if owner:
                await ops.check_person(owner, "The owner")
            await capture.add_follow_up(incident, text, owner, user_id, key=f"view:{view['id']}")

        await guarded("record the follow-up", dm_or_ephemeral(None, user_id), work)

    @app.view(blocks.RESOLVE_VIEW)
    async def resolve_submitted(ack: AsyncAck, body: dict[str, Any]) -> None:
        view = body["view"]
        summary = clean(view_value(view, blocks.RESOLVE_SUMMARY).get("value") or "")
        await ack()
        incident_id = view_incident(view)
        user_id = body["user"]["id"]

        async def work() -> None:
            if incident_id is None:
                raise BadInput("That form no longer matches an incident.")
            done = await ops.resolve(incident_id, summary=summary, actor=user_id)
            inc = done.incident
            await quietly(done, dm_or_ephemeral(inc.channel_id, user_id))

        await guarded("resolve the incident", dm_or_ephemeral(None, user_id), work)

    # --- the declare modal ----------------------------------------------------------------

    @app.view(blocks.DECLARE_VIEW)
    async def declare_submitted(ack: AsyncAck, body: dict[str, Any], context: Any) -> None:
        view = body["view"]
        values = view["state"]["values"]
        user_id: str = body["user"]["id"]
        team_id: str = (body.get("team") or {}).get("id") or context.team_id

        def value(field: tuple[str, str]) -> dict[str, Any]:
            return values.get(field[0], {}).get(field[1], {}) or {}

        title = clean(value(blocks.DECLARE_TITLE).get("value") or "")
        severity = (value(blocks.DECLARE_SEVERITY).get("selected_option") or {}).get("value")
        description = clean(value(blocks.DECLARE_DESCRIPTION).get("value") or "")
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
