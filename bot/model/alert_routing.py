"""Which severity an alert group gets and whether it opens an incident at once. Pure."""

from __future__ import annotations

from dataclasses import dataclass

from bot.base.settings import Settings
from bot.model.alert_payloads import Batch

# The conventional `severity` label, as Prometheus rules and Grafana write it.
LABEL_SEVERITY = {
    "critical": 0,
    "page": 0,
    "error": 1,
    "high": 1,
    "major": 1,
    "warning": 2,
    "warn": 2,
    "minor": 2,
    "info": 3,
    "low": 3,
    "none": 3,
}


@dataclass(frozen=True)
class Route:
    severity: str
    action: str  # declare | triage
    resolve: bool = False  # when the whole group resolves


def route(settings: Settings, batch: Batch) -> Route:
    action = "triage" if settings.alerts_channel else "declare"
    resolve = False
    severity = _from_label(settings, batch.label("severity"))
    facts = {**dict(batch.common_labels), "source": batch.source}
    for alert in batch.firing or batch.alerts:
        facts = {**dict(alert.labels), **facts}
    for rule in settings.alert_rules:
        if all(facts.get(key) == value for key, value in rule.match.items()):
            severity = rule.severity or severity
            action = rule.action or action
            resolve = rule.resolve
            break
    if action == "triage" and not settings.alerts_channel:
        action = "declare"  # nowhere to triage: better an incident than a lost alert
    return Route(severity, action, resolve)


def _from_label(settings: Settings, value: str | None) -> str:
    names = [s.name for s in settings.severities]
    if value and value.upper() in names:
        return value.upper()
    rank = LABEL_SEVERITY.get((value or "").strip().lower())
    if rank is None:
        return settings.default_severity or names[-1]
    return names[min(rank, len(names) - 1)]
