"""Who is who: the bot's own identity, and the workspace's people.

People's records come from `users.info` (or `users.list` for `@name` typed without Slack's
escaping) and are kept for a few minutes: long enough that an incident's commands and its
postmortem ask Slack once per person, short enough that a deactivation or a renamed
display name shows up soon. A user Slack does not know is "not found" by one rule.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, cast

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.errors import BadInput, slack_error

NOT_FOUND = frozenset({"user_not_found", "users_not_found"})
SLACKBOT = "USLACKBOT"
# Enough to overlap many lookups without a burst that only earns 429s.
USERS_CONCURRENCY = 8

User = Mapping[str, Any]


def display_name(user: User) -> str:
    profile = user.get("profile") or {}
    name = str(
        profile.get("display_name") or profile.get("real_name") or user.get("name") or user["id"]
    )
    return f"{name} (deactivated)" if user.get("deleted") else name


class _Expiring:
    """A dict whose entries are forgotten `ttl` seconds after they were stored."""

    def __init__(self, ttl: float, now: Callable[[], float]):
        self.ttl = ttl
        self.now = now
        self._items: dict[str, tuple[float, Any]] = {}

    def get(self, key: str) -> tuple[bool, Any]:
        item = self._items.get(key)
        if item is None or item[0] < self.now():
            self._items.pop(key, None)
            return False, None
        return True, item[1]

    def drop(self, key: str) -> None:
        self._items.pop(key, None)

    def put(self, key: str, value: Any) -> None:
        self._items[key] = (self.now() + self.ttl, value)


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
        self._cache = _Expiring(ttl_seconds, monotonic)

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
        self._cache.drop(f"user:{user_id}")
        self._cache.drop("names")

    def remember(self, user: User) -> None:
        self._cache.put(f"user:{user['id']}", dict(user))

    async def user(self, user_id: str) -> User | None:
        """The person's record, or None when Slack does not know them."""
        found, cached = self._cache.get(f"user:{user_id}")
        if found:
            return cast(User | None, cached)
        try:
            resp = await self.client.users_info(user=user_id)
        except SlackApiError as e:
            if slack_error(e) not in NOT_FOUND:
                raise
            self._cache.put(f"user:{user_id}", None)
            return None
        user: User = resp["user"]
        self._cache.put(f"user:{user_id}", user)
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
        found, cached = self._cache.get("names")
        names: dict[str, str] = cached if found else {}
        if not found:
            async for page in await self.client.users_list(limit=500):
                for u in page.get("members", []):
                    if u.get("deleted"):
                        continue
                    profile = u.get("profile") or {}
                    for key in (u.get("name"), profile.get("display_name")):
                        if key:
                            names.setdefault(key.lower(), u["id"])
            self._cache.put("names", names)
        return names.get(name.lower())

    async def display_names(self, user_ids: Iterable[str]) -> dict[str, str]:
        """A name per id (one users.info per person not known yet); an unknown id keeps
        itself as its name."""
        wanted = sorted({uid for uid in user_ids if uid})
        limit = asyncio.Semaphore(USERS_CONCURRENCY)
        names: dict[str, str] = {}

        async def lookup(uid: str) -> None:
            async with limit:
                user = await self.user(uid)
            names[uid] = display_name(user) if user is not None else uid

        async with asyncio.TaskGroup() as group:
            for uid in wanted:
                group.create_task(lookup(uid))
        return {uid: names[uid] for uid in wanted}

    async def members(self, channel_id: str) -> set[str]:
        members: set[str] = set()
        async for page in await self.client.conversations_members(channel=channel_id, limit=1000):
            members.update(page.get("members", []))
        return members
