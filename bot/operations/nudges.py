"""Nudges that close the loop after (or during a quiet) incident, each once per incident:

- postmortem: resolved NUDGE_POSTMORTEM_HOURS ago and no postmortem draft yet;
- follow_ups: resolved NUDGE_FOLLOW_UPS_HOURS ago with open follow-ups nobody owns;
- inactive: open with no activity by a person for NUDGE_INACTIVE_DAYS;
- archive: resolved ARCHIVE_AFTER_DAYS ago (off by default): a closing message, then the
  channel is archived.

A periodic pass finds what is due from the database; a nudge is recorded (one row per
incident and kind, whichever process gets there first) before it goes out, so none is sent
twice. One Slack refused for a passing reason is forgotten and tried on the next pass.
Drills get no nudges about their aftermath, and incidents resolved long before the due
time (a bot installed or turned on later) are left alone.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta

from slack_sdk.errors import SlackApiError
from slack_sdk.models.blocks import Block

from bot.base.errors import log_failure, slack_error
from bot.model.tables import Incident
from bot.operations.deps import Deps, Operation
from bot.views import blocks

log = logging.getLogger(__name__)

# How far back a pass looks past each due time: older incidents are not nudged at all.
LOOK_BACK = timedelta(days=30)
# Slack errors that will not pass by retrying: the nudge stays recorded as given up.
FINAL = {"channel_not_found", "is_archived", "not_in_channel", "missing_scope", "restricted_action"}


class Nudges(Operation):
    def __init__(self, deps: Deps):
        super().__init__(deps)

    async def run(self) -> None:
        """One pass over every kind that is switched on."""
        s = self.settings
        for kind, after, check in (
            ("postmortem", timedelta(hours=s.nudge_postmortem_hours), self._postmortem),
            ("follow_ups", timedelta(hours=s.nudge_follow_ups_hours), self._follow_ups),
            ("archive", timedelta(days=s.archive_after_days), self._archive),
        ):
            if after > timedelta(0):
                await self._after_resolution(kind, after, check)
        if s.nudge_inactive_days > 0:
            await self._inactive(timedelta(days=s.nudge_inactive_days))

    async def _after_resolution(
        self,
        kind: str,
        after: timedelta,
        send: Callable[[list[Incident]], Awaitable[None]],
    ) -> None:
        """The incidents resolved `after` ago (within LOOK_BACK) that this kind has not
        been sent for, handed over together, so a pass asks the database once per kind."""
        now = self.clock()
        due = await self.store.resolved_between(now - after - LOOK_BACK, now - after)
        done = await self.store.nudged([kind])
        await send(
            [
                inc
                for inc in due
                if (inc.pk, kind) not in done
                and inc.channel_usable
                and (kind == "archive" or not inc.drill)
            ]
        )

    async def _once(self, inc: Incident, kind: str, send: Callable[[], Awaitable[object]]) -> bool:
        """Send once: recorded first, forgotten again if Slack fails for a passing reason."""
        if not await self.store.claim_nudge(inc.pk, kind, self.clock()):
            return False
        try:
            await send()
        except SlackApiError as e:
            if slack_error(e) not in FINAL:
                await self.store.forget_nudge(inc.pk, kind)
            log_failure(log, f"could not send the {kind} nudge of {inc.ref}", e)
            return False
        except Exception as e:
            await self.store.forget_nudge(inc.pk, kind)
            log_failure(log, f"could not send the {kind} nudge of {inc.ref}", e)
            return False
        log.info("sent the %s nudge of %s", kind, inc.ref)
        return True

    async def _commander(self, inc: Incident) -> str:
        roles = await self.store.roles(inc.pk)
        return roles.get("commander") or inc.declared_by

    async def _postmortem(self, incidents: list[Incident]) -> None:
        written = await self.store.postmortem_ids([i.pk for i in incidents])
        hours = self.settings.nudge_postmortem_hours
        for inc in incidents:
            if inc.pk in written:
                continue
            text, body = blocks.nudge_postmortem(inc, await self._commander(inc), hours)
            await self._once(inc, "postmortem", self._poster(inc, text, body))

    async def _follow_ups(self, incidents: list[Incident]) -> None:
        unowned = await self.store.unowned_follow_ups([i.pk for i in incidents])
        for inc in incidents:
            items = unowned.get(inc.pk)
            if not items:
                continue
            commander = await self._commander(inc)
            text, body = blocks.nudge_follow_ups(inc, commander, [f.text for f in items])
            await self._once(inc, "follow_ups", self._poster(inc, text, body))

    async def _inactive(self, after: timedelta) -> None:
        now = self.clock()
        open_ = [i for i in await self.store.all_open() if i.channel_usable and not i.drill]
        done = await self.store.nudged(["inactive"])
        active = await self.store.last_activity([i.pk for i in open_])
        for inc in open_:
            if (inc.pk, "inactive") in done:
                continue
            last = max(filter(None, (inc.declared_at, inc.last_update_at, active.get(inc.pk))))
            if now - last < after:
                continue
            await self._quiet(inc, now - last)

    async def _quiet(self, inc: Incident, quiet: timedelta) -> bool:
        commander = await self._commander(inc)
        text, body = blocks.nudge_inactive(inc, commander, quiet)
        return await self._once(inc, "inactive", self._poster(inc, text, body))

    async def _archive(self, incidents: list[Incident]) -> None:
        """The closing message, then the archive: two steps recorded apart, so a retry of
        the archive never posts the message again."""
        told = await self.store.nudged(["archive_notice"])
        days = self.settings.archive_after_days
        for inc in incidents:
            text, body = blocks.archive_notice(inc, days)
            if (inc.pk, "archive_notice") not in told and not await self._once(
                inc, "archive_notice", self._poster(inc, text, body)
            ):
                continue
            await self._once(inc, "archive", functools.partial(self.surfaces.archive, inc))

    def _poster(self, inc: Incident, text: str, body: list[Block]) -> Callable[[], Awaitable[str]]:
        return functools.partial(self.surfaces.post, inc, text, body)
