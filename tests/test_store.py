"""The schema: Alembic migrations build exactly the tables the models describe."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlmodel import SQLModel

from bot.outbound.store import Store, async_url


async def test_migrations_match_the_models(database_url: str) -> None:
    store = Store(database_url)
    try:
        await store.migrate()
        await store.migrate()  # a second start-up finds nothing to do
        async with store.engine.connect() as conn:
            diff = await conn.run_sync(
                lambda c: compare_metadata(MigrationContext.configure(c), SQLModel.metadata)
            )
        assert diff == []
    finally:
        await store.close()


def test_plain_urls_get_async_drivers() -> None:
    assert async_url("postgresql://u@h/db").drivername == "postgresql+asyncpg"
    assert async_url("postgres://u@h/db").drivername == "postgresql+asyncpg"
    assert async_url("sqlite:///x.db").drivername == "sqlite+aiosqlite"
    assert async_url("postgresql+asyncpg://u@h/db").drivername == "postgresql+asyncpg"
