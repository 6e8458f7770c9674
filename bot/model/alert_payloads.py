"""Alert webhooks, read into one shape: Prometheus Alertmanager (webhook version 4), Grafana
alerting, and a small generic JSON. Pure: bytes in, a `Batch` out, or `Invalid` saying why."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

# Alertmanager and Grafana write "no end yet" as the zero time.
ZERO_TIME = "0001-01-01T00:00:00Z"
SOURCES = ("alertmanager", "grafana", "generic")


class Invalid(ValueError):
    """The body is not an alert payload of that kind; the message says what is wrong."""


@dataclass(frozen=True)
class Alert:
    fingerprint: str
    status: str  # firing | resolved
    name: str
    summary: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    starts_at: datetime | None
    source_url: str | None  # where the alert is defined or graphed
    dashboard_url: str | None = None


@dataclass(frozen=True)
class Batch:
    """One notification: the alerts of one group, as the sender grouped them."""

    source: str
    group_key: str
    status: str  # firing | resolved: the group's status
    title: str
    alerts: tuple[Alert, ...]
    common_labels: Mapping[str, str] = field(default_factory=dict)
    common_annotations: Mapping[str, str] = field(default_factory=dict)
    external_url: str | None = None

    @property
    def group_id(self) -> str:
        """A short, stable name for the group (group keys can be long label sets)."""
        digest = hashlib.sha256(f"{self.source}\0{self.group_key}".encode()).hexdigest()
        return digest[:32]

    @property
    def firing(self) -> tuple[Alert, ...]:
        return tuple(a for a in self.alerts if a.status == "firing")

    def label(self, name: str) -> str | None:
        """A label of the group: the common one, else the first firing alert's."""
        if name in self.common_labels:
            return self.common_labels[name]
        for alert in self.firing or self.alerts:
            if name in alert.labels:
                return alert.labels[name]
        return None

    def annotation(self, name: str) -> str | None:
        if self.common_annotations.get(name):
            return self.common_annotations[name]
        for alert in self.firing or self.alerts:
            if alert.annotations.get(name):
                return alert.annotations[name]
        return None

    @property
    def first_fired(self) -> datetime | None:
        times = [a.starts_at for a in self.alerts if a.starts_at is not None]
        return min(times) if times else None


def parse(source: str, raw: bytes) -> Batch:
    if source not in SOURCES:
        raise Invalid(f"unknown alert source {source!r}; use one of {', '.join(SOURCES)}")
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise Invalid(f"the body is not JSON ({e})") from e
    if not isinstance(body, dict):
        raise Invalid("the body must be a JSON object")
    if source == "generic":
        return _generic(body)
    return _grouped(source, body)


def _text(value: Any, what: str, *, limit: int = 3000) -> str:
    if value is None:
        return ""
    if not isinstance(value, str | int | float):
        raise Invalid(f"{what} must be text")
    # Control characters (NUL among them) never enter the database.
    return "".join(ch for ch in str(value)[:limit] if ch >= " " or ch in "\n\t")


def _strings(value: Any, what: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise Invalid(f"{what} must be an object of strings")
    return {str(k)[:200]: _text(v, f"{what}.{k}") for k, v in value.items()}


def _time(value: Any, what: str) -> datetime | None:
    if value in (None, "", ZERO_TIME):
        return None
    if not isinstance(value, str):
        raise Invalid(f"{what} must be an RFC 3339 time")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as e:
        raise Invalid(f"{what} is not an RFC 3339 time ({value[:40]!r})") from e
    if moment.year <= 1:
        return None
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def _status(value: Any, what: str) -> str:
    if value not in ("firing", "resolved"):
        raise Invalid(f"{what} must be firing or resolved")
    return str(value)


def _url(value: Any) -> str | None:
    text = _text(value, "a URL", limit=2000).strip()
    return text if text.startswith(("https://", "http://")) else None


def _grouped(source: str, body: Mapping[str, Any]) -> Batch:
    alerts_in = body.get("alerts")
    if not isinstance(alerts_in, list) or not alerts_in:
        raise Invalid("alerts must be a non-empty list")
    group_key = _text(body.get("groupKey"), "groupKey", limit=10_000)
    common_labels = _strings(body.get("commonLabels"), "commonLabels")
    alerts: list[Alert] = []
    for n, item in enumerate(alerts_in):
        if not isinstance(item, dict):
            raise Invalid(f"alerts[{n}] must be an object")
        labels = _strings(item.get("labels"), f"alerts[{n}].labels")
        annotations = _strings(item.get("annotations"), f"alerts[{n}].annotations")
        starts = _time(item.get("startsAt"), f"alerts[{n}].startsAt")
        fingerprint = _text(item.get("fingerprint"), f"alerts[{n}].fingerprint", limit=200)
        if not fingerprint:
            fingerprint = hashlib.sha256(json.dumps(labels, sort_keys=True).encode()).hexdigest()[
                :16
            ]
        alerts.append(
            Alert(
                fingerprint=fingerprint,
                status=_status(item.get("status"), f"alerts[{n}].status"),
                name=labels.get("alertname", "") or common_labels.get("alertname", ""),
                summary=annotations.get("summary") or annotations.get("description") or "",
                labels=labels,
                annotations=annotations,
                starts_at=starts,
                source_url=_url(item.get("generatorURL"))
                or _url(item.get("panelURL"))
                or _url(item.get("dashboardURL")),
                dashboard_url=_url(item.get("panelURL")) or _url(item.get("dashboardURL")),
            )
        )
    if not group_key:
        # Grafana before group keys: the alerts' fingerprints name the group.
        group_key = ",".join(sorted(a.fingerprint for a in alerts))
    status = _status(body.get("status"), "status")
    names = sorted({a.name for a in alerts if a.name})
    title = _text(body.get("title"), "title", limit=200) if source == "grafana" else ""
    common_annotations = _strings(body.get("commonAnnotations"), "commonAnnotations")
    summary = common_annotations.get("summary", "")
    return Batch(
        source=source,
        group_key=group_key,
        status=status,
        title=summary or ", ".join(names) or title or "Alert",
        alerts=tuple(alerts),
        common_labels=common_labels,
        common_annotations=common_annotations,
        external_url=_url(body.get("externalURL")),
    )


def _generic(body: Mapping[str, Any]) -> Batch:
    title = _text(body.get("title"), "title", limit=200).strip()
    if not title:
        raise Invalid("title is required")
    dedup = _text(body.get("dedup_key"), "dedup_key", limit=500).strip() or title
    status = _status(body.get("status", "firing"), "status")
    labels = _strings(body.get("labels"), "labels")
    if body.get("severity") is not None:
        labels.setdefault("severity", _text(body.get("severity"), "severity", limit=50))
    description = _text(body.get("description"), "description")
    annotations = {"description": description} if description else {}
    alert = Alert(
        fingerprint=hashlib.sha256(dedup.encode()).hexdigest()[:16],
        status=status,
        name=title,
        summary=description,
        labels=labels,
        annotations=annotations,
        starts_at=_time(body.get("started_at"), "started_at"),
        source_url=_url(body.get("url")),
    )
    return Batch(
        source="generic",
        group_key=dedup,
        status=status,
        title=title,
        alerts=(alert,),
        common_labels=labels,
        common_annotations=annotations,
    )
