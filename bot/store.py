"""SQLModel tables, the async engine, and the queries the rest of the bot needs."""

from __future__ import annotations

import asyncio
import enum
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import JSON, DateTime, Index, Text, UniqueConstraint, event, func, select, update
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
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
    # Set while a claimed reminder is being posted; a crash leaves it set for repair.
    reminder_sending_since: datetime | None = _dt(nullable=True)
    last_update_at: datetime | None = _dt(nullable=True)
    next_update_due: datetime | None = _dt(nullable=True)
    resolved_at: datetime | None = _dt(nullable=True)

    @property
    def ref(self) -> str:
        return f"INC-{self.number}"

    @property
    def is_open(self) -> bool:
        return self.status != Status.resolved.value


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


class IncidentCounter(SQLModel, table=True):
    """The last incident number per workspace; one locked row keeps numbers sequential."""

    __tablename__ = "incident_counter"

    team_id: str = Field(primary_key=True, max_length=32)
    last_number: int = 0


def async_url(url: str) -> URL:
    """Pick the async driver for a plain sqlite:/// or postgresql:// URL."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend in ("postgres", "postgresql"):
        return parsed.set(drivername="postgresql+asyncpg")
    if backend == "sqlite":
        return parsed.set(drivername="sqlite+aiosqlite")
    raise ValueError(f"unsupported database {backend!r}: use SQLite or PostgreSQL")


def make_engine(url: str) -> AsyncEngine:
    target = async_url(url)
    if target.get_backend_name() == "sqlite":
        if target.database and target.database != ":memory:":
            Path(target.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(target, connect_args={"timeout": 30})

        # SQLite's default deferred transactions fail with "database is locked" when two
        # writers upgrade their read locks at once; taking the write lock at BEGIN makes
        # them queue instead (SQLAlchemy's documented recipe for pysqlite/aiosqlite).
        @event.listens_for(engine.sync_engine, "connect")
        def _connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @event.listens_for(engine.sync_engine, "begin")
        def _begin(conn: Connection) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    return create_async_engine(target, pool_pre_ping=True, pool_size=10, max_overflow=10)


MIGRATIONS = Path(__file__).parent / "migrations"


def _upgrade(conn: Connection) -> None:
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = conn
    if conn.dialect.name == "postgresql":
        # Several bot processes may start at once; one migrates, the others wait.
        conn.exec_driver_sql("SELECT pg_advisory_xact_lock(727274)")
    command.upgrade(cfg, "head")


class Store:
    """The database: sessions plus the queries operations share."""

    def __init__(self, url: str):
        self.url = url
        self.engine = make_engine(url)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    async def migrate(self) -> None:
        async with self.engine.begin() as conn:
            await conn.run_sync(_upgrade)

    async def close(self) -> None:
        await self.engine.dispose()

    async def ping(self) -> bool:
        try:
            async with self.engine.connect() as conn:
                await conn.exec_driver_sql("SELECT 1")
            return True
        except Exception:
            return False

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A transaction: committed when the block ends, rolled back on error."""
        async with self.sessions() as session, session.begin():
            yield session

    # --- incidents -------------------------------------------------------------

    async def next_number(self, session: AsyncSession, team_id: str) -> int:
        """Reserve the next number; the row lock serialises concurrent declarations."""
        for _ in range(5):
            stmt = (
                update(IncidentCounter)
                .where(IncidentCounter.team_id == team_id)  # type: ignore[arg-type]
                .values(last_number=IncidentCounter.last_number + 1)
                .returning(IncidentCounter.last_number)
            )
            number = (await session.execute(stmt)).scalar_one_or_none()
            if number is not None:
                return int(number)
            try:
                async with session.begin_nested():
                    session.add(IncidentCounter(team_id=team_id, last_number=1))
                return 1
            except IntegrityError:
                # Another process created the row first: increment it instead.
                await asyncio.sleep(0)
        raise RuntimeError("could not reserve an incident number")

    async def incident_by_key(self, session: AsyncSession, key: str) -> Incident | None:
        stmt = select(Incident).where(Incident.declare_key == key)  # type: ignore[arg-type]
        return (await session.execute(stmt)).scalar_one_or_none()

    async def incident(self, incident_id: int) -> Incident | None:
        async with self.sessions() as session:
            return await session.get(Incident, incident_id)

    async def incident_by_channel(self, channel_id: str) -> Incident | None:
        async with self.sessions() as session:
            stmt = select(Incident).where(Incident.channel_id == channel_id)  # type: ignore[arg-type]
            return (await session.execute(stmt)).scalar_one_or_none()

    async def incident_by_number(self, team_id: str | None, number: int) -> Incident | None:
        async with self.sessions() as session:
            stmt = select(Incident).where(Incident.number == number)  # type: ignore[arg-type]
            if team_id is not None:
                stmt = stmt.where(Incident.team_id == team_id)  # type: ignore[arg-type]
            return (await session.execute(stmt)).scalars().first()

    async def open_incidents(self, team_id: str) -> Sequence[Incident]:
        async with self.sessions() as session:
            stmt = (
                select(Incident)
                .where(Incident.team_id == team_id)  # type: ignore[arg-type]
                .where(Incident.status != Status.resolved.value)  # type: ignore[arg-type]
                .order_by(Incident.number.desc())  # type: ignore[attr-defined]
            )
            return (await session.execute(stmt)).scalars().all()

    async def reminder_due_times(self) -> Sequence[Incident]:
        async with self.sessions() as session:
            stmt = (
                select(Incident)
                .where(Incident.status != Status.resolved.value)  # type: ignore[arg-type]
                .where(Incident.next_update_due != None)  # type: ignore[arg-type]  # noqa: E711
            )
            return (await session.execute(stmt)).scalars().all()

    async def unprovisioned(self) -> Sequence[Incident]:
        async with self.sessions() as session:
            stmt = select(Incident).where(Incident.provisioned == False)  # type: ignore[arg-type]  # noqa: E712
            return (await session.execute(stmt)).scalars().all()

    async def lease_provisioning(self, incident_id: int, now: datetime, until: datetime) -> bool:
        """Take (or renew) the right to provision; False while another process holds it."""
        async with self.session() as session:
            result = await session.execute(
                update(Incident)
                .where(Incident.id == incident_id)  # type: ignore[arg-type]
                .where(Incident.provisioned == False)  # type: ignore[arg-type]  # noqa: E712
                .where(
                    (Incident.provision_lease_until == None)  # type: ignore[arg-type]  # noqa: E711
                    | (Incident.provision_lease_until < now)  # type: ignore[arg-type,operator]
                )
                .values(provision_lease_until=until)
            )
            return bool(result.rowcount)  # type: ignore[attr-defined]

    async def renew_provision_lease(
        self, incident_id: int, held: datetime, until: datetime
    ) -> bool:
        """Extend a lease this process holds (compare-and-set on the value it wrote)."""
        async with self.session() as session:
            result = await session.execute(
                update(Incident)
                .where(Incident.id == incident_id)  # type: ignore[arg-type]
                .where(Incident.provision_lease_until == held)  # type: ignore[arg-type]
                .values(provision_lease_until=until)
            )
            return bool(result.rowcount)  # type: ignore[attr-defined]

    async def stuck_reminders(self, older_than: datetime) -> Sequence[Incident]:
        async with self.sessions() as session:
            stmt = select(Incident).where(
                Incident.reminder_sending_since < older_than  # type: ignore[arg-type,operator]
            )
            return (await session.execute(stmt)).scalars().all()

    async def reclaim_reminder(self, incident_id: int, expected: datetime, now: datetime) -> bool:
        async with self.session() as session:
            result = await session.execute(
                update(Incident)
                .where(Incident.id == incident_id)  # type: ignore[arg-type]
                .where(Incident.reminder_sending_since == expected)  # type: ignore[arg-type]
                .values(reminder_sending_since=now)
            )
            return bool(result.rowcount)  # type: ignore[attr-defined]

    async def unposted_updates(self, older_than: datetime) -> Sequence[StatusUpdate]:
        """Updates never posted, or whose posting process has been silent too long."""
        async with self.sessions() as session:
            stmt = (
                select(StatusUpdate)
                .where(
                    (StatusUpdate.message_ts == None)  # type: ignore[arg-type]  # noqa: E711
                    | StatusUpdate.message_ts.startswith(POSTING)  # type: ignore[union-attr]
                )
                .where(StatusUpdate.posted_at < older_than)  # type: ignore[arg-type]
                .order_by(StatusUpdate.id)  # type: ignore[arg-type]
            )
            return (await session.execute(stmt)).scalars().all()

    async def claim_update_post(
        self, update_id: int, now: datetime, expected: str | None = None
    ) -> bool:
        """Mark an update as being posted (compare-and-set on `expected`); True for
        exactly one caller. The mark carries its time so a dead poster's claim expires."""
        async with self.session() as session:
            current = (
                StatusUpdate.message_ts == None  # type: ignore[arg-type]  # noqa: E711
                if expected is None
                else StatusUpdate.message_ts == expected  # type: ignore[arg-type]
            )
            result = await session.execute(
                update(StatusUpdate)
                .where(StatusUpdate.id == update_id)  # type: ignore[arg-type]
                .where(current)
                .values(message_ts=posting_mark(now))
            )
            return bool(result.rowcount)  # type: ignore[attr-defined]

    async def save_fields(self, incident_id: int, **values: Any) -> None:
        """Record a Slack step's result at once, so a retry resumes after it."""
        async with self.session() as session:
            await session.execute(
                update(Incident).where(Incident.id == incident_id).values(**values)  # type: ignore[arg-type]
            )

    async def save_update_ts(self, update_id: int, ts: str | None) -> None:
        async with self.session() as session:
            await session.execute(
                update(StatusUpdate).where(StatusUpdate.id == update_id).values(message_ts=ts)  # type: ignore[arg-type]
            )

    async def latest_update(self, incident_id: int) -> StatusUpdate | None:
        async with self.sessions() as session:
            stmt = (
                select(StatusUpdate)
                .where(StatusUpdate.incident_id == incident_id)  # type: ignore[arg-type]
                .order_by(StatusUpdate.posted_at.desc(), StatusUpdate.id.desc())  # type: ignore[attr-defined]
            )
            return (await session.execute(stmt)).scalars().first()

    async def all_of(self, session: AsyncSession, table: Any, incident_id: int) -> list[Any]:
        stmt = select(table).where(table.incident_id == incident_id).order_by(table.id)
        return list((await session.execute(stmt)).scalars().all())

    async def latest_postmortem(self, incident_id: int) -> Postmortem | None:
        async with self.sessions() as session:
            stmt = (
                select(Postmortem)
                .where(Postmortem.incident_id == incident_id)  # type: ignore[arg-type]
                .order_by(Postmortem.version.desc())  # type: ignore[attr-defined]
            )
            return (await session.execute(stmt)).scalars().first()

    async def save_postmortem(self, draft: Postmortem) -> Postmortem:
        async with self.session() as session:
            session.add(draft)
        return draft

    async def set_postmortem_file(self, postmortem_id: int, file_id: str | None) -> None:
        async with self.session() as session:
            await session.execute(
                update(Postmortem).where(Postmortem.id == postmortem_id).values(file_id=file_id)  # type: ignore[arg-type]
            )

    # --- roles -----------------------------------------------------------------

    async def roles(self, incident_id: int) -> dict[str, str]:
        """Current holder per role."""
        async with self.sessions() as session:
            stmt = (
                select(RoleAssignment)
                .where(RoleAssignment.incident_id == incident_id)  # type: ignore[arg-type]
                .where(RoleAssignment.ended_at == None)  # type: ignore[arg-type]  # noqa: E711
            )
            rows = (await session.execute(stmt)).scalars().all()
            return {r.role: r.user_id for r in rows}

    # --- timeline --------------------------------------------------------------

    async def add_entry(self, session: AsyncSession, entry: TimelineEntry) -> bool:
        """Append an entry; False when its source was recorded already."""
        if entry.source_key is not None:
            stmt = (
                select(func.count())
                .select_from(TimelineEntry)
                .where(TimelineEntry.incident_id == entry.incident_id)  # type: ignore[arg-type]
                .where(TimelineEntry.source_key == entry.source_key)  # type: ignore[arg-type]
            )
            if (await session.execute(stmt)).scalar_one():
                return False
        try:
            async with session.begin_nested():
                session.add(entry)
        except IntegrityError:
            return False
        return True

    async def timeline(self, incident_id: int) -> Sequence[TimelineEntry]:
        async with self.sessions() as session:
            stmt = (
                select(TimelineEntry)
                .where(TimelineEntry.incident_id == incident_id)  # type: ignore[arg-type]
                .order_by(TimelineEntry.happened_at, TimelineEntry.id)  # type: ignore[arg-type]
            )
            return (await session.execute(stmt)).scalars().all()


# message_ts of a status update while some process is posting it: "posting:<epoch>".
POSTING = "posting:"


def posting_mark(now: datetime) -> str:
    return f"{POSTING}{int(now.timestamp())}"


def claim_expired(mark: str | None, older_than: datetime) -> bool:
    if mark is None:
        return True
    if not mark.startswith(POSTING):
        return False
    try:
        return int(mark[len(POSTING) :]) < older_than.timestamp()
    except ValueError:
        return True


def utcnow() -> datetime:
    return datetime.now(UTC)
