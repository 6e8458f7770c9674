"""Roles: who holds which, now and before."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from bot.model.tables import (
    RoleAssignment,
)
from bot.outbound.store.base import StoreBase


class RoleQueries(StoreBase):
    async def roles(self, incident_id: int) -> dict[str, str]:
        """Current holder per role."""
        async with self.sessions() as session:
            stmt = (
                select(RoleAssignment)
                .where(col(RoleAssignment.incident_id) == incident_id)
                .where(col(RoleAssignment.ended_at).is_(None))
            )
            rows = (await session.execute(stmt)).scalars().all()
            return {r.role: r.user_id for r in rows}

    async def roles_of(self, incident_ids: Iterable[int]) -> dict[int, dict[str, str]]:
        """Current holder per role, for many incidents in one query."""
        held: dict[int, dict[str, str]] = {}
        async with self.sessions() as session:
            stmt = (
                select(RoleAssignment)
                .where(col(RoleAssignment.incident_id).in_(sorted(set(incident_ids))))
                .where(col(RoleAssignment.ended_at).is_(None))
            )
            for r in (await session.execute(stmt)).scalars():
                held.setdefault(r.incident_id, {})[r.role] = r.user_id
        return held

    async def current_holder(
        self, session: AsyncSession, incident_id: int, role: str
    ) -> RoleAssignment | None:
        stmt = (
            select(RoleAssignment)
            .where(col(RoleAssignment.incident_id) == incident_id)
            .where(col(RoleAssignment.role) == role)
            .where(col(RoleAssignment.ended_at).is_(None))
        )
        return (await session.execute(stmt)).scalars().first()
