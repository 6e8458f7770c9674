"""The rules of an incident, as pure functions: parsing, validation and cadence.

Nothing here talks to Slack or the database, so every rule is unit-testable on its own.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bot.base.errors import BadInput
from bot.base.plain import one_line
from bot.base.settings import ROLE_ALIASES, SNOOZE_MINUTES, Role, Settings, role_spelling
from bot.model.tables import Incident, Status, TimelineEntry

SEVERITY_LIKE = re.compile(r"^sev\d+$", re.IGNORECASE)
TITLE_MAX = 250
DESCRIPTION_MAX = 3000
SUMMARY_MAX = 3000
OPEN_STATUSES = [s.value for s in Status if s is not Status.resolved]


@dataclass(frozen=True)
class Declared:
    incident: Incident
    created: bool  # False when this request repeated an earlier one
    # Its channel is set up later, at Slack's pace: the declarer hears once it is ready.
    queued: bool = False


@dataclass(frozen=True)
class Changed:
    """What an operation did; `changed` is False when there was nothing to do. `problems`
    name what Slack did not show yet (`surface: error`): the change is stored all the same,
    and Slack catches up."""

    incident: Incident
    changed: bool
    message: str = ""
    problems: tuple[str, ...] = ()


def unknown_severity(settings: Settings, given: str) -> str:
    choices = ", ".join(f"`{s.name}` ({s.label})" for s in settings.severities)
    return f"`{one_line(given, 20)}` is not a severity. Use one of: {choices}."


DRILL_FLAG = re.compile(r"(?:^|\s)--drill(?=\s|$)", re.IGNORECASE)


def parse_drill(text: str) -> tuple[bool, str]:
    """`--drill sev2 Failover test` -> (True, "sev2 Failover test"): a drill, anywhere in
    the declaration's words."""
    if DRILL_FLAG.search(text) is None:
        return False, text
    return True, " ".join(DRILL_FLAG.sub(" ", text).split())


def parse_declare(settings: Settings, text: str) -> tuple[str | None, str]:
    """`sev1 Checkout is down` -> ("SEV1", "Checkout is down")."""
    first, _, rest = text.strip().partition(" ")
    sev = settings.severity(first) if first else None
    if sev is not None:
        return sev.name, rest.strip()
    if SEVERITY_LIKE.match(first):
        raise BadInput(unknown_severity(settings, first))
    return None, text.strip()


NAMED_INCIDENT = re.compile(r"^(?:inc-?|#)(\d{1,9})(?:\s+|$)", re.IGNORECASE)


def named_incident(text: str) -> tuple[int | None, str]:
    """`INC-42 Rolled back` -> (42, "Rolled back"); text naming no incident -> (None, text)."""
    match = NAMED_INCIDENT.match(text.strip())
    if match is None:
        return None, text
    return int(match[1]), text.strip()[match.end() :].strip()


def check_title(title: str) -> str:
    title = one_line(title, 100_000)
    if not title:
        raise BadInput(
            "An incident needs a title: `/incident declare sev2 Checkout is slow`, "
            "or `/incident declare` to open the form."
        )
    if len(title) > TITLE_MAX:
        raise BadInput(
            f"That title is {len(title):,} characters; keep it to {TITLE_MAX} "
            "and put the details in the description (`/incident declare` opens the form)."
        )
    return title


def check_description(description: str) -> str:
    if len(description) > DESCRIPTION_MAX:
        raise BadInput(f"Keep the description to {DESCRIPTION_MAX:,} characters.")
    return description.strip()


def check_update(summary: str, status: str | None) -> str:
    summary = summary.strip()
    if not summary:
        raise BadInput(
            "An update needs a summary: `/incident update Rolled back; error rate falling`, "
            "or `/incident update` for the form."
        )
    if len(summary) > SUMMARY_MAX:
        raise BadInput(f"Keep the update to {SUMMARY_MAX:,} characters; it is {len(summary):,}.")
    if status is not None and status not in OPEN_STATUSES:
        raise BadInput(
            f"`{one_line(status, 20)}` is not a status. Use one of: "
            + ", ".join(f"`{s}`" for s in OPEN_STATUSES)
            + " (or `/incident resolve`)."
        )
    return summary


def check_resolution(summary: str) -> str:
    summary = summary.strip()
    if len(summary) > SUMMARY_MAX:
        raise BadInput(f"Keep the summary to {SUMMARY_MAX:,} characters.")
    return summary


def check_note(text: str) -> str:
    text = text.strip()
    if not text:
        raise BadInput("Write the note: `/incident note Failover started on db-2`.")
    if len(text) > SUMMARY_MAX:
        raise BadInput(f"Keep a note to {SUMMARY_MAX:,} characters.")
    return text


def check_follow_up(text: str) -> str:
    text = text.strip()
    if not text:
        raise BadInput(
            "Describe the follow-up: `/incident action Add an alert on queue depth @bob`."
        )
    if len(text) > SUMMARY_MAX:
        raise BadInput(f"Keep a follow-up to {SUMMARY_MAX:,} characters.")
    return text


def require_open(inc: Incident) -> None:
    if not inc.is_open:
        raise BadInput(f"{inc.ref} is resolved. `/incident reopen` it first.")


def check_snooze(minutes: int) -> int:
    """A snooze's length comes from the button's action id; a forged one is refused."""
    if not SNOOZE_MINUTES.holds(minutes):
        raise BadInput(f"A reminder can be snoozed {SNOOZE_MINUTES}.")
    return minutes


def reminder_interval(settings: Settings, severity: str) -> timedelta:
    sev = settings.severity(severity)
    minutes = (sev.reminder_minutes if sev else None) or settings.reminder_interval_minutes
    return timedelta(minutes=minutes)


def rank(settings: Settings, severity: str) -> int:
    """Lower is worse; an unknown severity ranks last."""
    names = [s.name for s in settings.severities]
    return names.index(severity) if severity in names else len(names)


def role(settings: Settings, name: str) -> Role:
    name = name.strip().lower()
    name = ROLE_ALIASES.get(role_spelling(name), name)
    for candidate in settings.roles:
        if candidate.name == name:
            return candidate
    choices = ", ".join(f"`{r.name}`" for r in settings.roles)
    raise BadInput(f"`{one_line(name, 30)}` is not a role. Roles: {choices}.")


def entry(
    inc: Incident,
    kind: str,
    actor: str | None,
    text: str,
    data: dict[str, Any] | None = None,
    *,
    now: datetime,
    at: datetime | None = None,
    source_key: str | None = None,
) -> TimelineEntry:
    """A timeline entry of `inc`: what happened `at` (default: now), recorded now."""
    assert inc.id is not None
    return TimelineEntry(
        incident_id=inc.id,
        kind=kind,
        happened_at=at or now,
        recorded_at=now,
        actor=actor,
        text=text,
        data=data,
        source_key=source_key,
    )


# Timeline entries that are the bot's doing or the declarer's own, never a first response.
NOT_A_RESPONSE = frozenset({"declared", "reminder", "alert", "invite"})
PERSON = re.compile(r"[UW][A-Z0-9]+")


def is_person(user: str | None, not_people: Collection[str] = ()) -> bool:
    """A person's user id (not an app's, not the bot's own)."""
    return user is not None and PERSON.fullmatch(user) is not None and user not in not_people


def responder(entry: TimelineEntry, not_people: Collection[str] = ()) -> str | None:
    """Who responded to the incident by causing `entry`, if it counts as a response.

    Any entry a person caused (a click, a command, a pinned message) is a response, except
    the bot's own kinds of entry; a pinned message responds as its author. Whether the
    person is the declarer, and whether it is the first, the store decides with the row.
    """
    if entry.kind in NOT_A_RESPONSE:
        return None
    who = (entry.data or {}).get("user") if entry.kind == "message" else entry.actor
    return who if isinstance(who, str) and is_person(who, not_people) else None
