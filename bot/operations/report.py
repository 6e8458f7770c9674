"""The incident report from the live database (`/incident stats`)."""

from __future__ import annotations

from datetime import datetime

from bot.base.clock import Clock, utcnow
from bot.base.settings import Settings
from bot.model.report import Report, build
from bot.outbound.store import Store


class Reports:
    """Reports from the live database (`/incident stats`)."""

    def __init__(self, settings: Settings, store: Store, *, clock: Clock = utcnow):
        self.settings = settings
        self.store = store
        self.clock = clock

    async def build(self, since: datetime) -> Report:
        now = self.clock()
        return build(await self.store.history(since), self.settings, since=since, now=now)
