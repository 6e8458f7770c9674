"""Status-update reminders: APScheduler jobs derived from each incident's stored due time.

The database is the truth. A job only says "look at this incident around then"; the
reminder is sent by whichever process first moves the stored due time forward (a
compare-and-set on the row), so restarts and several processes never send one twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime, timedelta

from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.incidents import Incidents, slack_error
from bot.store import Incident

log = logging.getLogger(__name__)


class Reminders:
    def __init__(self, ops: Incidents, *, sync_seconds: float = 30.0):
        self.ops = ops
        self.sync_seconds = sync_seconds
        self.scheduler = AsyncIOScheduler(timezone=UTC)
        self._inflight: set[asyncio.Task[None]] = set()
        ops.on_change.append(self.schedule)

    async def start(self) -> None:
        self.scheduler.start()
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

    async def stop(self, grace: float = 10.0) -> None:
        """Start nothing new, let reminders being sent finish, then stop."""
        if not self.scheduler.running:
            return
        self.scheduler.pause()
        if self._inflight:
            await asyncio.wait(list(self._inflight), timeout=grace)
        self.scheduler.shutdown(wait=False)

    async def sync(self) -> None:
        try:
            for incident in await self.ops.store.reminder_due_times():
                await self.schedule(incident)
        except Exception:
            log.exception("could not read reminder due times")

    @staticmethod
    def job_id(incident_id: int) -> str:
        return f"reminder:{incident_id}"

    async def schedule(self, incident: Incident) -> None:
        """Make this process's job match the stored due time (or remove it)."""
        job_id = self.job_id(incident.id)  # type: ignore[arg-type]
        due = incident.next_update_due
        if not incident.is_open or due is None:
            with contextlib.suppress(JobLookupError):
                self.scheduler.remove_job(job_id)
            return
        job = self.scheduler.get_job(job_id)
        if job is not None and job.args == (incident.id, due):
            return
        self.scheduler.add_job(
            self.fire,
            "date",
            run_date=due,
            args=(incident.id, due),
            id=job_id,
            replace_existing=True,
            # Late is better than never: a reminder due while the loop was busy, or
            # the bot was down, still goes out (once).
            misfire_grace_time=None,
            coalesce=True,
        )

    async def fire(self, incident_id: int, due: datetime) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._inflight.add(task)  # type: ignore[arg-type]
            task.add_done_callback(self._inflight.discard)  # type: ignore[arg-type]
        try:
            current = await self.ops.store.incident(incident_id)
            marker = current.reminder_sending_since if current is not None else None
            if current is not None and marker is not None:
                if marker > self.ops.clock() - self.ops.lease:
                    # The previous reminder is still being sent (or its sender just died):
                    # look again once that can be told apart, instead of overlapping it.
                    self.scheduler.add_job(
                        self.fire,
                        "date",
                        run_date=marker + self.ops.lease + timedelta(milliseconds=50),
                        args=(incident_id, due),
                        id=self.job_id(incident_id),
                        replace_existing=True,
                        misfire_grace_time=None,
                    )
                    return
                await self.ops.settle_stuck_reminder(current, resend=False)
            claimed = await self.ops.claim_reminder(incident_id, due)
            if claimed is None:
                # Someone posted an update, snoozed, or another process sent it.
                current = await self.ops.store.incident(incident_id)
                if current is not None:
                    await self.schedule(current)
                return
            await self.ops.send_reminder(claimed, due)
        except Exception as e:
            log.warning("reminder for incident %s failed: %s", incident_id, slack_error(e))

    def next_run(self, incident_id: int) -> datetime | None:
        job = self.scheduler.get_job(self.job_id(incident_id))
        return job.next_run_time if job is not None else None
