"""The alert that opened an incident, if one did: its source, title, links and when it fired;
and alert groups waiting in the alerts channel for someone to declare or dismiss them.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlmodel.sql.sqltypes import AutoString

from bot.model.tables import UTCDateTime

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("incident") as batch:
        batch.add_column(sa.Column("alert", sa.JSON(), nullable=True))
    op.create_table(
        "alert_triage",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("team_id", AutoString(length=32), nullable=False),
        sa.Column("group_key", AutoString(length=255), nullable=False),
        sa.Column("severity", AutoString(length=20), nullable=False),
        sa.Column("title", AutoString(length=255), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("alert", sa.JSON(), nullable=True),
        sa.Column("state", AutoString(length=20), nullable=False),
        sa.Column("message_ts", AutoString(length=32), nullable=True),
        sa.Column("decided_by", AutoString(length=32), nullable=True),
        sa.Column("incident_id", sa.Integer(), sa.ForeignKey("incident.id"), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("group_key", name="uq_alert_triage_group"),
    )


def downgrade() -> None:
    op.drop_table("alert_triage")
    with op.batch_alter_table("incident") as batch:
        batch.drop_column("alert")
