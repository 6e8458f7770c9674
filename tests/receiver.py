"""A system that follows incidents through an outgoing webhook, as a careful receiver is
written: it checks each delivery's signature and freshness before reading it, and does the
work of a delivery id once however often it arrives.

Tests script its answers: a list of statuses to give in turn (then 200), or `hang_after_work`
to do the work and then keep the sender waiting past its timeout.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

SECRET = "receiver-secret-0123456789"
# A receiver refuses signatures older (or newer) than this, as the docs advise.
TOLERANCE = 300


@dataclass
class Delivery:
    delivery: str
    event: str
    body: dict[str, Any]


@dataclass
class Receiver:
    secret: str = SECRET
    # Answers to give, in turn, before answering 200.
    answers: list[int] = field(default_factory=list)
    # Sent with a 429.
    retry_after: str | None = None
    # Do the work, then hold the answer for this long (the sender gives up first).
    hang_after_work: float = 0.0
    # Every request that arrived with a valid signature, repeats included.
    arrivals: list[Delivery] = field(default_factory=list)
    # The work done: one per delivery id.
    done: dict[str, Delivery] = field(default_factory=dict)
    refused_signatures: int = 0
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    # Set while a request is held (see `hold`).
    held: asyncio.Event = field(default_factory=asyncio.Event)
    hold: asyncio.Event | None = None
    _runner: web.AppRunner | None = None
    url: str = ""

    async def start(self) -> Receiver:
        app = web.Application()
        app.router.add_post("/hook", self._hook)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}/hook"
        return self

    async def close(self) -> None:
        if self.hold is not None:
            self.hold.set()
        if self._runner is not None:
            await self._runner.cleanup()

    def _signed(self, header: str, raw: bytes) -> bool:
        parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
        try:
            t = int(parts["t"])
        except (KeyError, ValueError):
            return False
        if abs(time.time() - t) > TOLERANCE:
            return False
        want = hmac.new(self.secret.encode(), f"{t}.".encode() + raw, hashlib.sha256)
        return hmac.compare_digest(want.hexdigest(), parts.get("v1", ""))

    async def _hook(self, request: web.Request) -> web.Response:
        raw = await request.read()
        if not self._signed(request.headers.get("X-Incident-Bot-Signature", ""), raw):
            self.refused_signatures += 1
            return web.Response(status=401)
        body = json.loads(raw)
        delivery = Delivery(request.headers["X-Incident-Bot-Delivery"], body["event"], body)
        assert delivery.delivery == body["delivery"]
        assert request.headers["X-Incident-Bot-Event"] == body["event"]
        self.arrivals.append(delivery)
        self.arrived.set()
        if self.answers:
            status = self.answers.pop(0)
            asked = status == 429 and self.retry_after is not None
            headers = {"Retry-After": str(self.retry_after)} if asked else {}
            return web.Response(status=status, text=f"answer {status}", headers=headers)
        # The work: once per delivery id.
        self.done.setdefault(delivery.delivery, delivery)
        if self.hold is not None:
            self.held.set()
            await self.hold.wait()
        if self.hang_after_work:
            await asyncio.sleep(self.hang_after_work)
        return web.Response(status=200, text="ok")

    def events(self) -> list[tuple[str, int]]:
        """The work done, in order: (event, incident number)."""
        return [(d.event, d.body["incident"]["number"]) for d in self.done.values()]

    def hook(self, **extra: Any) -> dict[str, Any]:
        """This receiver as an OUTGOING_WEBHOOKS entry."""
        return {"url": self.url, "secret": self.secret, **extra}
