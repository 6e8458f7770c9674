"""The outbox: effects outside the bot, recorded with the change that causes them and
delivered by a worker, once across processes.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlmodel.sql.sqltypes import AutoString

from bot.model.tables import UTCDateTime

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "effect",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("key", AutoString(length=200), nullable=False),
        sa.Column("kind", AutoString(length=40), nullable=False),
        sa.Column("lane", AutoString(length=300), nullable=False),
        sa.Column("incident_id", sa.Integer(), sa.ForeignKey("incident.id"), nullable=True),
        sa.Column("requested_by", AutoString(length=32), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("state", AutoString(length=10), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("next_attempt_at", UTCDateTime(), nullable=False),
        sa.Column("lease_until", UTCDateTime(), nullable=True),
        sa.Column("claimed_by", AutoString(length=64), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("done_at", UTCDateTime(), nullable=True),
        sa.Column("reported", sa.Boolean(), nullable=False),
        sa.UniqueConstraint("key", name="uq_effect_key"),
    )
    op.create_index("ix_effect_due", "effect", ["state", "next_attempt_at"])
    op.create_index("ix_effect_lane", "effect", ["lane", "state", "id"])
    op.create_index("ix_effect_incident_id", "effect", ["incident_id"])


def downgrade() -> None:
    op.drop_table("effect")
