"""`/incident`: one listener per verb, picked by the command's first word (`said`); the ack
answers help and refuses bad input, the lazy work calls one operation and answers privately.
Verbs that act on an incident (`VERBS`) share one listener that finds it first."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from slack_bolt.async_app import AsyncAck, AsyncBoltContext, AsyncRespond

from bot.base.errors import BadInput
from bot.base.plain import one_line
from bot.inbound.listeners.common import (
    Body,
    Operations,
    Reply,
    declare,
    guarded,
    installation_team,
    open_form,
    responder,
    tell,
)
from bot.inbound.listeners.lazy import accept
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

Verb = Callable[[Operations, Incident, str, Body, Reply], Awaitable[None]]


def words(body: Body) -> tuple[str, str]:
    """The command's verb (lowercased) and what follows it."""
    return split_command(clean(body.get("text") or ""))


def said(*verbs: str, text: bool | None = None) -> Callable[[Body], Awaitable[bool]]:
    """A Bolt matcher: the command's verb is one of `verbs` (and, when `text` is given,
    something follows it or nothing does)."""

    async def matches(body: Body) -> bool:
        verb, rest = words(body)
        return verb in verbs and (text is None or bool(rest) == text)

    return matches


# --- answered by the ack alone ---------------------------------------------------------


async def help_(ops: Operations, ack: AsyncAck) -> None:
    text, help_blocks = answers.help_blocks(ops.settings)
    await ack(text=text, blocks=help_blocks)


async def unknown(ops: Operations, ack: AsyncAck, body: Body) -> None:
    verb, _ = words(body)
    text, help_blocks = answers.help_blocks(
        ops.settings,
        intro=f":thinking_face: `{literal(one_line(verb, 40))}` is not an incident command. "
        "Here is what you can do:",
    )
    await ack(text=text, blocks=help_blocks)


# --- declaring -------------------------------------------------------------------------


def declaration(ops: Operations, body: Body, context: AsyncBoltContext) -> Declaration:
    """`/incident declare [drill] [sev2] Title`, or BadInput saying what is wrong."""
    drill, rest = rules.parse_drill(slack_to_plain(words(body)[1]))
    severity, title = rules.parse_declare(ops.settings, rest)
    return Declaration(
        team_id=installation_team(context, body.get("team_id")),
        actor=body["user_id"],
        key=f"command:{body['trigger_id']}",
        title=rules.check_title(title),
        severity=severity,
        origin_channel=body.get("channel_id"),
        drill=drill,
    )


async def check_declare(
    ops: Operations, ack: AsyncAck, body: Body, context: AsyncBoltContext
) -> None:
    try:
        request = declaration(ops, body, context)
    except BadInput as e:
        await ack(text=f":warning: {e}")
        return
    what = "a drill, " if request.drill else ""
    title = literal(one_line(request.title, 100))
    await accept(ack, context, text=f":hourglass_flowing_sand: Declaring {what}_{title}_…")


async def declare_now(
    ops: Operations, body: Body, respond: AsyncRespond, context: AsyncBoltContext
) -> None:
    reply = responder(respond)
    request = declaration(ops, body, context)  # as check_declare read it
    await guarded(ops, "declare the incident", reply, lambda: declare(ops, request, reply))


async def declare_form(ops: Operations, body: Body, respond: AsyncRespond) -> None:
    """`/incident declare` alone opens the form (at once: its trigger expires)."""
    reply = responder(respond)
    modal = forms.declare_modal(
        ops.settings, user_id=body["user_id"], origin_channel=body.get("channel_id")
    )
    await guarded(
        ops,
        "open the declare form",
        reply,
        lambda: open_form(ops, body["trigger_id"], modal, reply),
        waits=False,
    )


# --- across incidents ------------------------------------------------------------------


async def stats(ops: Operations, body: Body, respond: AsyncRespond) -> None:
    reply = responder(respond)

    async def figures() -> None:
        try:
            since = report.parse_since(words(body)[1] or "30d", ops.reports.clock())
        except ValueError:
            raise BadInput(
                "Name a period: `/incident stats 30d` (also `12h`, `2w`, or a date "
                "like `2026-11-01`)."
            ) from None
        text, figures_blocks = answers.stats(await ops.reports.build(since))
        await reply(text, figures_blocks)

    await guarded(ops, "compute the figures", reply, figures)


async def list_open(
    ops: Operations, body: Body, respond: AsyncRespond, context: AsyncBoltContext
) -> None:
    reply = responder(respond)

    async def list_them() -> None:
        team_id = installation_team(context, body.get("team_id"))
        states = await ops.find.visible_open(team_id, body["user_id"])
        text, list_blocks = answers.incident_list(states, ops.settings)
        await reply(text, list_blocks)

    await guarded(ops, "list incidents", reply, list_them)


# --- on one incident -------------------------------------------------------------------


async def in_incident(
    ops: Operations, body: Body, respond: AsyncRespond, context: AsyncBoltContext
) -> None:
    """A verb of `VERBS`, on the incident it names (`/incident resolve INC-42 …`, anywhere,
    for people who may see it) or on the channel's."""
    verb, rest = words(body)
    reply = responder(respond)
    user_id: str = body["user_id"]

    async def run() -> None:
        number, named_rest = rules.named_incident(rest)
        if number is not None:
            incident = await ops.find.by_number(number, user_id)
            await VERBS[verb](ops, incident, named_rest, body, reply)
            return
        team_id = installation_team(context, body.get("team_id"))
        incident = await ops.find.in_channel(body.get("channel_id"), team_id, user_id)
        await VERBS[verb](ops, incident, rest, body, reply)

    await guarded(ops, f"run `/incident {verb}`", reply, run)


async def severity(ops: Operations, inc: Incident, rest: str, body: Body, reply: Reply) -> None:
    if not rest.strip():
        text, choices = answers.severity_choices(inc, ops.settings)
        await reply(text, choices)
        return
    done = await ops.response.set_severity(inc.pk, rest.split()[0], body["user_id"])
    await tell(done, reply)


async def assign(
    ops: Operations, role: str, inc: Incident, who: str, body: Body, reply: Reply
) -> None:
    role_ = rules.role(ops.settings, role)
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


async def commander(ops: Operations, inc: Incident, rest: str, body: Body, reply: Reply) -> None:
    await assign(ops, "commander", inc, rest, body, reply)


async def comms(ops: Operations, inc: Incident, rest: str, body: Body, reply: Reply) -> None:
    await assign(ops, "comms", inc, rest, body, reply)


async def role(ops: Operations, inc: Incident, rest: str, body: Body, reply: Reply) -> None:
    name, _, who = rest.strip().partition(" ")
    if not name:
        roles = ", ".join(f"`{r.name}`" for r in ops.settings.roles)
        raise BadInput(f"Say which role: `/incident role scribe @name`. Roles: {roles}.")
    await assign(ops, name, inc, who, body, reply)


async def update(ops: Operations, inc: Incident, rest: str, body: Body, reply: Reply) -> None:
    rules.require_open(inc)
    if not rest.strip():
        await open_form(ops, body["trigger_id"], forms.update_modal(inc, ops.settings), reply)
        return
    done = await ops.response.post_update(
        inc.pk,
        summary=slack_to_plain(rest),
        actor=body["user_id"],
        key=f"command:{body['trigger_id']}",
    )
    await tell(done, reply)


async def status(ops: Operations, inc: Incident, rest: str, body: Body, reply: Reply) -> None:
    state, latest = await ops.find.status(inc)
    effects = await ops.find.effects(inc)
    view = answers.private_status(state, ops.settings, latest, effects)
    await reply(blocks.card_text(state, ops.settings), view)


async def resolve(ops: Operations, inc: Incident, rest: str, body: Body, reply: Reply) -> None:
    done = await ops.response.resolve(inc.pk, summary=slack_to_plain(rest), actor=body["user_id"])
    await tell(done, reply)


async def reopen(ops: Operations, inc: Incident, rest: str, body: Body, reply: Reply) -> None:
    done = await ops.response.reopen(inc.pk, body["user_id"])
    await tell(done, reply)


async def note(ops: Operations, inc: Incident, rest: str, body: Body, reply: Reply) -> None:
    done = await ops.timeline.add_note(
        inc, slack_to_plain(rest), body["user_id"], key=f"command:{body['trigger_id']}"
    )
    await tell(done, reply, always=True)


async def follow_up(ops: Operations, inc: Incident, rest: str, body: Body, reply: Reply) -> None:
    words_ = rest.split()
    owner = None
    # A trailing mention names the owner: `/incident action Add alerting @bob`.
    if words_ and (parse_user_ref(words_[-1]) or parse_user_name(words_[-1])):
        owner = await ops.find.person(words_[-1], body["user_id"])
        rest = rest.rstrip()[: -len(words_[-1])]
    done = await ops.timeline.add_follow_up(
        inc, slack_to_plain(rest), owner, body["user_id"], key=f"command:{body['trigger_id']}"
    )
    await tell(done, reply, always=True)


async def postmortem(ops: Operations, inc: Incident, rest: str, body: Body, reply: Reply) -> None:
    await reply(f":hourglass_flowing_sand: Compiling {inc.ref}'s postmortem draft…", None)
    done = await ops.postmortems.compile(inc.pk, body["user_id"])
    await reply(done.message, None)


VERBS: dict[str, Verb] = {
    "severity": severity,
    "sev": severity,
    "commander": commander,
    "ic": commander,
    "comms": comms,
    "role": role,
    "update": update,
    "status": status,
    "resolve": resolve,
    "reopen": reopen,
    "note": note,
    "action": follow_up,
    "followup": follow_up,
    "follow-up": follow_up,
    "postmortem": postmortem,
    "pm": postmortem,
}
