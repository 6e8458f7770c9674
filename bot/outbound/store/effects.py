"""The outbox's rows: effects recorded, claimed, and settled (every query of the outbox).

An effect is claimed by a compare-and-set on `lease_until`, so one process delivers it at a
time; a process that dies while delivering loses the claim when the lease passes, and another
takes it over. Effects of one lane go in order: only the oldest pending one may be claimed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, and_, exists, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from sqlmodel import col

from bot.model.tables import Effect, EffectState
from bot.outbound.store.queries import Store

PENDING = EffectState.pending.value
DONE = EffectState.done.value
FAILED = EffectState.failed.value


@dataclass(frozen=True)
class Planned:
    """An effect an operation records with its change; `key` makes recording it twice a
    no-op and is what the remote sees, where it takes one, to refuse doing it twice."""

    key: str
    kind: str
    lane: str
    payload: dict[str, Any] = field(default_factory=dict)
    incident_id: int | None = None
    requested_by: str | None = None


def _rows(result: Any) -> int:
    return int(cast(CursorResult[Any], result).rowcount or 0)


def _no_earlier_pending() -> Any:
    """No older effect of the same lane is still pending (the lane's order holds)."""
    earlier = aliased(Effect)
    return ~exists().where(
        and_(
            col(earlier.lane) == col(Effect.lane),
            col(earlier.state) == PENDING,
            col(earlier.id) < col(Effect.id),
        )
    )


def _free(now: datetime) -> Any:
    return or_(col(Effect.lease_until).is_(None), col(Effect.lease_until) < now)


class Effects:
    """Queries of the `effect` table."""

    def __init__(self, store: Store):
        self.store = store

    async def record(
        self, session: AsyncSession, planned: Sequence[Planned], *, now: datetime
    ) -> None:
        """Record effects in the caller's transaction; a key recorded already is left as it
        is (the change was retried, the effect was not)."""
        if not planned:
            return
        insert = pg_insert if self.store.dialect == "postgresql" else sqlite_insert
        rows = [
            {
                "key": p.key,
                "kind": p.kind,
                "lane": p.lane,
                "incident_id": p.incident_id,
                "requested_by": p.requested_by,
                "payload": p.payload,
                "state": PENDING,
                "attempts": 0,
                "created_at": now,
                "next_attempt_at": now,
                "reported": False,
            }
            for p in planned
        ]
        await session.execute(
            insert(Effect).values(rows).on_conflict_do_nothing(index_elements=["key"])
        )

    async def due(
        self, now: datetime, *, limit: int, skip_lanes: Sequence[str], kinds: Sequence[str]
    ) -> list[Effect]:
        """Effects of `kinds` to try now: each the oldest pending one of its lane, unclaimed
        or with its claim lapsed, oldest first."""
        stmt = (
            select(Effect)
            .where(col(Effect.kind).in_(list(kinds)))
            .where(col(Effect.state) == PENDING)
            .where(col(Effect.next_attempt_at) <= now)
            .where(_free(now))
            .where(_no_earlier_pending())
            .order_by(col(Effect.next_attempt_at), col(Effect.id))
            .limit(limit)
        )
        if skip_lanes:
            stmt = stmt.where(col(Effect.lane).not_in(list(skip_lanes)))
        async with self.store.session() as s:
            return list((await s.execute(stmt)).scalars().all())

    async def claim(self, effect_id: int, owner: str, *, now: datetime, until: datetime) -> bool:
        """Take an effect for one attempt; False when another process has it, it is
        settled, or an older one of its lane is pending."""
        stmt = (
            update(Effect)
            .where(col(Effect.id) == effect_id)
            .where(col(Effect.state) == PENDING)
            .where(_free(now))
            .where(_no_earlier_pending())
            .values(lease_until=until, claimed_by=owner, attempts=col(Effect.attempts) + 1)
        )
        async with self.store.session() as s:
            return _rows(await s.execute(stmt)) == 1

    async def done(self, effect_id: int, result: dict[str, Any] | None, *, now: datetime) -> None:
        """Delivered. Whoever delivered it says so: a process whose claim lapsed did the
        work all the same, and the remote refused the second attempt by its key."""
        stmt = (
            update(Effect)
            .where(col(Effect.id) == effect_id)
            .where(col(Effect.state) == PENDING)
            .values(state=DONE, result=result, done_at=now, lease_until=None, last_error=None)
        )
        async with self.store.session() as s:
            await s.execute(stmt)

    async def again(self, effect_id: int, owner: str, reason: str, *, at: datetime) -> None:
        """A passing failure: try again at `at`, keeping the remote's reason."""
        stmt = (
            update(Effect)
            .where(col(Effect.id) == effect_id)
            .where(col(Effect.state) == PENDING)
            .where(col(Effect.claimed_by) == owner)
            .values(next_attempt_at=at, lease_until=None, last_error=reason)
        )
        async with self.store.session() as s:
            await s.execute(stmt)

    async def failed(self, effect_id: int, owner: str, reason: str, *, now: datetime) -> bool:
        """A failure for good (refused, or still failing when the kind gives up)."""
        stmt = (
            update(Effect)
            .where(col(Effect.id) == effect_id)
            .where(col(Effect.state) == PENDING)
            .where(col(Effect.claimed_by) == owner)
            .values(state=FAILED, done_at=now, lease_until=None, last_error=reason)
        )
        async with self.store.session() as s:
            return _rows(await s.execute(stmt)) == 1

    async def to_report(self, *, limit: int = 20) -> list[Effect]:
        """Failed effects nobody has been told of yet."""
        stmt = (
            select(Effect)
            .where(col(Effect.state) == FAILED)
            .where(col(Effect.reported).is_(False))
            .order_by(col(Effect.id))
            .limit(limit)
        )
        async with self.store.session() as s:
            return list((await s.execute(stmt)).scalars().all())

    async def reporting(self, effect_id: int) -> bool:
        """Claim telling people of a failure: True for the one process that tells."""
        stmt = (
            update(Effect)
            .where(col(Effect.id) == effect_id)
            .where(col(Effect.reported).is_(False))
            .values(reported=True)
        )
        async with self.store.session() as s:
            return _rows(await s.execute(stmt)) == 1

    async def unreported(self, effect_id: int) -> None:
        async with self.store.session() as s:
            await s.execute(
                update(Effect).where(col(Effect.id) == effect_id).values(reported=False)
            )

    async def of_incident(self, incident_id: int) -> list[Effect]:
        stmt = select(Effect).where(col(Effect.incident_id) == incident_id).order_by(col(Effect.id))
        async with self.store.session() as s:
            return list((await s.execute(stmt)).scalars().all())
