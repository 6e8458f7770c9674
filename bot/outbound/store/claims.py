"""Cross-process claims: which bot process does a piece of Slack work right now.

Several processes may share one database. Each piece of Slack work that must happen once is
claimed by a compare-and-set on a column, kept alive while Slack answers, and taken over by
another process when its holder goes silent for longer than the lease.

| claim            | column                         | taken by                           |
|------------------|--------------------------------|------------------------------------|
| provisioning     | incident.provision_lease_until | Surfaces.provision (declare,       |
|                  | (a time)                       | refresh, repair)                   |
| update posting   | status_update.message_ts       | Response.post_update; Repair for   |
|                  | ("posting:<epoch>")            | updates never posted               |
| reminder sending | incident.reminder_sending_since| Reminders.fire, by moving          |
|                  | (a time)                       | next_update_due forward            |
| problem report   | incident.problem_reported      | Surfaces, telling the commander    |
|                  | (the problem last told)        | what Slack will not let it show    |

| claim            | renewed by                     | expires                            |
|------------------|--------------------------------|------------------------------------|
| provisioning     | keep_alive sets a later time   | at that time; cleared once done    |
| update posting   | keep_alive rewrites the mark   | a mark older than one lease; the   |
|                  |                                | message's ts replaces it once sent |
| reminder sending | keep_alive rewrites the time   | older than one lease: Repair looks |
|                  |                                | in the channel, records or resends |
| problem report   | (not renewed)                  | cleared once Slack shows the state |

`keep_alive` is the one heartbeat: it renews a claim every third of the lease while the work
runs, so a slow Slack call (retries, rate limits) never lets another process take it over.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime, timedelta
from typing import Any, TypeVar, cast

from sqlalchemy import CursorResult, false, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from bot.base.clock import Clock, utcnow
from bot.base.errors import log_failure
from bot.model.tables import ChannelState, Incident, StatusUpdate
from bot.outbound.store.queries import POSTING, Store

log = logging.getLogger(__name__)
T = TypeVar("T")
H = TypeVar("H")


def posting_mark(now: datetime) -> str:
    return f"{POSTING}{int(now.timestamp())}"


def update_claim_expired(mark: str | None, older_than: datetime) -> bool:
    """Whether a status update's posting claim is free: never taken, or its holder silent."""
    if mark is None:
        return True
    if not mark.startswith(POSTING):
        return False
    try:
        return int(mark[len(POSTING) :]) < older_than.timestamp()
    except ValueError:
        return True


async def _changed(session: AsyncSession, stmt: Any) -> bool:
    result = cast(CursorResult[Any], await session.execute(stmt))
    return bool(result.rowcount)


class Claims:
    def __init__(self, store: Store, *, clock: Clock = utcnow, lease: timedelta):
        self.store = store
        self.clock = clock
        self.lease = lease

    async def keep_alive(
        self,
        renew: Callable[[H], Awaitable[H | None]],
        held: H,
        work: Awaitable[T],
        *,
        let_go: Callable[[H], Awaitable[None]] | None = None,
    ) -> T:
        """Run `work` while renewing the claim `held` every third of the lease. Cancelled
        (the process stops), `let_go` gives the claim up at once, so that the next process
        takes the work over now rather than once the lease has run out."""
        current = [held]

        async def beat() -> None:
            token: H | None = held
            while token is not None:
                await asyncio.sleep(self.lease.total_seconds() / 3)
                try:
                    token = await renew(token)
                except Exception as e:
                    # The work goes on; if the claim lapses meanwhile, the look-before-
                    # resending of repairs keeps a second process from doubling it.
                    log_failure(log, "could not renew a claim", e)
                    return
                if token is not None:
                    current[0] = token

        heart = asyncio.create_task(beat())
        try:
            return await work
        except asyncio.CancelledError:
            if let_go is not None:
                try:
                    await asyncio.shield(let_go(current[0]))
                except Exception as e:
                    log_failure(log, "could not give a claim up", e)
            raise
        finally:
            heart.cancel()

    # --- provisioning ----------------------------------------------------------------

    async def take_provisioning(self, incident_id: int) -> datetime | None:
        """The lease's end if this process now holds it; None while another one does."""
        now = self.clock()
        until = now + self.lease
        async with self.store.session() as s:
            taken = await _changed(
                s,
                update(Incident)
                .where(col(Incident.id) == incident_id)
                .where(col(Incident.provisioned) == false())
                .where(
                    col(Incident.provision_lease_until).is_(None)
                    | (col(Incident.provision_lease_until) < now)
                )
                .values(provision_lease_until=until),
            )
        return until if taken else None

    async def renew_provisioning(self, incident_id: int, held: datetime) -> datetime | None:
        until = self.clock() + self.lease
        async with self.store.session() as s:
            renewed = await _changed(
                s,
                update(Incident)
                .where(col(Incident.id) == incident_id)
                .where(col(Incident.provision_lease_until) == held)
                .values(provision_lease_until=until),
            )
        return until if renewed else None

    async def release_provisioning(self, incident_id: int, held: datetime) -> None:
        """Give up the lease this process holds on an unfinished declaration."""
        async with self.store.session() as s:
            await s.execute(
                update(Incident)
                .where(col(Incident.id) == incident_id)
                .where(col(Incident.provision_lease_until) == held)
                .values(provision_lease_until=None)
            )

    # --- posting a status update -------------------------------------------------------

    async def take_update(self, update_id: int, expected: str | None = None) -> str | None:
        """Mark an update as being posted (compare-and-set on `expected`): the mark for
        exactly one caller, None for the others. The mark carries its time, so a dead
        poster's claim expires."""
        mark = posting_mark(self.clock())
        current = (
            col(StatusUpdate.message_ts).is_(None)
            if expected is None
            else col(StatusUpdate.message_ts) == expected
        )
        async with self.store.session() as s:
            taken = await _changed(
                s,
                update(StatusUpdate)
                .where(col(StatusUpdate.id) == update_id)
                .where(current)
                .values(message_ts=mark),
            )
        return mark if taken else None

    def update_is_free(self, mark: str | None) -> bool:
        return update_claim_expired(mark, self.clock() - self.lease)

    # --- sending a reminder ---------------------------------------------------------

    async def take_reminder(
        self, incident_id: int, due: datetime, interval: Callable[[str], timedelta]
    ) -> Incident | None:
        """Take the reminder due at `due`, or None if it is not (or no longer) ours to send.

        The row lock plus the due-time comparison make this a compare-and-set: of all
        processes that wake up for the same due time, exactly one moves it forward.
        """
        now = self.clock()
        async with self.store.session() as s:
            inc = await self.store.locked(s, incident_id)
            if not inc.is_open or inc.next_update_due != due or due > now:
                return None
            inc.next_update_due = now + interval(inc.severity)
            inc.version += 1  # the card shows when the next update is due
            # Marks the reminder as being sent; the timeline entry is written once it is
            # posted, so the timeline never shows a reminder nobody saw.
            inc.reminder_sending_since = now
        return inc

    async def take_reminders(
        self, incident_ids: Iterable[int], interval: Callable[[str], timedelta]
    ) -> tuple[list[Incident], list[Incident]]:
        """Take every reminder among `incident_ids` that is due now, in one transaction:
        (taken, the others as they stand). The rows are locked in id order, so processes
        claiming overlapping batches wait for each other instead of deadlocking; whoever
        comes second finds the due time moved on and takes nothing."""
        now = self.clock()
        taken: list[Incident] = []
        others: list[Incident] = []
        async with self.store.session() as s:
            stmt = (
                select(Incident)
                .where(col(Incident.id).in_(sorted(set(incident_ids))))
                .order_by(col(Incident.id))
                .with_for_update()
            )
            for inc in (await s.execute(stmt)).scalars():
                due = inc.next_update_due
                if (
                    not inc.is_open
                    or due is None
                    or due > now
                    or inc.reminder_sending_since is not None
                    or inc.channel_state != ChannelState.ok
                ):
                    others.append(inc)
                    continue
                inc.next_update_due = now + interval(inc.severity)
                inc.version += 1  # the card shows when the next update is due
                inc.reminder_sending_since = now
                taken.append(inc)
        return taken, others

    async def retake_reminders(
        self, incident_ids: Iterable[int], held: datetime
    ) -> datetime | None:
        """Renew the claims of a batch taken together at `held`; the new time, or None once
        none of them is held any more."""
        now = self.clock()
        async with self.store.session() as s:
            taken = await _changed(
                s,
                update(Incident)
                .where(col(Incident.id).in_(sorted(set(incident_ids))))
                .where(col(Incident.reminder_sending_since) == held)
                .values(reminder_sending_since=now),
            )
        return now if taken else None

    async def retake_reminder(self, incident_id: int, held: datetime) -> datetime | None:
        """Renew (or take over) a reminder claim held at `held`; the new time, or None."""
        now = self.clock()
        async with self.store.session() as s:
            taken = await _changed(
                s,
                update(Incident)
                .where(col(Incident.id) == incident_id)
                .where(col(Incident.reminder_sending_since) == held)
                .values(reminder_sending_since=now),
            )
        return now if taken else None

    # --- telling the commander about a problem, once --------------------------------------

    async def take_report(self, incident_id: int, problem: str) -> bool:
        """True for exactly one caller per distinct problem: that one tells the commander."""
        async with self.store.session() as s:
            return await _changed(
                s,
                update(Incident)
                .where(col(Incident.id) == incident_id)
                .where(
                    col(Incident.problem_reported).is_(None)
                    | (col(Incident.problem_reported) != problem)
                )
                .values(problem_reported=problem),
            )

    async def release_reminder(self, session: AsyncSession, incident_id: int) -> None:
        locked = await self.store.locked(session, incident_id)
        locked.reminder_sending_since = None
