"""The verbs on a live incident: severity, roles, status updates, resolve, reopen, snooze.

Each one validates, stores (with its timeline entry) in one transaction, then shows the
stored state again and lets the reminder schedule follow it.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from bot.base.errors import BadInput, log_failure, problem
from bot.model import rules
from bot.model.rules import Changed
from bot.model.tables import Incident, RoleAssignment, Status, StatusUpdate
from bot.operations.deps import Deps, Operation
from bot.operations.incidents.declare import OnChange
from bot.operations.incidents.timeline import record, record_once
from bot.views import blocks

log = logging.getLogger(__name__)


class Response(Operation):
    def __init__(self, deps: Deps, *, on_change: OnChange):
        super().__init__(deps)
        self.on_change = on_change

    async def _after_change(self, stored: Incident, problems: list[str]) -> Incident:
        """Show the stored state again and let the reminder schedule follow it. The change
        is stored already: whatever fails here is a problem to report and catch up on,
        never a reason to ask the person to try again."""
        try:
            if self.surfaces.paced("chat.update", "conversations.setTopic"):
                # Slack is pacing the card's or the topic's calls: the card follows in the
                # background, coalesced with the changes after this one, and the person
                # is not kept waiting for it (what Slack refuses there, the commander
                # hears of).
                self.surfaces.refresh_later(stored.pk)
            else:
                problems += await self.surfaces.refresh(stored.pk, only_behind=True)
            incident = await self.store.incident(stored.pk)
            assert incident is not None
            await self.on_change(incident)
            return incident
        except Exception as e:
            log_failure(log, f"{stored.ref} is stored but not shown", e)
            problems.append(problem("card", e))
            return stored

    async def _post(
        self, inc: Incident, text: str, problems: list[str], *, announce: bool = False
    ) -> None:
        """Post a message about a stored change; a failure is a problem, not an error."""
        try:
            if announce:
                await self.surfaces.announce(inc, text)
            else:
                await self.surfaces.post(inc, text)
        except Exception as e:
            log_failure(log, f"could not post in the channel of {inc.ref}", e)
            problems.append(problem("message", e))

    def _interval(self, severity: str) -> timedelta:
        return rules.reminder_interval(self.settings, severity)

    async def set_severity(self, incident_id: int, severity: str, actor: str) -> Changed:
        sev = self.settings.severity(severity)
        if sev is None:
            raise BadInput(rules.unknown_severity(self.settings, severity))
        now = self.clock()
        async with self.store.session() as s:
            inc = await self.store.locked(s, incident_id)
            rules.require_open(inc)
            old = inc.severity
            if old == sev.name:
                return Changed(inc, False, f"{inc.ref} is already {sev.name}.")
            inc.severity = sev.name
            # The new level's cadence applies from the last update (or the declaration).
            inc.next_update_due = (inc.last_update_at or inc.declared_at) + self._interval(sev.name)
            inc.version += 1
            await record(
                self.store,
                s,
                rules.entry(
                    inc,
                    "severity",
                    actor,
                    f"Severity {old} → {sev.name}",
                    {"from": old, "to": sev.name},
                    now=now,
                ),
            )
            await self.outgoing.happened(
                s, inc, "severity_changed", {"from": old, "to": sev.name}, actor=actor
            )
        problems: list[str] = []
        inc = await self._after_change(inc, problems)
        raised = rules.rank(self.settings, sev.name) < rules.rank(self.settings, old)
        text = blocks.severity_changed(inc, actor, old, sev, self.settings, raised=raised)
        await self._post(inc, text, problems, announce=raised)
        if raised:
            try:
                await self.surfaces.bring_in(inc, sev.name)
            except Exception as e:
                log_failure(log, f"could not bring people into {inc.ref}", e)
                problems.append(problem("invitations", e))
        return Changed(inc, True, f"{inc.ref} is now {sev.name}.", tuple(problems))

    async def assign_role(
        self, incident_id: int, role_name: str, user_id: str, actor: str
    ) -> Changed:
        role = rules.role(self.settings, role_name)
        await self.directory.check_person(user_id)
        now = self.clock()
        async with self.store.session() as s:
            inc = await self.store.locked(s, incident_id)
            rules.require_open(inc)
            current = await self.store.current_holder(s, incident_id, role.name)
            if current is not None and current.user_id == user_id:
                return Changed(inc, False, f"<@{user_id}> is already the {role.label}.")
            previous = current.user_id if current is not None else None
            if current is not None:
                current.ended_at = now
            s.add(
                RoleAssignment(
                    incident_id=incident_id,
                    role=role.name,
                    user_id=user_id,
                    assigned_by=actor,
                    assigned_at=now,
                )
            )
            handover = f" (handed over from <@{previous}>)" if previous else ""
            inc.version += 1
            await record(
                self.store,
                s,
                rules.entry(
                    inc,
                    "role",
                    actor,
                    f"<@{user_id}> is the {role.label}{handover}",
                    {"role": role.name, "from": previous, "to": user_id},
                    now=now,
                ),
            )
            await self.outgoing.happened(
                s,
                inc,
                "role_assigned",
                {"role": role.name, "from": previous, "to": user_id},
                actor=actor,
            )
        problems: list[str] = []
        await self.surfaces.invite(inc, {user_id})
        inc = await self._after_change(inc, problems)
        await self._post(inc, blocks.role_assigned(user_id, role, actor, previous), problems)
        return Changed(
            inc, True, f"<@{user_id}> is now the {role.label} of {inc.ref}.", tuple(problems)
        )

    async def post_update(
        self, incident_id: int, *, summary: str, actor: str, key: str, status: str | None = None
    ) -> Changed:
        summary = rules.check_update(summary, status)
        now = self.clock()
        async with self.store.session() as s:
            inc = await self.store.locked(s, incident_id)
            rules.require_open(inc)
            if await self.store.update_by_key(s, incident_id, key) is not None:
                return Changed(inc, False, "That update was posted already.")
            old_status, status = inc.status, status or inc.status
            update = StatusUpdate(
                incident_id=incident_id,
                status=status,
                summary=summary,
                posted_by=actor,
                posted_at=now,
                source_key=key,
                due_at=inc.next_update_due,
            )
            s.add(update)
            await s.flush()
            inc.status = status
            if status == Status.monitoring.value and inc.mitigated_at is None:
                inc.mitigated_at = now  # the first time only, even after a reopen
            inc.last_update_at = now
            inc.next_update_due = now + self._interval(inc.severity)
            inc.version += 1
            await record(
                self.store,
                s,
                rules.entry(
                    inc,
                    "update",
                    actor,
                    summary,
                    {"status": status, "from": old_status, "update_id": update.id},
                    now=now,
                ),
            )
            await self.outgoing.happened(
                s, inc, "update_posted", {"status": status, "summary": summary}, actor=actor
            )
            if status != old_status:
                await self.outgoing.happened(
                    s, inc, "status_changed", {"from": old_status, "to": status}, actor=actor
                )
        problems: list[str] = []
        try:
            mark = await self.claims.take_update(update.pk)
            if mark is not None:
                await self.surfaces.post_update(inc, update, mark)
        except Exception as e:
            # Stored, and marked unposted: the repair job posts it once Slack lets it.
            log_failure(log, f"could not post an update of {inc.ref}", e)
            problems.append(problem("update", e))
        inc = await self._after_change(inc, problems)
        return Changed(inc, True, f"Update recorded on {inc.ref}.", tuple(problems))

    async def resolve(self, incident_id: int, *, summary: str, actor: str) -> Changed:
        summary = rules.check_resolution(summary)
        now = self.clock()
        async with self.store.session() as s:
            inc = await self.store.locked(s, incident_id)
            if not inc.is_open:
                return Changed(inc, False, f"{inc.ref} is already resolved.")
            inc.status = Status.resolved.value
            inc.resolved_at = now
            inc.next_update_due = None
            inc.version += 1
            await record(
                self.store,
                s,
                rules.entry(
                    inc, "resolved", actor, summary or "Resolved", {"summary": summary}, now=now
                ),
            )
            await self.outgoing.happened(s, inc, "resolved", {"summary": summary}, actor=actor)
        problems: list[str] = []
        inc = await self._after_change(inc, problems)
        text, body = blocks.resolved_message(inc, actor, summary, self.settings)
        try:
            await self.surfaces.announce(inc, text, body)
        except Exception as e:
            log_failure(log, f"could not post the resolution of {inc.ref}", e)
            problems.append(problem("message", e))
        return Changed(inc, True, f"{inc.ref} is resolved.", tuple(problems))

    async def reopen(self, incident_id: int, actor: str) -> Changed:
        now = self.clock()
        async with self.store.session() as s:
            inc = await self.store.locked(s, incident_id)
            if inc.is_open:
                return Changed(inc, False, f"{inc.ref} is not resolved.")
            inc.status = Status.investigating.value
            inc.resolved_at = None
            inc.next_update_due = now + self._interval(inc.severity)
            inc.version += 1
            await record(self.store, s, rules.entry(inc, "reopened", actor, "Reopened", now=now))
            await self.outgoing.happened(s, inc, "reopened", {}, actor=actor)
        problems: list[str] = []
        inc = await self._after_change(inc, problems)
        await self._post(inc, blocks.reopened(inc, actor), problems, announce=True)
        return Changed(inc, True, f"{inc.ref} is open again.", tuple(problems))

    async def snooze(self, incident_id: int, minutes: int, actor: str, key: str) -> Changed:
        """Move the next update's due time; one snooze per reminder message."""
        rules.check_snooze(minutes)
        now = self.clock()
        async with self.store.session() as s:
            inc = await self.store.locked(s, incident_id)
            rules.require_open(inc)
            added = await record_once(
                self.store,
                s,
                rules.entry(
                    inc,
                    "snooze",
                    actor,
                    f"Snoozed the update reminder for {minutes} min",
                    {"minutes": minutes},
                    now=now,
                    source_key=key,
                ),
            )
            if not added:
                return Changed(inc, False, "That reminder was snoozed already.")
            inc.next_update_due = now + timedelta(minutes=minutes)
            inc.version += 1
        problems: list[str] = []
        inc = await self._after_change(inc, problems)
        return Changed(
            inc, True, f"Next update reminder for {inc.ref} in {minutes} min.", tuple(problems)
        )
