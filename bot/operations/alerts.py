"""What an alert notification does: open one incident per alert group (or attach to the one
it opened), put each change of its alerts on that incident's timeline once, and tell the
incident when the whole group has resolved.

"Once" holds under retries and across processes without a lock: the incident's declaration
key is derived from the group (and how many incidents it opened before), so two processes
declaring the same group race on the same unique key; timeline entries carry a source key
per alert change, so a repeat adds nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from slack_sdk.models.blocks import ActionsBlock, ButtonElement, SectionBlock

from bot.base.errors import BadInput
from bot.model import alert_routing as routing
from bot.model import rules
from bot.model.alert_payloads import Alert, Batch
from bot.model.rules import Declared
from bot.model.tables import AlertTriage, Incident, TimelineEntry
from bot.operations.deps import Deps, Operation
from bot.operations.incidents.declare import Declaration, Declarations
from bot.views import blocks
from bot.views.text import literal

log = logging.getLogger(__name__)

TITLE_MAX = 150
Resolver = Callable[[int, str], Awaitable[object]]


@dataclass(frozen=True)
class Received:
    """What a notification did: `action` is declared, attached, resolved or ignored."""

    action: str
    incident: Incident | None = None

    def answer(self) -> dict[str, object]:
        inc = self.incident
        return {"action": self.action, "incident": inc.ref if inc is not None else None}


def group_prefix(batch: Batch) -> str:
    return f"alert:{batch.group_id}:"


class Intake(Operation):
    def __init__(self, deps: Deps, declarations: Declarations, *, resolve: Resolver | None = None):
        super().__init__(deps)
        # How an alert rule with `resolve` closes the incident (the Resolve operation).
        self.resolve = resolve
        self.declarations = declarations

    async def receive(self, batch: Batch) -> Received:
        prefix = group_prefix(batch)
        opened = await self.store.declared_under(prefix)
        current = next((inc for inc in opened if inc.is_open), None)
        if batch.status == "firing" and batch.firing:
            if current is None:
                route = routing.route(self.settings, batch)
                if route.action == "triage":
                    return await self._triage(batch, f"{prefix}{len(opened) + 1}", route)
                declared = await self.declarations.declare(
                    Declaration(
                        team_id=self.directory.team_id or "",
                        actor=self.directory.bot_user_id or "",
                        # One key per group and generation: a retry, a repeat or another
                        # process declaring the same group meets the same key.
                        key=f"{prefix}{len(opened) + 1}",
                        title=_title(batch),
                        severity=route.severity,
                        description=_description(batch),
                        unassigned=True,
                        alert=_facts(batch),
                    )
                )
                current = declared.incident
                await self._record(current, batch)
                return Received("declared" if declared.created else "attached", current)
            await self._record(current, batch)
            return Received("attached", current)
        if current is None:
            return Received("ignored")
        await self._record(current, batch)
        if batch.status == "resolved" and await self._group_resolved(current, batch):
            if routing.route(self.settings, batch).resolve and self.resolve is not None:
                await self.resolve(current.pk, f"Every alert of {_title(batch)} resolved.")
            return Received("resolved", current)
        return Received("attached", current)

    # --- triage: a person decides ------------------------------------------------------

    async def _triage(self, batch: Batch, key: str, route: routing.Route) -> Received:
        """Post the group in the alerts channel once, with Declare and Dismiss."""
        channel = self.settings.alerts_channel
        assert channel is not None
        waiting = await self.store.triage_for(key)
        if waiting is None:
            waiting = await self.store.add_triage(
                AlertTriage(
                    team_id=self.directory.team_id or "",
                    group_key=key,
                    severity=route.severity,
                    title=_title(batch),
                    description=_description(batch),
                    alert=_facts(batch),
                    created_at=self.clock(),
                )
            )
            if waiting is not None:
                text, body = blocks.alert_triage(
                    waiting.pk, waiting.title, waiting.severity, waiting.description, waiting.alert
                )
                ts = await self.surfaces.show_triage(channel, text, body)
                await self.store.save_triage(waiting.pk, message_ts=ts)
                return Received("triaged")
            waiting = await self.store.triage_for(key)  # another process posted it
        state = waiting.state if waiting is not None else "pending"
        return Received("dismissed" if state == "dismissed" else "triaged")

    async def declare_triaged(self, triage_id: int, user: str) -> Declared:
        """Declare a triaged group, once however many click; whoever clicked first commands
        it and is named on the alert's message."""
        triage = await self.store.triage(triage_id)
        if triage is None:
            raise BadInput("The bot no longer knows this alert.")
        won = await self.store.decide_triage(triage_id, "declared", user)
        if not won:
            triage = await self.store.triage(triage_id)
            assert triage is not None
            if triage.state == "dismissed":
                raise BadInput(f"<@{triage.decided_by}> dismissed this alert already.")
            if triage.incident_id is not None:
                inc = await self.store.incident(triage.incident_id)
                assert inc is not None
                return Declared(inc, created=False)
        # The group's key: the same incident whoever (or whatever alert) declares it, also
        # when the first click's declaration is still under way.
        declared = await self.declarations.declare(
            Declaration(
                team_id=triage.team_id,
                actor=user if won else (triage.decided_by or user),
                key=triage.group_key,
                title=triage.title,
                severity=triage.severity,
                description=triage.description,
                alert=triage.alert,
            )
        )
        if not won:
            return rules.Declared(declared.incident, created=False)
        inc = declared.incident
        await self.store.save_triage(triage_id, incident_id=inc.pk)
        await self._decided(triage, f":rotating_light: Declared as {inc.ref} by <@{user}>")
        return declared

    async def dismiss_triaged(self, triage_id: int, user: str) -> str:
        triage = await self.store.triage(triage_id)
        if triage is None:
            raise BadInput("The bot no longer knows this alert.")
        if not await self.store.decide_triage(triage_id, "dismissed", user):
            triage = await self.store.triage(triage_id)
            assert triage is not None
            if triage.state == "dismissed":
                return "This alert is dismissed already."
            raise BadInput(f"<@{triage.decided_by}> declared an incident for this alert already.")
        await self._decided(triage, f"Dismissed by <@{user}>")
        return "Dismissed."

    async def _decided(self, triage: AlertTriage, decision: str) -> None:
        channel = self.settings.alerts_channel
        if not channel or not triage.message_ts:
            return
        text, body = blocks.alert_triage(
            triage.pk, triage.title, triage.severity, triage.description, triage.alert, decision
        )
        try:
            await self.surfaces.show_triage(channel, text, body, ts=triage.message_ts)
        except Exception as e:
            # The decision is stored; only the message in the alerts channel lags behind.
            log.warning("could not update an alert's message: %s", e)

    async def _record(self, inc: Incident, batch: Batch) -> int:
        """One timeline entry per alert and state (a repeat adds nothing)."""
        added = 0
        async with self.store.session() as s:
            for alert in batch.alerts:
                if await self.store.add_entry(s, self._entry(inc, batch, alert)):
                    added += 1
        return added

    def _entry(self, inc: Incident, batch: Batch, alert: Alert) -> TimelineEntry:
        started = alert.starts_at.isoformat() if alert.starts_at else ""
        verb = "firing" if alert.status == "firing" else "resolved"
        what = alert.name or batch.title
        text = f"Alert {verb}: {what}" + (f" — {alert.summary}" if alert.summary else "")
        return rules.entry(
            inc,
            "alert",
            None,
            text[:1000],
            {
                "source": batch.source,
                "status": alert.status,
                "fingerprint": alert.fingerprint,
                "labels": dict(alert.labels),
                "url": alert.source_url,
                "started": started,
            },
            now=self.clock(),
            at=alert.starts_at if alert.status == "firing" and alert.starts_at else None,
            source_key=f"alert:{alert.fingerprint}:{alert.status}:{started}"[:255],
        )

    async def _group_resolved(self, inc: Incident, batch: Batch) -> bool:
        """Record that the group resolved and offer the commander the Resolve button; once."""
        async with self.store.session() as s:
            added = await self.store.add_entry(
                s,
                rules.entry(
                    inc,
                    "alert",
                    None,
                    f"All alerts of {batch.title} resolved",
                    {"source": batch.source, "status": "resolved", "group": batch.group_id},
                    now=self.clock(),
                    source_key=f"alert-group-resolved:{batch.group_id}:{_last_start(batch)}",
                ),
            )
        if not added:
            return False
        roles = await self.store.roles(inc.pk)
        commander = roles.get("commander")
        who = f"<@{commander}> " if commander else ""
        text = (
            f":white_check_mark: {who}Every alert that opened {inc.ref} has resolved "
            f"({literal(batch.title)}). Resolve the incident once you agree it is over; "
            "the bot does not resolve it on its own."
        )
        body = [
            SectionBlock(text=text),
            ActionsBlock(
                elements=[
                    ButtonElement(
                        action_id=blocks.CARD_RESOLVE,
                        text="Resolve incident",
                        value=str(inc.pk),
                        style="primary",
                    )
                ]
            ),
        ]
        try:
            if inc.channel_usable:
                await self.surfaces.post(inc, text, body)
        except Exception as e:
            # Recorded on the timeline already; the card's own Resolve button still works.
            log.warning("could not tell %s that its alerts resolved: %s", inc.ref, e)
        return True


def _title(batch: Batch) -> str:
    title = " ".join(batch.title.split())
    return title[:TITLE_MAX] or "Alert"


def _description(batch: Batch) -> str:
    lines = [f"Opened by an alert from {batch.source}."]
    summary = batch.annotation("description") or batch.annotation("summary")
    if summary:
        lines.append(summary)
    return "\n".join(lines)[:2000]


def _last_start(batch: Batch) -> str:
    times = [a.starts_at for a in batch.alerts if a.starts_at is not None]
    return max(times).isoformat() if times else ""


def _facts(batch: Batch) -> dict[str, str | None]:
    """What the incident keeps of its alert: the card links it, the postmortem tells it."""
    fired = batch.first_fired
    first = (batch.firing or batch.alerts)[0]
    return {
        "source": batch.source,
        "title": _title(batch),
        "url": first.source_url or batch.external_url,
        "runbook": _link(batch.annotation("runbook_url") or batch.annotation("runbook")),
        "dashboard": _link(
            batch.annotation("dashboard_url") or batch.annotation("dashboard") or _dashboard(batch)
        ),
        "fired_at": fired.isoformat() if fired else None,
    }


def _link(value: str | None) -> str | None:
    value = (value or "").strip()
    return value if value.startswith(("https://", "http://")) and " " not in value else None


def _dashboard(batch: Batch) -> str | None:
    # Grafana sends each alert's dashboard (panel) beside its rule's URL.
    return next((a.dashboard_url for a in batch.alerts if a.dashboard_url), None)
