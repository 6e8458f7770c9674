"""Finish what a crash or a Slack outage left half-done: declarations whose Slack side is
incomplete, reminders claimed but never recorded, and status updates stored but never
posted. Each piece is claimed first, and looked for in Slack before anything is resent."""

from __future__ import annotations

import logging

from bot.base.errors import log_failure
from bot.operations.deps import Deps, Operation
from bot.operations.reminders import Reminders
from bot.views import blocks

log = logging.getLogger(__name__)

# Cards whose pin each pass looks at, in rotation over the open incidents: a pass every
# 15 s (half the default lease) asks pins.list 8 times a minute, within its Tier 2 (20).
PIN_CHECKS_PER_PASS = 2


class Repair(Operation):
    def __init__(self, deps: Deps, reminders: Reminders):
        super().__init__(deps)
        self.reminders = reminders
        # The last incident whose pin was looked at: the next pass goes on from there.
        self._pins_after = 0

    async def run(self) -> None:
        await self.declarations()
        now = self.claims.clock()
        for inc in await self.store.stuck_reminders(now - self.claims.lease):
            await self.reminders.settle(inc, resend=True)
        await self.updates()
        await self.surfaces_behind()
        await self.pins()

    async def pins(self) -> None:
        """Pin again a card that Slack no longer shows pinned although no event said so (an
        event lost to a dropped socket or a restart), a few open incidents per pass."""
        cards = await self.store.cards_after(self._pins_after, PIN_CHECKS_PER_PASS)
        if not cards and self._pins_after:
            self._pins_after = 0  # round again from the first open incident
            cards = await self.store.cards_after(0, PIN_CHECKS_PER_PASS)
        for inc in cards:
            self._pins_after = inc.pk
            try:
                if await self.surfaces.card_still_pinned(inc):
                    continue
                log.info("the card of %s is no longer pinned; pinning it again", inc.ref)
                await self.store.save_fields(inc.pk, card_pinned=False)
                await self.surfaces.refresh(inc.pk)
            except Exception as e:
                log_failure(log, f"could not look at the pin of {inc.ref}", e)

    async def surfaces_behind(self) -> None:
        """Catch Slack up with stored changes it did not show (Slack was down, a surface
        was refused); a surface Slack keeps refusing is looked at again after a backoff."""
        for inc in await self.store.behind(self.claims.clock()):
            if self.surfaces.paced("chat.update", "conversations.setTopic"):
                # Slack is pacing these calls: the rest catch up in the background, a few
                # at a time, and this pass goes on to the other repairs meanwhile.
                self.surfaces.refresh_later(inc.pk)
                continue
            try:
                problems = await self.surfaces.refresh(inc.pk, only_behind=True)
            except Exception as e:
                log_failure(log, f"could not show {inc.ref}", e)
                continue
            if not problems:
                log.info("Slack shows %s as stored again", inc.ref)

    async def declarations(self) -> None:
        """Queued, set up a few at a time at Slack's pace (a pass is never held up by it)."""
        for inc in await self.store.unprovisioned(self.claims.clock()):
            self.surfaces.provision_later(inc.pk)

    async def updates(self) -> None:
        now = self.claims.clock()
        for update in await self.store.unposted_updates(now - self.claims.lease):
            if not self.claims.update_is_free(update.message_ts):
                continue  # someone is posting it right now
            mark = await self.claims.take_update(update.pk, update.message_ts)
            if mark is None:
                continue
            inc = await self.store.incident(update.incident_id)
            if inc is None or not inc.channel_usable:
                continue  # posted once the channel can take it again
            try:
                text, _ = blocks.status_update(inc, update, self.settings)
                posted = await self.surfaces.already_posted(
                    inc, update.posted_at - self.claims.lease, text[:120], set()
                )
                if posted is not None:
                    await self.store.save_update_ts(update.pk, posted)
                else:
                    await self.surfaces.post_update(inc, update, mark)
                    log.info("posted an update of %s that a restart had interrupted", inc.ref)
                await self.surfaces.refresh(inc.pk)
            except Exception as e:
                log_failure(log, f"could not repost an update of {inc.ref}", e)
