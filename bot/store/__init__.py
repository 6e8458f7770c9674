"""The database, the truth the bot's Slack surfaces are rendered from.

tables.py (the records), engine.py (SQLite or PostgreSQL, migrations), queries.py (the Store:
every query), claims.py (which process does a piece of Slack work).
"""

from bot.store.claims import Claims, posting_mark, update_claim_expired
from bot.store.engine import async_url, make_engine
from bot.store.queries import POSTING, Store
from bot.store.tables import (
    AlertTriage,
    ChannelState,
    FollowUp,
    HomeViewer,
    Incident,
    IncidentCounter,
    Nudge,
    Postmortem,
    RoleAssignment,
    Status,
    StatusUpdate,
    TimelineEntry,
    UTCDateTime,
    utcnow,
)

__all__ = [
    "POSTING",
    "AlertTriage",
    "ChannelState",
    "Claims",
    "FollowUp",
    "HomeViewer",
    "Incident",
    "IncidentCounter",
    "Nudge",
    "Postmortem",
    "RoleAssignment",
    "Status",
    "StatusUpdate",
    "Store",
    "TimelineEntry",
    "UTCDateTime",
    "async_url",
    "make_engine",
    "posting_mark",
    "update_claim_expired",
    "utcnow",
]
