"""Incident figures (pure): time to respond, mitigate and resolve, and update cadence.

One definition serves the report, `/incident stats`, the postmortem and /metrics:
- respond: the first message or action by someone other than the declarer;
- mitigate: the first time the status became `monitoring`;
- resolve: the resolution (the latest, for a reopened incident);
- cadence: each update was due at a time (the declaration or the previous update plus the
  severity's reminder interval, moved by a snooze); an update posted by then met its
  interval, a later one missed it, and an incident still without an update past its due
  time (or resolved past it) missed one more. The longest gap is the longest stretch
  without an update, from the declaration to the resolution (or now).
"""

from __future__ import annotations

import math
from collections import Counter as Tally
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from bot.model.tables import FollowUp, Incident, StatusUpdate

# A figure that has no value (not responded yet, nothing to count).
NONE = "—"


def duration(seconds: float | None) -> str:
    """The one way every surface (report, `/incident stats`, App Home, postmortem) writes a
    length of time: `45 s`, `12 min`, `12 min 30 s`, `1 h 05 min`, `3 d 4 h`. Seconds are cut,
    never rounded up, and dropped from an hour on; no value is `—`."""
    if seconds is None or seconds < 0 or math.isnan(seconds):
        return NONE
    total = int(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours >= 48:
        return f"{hours // 24} d {hours % 24} h"
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {secs:02d} s" if secs else f"{minutes} min"
    return f"{secs} s"


@dataclass(frozen=True)
class Cadence:
    on_time: int = 0
    late: int = 0
    longest_gap: timedelta = timedelta(0)

    @property
    def intervals(self) -> int:
        return self.on_time + self.late

    @property
    def adherence(self) -> float | None:
        """The share of update intervals met; None when no update was due yet."""
        return self.on_time / self.intervals if self.intervals else None


@dataclass(frozen=True)
class Figures:
    incident: Incident
    to_respond: timedelta | None
    to_mitigate: timedelta | None
    to_resolve: timedelta | None
    cadence: Cadence
    follow_ups_open: int = 0
    follow_ups_done: int = 0


def _since(start: datetime, at: datetime | None) -> timedelta | None:
    return None if at is None else max(at - start, timedelta(0))


def cadence(
    inc: Incident, updates: Sequence[StatusUpdate], now: datetime, interval: timedelta
) -> Cadence:
    """Update cadence of one incident, as of `now` (its resolution, if resolved).
    `interval` is the severity's reminder interval, for updates kept before their due time
    was recorded and for the stretch after the last update."""
    end = inc.resolved_at if inc.resolved_at is not None and not inc.is_open else now
    on_time = late = 0
    previous = inc.declared_at
    longest = timedelta(0)
    for update in sorted(updates, key=lambda u: (u.posted_at, u.id or 0)):
        if update.posted_at > end:
            break
        due = update.due_at or previous + interval
        if update.posted_at <= due:
            on_time += 1
        else:
            late += 1
        longest = max(longest, update.posted_at - previous)
        previous = update.posted_at
    longest = max(longest, end - previous)
    # The stretch after the last update: missed when it ran past the due time. While open,
    # the stored due time (a snooze moves it) decides.
    due_after = (
        inc.next_update_due
        if inc.is_open and inc.next_update_due is not None
        else previous + interval
    )
    if end > due_after:
        late += 1
    return Cadence(on_time=on_time, late=late, longest_gap=max(longest, timedelta(0)))


def of(
    inc: Incident,
    updates: Sequence[StatusUpdate],
    follow_ups: Sequence[FollowUp],
    *,
    now: datetime,
    interval: timedelta,
) -> Figures:
    start = inc.declared_at
    return Figures(
        incident=inc,
        to_respond=_since(start, inc.responded_at),
        to_mitigate=_since(start, inc.mitigated_at),
        to_resolve=None if inc.is_open else _since(start, inc.resolved_at),
        cadence=cadence(inc, updates, now, interval),
        follow_ups_open=sum(1 for f in follow_ups if f.done_at is None),
        follow_ups_done=sum(1 for f in follow_ups if f.done_at is not None),
    )


def percentile(values: Sequence[float], p: float) -> float | None:
    """The `p`-th percentile (0-100) by linear interpolation between closest ranks, the
    definition spreadsheets use (`PERCENTILE.INC`); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass
class Summary:
    """Figures of a group of incidents (one severity, or all)."""

    label: str
    count: int = 0
    resolved: int = 0
    to_respond: list[float] = field(default_factory=list)
    to_mitigate: list[float] = field(default_factory=list)
    to_resolve: list[float] = field(default_factory=list)
    on_time: int = 0
    late: int = 0
    longest_gap: float = 0.0
    follow_ups_open: int = 0
    follow_ups_done: int = 0

    def add(self, f: Figures) -> None:
        self.count += 1
        self.resolved += 0 if f.incident.is_open else 1
        for seconds, into in (
            (f.to_respond, self.to_respond),
            (f.to_mitigate, self.to_mitigate),
            (f.to_resolve, self.to_resolve),
        ):
            if seconds is not None:
                into.append(seconds.total_seconds())
        self.on_time += f.cadence.on_time
        self.late += f.cadence.late
        self.longest_gap = max(self.longest_gap, f.cadence.longest_gap.total_seconds())
        self.follow_ups_open += f.follow_ups_open
        self.follow_ups_done += f.follow_ups_done


def summarize(figures: Iterable[Figures], order: Sequence[str]) -> list[Summary]:
    """One summary per severity (in `order`, then any others), then one for all."""
    by: dict[str, Summary] = {}
    total = Summary("All")
    for f in figures:
        sev = f.incident.severity
        by.setdefault(sev, Summary(sev)).add(f)
        total.add(f)
    names = [s for s in order if s in by] + sorted(set(by) - set(order))
    return [by[s] for s in names] + [total]


@dataclass
class Snapshot:
    """The incident figures as the database has them at one scrape."""

    open: Tally[tuple[str, str]] = field(default_factory=Tally)
    declared: Tally[str] = field(default_factory=Tally)
    resolved: Tally[str] = field(default_factory=Tally)
    reminders: int = 0
    # Status updates by timeliness: on_time, late (posted after they were due), unknown
    # (kept before due times were).
    updates: Tally[str] = field(default_factory=Tally)
    # Effects outside the bot (webhook deliveries, ...) by kind and state.
    effects: Tally[tuple[str, str]] = field(default_factory=Tally)
    to_respond: dict[str, list[float]] = field(default_factory=dict)
    to_mitigate: dict[str, list[float]] = field(default_factory=dict)
    to_resolve: dict[str, list[float]] = field(default_factory=dict)
