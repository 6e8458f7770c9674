"""Incident operations: one function per verb, used by commands, buttons and modals alike.

Each operation validates, stores, appends to the timeline, then re-renders what Slack shows
from the stored state. The database is the truth; Slack is a view of it.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy.exc import IntegrityError

from bot.settings import Settings
from bot.slack import blocks
from bot.slack.text import channel_name, one_line, with_suffix
from bot.store import Incident, RoleAssignment, Store, TimelineEntry, utcnow

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
SEVERITY_LIKE = re.compile(r"^sev\d+$", re.IGNORECASE)


class BadInput(Exception):
    """A mistake a person made; the message tells them what to do instead."""


class SlackFailure(Exception):
    """Slack would not do something even after retries; the message is for the person."""


@dataclass(frozen=True)
class Declared:
    incident: Incident
    created: bool  # False when this request repeated an earlier one


def slack_error(e: Exception) -> str:
    if isinstance(e, SlackApiError):
        return str(e.response.get("error", "unknown_error"))
    return type(e).__name__


class Incidents:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        client: AsyncWebClient,
        *,
        clock: Clock = utcnow,
    ):
        self.settings = settings
        self.store = store
        self.client = client
        self.clock = clock
        self.bot_user_id: str | None = None
        self.team_id: str | None = None
        self._locks: dict[int, asyncio.Lock] = {}
        self._users: dict[str, dict[str, Any]] = {}

    async def connect(self) -> None:
        """Learn who the bot is, once, instead of on the first request."""
        auth = await self.client.auth_test()
        self.bot_user_id = auth.get("user_id")
        self.team_id = auth.get("team_id")

    def _lock(self, incident_id: int) -> asyncio.Lock:
        return self._locks.setdefault(incident_id, asyncio.Lock())

    # --- reading ----------------------------------------------------------------------

    async def state(self, incident_id: int) -> blocks.IncidentState:
        incident = await self.store.incident(incident_id)
        if incident is None:
            raise LookupError(f"no incident {incident_id}")
        return blocks.IncidentState(incident, await self.store.roles(incident_id))

    async def user_info(self, user_id: str) -> dict[str, Any] | None:
        """users.info, cached: the answer rarely changes during an incident."""
        if user_id not in self._users:
            try:
                resp = await self.client.users_info(user=user_id)
            except SlackApiError as e:
                if slack_error(e) in ("user_not_found", "users_not_found"):
                    return None
                raise
            self._users[user_id] = resp["user"]
        return self._users[user_id]

    async def check_person(self, user_id: str, what: str = "That user") -> None:
        info = await self.user_info(user_id)
        if info is None:
            raise BadInput(f"{what} (<@{user_id}>) is not in this workspace. Pick a person.")
        if info.get("is_bot") or user_id == "USLACKBOT":
            raise BadInput(f"{what} (<@{user_id}>) is an app, not a person. Pick a person.")
        if info.get("deleted"):
            raise BadInput(f"{what} (<@{user_id}>) has been deactivated. Pick a person.")

    async def channel_members(self, channel_id: str) -> set[str]:
        members: set[str] = set()
        cursor = None
        while True:
            resp = await self.client.conversations_members(
                channel=channel_id, limit=1000, cursor=cursor
            )
            members.update(resp.get("members", []))
            cursor = (resp.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                return members

    async def visible_open(self, team_id: str, user_id: str) -> list[blocks.IncidentState]:
        """Open incidents, private ones only for members of their channel."""
        states = []
        for incident in await self.store.open_incidents(team_id):
            if incident.private:
                if not incident.channel_id:
                    if incident.declared_by != user_id:
                        continue
                else:
                    try:
                        if user_id not in await self.channel_members(incident.channel_id):
                            continue
                    except SlackApiError:
                        continue  # when in doubt, a private incident stays hidden
            states.append(await self.state(incident.id))  # type: ignore[arg-type]
        return states

    # --- declare ----------------------------------------------------------------------

    def parse_declare(self, text: str) -> tuple[str | None, str]:
        """`sev1 Checkout is down` -> ("SEV1", "Checkout is down")."""
        first, _, rest = text.strip().partition(" ")
        if first and self.settings.severity(first):
            return self.settings.severity(first).name, rest.strip()  # type: ignore[union-attr]
        if SEVERITY_LIKE.match(first):
            raise BadInput(self.unknown_severity(first))
        return None, text.strip()

    def unknown_severity(self, given: str) -> str:
        choices = ", ".join(f"`{s.name}` ({s.label})" for s in self.settings.severities)
        return f"`{one_line(given, 20)}` is not a severity. Use one of: {choices}."

    def check_title(self, title: str) -> str:
        title = one_line(title, 100_000)
        if not title:
            raise BadInput(
                "An incident needs a title: `/incident declare sev2 Checkout is slow`, "
                "or `/incident declare` to open the form."
            )
        if len(title) > blocks.TITLE_MAX:
            raise BadInput(
                f"That title is {len(title):,} characters; keep it to {blocks.TITLE_MAX} "
                "and put the details in the description (`/incident declare` opens the form)."
            )
        return title

    async def declare(
        self,
        *,
        team_id: str,
        actor: str,
        key: str,
        title: str,
        severity: str | None = None,
        description: str = "",
        commander: str | None = None,
        private: bool = False,
        origin_channel: str | None = None,
    ) -> Declared:
        title = self.check_title(title)
        sev = self.settings.severity(severity or self.settings.default_severity or "")
        if sev is None:
            raise BadInput(self.unknown_severity(severity or ""))
        if len(description) > blocks.DESCRIPTION_MAX:
            raise BadInput(f"Keep the description to {blocks.DESCRIPTION_MAX:,} characters.")
        commander = commander or actor
        now = self.clock()
        try:
            async with self.store.session() as s:
                existing = await self.store.incident_by_key(s, key)
                if existing is not None:
                    return Declared(existing, created=False)
                number = await self.store.next_number(s, team_id)
                incident = Incident(
                    team_id=team_id,
                    number=number,
                    title=title,
                    description=description.strip(),
                    severity=sev.name,
                    private=private,
                    declared_by=actor,
                    declared_at=now,
                    declare_key=key,
                    origin_channel_id=origin_channel,
                    next_update_due=now + self.reminder_interval(sev.name),
                )
                s.add(incident)
                await s.flush()
                assert incident.id is not None
                s.add(
                    RoleAssignment(
                        incident_id=incident.id,
                        role="commander",
                        user_id=commander,
                        assigned_by=actor,
                        assigned_at=now,
                    )
                )
                await self.store.add_entry(
                    s,
                    TimelineEntry(
                        incident_id=incident.id,
                        kind="declared",
                        happened_at=now,
                        recorded_at=now,
                        actor=actor,
                        text=f"Declared {incident.ref} at {sev.name}: {title}",
                        source_key="declared",
                        data={"severity": sev.name, "commander": commander},
                    ),
                )
        except IntegrityError:
            # The same request raced itself (a double submit): the other one won.
            async with self.store.session() as s:
                existing = await self.store.incident_by_key(s, key)
            if existing is None:
                raise
            return Declared(existing, created=False)
        log.info("declared %s (%s)", incident.ref, sev.name)
        return Declared(incident, created=True)

    def reminder_interval(self, severity: str) -> timedelta:
        sev = self.settings.severity(severity)
        minutes = (sev.reminder_minutes if sev else None) or self.settings.reminder_interval_minutes
        return timedelta(minutes=minutes)

    # --- provisioning: the Slack side of a declaration ----------------------------------

    async def provision(self, incident_id: int) -> Incident:
        """Create what Slack shows for an incident; resumes where an earlier try stopped."""
        async with self._lock(incident_id):
            state = await self.state(incident_id)
            inc = state.incident
            if inc.provisioned:
                return inc
            if not inc.channel_id:
                await self._create_channel(inc)
                state = await self.state(incident_id)
                inc = state.incident
            # After the channel exists these steps are independent; running them together
            # keeps a declaration's critical path at create -> post card -> pin.
            steps: list[Awaitable[None]] = [
                self._invite(inc, {inc.declared_by, *state.roles.values()}),
                self._set_topic(state),
                self._post_card(state),
            ]
            if self.settings.announcements_channel and not inc.private:
                steps.append(self._announce(state))
            results = await asyncio.gather(*steps, return_exceptions=True)
            for result in results:
                if isinstance(result, BaseException):
                    raise result
            await self.store.save_fields(incident_id, provisioned=True)
            inc.provisioned = True
            return inc

    async def _create_channel(self, inc: Incident) -> None:
        base = channel_name(self.settings.incident_channel_prefix, inc.number, inc.title)
        name = base
        for attempt in range(2, 60):
            try:
                resp = await self.client.conversations_create(name=name, is_private=inc.private)
                break
            except SlackApiError as e:
                if slack_error(e) != "name_taken":
                    raise SlackFailure(
                        f"{inc.ref} is recorded, but Slack would not create its channel "
                        f"(`{slack_error(e)}`)."
                    ) from e
                # A random suffix after many tries: a declaration never fails on naming.
                name = with_suffix(base, attempt if attempt < 50 else secrets.randbelow(10**6))
        else:
            raise SlackFailure(f"{inc.ref} is recorded, but no free channel name was found.")
        channel = resp["channel"]
        inc.channel_id, inc.channel_name = channel["id"], channel["name"]
        await self.store.save_fields(
            inc.id,  # type: ignore[arg-type]
            channel_id=inc.channel_id,
            channel_name=inc.channel_name,
        )

    async def _invite(self, inc: Incident, users: set[str]) -> None:
        users.discard(self.bot_user_id or "")
        if not users or not inc.channel_id:
            return
        try:
            await self.client.conversations_invite(channel=inc.channel_id, users=sorted(users))
        except SlackApiError as e:
            if slack_error(e) != "already_in_channel":
                # Not fatal: the incident works and people can join the channel themselves.
                log.warning("could not invite people to %s: %s", inc.ref, slack_error(e))

    async def _set_topic(self, state: blocks.IncidentState) -> None:
        inc = state.incident
        assert inc.channel_id
        await self.client.conversations_setTopic(
            channel=inc.channel_id, topic=blocks.topic(state, self.settings)
        )

    async def _post_card(self, state: blocks.IncidentState) -> None:
        inc = state.incident
        assert inc.channel_id and inc.id
        text = blocks.card_text(state, self.settings)
        card = blocks.incident_card(state, self.settings)
        if inc.card_ts is None:
            resp = await self.client.chat_postMessage(
                channel=inc.channel_id, text=text, blocks=card, unfurl_links=False
            )
            inc.card_ts = resp["ts"]
            await self.store.save_fields(inc.id, card_ts=inc.card_ts)
        else:
            await self.client.chat_update(
                channel=inc.channel_id, ts=inc.card_ts, text=text, blocks=card
            )
        if not inc.card_pinned:
            try:
                await self.client.pins_add(channel=inc.channel_id, timestamp=inc.card_ts)
            except SlackApiError as e:
                if slack_error(e) != "already_pinned":
                    raise
            inc.card_pinned = True
            await self.store.save_fields(inc.id, card_pinned=True)

    async def _announce(self, state: blocks.IncidentState) -> None:
        inc = state.incident
        channel = self.settings.announcements_channel
        assert channel and inc.id
        text, body = blocks.announcement(state, self.settings)
        if inc.announcement_ts is not None:
            await self.client.chat_update(
                channel=channel, ts=inc.announcement_ts, text=text, blocks=body
            )
            return
        try:
            resp = await self.client.chat_postMessage(channel=channel, text=text, blocks=body)
        except SlackApiError as e:
            if slack_error(e) != "not_in_channel":
                raise
            # A public announcements channel the bot was never added to: join it once.
            await self.client.conversations_join(channel=channel)
            resp = await self.client.chat_postMessage(channel=channel, text=text, blocks=body)
        inc.announcement_ts = resp["ts"]
        await self.store.save_fields(inc.id, announcement_ts=inc.announcement_ts)

    async def resume_unprovisioned(self) -> None:
        """At start-up: finish declarations a crash or a Slack outage left half-done."""
        for inc in await self.store.unprovisioned():
            try:
                await self.provision(inc.id)  # type: ignore[arg-type]
                log.info("completed the declaration of %s", inc.ref)
            except Exception as e:
                log.warning("could not complete the declaration of %s: %s", inc.ref, slack_error(e))

    # --- re-rendering -----------------------------------------------------------------

    async def refresh(self, incident_id: int) -> None:
        """Show the stored state again: card, topic and announcement."""
        state = await self.state(incident_id)
        inc = state.incident
        if not inc.provisioned:
            await self.provision(incident_id)
            return
        steps: list[Awaitable[None]] = [self._post_card(state), self._set_topic(state)]
        if self.settings.announcements_channel and not inc.private:
            steps.append(self._announce(state))
        for result in await asyncio.gather(*steps, return_exceptions=True):
            if isinstance(result, BaseException):
                raise result
