"""Status-update reminders: scheduled from each incident's stored due time, and sent.

The database is the truth. An APScheduler job only says "look at this incident around
then"; the reminder is sent by whichever process first moves the stored due time forward
(a compare-and-set on the row, `Claims.take_reminder`), so restarts and several processes
never send one twice.
"""

from __future__ import annotations

import contextlib
import logging
from datetime import UTC, datetime, timedelta

from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from slack_sdk.errors import SlackApiError

from bot.errors import log_failure
from bot.incidents import rules
from bot.settings import Settings
from bot.slack import blocks
from bot.slack.directory import Directory
from bot.slack.surfaces import Surfaces
from bot.store import ChannelState, Claims, Incident, Store, utcnow
from bot.store.claims import Clock
from bot.work import InFlight

log = logging.getLogger(__name__)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def marker(inc: Incident) -> str:
    """Text every reminder of `inc` contains, to find one whose sender died mid-way."""
    return f"{inc.ref} needs a status update"


class Reminders:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        claims: Claims,
        surfaces: Surfaces,
        directory: Directory,
        inflight: InFlight,
        *,
        scheduler: AsyncIOScheduler,
        clock: Clock = utcnow,
        sync_seconds: float = 30.0,
    ):
        self.settings = settings
        self.store = store
        self.claims = claims
        self.surfaces = surfaces
        self.directory = directory
        self.inflight = inflight
        self.scheduler = scheduler
        self.clock = clock
        self.sync_seconds = sync_seconds

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
        try:
            for incident in await self.store.reminder_due_times():
                await self.schedule(incident)
        except Exception as e:
            log_failure(log, "could not read reminder due times", e)

    @staticmethod
    def job_id(incident_id: int) -> str:
        return f"reminder:{incident_id}"

    async def schedule(self, incident: Incident) -> None:
        """Make this process's job match the stored due time (or remove it)."""
        job_id = self.job_id(incident.pk)
        due = incident.next_update_due
        # No reminder where nobody could read it: an archived or vanished channel (the
        # commander was told); it resumes once the channel is back.
        if not incident.is_open or due is None or incident.channel_state != ChannelState.ok:
            with contextlib.suppress(JobLookupError):
                self.scheduler.remove_job(job_id)
            return
        job = self.scheduler.get_job(job_id)
        if job is not None and job.args == (incident.id, due):
            return
        self._at(due, incident.pk, due)

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

    def next_run(self, incident_id: int) -> datetime | None:
        job = self.scheduler.get_job(self.job_id(incident_id))
        return job.next_run_time if job is not None else None

    # --- sending -------------------------------------------------------------------------

    async def fire(self, incident_id: int, due: datetime) -> None:
        async with self.inflight.track():
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
        """Post the reminder this process has claimed, and record it."""
        if not inc.channel_usable:
            # No channel yet (its declaration is being completed) or none any more: a
            # reminder there reaches nobody. Let go of the claim; the next one is scheduled.
            await self.store.save_fields(inc.pk, reminder_sending_since=None)
            latest = await self.store.incident(inc.pk)
            if latest is not None:
                await self.schedule(latest)
            return
        mention = await self._who(inc)
        since = (
            blocks.when(inc.last_update_at, "{time} ({ago})")
            if inc.last_update_at
            else "none since it was declared"
        )
        text, body = blocks.reminder(inc, mention, since)
        incident_id = inc.pk

        async def renew(held: datetime) -> datetime | None:
            return await self.claims.retake_reminder(incident_id, held)

        held = inc.reminder_sending_since
        assert held is not None
        ts = await self.claims.keep_alive(renew, held, self.surfaces.post(inc, text, body))
        await self._record(inc, due or held, ts)
        await self.surfaces.refresh(incident_id)
        incident = await self.store.incident(incident_id)
        if incident is not None:
            await self.schedule(incident)

    async def _who(self, inc: Incident) -> str | None:
        """Whom the reminder mentions: the comms lead, else the commander, else the
        declarer, passing over deactivated accounts; nobody (the channel) if none is left."""
        roles = await self.store.roles(inc.pk)
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

    async def _record(self, inc: Incident, due: datetime, ts: str) -> None:
        async with self.store.session() as s:
            await self.store.add_entry(
                s,
                rules.entry(
                    inc,
                    "reminder",
                    None,
                    "Reminder: no status update",
                    {"due": due.isoformat(), "last_update": _iso(inc.last_update_at), "ts": ts},
                    now=self.clock(),
                    at=datetime.fromtimestamp(float(ts), UTC),
                    source_key=f"reminder:{ts}",
                ),
            )
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
