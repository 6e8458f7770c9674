"""The Store: every query the bot runs, one module per area (cross-process claims are in
claims.py, the outbox's rows in effects.py), put together in one object."""

from __future__ import annotations

from bot.outbound.store.figures import FigureQueries
from bot.outbound.store.followups import FollowUpQueries
from bot.outbound.store.home import HomeQueries
from bot.outbound.store.incidents import PUBLIC_LOCKS, IncidentQueries, PublicSide
from bot.outbound.store.nudges import NudgeQueries
from bot.outbound.store.postmortems import LatestDraft, PostmortemQueries
from bot.outbound.store.reminders import ReminderQueries
from bot.outbound.store.roles import RoleQueries
from bot.outbound.store.timeline import TimelineQueries
from bot.outbound.store.triage import TriageQueries
from bot.outbound.store.updates import POSTING, UpdateQueries

__all__ = ["POSTING", "PUBLIC_LOCKS", "LatestDraft", "PublicSide", "Store"]


class Store(
    IncidentQueries,
    ReminderQueries,
    FigureQueries,
    NudgeQueries,
    FollowUpQueries,
    HomeQueries,
    TriageQueries,
    UpdateQueries,
    PostmortemQueries,
    RoleQueries,
    TimelineQueries,
):
    """The database: sessions (see StoreBase for their one convention) plus the queries
    operations share, area by area."""
