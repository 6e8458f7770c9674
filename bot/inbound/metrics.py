"""Prometheus metrics, served at GET /metrics on PORT in both run modes.

Incident figures are read from the database at each scrape, so several bot processes export
the same truth and nothing is lost on a restart. Web API calls, database errors and periodic
passes are each process's own, counted as they happen.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from bot.model.figures import Snapshot

if TYPE_CHECKING:
    from bot.outbound.store import Store

log = logging.getLogger(__name__)

# Seconds from declaration: a first response within a minute to an hour; mitigation and
# resolution from 5 minutes to 3 days.
_LONG = (300.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 43200.0, 86400.0, 259200.0)
BUCKETS = {
    "respond": (60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0),
    "mitigate": _LONG,
    "resolve": _LONG,
}


class _FromDatabase(Collector):
    def __init__(self, metrics: Metrics):
        self.metrics = metrics

    def collect(self) -> Iterable[Metric]:
        snap = self.metrics.snapshot
        if snap is None:
            return
        open_ = GaugeMetricFamily(
            "incident_bot_incidents_open", "Open incidents", labels=["severity", "status"]
        )
        for (severity, status), n in sorted(snap.open.items()):
            open_.add_metric([severity, status], n)
        yield open_
        for name, doc, tally in (
            ("incident_bot_incidents_declared", "Incidents declared", snap.declared),
            ("incident_bot_incidents_resolved", "Incidents resolved", snap.resolved),
        ):
            family = CounterMetricFamily(name, doc, labels=["severity"])
            for severity, n in sorted(tally.items()):
                family.add_metric([severity], n)
            yield family
        yield CounterMetricFamily(
            "incident_bot_reminders_sent", "Status-update reminders sent", value=snap.reminders
        )
        updates = CounterMetricFamily(
            "incident_bot_status_updates",
            "Status updates posted, by whether they came before they were due",
            labels=["timeliness"],
        )
        for timeliness in ("on_time", "late", "unknown"):
            updates.add_metric([timeliness], snap.updates[timeliness])
        yield updates
        effects = GaugeMetricFamily(
            "incident_bot_effects",
            "Effects outside the bot (webhook deliveries, ...), by kind and state: pending, "
            "done or failed",
            labels=["kind", "state"],
        )
        for (kind, state), n in sorted(snap.effects.items()):
            effects.add_metric([kind, state], n)
        yield effects
        for name, doc, values_by in (
            ("respond", "the first response by someone other than the declarer", snap.to_respond),
            ("mitigate", "the status first becoming monitoring", snap.to_mitigate),
            ("resolve", "resolution", snap.to_resolve),
        ):
            hist = HistogramMetricFamily(
                f"incident_bot_time_to_{name}_seconds",
                f"Seconds from declaration to {doc}, by severity",
                labels=["severity"],
            )
            for severity, values in sorted(values_by.items()):
                buckets = [(str(b), float(sum(1 for v in values if v <= b))) for b in BUCKETS[name]]
                buckets.append(("+Inf", float(len(values))))
                hist.add_metric([severity], buckets, sum(values))
            yield hist


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.api_calls = Counter(
            "incident_bot_slack_api_calls",
            "Web API calls, by method",
            ["method"],
            registry=self.registry,
        )
        self.api_errors = Counter(
            "incident_bot_slack_api_errors",
            "Web API calls that failed, by method and Slack's error (or the exception)",
            ["method", "error"],
            registry=self.registry,
        )
        self.api_seconds = Histogram(
            "incident_bot_slack_api_seconds",
            "Web API call latency, retries included, by method",
            ["method"],
            registry=self.registry,
        )
        self.database_errors = Counter(
            "incident_bot_database_errors",
            "Scrapes that found the database unavailable (its figures are left out then)",
            registry=self.registry,
        )
        self.passes = Counter(
            "incident_bot_passes",
            "Periodic passes run to their end (one that failed and logged it too), by pass",
            ["pass"],
            registry=self.registry,
        )
        self.snapshot: Snapshot | None = None
        self.registry.register(_FromDatabase(self))

    def api_call(self, method: str, seconds: float, error: str | None) -> None:
        self.api_calls.labels(method).inc()
        self.api_seconds.labels(method).observe(seconds)
        if error is not None:
            self.api_errors.labels(method, error).inc()

    async def exposition(self, store: Store) -> bytes:
        """The text a scrape gets: the database's figures when it answers, this process's
        own counters always."""
        try:
            self.snapshot = await store.metrics_snapshot()
        except Exception as e:
            self.database_errors.inc()
            self.snapshot = None
            log.warning("metrics: the database did not answer (%s)", type(e).__name__)
        return generate_latest(self.registry)
