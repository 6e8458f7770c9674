"""Who is who: the bot's own identity, the workspace's people, and the names of apps,
channels and user groups that messages mention.

People's records come from `users.info` (or `users.list` for `@name` typed without Slack's
escaping) and are kept for a few minutes: long enough that an incident's commands and its
postmortem ask Slack once per person, short enough that a deactivation or a renamed
display name shows up soon. A user Slack does not know is "not found" by one rule.

For a postmortem, names are looked up the same way and never fail: apps by `bots.info`,
channels by `conversations.info`, user groups by one `usergroups.list`. Whatever Slack will
not say (a person from another organisation it does not show, a private channel, an error)
gets a neutral label instead of the id.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, cast

import aiohttp
from cachetools import TTLCache
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

from bot.base.errors import BadInput, slack_error

log = logging.getLogger(__name__)

NOT_FOUND = frozenset({"user_not_found", "users_not_found"})
SLACKBOT = "USLACKBOT"
# Enough to overlap many lookups without a burst that only earns 429s.
USERS_CONCURRENCY = 8
# What a failed name lookup is, whatever failed: Slack said no, or never answered.
LOOKUP_ERRORS = (SlackClientError, aiohttp.ClientError, TimeoutError)
# Shown for what Slack will not name.
PRIVATE_CHANNEL = "private-channel"
UNKNOWN_CHANNEL = "unknown-channel"
UNKNOWN_GROUP = "unknown-group"
# People, apps, channels and the few workspace-wide lists kept at once; beyond it the
# least recently used is asked again.
CACHE_SIZE = 10_000
# Told apart from a None that is kept (a person Slack does not know).
_UNSEEN = object()

User = Mapping[str, Any]


def display_name(user: User) -> str:
    profile = user.get("profile") or {}
    name = str(
        profile.get("display_name") or profile.get("real_name") or user.get("name") or user["id"]
    )
    return f"{name} (deactivated)" if user.get("deleted") else name


@dataclass(frozen=True)
class Person:
    """A name to show for a user id; ``known`` is False when Slack would not say who it
    is (the name is then only a hint, or empty); ``app`` when the user is a bot."""

    name: str
    known: bool = True
    app: bool = False


class Directory:
    def __init__(
        self,
        client: AsyncWebClient,
        *,
        ttl_seconds: float = 300.0,
        monotonic: Callable[[], float] = time.monotonic,
    ):
        self.client = client
        self.bot_user_id: str | None = None
        self.bot_id: str | None = None
        self.team_id: str | None = None
        # What Slack said, forgotten `ttl_seconds` after it was kept.
        self._cache: TTLCache[str, Any] = TTLCache(CACHE_SIZE, ttl_seconds, timer=monotonic)
        # Shared by every name lookup a draft makes, so together they stay a few at a time.
        self._lookups = asyncio.Semaphore(USERS_CONCURRENCY)

    async def connect(self) -> None:
        """Learn who the bot is, once, instead of on the first request."""
        auth = await self.client.auth_test()
        self.bot_user_id = auth.get("user_id")
        self.bot_id = auth.get("bot_id")
        self.team_id = auth.get("team_id")

    def is_mine(self, message: Mapping[str, Any]) -> bool:
        """Whether the bot posted this message."""
        return message.get("user") == self.bot_user_id or (
            self.bot_id is not None and message.get("bot_id") == self.bot_id
        )

    # --- people ----------------------------------------------------------------------

    def forget(self, user_id: str) -> None:
        """Slack says the person changed (renamed, deactivated): ask again next time."""
        self._cache.pop(f"user:{user_id}", None)
        self._cache.pop("names", None)

    async def user(self, user_id: str) -> User | None:
        """The person's record, or None when Slack does not know them."""
        cached = self._cache.get(f"user:{user_id}", _UNSEEN)
        if cached is not _UNSEEN:
            return cast(User | None, cached)
        try:
            resp = await self.client.users_info(user=user_id)
        except SlackApiError as e:
            if slack_error(e) not in NOT_FOUND:
                raise
            self._cache[f"user:{user_id}"] = None
            return None
        user: User = resp["user"]
        self._cache[f"user:{user_id}"] = user
        return user

    async def check_person(self, user_id: str, what: str = "That user") -> None:
        info = await self.user(user_id)
        if info is None:
            raise BadInput(f"{what} (<@{user_id}>) is not in this workspace. Pick a person.")
        if info.get("is_bot") or user_id == SLACKBOT:
            raise BadInput(f"{what} (<@{user_id}>) is an app, not a person. Pick a person.")
        if info.get("deleted"):
            raise BadInput(f"{what} (<@{user_id}>) has been deactivated. Pick a person.")

    async def id_by_name(self, name: str) -> str | None:
        """`bob` (a username or display name) -> the person's id, for `@bob` typed where
        Slack did not escape it."""
        names: dict[str, str] | None = self._cache.get("names")
        if names is None:
            names = {}
            async for page in await self.client.users_list(limit=500):
                for u in page.get("members", []):
                    if u.get("deleted"):
                        continue
                    profile = u.get("profile") or {}
                    for key in (u.get("name"), profile.get("display_name")):
                        if key:
                            names.setdefault(key.lower(), u["id"])
            self._cache["names"] = names
        return names.get(name.lower())

    async def members(self, channel_id: str) -> set[str]:
        members: set[str] = set()
        async for page in await self.client.conversations_members(channel=channel_id, limit=1000):
            members.update(page.get("members", []))
        return members

    # --- names for a postmortem: never an error, never an id ----------------------------

    async def _lookup(self, key: str, ask: Callable[[], Awaitable[Any]], *, keep: bool) -> Any:
        """A cached lookup; what it returns is kept unless ``keep`` is False for None."""
        cached = self._cache.get(key, _UNSEEN)
        if cached is not _UNSEEN:
            return cached
        value = await ask()
        if value is not None or keep:
            self._cache[key] = value
        return value

    async def _bounded(self, jobs: Iterable[Callable[[], Awaitable[None]]]) -> None:
        """Run lookups, at most USERS_CONCURRENCY at a time across all kinds of lookup."""

        async def run(job: Callable[[], Awaitable[None]]) -> None:
            async with self._lookups:
                await job()

        async with asyncio.TaskGroup() as group:
            for job in jobs:
                group.create_task(run(job))

    async def person(self, user_id: str) -> Person:
        """Who ``user_id`` is, without failing: an unknown or unseen person (Slack answers
        ``user_not_visible`` for some Slack Connect users) or a failed lookup gives a
        Person that is not ``known``."""
        if user_id == SLACKBOT:
            return Person("Slackbot", app=True)
        cached = self._cache.get(f"user:{user_id}", _UNSEEN)
        if cached is not _UNSEEN:
            user = cast(User | None, cached)
        else:
            try:
                resp = await self.client.users_info(user=user_id)
            except SlackApiError as e:
                error = slack_error(e)
                log.info("users.info %s: %s", user_id, error)
                if error in NOT_FOUND or error == "user_not_visible":
                    self._cache[f"user:{user_id}"] = None
                return Person("", known=False)
            except LOOKUP_ERRORS as e:
                log.info("users.info %s: %s", user_id, slack_error(e))
                return Person("", known=False)
            user = resp["user"]
            self._cache[f"user:{user_id}"] = user
        if user is None:
            return Person("", known=False)
        return Person(display_name(user), app=bool(user.get("is_bot")))

    async def people(self, user_ids: Iterable[str]) -> dict[str, Person]:
        """A Person per id (one users.info per person not known yet, a few at a time)."""
        wanted = sorted({uid for uid in user_ids if uid})
        found: dict[str, Person] = {}

        def job(uid: str) -> Callable[[], Awaitable[None]]:
            async def look() -> None:
                found[uid] = await self.person(uid)

            return look

        await self._bounded(job(uid) for uid in wanted)
        return {uid: found[uid] for uid in wanted}

    async def bot_names(self, bot_ids: Iterable[str]) -> dict[str, str]:
        """Apps' names by bot id (``bots.info``); an app Slack will not name is left out."""
        wanted = sorted({b for b in bot_ids if b})
        found: dict[str, str] = {}

        def job(bot_id: str) -> Callable[[], Awaitable[None]]:
            async def ask() -> str | None:
                try:
                    resp = await self.client.bots_info(bot=bot_id)
                except LOOKUP_ERRORS as e:
                    log.info("bots.info %s: %s", bot_id, slack_error(e))
                    # An app Slack does not know stays unknown; anything else, ask again.
                    return "" if slack_error(e) == "bot_not_found" else None
                name = (resp.get("bot") or {}).get("name")
                return str(name) if name else ""

            async def look() -> None:
                name = await self._lookup(f"bot:{bot_id}", ask, keep=False)
                if name:
                    found[bot_id] = name

            return look

        await self._bounded(job(b) for b in wanted)
        return {b: found[b] for b in wanted if b in found}

    async def channel_names(self, channel_ids: Iterable[str]) -> dict[str, str]:
        """Channels' names (``conversations.info``); one the bot may not see is shown as
        ``private-channel``, as Slack shows it to people outside it, and one Slack failed
        to name as ``unknown-channel``."""
        wanted = sorted({c for c in channel_ids if c})
        found: dict[str, str] = {}

        def job(channel_id: str) -> Callable[[], Awaitable[None]]:
            async def ask() -> str | None:
                try:
                    resp = await self.client.conversations_info(channel=channel_id)
                except LOOKUP_ERRORS as e:
                    log.info("conversations.info %s: %s", channel_id, slack_error(e))
                    # Slack hides private channels the bot is not in as "not found".
                    return PRIVATE_CHANNEL if slack_error(e) == "channel_not_found" else None
                channel = resp.get("channel") or {}
                return str(channel.get("name") or "") or PRIVATE_CHANNEL

            async def look() -> None:
                name = await self._lookup(f"channel:{channel_id}", ask, keep=False)
                found[channel_id] = name or UNKNOWN_CHANNEL

            return look

        await self._bounded(job(c) for c in wanted)
        return {c: found[c] for c in wanted}

    async def group_members(self, handles: Iterable[str]) -> tuple[dict[str, list[str]], list[str]]:
        """The members of user groups named by handle (with or without @), by handle; and
        the handles Slack does not know (or would not list)."""
        wanted = sorted({h.lstrip("@") for h in handles})
        if not wanted:
            return {}, []
        try:
            resp = await self.client.usergroups_list()
        except LOOKUP_ERRORS as e:
            log.info("usergroups.list: %s", slack_error(e))
            return {}, wanted
        ids = {
            str(g.get("handle")): str(g["id"]) for g in resp.get("usergroups") or () if g.get("id")
        }
        members: dict[str, list[str]] = {}
        missing: list[str] = []
        for handle in wanted:
            group = ids.get(handle)
            if group is None:
                missing.append(handle)
                continue
            try:
                listed = await self.client.usergroups_users_list(usergroup=group)
            except LOOKUP_ERRORS as e:
                log.info("usergroups.users.list: %s", slack_error(e))
                missing.append(handle)
                continue
            members[handle] = [str(u) for u in listed.get("users") or ()]
        return members, missing

    async def usergroup_handles(self, group_ids: Iterable[str]) -> dict[str, str]:
        """User groups' handles, from one ``usergroups.list`` for the workspace (kept like
        people); a group it does not list is ``unknown-group``."""
        wanted = sorted({g for g in group_ids if g})
        if not wanted:
            return {}

        async def ask() -> dict[str, str] | None:
            try:
                resp = await self.client.usergroups_list(include_disabled=True)
            except LOOKUP_ERRORS as e:
                log.info("usergroups.list: %s", slack_error(e))
                return None
            return {
                str(g["id"]): str(g.get("handle") or g.get("name") or "")
                for g in resp.get("usergroups") or ()
                if g.get("id")
            }

        groups: dict[str, str] = await self._lookup("usergroups", ask, keep=False) or {}
        return {g: groups.get(g) or UNKNOWN_GROUP for g in wanted}
