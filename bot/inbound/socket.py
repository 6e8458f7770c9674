"""Slack's Socket Mode: envelopes in over a WebSocket, acknowledgements out.

Connecting asks Slack for a socket URL with the app token first: a refused token ends
start-up at once, an unreachable Slack is tried again with backoff, one log line an attempt.
Stopping drains: no envelope is taken or acknowledged any more (Slack hands those to another
connection), what was acknowledged finishes, then the socket closes without reconnecting.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import aiohttp
from slack_bolt.adapter.socket_mode.async_internals import run_async_bolt_app, send_async_response
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.socket_mode.aiohttp import SocketModeClient
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


class SocketMode:
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
        self.bolt = bolt
        self.inflight = inflight
        # Told of each envelope as it comes in (its ack is due).
        self.arrived = arrived
        self.first_retry = first_retry
        self.longest_retry = longest_retry
        self.connect_timeout = connect_timeout
        # slack_sdk's Socket Mode client has untyped methods; Any keeps mypy strict elsewhere.
        self.connection: Any = SocketModeClient(
            app_token=app_token,
            web_client=web_client,
            ping_interval=ping_interval,
            logger=logging.getLogger("slack_sdk.socket_mode"),
        )
        self.connection.socket_mode_request_listeners.append(self._handle)
        self._accepting = False  # until accept(): the bot is still starting

    async def connect(self) -> None:
        """Connect, retrying with backoff until Slack answers; TokenRefused if it says no."""
        attempt = 0
        while True:
            attempt += 1
            try:
                # Asked here rather than by slack_sdk, which logs a refusal and retries it.
                opened = await self.connection.web_client.apps_connections_open(
                    app_token=self.connection.app_token
                )
                self.connection.wss_uri = opened["url"]
                await asyncio.wait_for(self.connection.connect(), self.connect_timeout)
                return
            except SlackApiError as e:
                if not passes(e):
                    raise TokenRefused(slack_error(e)) from e
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
        return self._accepting and await self.connection.is_connected()

    async def _handle(self, socket: Any, request: SocketModeRequest) -> None:
        if not self._accepting:
            return  # never acknowledged: Slack delivers it to another connection
        self.arrived()
        async with self.inflight.track():
            started = time.time()
            payload = request.payload if isinstance(request.payload, dict) else {}
            missing = protocol.lacks(payload)
            if missing or protocol.quiet(payload):
                # Acknowledged so Slack does not send it again; nothing to do with it.
                if missing:
                    log.info("ignored a malformed envelope: %s without %s", request.type, missing)
                await socket.send_socket_mode_response({"envelope_id": request.envelope_id})
                return
            response = await run_async_bolt_app(self.bolt, request)
            await send_async_response(socket, request, response, started)

    def accept(self) -> None:
        """Take envelopes from now on (start-up is complete)."""
        self._accepting = True

    def stop_accepting(self) -> None:
        """Take no new envelope and never reconnect; the open socket still carries the
        acknowledgements of envelopes already being handled."""
        self._accepting = False
        self.connection.auto_reconnect_enabled = False
        self.connection.default_auto_reconnect_enabled = False
        # connect() and every reconnect path stop once the client says it is closed.
        self.connection.closed = True

    async def close(self) -> None:
        self.stop_accepting()
        await self.connection.close()
