"""What the figures and the lifecycle need: drills; when someone other than the declarer
first responded and when the incident was first mitigated; when each update was due; done
follow-ups; nudges sent (each once); who looks at the App Home.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlmodel.sql.sqltypes import AutoString

from bot.model.tables import UTCDateTime

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("incident") as batch:
        batch.add_column(sa.Column("drill", sa.Boolean(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("responded_at", UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("responded_by", AutoString(length=32), nullable=True))
        batch.add_column(sa.Column("mitigated_at", UTCDateTime(), nullable=True))
    with op.batch_alter_table("status_update") as batch:
        batch.add_column(sa.Column("due_at", UTCDateTime(), nullable=True))
    with op.batch_alter_table("follow_up") as batch:
        batch.add_column(sa.Column("done_at", UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("done_by", AutoString(length=32), nullable=True))
    op.create_table(
        "nudge",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("incident_id", sa.Integer(), sa.ForeignKey("incident.id"), nullable=False),
        sa.Column("kind", AutoString(length=30), nullable=False),
        sa.Column("sent_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("incident_id", "kind", name="uq_nudge_incident_kind"),
    )
    op.create_table(
        "home_viewer",
        sa.Column("user_id", AutoString(length=32), primary_key=True),
        sa.Column("team_id", AutoString(length=32), nullable=False),
        sa.Column("opened_at", UTCDateTime(), nullable=False),
    )
    # Incidents from before: mitigated at their first "monitoring" update, responded at the
    # first timeline entry by someone other than the declarer.
    op.execute(
        "UPDATE incident SET mitigated_at = (SELECT MIN(u.posted_at) FROM status_update u "
        "WHERE u.incident_id = incident.id AND u.status = 'monitoring')"
    )
    op.execute(
        "UPDATE incident SET responded_at = (SELECT MIN(t.happened_at) FROM timeline_entry t "
        "WHERE t.incident_id = incident.id AND t.actor IS NOT NULL "
        "AND t.actor <> incident.declared_by AND t.happened_at >= incident.declared_at)"
    )


def downgrade() -> None:
    op.drop_table("home_viewer")
    op.drop_table("nudge")
    with op.batch_alter_table("follow_up") as batch:
        batch.drop_column("done_by")
        batch.drop_column("done_at")
    with op.batch_alter_table("status_update") as batch:
        batch.drop_column("due_at")
    with op.batch_alter_table("incident") as batch:
        for column in ("mitigated_at", "responded_by", "responded_at", "drill"):
            batch.drop_column(column)
