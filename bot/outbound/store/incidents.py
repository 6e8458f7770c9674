"""Incidents: numbering, lookups, the row lock and the public side, what Slack shows."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import false, select, text, true, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from bot.base.work import give_back
from bot.model.tables import (
    ChannelState,
    Incident,
    IncidentCounter,
    Status,
)
from bot.outbound.store.base import StoreBase
from bot.outbound.store.engine import sqlite_rows

# The advisory-lock space of `Store.publicly` (any constant apart from the migrations').
PUBLIC_LOCKS = 727275


class PublicSide(NamedTuple):
    """An incident read under `Store.publicly`, and how to save fields under that hold."""

    incident: Incident
    save: Callable[..., Awaitable[None]]


_SQLITE_NEXT_NUMBER = (
    "UPDATE incident_counter SET last_number = last_number + 1 WHERE team_id = ? "
    "AND NOT EXISTS (SELECT 1 FROM incident WHERE declare_key = ?) RETURNING last_number"
)


class IncidentQueries(StoreBase):
    @property
    def numbers_check_keys(self) -> bool:
        """Whether `next_number(..., unless_declared=key)` also says if the key is taken:
        on SQLite, whose write lock the transaction already holds, so the answer stays
        true until it commits. Elsewhere the insert's unique index tells."""
        return self.engine.dialect.name == "sqlite"

    async def next_number(
        self, session: AsyncSession, team_id: str, *, unless_declared: str
    ) -> int | None:
        """Reserve the next number; the row lock serialises concurrent declarations.
        None when `unless_declared` is an existing incident's key (see numbers_check_keys)."""
        for _ in range(5):
            number = await self._increment_counter(session, team_id, unless_declared)
            if number is not None:
                return number
            if self.numbers_check_keys and await self.incident_by_key(session, unless_declared):
                return None
            try:
                async with session.begin_nested():
                    session.add(IncidentCounter(team_id=team_id, last_number=1))
                return 1
            except IntegrityError:
                # Another process created the row first: increment it instead.
                await asyncio.sleep(0)
        raise RuntimeError("could not reserve an incident number")

    async def _increment_counter(self, session: AsyncSession, team_id: str, key: str) -> int | None:
        conn = await session.connection()
        if conn.dialect.name == "sqlite":
            # The number is all a declaration's channel waits for: one trip to aiosqlite's
            # thread, where a statement through SQLAlchemy's cursor takes four.
            args = (team_id, key)
            rows = await sqlite_rows(conn, _SQLITE_NEXT_NUMBER, args, patience=self.timeout)
            return int(rows[0][0]) if rows else None
        stmt = (
            update(IncidentCounter)
            .where(col(IncidentCounter.team_id) == team_id)
            .values(last_number=col(IncidentCounter.last_number) + 1)
            .returning(col(IncidentCounter.last_number))
        )
        number = (await conn.execute(stmt)).scalar_one_or_none()
        return None if number is None else int(number)

    async def incident_by_key(self, session: AsyncSession, key: str) -> Incident | None:
        stmt = select(Incident).where(col(Incident.declare_key) == key)
        return (await session.execute(stmt)).scalar_one_or_none()

    async def declared_under(self, prefix: str) -> list[Incident]:
        """Incidents whose declaration key starts with `prefix` (an alert group's), newest
        first."""
        async with self.sessions() as session:
            stmt = (
                select(Incident)
                .where(col(Incident.declare_key).startswith(prefix, autoescape=True))
                .order_by(col(Incident.id).desc())
            )
            return list((await session.execute(stmt)).scalars())

    async def locked(self, session: AsyncSession, incident_id: int) -> Incident:
        """The incident row, locked for this transaction (PostgreSQL; SQLite locks at BEGIN)."""
        stmt = select(Incident).where(col(Incident.id) == incident_id).with_for_update()
        return (await session.execute(stmt)).scalar_one()

    @asynccontextmanager
    async def publicly(self, incident_id: int) -> AsyncIterator[PublicSide]:
        """The incident as it is now, with its public side held: whatever is posted outside
        its channel inside this block is decided by the `private` it yields, and a privacy
        change (made inside this block too) waits until that post went out and was saved.
        Across processes on PostgreSQL by a transaction-scoped advisory lock, which leaves
        the incident's row free for other changes while Slack answers."""
        if self.dialect == "postgresql":
            async with self.session() as session:
                key = {"space": PUBLIC_LOCKS, "key": incident_id}
                taken = await session.execute(
                    text("SELECT pg_try_advisory_xact_lock(:space, :key)"), key
                )
                if not taken.scalar_one():
                    give_back()  # waits behind another post: the slot goes to the next one
                    await session.execute(text("SELECT pg_advisory_xact_lock(:space, :key)"), key)
                found = await session.get(Incident, incident_id)
                if found is None:
                    raise LookupError(f"no incident {incident_id}")

                async def save_here(**values: Any) -> None:
                    # On the connection already held: a second one could wait on a pool
                    # that holders of this lock have taken.
                    await session.execute(
                        update(Incident).where(col(Incident.id) == incident_id).values(**values)
                    )

                yield PublicSide(found, save_here)
            return
        async with self._public_locks.hold(incident_id):
            incident = await self.incident(incident_id)
            if incident is None:
                raise LookupError(f"no incident {incident_id}")

            async def save(**values: Any) -> None:
                await self.save_fields(incident_id, **values)

            yield PublicSide(incident, save)

    async def incident(self, incident_id: int) -> Incident | None:
        async with self.sessions() as session:
            return await session.get(Incident, incident_id)

    async def incident_by_channel(self, channel_id: str) -> Incident | None:
        async with self.sessions() as session:
            stmt = select(Incident).where(col(Incident.channel_id) == channel_id)
            return (await session.execute(stmt)).scalar_one_or_none()

    async def incident_by_announcement(self, ts: str) -> Incident | None:
        async with self.sessions() as session:
            stmt = select(Incident).where(col(Incident.announcement_ts) == ts)
            return (await session.execute(stmt)).scalars().first()

    async def incident_by_number(self, team_id: str | None, number: int) -> Incident | None:
        async with self.sessions() as session:
            stmt = select(Incident).where(col(Incident.number) == number)
            if team_id is not None:
                stmt = stmt.where(col(Incident.team_id) == team_id)
            return (await session.execute(stmt)).scalars().first()

    async def open_incidents(self, team_id: str) -> Sequence[Incident]:
        async with self.sessions() as session:
            stmt = (
                select(Incident)
                .where(col(Incident.team_id) == team_id)
                .where(col(Incident.status) != Status.resolved.value)
                .order_by(col(Incident.number).desc())
            )
            return (await session.execute(stmt)).scalars().all()

    async def all_open(self) -> Sequence[Incident]:
        async with self.sessions() as session:
            stmt = select(Incident).where(col(Incident.status) != Status.resolved.value)
            return (await session.execute(stmt)).scalars().all()

    async def cards_after(self, incident_id: int, limit: int) -> Sequence[Incident]:
        """Open incidents whose card is stored as pinned in a usable channel, after
        `incident_id` in id order: the next few whose pins the repair pass looks at. One
        still being set up is left to its provisioning, which pins it."""
        async with self.sessions() as session:
            stmt = (
                select(Incident)
                .where(col(Incident.id) > incident_id)
                .where(col(Incident.status) != Status.resolved.value)
                .where(col(Incident.provisioned))
                .where(col(Incident.card_pinned))
                .where(col(Incident.card_ts).is_not(None))
                .where(col(Incident.channel_state) == ChannelState.ok.value)
                .order_by(col(Incident.id))
                .limit(limit)
            )
            return (await session.execute(stmt)).scalars().all()

    async def unprovisioned(self, now: datetime) -> Sequence[Incident]:
        """Declarations nobody is completing: not provisioned, and no process holds the
        lease (one that does is at work on it)."""
        async with self.sessions() as session:
            stmt = (
                select(Incident)
                .where(col(Incident.provisioned) == false())
                .where(
                    col(Incident.provision_lease_until).is_(None)
                    | (col(Incident.provision_lease_until) < now)
                )
            )
            return (await session.execute(stmt)).scalars().all()

    async def mark_shown(self, incident_id: int, version: int) -> None:
        """Slack shows `version` (or a later one): nothing left to catch up or report."""
        async with self.session() as session:
            await session.execute(
                update(Incident)
                .where(col(Incident.id) == incident_id)
                .where(col(Incident.shown_version) < version)
                .values(
                    shown_version=version,
                    slack_problem=None,
                    problem_reported=None,
                    render_retry_at=None,
                )
            )

    async def behind(self, now: datetime) -> Sequence[Incident]:
        """Incidents whose Slack surfaces show an older state, due for another try."""
        async with self.sessions() as session:
            stmt = (
                select(Incident)
                .where(col(Incident.provisioned) == true())
                .where(col(Incident.shown_version) < col(Incident.version))
                .where(
                    col(Incident.render_retry_at).is_(None) | (col(Incident.render_retry_at) <= now)
                )
                .order_by(col(Incident.id))
            )
            return (await session.execute(stmt)).scalars().all()

    async def save_fields(self, incident_id: int, **values: Any) -> None:
        """Record a Slack step's result at once, so a retry resumes after it."""
        async with self.session() as session:
            await session.execute(
                update(Incident).where(col(Incident.id) == incident_id).values(**values)
            )

    async def resolved_between(self, start: datetime, end: datetime) -> Sequence[Incident]:
        async with self.sessions() as session:
            stmt = (
                select(Incident)
                .where(col(Incident.status) == Status.resolved.value)
                .where(col(Incident.resolved_at) >= start)
                .where(col(Incident.resolved_at) <= end)
                .order_by(col(Incident.resolved_at))
            )
            return (await session.execute(stmt)).scalars().all()

    async def recently_resolved(self, team_id: str, limit: int) -> Sequence[Incident]:
        async with self.sessions() as session:
            stmt = (
                select(Incident)
                .where(col(Incident.team_id) == team_id)
                .where(col(Incident.status) == Status.resolved.value)
                .order_by(col(Incident.resolved_at).desc())
                .limit(limit)
            )
            return (await session.execute(stmt)).scalars().all()
