"""Reminders: due times, and claims a dead process left behind."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from bot.model.tables import (
    Incident,
    Status,
)
from bot.outbound.store.base import StoreBase


class ReminderQueries(StoreBase):
    async def reminder_due_times(self) -> list[tuple[int, datetime | None, str]]:
        """(id, next update due, channel state) of each open incident with a reminder:
        three columns, not whole incidents, since the sync reads them all."""
        async with self.sessions() as session:
            stmt = (
                select(col(Incident.id), col(Incident.next_update_due), col(Incident.channel_state))
                .where(col(Incident.status) != Status.resolved.value)
                .where(col(Incident.next_update_due).is_not(None))
            )
            return [(int(i or 0), due, state) for i, due, state in await session.execute(stmt)]

    async def stuck_reminders(self, older_than: datetime) -> Sequence[Incident]:
        async with self.sessions() as session:
            stmt = select(Incident).where(col(Incident.reminder_sending_since) < older_than)
            return (await session.execute(stmt)).scalars().all()

    async def release_reminders(
        self, incident_ids: Sequence[int], *, session: AsyncSession | None = None
    ) -> None:
        """The reminders of these incidents are sent (or cannot be): nobody holds them."""
        stmt = (
            update(Incident)
            .where(col(Incident.id).in_(sorted(incident_ids)))
            .values(reminder_sending_since=None)
        )
        if session is not None:
            await session.execute(stmt)
            return
        async with self.session() as s:
            await s.execute(stmt)
