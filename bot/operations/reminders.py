"""Status-update reminders: scheduled from each incident's stored due time, and sent.

The database is the truth. An APScheduler job only says "look at this incident around
then"; the reminder is sent by whichever process first moves the stored due time forward
(a compare-and-set on the row, `Claims.take_reminder`), so restarts and several processes
never send one twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from datetime import UTC, datetime, timedelta

from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from slack_sdk.errors import SlackApiError

from bot.base.errors import log_failure
from bot.base.work import InFlight
from bot.model import rules
from bot.model.tables import ChannelState, Incident, TimelineEntry
from bot.operations.deps import Deps, Operation
from bot.views import blocks

log = logging.getLogger(__name__)

# Reminders claimed in one transaction, and posted at once within a batch. Each is in its
# own channel, so Slack's per-channel posting limit does not bind; the bound keeps a burst
# from taking every database connection and the whole event loop (claiming, recording and
# scheduling 500 at once stalled the loop for over 100 ms).
BATCH = 100
SENDS_AT_ONCE = 16
# Due times the periodic sync matches to jobs between two turns of the event loop.
SYNC_SLICE = 200
# Reminders a batch reschedules, or hands to the cards' refresh, between two turns.
AFTER_SLICE = 25


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def marker(inc: Incident) -> str:
    """Text every reminder of `inc` contains, to find one whose sender died mid-way."""
    return f"{inc.ref} needs a status update"


class Reminders(Operation):
    def __init__(
        self,
        deps: Deps,
        inflight: InFlight,
        *,
        scheduler: AsyncIOScheduler,
        sync_seconds: float = 30.0,
    ):
        super().__init__(deps)
        self.inflight = inflight
        self.scheduler = scheduler
        self.sync_seconds = sync_seconds
        self._queued: dict[int, datetime] = {}
        self._sender: asyncio.Task[None] | None = None

    # --- scheduling --------------------------------------------------------------------

    async def start(self) -> None:
        # Rebuild every open incident's job; any that fell due while the bot was down
        # fires once now, not once per missed interval.
        await self.sync()
        # Other processes change due times too (updates, snoozes, new incidents); a
        # periodic look at the database keeps this process's jobs in step with them.
        self.scheduler.add_job(
            self.sync,
            "interval",
            seconds=self.sync_seconds,
            id="sync",
            coalesce=True,
            max_instances=1,
            replace_existing=True,
        )

    async def sync(self) -> None:
        # A stop waits for it before the database closes.
        async with self.inflight.housekeeping():
            try:
                due_times = await self.store.reminder_due_times()
                for n, (incident_id, due, state) in enumerate(due_times, start=1):
                    self._match(incident_id, True, due, state)
                    if n % SYNC_SLICE == 0:
                        # Thousands of open incidents: acks go out in between.
                        await asyncio.sleep(0)
            except Exception as e:
                log_failure(log, "could not read reminder due times", e)

    @staticmethod
    def job_id(incident_id: int) -> str:
        return f"reminder:{incident_id}"

    async def schedule(self, incident: Incident) -> None:
        """Make this process's job match the stored due time (or remove it)."""
        self._match(incident.pk, incident.is_open, incident.next_update_due, incident.channel_state)

    def _match(
        self, incident_id: int, is_open: bool, due: datetime | None, channel_state: str
    ) -> None:
        job_id = self.job_id(incident_id)
        # No reminder where nobody could read it: an archived or vanished channel (the
        # commander was told); it resumes once the channel is back.
        if not is_open or due is None or channel_state != ChannelState.ok:
            with contextlib.suppress(JobLookupError):
                self.scheduler.remove_job(job_id)
            return
        job = self.scheduler.get_job(job_id)
        if job is not None and job.args == (incident_id, due):
            return
        self._at(due, incident_id, due)

    def _at(self, when: datetime, incident_id: int, due: datetime) -> None:
        self.scheduler.add_job(
            self.fire,
            "date",
            run_date=when,
            args=(incident_id, due),
            id=self.job_id(incident_id),
            replace_existing=True,
            # Late is better than never: a reminder due while the loop was busy, or
            # the bot was down, still goes out (once).
            misfire_grace_time=None,
            coalesce=True,
        )

    async def fire_due(self) -> None:
        """Fire at once every reminder job whose time has come by `clock`, as the scheduler
        does when it comes, and return once their batch is sent.

        The scheduler wakes by the wall clock; tests move an injected clock instead and run
        the round with this rather than wait for it. The bot itself never calls it."""
        now = self.clock()
        for job in self.scheduler.get_jobs():
            due = job.next_run_time
            if not job.id.startswith("reminder:") or due is None or due > now:
                continue
            # A date job runs once: the scheduler drops it as it fires, and whatever the
            # reminder schedules next takes its place.
            job.remove()
            await self.fire(*job.args)
        if self._sender is not None:
            await self._sender

    # --- sending -------------------------------------------------------------------------

    async def fire(self, incident_id: int, due: datetime) -> None:
        """The job for one incident: queue it for the next batch. Reminders falling due
        together (a burst after a restart, many incidents declared at once) are claimed in
        one transaction and posted a bounded number at a time."""
        self._queued[incident_id] = due
        if self._sender is None or self._sender.done():
            self._sender = self.inflight.spawn(self._send_queued())

    async def _send_queued(self) -> None:
        while self._queued:
            batch = dict(itertools.islice(self._queued.items(), BATCH))
            for incident_id in batch:
                del self._queued[incident_id]
            try:
                await self._send_batch(batch)
            except Exception as e:
                # Nothing was claimed, or what was is settled by the repair pass; the next
                # sync schedules these again.
                log_failure(log, f"{len(batch)} reminders could not be sent", e)

    async def _send_batch(self, batch: dict[int, datetime]) -> None:
        taken, others = await self.claims.take_reminders(
            batch, lambda severity: rules.reminder_interval(self.settings, severity)
        )
        for n, inc in enumerate(others, start=1):
            if n % AFTER_SLICE == 0:
                await asyncio.sleep(0)
            if inc.reminder_sending_since is not None and inc.is_open:
                # The previous reminder is still out, or its sender died: the careful path.
                self.inflight.spawn(self._fire_one(inc.pk, batch[inc.pk]))
            else:
                # Someone posted an update or snoozed, another process sent it, or the
                # channel cannot take it now.
                await self.schedule(inc)
        if not taken:
            return
        roles = await self.store.roles_of(inc.pk for inc in taken)
        held = taken[0].reminder_sending_since
        assert held is not None
        ids = [inc.pk for inc in taken]
        sending = asyncio.Semaphore(SENDS_AT_ONCE)

        async def one(inc: Incident) -> str | None:
            async with sending:
                try:
                    return await self._post(inc, roles.get(inc.pk, {}))
                except Exception as e:
                    # The claim stays: the repair pass looks in the channel, then records
                    # or sends it, once.
                    log_failure(log, f"reminder for {inc.ref} failed", e)
                    return None

        async def renew(at: datetime) -> datetime | None:
            return await self.claims.retake_reminders(ids, at)

        posted = await self.claims.keep_alive(
            renew, held, asyncio.gather(*(one(inc) for inc in taken))
        )
        sent = [(inc, ts) for inc, ts in zip(taken, posted, strict=True) if ts is not None]
        await self._record_all([(inc, batch[inc.pk], ts) for inc, ts in sent])
        unusable = [inc.pk for inc in taken if not inc.channel_usable]
        if unusable:
            # No channel yet (its declaration is being completed) or none any more: let go
            # of the claim; the next one is scheduled.
            await self.store.release_reminders(unusable)
        for n, inc in enumerate(taken, start=1):
            inc.reminder_sending_since = None
            await self.schedule(inc)
            if n % AFTER_SLICE == 0:
                await asyncio.sleep(0)  # acks and other reminders go out in between
        # The cards show the next due time; they follow once the reminders are out.
        for n, (inc, _) in enumerate(sent, start=1):
            self.surfaces.refresh_later(inc.pk)
            if n % AFTER_SLICE == 0:
                await asyncio.sleep(0)

    async def _post(self, inc: Incident, roles: dict[str, str]) -> str | None:
        if not inc.channel_usable:
            return None
        mention = await self._who(inc, roles)
        since = (
            blocks.when(inc.last_update_at, "{time} ({ago})")
            if inc.last_update_at
            else "none since it was declared"
        )
        text, body = blocks.reminder(inc, mention, since)
        return await self.surfaces.post(inc, text, body)

    async def _record_all(self, sent: list[tuple[Incident, datetime, str]]) -> None:
        if not sent:
            return
        async with self.store.session() as s:
            await self.store.add_entries(s, [self._entry(inc, due, ts) for inc, due, ts in sent])
            await self.store.release_reminders([inc.pk for inc, _, _ in sent], session=s)

    async def _fire_one(self, incident_id: int, due: datetime) -> None:
        try:
            await self._fire(incident_id, due)
        except Exception as e:
            log_failure(log, f"reminder for incident {incident_id} failed", e)

    async def _fire(self, incident_id: int, due: datetime) -> None:
        current = await self.store.incident(incident_id)
        sending = current.reminder_sending_since if current is not None else None
        if current is not None and sending is not None:
            if sending > self.clock() - self.claims.lease:
                # The previous reminder is still being sent (or its sender just died):
                # look again once that can be told apart, instead of overlapping it.
                self._at(sending + self.claims.lease + timedelta(milliseconds=50), incident_id, due)
                return
            await self.settle(current, resend=False)
        claimed = await self.claims.take_reminder(
            incident_id, due, lambda severity: rules.reminder_interval(self.settings, severity)
        )
        if claimed is None:
            # Someone posted an update, snoozed, or another process sent it.
            current = await self.store.incident(incident_id)
            if current is not None:
                await self.schedule(current)
            return
        await self.send(claimed, due)

    async def send(self, inc: Incident, due: datetime | None) -> None:
        """Post one reminder this process has claimed, and record it."""
        if not inc.channel_usable:
            await self.store.save_fields(inc.pk, reminder_sending_since=None)
            latest = await self.store.incident(inc.pk)
            if latest is not None:
                await self.schedule(latest)
            return
        incident_id = inc.pk

        async def renew(held: datetime) -> datetime | None:
            return await self.claims.retake_reminder(incident_id, held)

        held = inc.reminder_sending_since
        assert held is not None
        ts = await self.claims.keep_alive(
            renew, held, self._post(inc, await self.store.roles(incident_id))
        )
        assert ts is not None
        await self._record(inc, due or held, ts)
        await self.surfaces.refresh(incident_id)
        incident = await self.store.incident(incident_id)
        if incident is not None:
            await self.schedule(incident)

    async def _who(self, inc: Incident, roles: dict[str, str]) -> str | None:
        """Whom the reminder mentions: the comms lead, else the commander, else the
        declarer, passing over deactivated accounts; nobody (the channel) if none is left."""
        for user_id in (roles.get("comms"), roles.get("commander"), inc.declared_by):
            if not user_id:
                continue
            try:
                user = await self.directory.user(user_id)
            except SlackApiError:
                return user_id  # Slack cannot say: mention them rather than nobody
            if user is not None and not user.get("deleted"):
                return user_id
        return None

    def _entry(self, inc: Incident, due: datetime, ts: str) -> TimelineEntry:
        return rules.entry(
            inc,
            "reminder",
            None,
            "Reminder: no status update",
            {"due": due.isoformat(), "last_update": _iso(inc.last_update_at), "ts": ts},
            now=self.clock(),
            at=datetime.fromtimestamp(float(ts), UTC),
            source_key=f"reminder:{ts}",
        )

    async def _record(self, inc: Incident, due: datetime, ts: str) -> None:
        async with self.store.session() as s:
            await self.store.add_entry(s, self._entry(inc, due, ts))
            await self.claims.release_reminder(s, inc.pk)

    async def settle(self, inc: Incident, *, resend: bool) -> None:
        """A reminder claimed by a process that died (or failed) before noting it sent:
        record it if it was posted; otherwise send it (`resend`), or let the reminder being
        claimed now take its place."""
        held = inc.reminder_sending_since
        if held is None or not inc.is_open:
            return
        now = await self.claims.retake_reminder(inc.pk, held)
        if now is None:
            return  # someone else is settling it
        inc.reminder_sending_since = now
        try:
            known = {
                str((e.data or {}).get("ts"))
                for e in await self.store.timeline(inc.pk)
                if e.kind == "reminder"
            }
            posted = await self.surfaces.already_posted(
                inc, held - self.claims.lease, marker(inc), known
            )
            if posted is not None:
                await self._record(inc, held, posted)
            elif resend:
                await self.send(inc, held)
            else:
                await self.store.save_fields(inc.pk, reminder_sending_since=None)
        except Exception as e:
            log_failure(log, f"could not settle a reminder of {inc.ref}", e)
