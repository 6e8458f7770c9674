"""Alerts waiting for a person (triage)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col

from bot.model.tables import (
    AlertTriage,
)
from bot.outbound.store.base import StoreBase


class TriageQueries(StoreBase):
    async def add_triage(self, triage: AlertTriage) -> AlertTriage | None:
        """Store a group waiting for a person; None when that group waits already."""
        try:
            async with self.session() as session:
                session.add(triage)
        except IntegrityError:
            return None
        return triage

    async def triage(self, triage_id: int) -> AlertTriage | None:
        async with self.sessions() as session:
            return await session.get(AlertTriage, triage_id)

    async def triage_for(self, group_key: str) -> AlertTriage | None:
        async with self.sessions() as session:
            stmt = select(AlertTriage).where(col(AlertTriage.group_key) == group_key)
            return (await session.execute(stmt)).scalar_one_or_none()

    async def decide_triage(self, triage_id: int, state: str, user: str) -> bool:
        """Move a pending triage to `state` by `user`; False when someone decided first."""
        async with self.session() as session:
            result = await session.execute(
                update(AlertTriage)
                .where(col(AlertTriage.id) == triage_id)
                .where(col(AlertTriage.state) == "pending")
                .values(state=state, decided_by=user)
            )
        return bool(getattr(result, "rowcount", 0))

    async def save_triage(self, triage_id: int, **values: Any) -> None:
        async with self.session() as session:
            await session.execute(
                update(AlertTriage).where(col(AlertTriage.id) == triage_id).values(**values)
            )
