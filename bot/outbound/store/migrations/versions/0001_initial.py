"""Incidents, role assignments, timeline entries and per-workspace numbering.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlmodel.sql.sqltypes import AutoString

from bot.model.tables import UTCDateTime

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

S = AutoString


def upgrade() -> None:
    op.create_table(
        "incident",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("team_id", S(length=32), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("title", S(length=255), nullable=False),
        sa.Column("description", S(length=3000), nullable=False),
        sa.Column("severity", S(length=20), nullable=False),
        sa.Column("status", S(length=20), nullable=False),
        sa.Column("private", sa.Boolean(), nullable=False),
        sa.Column("declared_by", S(length=32), nullable=False),
        sa.Column("declared_at", UTCDateTime(), nullable=False),
        sa.Column("declare_key", S(length=255), nullable=False),
        sa.Column("origin_channel_id", S(length=32), nullable=True),
        sa.Column("channel_id", S(length=32), nullable=True),
        sa.Column("channel_name", S(length=80), nullable=True),
        sa.Column("card_ts", S(length=32), nullable=True),
        sa.Column("card_pinned", sa.Boolean(), nullable=False),
        sa.Column("announcement_ts", S(length=32), nullable=True),
        sa.Column("provisioned", sa.Boolean(), nullable=False),
        sa.Column("last_update_at", UTCDateTime(), nullable=True),
        sa.Column("next_update_due", UTCDateTime(), nullable=True),
        sa.Column("resolved_at", UTCDateTime(), nullable=True),
        sa.UniqueConstraint("team_id", "number", name="uq_incident_team_number"),
    )
    op.create_index("ix_incident_declare_key", "incident", ["declare_key"], unique=True)
    op.create_index("ix_incident_channel_id", "incident", ["channel_id"])

    op.create_table(
        "role_assignment",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("incident_id", sa.Integer(), sa.ForeignKey("incident.id"), nullable=False),
        sa.Column("role", S(length=30), nullable=False),
        sa.Column("user_id", S(length=32), nullable=False),
        sa.Column("assigned_by", S(length=32), nullable=False),
        sa.Column("assigned_at", UTCDateTime(), nullable=False),
        sa.Column("ended_at", UTCDateTime(), nullable=True),
    )
    op.create_index(
        "ix_role_assignment_current", "role_assignment", ["incident_id", "role", "ended_at"]
    )

    op.create_table(
        "timeline_entry",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("incident_id", sa.Integer(), sa.ForeignKey("incident.id"), nullable=False),
        sa.Column("kind", S(length=30), nullable=False),
        sa.Column("happened_at", UTCDateTime(), nullable=False),
        sa.Column("recorded_at", UTCDateTime(), nullable=False),
        sa.Column("actor", S(length=32), nullable=True),
        sa.Column("text", S(length=40000), nullable=False),
        sa.Column("source_key", S(length=255), nullable=True),
        sa.Column("data", sa.JSON(), nullable=True),
        sa.UniqueConstraint("incident_id", "source_key", name="uq_timeline_source"),
    )
    op.create_index("ix_timeline_incident_time", "timeline_entry", ["incident_id", "happened_at"])

    op.create_table(
        "incident_counter",
        sa.Column("team_id", S(length=32), primary_key=True),
        sa.Column("last_number", sa.Integer(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("incident_counter")
    op.drop_table("timeline_entry")
    op.drop_table("role_assignment")
    op.drop_table("incident")
