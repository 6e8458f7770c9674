"""Postmortem drafts, every version kept."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from bot.model.tables import (
    Postmortem,
)
from bot.outbound.store.base import StoreBase


class LatestDraft(NamedTuple):
    pk: int
    version: int
    file_id: str | None
    # Its Markdown is the one it was compared with.
    same: bool


class PostmortemQueries(StoreBase):
    async def latest_postmortem(self, incident_id: int) -> Postmortem | None:
        async with self.sessions() as session:
            stmt = (
                select(Postmortem)
                .where(col(Postmortem.incident_id) == incident_id)
                .order_by(col(Postmortem.version).desc())
            )
            return (await session.execute(stmt)).scalars().first()

    async def latest_draft(self, incident_id: int, markdown: str) -> LatestDraft | None:
        """The latest version of an incident's draft, and whether its Markdown is
        `markdown`: the database compares them, so a long draft is not read back."""
        async with self.sessions() as session:
            stmt = (
                select(
                    col(Postmortem.id),
                    col(Postmortem.version),
                    col(Postmortem.file_id),
                    (col(Postmortem.markdown) == markdown).label("same"),
                )
                .where(col(Postmortem.incident_id) == incident_id)
                .order_by(col(Postmortem.version).desc())
                .limit(1)
            )
            row = (await session.execute(stmt)).first()
        if row is None:
            return None
        pk, version, file_id, same = row
        assert pk is not None
        return LatestDraft(pk, version, file_id, bool(same))

    async def save_postmortem(self, session: AsyncSession, draft: Postmortem) -> Postmortem:
        session.add(draft)
        await session.flush()
        return draft

    async def set_postmortem_file(self, postmortem_id: int, file_id: str | None) -> None:
        async with self.session() as session:
            await session.execute(
                update(Postmortem)
                .where(col(Postmortem.id) == postmortem_id)
                .values(file_id=file_id)
            )

    async def postmortem_ids(self, incident_ids: Sequence[int]) -> set[int]:
        """Which of these incidents have a postmortem draft."""
        if not incident_ids:
            return set()
        async with self.sessions() as session:
            rows = await session.execute(
                select(col(Postmortem.incident_id))
                .where(col(Postmortem.incident_id).in_(sorted(incident_ids)))
                .distinct()
            )
            return {i for (i,) in rows}
