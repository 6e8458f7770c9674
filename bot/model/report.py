"""The incident report's figures, computed from records: `incident-bot report` and
`/incident stats`.

Per severity: counts, median and p90 time to respond, mitigate and resolve, update cadence
adherence; per incident: its figures; follow-ups open and done by owner. Drills are left out.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from bot.base.settings import Settings
from bot.model import figures, rules
from bot.model.figures import Figures, Summary
from bot.model.tables import FollowUp, Incident, StatusUpdate

_SPAN = re.compile(r"^(\d{1,5})\s*([mhdw])$", re.IGNORECASE)
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_since(text: str, now: datetime) -> datetime:
    """`30d`, `12h`, `2w`, `90m`, or a date (`2026-11-01`) -> the start of the period."""
    text = text.strip()
    match = _SPAN.match(text)
    if match:
        return now - timedelta(**{_UNITS[match[2].lower()]: int(match[1])})
    try:
        start = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"{text!r} is not a period: use e.g. 30d, 12h, 2w or a date like 2026-11-01"
        ) from None
    return start if start.tzinfo else start.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Report:
    since: datetime
    until: datetime
    incidents: list[Figures]
    summaries: list[Summary]
    follow_ups: list[tuple[FollowUp, Incident]]


def build(
    history: Sequence[tuple[Incident, list[StatusUpdate], list[FollowUp]]],
    settings: Settings,
    *,
    since: datetime,
    now: datetime,
) -> Report:
    each = [
        figures.of(
            inc,
            updates,
            follow_ups,
            now=now,
            interval=rules.reminder_interval(settings, inc.severity),
        )
        for inc, updates, follow_ups in history
    ]
    order = [s.name for s in settings.severities]
    follow_ups = [(f, inc) for inc, _, fs in history for f in fs]
    return Report(since, now, each, figures.summarize(each, order), follow_ups)
