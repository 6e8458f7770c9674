"""Showing the stored state again on every surface (coalesced, in the background when asked), and
the channel changing under the bot."""

from __future__ import annotations

import logging
from collections.abc import Awaitable

from slack_sdk.errors import SlackApiError

from bot.base.errors import log_failure, slack_error
from bot.model.tables import ChannelState, Incident
from bot.outbound.slack.surfaces.base import RENDER_ROUNDS, all_steps
from bot.outbound.slack.surfaces.provisioning import Provisioning
from bot.views import blocks

log = logging.getLogger(__name__)


class Refresh(Provisioning):
    async def refresh(self, incident_id: int, *, only_behind: bool = False) -> list[str]:
        """Show the stored state again (card, topic, announcement), repairing what people
        changed: a deleted card or announcement is posted again, an unpinned card pinned.
        Returns what Slack would not show, as `surface: error`; those are recorded, reported
        once to the commander, and tried again later.

        `only_behind`: after a change, when Slack shows the stored version already (a render
        that waited for the lock found the one before it had shown the latest state), do
        nothing. Changes arriving faster than Slack takes them cost one render per wait,
        not one per change."""
        # One render at a time per incident in this process; across processes, whoever
        # renders last looks again and renders once more if the state moved on meanwhile.
        async with self._render_locks.hold(incident_id):
            for round_ in range(RENDER_ROUNDS):
                state = await self.state(incident_id)
                inc = state.incident
                if not inc.provisioned:
                    await self.provision(incident_id)
                    return []
                # Only before rendering: once this render went out, a newer one from another
                # process may have landed first, so a changed version means render again.
                if only_behind and round_ == 0 and inc.shown_version >= inc.version:
                    return []
                problems = await self._render(state)
                if problems:
                    await self._trouble(inc, problems)
                    return problems
                await self.store.mark_shown(incident_id, inc.version)
                latest = await self.store.incident(incident_id)
                if latest is None or latest.version == inc.version:
                    break
            return []

    def refresh_later(self, incident_id: int) -> None:
        """Refresh in the background, a bounded number at a time. Requests for an incident
        whose refresh has not started yet are one: it reads the latest state when it runs."""
        if incident_id in self._waiting:
            return
        self._waiting.add(incident_id)
        self.inflight.spawn(self._refresh_later(incident_id))

    async def _refresh_later(self, incident_id: int) -> None:
        async with self._background:
            self._waiting.discard(incident_id)
            try:
                await self.refresh(incident_id, only_behind=True)
            except Exception as e:
                # The catch-up pass renders what is behind.
                log_failure(log, f"could not refresh incident {incident_id}", e)

    async def _render(self, state: blocks.IncidentState) -> list[str]:
        inc = state.incident
        problems: list[str] = []
        steps: list[Awaitable[None]] = []
        if inc.channel_usable:
            steps.append(self._surface("card", self._post_card(state), problems))
            steps.append(self._surface("topic", self._set_topic(state), problems))
        else:
            problems.append(f"channel: {inc.channel_state}")
        if self._announces(inc):
            steps.append(self._surface("announcement", self._announce(state), problems))
        await all_steps(steps)
        self.changed(inc)
        return problems

    async def channel_changed(self, inc: Incident, state: ChannelState) -> None:
        """The incident's channel was archived, unarchived, deleted or (re)joined."""
        await self.store.save_fields(
            inc.pk, channel_state=state.value, render_retry_at=None, problem_reported=None
        )
        if state is ChannelState.ok:
            await self.refresh(inc.pk)
        else:
            await self._trouble(inc, [f"channel: {state.value}"])

    async def rejoin(self, inc: Incident) -> bool:
        """Join the incident's public channel again; False when Slack will not let the bot."""
        try:
            await self.client.conversations_join(channel=str(inc.channel_id))
        except SlackApiError as e:
            log.warning("could not join the channel of %s again: %s", inc.ref, slack_error(e))
            return False
        log.info("joined the channel of %s again", inc.ref)
        return True

    async def archive(self, inc: Incident) -> None:
        """Archive the incident's channel on purpose (not a problem to report): recorded
        first, so Slack's channel_archive event finds nothing to do."""
        assert inc.channel_id
        await self.store.save_fields(inc.pk, channel_state=ChannelState.archived.value)
        try:
            await self.client.conversations_archive(channel=inc.channel_id)
        except SlackApiError as e:
            if slack_error(e) != "already_archived":
                await self.store.save_fields(inc.pk, channel_state=ChannelState.ok.value)
                raise
        inc.channel_state = ChannelState.archived.value
