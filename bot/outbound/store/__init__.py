"""The database, the truth the bot's Slack surfaces are rendered from.

engine.py (SQLite or PostgreSQL, migrations), queries.py (the Store: every query), claims.py
(which process does a piece of Slack work). The records themselves are bot.model.tables.
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
