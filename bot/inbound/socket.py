"""Slack's Socket Mode: envelopes in over a WebSocket, acknowledgements out.

Bolt's `AsyncSocketModeHandler` on slack_sdk's aiohttp `SocketModeClient`, each with the
overrides below (every one says why). Connecting asks Slack for a socket URL with the app
token first: a refused token ends start-up at once, an unreachable Slack is tried again with
backoff, one log line an attempt. Stopping drains: no envelope is taken or acknowledged any
more (Slack hands those to another connection), what was acknowledged finishes, then the
socket closes without reconnecting.

| what happens                                      | what the bot does                          |
|---------------------------------------------------|--------------------------------------------|
| Slack refuses the app token at start-up           | `TokenRefused` after one attempt: start-up |
|                                                   | ends with one line (exit 2)                |
| a refusal that passes (429, 5xx, `ratelimited`,   | tried again with backoff, one warning line |
| ...) or an unreachable Slack at start-up          | an attempt                                 |
| a socket dropped, or Slack's `disconnect`, once   | slack_sdk reconnects with a new URL; a     |
| running                                           | failed attempt it logs and tries again     |
|                                                   | every ping interval                        |
| an envelope before start-up ends, or once         | never acknowledged: Slack delivers it to   |
| stopping began                                    | another connection                         |
| an envelope without what its listener reads, or   | acknowledged without Bolt                  |
| one that needs no listener (`protocol.quiet`)     |                                            |
| a `disconnect` or a dropped socket while stopping | no new socket; the open one carries the    |
|                                                   | acknowledgements until it closes           |
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import aiohttp
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.async_client import AsyncBaseSocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.web.async_client import AsyncWebClient

from bot.base.errors import slack_error
from bot.base.work import InFlight
from bot.inbound import http as protocol

log = logging.getLogger(__name__)

# apps.connections.open errors that pass with time; any other refusal (invalid_auth,
# access_denied, team_access_not_granted, ekm_access_denied, ...) no retry can fix.
PASSING = frozenset(
    {"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)


def passes(e: SlackApiError) -> bool:
    """Whether a refusal of apps.connections.open is worth trying again."""
    status = getattr(e.response, "status_code", 200)
    return slack_error(e) in PASSING or status == 429 or status >= 500


class TokenRefused(Exception):
    """Slack refused the app token; the message is Slack's error code."""


class Connection(SocketModeClient):
    """slack_sdk's aiohttp Socket Mode client that asks for a socket URL once per call
    (the caller decides about retries) and opens no new socket once it stops
    reconnecting."""

    async def issue_new_wss_url(self) -> str:
        """One apps.connections.open: TokenRefused when no retry can help, the error as
        it is otherwise (slack_sdk's own logs every refusal as an error, and its
        `connect()` would retry a refused token forever)."""
        try:
            opened = await self.web_client.apps_connections_open(app_token=self.app_token)
        except SlackApiError as e:
            if passes(e):
                raise
            raise TokenRefused(slack_error(e)) from e
        return str(opened["url"])

    async def connect_to_new_endpoint(self, force: bool = False) -> None:
        # slack_sdk reconnects on Slack's `disconnect` message (force=True) whatever
        # auto_reconnect_enabled says; a client told to stop reconnecting keeps its socket,
        # which still carries acknowledgements, and opens no other.
        if self.default_auto_reconnect_enabled:
            await super().connect_to_new_endpoint(force)

    def stop_reconnecting(self) -> None:
        self.auto_reconnect_enabled = False
        self.default_auto_reconnect_enabled = False


class SocketMode(AsyncSocketModeHandler):
    """Bolt's Socket Mode handler, taking envelopes only between `accept()` and
    `stop_accepting()`."""

    client: Connection

    def __init__(
        self,
        bolt: AsyncApp,
        app_token: str,
        web_client: AsyncWebClient,
        inflight: InFlight,
        *,
        arrived: Callable[[], None] = lambda: None,
        ping_interval: float = 10.0,
        first_retry: float = 1.0,
        longest_retry: float = 60.0,
        connect_timeout: float = 20.0,
    ):
        # Not AsyncSocketModeHandler.__init__: it would build a plain SocketModeClient (an
        # aiohttp session and a running task) only to have it replaced. This is its body
        # with Connection in its place (and no proxy or loop, which the bot never sets).
        self.app = bolt
        self.app_token = app_token
        self.client = Connection(
            app_token=app_token,
            web_client=web_client,
            ping_interval=ping_interval,
            logger=logging.getLogger("slack_sdk.socket_mode"),
        )
        self.client.socket_mode_request_listeners.append(self.handle)
        self.inflight = inflight
        # Told of each envelope as it comes in (its ack is due).
        self.arrived = arrived
        self.first_retry = first_retry
        self.longest_retry = longest_retry
        self.connect_timeout = connect_timeout
        self._accepting = False  # until accept(): the bot is still starting

    async def connect_async(self) -> None:
        """Connect, retrying with backoff until Slack answers; TokenRefused if it says no.

        (The handler's own only calls the client's `connect()`, which asks for a URL inside
        a loop that retries every failure, a refused token included, every ping interval
        with a traceback each time.)"""
        attempt = 0
        while True:
            attempt += 1
            try:
                connecting = self.client.connect_to_new_endpoint(force=True)
                await asyncio.wait_for(connecting, self.connect_timeout)
                return
            except SlackApiError as e:  # one that passes (Connection raised the others)
                reason = slack_error(e)
            except (OSError, aiohttp.ClientError, TimeoutError) as e:
                reason = str(e) or type(e).__name__
            delay = min(self.longest_retry, self.first_retry * 2 ** (attempt - 1))
            log.warning(
                "cannot connect to Slack with Socket Mode (%s); attempt %d, next in %.0f s",
                reason,
                attempt,
                delay,
            )
            await asyncio.sleep(delay)

    async def connected(self) -> bool:
        return self._accepting and await self.client.is_connected()

    async def handle(self, client: AsyncBaseSocketModeClient, req: SocketModeRequest) -> None:
        """Bolt's handling of an envelope taken while accepting, after the checks HTTP
        requests get (what its listener reads, whether it needs one)."""
        if not self._accepting:
            return  # never acknowledged: Slack delivers it to another connection
        self.arrived()
        async with self.inflight.track():
            payload = req.payload if isinstance(req.payload, dict) else {}
            missing = protocol.lacks(payload)
            if missing or protocol.quiet(payload):
                # Acknowledged so Slack does not send it again; nothing to do with it.
                if missing:
                    log.info("ignored a malformed envelope: %s without %s", req.type, missing)
                await client.send_socket_mode_response({"envelope_id": req.envelope_id})
                return
            await super().handle(self.client, req)  # `client` is this handler's own

    def accept(self) -> None:
        """Take envelopes from now on (start-up is complete)."""
        self._accepting = True

    def stop_accepting(self) -> None:
        """Take no new envelope and never reconnect; the open socket still carries the
        acknowledgements of envelopes already being handled."""
        self._accepting = False
        self.client.stop_reconnecting()

    async def close_async(self) -> None:
        self.stop_accepting()
        await self.client.close()  # type: ignore[no-untyped-call]
