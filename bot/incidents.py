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
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.postmortem import PostmortemFacts, fetch_history, render, user_names
from bot.settings import Role, Settings
from bot.slack import blocks
from bot.slack.text import channel_name, clean, literal, one_line, with_suffix
from bot.store import (
    FollowUp,
    Incident,
    Postmortem,
    RoleAssignment,
    Status,
    StatusUpdate,
    Store,
    TimelineEntry,
    claim_expired,
    posting_mark,
    utcnow,
)

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
T = TypeVar("T")
SEVERITY_LIKE = re.compile(r"^sev\d+$", re.IGNORECASE)


class BadInput(Exception):
    """A mistake a person made; the message tells them what to do instead."""


class SlackFailure(Exception):
    """Slack would not do something even after retries; the message is for the person."""


@dataclass(frozen=True)
class Declared:
    incident: Incident
    created: bool  # False when this request repeated an earlier one


@dataclass(frozen=True)
class Changed:
    """What an operation did; `changed` is False when there was nothing to do."""

    incident: Incident
    changed: bool
    message: str = ""


SUMMARY_MAX = 3000
OPEN_STATUSES = [s.value for s in Status if s is not Status.resolved]


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
        lease_seconds: float = 30.0,
    ):
        self.settings = settings
        # How long a process may work on a declaration (or an update) before another
        # one takes over; renewed after every Slack step.
        self.lease = timedelta(seconds=lease_seconds)
        self.store = store
        self.client = client
        self.clock = clock
        self.bot_user_id: str | None = None
        self.bot_id: str | None = None
        self.team_id: str | None = None
        self._locks: dict[int, asyncio.Lock] = {}
        self._render_locks: dict[int, asyncio.Lock] = {}
        self._users: dict[str, dict[str, Any]] = {}
        self._names: dict[str, str] | None = None
        # Called with the incident after every stored change (the reminder schedule).
        self.on_change: list[Callable[[Incident], Awaitable[None]]] = []

    async def connect(self) -> None:
        """Learn who the bot is, once, instead of on the first request."""
        auth = await self.client.auth_test()
        self.bot_user_id = auth.get("user_id")
        self.bot_id = auth.get("bot_id")
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
        for hook in self.on_change:
            await hook(incident)
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
            now = self.clock()
            until = now + self.lease
            if not await self.store.lease_provisioning(incident_id, now, until):
                return inc  # another process is doing it right now

            async def renew(held: datetime) -> datetime | None:
                new = self.clock() + self.lease
                ok = await self.store.renew_provision_lease(incident_id, held, new)
                return new if ok else None

            return await self._keeping(renew, until, self._provision(state))

    async def _provision(self, state: blocks.IncidentState) -> Incident:
        inc = state.incident
        incident_id = inc.id
        assert incident_id is not None
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
        await self.store.save_fields(incident_id, provisioned=True, provision_lease_until=None)
        inc.provisioned = True
        return inc

    async def _keeping(
        self, renew: Callable[[Any], Awaitable[Any]], token: Any, work: Awaitable[T]
    ) -> T:
        """Run `work` while renewing a claim every third of the lease, so a slow Slack call
        (retries, rate limits) never lets another process take the same work over."""

        async def beat() -> None:
            held = token
            while held is not None:
                await asyncio.sleep(self.lease.total_seconds() / 3)
                held = await renew(held)

        heart = asyncio.create_task(beat())
        try:
            return await work
        finally:
            heart.cancel()

    async def _post_update_message(self, inc: Incident, update: StatusUpdate, mark: str) -> str:
        """Post a claimed update, keeping the claim alive while Slack answers."""
        assert update.id is not None
        update_id = update.id

        async def renew(held: str) -> str | None:
            now = self.clock()
            ok = await self.store.claim_update_post(update_id, now, held)
            return posting_mark(now) if ok else None

        text, body = blocks.status_update(inc, update, self.settings)
        try:
            ts = await self._keeping(renew, mark, self.post(inc, text, body))
        except Exception:
            await self.store.save_update_ts(update_id, None)  # a repair posts it later
            raise
        await self.store.save_update_ts(update_id, ts)
        await self._post_to_announcement_thread(inc, text)
        return ts

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
                own = await self._own_unused_channel(name)
                if own is not None:
                    # Slack created it but the answer was lost (a crash or a dropped
                    # connection): take it instead of making a second channel.
                    resp = {"channel": own}
                    break
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

    async def _own_unused_channel(self, name: str) -> dict[str, Any] | None:
        """A channel of that name the bot created and no incident uses, if any."""
        cursor = None
        while True:
            resp = await self.client.conversations_list(
                types="public_channel,private_channel",
                exclude_archived=True,
                limit=1000,
                cursor=cursor,
            )
            for channel in resp.get("channels", []):
                if channel.get("name") == name:
                    if channel.get("creator") != self.bot_user_id:
                        return None
                    taken = await self.store.incident_by_channel(channel["id"])
                    return channel if taken is None else None
            cursor = (resp.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                return None

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
        topic = blocks.topic(state, self.settings)
        if topic == inc.topic:
            return
        await self.client.conversations_setTopic(channel=inc.channel_id, topic=topic)
        await self.store.save_fields(inc.id, topic=topic)  # type: ignore[arg-type]

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

    async def repair(self) -> None:
        """Finish what a crash or a Slack outage left half-done: declarations whose Slack
        side is incomplete, and status updates stored but never posted."""
        await self.resume_unprovisioned()
        now = self.clock()
        for inc in await self.store.stuck_reminders(now - self.lease):
            await self.settle_stuck_reminder(inc, resend=True)
        for update in await self.store.unposted_updates(now - self.lease):
            if not claim_expired(update.message_ts, now - self.lease):
                continue  # someone is posting it right now
            if not await self.store.claim_update_post(update.id, now, update.message_ts):  # type: ignore[arg-type]
                continue
            inc = await self.store.incident(update.incident_id)
            if inc is None or not inc.channel_id:
                continue
            try:
                text, _ = blocks.status_update(inc, update, self.settings)
                posted = await self._already_posted(
                    inc, update.posted_at - self.lease, text[:120], set()
                )
                if posted is not None:
                    await self.store.save_update_ts(update.id, posted)  # type: ignore[arg-type]
                    await self.refresh(inc.id)  # type: ignore[arg-type]
                    continue
                await self._post_update_message(inc, update, posting_mark(now))
            except Exception as e:
                log.warning("could not repost an update of %s: %s", inc.ref, slack_error(e))
                continue
            log.info("posted an update of %s that a restart had interrupted", inc.ref)
            await self.refresh(inc.id)  # type: ignore[arg-type]

    async def resume_unprovisioned(self) -> None:
        for inc in await self.store.unprovisioned():
            try:
                await self.provision(inc.id)  # type: ignore[arg-type]
                log.info("completed the declaration of %s", inc.ref)
            except Exception as e:
                log.warning("could not complete the declaration of %s: %s", inc.ref, slack_error(e))

    # --- re-rendering -----------------------------------------------------------------

    async def refresh(self, incident_id: int) -> None:
        """Show the stored state again: card, topic and announcement."""
        # One render at a time per incident, each from fresh state, so the last one
        # shown is never older than the last change.
        async with self._render_locks.setdefault(incident_id, asyncio.Lock()):
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

    # --- finding the incident a request is about --------------------------------------

    async def in_channel(self, channel_id: str | None, team_id: str) -> Incident:
        """The incident whose channel this is, or a private answer naming where to go."""
        incident = await self.store.incident_by_channel(channel_id) if channel_id else None
        if incident is not None:
            return incident
        open_ = [i for i in await self.store.open_incidents(team_id) if i.channel_id]
        public = [i for i in open_ if not i.private][:5]
        if not public:
            raise BadInput(
                "Run this in an incident's channel. There is no open incident; "
                "`/incident declare` starts one."
            )
        where = ", ".join(f"<#{i.channel_id}> ({i.ref})" for i in public)
        raise BadInput(f"Run this in the incident's channel: {where}.")

    def role(self, name: str) -> Role:
        name = name.strip().lower()
        aliases = {"ic": "commander", "incident_commander": "commander", "communications": "comms"}
        name = aliases.get(name, name)
        for role in self.settings.roles:
            if role.name == name:
                return role
        choices = ", ".join(f"`{r.name}`" for r in self.settings.roles)
        raise BadInput(f"`{one_line(name, 30)}` is not a role. Roles: {choices}.")

    async def find_user(self, token: str, actor: str) -> str:
        """`me`, `<@U123|bob>`, `U123` or `@bob` -> a user id; BadInput otherwise."""
        from bot.slack.text import parse_user_name, parse_user_ref

        token = token.strip()
        if token.lower() in ("me", "myself", "@me"):
            return actor
        user_id = parse_user_ref(token)
        if user_id is None:
            name = parse_user_name(token) or (token.lower() if token.isidentifier() else None)
            if name is None:
                raise BadInput(f"`{one_line(token, 40)}` is not a person. Mention them: `@name`.")
            user_id = (await self._user_names()).get(name)
            if user_id is None:
                raise BadInput(f"Nobody called `@{one_line(name, 40)}` is in this workspace.")
        await self.check_person(user_id)
        return user_id

    async def _user_names(self) -> dict[str, str]:
        """name / display name -> id, for `@name` typed where Slack did not escape it."""
        if self._names is None:
            names: dict[str, str] = {}
            cursor = None
            while True:
                resp = await self.client.users_list(limit=500, cursor=cursor)
                for u in resp.get("members", []):
                    if u.get("deleted"):
                        continue
                    profile = u.get("profile") or {}
                    for key in (u.get("name"), profile.get("display_name")):
                        if key:
                            names.setdefault(key.lower(), u["id"])
                cursor = (resp.get("response_metadata") or {}).get("next_cursor")
                if not cursor:
                    break
            self._names = names
        return self._names

    # --- changing an incident ---------------------------------------------------------

    async def _locked(self, s: AsyncSession, incident_id: int) -> Incident:
        """The incident row, locked for this transaction (PostgreSQL; SQLite locks at BEGIN)."""
        stmt = select(Incident).where(Incident.id == incident_id).with_for_update()  # type: ignore[arg-type]
        return (await s.execute(stmt)).scalar_one()

    def _entry(
        self,
        inc: Incident,
        kind: str,
        actor: str | None,
        text: str,
        data: dict[str, Any] | None = None,
        *,
        at: datetime | None = None,
        source_key: str | None = None,
    ) -> TimelineEntry:
        now = self.clock()
        return TimelineEntry(
            incident_id=inc.id,  # type: ignore[arg-type]
            kind=kind,
            happened_at=at or now,
            recorded_at=now,
            actor=actor,
            text=text,
            data=data,
            source_key=source_key,
        )

    @staticmethod
    def _require_open(inc: Incident) -> None:
        if not inc.is_open:
            raise BadInput(f"{inc.ref} is resolved. `/incident reopen` it first.")

    async def _after_change(self, incident_id: int) -> Incident:
        """Show the stored state again and let the reminder schedule follow it."""
        await self.refresh(incident_id)
        incident = await self.store.incident(incident_id)
        assert incident is not None
        for hook in self.on_change:
            await hook(incident)
        return incident

    async def post(self, inc: Incident, text: str, body: list[Any] | None = None, **kw: Any) -> str:
        """Post in the incident's channel; returns the message ts."""
        assert inc.channel_id
        resp = await self.client.chat_postMessage(
            channel=inc.channel_id, text=text, blocks=body, unfurl_links=False, **kw
        )
        return str(resp["ts"])

    async def _post_to_announcement_thread(self, inc: Incident, text: str) -> None:
        channel = self.settings.announcements_channel
        if channel and inc.announcement_ts and not inc.private:
            await self.client.chat_postMessage(
                channel=channel, thread_ts=inc.announcement_ts, text=text, unfurl_links=False
            )

    async def set_severity(self, incident_id: int, severity: str, actor: str) -> Changed:
        sev = self.settings.severity(severity)
        if sev is None:
            raise BadInput(self.unknown_severity(severity))
        async with self.store.session() as s:
            inc = await self._locked(s, incident_id)
            self._require_open(inc)
            old = inc.severity
            if old == sev.name:
                return Changed(inc, False, f"{inc.ref} is already {sev.name}.")
            inc.severity = sev.name
            # The new level's cadence applies from the last update (or the declaration).
            inc.next_update_due = (inc.last_update_at or inc.declared_at) + self.reminder_interval(
                sev.name
            )
            s.add(
                self._entry(
                    inc,
                    "severity",
                    actor,
                    f"Severity {old} → {sev.name}",
                    {"from": old, "to": sev.name},
                )
            )
        inc = await self._after_change(incident_id)
        if self.rank(sev.name) < self.rank(old):
            text = (
                f":rotating_light: <@{actor}> raised {inc.ref} from {old} to "
                f"*{blocks.severity_text(self.settings, sev.name)}*. {literal(sev.description)}"
            )
            await self.post(inc, text)
            await self._post_to_announcement_thread(inc, text)
        else:
            await self.post(
                inc,
                f"<@{actor}> changed the severity from {old} to "
                f"*{blocks.severity_text(self.settings, sev.name)}*.",
            )
        return Changed(inc, True, f"{inc.ref} is now {sev.name}.")

    def rank(self, severity: str) -> int:
        names = [s.name for s in self.settings.severities]
        return names.index(severity) if severity in names else len(names)

    async def assign_role(
        self, incident_id: int, role_name: str, user_id: str, actor: str
    ) -> Changed:
        role = self.role(role_name)
        await self.check_person(user_id)
        now = self.clock()
        async with self.store.session() as s:
            inc = await self._locked(s, incident_id)
            self._require_open(inc)
            stmt = (
                select(RoleAssignment)
                .where(RoleAssignment.incident_id == incident_id)  # type: ignore[arg-type]
                .where(RoleAssignment.role == role.name)  # type: ignore[arg-type]
                .where(RoleAssignment.ended_at == None)  # type: ignore[arg-type]  # noqa: E711
            )
            current = (await s.execute(stmt)).scalars().first()
            if current is not None and current.user_id == user_id:
                return Changed(inc, False, f"<@{user_id}> is already the {role.label}.")
            previous = current.user_id if current is not None else None
            if current is not None:
                current.ended_at = now
            s.add(
                RoleAssignment(
                    incident_id=incident_id,
                    role=role.name,
                    user_id=user_id,
                    assigned_by=actor,
                    assigned_at=now,
                )
            )
            handover = f" (handed over from <@{previous}>)" if previous else ""
            s.add(
                self._entry(
                    inc,
                    "role",
                    actor,
                    f"<@{user_id}> is the {role.label}{handover}",
                    {"role": role.name, "from": previous, "to": user_id},
                    at=now,
                )
            )
        await self._invite(inc, {user_id})
        inc = await self._after_change(incident_id)
        by = "" if actor == user_id else f", assigned by <@{actor}>"
        await self.post(
            inc,
            f":bust_in_silhouette: <@{user_id}> is now the *{role.label}*{handover}{by}. "
            f"{literal(role.description)}",
        )
        return Changed(inc, True, f"<@{user_id}> is now the {role.label} of {inc.ref}.")

    async def post_update(
        self, incident_id: int, *, summary: str, actor: str, key: str, status: str | None = None
    ) -> Changed:
        summary = summary.strip()
        if not summary:
            raise BadInput(
                "An update needs a summary: `/incident update Rolled back; error rate falling`, "
                "or `/incident update` for the form."
            )
        if len(summary) > SUMMARY_MAX:
            raise BadInput(
                f"Keep the update to {SUMMARY_MAX:,} characters; it is {len(summary):,}."
            )
        if status is not None and status not in OPEN_STATUSES:
            raise BadInput(
                f"`{one_line(status, 20)}` is not a status. Use one of: "
                + ", ".join(f"`{s}`" for s in OPEN_STATUSES)
                + " (or `/incident resolve`)."
            )
        now = self.clock()
        async with self.store.session() as s:
            inc = await self._locked(s, incident_id)
            self._require_open(inc)
            existing = (
                await s.execute(
                    select(StatusUpdate)
                    .where(StatusUpdate.incident_id == incident_id)  # type: ignore[arg-type]
                    .where(StatusUpdate.source_key == key)  # type: ignore[arg-type]
                )
            ).scalar_one_or_none()
            if existing is not None:
                return Changed(inc, False, "That update was posted already.")
            old_status, status = inc.status, status or inc.status
            update = StatusUpdate(
                incident_id=incident_id,
                status=status,
                summary=summary,
                posted_by=actor,
                posted_at=now,
                source_key=key,
            )
            s.add(update)
            await s.flush()
            inc.status = status
            inc.last_update_at = now
            inc.next_update_due = now + self.reminder_interval(inc.severity)
            s.add(
                self._entry(
                    inc,
                    "update",
                    actor,
                    summary,
                    {"status": status, "from": old_status, "update_id": update.id},
                    at=now,
                )
            )
        if await self.store.claim_update_post(update.id, now):  # type: ignore[arg-type]
            await self._post_update_message(inc, update, posting_mark(now))
        inc = await self._after_change(incident_id)
        return Changed(inc, True, f"Update posted to {inc.ref}.")

    async def resolve(self, incident_id: int, *, summary: str, actor: str) -> Changed:
        summary = summary.strip()
        if len(summary) > SUMMARY_MAX:
            raise BadInput(f"Keep the summary to {SUMMARY_MAX:,} characters.")
        now = self.clock()
        async with self.store.session() as s:
            inc = await self._locked(s, incident_id)
            if not inc.is_open:
                return Changed(inc, False, f"{inc.ref} is already resolved.")
            inc.status = Status.resolved.value
            inc.resolved_at = now
            inc.next_update_due = None
            s.add(
                self._entry(
                    inc, "resolved", actor, summary or "Resolved", {"summary": summary}, at=now
                )
            )
        inc = await self._after_change(incident_id)
        text, body = blocks.resolved_message(inc, actor, summary, self.settings)
        await self.post(inc, text, body)
        await self._post_to_announcement_thread(inc, text)
        return Changed(inc, True, f"{inc.ref} is resolved.")

    async def reopen(self, incident_id: int, actor: str) -> Changed:
        now = self.clock()
        async with self.store.session() as s:
            inc = await self._locked(s, incident_id)
            if inc.is_open:
                return Changed(inc, False, f"{inc.ref} is not resolved.")
            inc.status = Status.investigating.value
            inc.resolved_at = None
            inc.next_update_due = now + self.reminder_interval(inc.severity)
            s.add(self._entry(inc, "reopened", actor, "Reopened", at=now))
        inc = await self._after_change(incident_id)
        text = f":repeat: <@{actor}> reopened {inc.ref}. Status: investigating."
        await self.post(inc, text)
        await self._post_to_announcement_thread(inc, text)
        return Changed(inc, True, f"{inc.ref} is open again.")

    async def snooze(self, incident_id: int, minutes: int, actor: str, key: str) -> Changed:
        """Move the next update's due time; one snooze per reminder message."""
        now = self.clock()
        async with self.store.session() as s:
            inc = await self._locked(s, incident_id)
            self._require_open(inc)
            added = await self.store.add_entry(
                s,
                self._entry(
                    inc,
                    "snooze",
                    actor,
                    f"Snoozed the update reminder for {minutes} min",
                    {"minutes": minutes},
                    at=now,
                    source_key=key,
                ),
            )
            if not added:
                return Changed(inc, False, "That reminder was snoozed already.")
            inc.next_update_due = now + timedelta(minutes=minutes)
        inc = await self._after_change(incident_id)
        return Changed(inc, True, f"Next update reminder for {inc.ref} in {minutes} min.")

    # --- reminders ----------------------------------------------------------------------

    async def claim_reminder(self, incident_id: int, due: datetime) -> Incident | None:
        """Take the reminder due at `due`, or None if it is not (or no longer) ours to send.

        The row lock plus the due-time comparison make this a compare-and-set: of all
        processes that wake up for the same due time, exactly one moves it forward.
        """
        now = self.clock()
        async with self.store.session() as s:
            inc = await self._locked(s, incident_id)
            if not inc.is_open or inc.next_update_due != due or due > now:
                return None
            inc.next_update_due = now + self.reminder_interval(inc.severity)
            # Marks the reminder as being sent; the timeline entry is written once it is
            # posted, so the timeline never shows a reminder nobody saw.
            inc.reminder_sending_since = now
        return inc

    async def _already_posted(
        self, inc: Incident, since: datetime, marker: str, known: set[str]
    ) -> str | None:
        """The ts of a message of ours containing `marker`, posted after `since` and not
        yet recorded: a post whose process died before it could note that it was sent."""
        assert inc.channel_id
        resp = await self.client.conversations_history(
            channel=inc.channel_id, oldest=f"{since.timestamp():.6f}", limit=100
        )
        for message in resp.get("messages", []):
            mine = message.get("user") == self.bot_user_id or (
                self.bot_id is not None and message.get("bot_id") == self.bot_id
            )
            if mine and marker in message.get("text", "") and message["ts"] not in known:
                return str(message["ts"])
        return None

    async def _record_reminder(self, inc: Incident, due: datetime, ts: str) -> None:
        incident_id = inc.id
        assert incident_id is not None
        async with self.store.session() as s:
            await self.store.add_entry(
                s,
                self._entry(
                    inc,
                    "reminder",
                    None,
                    "Reminder: no status update",
                    {"due": due.isoformat(), "last_update": _iso(inc.last_update_at), "ts": ts},
                    at=datetime.fromtimestamp(float(ts), UTC),
                    source_key=f"reminder:{ts}",
                ),
            )
            locked = await self._locked(s, incident_id)
            locked.reminder_sending_since = None

    async def settle_stuck_reminder(self, inc: Incident, *, resend: bool) -> None:
        """A reminder claimed by a process that died (or failed) before noting it sent:
        record it if it was posted; otherwise send it (`resend`), or let the reminder being
        claimed now take its place."""
        held = inc.reminder_sending_since
        now = self.clock()
        if held is None or not inc.is_open:
            return
        if not await self.store.reclaim_reminder(inc.id, held, now):  # type: ignore[arg-type]
            return  # someone else is settling it
        inc.reminder_sending_since = now
        try:
            known = {
                str((e.data or {}).get("ts"))
                for e in await self.store.timeline(inc.id)  # type: ignore[arg-type]
                if e.kind == "reminder"
            }
            marker = f"{inc.ref} needs a status update"
            posted = await self._already_posted(inc, held - self.lease, marker, known)
            if posted is not None:
                await self._record_reminder(inc, held, posted)
            elif resend:
                await self.send_reminder(inc, held)
            else:
                await self.store.save_fields(inc.id, reminder_sending_since=None)  # type: ignore[arg-type]
        except Exception as e:
            log.warning("could not settle a reminder of %s: %s", inc.ref, slack_error(e))

    async def send_reminder(self, inc: Incident, due: datetime | None) -> None:
        roles = await self.store.roles(inc.id)  # type: ignore[arg-type]
        mention = roles.get("comms") or roles.get("commander") or inc.declared_by
        since = (
            blocks.when(inc.last_update_at, "{time} ({ago})")
            if inc.last_update_at
            else "none since it was declared"
        )
        text, body = blocks.reminder(inc, mention, since)
        incident_id = inc.id
        assert incident_id is not None

        async def renew(held: datetime) -> datetime | None:
            now = self.clock()
            return now if await self.store.reclaim_reminder(incident_id, held, now) else None

        ts = await self._keeping(renew, inc.reminder_sending_since, self.post(inc, text, body))
        await self._record_reminder(inc, due or inc.reminder_sending_since or self.clock(), ts)
        await self._after_change(incident_id)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


class Capture:
    """Timeline capture and the postmortem draft, on top of the incident operations."""

    def __init__(self, ops: Incidents):
        self.ops = ops
        self._names: dict[str, str] = {}
        self._compiling: dict[int, asyncio.Lock] = {}

    async def _fetch_message(self, channel: str, ts: str) -> dict[str, Any] | None:
        # One call finds a message whether it is top-level or a thread reply: replies
        # of the thread that holds `ts`, bounded to exactly that ts.
        try:
            resp = await self.ops.client.conversations_replies(
                channel=channel, ts=ts, oldest=ts, latest=ts, inclusive=True, limit=2
            )
        except SlackApiError as e:
            if slack_error(e) in ("thread_not_found", "message_not_found"):
                return None
            raise
        return next((m for m in resp.get("messages", []) if m.get("ts") == ts), None)

    async def add_message(
        self,
        incident: Incident,
        *,
        ts: str,
        actor: str,
        message: dict[str, Any] | None = None,
    ) -> Changed:
        """Put a channel message on the timeline at its own time; once per message."""
        assert incident.channel_id
        if message is None:
            message = await self._fetch_message(incident.channel_id, ts)
        if message is None:
            raise BadInput("That message is gone, so it cannot go on the timeline.")
        author = message.get("user") or message.get("bot_id")
        at = datetime.fromtimestamp(float(ts), UTC)
        text = clean(
            message.get("text")
            or ", ".join(f.get("name", "file") for f in message.get("files", []))
        )
        async with self.ops.store.session() as s:
            added = await self.ops.store.add_entry(
                s,
                self.ops._entry(
                    incident,
                    "message",
                    actor,
                    text[:40000],
                    {"ts": ts, "user": author},
                    at=at,
                    source_key=f"msg:{ts}",
                ),
            )
        if not added:
            return Changed(
                incident, False, f"That message is already on {incident.ref}'s timeline."
            )
        return Changed(incident, True, f"Added to {incident.ref}'s timeline.")

    async def add_note(self, incident: Incident, text: str, actor: str, key: str) -> Changed:
        text = text.strip()
        if not text:
            raise BadInput("Write the note: `/incident note Failover started on db-2`.")
        if len(text) > SUMMARY_MAX:
            raise BadInput(f"Keep a note to {SUMMARY_MAX:,} characters.")
        async with self.ops.store.session() as s:
            added = await self.ops.store.add_entry(
                s, self.ops._entry(incident, "note", actor, text, source_key=key)
            )
        if added:
            await self.ops.post(
                incident, f":memo: <@{actor}> added to the timeline: {literal(one_line(text, 500))}"
            )
        return Changed(incident, added, f"Noted on {incident.ref}'s timeline.")

    async def add_follow_up(
        self, incident: Incident, text: str, owner: str | None, actor: str, key: str
    ) -> Changed:
        text = text.strip()
        if not text:
            raise BadInput(
                "Describe the follow-up: `/incident action Add an alert on queue depth @bob`."
            )
        if len(text) > SUMMARY_MAX:
            raise BadInput(f"Keep a follow-up to {SUMMARY_MAX:,} characters.")
        now = self.ops.clock()
        async with self.ops.store.session() as s:
            existing = (
                await s.execute(
                    select(FollowUp)
                    .where(FollowUp.incident_id == incident.id)  # type: ignore[arg-type]
                    .where(FollowUp.source_key == key)  # type: ignore[arg-type]
                )
            ).scalar_one_or_none()
            if existing is not None:
                return Changed(incident, False, "That follow-up is recorded already.")
            s.add(
                FollowUp(
                    incident_id=incident.id,  # type: ignore[arg-type]
                    text=text,
                    owner=owner,
                    created_by=actor,
                    created_at=now,
                    source_key=key,
                )
            )
            s.add(
                self.ops._entry(
                    incident, "follow_up", actor, text, {"owner": owner}, at=now, source_key=key
                )
            )
        owner_text = f" (owner: <@{owner}>)" if owner else ""
        await self.ops.post(
            incident,
            f":clipboard: Follow-up recorded by <@{actor}>: "
            f"{literal(one_line(text, 500))}{owner_text}",
        )
        return Changed(incident, True, f"Follow-up recorded on {incident.ref}.")

    async def facts(self, incident_id: int) -> PostmortemFacts:
        ops = self.ops
        incident = await ops.store.incident(incident_id)
        assert incident is not None and incident.channel_id
        messages = await fetch_history(ops.client, incident.channel_id)
        async with ops.store.sessions() as s:
            assignments = await ops.store.all_of(s, RoleAssignment, incident_id)
            updates = await ops.store.all_of(s, StatusUpdate, incident_id)
            follow_ups = await ops.store.all_of(s, FollowUp, incident_id)
        timeline = await ops.store.timeline(incident_id)
        people: set[str] = {incident.declared_by}
        texts: list[str] = []
        for msg in messages:
            for m in [msg, *msg.get("replies", [])]:
                people.add(m.get("user") or "")
                texts.append(m.get("text") or "")
        for entry in timeline:
            people.update([entry.actor or "", str((entry.data or {}).get("user") or "")])
            texts.append(entry.text)
        people.update(a.user_id for a in assignments)
        people.update(u.posted_by for u in updates)
        people.update(f.owner or "" for f in follow_ups)
        people.update(re.findall(r"<@([UW][A-Z0-9]+)", "\n".join(texts)))
        people.discard("")
        names = await user_names(ops.client, people, self._names)
        return PostmortemFacts(
            incident=incident,
            severities=ops.settings.severities,
            roles_config=ops.settings.roles,
            assignments=assignments,
            timeline=timeline,
            updates=updates,
            follow_ups=follow_ups,
            messages=messages,
            names=names,
            channels={incident.channel_id: incident.channel_name or incident.channel_id},
            bot_user_id=ops.bot_user_id or "",
            bot_id=ops.bot_id,
        )

    async def compile_postmortem(self, incident_id: int, actor: str) -> Changed:
        """Compile the draft from the channel and the timeline, keep it, post it as a file."""
        async with self._compiling.setdefault(incident_id, asyncio.Lock()):
            incident = await self.ops.store.incident(incident_id)
            assert incident is not None
            if not incident.channel_id:
                raise BadInput(f"{incident.ref} has no channel yet; try again in a moment.")
            # Rendering a long channel takes CPU time; a worker thread keeps acks prompt.
            markdown = await asyncio.to_thread(render, await self.facts(incident_id))
            latest = await self.ops.store.latest_postmortem(incident_id)
            if latest is not None and latest.markdown == markdown and latest.file_id:
                # Nothing happened since the last draft (or a double click): no new copy.
                return Changed(
                    incident,
                    False,
                    f"{incident.ref}'s draft is unchanged since version {latest.version}.",
                )
            if latest is not None and latest.markdown == markdown:
                saved = latest  # stored, but the upload was interrupted: share it now
            else:
                saved = await self.ops.store.save_postmortem(
                    Postmortem(
                        incident_id=incident_id,
                        version=(latest.version if latest else 0) + 1,
                        markdown=markdown,
                        created_by=actor,
                        created_at=self.ops.clock(),
                    )
                )
            version = saved.version
            resp = await self.ops.client.files_upload_v2(
                channel=incident.channel_id,
                content=markdown,
                filename=f"{incident.ref}-postmortem-v{version}.md",
                title=f"{incident.ref} postmortem draft (version {version})",
                initial_comment=(
                    f":page_facing_up: <@{actor}> compiled the postmortem draft for {incident.ref} "
                    f"(version {version}): the channel and its timeline, with prompts for what "
                    "only people can write. Edit it, then share it."
                ),
            )
            file = resp.get("file") or (resp.get("files") or [{}])[0]
            await self.ops.store.set_postmortem_file(saved.id, file.get("id"))  # type: ignore[arg-type]
            return Changed(incident, True, f"Posted version {version} of the draft.")
