"""The App Home's viewers."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlmodel import col

from bot.model.tables import (
    HomeViewer,
)
from bot.outbound.store.base import StoreBase


class HomeQueries(StoreBase):
    async def home_opened(self, user_id: str, team_id: str, now: datetime) -> None:
        async with self.session() as session:
            viewer = await session.get(HomeViewer, user_id)
            if viewer is None:
                session.add(HomeViewer(user_id=user_id, team_id=team_id, opened_at=now))
            else:
                viewer.opened_at = now

    async def home_viewers(self, since: datetime) -> list[str]:
        async with self.sessions() as session:
            rows = await session.execute(
                select(col(HomeViewer.user_id)).where(col(HomeViewer.opened_at) >= since)
            )
            return sorted(u for (u,) in rows)
