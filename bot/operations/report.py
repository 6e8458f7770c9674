"""The incident report from the live database (`/incident stats`)."""

from __future__ import annotations

from datetime import datetime

from bot.model.report import Report, build
from bot.operations.deps import Deps, Operation


class Reports(Operation):
    """Reports from the live database (`/incident stats`)."""

    def __init__(self, deps: Deps):
        super().__init__(deps)

    async def build(self, since: datetime) -> Report:
        now = self.clock()
        return build(await self.store.history(since), self.settings, since=since, now=now)
