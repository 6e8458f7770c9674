"""When a process started sending a claimed reminder, so a crash mid-send is repaired.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from bot.model.tables import UTCDateTime

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("incident") as batch:
        batch.add_column(sa.Column("reminder_sending_since", UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("incident") as batch:
        batch.drop_column("reminder_sending_since")
