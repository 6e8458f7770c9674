"""Follow-ups."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from bot.model.tables import (
    FollowUp,
    Incident,
)
from bot.outbound.store.base import StoreBase


class FollowUpQueries(StoreBase):
    async def open_follow_ups(self, team_id: str) -> list[tuple[FollowUp, Incident]]:
        async with self.sessions() as session:
            rows = await session.execute(
                select(FollowUp, Incident)
                .join(Incident, col(Incident.id) == col(FollowUp.incident_id))
                .where(col(Incident.team_id) == team_id)
                .where(col(FollowUp.done_at).is_(None))
                .order_by(col(FollowUp.created_at), col(FollowUp.id))
            )
            return [(f, i) for f, i in rows]

    async def unowned_follow_ups(self, incident_ids: Sequence[int]) -> dict[int, list[FollowUp]]:
        """Open follow-ups nobody owns, by incident."""
        found: dict[int, list[FollowUp]] = {}
        if not incident_ids:
            return found
        async with self.sessions() as session:
            rows = await session.execute(
                select(FollowUp)
                .where(col(FollowUp.incident_id).in_(sorted(incident_ids)))
                .where(col(FollowUp.owner).is_(None))
                .where(col(FollowUp.done_at).is_(None))
                .order_by(col(FollowUp.created_at), col(FollowUp.id))
            )
            for f in rows.scalars():
                found.setdefault(f.incident_id, []).append(f)
        return found

    async def follow_up(self, follow_up_id: int) -> FollowUp | None:
        async with self.sessions() as session:
            return await session.get(FollowUp, follow_up_id)

    async def change_follow_up(self, follow_up_id: int, **values: Any) -> bool:
        """Set an owner or mark done, unless that is the state already; True if changed."""
        async with self.session() as session:
            stmt = update(FollowUp).where(col(FollowUp.id) == follow_up_id)
            if "owner" in values:
                stmt = stmt.where(
                    col(FollowUp.owner).is_(None) | (col(FollowUp.owner) != values["owner"])
                )
            if "done_at" in values:
                stmt = stmt.where(col(FollowUp.done_at).is_(None))
            result = await session.execute(stmt.values(**values))
            return bool(getattr(result, "rowcount", 0))

    async def follow_up_by_key(
        self, session: AsyncSession, incident_id: int, key: str
    ) -> FollowUp | None:
        stmt = (
            select(FollowUp)
            .where(col(FollowUp.incident_id) == incident_id)
            .where(col(FollowUp.source_key) == key)
        )
        return (await session.execute(stmt)).scalar_one_or_none()
