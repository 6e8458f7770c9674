"""The database, the truth the bot's Slack surfaces are rendered from.

engine.py (SQLite or PostgreSQL, migrations); the Store (queries.py) put together from one
module of queries per area over base.py (sessions): incidents, reminders, figures, nudges,
followups, home, triage, updates, postmortems, roles, timeline; claims.py (which process
does a piece of Slack work); effects.py (the outbox's rows). The records themselves are
bot.model.tables.
"""

from bot.outbound.store.claims import Claims, posting_mark, update_claim_expired
from bot.outbound.store.engine import async_url, make_engine
from bot.outbound.store.queries import POSTING, Store

__all__ = [
    "POSTING",
    "Claims",
    "Store",
    "async_url",
    "make_engine",
    "posting_mark",
    "update_claim_expired",
]
