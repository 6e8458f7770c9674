"""What Slack shows, tracked against the stored state: a version bumped by every change and
the version last shown; the channel's state; a problem Slack will not let the bot fix, as
last reported, and when to look again.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlmodel.sql.sqltypes import AutoString

from bot.model.tables import UTCDateTime

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("incident") as batch:
        batch.add_column(sa.Column("version", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(
            sa.Column("shown_version", sa.Integer(), nullable=False, server_default="0")
        )
        batch.add_column(
            sa.Column("channel_state", AutoString(length=20), nullable=False, server_default="ok")
        )
        batch.add_column(sa.Column("slack_problem", AutoString(length=255), nullable=True))
        batch.add_column(sa.Column("problem_reported", AutoString(length=255), nullable=True))
        batch.add_column(sa.Column("render_retry_at", UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("incident") as batch:
        for column in (
            "render_retry_at",
            "problem_reported",
            "slack_problem",
            "channel_state",
            "shown_version",
            "version",
        ):
            batch.drop_column(column)
