"""The timeline: entries appended once per source."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from bot.model.tables import (
    TimelineEntry,
)
from bot.outbound.store.base import StoreBase


class TimelineQueries(StoreBase):
    async def add_entry(self, session: AsyncSession, entry: TimelineEntry) -> bool:
        """Append an entry; False when its source was recorded already."""
        if entry.source_key is not None:
            stmt = (
                select(func.count())
                .select_from(TimelineEntry)
                .where(col(TimelineEntry.incident_id) == entry.incident_id)
                .where(col(TimelineEntry.source_key) == entry.source_key)
            )
            if (await session.execute(stmt)).scalar_one():
                return False
        try:
            async with session.begin_nested():
                session.add(entry)
        except IntegrityError:
            return False
        return True

    async def add_entries(self, session: AsyncSession, entries: Sequence[TimelineEntry]) -> None:
        """Append many entries in one statement; those whose source is recorded already are
        left out (the database's unique key decides, so no read comes first)."""
        if not entries:
            return
        insert = pg_insert if self.dialect == "postgresql" else sqlite_insert
        rows = [e.model_dump(exclude={"id"}) for e in entries]
        await session.execute(
            insert(TimelineEntry)
            .values(rows)
            .on_conflict_do_nothing(index_elements=["incident_id", "source_key"])
        )

    async def timeline(self, incident_id: int) -> Sequence[TimelineEntry]:
        async with self.sessions() as session:
            stmt = (
                select(TimelineEntry)
                .where(col(TimelineEntry.incident_id) == incident_id)
                .order_by(col(TimelineEntry.happened_at), col(TimelineEntry.id))
            )
            return (await session.execute(stmt)).scalars().all()
