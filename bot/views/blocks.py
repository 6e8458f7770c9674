"""Block Kit for every surface the bot shows, built with slack_sdk.models.

One pure function per surface; slack_sdk checks Slack's limits as they are built.
People's text goes through `literal`/`plain` so it is shown exactly as typed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ContextBlock,
    DividerBlock,
    HeaderBlock,
    MarkdownTextObject,
    Option,
    PlainTextObject,
    SectionBlock,
    StaticSelectElement,
    UserSelectElement,
)
from slack_sdk.models.views import View

from bot.base.plain import one_line
from bot.base.settings import Role, Settings, Severity
from bot.model.rules import TITLE_MAX
from bot.model.tables import Incident, Status, StatusUpdate
from bot.views.text import literal, slack_link

# People's text in a section, with room left for the line the bot puts above it.
SECTION_BODY_MAX = SectionBlock.text_max_length - 200
DESCRIPTION_SHOWN = SectionBlock.text_max_length - 100
PLACEHOLDER_MAX = UserSelectElement.placeholder_max_length
OPTION_DESCRIPTION_MAX = Option.label_max_length

STATUS_EMOJI = {
    Status.investigating.value: ":mag:",
    Status.identified.value: ":dart:",
    Status.monitoring.value: ":eyes:",
    Status.resolved.value: ":white_check_mark:",
}


@dataclass(frozen=True)
class IncidentState:
    """Everything the card, topic and announcement are rendered from."""

    incident: Incident
    roles: Mapping[str, str]  # role name -> user id


def plain(text: str, limit: int = SectionBlock.text_max_length) -> PlainTextObject:
    return PlainTextObject(text=one_line(text, limit) or " ", emoji=True)


def when(at: datetime, fmt: str = "{date_short_pretty} at {time}") -> str:
    """A time every reader sees in their own time zone, with a UTC fallback."""
    fallback = at.strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{int(at.timestamp())}^{fmt}|{fallback}>"


def severity_text(settings: Settings, name: str) -> str:
    sev = settings.severity(name)
    return f"{name} · {sev.label}" if sev else name


def status_text(status: str) -> str:
    return f"{STATUS_EMOJI.get(status, '')} {status.capitalize()}".strip()


def user(user_id: str | None) -> str:
    return f"<@{user_id}>" if user_id else "_unassigned_"


def severity_option(sev: Severity) -> Option:
    description = one_line(sev.description, OPTION_DESCRIPTION_MAX) if sev.description else None
    return Option(value=sev.name, text=f"{sev.name} · {sev.label}", description=description)


# --- the incident card -----------------------------------------------------------

CARD_SEVERITY = "card_severity"
CARD_ROLE = "card_role:"  # + role name
CARD_UPDATE = "card_update"
CARD_RESOLVE = "card_resolve"
CARD_REOPEN = "card_reopen"
CARD_POSTMORTEM = "card_postmortem"
CARD_FOLLOW_UP = "card_follow_up"
TIMELINE_SHORTCUT = "add_to_timeline"
REMINDER_UPDATE = "reminder_update"
REMINDER_SNOOZE = "reminder_snooze:"  # + minutes
SNOOZE_CHOICES = (("15 min", 15), ("30 min", 30), ("1 h", 60))


def card_text(state: IncidentState, settings: Settings) -> str:
    """The notification/fallback text of the card."""
    inc = state.incident
    return (
        f"{inc.ref}: {literal(one_line(inc.title, TITLE_MAX))} "
        f"({severity_text(settings, inc.severity)}, {inc.status})"
    )


def _facts(state: IncidentState) -> list[MarkdownTextObject]:
    inc = state.incident
    facts = [
        MarkdownTextObject(text=f"*Status*\n{status_text(inc.status)}"),
        MarkdownTextObject(
            text=f"*Declared*\n{when(inc.declared_at, '{date_short_pretty} at {time} ({ago})')}"
        ),
    ]
    if inc.last_update_at is not None:
        last = when(inc.last_update_at, "{time} ({ago})")
        facts.append(MarkdownTextObject(text=f"*Last update*\n{last}"))
    else:
        facts.append(MarkdownTextObject(text="*Last update*\n_none yet_"))
    if inc.resolved_at is not None:
        facts.append(MarkdownTextObject(text=f"*Resolved*\n{when(inc.resolved_at)}"))
    elif inc.next_update_due is not None:
        due = when(inc.next_update_due, "{time} ({ago})")
        facts.append(MarkdownTextObject(text=f"*Next update due*\n{due}"))
    return facts


DRILL_NOTE = ":test_tube: *drill*: not announced, left out of metrics and reports"


def name(inc: Incident) -> str:
    """The incident's reference, marked when it is a drill (card, lists, Home)."""
    return f"{inc.ref} (DRILL)" if inc.drill else inc.ref


def incident_card(
    state: IncidentState, settings: Settings, *, controls: bool = True
) -> list[Block]:
    """The pinned card: the incident at a glance, and its control panel while open."""
    inc = state.incident
    live = controls and inc.is_open
    blocks: list[Block] = [
        HeaderBlock(text=plain(f"{name(inc)} · {inc.title}", HeaderBlock.text_max_length))
    ]
    if inc.description:
        blocks.append(
            SectionBlock(text=MarkdownTextObject(text=literal(inc.description[:DESCRIPTION_SHOWN])))
        )

    sev = settings.severity(inc.severity)
    blocks.append(
        SectionBlock(
            block_id=CARD_SEVERITY,
            text=MarkdownTextObject(text=f"*Severity*\n{severity_text(settings, inc.severity)}"),
            accessory=StaticSelectElement(
                action_id=CARD_SEVERITY,
                placeholder="Change severity",
                options=[severity_option(s) for s in settings.severities],
                initial_option=severity_option(sev) if sev else None,
            )
            if live
            else None,
        )
    )
    for role in settings.roles:
        holder = state.roles.get(role.name)
        blocks.append(
            SectionBlock(
                block_id=f"{CARD_ROLE}{role.name}",
                text=MarkdownTextObject(text=f"*{role.label}*\n{user(holder)}"),
                accessory=UserSelectElement(
                    action_id=f"{CARD_ROLE}{role.name}",
                    placeholder=f"Assign {role.label}"[:PLACEHOLDER_MAX],
                    initial_user=holder,
                )
                if live
                else None,
            )
        )
    blocks.append(SectionBlock(fields=_facts(state)))
    if controls:
        if inc.is_open:
            buttons = [
                ButtonElement(
                    action_id=CARD_UPDATE, text="Post update", value=str(inc.id), style="primary"
                ),
                ButtonElement(action_id=CARD_RESOLVE, text="Resolve", value=str(inc.id)),
                ButtonElement(action_id=CARD_FOLLOW_UP, text="Add follow-up", value=str(inc.id)),
            ]
        else:
            buttons = [ButtonElement(action_id=CARD_REOPEN, text="Reopen", value=str(inc.id))]
        buttons.append(postmortem_button(inc))
        blocks.append(ActionsBlock(block_id="card_actions", elements=buttons))
    if inc.alert:
        blocks.append(ContextBlock(elements=[MarkdownTextObject(text=alert_links(inc.alert))]))
        context = "Declared by an alert"
    else:
        context = f"Declared by {user(inc.declared_by)}"
    if inc.private:
        context += " · :lock: private incident"
    if inc.drill:
        context += f" · {DRILL_NOTE}"
    blocks.append(ContextBlock(elements=[MarkdownTextObject(text=context)]))
    return blocks


ALERT_DECLARE = "alert_declare"
ALERT_DISMISS = "alert_dismiss"


def alert_triage(
    triage_id: int,
    title: str,
    severity: str,
    description: str,
    alert: Mapping[str, Any] | None,
    decision: str | None = None,
) -> tuple[str, list[Block]]:
    """An alert group in the alerts channel: Declare or Dismiss, then who decided what."""
    text = f":rotating_light: Alert at {severity}: {literal(title)}"
    body = f"*Alert at {severity}:* {literal(title)}"
    if description:
        body += f"\n{literal(description[: SECTION_BODY_MAX - 200])}"
    out: list[Block] = [SectionBlock(text=MarkdownTextObject(text=body))]
    if alert:
        out.append(ContextBlock(elements=[MarkdownTextObject(text=alert_links(alert))]))
    if decision is None:
        out.append(
            ActionsBlock(
                elements=[
                    ButtonElement(
                        action_id=ALERT_DECLARE,
                        text="Declare",
                        value=str(triage_id),
                        style="primary",
                    ),
                    ButtonElement(action_id=ALERT_DISMISS, text="Dismiss", value=str(triage_id)),
                ]
            )
        )
    else:
        out.append(ContextBlock(elements=[MarkdownTextObject(text=decision)]))
    return text, out


def alert_links(alert: Mapping[str, Any]) -> str:
    """The alert that opened an incident, and its runbook and dashboard, as links."""
    title = str(alert.get("title") or "the alert")
    source = str(alert.get("source") or "an alert")
    url = alert.get("url")
    first = slack_link(url, title) if isinstance(url, str) else literal(title)
    parts = [f":rotating_light: Opened by {literal(source)}: {first}"]
    for key, label in (("runbook", "Runbook"), ("dashboard", "Dashboard")):
        link = alert.get(key)
        if isinstance(link, str) and link:
            parts.append(slack_link(link, label))
    return " · ".join(parts)


def status_update(
    inc: Incident, update: StatusUpdate, settings: Settings
) -> tuple[str, list[Block]]:
    head = f":loudspeaker: *{inc.ref} status update* · {status_text(update.status)}"
    text = f"{inc.ref} update ({update.status}): {literal(one_line(update.summary, 300))}"
    return text, [
        SectionBlock(
            text=MarkdownTextObject(text=f"{head}\n{literal(update.summary[:SECTION_BODY_MAX])}")
        ),
        ContextBlock(
            elements=[
                MarkdownTextObject(
                    text=f"Posted by {user(update.posted_by)} · "
                    f"{severity_text(settings, inc.severity)}"
                )
            ]
        ),
    ]


def postmortem_button(inc: Incident) -> ButtonElement:
    return ButtonElement(action_id=CARD_POSTMORTEM, text="Postmortem", value=str(inc.id))


def resolved_message(
    inc: Incident, actor: str, summary: str, settings: Settings
) -> tuple[str, list[Block]]:
    text = f":white_check_mark: {inc.ref} resolved by <@{actor}>"
    body = f":white_check_mark: *{inc.ref} resolved* by <@{actor}>"
    if summary:
        body += f"\n{literal(summary[:SECTION_BODY_MAX])}"
        text += f": {literal(one_line(summary, 300))}"
    return text, [
        SectionBlock(text=MarkdownTextObject(text=body)),
        ActionsBlock(block_id="resolved_actions", elements=[postmortem_button(inc)]),
        ContextBlock(
            elements=[
                MarkdownTextObject(
                    text="*Postmortem* compiles the channel and its timeline into a draft."
                )
            ]
        ),
    ]


def reminder(inc: Incident, mention: str | None, since: str) -> tuple[str, list[Block]]:
    who = f"<@{mention}> " if mention else ""
    text = f":alarm_clock: {who}{inc.ref} needs a status update (last one: {since})."
    buttons: list[ButtonElement] = [
        ButtonElement(
            action_id=REMINDER_UPDATE, text="Post update", value=str(inc.id), style="primary"
        )
    ]
    buttons += [
        ButtonElement(action_id=f"{REMINDER_SNOOZE}{m}", text=f"Snooze {label}", value=str(inc.id))
        for label, m in SNOOZE_CHOICES
    ]
    return text, [
        SectionBlock(
            text=MarkdownTextObject(text=f"{text}\nPost one so everyone knows where things stand.")
        ),
        ActionsBlock(block_id="reminder_actions", elements=buttons),
    ]


def topic(state: IncidentState, settings: Settings) -> str:
    inc = state.incident
    commander = state.roles.get("commander")
    parts = [
        *(["DRILL"] if inc.drill else []),
        severity_text(settings, inc.severity),
        inc.status.capitalize(),
        f"Commander: <@{commander}>" if commander else "Commander: unassigned",
    ]
    # Topics hold 250 characters; the title goes last so it is what gets shortened.
    head = " | ".join(parts)
    room = 250 - len(head) - 3
    return f"{head} | {literal(one_line(inc.title, room))}" if room > 10 else head[:250]


def announcement(state: IncidentState, settings: Settings) -> tuple[str, list[Block]]:
    inc = state.incident
    title = literal(one_line(inc.title, TITLE_MAX))
    icon = ":white_check_mark:" if not inc.is_open else ":rotating_light:"
    text = f"{icon} {inc.ref} {title} ({severity_text(settings, inc.severity)}, {inc.status})"
    line = (
        f"{icon} *{inc.ref}* {title}\n"
        f"{severity_text(settings, inc.severity)} · {status_text(inc.status)} · "
        f"Commander {user(state.roles.get('commander'))}"
    )
    if inc.channel_id:
        line += f" · <#{inc.channel_id}>"
    blocks: list[Block] = [
        SectionBlock(text=MarkdownTextObject(text=line)),
        ContextBlock(elements=[MarkdownTextObject(text=f"Declared {when(inc.declared_at)}")]),
    ]
    return text, blocks


# --- messages in the incident channel -----------------------------------------------


def severity_changed(
    inc: Incident, actor: str, old: str, new: Severity, settings: Settings, *, raised: bool
) -> str:
    if raised:
        return (
            f":rotating_light: <@{actor}> raised {inc.ref} from {old} to "
            f"*{severity_text(settings, new.name)}*. {literal(new.description)}"
        )
    return f"<@{actor}> changed the severity from {old} to *{severity_text(settings, new.name)}*."


def role_assigned(user_id: str, role: Role, actor: str, previous: str | None) -> str:
    handover = f" (handed over from <@{previous}>)" if previous else ""
    by = "" if actor == user_id else f", assigned by <@{actor}>"
    return (
        f":bust_in_silhouette: <@{user_id}> is now the *{role.label}*{handover}{by}. "
        f"{literal(role.description)}"
    )


def reopened(inc: Incident, actor: str) -> str:
    return f":repeat: <@{actor}> reopened {inc.ref}. Status: investigating."


def note_added(actor: str, text: str) -> str:
    return f":memo: <@{actor}> added to the timeline: {literal(one_line(text, 500))}"


def follow_up_recorded(actor: str, text: str, owner: str | None) -> str:
    owner_text = f" (owner: <@{owner}>)" if owner else ""
    return (
        f":clipboard: Follow-up recorded by <@{actor}>: {literal(one_line(text, 500))}{owner_text}"
    )


def delivery_failed(
    inc: Incident | None, kind: str, payload: Mapping[str, Any], reason: str
) -> str:
    """What the commander and whoever caused it are told when an effect outside Slack
    failed for good."""
    about = f"*{inc.ref}*: " if inc is not None else ""
    if kind == "webhook":
        event = str(payload.get("body", {}).get("event", "an event"))
        # The host only: a receiver's URL may carry its own secret in its path.
        host = urlsplit(str(payload.get("url"))).netloc
        what = f"the `{event}` event could not be delivered to {literal(host)}"
    else:
        what = f"a {literal(kind)} could not be delivered"
    return f":warning: {about}{what}, and I have stopped trying: {literal(one_line(reason, 300))}"


def slack_trouble(inc: Incident, problems: Sequence[str], announcements: str | None) -> str:
    """What the commander is told, once, when Slack will not show the incident."""
    where = f"<#{inc.channel_id}>" if inc.channel_id else "its channel"
    lines = [f":warning: *{inc.ref}*: Slack will not let me show the latest state."]
    for problem in problems:
        surface, _, error = problem.partition(": ")
        if surface == "channel" and error == "archived":
            lines.append(
                f"• {where} is archived: reminders have stopped. Unarchive it, or keep "
                f"working from anywhere with `/incident update {inc.ref} …` and "
                f"`/incident resolve {inc.ref} …`."
            )
        elif surface == "channel":
            lines.append(
                f"• I can no longer post in {where} (removed, made private without me, or "
                f"deleted): reminders have stopped. Invite me back with `/invite`, or work "
                f"from anywhere with `/incident update {inc.ref} …`."
            )
        elif surface == "announcement" and announcements:
            lines.append(
                f"• The announcement in <#{announcements}> could not be posted or updated "
                f"(`{error}`): check that the channel is not archived and that I am a "
                "member of it (`/invite` me there)."
            )
        else:
            lines.append(f"• The {surface} (`{error}`): I will try again.")
    lines.append("Everything is recorded; Slack catches up as soon as it lets me.")
    return "\n".join(lines)


def postmortem_comment(inc: Incident, actor: str, version: int) -> str:
    return (
        f":page_facing_up: <@{actor}> compiled the postmortem draft for {inc.ref} "
        f"(version {version}): the channel and its timeline, with prompts for what "
        "only people can write. Edit it, then share it."
    )


# --- App Home ---------------------------------------------------------------------------

HOME_DECLARE = "home_declare"
HOME_TAKE = "home_follow_up_take"
HOME_DONE = "home_follow_up_done"
# A Home holds at most 100 blocks: each list is capped and says how many more there are.
HOME_LIST_MAX = 15


def _home_incident(state: IncidentState, settings: Settings, viewer: str) -> SectionBlock:
    inc = state.incident
    mine = [r.label for r in settings.roles if state.roles.get(r.name) == viewer]
    where = f"<#{inc.channel_id}>" if inc.channel_id else "_channel pending_"
    lock = " :lock:" if inc.private else ""
    line = (
        f"*{name(inc)}*{lock} {literal(one_line(inc.title, 120))}\n"
        f"{severity_text(settings, inc.severity)} · {status_text(inc.status)} · "
        f"Commander {user(state.roles.get('commander'))} · declared "
        f"{when(inc.declared_at, '{ago}')} · {where}"
    )
    if mine:
        line += f"\n:bust_in_silhouette: You are the {' and '.join(mine)}"
    return SectionBlock(text=MarkdownTextObject(text=line[:SECTION_BODY_MAX]))


def _more(n: int) -> list[Block]:
    if n <= 0:
        return []
    return [ContextBlock(elements=[MarkdownTextObject(text=f"…and {n} more")])]


def home_view(
    settings: Settings,
    viewer: str,
    open_: Sequence[IncidentState],
    resolved: Sequence[Incident],
    with_postmortem: set[int],
    follow_ups: Sequence[tuple[Any, Incident]],
) -> View:
    """The viewer's Home: what is open (theirs first), what was resolved lately, and the
    follow-ups that are theirs or nobody's."""
    theirs = [s for s in open_ if viewer in s.roles.values()]
    others = [s for s in open_ if viewer not in s.roles.values()]
    body: list[Block] = [
        HeaderBlock(text="Incidents"),
        ActionsBlock(
            block_id="home_actions",
            elements=[
                ButtonElement(
                    action_id=HOME_DECLARE, text="Declare incident", style="danger", value="home"
                )
            ],
        ),
    ]
    if not open_:
        body.append(
            SectionBlock(text=MarkdownTextObject(text=":white_check_mark: No open incidents."))
        )
    for title, states in (("Your incidents", theirs), ("Open incidents", others)):
        if not states:
            continue
        body += [
            DividerBlock(),
            SectionBlock(text=MarkdownTextObject(text=f"*{title}* ({len(states)})")),
        ]
        body += [_home_incident(s, settings, viewer) for s in states[:HOME_LIST_MAX]]
        body += _more(len(states) - HOME_LIST_MAX)
    if resolved:
        body += [DividerBlock(), SectionBlock(text=MarkdownTextObject(text="*Recently resolved*"))]
        lines = []
        for inc in resolved:
            postmortem = (
                "postmortem draft ready"
                if inc.pk in with_postmortem
                else ":memo: no postmortem yet"
            )
            at = when(inc.resolved_at, "{ago}") if inc.resolved_at else ""
            where = f" · <#{inc.channel_id}>" if inc.channel_id else ""
            lines.append(
                f"*{name(inc)}* {literal(one_line(inc.title, 80))} · resolved {at} · "
                f"{postmortem}{where}"
            )
        body.append(SectionBlock(text=MarkdownTextObject(text="\n".join(lines)[:SECTION_BODY_MAX])))
    mine = [(f, i) for f, i in follow_ups if f.owner == viewer]
    nobody = [(f, i) for f, i in follow_ups if f.owner is None]
    for title, items, action, label in (
        ("Your follow-ups", mine, HOME_DONE, "Done"),
        ("Follow-ups without an owner", nobody, HOME_TAKE, "Take it"),
    ):
        if not items:
            continue
        body += [
            DividerBlock(),
            SectionBlock(text=MarkdownTextObject(text=f"*{title}* ({len(items)})")),
        ]
        for f, inc in items[:HOME_LIST_MAX]:
            body.append(
                SectionBlock(
                    block_id=f"follow_up_{f.id}",
                    text=MarkdownTextObject(
                        text=f"*{name(inc)}* {literal(one_line(f.text, 200))}"[:SECTION_BODY_MAX]
                    ),
                    accessory=ButtonElement(action_id=action, text=label, value=str(f.id)),
                )
            )
        body += _more(len(items) - HOME_LIST_MAX)
    return View(type="home", blocks=body)


# --- nudges -------------------------------------------------------------------------------


def _hours(hours: float) -> str:
    if hours >= 48 and hours % 24 == 0:
        return f"{int(hours // 24)} days"
    return f"{hours:g} hour{'' if hours == 1 else 's'}"


def nudge_postmortem(inc: Incident, commander: str, hours: float) -> tuple[str, list[Block]]:
    text = (
        f":memo: <@{commander}>, {inc.ref} was resolved {_hours(hours)} ago and has no "
        "postmortem draft yet. The button below compiles one from this channel."
    )
    return text, [
        SectionBlock(text=MarkdownTextObject(text=text)),
        ActionsBlock(block_id="nudge_actions", elements=[postmortem_button(inc)]),
    ]


def nudge_follow_ups(
    inc: Incident, commander: str, items: Sequence[str]
) -> tuple[str, list[Block]]:
    n = len(items)
    head = (
        f":bust_in_silhouette: <@{commander}>, {n} follow-up{'' if n == 1 else 's'} of "
        f"{inc.ref} {'has' if n == 1 else 'have'} no owner:"
    )
    lines = [f"• {literal(one_line(t, 200))}" for t in items[:20]]
    if n > 20:
        lines.append(f"…and {n - 20} more")
    body = "\n".join([head, *lines])
    tail = "Anyone can take one from the bot's Home tab."
    return f"{head} {tail}", [
        SectionBlock(text=MarkdownTextObject(text=body[:SECTION_BODY_MAX])),
        ContextBlock(elements=[MarkdownTextObject(text=tail)]),
    ]


def nudge_inactive(inc: Incident, commander: str, quiet: timedelta) -> tuple[str, list[Block]]:
    days = quiet.total_seconds() / 86400
    text = (
        f":zzz: <@{commander}>, {inc.ref} has been open with no activity for "
        f"{days:.0f} day{'' if round(days) == 1 else 's'}. Resolve it if it is over, or post "
        "an update so people know where it stands."
    )
    return text, [
        SectionBlock(text=MarkdownTextObject(text=text)),
        ActionsBlock(
            block_id="nudge_actions",
            elements=[
                ButtonElement(
                    action_id=CARD_UPDATE, text="Post update", value=str(inc.id), style="primary"
                ),
                ButtonElement(action_id=CARD_RESOLVE, text="Resolve", value=str(inc.id)),
            ],
        ),
    ]


def archive_notice(inc: Incident, days: float) -> tuple[str, list[Block]]:
    text = (
        f":file_cabinet: {inc.ref} was resolved {days:g} day{'' if days == 1 else 's'} ago, so "
        "this channel is archived now. Its timeline and postmortem stay with the bot; "
        "unarchive the channel to talk here again."
    )
    return text, [SectionBlock(text=MarkdownTextObject(text=text))]
