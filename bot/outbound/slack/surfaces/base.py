"""What every surface shares: the incident's state as Slack should show it, Slack's pacing, the
channel calls that find out what happened to the channel, and telling the commander what Slack
will not show."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import timedelta
from typing import Any, TypeVar

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.base.errors import slack_error
from bot.base.settings import Settings
from bot.base.work import InFlight, KeyedLocks
from bot.model.tables import ChannelState, Incident
from bot.outbound.slack.budget import Budget
from bot.outbound.slack.directory import Directory
from bot.outbound.store import Claims, Store
from bot.views import blocks

# A conversation as conversations.create answers it.
Channel = Mapping[str, Any]
# An incident card: its notification text and its blocks.
Card = tuple[str, list[dict[str, Any]]]

log = logging.getLogger(__name__)
T = TypeVar("T")

# How often a render follows the state if other processes keep changing it meanwhile.
RENDER_ROUNDS = 3
# When Slack will not show something (an archived channel, a missing permission), how long
# before the bot looks again on its own; an event that changes things looks at once.
RENDER_BACKOFF = timedelta(minutes=10)
# Background refreshes (after reminders) running at once: leaves database connections and
# Slack's budget for what people are waiting on.
BACKGROUND_RENDERS = 4
# Declarations set up at once in the background (`provision_later`): Slack's pacing, not
# their number, sets how fast they go.
PROVISIONERS = 2
# Announcements whose content this process remembers (the most recently shown).
KEEP_ANNOUNCED = 10_000
# What an error on a call in the incident's channel says about the channel.
CHANNEL_ERRORS = {
    "is_archived": ChannelState.archived,
    "channel_not_found": ChannelState.gone,
    "not_in_channel": ChannelState.gone,
}


async def all_steps(steps: list[Awaitable[None]]) -> None:
    """Run independent Slack steps together; the first failure is raised after all ended."""
    for result in await asyncio.gather(*steps, return_exceptions=True):
        if isinstance(result, BaseException):
            raise result


class SurfacesBase:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        claims: Claims,
        client: AsyncWebClient,
        directory: Directory,
        inflight: InFlight,
    ):
        self.settings = settings
        self.store = store
        self.claims = claims
        self.client = client
        self.directory = directory
        self._provision_locks = KeyedLocks()
        self._render_locks = KeyedLocks()
        self.inflight = inflight
        # Background refreshes: not yet started, and how many run at once.
        self._waiting: set[int] = set()
        self._background = asyncio.Semaphore(BACKGROUND_RENDERS)
        # What each announcement shows, as this process last sent it (its ts and a digest
        # of its content): a render that would not change it makes no call.
        self._announced: dict[int, tuple[str, int]] = {}
        # Declarations whose Slack side waits to be set up, oldest first, with whom to tell.
        self._to_provision: dict[int, list[Callable[[Incident], Awaitable[None]]]] = {}
        self._provisioners = 0
        # Told whenever an incident's surfaces show a new state (the App Home follows).
        self.watchers: list[Callable[[Incident], None]] = []

    def changed(self, inc: Incident) -> None:
        for watcher in self.watchers:
            watcher(inc)

    async def state(self, incident_id: int) -> blocks.IncidentState:
        incident = await self.store.incident(incident_id)
        if incident is None:
            raise LookupError(f"no incident {incident_id}")
        return blocks.IncidentState(incident, await self.store.roles(incident_id))

    def paced(self, *methods: str, channel: str | None = None) -> bool:
        """Whether a call of any of `methods` (in `channel`) made now would wait for
        Slack's pacing."""
        budget: Budget | None = getattr(self.client, "budget", None)
        return budget is not None and any(budget.paced(m, channel) for m in methods)

    def _announces(self, inc: Incident) -> bool:
        # Drills are practice: nobody outside is told.
        return bool(self.settings.announcements_channel) and not inc.private and not inc.drill

    async def _surface(self, name: str, step: Awaitable[None], problems: list[str]) -> None:
        """Run one surface's Slack step; Slack's refusal becomes a problem, not an error."""
        try:
            await step
        except SlackApiError as e:
            log.warning("could not show the %s: %s", name, slack_error(e))
            problems.append(f"{name}: {slack_error(e)}")

    async def _trouble(self, inc: Incident, problems: list[str]) -> None:
        """Record what Slack would not show, to look again later, and tell the commander
        once per distinct problem."""
        problem = "; ".join(problems)[:255]
        retry = self.claims.clock() + RENDER_BACKOFF
        await self.store.save_fields(inc.pk, slack_problem=problem, render_retry_at=retry)
        if not await self.claims.take_report(inc.pk, problem):
            return  # told already, by this process or another
        roles = await self.store.roles(inc.pk)
        commander = roles.get("commander") or inc.declared_by
        text = blocks.slack_trouble(inc, problems, self.settings.announcements_channel)
        try:
            await self.client.chat_postMessage(channel=commander, text=text)
        except SlackApiError as e:
            log.warning("could not tell the commander of %s: %s", inc.ref, slack_error(e))
        log.warning("%s: Slack will not show %s", inc.ref, problem)

    async def _in_channel(self, inc: Incident, call: Callable[[], Awaitable[T]]) -> T:
        """A Web API call in the incident's channel. Removed from a public channel, the bot
        joins it again and retries once; an archived or vanished channel is recorded, so
        reminders stop and the commander hears about it."""
        try:
            return await call()
        except SlackApiError as e:
            error = slack_error(e)
            if error == "not_in_channel" and not inc.private:
                log.info("the bot was removed from the channel of %s; joining again", inc.ref)
                await self.client.conversations_join(channel=str(inc.channel_id))
                return await call()
            state = CHANNEL_ERRORS.get(error)
            if state is not None and inc.channel_state != state.value:
                # Found out by a refused call rather than an event: record it and tell
                # the commander, so reminders stop instead of failing on every interval.
                inc.channel_state = state.value
                await self.store.save_fields(inc.pk, channel_state=state.value)
                await self._trouble(inc, [f"channel: {state.value}"])
            raise
