"""The Store: sessions, and every query the bot runs (cross-process claims are in claims.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any, NamedTuple, TypeVar

from sqlalchemy import delete, false, func, select, text, true, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from bot.base.work import KeyedLocks, give_back
from bot.model import rules
from bot.model.figures import Snapshot
from bot.model.tables import (
    AlertTriage,
    ChannelState,
    Effect,
    FollowUp,
    HomeViewer,
    Incident,
    IncidentCounter,
    Nudge,
    Postmortem,
    RoleAssignment,
    Status,
    StatusUpdate,
    TimelineEntry,
)
from bot.outbound.store.engine import DEFAULT_TIMEOUT, Probe, make_engine, migrate, sqlite_rows

# message_ts of a status update while some process is posting it: "posting:<epoch>".
POSTING = "posting:"

Row = TypeVar("Row", RoleAssignment, StatusUpdate, FollowUp)


# The advisory-lock space of `Store.publicly` (any constant apart from the migrations').
PUBLIC_LOCKS = 727275


class PublicSide(NamedTuple):
    """An incident read under `Store.publicly`, and how to save fields under that hold."""

    incident: Incident
    save: Callable[..., Awaitable[None]]


class LatestDraft(NamedTuple):
    pk: int
    version: int
    file_id: str | None
    # Its Markdown is the one it was compared with.
    same: bool


def _responded(incident_id: int | None, user: str, at: datetime) -> Any:
    stmt = update(Incident).where(col(Incident.responded_at).is_(None))
    if incident_id is not None:
        stmt = stmt.where(col(Incident.id) == incident_id)
    return (
        stmt.where(col(Incident.declared_by) != user)
        .where(col(Incident.declared_at) <= at)
        .values(responded_at=at, responded_by=user)
    )


_SQLITE_NEXT_NUMBER = (
    "UPDATE incident_counter SET last_number = last_number + 1 WHERE team_id = ? "
    "AND NOT EXISTS (SELECT 1 FROM incident WHERE declare_key = ?) RETURNING last_number"
)


class Store:
    """The database: sessions plus the queries operations share."""

    def __init__(self, url: str, *, timeout: float = DEFAULT_TIMEOUT):
        self.url = url
        self.timeout = timeout
        self.engine = make_engine(url, timeout=timeout)
        # The bot's own user (known once connected): its actions are not responses.
        self.not_people: set[str] = set()
        self.sessions = async_sessionmaker(
            self.engine,
            expire_on_commit=False,
        )
        self.probe = Probe(url)
        # SQLite serves one process: whose public posts wait for a privacy change is
        # settled here. PostgreSQL serves several: an advisory lock settles it there.
        self._public_locks = KeyedLocks()

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    async def migrate(self) -> None:
        await migrate(self.engine, connect_within=self.timeout)

    async def close(self) -> None:
        await self.probe.close()
        await self.engine.dispose()

    async def ping(self, within: float) -> bool:
        """Whether the database answers, known within `within` seconds in every state."""
        return await self.probe.answers(within)

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A transaction: committed when the block ends, rolled back on error."""
        async with self.sessions() as session, session.begin():
            yield session

    # --- incidents -------------------------------------------------------------

    @property
    def numbers_check_keys(self) -> bool:
        """Whether `next_number(..., unless_declared=key)` also says if the key is taken:
        on SQLite, whose write lock the transaction already holds, so the answer stays
        true until it commits. Elsewhere the insert's unique index tells."""
        return self.engine.dialect.name == "sqlite"

    async def next_number(
        self, session: AsyncSession, team_id: str, *, unless_declared: str
    ) -> int | None:
        """Reserve the next number; the row lock serialises concurrent declarations.
        None when `unless_declared` is an existing incident's key (see numbers_check_keys)."""
        for _ in range(5):
            number = await self._increment_counter(session, team_id, unless_declared)
            if number is not None:
                return number
            if self.numbers_check_keys and await self.incident_by_key(session, unless_declared):
                return None
            try:
                async with session.begin_nested():
                    session.add(IncidentCounter(team_id=team_id, last_number=1))
                return 1
            except IntegrityError:
                # Another process created the row first: increment it instead.
                await asyncio.sleep(0)
        raise RuntimeError("could not reserve an incident number")

    async def _increment_counter(self, session: AsyncSession, team_id: str, key: str) -> int | None:
        conn = await session.connection()
        if conn.dialect.name == "sqlite":
            # The number is all a declaration's channel waits for: one trip to aiosqlite's
            # thread, where a statement through SQLAlchemy's cursor takes four.
            args = (team_id, key)
            rows = await sqlite_rows(conn, _SQLITE_NEXT_NUMBER, args, patience=self.timeout)
            return int(rows[0][0]) if rows else None
        stmt = (
            update(IncidentCounter)
            .where(col(IncidentCounter.team_id) == team_id)
            .values(last_number=col(IncidentCounter.last_number) + 1)
            .returning(col(IncidentCounter.last_number))
        )
        number = (await conn.execute(stmt)).scalar_one_or_none()
        return None if number is None else int(number)

    async def incident_by_key(self, session: AsyncSession, key: str) -> Incident | None:
        stmt = select(Incident).where(col(Incident.declare_key) == key)
        return (await session.execute(stmt)).scalar_one_or_none()

    async def declared_under(self, prefix: str) -> list[Incident]:
        """Incidents whose declaration key starts with `prefix` (an alert group's), newest
        first."""
        async with self.sessions() as session:
            stmt = (
                select(Incident)
                .where(col(Incident.declare_key).startswith(prefix, autoescape=True))
                .order_by(col(Incident.id).desc())
            )
            return list((await session.execute(stmt)).scalars())

    # --- metrics -----------------------------------------------------------------------

    async def metrics_snapshot(self) -> Snapshot:
        """The incident figures /metrics exports, read in one short session; drills are
        left out."""
        snap = Snapshot()
        real = col(Incident.drill) == false()
        async with self.sessions() as session:
            rows = await session.execute(
                select(
                    col(Incident.severity),
                    col(Incident.status),
                    col(Incident.declared_at),
                    col(Incident.responded_at),
                    col(Incident.mitigated_at),
                    col(Incident.resolved_at),
                ).where(real)
            )
            for severity, status, declared, responded, mitigated, resolved in rows:
                snap.declared[severity] += 1
                for at, into in (
                    (responded, snap.to_respond),
                    (mitigated, snap.to_mitigate),
                    (resolved if status == Status.resolved.value else None, snap.to_resolve),
                ):
                    if at is not None:
                        seconds = max((at - declared).total_seconds(), 0.0)
                        into.setdefault(severity, []).append(seconds)
                if status == Status.resolved.value:
                    snap.resolved[severity] += 1
                else:
                    snap.open[(severity, status)] += 1
            snap.reminders = (
                await session.execute(
                    select(func.count())
                    .select_from(TimelineEntry)
                    .join(Incident, col(Incident.id) == col(TimelineEntry.incident_id))
                    .where(real)
                    .where(col(TimelineEntry.kind) == "reminder")
                )
            ).scalar_one()
            timeliness = await session.execute(
                select(col(StatusUpdate.posted_at) <= col(StatusUpdate.due_at), func.count())
                .join(Incident, col(Incident.id) == col(StatusUpdate.incident_id))
                .where(real)
                .group_by(col(StatusUpdate.posted_at) <= col(StatusUpdate.due_at))
            )
            for on_time, n in timeliness:
                key = "unknown" if on_time is None else "on_time" if on_time else "late"
                snap.updates[key] += n
            effects = await session.execute(
                select(col(Effect.kind), col(Effect.state), func.count()).group_by(
                    col(Effect.kind), col(Effect.state)
                )
            )
            for kind, state, n in effects:
                snap.effects[(kind, state)] += n
        return snap

    # --- figures, nudges, App Home -------------------------------------------------------

    async def responded_in_channel(self, channel_id: str, user: str, at: datetime) -> bool:
        """A person's message in an incident's channel: its first response, unless it
        has one or they declared it. True when this was the first."""
        if not rules.is_person(user, self.not_people):
            return False
        async with self.session() as session:
            stmt = _responded(None, user, at).where(col(Incident.channel_id) == channel_id)
            result = await session.execute(stmt)
            return bool(getattr(result, "rowcount", 0))

    async def history(
        self, since: datetime | None, *, drills: bool = False
    ) -> list[tuple[Incident, list[StatusUpdate], list[FollowUp]]]:
        """Incidents declared since `since` (all when None) with their updates and
        follow-ups, oldest first: what the report and stats are computed from."""
        async with self.sessions() as session:
            stmt = select(Incident).order_by(col(Incident.declared_at), col(Incident.id))
            if since is not None:
                stmt = stmt.where(col(Incident.declared_at) >= since)
            if not drills:
                stmt = stmt.where(col(Incident.drill) == false())
            incidents = list((await session.execute(stmt)).scalars())
            ids = [i.pk for i in incidents]
            updates: dict[int, list[StatusUpdate]] = {i: [] for i in ids}
            follow_ups: dict[int, list[FollowUp]] = {i: [] for i in ids}
            # In chunks: a long history stays within every database's parameter limit.
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                for u in (
                    await session.execute(
                        select(StatusUpdate)
                        .where(col(StatusUpdate.incident_id).in_(chunk))
                        .order_by(col(StatusUpdate.posted_at), col(StatusUpdate.id))
                    )
                ).scalars():
                    updates[u.incident_id].append(u)
                for f in (
                    await session.execute(
                        select(FollowUp)
                        .where(col(FollowUp.incident_id).in_(chunk))
                        .order_by(col(FollowUp.id))
                    )
                ).scalars():
                    follow_ups[f.incident_id].append(f)
        return [(i, updates[i.pk], follow_ups[i.pk]) for i in incidents]

    async def claim_nudge(self, incident_id: int, kind: str, now: datetime) -> bool:
        """Record that this nudge goes out; False when it went out already (any process)."""
        try:
            async with self.session() as session:
                session.add(Nudge(incident_id=incident_id, kind=kind, sent_at=now))
        except IntegrityError:
            return False
        return True

    async def nudged(self, kinds: Sequence[str]) -> set[tuple[int, str]]:
        async with self.sessions() as session:
            rows = await session.execute(
                select(col(Nudge.incident_id), col(Nudge.kind)).where(col(Nudge.kind).in_(kinds))
            )
            return {(i, k) for i, k in rows}

    async def resolved_between(self, start: datetime, end: datetime) -> Sequence[Incident]:
        async with self.sessions() as session:
            stmt = (
                select(Incident)
                .where(col(Incident.status) == Status.resolved.value)
                .where(col(Incident.resolved_at) >= start)
                .where(col(Incident.resolved_at) <= end)
                .order_by(col(Incident.resolved_at))
            )
            return (await session.execute(stmt)).scalars().all()

    async def all_open(self) -> Sequence[Incident]:
        async with self.sessions() as session:
            stmt = select(Incident).where(col(Incident.status) != Status.resolved.value)
            return (await session.execute(stmt)).scalars().all()

    async def cards_after(self, incident_id: int, limit: int) -> Sequence[Incident]:
        """Open incidents whose card was posted in a usable channel, after `incident_id` in
        id order: the next few whose pins the repair pass looks at."""
        async with self.sessions() as session:
            stmt = (
                select(Incident)
                .where(col(Incident.id) > incident_id)
                .where(col(Incident.status) != Status.resolved.value)
                .where(col(Incident.card_ts).is_not(None))
                .where(col(Incident.channel_state) == ChannelState.ok.value)
                .order_by(col(Incident.id))
                .limit(limit)
            )
            return (await session.execute(stmt)).scalars().all()

    async def forget_nudge(self, incident_id: int, kind: str) -> None:
        """A nudge Slack did not take for a passing reason: the next pass tries again."""
        async with self.session() as session:
            await session.execute(
                delete(Nudge)
                .where(col(Nudge.incident_id) == incident_id)
                .where(col(Nudge.kind) == kind)
            )

    async def last_activity(self, incident_ids: Sequence[int]) -> dict[int, datetime]:
        """The time of each incident's latest timeline entry a person caused (reminders
        and alerts are not activity)."""
        if not incident_ids:
            return {}
        async with self.sessions() as session:
            rows = await session.execute(
                select(col(TimelineEntry.incident_id), func.max(col(TimelineEntry.happened_at)))
                .where(col(TimelineEntry.incident_id).in_(sorted(incident_ids)))
                .where(col(TimelineEntry.kind).not_in(["reminder", "alert"]))
                .group_by(col(TimelineEntry.incident_id))
            )
            return {i: at for i, at in rows}

    async def postmortem_ids(self, incident_ids: Sequence[int]) -> set[int]:
        """Which of these incidents have a postmortem draft."""
        if not incident_ids:
            return set()
        async with self.sessions() as session:
            rows = await session.execute(
                select(col(Postmortem.incident_id))
                .where(col(Postmortem.incident_id).in_(sorted(incident_ids)))
                .distinct()
            )
            return {i for (i,) in rows}

    async def open_follow_ups(self, team_id: str) -> list[tuple[FollowUp, Incident]]:
        async with self.sessions() as session:
            rows = await session.execute(
                select(FollowUp, Incident)
                .join(Incident, col(Incident.id) == col(FollowUp.incident_id))
                .where(col(Incident.team_id) == team_id)
                .where(col(FollowUp.done_at).is_(None))
                .order_by(col(FollowUp.created_at), col(FollowUp.id))
            )
            return [(f, i) for f, i in rows]

    async def unowned_follow_ups(self, incident_ids: Sequence[int]) -> dict[int, list[FollowUp]]:
        """Open follow-ups nobody owns, by incident."""
        found: dict[int, list[FollowUp]] = {}
        if not incident_ids:
            return found
        async with self.sessions() as session:
            rows = await session.execute(
                select(FollowUp)
                .where(col(FollowUp.incident_id).in_(sorted(incident_ids)))
                .where(col(FollowUp.owner).is_(None))
                .where(col(FollowUp.done_at).is_(None))
                .order_by(col(FollowUp.created_at), col(FollowUp.id))
            )
            for f in rows.scalars():
                found.setdefault(f.incident_id, []).append(f)
        return found

    async def follow_up(self, follow_up_id: int) -> FollowUp | None:
        async with self.sessions() as session:
            return await session.get(FollowUp, follow_up_id)

    async def change_follow_up(self, follow_up_id: int, **values: Any) -> bool:
        """Set an owner or mark done, unless that is the state already; True if changed."""
        async with self.session() as session:
            stmt = update(FollowUp).where(col(FollowUp.id) == follow_up_id)
            if "owner" in values:
                stmt = stmt.where(
                    col(FollowUp.owner).is_(None) | (col(FollowUp.owner) != values["owner"])
                )
            if "done_at" in values:
                stmt = stmt.where(col(FollowUp.done_at).is_(None))
            result = await session.execute(stmt.values(**values))
            return bool(getattr(result, "rowcount", 0))

    async def home_opened(self, user_id: str, team_id: str, now: datetime) -> None:
        async with self.session() as session:
            viewer = await session.get(HomeViewer, user_id)
            if viewer is None:
                session.add(HomeViewer(user_id=user_id, team_id=team_id, opened_at=now))
            else:
                viewer.opened_at = now

    async def home_viewers(self, since: datetime) -> list[str]:
        async with self.sessions() as session:
            rows = await session.execute(
                select(col(HomeViewer.user_id)).where(col(HomeViewer.opened_at) >= since)
            )
            return sorted(u for (u,) in rows)

    async def recently_resolved(self, team_id: str, limit: int) -> Sequence[Incident]:
        async with self.sessions() as session:
            stmt = (
                select(Incident)
                .where(col(Incident.team_id) == team_id)
                .where(col(Incident.status) == Status.resolved.value)
                .order_by(col(Incident.resolved_at).desc())
                .limit(limit)
            )
            return (await session.execute(stmt)).scalars().all()

    # --- alert triage ------------------------------------------------------------------

    async def add_triage(self, triage: AlertTriage) -> AlertTriage | None:
        """Store a group waiting for a person; None when that group waits already."""
        try:
            async with self.session() as session:
                session.add(triage)
        except IntegrityError:
            return None
        return triage

    async def triage(self, triage_id: int) -> AlertTriage | None:
        async with self.sessions() as session:
            return await session.get(AlertTriage, triage_id)

    async def triage_for(self, group_key: str) -> AlertTriage | None:
        async with self.sessions() as session:
            stmt = select(AlertTriage).where(col(AlertTriage.group_key) == group_key)
            return (await session.execute(stmt)).scalar_one_or_none()

    async def decide_triage(self, triage_id: int, state: str, user: str) -> bool:
        """Move a pending triage to `state` by `user`; False when someone decided first."""
        async with self.session() as session:
            result = await session.execute(
                update(AlertTriage)
                .where(col(AlertTriage.id) == triage_id)
                .where(col(AlertTriage.state) == "pending")
                .values(state=state, decided_by=user)
            )
        return bool(getattr(result, "rowcount", 0))

    async def save_triage(self, triage_id: int, **values: Any) -> None:
        async with self.session() as session:
            await session.execute(
                update(AlertTriage).where(col(AlertTriage.id) == triage_id).values(**values)
            )

    async def locked(self, session: AsyncSession, incident_id: int) -> Incident:
        """The incident row, locked for this transaction (PostgreSQL; SQLite locks at BEGIN)."""
        stmt = select(Incident).where(col(Incident.id) == incident_id).with_for_update()
        return (await session.execute(stmt)).scalar_one()

    @asynccontextmanager
    async def publicly(self, incident_id: int) -> AsyncIterator[PublicSide]:
        """The incident as it is now, with its public side held: whatever is posted outside
        its channel inside this block is decided by the `private` it yields, and a privacy
        change (made inside this block too) waits until that post went out and was saved.
        Across processes on PostgreSQL by a transaction-scoped advisory lock, which leaves
        the incident's row free for other changes while Slack answers."""
        if self.dialect == "postgresql":
            async with self.session() as session:
                key = {"space": PUBLIC_LOCKS, "key": incident_id}
                taken = await session.execute(
                    text("SELECT pg_try_advisory_xact_lock(:space, :key)"), key
                )
                if not taken.scalar_one():
                    give_back()  # waits behind another post: the slot goes to the next one
                    await session.execute(text("SELECT pg_advisory_xact_lock(:space, :key)"), key)
                found = await session.get(Incident, incident_id)
                if found is None:
                    raise LookupError(f"no incident {incident_id}")

                async def save_here(**values: Any) -> None:
                    # On the connection already held: a second one could wait on a pool
                    # that holders of this lock have taken.
                    await session.execute(
                        update(Incident).where(col(Incident.id) == incident_id).values(**values)
                    )

                yield PublicSide(found, save_here)
            return
        async with self._public_locks.hold(incident_id):
            incident = await self.incident(incident_id)
            if incident is None:
                raise LookupError(f"no incident {incident_id}")

            async def save(**values: Any) -> None:
                await self.save_fields(incident_id, **values)

            yield PublicSide(incident, save)

    async def incident(self, incident_id: int) -> Incident | None:
        async with self.sessions() as session:
            return await session.get(Incident, incident_id)

    async def incident_by_channel(self, channel_id: str) -> Incident | None:
        async with self.sessions() as session:
            stmt = select(Incident).where(col(Incident.channel_id) == channel_id)
            return (await session.execute(stmt)).scalar_one_or_none()

    async def incident_by_announcement(self, ts: str) -> Incident | None:
        async with self.sessions() as session:
            stmt = select(Incident).where(col(Incident.announcement_ts) == ts)
            return (await session.execute(stmt)).scalars().first()

    async def incident_by_number(self, team_id: str | None, number: int) -> Incident | None:
        async with self.sessions() as session:
            stmt = select(Incident).where(col(Incident.number) == number)
            if team_id is not None:
                stmt = stmt.where(col(Incident.team_id) == team_id)
            return (await session.execute(stmt)).scalars().first()

    async def open_incidents(self, team_id: str) -> Sequence[Incident]:
        async with self.sessions() as session:
            stmt = (
                select(Incident)
                .where(col(Incident.team_id) == team_id)
                .where(col(Incident.status) != Status.resolved.value)
                .order_by(col(Incident.number).desc())
            )
            return (await session.execute(stmt)).scalars().all()

    async def reminder_due_times(self) -> list[tuple[int, datetime | None, str]]:
        """(id, next update due, channel state) of each open incident with a reminder:
        three columns, not whole incidents, since the sync reads them all."""
        async with self.sessions() as session:
            stmt = (
                select(col(Incident.id), col(Incident.next_update_due), col(Incident.channel_state))
                .where(col(Incident.status) != Status.resolved.value)
                .where(col(Incident.next_update_due).is_not(None))
            )
            return [(int(i or 0), due, state) for i, due, state in await session.execute(stmt)]

    async def unprovisioned(self, now: datetime) -> Sequence[Incident]:
        """Declarations nobody is completing: not provisioned, and no process holds the
        lease (one that does is at work on it)."""
        async with self.sessions() as session:
            stmt = (
                select(Incident)
                .where(col(Incident.provisioned) == false())
                .where(
                    col(Incident.provision_lease_until).is_(None)
                    | (col(Incident.provision_lease_until) < now)
                )
            )
            return (await session.execute(stmt)).scalars().all()

    async def stuck_reminders(self, older_than: datetime) -> Sequence[Incident]:
        async with self.sessions() as session:
            stmt = select(Incident).where(col(Incident.reminder_sending_since) < older_than)
            return (await session.execute(stmt)).scalars().all()

    async def release_reminders(
        self, incident_ids: Sequence[int], *, session: AsyncSession | None = None
    ) -> None:
        """The reminders of these incidents are sent (or cannot be): nobody holds them."""
        stmt = (
            update(Incident)
            .where(col(Incident.id).in_(sorted(incident_ids)))
            .values(reminder_sending_since=None)
        )
        if session is not None:
            await session.execute(stmt)
            return
        async with self.session() as s:
            await s.execute(stmt)

    async def mark_shown(self, incident_id: int, version: int) -> None:
        """Slack shows `version` (or a later one): nothing left to catch up or report."""
        async with self.session() as session:
            await session.execute(
                update(Incident)
                .where(col(Incident.id) == incident_id)
                .where(col(Incident.shown_version) < version)
                .values(
                    shown_version=version,
                    slack_problem=None,
                    problem_reported=None,
                    render_retry_at=None,
                )
            )

    async def behind(self, now: datetime) -> Sequence[Incident]:
        """Incidents whose Slack surfaces show an older state, due for another try."""
        async with self.sessions() as session:
            stmt = (
                select(Incident)
                .where(col(Incident.provisioned) == true())
                .where(col(Incident.shown_version) < col(Incident.version))
                .where(
                    col(Incident.render_retry_at).is_(None) | (col(Incident.render_retry_at) <= now)
                )
                .order_by(col(Incident.id))
            )
            return (await session.execute(stmt)).scalars().all()

    async def save_fields(self, incident_id: int, **values: Any) -> None:
        """Record a Slack step's result at once, so a retry resumes after it."""
        async with self.session() as session:
            await session.execute(
                update(Incident).where(col(Incident.id) == incident_id).values(**values)
            )

    # --- status updates ----------------------------------------------------------

    async def update_by_key(
        self, session: AsyncSession, incident_id: int, key: str
    ) -> StatusUpdate | None:
        stmt = (
            select(StatusUpdate)
            .where(col(StatusUpdate.incident_id) == incident_id)
            .where(col(StatusUpdate.source_key) == key)
        )
        return (await session.execute(stmt)).scalar_one_or_none()

    async def unposted_updates(self, older_than: datetime) -> Sequence[StatusUpdate]:
        """Updates never posted, or whose posting process has been silent too long."""
        async with self.sessions() as session:
            stmt = (
                select(StatusUpdate)
                .where(
                    col(StatusUpdate.message_ts).is_(None)
                    | col(StatusUpdate.message_ts).startswith(POSTING)
                )
                .where(col(StatusUpdate.posted_at) < older_than)
                .order_by(col(StatusUpdate.id))
            )
            return (await session.execute(stmt)).scalars().all()

    async def save_update_ts(self, update_id: int, ts: str | None) -> None:
        async with self.session() as session:
            await session.execute(
                update(StatusUpdate).where(col(StatusUpdate.id) == update_id).values(message_ts=ts)
            )

    async def latest_update(self, incident_id: int) -> StatusUpdate | None:
        async with self.sessions() as session:
            stmt = (
                select(StatusUpdate)
                .where(col(StatusUpdate.incident_id) == incident_id)
                .order_by(col(StatusUpdate.posted_at).desc(), col(StatusUpdate.id).desc())
            )
            return (await session.execute(stmt)).scalars().first()

    async def all_of(self, session: AsyncSession, table: type[Row], incident_id: int) -> list[Row]:
        stmt = select(table).where(col(table.incident_id) == incident_id).order_by(col(table.id))
        return list((await session.execute(stmt)).scalars().all())

    # --- follow-ups ------------------------------------------------------------

    async def follow_up_by_key(
        self, session: AsyncSession, incident_id: int, key: str
    ) -> FollowUp | None:
        stmt = (
            select(FollowUp)
            .where(col(FollowUp.incident_id) == incident_id)
            .where(col(FollowUp.source_key) == key)
        )
        return (await session.execute(stmt)).scalar_one_or_none()

    # --- postmortems -----------------------------------------------------------

    async def latest_postmortem(self, incident_id: int) -> Postmortem | None:
        async with self.sessions() as session:
            stmt = (
                select(Postmortem)
                .where(col(Postmortem.incident_id) == incident_id)
                .order_by(col(Postmortem.version).desc())
            )
            return (await session.execute(stmt)).scalars().first()

    async def latest_draft(self, incident_id: int, markdown: str) -> LatestDraft | None:
        """The latest version of an incident's draft, and whether its Markdown is
        `markdown`: the database compares them, so a long draft is not read back."""
        async with self.sessions() as session:
            stmt = (
                select(
                    col(Postmortem.id),
                    col(Postmortem.version),
                    col(Postmortem.file_id),
                    (col(Postmortem.markdown) == markdown).label("same"),
                )
                .where(col(Postmortem.incident_id) == incident_id)
                .order_by(col(Postmortem.version).desc())
                .limit(1)
            )
            row = (await session.execute(stmt)).first()
        if row is None:
            return None
        pk, version, file_id, same = row
        assert pk is not None
        return LatestDraft(pk, version, file_id, bool(same))

    async def save_postmortem(self, session: AsyncSession, draft: Postmortem) -> Postmortem:
        session.add(draft)
        await session.flush()
        return draft

    async def set_postmortem_file(self, postmortem_id: int, file_id: str | None) -> None:
        async with self.session() as session:
            await session.execute(
                update(Postmortem)
                .where(col(Postmortem.id) == postmortem_id)
                .values(file_id=file_id)
            )

    # --- roles -----------------------------------------------------------------

    async def roles(self, incident_id: int) -> dict[str, str]:
        """Current holder per role."""
        async with self.sessions() as session:
            stmt = (
                select(RoleAssignment)
                .where(col(RoleAssignment.incident_id) == incident_id)
                .where(col(RoleAssignment.ended_at).is_(None))
            )
            rows = (await session.execute(stmt)).scalars().all()
            return {r.role: r.user_id for r in rows}

    async def roles_of(self, incident_ids: Iterable[int]) -> dict[int, dict[str, str]]:
        """Current holder per role, for many incidents in one query."""
        held: dict[int, dict[str, str]] = {}
        async with self.sessions() as session:
            stmt = (
                select(RoleAssignment)
                .where(col(RoleAssignment.incident_id).in_(sorted(set(incident_ids))))
                .where(col(RoleAssignment.ended_at).is_(None))
            )
            for r in (await session.execute(stmt)).scalars():
                held.setdefault(r.incident_id, {})[r.role] = r.user_id
        return held

    async def current_holder(
        self, session: AsyncSession, incident_id: int, role: str
    ) -> RoleAssignment | None:
        stmt = (
            select(RoleAssignment)
            .where(col(RoleAssignment.incident_id) == incident_id)
            .where(col(RoleAssignment.role) == role)
            .where(col(RoleAssignment.ended_at).is_(None))
        )
        return (await session.execute(stmt)).scalars().first()

    # --- timeline --------------------------------------------------------------

    async def add_entry(self, session: AsyncSession, entry: TimelineEntry) -> bool:
        """Append an entry; False when its source was recorded already."""
        if entry.source_key is not None:
            stmt = (
                select(func.count())
                .select_from(TimelineEntry)
                .where(col(TimelineEntry.incident_id) == entry.incident_id)
                .where(col(TimelineEntry.source_key) == entry.source_key)
            )
            if (await session.execute(stmt)).scalar_one():
                return False
        try:
            async with session.begin_nested():
                session.add(entry)
        except IntegrityError:
            return False
        return True

    async def add_entries(self, session: AsyncSession, entries: Sequence[TimelineEntry]) -> None:
        """Append many entries in one statement; those whose source is recorded already are
        left out (the database's unique key decides, so no read comes first)."""
        if not entries:
            return
        insert = pg_insert if self.dialect == "postgresql" else sqlite_insert
        rows = [e.model_dump(exclude={"id"}) for e in entries]
        await session.execute(
            insert(TimelineEntry)
            .values(rows)
            .on_conflict_do_nothing(index_elements=["incident_id", "source_key"])
        )

    async def note_first_response(
        self, session: AsyncSession, incident_id: int, user: str, at: datetime
    ) -> None:
        """`user` responded at `at`: the incident's first response, unless it has one, they
        declared it, or `at` is before it was declared."""
        await session.execute(_responded(incident_id, user, at))

    async def timeline(self, incident_id: int) -> Sequence[TimelineEntry]:
        async with self.sessions() as session:
            stmt = (
                select(TimelineEntry)
                .where(col(TimelineEntry.incident_id) == incident_id)
                .order_by(col(TimelineEntry.happened_at), col(TimelineEntry.id))
            )
            return (await session.execute(stmt)).scalars().all()
