"""`/incident`: parse the subcommand, ack at once, call one operation, answer privately."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncRespond

from bot.base.errors import BadInput
from bot.base.plain import one_line
from bot.inbound.listeners.common import (
    COMMAND,
    Listen,
    Operations,
    Reply,
    declare,
    guarded,
    open_form,
    responder,
    tell,
)
from bot.model import report, rules
from bot.model.tables import Incident
from bot.operations.incidents.declare import Declaration
from bot.views import answers, blocks, forms
from bot.views.text import (
    clean,
    literal,
    parse_user_name,
    parse_user_ref,
    slack_to_plain,
    split_command,
)

Body = dict[str, Any]
Subcommand = Callable[[Incident, str, Body, Reply], Awaitable[None]]


def register(app: Listen, ops: Operations) -> None:
    settings = ops.settings
    in_incident: dict[str, Subcommand] = {}

    def subcommand(*names: str) -> Callable[[Subcommand], Subcommand]:
        def register_(fn: Subcommand) -> Subcommand:
            for name in names:
                in_incident[name] = fn
            return fn

        return register_

    @app.command(COMMAND)
    async def incident_command(
        ack: AsyncAck, body: Body, respond: AsyncRespond, context: Any
    ) -> None:
        sub, rest = split_command(clean(body.get("text") or ""))
        user_id: str = body["user_id"]
        # Numbering belongs to the installation (its team, learned at start-up), not to the
        # team a request carries (Slack Connect, Enterprise Grid).
        team_id: str = context.authorize_result.team_id or body.get("team_id") or ""
        reply = responder(respond)

        if sub in ("", "help"):
            text, help_ = answers.help_blocks(settings)
            await ack(text=text, blocks=help_)
            return

        if sub == "declare":
            if not rest:
                await ack()
                modal = forms.declare_modal(
                    settings, user_id=user_id, origin_channel=body.get("channel_id")
                )
                await guarded(
                    ops,
                    "open the declare form",
                    reply,
                    lambda: open_form(ops, body["trigger_id"], modal, reply),
                    waits=False,
                )
                return
            try:
                drill, words = rules.parse_drill(slack_to_plain(rest))
                severity, title = rules.parse_declare(settings, words)
                title = rules.check_title(title)
            except BadInput as e:
                await ack(text=f":warning: {e}")
                return
            what = "a drill, " if drill else ""
            await ack(
                text=f":hourglass_flowing_sand: Declaring {what}_{literal(one_line(title, 100))}_…"
            )
            request = Declaration(
                team_id=team_id,
                actor=user_id,
                key=f"command:{body['trigger_id']}",
                title=title,
                severity=severity,
                origin_channel=body.get("channel_id"),
                drill=drill,
            )
            await guarded(ops, "declare the incident", reply, lambda: declare(ops, request, reply))
            return

        if sub == "stats":
            await ack()

            async def figures() -> None:
                try:
                    since = report.parse_since(rest or "30d", ops.reports.clock())
                except ValueError:
                    raise BadInput(
                        "Name a period: `/incident stats 30d` (also `12h`, `2w`, or a date "
                        "like `2026-11-01`)."
                    ) from None
                text, body_ = answers.stats(await ops.reports.build(since))
                await reply(text, body_)

            await guarded(ops, "compute the figures", reply, figures)
            return

        if sub == "list":
            await ack()

            async def list_open() -> None:
                states = await ops.find.visible_open(team_id, user_id)
                text, body_ = answers.incident_list(states, settings)
                await reply(text, body_)

            await guarded(ops, "list incidents", reply, list_open)
            return

        handler = in_incident.get(sub)
        if handler is not None:
            await ack()

            async def run() -> None:
                number, named_rest = rules.named_incident(rest)
                if number is not None:
                    # `/incident resolve INC-42 …` works anywhere, for people who may see it.
                    incident = await ops.find.by_number(number, user_id)
                    await handler(incident, named_rest, body, reply)
                    return
                incident = await ops.find.in_channel(body.get("channel_id"), team_id, user_id)
                await handler(incident, rest, body, reply)

            await guarded(ops, f"run `/incident {sub}`", reply, run)
            return

        text, help_ = answers.help_blocks(
            settings,
            intro=f":thinking_face: `{literal(one_line(sub, 40))}` is not an incident command. "
            "Here is what you can do:",
        )
        await ack(text=text, blocks=help_)

    @subcommand("severity", "sev")
    async def severity_cmd(inc: Incident, rest: str, body: Body, reply: Reply) -> None:
        if not rest.strip():
            text, choices = answers.severity_choices(inc, settings)
            await reply(text, choices)
            return
        done = await ops.response.set_severity(inc.pk, rest.split()[0], body["user_id"])
        await tell(done, reply)

    async def assign(role: str, inc: Incident, who: str, body: Body, reply: Reply) -> None:
        role_ = rules.role(settings, role)
        if not who.strip():
            text, picker = answers.role_picker(inc, role_)
            await reply(text, picker)
            return
        tokens = who.split()
        if len(tokens) > 1:
            raise BadInput(f"Name one person for {role_.label}: `/incident {role} @name`.")
        user_id = await ops.find.person(tokens[0], body["user_id"])
        done = await ops.response.assign_role(inc.pk, role_.name, user_id, body["user_id"])
        await tell(done, reply)

    @subcommand("commander", "ic")
    async def commander_cmd(inc: Incident, rest: str, body: Body, reply: Reply) -> None:
        await assign("commander", inc, rest, body, reply)

    @subcommand("comms")
    async def comms_cmd(inc: Incident, rest: str, body: Body, reply: Reply) -> None:
        await assign("comms", inc, rest, body, reply)

    @subcommand("role")
    async def role_cmd(inc: Incident, rest: str, body: Body, reply: Reply) -> None:
        role, _, who = rest.strip().partition(" ")
        if not role:
            roles = ", ".join(f"`{r.name}`" for r in settings.roles)
            raise BadInput(f"Say which role: `/incident role scribe @name`. Roles: {roles}.")
        await assign(role, inc, who, body, reply)

    @subcommand("update")
    async def update_cmd(inc: Incident, rest: str, body: Body, reply: Reply) -> None:
        rules.require_open(inc)
        if not rest.strip():
            await open_form(ops, body["trigger_id"], forms.update_modal(inc, settings), reply)
            return
        done = await ops.response.post_update(
            inc.pk,
            summary=slack_to_plain(rest),
            actor=body["user_id"],
            key=f"command:{body['trigger_id']}",
        )
        await tell(done, reply)

    @subcommand("status")
    async def status_cmd(inc: Incident, rest: str, body: Body, reply: Reply) -> None:
        state, latest = await ops.find.status(inc)
        effects = await ops.find.effects(inc)
        view = answers.private_status(state, settings, latest, effects)
        await reply(blocks.card_text(state, settings), view)

    @subcommand("resolve")
    async def resolve_cmd(inc: Incident, rest: str, body: Body, reply: Reply) -> None:
        done = await ops.response.resolve(
            inc.pk, summary=slack_to_plain(rest), actor=body["user_id"]
        )
        await tell(done, reply)

    @subcommand("reopen")
    async def reopen_cmd(inc: Incident, rest: str, body: Body, reply: Reply) -> None:
        done = await ops.response.reopen(inc.pk, body["user_id"])
        await tell(done, reply)

    @subcommand("note")
    async def note_cmd(inc: Incident, rest: str, body: Body, reply: Reply) -> None:
        done = await ops.timeline.add_note(
            inc, slack_to_plain(rest), body["user_id"], key=f"command:{body['trigger_id']}"
        )
        await tell(done, reply, always=True)

    @subcommand("action", "followup", "follow-up")
    async def action_cmd(inc: Incident, rest: str, body: Body, reply: Reply) -> None:
        words = rest.split()
        owner = None
        # A trailing mention names the owner: `/incident action Add alerting @bob`.
        if words and (parse_user_ref(words[-1]) or parse_user_name(words[-1])):
            owner = await ops.find.person(words[-1], body["user_id"])
            rest = rest.rstrip()[: -len(words[-1])]
        done = await ops.timeline.add_follow_up(
            inc, slack_to_plain(rest), owner, body["user_id"], key=f"command:{body['trigger_id']}"
        )
        await tell(done, reply, always=True)

    @subcommand("postmortem", "pm")
    async def postmortem_cmd(inc: Incident, rest: str, body: Body, reply: Reply) -> None:
        await reply(f":hourglass_flowing_sand: Compiling {inc.ref}'s postmortem draft…", None)
        done = await ops.postmortems.compile(inc.pk, body["user_id"])
        await reply(done.message, None)
