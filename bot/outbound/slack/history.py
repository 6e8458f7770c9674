"""The incident channel's history, as the postmortem needs it: every message, every reply.

Uses the fewest calls Slack allows (full pages, no probing); slack_sdk pages through the
cursors and its retry handlers take care of rate limits.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

from bot.views.postmortem import ts_key

# Slack's maximum page size for conversations.history and conversations.replies.
PAGE_LIMIT = 999
# Enough to overlap the round trips of many threads without a burst that only earns 429s.
REPLIES_CONCURRENCY = 4

Message = dict[str, Any]


async def _replies(client: AsyncWebClient, channel_id: str, thread_ts: str) -> list[Message]:
    replies: list[Message] = []
    async for page in await client.conversations_replies(
        channel=channel_id, ts=thread_ts, limit=PAGE_LIMIT
    ):
        # The parent comes back as the first item of the first page.
        replies.extend(m for m in page.get("messages") or [] if m.get("ts") != thread_ts)
    replies.sort(key=lambda m: ts_key(m.get("ts")))
    return replies


# Told about each batch as it arrives: a page of top-level messages (False), or a thread's
# replies (True).
OnMessages = Callable[[list[Message], bool], None]


async def fetch_history(
    client: AsyncWebClient, channel_id: str, on_messages: OnMessages | None = None
) -> list[Message]:
    """Every top-level message, oldest first, with thread replies as ``msg["replies"]``;
    `on_messages` hears of each batch as it arrives."""
    messages: list[Message] = []
    seen: set[str] = set()
    async for page in await client.conversations_history(channel=channel_id, limit=PAGE_LIMIT):
        fresh = []
        for msg in page.get("messages") or []:
            if msg.get("ts") not in seen:
                seen.add(msg.get("ts"))
                fresh.append(msg)
        messages += fresh
        if on_messages is not None:
            on_messages(fresh, False)
    # Slack pages newest first.
    messages.sort(key=lambda m: ts_key(m.get("ts")))

    limit = asyncio.Semaphore(REPLIES_CONCURRENCY)

    async def attach(msg: Message) -> None:
        async with limit:
            replies = await _replies(client, channel_id, msg["ts"])
        msg["replies"] = replies
        if on_messages is not None:
            on_messages(replies, True)

    # The longest threads first: their pages follow one another, so they start while the
    # short ones fill the other slots instead of being the last ones left.
    threads = sorted(
        (m for m in messages if (m.get("reply_count") or 0) > 0),
        key=lambda m: -int(m["reply_count"]),
    )
    # A TaskGroup cancels the other fetches as soon as one fails.
    async with asyncio.TaskGroup() as group:
        for msg in threads:
            group.create_task(attach(msg))
    return messages
