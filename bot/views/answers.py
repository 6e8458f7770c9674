"""What one person is told privately: help, the list of incidents, an incident's state,
and pickers for a severity or a role."""

from __future__ import annotations

from collections.abc import Sequence

from slack_sdk.models.blocks import (
    Block,
    ContextBlock,
    DividerBlock,
    MarkdownTextObject,
    SectionBlock,
    StaticSelectElement,
    UserSelectElement,
)

from bot.base.plain import one_line
from bot.base.settings import Role, Settings
from bot.model.figures import duration, percentile
from bot.model.report import Report
from bot.model.tables import Effect, Incident
from bot.views import report
from bot.views.blocks import (
    CARD_ROLE,
    CARD_SEVERITY,
    PLACEHOLDER_MAX,
    SECTION_BODY_MAX,
    IncidentState,
    incident_card,
    name,
    severity_option,
    severity_text,
    status_text,
    user,
)
from bot.views.text import literal


def update_too_late(inc: Incident) -> str:
    return (
        f"{inc.ref} was resolved meanwhile, so this update was not posted. Copy your text, "
        f"`/incident reopen` it if it is not over, and post again."
    )


def stored_but(message: str, problems: Sequence[str]) -> str:
    """A change that is stored but not (yet) shown everywhere in Slack."""
    if any(p.startswith("database:") for p in problems):
        return (
            f":warning: {message} It was saved, but the database stopped answering before "
            "the bot had finished; Slack catches up once the database is back. There is no "
            "need to try again."
        )
    which = ", ".join(f"{p.partition(': ')[0]} `{p.partition(': ')[2]}`" for p in problems)
    return (
        f":warning: {message} It is recorded, but Slack refused to show it everywhere yet "
        f"({which}). The bot catches up on its own; there is no need to do it again."
    )


def declared_while_paced(inc: Incident) -> str:
    """What the declarer is told at once when Slack's pacing holds the channel back."""
    lock = " (private)" if inc.private else ""
    return (
        f":hourglass_flowing_sand: *{inc.ref}*{lock} is declared and recorded. Slack lets an "
        "app create only so many channels a minute, so its channel is being set up; you "
        "will hear here as soon as it is ready. There is no need to declare it again."
    )


def declared_answer(inc: Incident) -> str:
    """What the declarer is told once the incident's channel is ready (or not yet)."""
    lock = " (private)" if inc.private else ""
    if not inc.channel_id:
        return f":rotating_light: *{inc.ref}*{lock} declared; its channel is being set up."
    text = (
        f":rotating_light: *{inc.ref}*{lock} declared: <#{inc.channel_id}>. "
        "You are in the channel; the incident card is pinned there."
    )
    if inc.slack_problem:
        text += (
            f"\n:warning: Slack refused part of it ({inc.slack_problem}); the commander has "
            "been told how to fix it, and the bot catches up on its own."
        )
    return text


def outside(effects: Sequence[Effect]) -> str | None:
    """How the incident's effects outside the bot went (webhook deliveries), in one line:
    what is done, what is being tried again and why, what failed and why."""
    if not effects:
        return None
    done = sum(1 for e in effects if e.state == "done")
    retrying = [e for e in effects if e.state == "pending" and e.last_error]
    waiting = sum(1 for e in effects if e.state == "pending" and not e.last_error)
    failed = [e for e in effects if e.state == "failed"]
    parts = [f"{done} delivered"]
    if waiting:
        parts.append(f"{waiting} on the way")
    if retrying:
        why = one_line(retrying[-1].last_error or "", 80)
        parts.append(f"{len(retrying)} being tried again (last: {literal(why)})")
    if failed:
        why = one_line(failed[-1].last_error or "", 80)
        parts.append(f"{len(failed)} failed (last: {literal(why)})")
    return "Outgoing webhooks: " + " · ".join(parts)


def private_status(
    state: IncidentState,
    settings: Settings,
    last_update: str | None,
    effects: Sequence[Effect] = (),
) -> list[Block]:
    body = incident_card(state, settings, controls=False)
    if last_update:
        body.insert(
            -1,
            SectionBlock(
                text=MarkdownTextObject(
                    text=f"*Latest update*\n{literal(last_update[:SECTION_BODY_MAX])}"
                )
            ),
        )
    if state.incident.channel_id:
        body.append(
            ContextBlock(
                elements=[MarkdownTextObject(text=f"Channel: <#{state.incident.channel_id}>")]
            )
        )
    line = outside(effects)
    if line:
        body.append(ContextBlock(elements=[MarkdownTextObject(text=line)]))
    return body


def severity_choices(inc: Incident, settings: Settings) -> tuple[str, list[Block]]:
    """`/incident severity` with no level: the levels, and a menu to pick one."""
    lines = "\n".join(
        f"{'→ ' if s.name == inc.severity else ''}*{s.name}* {s.label}: {literal(s.description)}"
        for s in settings.severities
    )
    current = settings.severity(inc.severity)
    text = f"{inc.ref} is {inc.severity}. Levels:\n{lines}"
    return text, [
        SectionBlock(
            block_id=CARD_SEVERITY,
            text=MarkdownTextObject(text=text),
            accessory=StaticSelectElement(
                action_id=CARD_SEVERITY,
                placeholder="Change severity",
                options=[severity_option(s) for s in settings.severities],
                initial_option=severity_option(current) if current else None,
            ),
        )
    ]


def role_picker(inc: Incident, role: Role) -> tuple[str, list[Block]]:
    """`/incident commander` with no user: a picker for that role."""
    text = f"Who is the {role.label} of {inc.ref}?"
    return text, [
        SectionBlock(
            block_id=f"{CARD_ROLE}{role.name}",
            text=MarkdownTextObject(text=text),
            accessory=UserSelectElement(
                action_id=f"{CARD_ROLE}{role.name}",
                placeholder=f"Pick the {role.label}"[:PLACEHOLDER_MAX],
            ),
        )
    ]


HELP_LINES = [
    ("/incident declare [sevN] [title]", "declare an incident; no title opens a form"),
    ("/incident severity [SEVn]", "set the severity (alias `sev`); no level lists them"),
    ("/incident commander [@user|me]", "assign the Incident Commander; no user shows a picker"),
    ("/incident comms [@user|me]", "assign the Communications Lead"),
    ("/incident role <role> @user", "assign another role"),
    ("/incident update [text]", "post a status update; no text opens a form"),
    ("/incident status", "this incident's current state, privately"),
    ("/incident note <text>", "add an entry to the timeline"),
    ("/incident action <text> [@owner]", "record a follow-up"),
    ("/incident resolve [summary]", "resolve; stops reminders"),
    ("/incident reopen", "reopen a resolved incident"),
    ("/incident postmortem", "compile the postmortem draft and post it here"),
    ("/incident list", "open incidents, with links to their channels"),
    ("/incident stats [30d]", "response times and update cadence, privately"),
    ("/incident declare --drill …", "a drill: labelled, not announced, not counted"),
    ("/incident resolve INC-42 [summary]", "name the incident first to act from anywhere"),
    ("/incident help", "this help"),
]


def help_blocks(settings: Settings, intro: str | None = None) -> tuple[str, list[Block]]:
    lines = "\n".join(f"`{cmd}` {what}" for cmd, what in HELP_LINES)
    levels = ", ".join(f"`{s.name}` {s.label}" for s in settings.severities)
    blocks: list[Block] = []
    if intro:
        blocks.append(SectionBlock(text=MarkdownTextObject(text=intro)))
    blocks += [
        SectionBlock(text=MarkdownTextObject(text=f"*Incident bot*\n{lines}")),
        ContextBlock(
            elements=[
                MarkdownTextObject(
                    text=f"Severities: {levels}. React with :{settings.timeline_emoji}: or use "
                    "the message shortcut *Add to incident timeline* to put a message on the "
                    "timeline."
                )
            ]
        ),
    ]
    text = (intro + "\n" if intro else "") + lines
    return text, blocks


def stats(rep: Report) -> tuple[str, list[Block]]:
    """`/incident stats`: the report's figures by severity, for one person."""
    period = f"since {rep.since:%Y-%m-%d %H:%M} UTC"
    if not rep.incidents:
        text = f":bar_chart: No incidents {period} (drills are left out)."
        return text, [SectionBlock(text=MarkdownTextObject(text=text))]
    blocks: list[Block] = [
        SectionBlock(
            text=MarkdownTextObject(
                text=f":bar_chart: *Incident figures* {period} · {rep.summaries[-1].count} "
                "incidents, drills left out"
            )
        ),
        DividerBlock(),
    ]
    lines: list[str] = []
    for s in rep.summaries[:20]:
        met, intervals = s.on_time, s.on_time + s.late
        line = (
            f"*{literal(s.label)}* · {s.count} declared, {s.resolved} resolved\n"
            + " · ".join(
                f"{what} {duration(percentile(v, 50))} median, {duration(percentile(v, 90))} p90"
                for what, v in (
                    ("respond", s.to_respond),
                    ("mitigate", s.to_mitigate),
                    ("resolve", s.to_resolve),
                )
            )
            + f"\nUpdates on time: {report.share(met, intervals)} ({met} of {intervals})"
            f" · longest gap {duration(s.longest_gap)}"
            f" · follow-ups {s.follow_ups_open} open, {s.follow_ups_done} done"
        )
        lines.append(line)
        blocks.append(SectionBlock(text=MarkdownTextObject(text=line)))
    blocks.append(
        ContextBlock(
            elements=[
                MarkdownTextObject(
                    text="`incident-bot report` gives these per incident, as Markdown, CSV or "
                    "JSON. `/incident stats 7d` picks another period."
                )
            ]
        )
    )
    return "\n".join(lines), blocks


def incident_list(states: Sequence[IncidentState], settings: Settings) -> tuple[str, list[Block]]:
    if not states:
        text = ":white_check_mark: No open incidents."
        return text, [SectionBlock(text=MarkdownTextObject(text=text))]
    blocks: list[Block] = [
        SectionBlock(text=MarkdownTextObject(text=f"*Open incidents ({len(states)})*")),
        DividerBlock(),
    ]
    lines = []
    for state in states[:45]:
        inc = state.incident
        where = f"<#{inc.channel_id}>" if inc.channel_id else "_channel pending_"
        lock = " :lock:" if inc.private else ""
        line = (
            f"*{name(inc)}*{lock} {literal(one_line(inc.title, 100))}\n"
            f"{severity_text(settings, inc.severity)} · {status_text(inc.status)} · "
            f"Commander {user(state.roles.get('commander'))} · {where}"
        )
        lines.append(line)
        blocks.append(SectionBlock(text=MarkdownTextObject(text=line)))
    if len(states) > 45:
        blocks.append(
            ContextBlock(elements=[MarkdownTextObject(text=f"…and {len(states) - 45} more")])
        )
    return "\n".join(lines), blocks
