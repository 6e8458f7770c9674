"""The only writer of an incident's Slack surfaces: its channel, invitations, pinned card,
topic, announcement, posts and uploads.

Each surface is rendered from the stored incident under a per-incident lock, and each Slack
step's result is stored at once, so a retry (another process, a repair, a restart) resumes
after the last step that was done instead of doing it twice.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta
from typing import Any, TypeVar

from slack_sdk.errors import SlackApiError
from slack_sdk.models.blocks import Block
from slack_sdk.web.async_client import AsyncWebClient

from bot.base.errors import SlackFailure, log_failure, slack_error
from bot.base.settings import Settings
from bot.base.work import InFlight, KeyedLocks, after_its_request
from bot.model.tables import ChannelState, Incident, StatusUpdate, TimelineEntry
from bot.outbound.slack.budget import Budget
from bot.outbound.slack.directory import Directory
from bot.outbound.store import Claims, Store
from bot.views import blocks
from bot.views.text import channel_name, with_suffix

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


async def _all(steps: list[Awaitable[None]]) -> None:
    """Run independent Slack steps together; the first failure is raised after all ended."""
    for result in await asyncio.gather(*steps, return_exceptions=True):
        if isinstance(result, BaseException):
            raise result


class Surfaces:
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

    # --- provisioning: the Slack side of a declaration ----------------------------------

    def provision_later(
        self, incident_id: int, then: Callable[[Incident], Awaitable[None]] | None = None
    ) -> None:
        """Set up a declaration's Slack side in the background, a few at a time and in the
        order they came: what Slack's pacing holds back waits here as an id (and whom to
        tell), not as a task of its own with its lease renewed, however many there are.
        `then` hears of the incident once it is ready."""
        told = self._to_provision.setdefault(incident_id, [])
        if then is not None:
            told.append(then)
        while self._provisioners < PROVISIONERS and len(self._to_provision) > self._provisioners:
            self._provisioners += 1
            self.inflight.spawn(self._provision_queued())

    def queued(self, incident_id: int) -> bool:
        return incident_id in self._to_provision

    async def _provision_queued(self) -> None:
        try:
            while self._to_provision:
                incident_id = next(iter(self._to_provision))
                told = self._to_provision.pop(incident_id)
                try:
                    inc = await self.provision(incident_id)
                except Exception as e:
                    # Its lease is let go or runs out: the repair pass queues it again.
                    log_failure(log, f"could not complete declaration {incident_id}", e)
                    continue
                if not inc.provisioned:
                    continue  # another process holds it
                log.info("completed the declaration of %s", inc.ref)
                for then in told:
                    try:
                        await then(inc)
                    except Exception as e:
                        log_failure(log, f"could not tell that {inc.ref} is ready", e)
        finally:
            self._provisioners -= 1

    def start_channel(self, inc: Incident) -> asyncio.Future[Channel]:
        """Start creating a just-numbered incident's channel while its declaration is still
        being stored: the channel is the first step of the critical path. Hand the future
        to `provision`, or to `discard_channel` if the declaration is not stored."""
        return asyncio.ensure_future(self._new_channel(inc))

    async def discard_channel(self, creating: asyncio.Future[Channel]) -> None:
        """The channel of a declaration that was not stored after all: archived, so no
        incident channel exists without its incident."""
        try:
            channel = await creating
        except Exception:  # nothing was created, so nothing to undo
            return
        try:
            await self.client.conversations_archive(channel=channel["id"])
        except SlackApiError as e:
            log.warning("could not archive #%s: %s", channel.get("name"), slack_error(e))

    async def provision(
        self,
        incident_id: int,
        *,
        fresh: blocks.IncidentState | None = None,
        channel: Awaitable[Channel] | None = None,
    ) -> Incident:
        """Create what Slack shows for an incident; resumes where an earlier try stopped.
        `fresh`: the state of an incident this process has just stored, holding its lease,
        so the declaration's path to its card reads and writes nothing more first;
        `channel`: its channel, already being created (`start_channel`)."""
        async with self._provision_locks.hold(incident_id):
            lease = fresh.incident.provision_lease_until if fresh is not None else None
            if fresh is not None and lease is not None:
                state, held = fresh, lease
            else:
                state = await self.state(incident_id)
                if state.incident.provisioned:
                    return state.incident
                taken = await self.claims.take_provisioning(incident_id)
                if taken is None:
                    return state.incident  # another process is doing it right now
                held = taken

            async def renew(until: datetime) -> datetime | None:
                return await self.claims.renew_provisioning(incident_id, until)

            async def let_go(until: datetime) -> None:
                await self.claims.release_provisioning(incident_id, until)

            return await self.claims.keep_alive(
                renew, held, self._provision(state, channel), let_go=let_go
            )

    async def _provision(
        self, state: blocks.IncidentState, creating: Awaitable[Channel] | None = None
    ) -> Incident:
        inc = state.incident
        incident_id = inc.pk
        channel_saved: asyncio.Future[None] | None = None
        card: Card | None = None
        channel: Channel | None = None
        if not inc.channel_id:
            if creating is None:
                creating = asyncio.ensure_future(self._new_channel(inc))
            # Worked out while Slack creates the channel: the card is the next call.
            card = self._card(state)
            # Set on `inc`, which `state` holds.
            channel = await creating
            inc.channel_id, inc.channel_name = channel["id"], channel["name"]
        # After the channel exists the card is the critical path (create -> post card ->
        # pin); everything else waits until the card's call is answered, then runs
        # alongside the pin, so nothing delays the card's call or its answer.
        posted = asyncio.Event()

        async def after_card(step: Awaitable[None]) -> None:
            await posted.wait()
            await step

        if channel is not None:
            # Stored while the card is posted, not before. A retry that finds no channel
            # stored adopts the bot's own unused channel of that name rather than making
            # a second one.
            channel_saved = asyncio.ensure_future(
                after_card(
                    self.store.save_fields(
                        incident_id, channel_id=inc.channel_id, channel_name=inc.channel_name
                    )
                )
            )
        steps: list[Awaitable[None]] = [
            self._post_card(state, after=channel_saved, ready=card, posted=posted),
            after_card(self.invite(inc, {inc.declared_by, *state.roles.values()})),
            after_card(self._set_topic(state)),
        ]
        if channel_saved is not None:
            steps.append(channel_saved)
        problems: list[str] = []
        later = False
        if self._announces(inc):
            # The incident works without its announcement: a broken announcements channel
            # is reported, never a reason to call the declaration failed.
            announcing = self._surface("announcement", self._announce(state), problems)
            if self.paced("chat.postMessage", channel=self.settings.announcements_channel):
                # Slack posts about one message a second in a channel: under a burst of
                # declarations the announcements queue up there, and no declarer waits
                # for them to hear that their channel is ready.
                self.inflight.spawn(self._announce_later(inc, announcing, problems))
                later = True
            else:
                steps.append(after_card(announcing))
        await _all(steps)
        await self.bring_in(inc, inc.severity)
        # An announcement still to come leaves the incident behind what Slack shows, so a
        # stop before it goes out leaves it to the repair pass.
        shown = inc.version - 1 if later else inc.version
        await self.store.save_fields(
            incident_id, provisioned=True, provision_lease_until=None, shown_version=shown
        )
        inc.provisioned = True
        self.changed(inc)
        if problems:
            await self._trouble(inc, problems)
        return inc

    async def _announce_later(
        self, inc: Incident, announcing: Awaitable[None], problems: list[str]
    ) -> None:
        try:
            await announcing
            if problems:
                await self._trouble(inc, problems)
            else:
                await self.store.mark_shown(inc.pk, inc.version)
        except Exception as e:
            log_failure(log, f"could not announce {inc.ref}", e)

    async def _new_channel(self, inc: Incident) -> Channel:
        """Create the incident's channel (reading `inc`, never changing it)."""
        base = channel_name(
            self.settings.incident_channel_prefix,
            inc.number,
            f"drill {inc.title}" if inc.drill else inc.title,
        )
        name = base
        channel: Mapping[str, Any] | None = None
        for attempt in range(2, 60):
            try:
                resp = await self.client.conversations_create(name=name, is_private=inc.private)
                channel = resp["channel"]
                break
            except SlackApiError as e:
                if slack_error(e) != "name_taken":
                    raise SlackFailure(
                        f"{inc.ref} is recorded, but Slack would not create its channel "
                        f"(`{slack_error(e)}`)."
                    ) from e
                channel = await self._own_unused_channel(name)
                if channel is not None:
                    # Slack created it but the answer was lost (a crash or a dropped
                    # connection): take it instead of making a second channel.
                    break
                # A random suffix after many tries: a declaration never fails on naming.
                name = with_suffix(base, attempt if attempt < 50 else secrets.randbelow(10**6))
        if channel is None:
            raise SlackFailure(f"{inc.ref} is recorded, but no free channel name was found.")
        return channel

    async def _own_unused_channel(self, name: str) -> Mapping[str, Any] | None:
        """A channel of that name the bot created and no incident uses, if any."""
        async for page in await self.client.conversations_list(
            types="public_channel,private_channel", exclude_archived=True, limit=1000
        ):
            for channel in page.get("channels", []):
                if channel.get("name") == name:
                    if channel.get("creator") != self.directory.bot_user_id:
                        return None
                    taken = await self.store.incident_by_channel(channel["id"])
                    return dict(channel) if taken is None else None
        return None

    async def invite(self, inc: Incident, users: set[str]) -> None:
        users.discard(self.directory.bot_user_id or "")
        if not users or not inc.channel_id:
            return
        try:
            await self.client.conversations_invite(channel=inc.channel_id, users=sorted(users))
        except SlackApiError as e:
            if slack_error(e) != "already_in_channel":
                # Not fatal: the incident works and people can join the channel themselves.
                log.warning("could not invite people to %s: %s", inc.ref, slack_error(e))

    async def bring_in(self, inc: Incident, severity: str) -> None:
        """Invite whom SEVERITIES names for `severity` and say once on the timeline who
        was brought in and why. People and groups Slack cannot invite are named there too;
        the incident goes on without them."""
        level = self.settings.severity(severity)
        if level is None or not level.invite or not inc.channel_id:
            return
        people = {
            w for w in level.invite if not w.startswith("@") and w[:1] in "UW" and w.isupper()
        }
        groups, unknown = await self.directory.group_members(set(level.invite) - people)
        wanted = people | {u for members in groups.values() for u in members}
        wanted.discard(self.directory.bot_user_id or "")
        brought, failed = await self._invite_each(inc, wanted)
        text = f"Brought in for {severity}: " + (
            ", ".join(f"<@{u}>" for u in sorted(brought)) or "nobody new"
        )
        if groups:
            text += " (from " + ", ".join(f"@{g}" for g in sorted(groups)) + ")"
        if failed or unknown:
            missed = [f"<@{u}>" for u in sorted(failed)] + [f"@{g}" for g in unknown]
            text += "; could not bring in " + ", ".join(missed)
        async with self.store.session() as s:
            await self.store.add_entry(
                s,
                TimelineEntry(
                    incident_id=inc.pk,
                    kind="invite",
                    happened_at=self.claims.clock(),
                    recorded_at=self.claims.clock(),
                    text=text,
                    data={"severity": severity, "users": sorted(brought), "groups": sorted(groups)},
                    source_key=f"invite:{severity}",
                ),
            )

    async def _invite_each(self, inc: Incident, users: set[str]) -> tuple[set[str], set[str]]:
        """Invite `users` in one call; when Slack refuses it, one by one to find who."""
        if not users:
            return set(), set()
        channel = str(inc.channel_id)
        try:
            await self.client.conversations_invite(channel=channel, users=sorted(users))
            return users, set()
        except SlackApiError as e:
            if slack_error(e) == "already_in_channel" and len(users) == 1:
                return users, set()
        brought: set[str] = set()
        failed: set[str] = set()
        for user in sorted(users):
            try:
                await self.client.conversations_invite(channel=channel, users=[user])
                brought.add(user)
            except SlackApiError as e:
                (brought if slack_error(e) == "already_in_channel" else failed).add(user)
        return brought, failed

    # --- the card, the topic and the announcement -----------------------------------------

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
        await _all(steps)
        self.changed(inc)
        return problems

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

    async def withdraw_announcement(self, inc: Incident) -> None:
        """Take a now-private incident's announcement out of the public channel."""
        channel = self.settings.announcements_channel
        if not channel or not inc.announcement_ts:
            return
        try:
            await self.client.chat_delete(channel=channel, ts=inc.announcement_ts)
        except SlackApiError as e:
            if slack_error(e) != "message_not_found":
                raise
        await self.store.save_fields(inc.pk, announcement_ts=None)

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

    async def channel_changed(self, inc: Incident, state: ChannelState) -> None:
        """The incident's channel was archived, unarchived, deleted or (re)joined."""
        await self.store.save_fields(
            inc.pk, channel_state=state.value, render_retry_at=None, problem_reported=None
        )
        if state is ChannelState.ok:
            await self.refresh(inc.pk)
        else:
            await self._trouble(inc, [f"channel: {state.value}"])

    async def _set_topic(self, state: blocks.IncidentState) -> None:
        inc = state.incident
        assert inc.channel_id
        topic = blocks.topic(state, self.settings)
        if topic == inc.topic:
            return
        await self.client.conversations_setTopic(channel=inc.channel_id, topic=topic)
        await self.store.save_fields(inc.pk, topic=topic)

    def _card(self, state: blocks.IncidentState) -> Card:
        return blocks.card_text(state, self.settings), [
            b.to_dict() for b in blocks.incident_card(state, self.settings)
        ]

    async def _post_card(
        self,
        state: blocks.IncidentState,
        *,
        after: Awaitable[None] | None = None,
        ready: Card | None = None,
        posted: asyncio.Event | None = None,
    ) -> None:
        """Post (or update) and pin the card. `after`: the channel's own record, which the
        card's is never stored before (a card is found through its channel); `ready`: the
        card already worked out; `posted`: set once the post or update is answered."""
        try:
            posting = await self._show_card(state, ready)
        except BaseException:
            if posted is not None:
                posted.set()
            raise
        inc = state.incident
        steps: list[Awaitable[None]] = []
        if not inc.card_pinned:
            # The pin is on the critical path: started before anything waiting for the
            # card, so its call goes out first.
            steps.append(asyncio.ensure_future(self._pin(inc, str(inc.channel_id))))
        if posted is not None:
            # The pin's call goes out before anything waiting for the card starts its own.
            await after_its_request()
            posted.set()
        if posting:
            # Stored while it is pinned: the pin is on the critical path, the write is not.
            steps.append(self._save_card_ts(inc, after))
        await _all(steps)

    async def _show_card(self, state: blocks.IncidentState, ready: Card | None) -> bool:
        """Update the card, or post it when there is none (True: posted, ts not stored)."""
        inc = state.incident
        channel = inc.channel_id
        assert channel
        text, card = ready or self._card(state)
        if inc.card_ts is not None:
            ts = inc.card_ts
            try:
                await self._in_channel(
                    inc,
                    lambda: self.client.chat_update(channel=channel, ts=ts, text=text, blocks=card),
                )
            except SlackApiError as e:
                if slack_error(e) != "message_not_found":
                    raise
                # Someone deleted the card: post it again, and pin the new one.
                log.info("the card of %s was deleted; posting it again", inc.ref)
                inc.card_ts, inc.card_pinned = None, False
                await self.store.save_fields(inc.pk, card_ts=None, card_pinned=False)
            else:
                return False
        resp = await self._in_channel(
            inc,
            lambda: self.client.chat_postMessage(
                channel=channel, text=text, blocks=card, unfurl_links=False
            ),
        )
        inc.card_ts = resp["ts"]
        return True

    async def _save_card_ts(self, inc: Incident, after: Awaitable[None] | None) -> None:
        if after is not None:
            await after
        await self.store.save_fields(inc.pk, card_ts=inc.card_ts)

    async def card_still_pinned(self, inc: Incident) -> bool:
        """Whether Slack still shows the card pinned (pins.list, Tier 2): an unpin or a
        deletion whose event never came (a dropped socket, a restart) is found here."""
        channel = str(inc.channel_id)
        resp = await self._in_channel(inc, lambda: self.client.pins_list(channel=channel))
        items: list[dict[str, Any]] = resp.get("items", [])
        return any((item.get("message") or {}).get("ts") == inc.card_ts for item in items)

    async def _pin(self, inc: Incident, channel: str) -> None:
        try:
            await self.client.pins_add(channel=channel, timestamp=str(inc.card_ts))
        except SlackApiError as e:
            if slack_error(e) != "already_pinned":
                raise
        inc.card_pinned = True
        await self.store.save_fields(inc.pk, card_pinned=True)

    async def _announce(self, state: blocks.IncidentState) -> None:
        channel = self.settings.announcements_channel
        assert channel
        text, body = blocks.announcement(state, self.settings)
        digest = hash((text, json.dumps([b.to_dict() for b in body], sort_keys=True)))
        if self._announced.get(state.incident.pk) == (state.incident.announcement_ts, digest):
            return  # it shows this already (a reminder moved only the card's due time)
        # Decided and saved with the public side held: a privacy change either comes first
        # (nothing is posted) or finds this announcement saved, to take it down.
        async with self.store.publicly(state.incident.pk) as side:
            inc = side.incident
            if not self._announces(inc):
                return
            if inc.announcement_ts is not None:
                try:
                    await self.client.chat_update(
                        channel=channel, ts=inc.announcement_ts, text=text, blocks=body
                    )
                    self._shown_announcement(inc.pk, inc.announcement_ts, digest)
                    return
                except SlackApiError as e:
                    if slack_error(e) != "message_not_found":
                        raise
                    log.info("the announcement of %s was deleted; posting it again", inc.ref)
            try:
                resp = await self.client.chat_postMessage(channel=channel, text=text, blocks=body)
            except SlackApiError as e:
                if slack_error(e) != "not_in_channel":
                    raise
                # A public announcements channel the bot was never added to: join it once.
                await self.client.conversations_join(channel=channel)
                resp = await self.client.chat_postMessage(channel=channel, text=text, blocks=body)
            await side.save(announcement_ts=resp["ts"])
        state.incident.announcement_ts = resp["ts"]
        self._shown_announcement(inc.pk, resp["ts"], digest)

    def _shown_announcement(self, incident_id: int, ts: str, digest: int) -> None:
        self._announced.pop(incident_id, None)
        self._announced[incident_id] = (ts, digest)
        if len(self._announced) > KEEP_ANNOUNCED:
            del self._announced[next(iter(self._announced))]  # the longest unchanged

    # --- posts ---------------------------------------------------------------------------

    async def show_triage(
        self, channel: str, text: str, body: list[Block], ts: str | None = None
    ) -> str:
        """Post (or, with `ts`, update) an alert group's message in the alerts channel."""
        if ts is not None:
            await self.client.chat_update(channel=channel, ts=ts, text=text, blocks=body)
            return ts
        try:
            resp = await self.client.chat_postMessage(channel=channel, text=text, blocks=body)
        except SlackApiError as e:
            if slack_error(e) != "not_in_channel":
                raise
            # A public alerts channel the bot was never added to: join it once.
            await self.client.conversations_join(channel=channel)
            resp = await self.client.chat_postMessage(channel=channel, text=text, blocks=body)
        return str(resp["ts"])

    async def post(self, inc: Incident, text: str, body: list[Block] | None = None) -> str:
        """Post in the incident's channel; returns the message ts."""
        channel = inc.channel_id
        assert channel
        resp = await self._in_channel(
            inc,
            lambda: self.client.chat_postMessage(
                channel=channel, text=text, blocks=body, unfurl_links=False
            ),
        )
        return str(resp["ts"])

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

    async def post_to_announcement_thread(self, inc: Incident, text: str) -> None:
        """Reply in the public announcement's thread, unless the incident is private by now:
        decided with its public side held, so a privacy change is never overtaken."""
        channel = self.settings.announcements_channel
        if not channel or not inc.announcement_ts or inc.private:
            return  # known already, without a lock: an incident never becomes public again
        async with self.store.publicly(inc.pk) as side:
            now = side.incident
            if now.announcement_ts and self._announces(now):
                await self.client.chat_postMessage(
                    channel=channel, thread_ts=now.announcement_ts, text=text, unfurl_links=False
                )

    async def announce(self, inc: Incident, text: str, body: list[Block] | None = None) -> str:
        """Post in the channel and in the announcement's thread."""
        ts = await self.post(inc, text, body)
        await self.post_to_announcement_thread(inc, text)
        return ts

    async def post_update(self, inc: Incident, update: StatusUpdate, mark: str) -> str:
        """Post a claimed status update, keeping the claim alive while Slack answers."""
        update_id = update.pk

        async def renew(held: str) -> str | None:
            return await self.claims.take_update(update_id, held)

        text, body = blocks.status_update(inc, update, self.settings)
        try:
            ts = await self.claims.keep_alive(renew, mark, self.post(inc, text, body))
        except Exception:
            await self.store.save_update_ts(update_id, None)  # a repair posts it later
            raise
        await self.store.save_update_ts(update_id, ts)
        await self.post_to_announcement_thread(inc, text)
        return ts

    async def already_posted(
        self, inc: Incident, since: datetime, marker: str, known: set[str]
    ) -> str | None:
        """The ts of a message of ours containing `marker`, posted after `since` and not
        yet recorded: a post whose process died before it could note that it was sent."""
        assert inc.channel_id
        resp = await self.client.conversations_history(
            channel=inc.channel_id, oldest=f"{since.timestamp():.6f}", limit=100
        )
        messages: list[dict[str, Any]] = resp.get("messages", [])
        for message in messages:
            if (
                self.directory.is_mine(message)
                and marker in message.get("text", "")
                and message["ts"] not in known
            ):
                return str(message["ts"])
        return None

    async def message(self, channel: str, ts: str) -> Mapping[str, Any] | None:
        """One message of a channel, top-level or a thread reply; None when it is gone."""
        # One call finds a message whether it is top-level or a thread reply: replies
        # of the thread that holds `ts`, bounded to exactly that ts.
        try:
            resp = await self.client.conversations_replies(
                channel=channel, ts=ts, oldest=ts, latest=ts, inclusive=True, limit=2
            )
        except SlackApiError as e:
            if slack_error(e) in ("thread_not_found", "message_not_found"):
                return None
            raise
        messages: list[dict[str, Any]] = resp.get("messages", [])
        return next((m for m in messages if m.get("ts") == ts), None)

    async def upload(
        self, inc: Incident, *, content: str, filename: str, title: str, comment: str
    ) -> str | None:
        """Share a file in the incident's channel; its file id."""
        resp = await self.client.files_upload_v2(
            channel=inc.channel_id,
            content=content,
            filename=filename,
            title=title,
            initial_comment=comment,
        )
        file: dict[str, Any] = resp.get("file") or (resp.get("files") or [{}])[0]
        file_id = file.get("id")
        return str(file_id) if file_id else None
