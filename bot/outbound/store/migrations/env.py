"""Alembic environment: the bot runs migrations on its own connection at start-up."""

from alembic import context
from sqlmodel import SQLModel

import bot.model.tables  # noqa: F401  (registers the tables on SQLModel.metadata)

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("migrations run through bot.outbound.store.Store.migrate()")

context.configure(
    connection=connection,
    target_metadata=SQLModel.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
