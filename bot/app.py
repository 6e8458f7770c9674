"""Builds the bot: Bolt app, Web API client, store and operations, wired together."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncApp
from slack_bolt.authorization import AuthorizeResult
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy.exc import SQLAlchemyError

from bot.incidents import Clock, Incidents
from bot.reminders import Reminders
from bot.settings import Settings
from bot.slack import listeners
from bot.store import Store, utcnow

log = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"


def make_client(settings: Settings, *, with_token: bool = True) -> AsyncWebClient:
    """One Web API client; slack_sdk retries rate limits, 5xx and dropped connections."""
    return AsyncWebClient(
        token=settings.slack_bot_token.get_secret_value() if with_token else None,
        base_url=settings.slack_api_url,
        timeout=30,
        retry_handlers=[
            AsyncConnectionErrorRetryHandler(max_retry_count=3),
            AsyncRateLimitErrorRetryHandler(max_retry_count=5),
            AsyncServerErrorRetryHandler(max_retry_count=3),
        ],
    )


class StartupError(Exception):
    """Start-up cannot go on; the message is one line for the person running the bot."""


class BotApp:
    """The running bot. `start()` and `stop()` bracket its life; tests use it in-process."""

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock = utcnow,
        reminder_sync_seconds: float = 30.0,
        lease_seconds: float = 30.0,
    ):
        self.settings = settings
        self.client = make_client(settings)
        self.store = Store(settings.database_url)
        self.ops = Incidents(
            settings, self.store, self.client, clock=clock, lease_seconds=lease_seconds
        )
        self.reminders = Reminders(self.ops, sync_seconds=reminder_sync_seconds)
        self._lease_seconds = lease_seconds
        self._bot_id: str | None = None
        secret = settings.slack_signing_secret
        self.bolt = AsyncApp(
            # Bolt copies this client's settings into each request's client and gives it
            # the token from `authorize`.
            client=make_client(settings, with_token=False),
            signing_secret=secret.get_secret_value() if secret else None,
            # Socket Mode is authenticated by the app token; HTTP always verifies signatures.
            request_verification_enabled=not settings.socket_mode,
            authorize=self._authorizer(),
            # Listeners ack first and keep working after Slack has its answer.
            process_before_response=False,
        )
        listeners.register(self.bolt, self.ops)
        self._runner: web.AppRunner | None = None
        self._socket: Any = None
        self._tasks: set[asyncio.Future[Any]] = set()
        self._stopped = False
        self.port: int | None = None

    def _authorizer(self) -> Any:
        # The single workspace's identity is learned once at start-up (auth.test), so no
        # request ever waits for an extra Slack call before its ack.
        async def authorize(enterprise_id: str | None, team_id: str | None) -> AuthorizeResult:
            return AuthorizeResult(
                enterprise_id=enterprise_id,
                team_id=self.ops.team_id or team_id,
                bot_token=self.settings.slack_bot_token.get_secret_value(),
                bot_id=self._bot_id,
                bot_user_id=self.ops.bot_user_id,
            )

        return authorize

    # --- HTTP ----------------------------------------------------------------------------

    def web_app(self) -> web.Application:
        app = web.Application()
        app.router.add_post(EVENTS_PATH, self._events)
        app.router.add_get("/healthz", self._health)
        return app

    async def _events(self, request: web.Request) -> web.Response:
        response = await self.bolt.async_dispatch(await to_bolt_request(request))
        return await to_aiohttp_response(response)

    async def _health(self, _: web.Request) -> web.Response:
        ok = await self.store.ping()
        return web.json_response(
            {"ok": ok, "database": "ok" if ok else "unreachable"}, status=200 if ok else 503
        )

    # --- life cycle ------------------------------------------------------------------------

    async def prepare(self) -> None:
        """Migrate the database and learn who the bot is."""
        try:
            await self.store.migrate()
        except (OSError, SQLAlchemyError) as e:
            raise StartupError(f"cannot use DATABASE_URL: {type(e).__name__}") from e
        try:
            await self.ops.connect()
        except SlackApiError as e:
            error = e.response.get("error", "unknown_error")
            raise StartupError(f"Slack refused SLACK_BOT_TOKEN ({error})") from e
        except OSError as e:
            raise StartupError(f"cannot reach Slack at SLACK_API_URL ({e.strerror or e})") from e
        self._bot_id = self.ops.bot_id

    async def start(self, *, host: str = "0.0.0.0", port: int | None = None) -> None:  # noqa: S104
        await self.prepare()
        if self.settings.socket_mode:
            from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

            token = self.settings.slack_app_token
            assert token is not None
            self._socket = AsyncSocketModeHandler(self.bolt, token.get_secret_value())
            try:
                await self._socket.connect_async()
            except SlackApiError as e:
                error = e.response.get("error", "unknown_error")
                raise StartupError(f"Slack refused SLACK_APP_TOKEN ({error})") from e
            log.info("connected to Slack with Socket Mode")
        else:
            self._runner = web.AppRunner(self.web_app(), access_log=None)
            await self._runner.setup()
            site = web.TCPSite(self._runner, host, self.settings.port if port is None else port)
            await site.start()
            server = site._server
            sockets = getattr(server, "sockets", None) or []
            self.port = sockets[0].getsockname()[1] if sockets else port
            log.info("serving Slack requests on port %s at %s", self.port, EVENTS_PATH)
        await self.reminders.start()
        # Finish what a crash or a Slack outage left half-done, now and from time to
        # time (a process that died mid-way holds its lease only briefly).
        self._background(self.ops.repair())
        self.reminders.scheduler.add_job(
            self.ops.repair,
            "interval",
            seconds=max(self._lease_seconds / 2, 1.0),
            id="repair",
            coalesce=True,
            max_instances=1,
        )

    def _background(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def busy(self) -> int:
        """Listener and background work in flight (tests wait for it to settle)."""
        current = asyncio.current_task()
        return sum(1 for t in asyncio.all_tasks() if t is not current and _is_ours(t))

    async def stop(self, *, grace: float = 10.0) -> None:
        """Stop taking requests, let work in flight finish (up to `grace` s), close."""
        if self._stopped:
            return
        self._stopped = True
        await self.reminders.stop(grace)
        if self._socket is not None:
            with contextlib.suppress(Exception):
                await self._socket.disconnect_async()
        if self._runner is not None:
            await self._runner.shutdown()
        current = asyncio.current_task()
        pending = [t for t in asyncio.all_tasks() if t is not current and _is_ours(t)]
        if pending:
            _, late = await asyncio.wait(pending, timeout=grace)
            for task in late:
                task.cancel()
        if self._runner is not None:
            await self._runner.cleanup()
        if self._socket is not None:
            with contextlib.suppress(Exception):
                await self._socket.close_async()
        await self.store.close()


def _is_ours(task: asyncio.Task[Any]) -> bool:
    """Listener and background tasks (Bolt's and ours), not the test runner's or aiohttp's."""
    code = getattr(task.get_coro(), "cr_code", None)
    name = getattr(code, "co_qualname", "") or ""
    module = getattr(code, "co_filename", "") or ""
    return "slack_bolt" in module or "/bot/" in module or name.startswith("Incidents.")
