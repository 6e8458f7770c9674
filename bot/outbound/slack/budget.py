"""Slack's rate limits, spent on purpose.

Each Web API method has a documented tier (calls per minute per workspace), and
chat.postMessage about one message a second per channel with short bursts. Instead of
sending a call Slack will refuse with a 429 (and waiting out `Retry-After` after the fact),
a call waits here until its method, and its channel, have room. Changes arriving faster
than that are absorbed by the surfaces' coalescing: a card refresh that waited renders the
latest state once.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import FormData
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from bot.base.work import give_back

Observer = Callable[[str, float, str | None], None]

# Slack's documented tiers, at their floor ("Tier 2: 20+ per minute").
PER_MINUTE = {1: 1, 2: 20, 3: 50, 4: 100}
# The tier of each method the bot calls (Slack's method reference). Methods not listed
# (auth.test, and chat.postMessage's workspace-wide limit) have no published number;
# apps.connections.open (Tier 1) is paced by Socket Mode's own reconnection backoff.
TIERS: dict[str, int] = {
    "bots.info": 3,
    "chat.delete": 3,
    "chat.postEphemeral": 4,
    "chat.update": 3,
    "conversations.create": 2,
    "conversations.history": 3,
    "conversations.info": 3,
    "conversations.invite": 3,
    "conversations.join": 3,
    "conversations.list": 2,
    "conversations.members": 4,
    "conversations.replies": 3,
    "conversations.setTopic": 2,
    "files.completeUploadExternal": 4,
    "files.getUploadURLExternal": 4,
    "pins.add": 2,
    "usergroups.list": 2,
    "usergroups.users.list": 2,
    "users.info": 4,
    "users.list": 2,
    "views.open": 4,
    "views.publish": 4,
    "views.push": 4,
    "views.update": 4,
}
# chat.postMessage in one channel: about one a second, short bursts allowed.
POSTS_PER_CHANNEL = (3, 3.0)
# Slack counts a call when it arrives, a little after it was sent here.
MARGIN_SECONDS = 0.25
# Channels whose posting window is empty are forgotten past this many.
KEEP_CHANNELS = 1000


def _key(method: str, channel: str | None) -> str:
    """What calls wait for together: a method's room, or a channel's for its posts."""
    return f"{method} {channel}" if method == "chat.postMessage" and channel else method


@dataclass
class Window:
    """At most `calls` in any `seconds`-long stretch."""

    calls: int
    seconds: float
    sent: deque[float] = field(default_factory=deque)

    def wait(self, now: float) -> float:
        while self.sent and self.sent[0] <= now - self.seconds:
            self.sent.popleft()
        if len(self.sent) < self.calls:
            return 0.0
        return self.sent[0] + self.seconds - now


class Budget:
    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self._methods = {
            method: Window(PER_MINUTE[tier], 60.0 + MARGIN_SECONDS)
            for method, tier in TIERS.items()
        }
        # Least recently used first: the channels to forget are found at the front.
        self._channels: OrderedDict[str, Window] = OrderedDict()
        # Calls waiting for room, by method (and channel, for chat.postMessage).
        self.waiting: Counter[str] = Counter()

    def _windows(self, method: str, channel: str | None) -> list[Window]:
        windows = [w for w in (self._methods.get(method),) if w is not None]
        if method == "chat.postMessage" and channel:
            window = self._channels.get(channel)
            if window is None:
                if len(self._channels) >= KEEP_CHANNELS:
                    self._forget_quiet_channels()
                calls, seconds = POSTS_PER_CHANNEL
                window = self._channels[channel] = Window(calls, seconds + MARGIN_SECONDS)
            else:
                self._channels.move_to_end(channel)
            windows.append(window)
        return windows

    def _forget_quiet_channels(self) -> None:
        """Forget the least recently used channels whose window is empty. They are at the
        front, so this stops at the first busy one: a burst across thousands of channels
        (reminders falling due together) costs no scan of them all per post."""
        now = self.clock()
        while len(self._channels) >= KEEP_CHANNELS:
            channel, window = next(iter(self._channels.items()))
            window.wait(now)
            if window.sent:
                return  # the least recently used is still busy: so are the others
            del self._channels[channel]

    def paced(self, method: str, channel: str | None = None) -> bool:
        """Whether a call of `method` (in `channel`) made now would wait for room: its
        window is full, or other calls already wait for it."""
        if self.waiting[_key(method, channel)]:
            return True
        now = self.clock()
        return any(w.wait(now) > 0 for w in self._windows(method, channel))

    async def spend(self, method: str, channel: str | None = None) -> None:
        """Wait until a call of `method` (in `channel`) fits Slack's limits, and count it.
        An operation that must wait gives its work slot back first: its change is stored,
        and the next one's is stored now instead of after this wait."""
        windows = self._windows(method, channel)
        waited = False
        try:
            while True:
                now = self.clock()
                wait = max((w.wait(now) for w in windows), default=0.0)
                if wait <= 0:
                    for w in windows:
                        w.sent.append(now)
                    return
                if not waited:
                    waited = True
                    self.waiting[_key(method, channel)] += 1
                    give_back()
                await asyncio.sleep(wait)
        finally:
            if waited:
                self.waiting[_key(method, channel)] -= 1


class PacedWebClient(AsyncWebClient):
    """slack_sdk's client, each call waiting for room in Slack's limits first."""

    def __init__(
        self,
        *args: Any,
        budget: Budget | None = None,
        observe: Observer | None = None,
        **kwargs: Any,
    ):
        super().__init__(*args, **kwargs)
        self.budget = budget
        # Told of every call: its method, seconds (retries included) and error, if any.
        self.observe = observe

    async def api_call(
        self,
        api_method: str,
        *,
        http_verb: str = "POST",
        files: dict[str, Any] | None = None,
        data: dict[str, Any] | FormData | None = None,
        params: dict[str, Any] | None = None,
        json: dict[str, Any] | None = None,
        headers: dict[str, Any] | None = None,
        auth: dict[str, Any] | None = None,
    ) -> AsyncSlackResponse:
        if self.budget is not None:
            args = json or (data if isinstance(data, dict) else None) or params or {}
            channel = args.get("channel")
            await self.budget.spend(api_method, channel if isinstance(channel, str) else None)
        started = time.monotonic()
        error: str | None = None
        try:
            return await super().api_call(
                api_method,
                http_verb=http_verb,
                files=files,
                data=data,
                params=params,
                json=json,
                headers=headers,
                auth=auth,
            )
        except SlackApiError as e:
            error = str(e.response.get("error") or "unknown_error")
            raise
        except Exception as e:
            error = type(e).__name__
            raise
        finally:
            if self.observe is not None:
                self.observe(api_method, time.monotonic() - started, error)
