"""Status updates, follow-ups and postmortem drafts.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlmodel.sql.sqltypes import AutoString

from bot.model.tables import UTCDateTime

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

S = AutoString


def upgrade() -> None:
    op.create_table(
        "status_update",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("incident_id", sa.Integer(), sa.ForeignKey("incident.id"), nullable=False),
        sa.Column("status", S(length=20), nullable=False),
        sa.Column("summary", S(length=3000), nullable=False),
        sa.Column("posted_by", S(length=32), nullable=False),
        sa.Column("posted_at", UTCDateTime(), nullable=False),
        sa.Column("message_ts", S(length=32), nullable=True),
        sa.Column("source_key", S(length=255), nullable=False),
        sa.UniqueConstraint("incident_id", "source_key", name="uq_status_update_source"),
    )
    op.create_index("ix_status_update_incident_time", "status_update", ["incident_id", "posted_at"])
    op.create_table(
        "follow_up",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("incident_id", sa.Integer(), sa.ForeignKey("incident.id"), nullable=False),
        sa.Column("text", S(length=3000), nullable=False),
        sa.Column("owner", S(length=32), nullable=True),
        sa.Column("created_by", S(length=32), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("source_key", S(length=255), nullable=False),
        sa.UniqueConstraint("incident_id", "source_key", name="uq_follow_up_source"),
    )
    op.create_index("ix_follow_up_incident_id", "follow_up", ["incident_id"])
    op.create_table(
        "postmortem",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("incident_id", sa.Integer(), sa.ForeignKey("incident.id"), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("markdown", sa.Text(), nullable=False),
        sa.Column("created_by", S(length=32), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("file_id", S(length=32), nullable=True),
        sa.UniqueConstraint("incident_id", "version", name="uq_postmortem_version"),
    )
    op.create_index("ix_postmortem_incident_id", "postmortem", ["incident_id"])


def downgrade() -> None:
    op.drop_table("postmortem")
    op.drop_table("follow_up")
    op.drop_table("status_update")
