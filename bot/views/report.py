"""The incident report as Markdown, CSV or JSON (`incident-bot report`, `/incident stats`)."""

from __future__ import annotations

import csv
import io
import json
import re
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.model.figures import Figures, Summary, duration, percentile
from bot.model.report import Report


def share(part: int, whole: int) -> str:
    return f"{part / whole:.0%}" if whole else "–"


def _cell(text: str) -> str:
    """Text people typed, safe in a Markdown table cell."""
    text = " ".join(text.split())
    return re.sub(r"([\\`*_\[\]<>|#])", r"\\\1", text)


def _when(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _owners(report: Report) -> list[tuple[str, int, int]]:
    open_: Counter[str] = Counter()
    done: Counter[str] = Counter()
    for f, _ in report.follow_ups:
        (done if f.done_at is not None else open_)[f.owner or ""] += 1
    owners = sorted(set(open_) | set(done), key=lambda o: (o == "", o))
    return [(o, open_[o], done[o]) for o in owners]


def markdown(report: Report, names: dict[str, str] | None = None) -> str:
    names = names or {}

    def who(user: str) -> str:
        return _cell(names.get(user, user)) if user else "no owner"

    out = [
        "# Incident report",
        "",
        f"{_when(report.since)} to {_when(report.until)} · drills left out",
        "",
    ]
    if not report.incidents:
        return "\n".join([*out, "No incidents were declared in this period.", ""])
    out += [
        "## By severity",
        "",
        "| Severity | Incidents | Resolved | Respond (median / p90) | Mitigate (median / p90) "
        "| Resolve (median / p90) | Updates on time | Longest gap |",
        "| --- | ---: | ---: | --- | --- | --- | ---: | --- |",
    ]
    for s in report.summaries:
        label = "**All**" if s.label == "All" else _cell(s.label)
        times = [
            f"{duration(percentile(v, 50))} / {duration(percentile(v, 90))}"
            for v in (s.to_respond, s.to_mitigate, s.to_resolve)
        ]
        out.append(
            f"| {label} | {s.count} | {s.resolved} | {' | '.join(times)} "
            f"| {share(s.on_time, s.on_time + s.late)} ({s.on_time} of {s.on_time + s.late}) "
            f"| {duration(s.longest_gap)} |"
        )
    out += [
        "",
        "Respond: the first message or action by someone other than the declarer. Mitigate: "
        "the status first became monitoring. Updates on time: update intervals met (each "
        "update due one reminder interval after the previous one, or the declaration).",
        "",
        "## Incidents",
        "",
        "| Incident | Severity | Status | Declared | Respond | Mitigate | Resolve "
        "| Updates on time | Longest gap |",
        "| --- | --- | --- | --- | --- | --- | --- | ---: | --- |",
    ]
    for f in report.incidents:
        inc = f.incident
        c = f.cadence
        cells = " | ".join(
            duration(_seconds(t)) for t in (f.to_respond, f.to_mitigate, f.to_resolve)
        )
        out.append(
            f"| {inc.ref} {_cell(inc.title)} | {_cell(inc.severity)} | {inc.status} "
            f"| {_when(inc.declared_at)} "
            f"| {cells} "
            f"| {share(c.on_time, c.intervals)} ({c.on_time} of {c.intervals}) "
            f"| {duration(c.longest_gap.total_seconds())} |"
        )
    out += ["", "## Follow-ups", ""]
    owners = _owners(report)
    if not owners:
        out.append("None recorded.")
    else:
        out += ["| Owner | Open | Done |", "| --- | ---: | ---: |"]
        out += [f"| {who(o)} | {n_open} | {n_done} |" for o, n_open, n_done in owners]
        out += ["", "Open:", ""]
        pending = [(item, inc) for item, inc in report.follow_ups if item.done_at is None]
        for item, inc in pending:
            out.append(f"- {inc.ref}: {_cell(item.text)} ({who(item.owner or '')})")
        if not pending:
            out.append("None: every follow-up is done.")
    return "\n".join(out) + "\n"


def _seconds(t: timedelta | None) -> float | None:
    return None if t is None else t.total_seconds()


SUMMARY_COLUMNS = (
    "severity",
    "incidents",
    "resolved",
    "respond_median_s",
    "respond_p90_s",
    "mitigate_median_s",
    "mitigate_p90_s",
    "resolve_median_s",
    "resolve_p90_s",
    "update_intervals_met",
    "update_intervals",
    "update_adherence",
    "longest_gap_s",
    "follow_ups_open",
    "follow_ups_done",
)


def _summary_row(s: Summary) -> dict[str, Any]:
    def r(v: float | None) -> float | None:
        return None if v is None else round(v, 1)

    total = s.on_time + s.late
    return {
        "severity": s.label,
        "incidents": s.count,
        "resolved": s.resolved,
        "respond_median_s": r(percentile(s.to_respond, 50)),
        "respond_p90_s": r(percentile(s.to_respond, 90)),
        "mitigate_median_s": r(percentile(s.to_mitigate, 50)),
        "mitigate_p90_s": r(percentile(s.to_mitigate, 90)),
        "resolve_median_s": r(percentile(s.to_resolve, 50)),
        "resolve_p90_s": r(percentile(s.to_resolve, 90)),
        "update_intervals_met": s.on_time,
        "update_intervals": total,
        "update_adherence": round(s.on_time / total, 4) if total else None,
        "longest_gap_s": round(s.longest_gap, 1),
        "follow_ups_open": s.follow_ups_open,
        "follow_ups_done": s.follow_ups_done,
    }


def csv_text(report: Report) -> str:
    """The per-severity table, one row per severity and one for all; seconds as numbers."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=SUMMARY_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for s in report.summaries if report.incidents else []:
        writer.writerow(_summary_row(s))
    return buffer.getvalue()


def json_text(report: Report) -> str:
    def incident(f: Figures) -> dict[str, Any]:
        inc = f.incident
        return {
            "incident": inc.ref,
            "title": inc.title,
            "severity": inc.severity,
            "status": inc.status,
            "declared_at": inc.declared_at.isoformat(),
            "respond_s": _seconds(f.to_respond),
            "mitigate_s": _seconds(f.to_mitigate),
            "resolve_s": _seconds(f.to_resolve),
            "update_intervals_met": f.cadence.on_time,
            "update_intervals": f.cadence.intervals,
            "longest_gap_s": f.cadence.longest_gap.total_seconds(),
            "follow_ups_open": f.follow_ups_open,
            "follow_ups_done": f.follow_ups_done,
        }

    data = {
        "since": report.since.isoformat(),
        "until": report.until.isoformat(),
        "by_severity": [_summary_row(s) for s in report.summaries] if report.incidents else [],
        "incidents": [incident(f) for f in report.incidents],
        "follow_ups": [
            {
                "incident": inc.ref,
                "text": f.text,
                "owner": f.owner,
                "done": f.done_at is not None,
                "done_at": f.done_at.isoformat() if f.done_at else None,
            }
            for f, inc in report.follow_ups
        ],
    }
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def render(report: Report, fmt: str) -> str:
    if fmt == "csv":
        return csv_text(report)
    if fmt == "json":
        return json_text(report)
    return markdown(report)
