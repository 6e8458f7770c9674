"""Nudges: each kind recorded once per incident."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlmodel import col

from bot.model.tables import (
    Nudge,
)
from bot.outbound.store.base import StoreBase


class NudgeQueries(StoreBase):
    async def claim_nudge(self, incident_id: int, kind: str, now: datetime) -> bool:
        """Record that this nudge goes out; False when it went out already (any process)."""
        try:
            async with self.session() as session:
                session.add(Nudge(incident_id=incident_id, kind=kind, sent_at=now))
        except IntegrityError:
            return False
        return True

    async def nudged(self, kinds: Sequence[str]) -> set[tuple[int, str]]:
        async with self.sessions() as session:
            rows = await session.execute(
                select(col(Nudge.incident_id), col(Nudge.kind)).where(col(Nudge.kind).in_(kinds))
            )
            return {(i, k) for i, k in rows}

    async def forget_nudge(self, incident_id: int, kind: str) -> None:
        """A nudge Slack did not take for a passing reason: the next pass tries again."""
        async with self.session() as session:
            await session.execute(
                delete(Nudge)
                .where(col(Nudge.incident_id) == incident_id)
                .where(col(Nudge.kind) == kind)
            )
