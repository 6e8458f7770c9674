"""Outgoing webhooks: each event POSTed as JSON, signed, with a delivery id that stays the
same on every attempt so receivers can drop a repeat.

Signature: `X-Incident-Bot-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "t.body">`
with the receiver's secret; receivers should refuse a `t` more than five minutes away.

| the receiver answers              | the outbox                                          |
|-----------------------------------|-----------------------------------------------------|
| 2xx                               | done                                                |
| 408, 425, 429 (`Retry-After`), 5xx| tries again with backoff, for up to a day           |
| nothing within 10 s, no connection| tries again with backoff, for up to a day           |
| any other 4xx                     | failed for good, with the status and the answer     |
| (the URL is no longer configured) | failed for good                                     |
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import aiohttp

from bot.base.settings import OutgoingWebhook, Settings
from bot.model.tables import Effect
from bot.outbound.outbox import Passing, Refused

SIGNATURE = "X-Incident-Bot-Signature"
DELIVERY = "X-Incident-Bot-Delivery"
EVENT = "X-Incident-Bot-Event"
# Answers worth waiting for: the receiver is busy, not refusing.
PASSING_STATUSES = frozenset({408, 425, 429})


def sign(secret: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


def encode(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


class WebhookCourier:
    """Delivers the outbox's `webhook` effects."""

    kind = "webhook"
    timeout = 10.0
    give_up_after = timedelta(days=1)

    def __init__(
        self,
        settings: Settings,
        session: Callable[[], aiohttp.ClientSession],
        *,
        now: Callable[[], float] = time.time,
    ):
        self.settings = settings
        self.session = session
        self.now = now

    def _receiver(self, url: str) -> OutgoingWebhook | None:
        return next((h for h in self.settings.outgoing_webhooks if h.url == url), None)

    async def deliver(self, effect: Effect) -> dict[str, Any] | None:
        url = str(effect.payload["url"])
        hook = self._receiver(url)
        if hook is None:
            raise Refused("this receiver is no longer in OUTGOING_WEBHOOKS")
        body = encode(effect.payload["body"])
        return await post(
            self.session(),
            url,
            body,
            secret=hook.secret.get_secret_value(),
            delivery=str(effect.payload["body"]["delivery"]),
            event=str(effect.payload["body"]["event"]),
            timestamp=int(self.now()),
        )


async def post(
    http: aiohttp.ClientSession,
    url: str,
    body: bytes,
    *,
    secret: str,
    delivery: str,
    event: str,
    timestamp: int,
) -> dict[str, Any]:
    """One signed POST; the answer sorted into done, passing or refused."""
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "incident-bot",
        DELIVERY: delivery,
        EVENT: event,
        SIGNATURE: sign(secret, timestamp, body),
    }
    async with http.post(url, data=body, headers=headers, allow_redirects=False) as answer:
        text = (await answer.text(errors="replace"))[:300]
        status = answer.status
        if 200 <= status < 300:
            return {"status": status}
        reason = f"{status} {answer.reason or ''}".strip() + (f": {text}" if text else "")
        if status in PASSING_STATUSES or status >= 500:
            raise Passing(reason, retry_after=_retry_after(answer.headers.get("Retry-After")))
        raise Refused(reason)
