"""The tables: SQLModel classes, one per kind of record, and aware-UTC datetimes."""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Index, Text, UniqueConstraint
from sqlalchemy.types import TypeDecorator
from sqlmodel import Column, Field, SQLModel


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in and out; SQLite stores them naive, PostgreSQL as timestamptz."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use aware UTC times")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _dt(nullable: bool = False) -> Any:
    return Field(default=None, sa_column=Column(UTCDateTime(), nullable=nullable))


class Status(enum.StrEnum):
    investigating = "investigating"
    identified = "identified"
    monitoring = "monitoring"
    resolved = "resolved"


class ChannelState(enum.StrEnum):
    ok = "ok"
    archived = "archived"
    gone = "gone"


class Incident(SQLModel, table=True):
    __tablename__ = "incident"
    __table_args__ = (UniqueConstraint("team_id", "number", name="uq_incident_team_number"),)

    id: int | None = Field(default=None, primary_key=True)
    team_id: str = Field(max_length=32)
    number: int
    title: str = Field(max_length=255)
    description: str = Field(default="", max_length=3000)
    severity: str = Field(max_length=20)
    status: str = Field(default=Status.investigating.value, max_length=20)
    private: bool = False
    declared_by: str = Field(max_length=32)
    declared_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    # Idempotency: the trigger or view that asked for this declaration.
    declare_key: str = Field(max_length=255, unique=True, index=True)
    origin_channel_id: str | None = Field(default=None, max_length=32)
    channel_id: str | None = Field(default=None, max_length=32, index=True)
    channel_name: str | None = Field(default=None, max_length=80)
    card_ts: str | None = Field(default=None, max_length=32)
    card_pinned: bool = False
    announcement_ts: str | None = Field(default=None, max_length=32)
    # Set once every Slack step of the declaration is done; until then, it is resumed.
    provisioned: bool = False
    # Whoever holds this lease is doing the Slack steps; it expires if that process dies.
    provision_lease_until: datetime | None = _dt(nullable=True)
    # The topic as last set: Slack announces every topic change in the channel, so an
    # unchanged one is not set again.
    topic: str | None = Field(default=None, max_length=250)
    # The alert that opened it: {"source", "title", "url", "runbook", "dashboard",
    # "fired_at"}; None when a person declared it.
    alert: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    # Set while a claimed reminder is being posted; a crash leaves it set for repair.
    reminder_sending_since: datetime | None = _dt(nullable=True)
    last_update_at: datetime | None = _dt(nullable=True)
    next_update_due: datetime | None = _dt(nullable=True)
    resolved_at: datetime | None = _dt(nullable=True)
    # Bumped by every stored change; Slack shows `shown_version` (the card, topic and
    # announcement were last rendered from it), so a lower one is caught up.
    version: int = 0
    shown_version: int = 0
    # ok, archived (reminders stop; changes still work by reference), gone (deleted).
    channel_state: str = Field(default=ChannelState.ok.value, max_length=20)
    # What Slack will not let the bot fix, as last found and as last told to the commander,
    # and when to look again.
    slack_problem: str | None = Field(default=None, max_length=255)
    problem_reported: str | None = Field(default=None, max_length=255)
    render_retry_at: datetime | None = _dt(nullable=True)
    # A drill: labelled everywhere, never announced, left out of metrics and reports.
    drill: bool = False
    # The first response by someone other than the declarer (a message, a click, a
    # command) and the first time the status became monitoring: the figures' milestones.
    responded_at: datetime | None = _dt(nullable=True)
    responded_by: str | None = Field(default=None, max_length=32)
    mitigated_at: datetime | None = _dt(nullable=True)

    @property
    def ref(self) -> str:
        return f"INC-{self.number}"

    @property
    def pk(self) -> int:
        """The id of a stored incident (None only before it is first flushed)."""
        assert self.id is not None
        return self.id

    @property
    def is_open(self) -> bool:
        return self.status != Status.resolved.value

    @property
    def channel_usable(self) -> bool:
        """Whether the bot can post in the incident's channel as far as it knows."""
        return bool(self.channel_id) and self.channel_state == ChannelState.ok.value


class RoleAssignment(SQLModel, table=True):
    """Who holds a role; handovers end one row and start the next."""

    __tablename__ = "role_assignment"
    __table_args__ = (Index("ix_role_assignment_current", "incident_id", "role", "ended_at"),)

    id: int | None = Field(default=None, primary_key=True)
    incident_id: int = Field(foreign_key="incident.id")
    role: str = Field(max_length=30)
    user_id: str = Field(max_length=32)
    assigned_by: str = Field(max_length=32)
    assigned_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    ended_at: datetime | None = _dt(nullable=True)


class TimelineEntry(SQLModel, table=True):
    """Append-only: what happened, when it happened (not when recorded), and who."""

    __tablename__ = "timeline_entry"
    __table_args__ = (
        # A message, event or click added twice keeps one entry.
        UniqueConstraint("incident_id", "source_key", name="uq_timeline_source"),
        Index("ix_timeline_incident_time", "incident_id", "happened_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    incident_id: int = Field(foreign_key="incident.id")
    kind: str = Field(max_length=30)
    happened_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    recorded_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    actor: str | None = Field(default=None, max_length=32)
    text: str = Field(default="", max_length=40000)
    source_key: str | None = Field(default=None, max_length=255)
    # Structured facts by kind, e.g. severity {"from": "SEV3", "to": "SEV1"}.
    data: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))


class StatusUpdate(SQLModel, table=True):
    """A status update as posted: the status it set and the summary people read."""

    __tablename__ = "status_update"
    __table_args__ = (
        UniqueConstraint("incident_id", "source_key", name="uq_status_update_source"),
        Index("ix_status_update_incident_time", "incident_id", "posted_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    incident_id: int = Field(foreign_key="incident.id")
    status: str = Field(max_length=20)
    summary: str = Field(max_length=3000)
    posted_by: str = Field(max_length=32)
    posted_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    message_ts: str | None = Field(default=None, max_length=32)
    # The trigger or view that asked for it, so a retry or double click posts once.
    source_key: str = Field(max_length=255)
    # When it was due as it was posted (None before this was kept): on time if not later.
    due_at: datetime | None = _dt(nullable=True)

    @property
    def on_time(self) -> bool | None:
        return None if self.due_at is None else self.posted_at <= self.due_at

    @property
    def pk(self) -> int:
        assert self.id is not None
        return self.id


class FollowUp(SQLModel, table=True):
    """An action item to do after the incident, with an owner when one was named."""

    __tablename__ = "follow_up"
    __table_args__ = (UniqueConstraint("incident_id", "source_key", name="uq_follow_up_source"),)

    id: int | None = Field(default=None, primary_key=True)
    incident_id: int = Field(foreign_key="incident.id", index=True)
    text: str = Field(max_length=3000)
    owner: str | None = Field(default=None, max_length=32)
    created_by: str = Field(max_length=32)
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    source_key: str = Field(max_length=255)
    done_at: datetime | None = _dt(nullable=True)
    done_by: str | None = Field(default=None, max_length=32)

    @property
    def pk(self) -> int:
        assert self.id is not None
        return self.id


class Postmortem(SQLModel, table=True):
    """Every compiled draft is kept; the highest version is the latest."""

    __tablename__ = "postmortem"
    __table_args__ = (UniqueConstraint("incident_id", "version", name="uq_postmortem_version"),)

    id: int | None = Field(default=None, primary_key=True)
    incident_id: int = Field(foreign_key="incident.id", index=True)
    version: int
    markdown: str = Field(sa_column=Column(Text(), nullable=False))
    created_by: str = Field(max_length=32)
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    file_id: str | None = Field(default=None, max_length=32)

    @property
    def pk(self) -> int:
        assert self.id is not None
        return self.id


class IncidentCounter(SQLModel, table=True):
    """The last incident number per workspace; one locked row keeps numbers sequential."""

    __tablename__ = "incident_counter"

    team_id: str = Field(primary_key=True, max_length=32)
    last_number: int = 0


class AlertTriage(SQLModel, table=True):
    """An alert group posted in the alerts channel, waiting for a person: `state` is
    pending, declared or dismissed. One per group and generation (`group_key`)."""

    __tablename__ = "alert_triage"
    __table_args__ = (UniqueConstraint("group_key", name="uq_alert_triage_group"),)

    id: int | None = Field(default=None, primary_key=True)
    team_id: str = Field(max_length=32)
    group_key: str = Field(max_length=255)
    severity: str = Field(max_length=20)
    title: str = Field(max_length=255)
    description: str = Field(default="", sa_column=Column(Text, nullable=False))
    alert: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    state: str = Field(default="pending", max_length=20)
    message_ts: str | None = Field(default=None, max_length=32)
    decided_by: str | None = Field(default=None, max_length=32)
    incident_id: int | None = Field(default=None, foreign_key="incident.id")
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))

    @property
    def pk(self) -> int:
        assert self.id is not None
        return self.id


class Nudge(SQLModel, table=True):
    """A reminder about the incident's aftermath (postmortem, follow-ups, inactivity,
    archiving), recorded as it is claimed: each kind goes out once per incident."""

    __tablename__ = "nudge"
    __table_args__ = (UniqueConstraint("incident_id", "kind", name="uq_nudge_incident_kind"),)

    id: int | None = Field(default=None, primary_key=True)
    incident_id: int = Field(foreign_key="incident.id")
    kind: str = Field(max_length=30)
    sent_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


class HomeViewer(SQLModel, table=True):
    """Someone who opened the bot's App Home: their Home is refreshed when an incident they
    can see changes."""

    __tablename__ = "home_viewer"

    user_id: str = Field(primary_key=True, max_length=32)
    team_id: str = Field(max_length=32)
    opened_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


class EffectState(enum.StrEnum):
    pending = "pending"
    done = "done"
    failed = "failed"


class Effect(SQLModel, table=True):
    """Something the bot must do outside itself (a webhook delivery, a ticket, a page),
    recorded in the same transaction as the change that causes it, then delivered by the
    outbox's worker: once across processes, retried on passing failures, never twice."""

    __tablename__ = "effect"
    __table_args__ = (
        UniqueConstraint("key", name="uq_effect_key"),
        Index("ix_effect_due", "state", "next_attempt_at"),
        Index("ix_effect_lane", "lane", "state", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    # The idempotency key: one effect per key, sent to the remote where it takes one.
    key: str = Field(max_length=200)
    # Which gateway delivers it.
    kind: str = Field(max_length=40)
    # Effects of one lane are delivered in the order they were recorded (e.g. one
    # incident's events to one webhook URL).
    lane: str = Field(max_length=300)
    incident_id: int | None = Field(default=None, foreign_key="incident.id", index=True)
    # Who caused it: told when it fails for good.
    requested_by: str | None = Field(default=None, max_length=32)
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    state: str = Field(default=EffectState.pending.value, max_length=10)
    attempts: int = 0
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    next_attempt_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    # The claim of the process delivering it; another takes over once it has passed.
    lease_until: datetime | None = _dt(nullable=True)
    claimed_by: str | None = Field(default=None, max_length=64)
    # The remote's reason for the last failure, as it gave it.
    last_error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    # What the remote gave back (an id, a link).
    result: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    done_at: datetime | None = _dt(nullable=True)
    # A failure for good is told to a person once.
    reported: bool = False
