"""Sessions and the database itself."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.base.work import KeyedLocks
from bot.outbound.store.engine import DEFAULT_TIMEOUT, Probe, make_engine, migrate


class StoreBase:
    """The database: its engine and sessions.

    Sessions, one convention: a query whose first argument is a `session` works inside the
    caller's transaction and never commits it; every other query opens a short session of
    its own and commits it (writes) or closes it (reads) before it returns.
    """

    def __init__(self, url: str, *, timeout: float = DEFAULT_TIMEOUT):
        self.url = url
        self.timeout = timeout
        self.engine = make_engine(url, timeout=timeout)
        # The bot's own user (known once connected): its actions are not responses.
        self.not_people: set[str] = set()
        self.sessions = async_sessionmaker(
            self.engine,
            expire_on_commit=False,
        )
        self.probe = Probe(url)
        # SQLite serves one process: whose public posts wait for a privacy change is
        # settled here. PostgreSQL serves several: an advisory lock settles it there.
        self._public_locks = KeyedLocks()

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    async def migrate(self) -> None:
        await migrate(self.engine, connect_within=self.timeout)

    async def close(self) -> None:
        await self.probe.close()
        await self.engine.dispose()

    async def ping(self, within: float) -> bool:
        """Whether the database answers, known within `within` seconds in every state."""
        return await self.probe.answers(within)

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A transaction: committed when the block ends, rolled back on error."""
        async with self.sessions() as session, session.begin():
            yield session
