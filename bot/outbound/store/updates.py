"""Status updates."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TypeVar

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from bot.model.tables import (
    FollowUp,
    RoleAssignment,
    StatusUpdate,
)
from bot.outbound.store.base import StoreBase

# message_ts of a status update while some process is posting it: "posting:<epoch>".
POSTING = "posting:"


Row = TypeVar("Row", RoleAssignment, StatusUpdate, FollowUp)


class UpdateQueries(StoreBase):
    async def update_by_key(
        self, session: AsyncSession, incident_id: int, key: str
    ) -> StatusUpdate | None:
        stmt = (
            select(StatusUpdate)
            .where(col(StatusUpdate.incident_id) == incident_id)
            .where(col(StatusUpdate.source_key) == key)
        )
        return (await session.execute(stmt)).scalar_one_or_none()

    async def unposted_updates(self, older_than: datetime) -> Sequence[StatusUpdate]:
        """Updates never posted, or whose posting process has been silent too long."""
        async with self.sessions() as session:
            stmt = (
                select(StatusUpdate)
                .where(
                    col(StatusUpdate.message_ts).is_(None)
                    | col(StatusUpdate.message_ts).startswith(POSTING)
                )
                .where(col(StatusUpdate.posted_at) < older_than)
                .order_by(col(StatusUpdate.id))
            )
            return (await session.execute(stmt)).scalars().all()

    async def save_update_ts(self, update_id: int, ts: str | None) -> None:
        async with self.session() as session:
            await session.execute(
                update(StatusUpdate).where(col(StatusUpdate.id) == update_id).values(message_ts=ts)
            )

    async def latest_update(self, incident_id: int) -> StatusUpdate | None:
        async with self.sessions() as session:
            stmt = (
                select(StatusUpdate)
                .where(col(StatusUpdate.incident_id) == incident_id)
                .order_by(col(StatusUpdate.posted_at).desc(), col(StatusUpdate.id).desc())
            )
            return (await session.execute(stmt)).scalars().first()

    async def all_of(self, session: AsyncSession, table: type[Row], incident_id: int) -> list[Row]:
        stmt = select(table).where(col(table.incident_id) == incident_id).order_by(col(table.id))
        return list((await session.execute(stmt)).scalars().all())
