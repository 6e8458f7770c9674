"""Figures: /metrics, the report's history, first responses, activity."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import false, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from bot.model import rules
from bot.model.figures import Snapshot
from bot.model.tables import (
    Effect,
    FollowUp,
    Incident,
    Status,
    StatusUpdate,
    TimelineEntry,
)
from bot.outbound.store.base import StoreBase


def _responded(incident_id: int | None, user: str, at: datetime) -> Any:
    stmt = update(Incident).where(col(Incident.responded_at).is_(None))
    if incident_id is not None:
        stmt = stmt.where(col(Incident.id) == incident_id)
    return (
        stmt.where(col(Incident.declared_by) != user)
        .where(col(Incident.declared_at) <= at)
        .values(responded_at=at, responded_by=user)
    )


class FigureQueries(StoreBase):
    async def metrics_snapshot(self) -> Snapshot:
        """The incident figures /metrics exports, read in one short session; drills are
        left out."""
        snap = Snapshot()
        real = col(Incident.drill) == false()
        async with self.sessions() as session:
            rows = await session.execute(
                select(
                    col(Incident.severity),
                    col(Incident.status),
                    col(Incident.declared_at),
                    col(Incident.responded_at),
                    col(Incident.mitigated_at),
                    col(Incident.resolved_at),
                ).where(real)
            )
            for severity, status, declared, responded, mitigated, resolved in rows:
                snap.declared[severity] += 1
                for at, into in (
                    (responded, snap.to_respond),
                    (mitigated, snap.to_mitigate),
                    (resolved if status == Status.resolved.value else None, snap.to_resolve),
                ):
                    if at is not None:
                        seconds = max((at - declared).total_seconds(), 0.0)
                        into.setdefault(severity, []).append(seconds)
                if status == Status.resolved.value:
                    snap.resolved[severity] += 1
                else:
                    snap.open[(severity, status)] += 1
            snap.reminders = (
                await session.execute(
                    select(func.count())
                    .select_from(TimelineEntry)
                    .join(Incident, col(Incident.id) == col(TimelineEntry.incident_id))
                    .where(real)
                    .where(col(TimelineEntry.kind) == "reminder")
                )
            ).scalar_one()
            timeliness = await session.execute(
                select(col(StatusUpdate.posted_at) <= col(StatusUpdate.due_at), func.count())
                .join(Incident, col(Incident.id) == col(StatusUpdate.incident_id))
                .where(real)
                .group_by(col(StatusUpdate.posted_at) <= col(StatusUpdate.due_at))
            )
            for on_time, n in timeliness:
                key = "unknown" if on_time is None else "on_time" if on_time else "late"
                snap.updates[key] += n
            effects = await session.execute(
                select(col(Effect.kind), col(Effect.state), func.count()).group_by(
                    col(Effect.kind), col(Effect.state)
                )
            )
            for kind, state, n in effects:
                snap.effects[(kind, state)] += n
        return snap

    async def history(
        self, since: datetime | None, *, drills: bool = False
    ) -> list[tuple[Incident, list[StatusUpdate], list[FollowUp]]]:
        """Incidents declared since `since` (all when None) with their updates and
        follow-ups, oldest first: what the report and stats are computed from."""
        async with self.sessions() as session:
            stmt = select(Incident).order_by(col(Incident.declared_at), col(Incident.id))
            if since is not None:
                stmt = stmt.where(col(Incident.declared_at) >= since)
            if not drills:
                stmt = stmt.where(col(Incident.drill) == false())
            incidents = list((await session.execute(stmt)).scalars())
            ids = [i.pk for i in incidents]
            updates: dict[int, list[StatusUpdate]] = {i: [] for i in ids}
            follow_ups: dict[int, list[FollowUp]] = {i: [] for i in ids}
            # In chunks: a long history stays within every database's parameter limit.
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                for u in (
                    await session.execute(
                        select(StatusUpdate)
                        .where(col(StatusUpdate.incident_id).in_(chunk))
                        .order_by(col(StatusUpdate.posted_at), col(StatusUpdate.id))
                    )
                ).scalars():
                    updates[u.incident_id].append(u)
                for f in (
                    await session.execute(
                        select(FollowUp)
                        .where(col(FollowUp.incident_id).in_(chunk))
                        .order_by(col(FollowUp.id))
                    )
                ).scalars():
                    follow_ups[f.incident_id].append(f)
        return [(i, updates[i.pk], follow_ups[i.pk]) for i in incidents]

    async def responded_in_channel(self, channel_id: str, user: str, at: datetime) -> bool:
        """A person's message in an incident's channel: its first response, unless it
        has one or they declared it. True when this was the first."""
        if not rules.is_person(user, self.not_people):
            return False
        async with self.session() as session:
            stmt = _responded(None, user, at).where(col(Incident.channel_id) == channel_id)
            result = await session.execute(stmt)
            return bool(getattr(result, "rowcount", 0))

    async def note_first_response(
        self, session: AsyncSession, incident_id: int, user: str, at: datetime
    ) -> None:
        """`user` responded at `at`: the incident's first response, unless it has one, they
        declared it, or `at` is before it was declared."""
        await session.execute(_responded(incident_id, user, at))

    async def last_activity(self, incident_ids: Sequence[int]) -> dict[int, datetime]:
        """The time of each incident's latest timeline entry a person caused (reminders
        and alerts are not activity)."""
        if not incident_ids:
            return {}
        async with self.sessions() as session:
            rows = await session.execute(
                select(col(TimelineEntry.incident_id), func.max(col(TimelineEntry.happened_at)))
                .where(col(TimelineEntry.incident_id).in_(sorted(incident_ids)))
                .where(col(TimelineEntry.kind).not_in(["reminder", "alert"]))
                .group_by(col(TimelineEntry.incident_id))
            )
            return {i: at for i, at in rows}
