"""Builds the bot: Bolt app, Web API client, store, Slack gateways and operations, wired
together, and runs it over HTTP or Socket Mode."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hmac
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, timedelta
from typing import Any

import aiohttp
from aiohttp import web
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncApp
from slack_bolt.authorization import AuthorizeResult
from slack_bolt.logger.messages import warning_client_prioritized_and_token_skipped
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from bot.base.clock import Clock, utcnow
from bot.base.errors import DatabaseUnavailable, SlackFailure, log_failure
from bot.base.settings import Settings
from bot.base.work import InFlight, Slots
from bot.inbound import http as protocol
from bot.inbound import listeners
from bot.inbound.listeners import Operations
from bot.inbound.metrics import Metrics
from bot.inbound.socket import SocketMode, TokenRefused
from bot.model import alert_payloads as payloads
from bot.model.tables import Effect
from bot.operations.alerts import Intake
from bot.operations.deps import Deps
from bot.operations.home import Home
from bot.operations.incidents.declare import Declarations
from bot.operations.incidents.drift import Drift
from bot.operations.incidents.find import Finder
from bot.operations.incidents.repair import Repair
from bot.operations.incidents.response import Response
from bot.operations.incidents.timeline import Timeline
from bot.operations.nudges import Nudges
from bot.operations.outgoing import Outgoing
from bot.operations.postmortem import Postmortems
from bot.operations.reminders import Reminders
from bot.operations.report import Reports
from bot.outbound.outbox import Outbox
from bot.outbound.slack.budget import Budget, PacedWebClient
from bot.outbound.slack.directory import Directory
from bot.outbound.slack.history import fetch_history
from bot.outbound.slack.replies import Replies
from bot.outbound.slack.surfaces import Surfaces
from bot.outbound.store import Claims, Store
from bot.outbound.store.effects import Effects
from bot.outbound.store.engine import POOL_SIZE
from bot.outbound.webhooks import WebhookCourier

log = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"
# The largest alert webhook body taken (Alertmanager groups can be large, not this large).
ALERT_BODY_MAX = 1024 * 1024
# Operations running at once while people's requests keep arriving (see Slots); up to the
# database pool otherwise.
BUSY_SLOTS = 2
# /healthz answers within this, whatever state the database is in.
HEALTH_SECONDS = 1.5


def make_client(
    settings: Settings, *, with_token: bool = True, metrics: Metrics | None = None
) -> PacedWebClient:
    """One Web API client; slack_sdk retries rate limits, 5xx and dropped connections, and
    with SLACK_PACING calls wait for room in Slack's limits so that retries are rare."""
    return PacedWebClient(
        logger=_web_api_logger(settings),
        budget=Budget() if settings.slack_pacing else None,
        observe=metrics.api_call if metrics is not None else None,
        token=settings.slack_bot_token.get_secret_value() if with_token else None,
        base_url=settings.slack_api_url,
        timeout=30,
        retry_handlers=[
            AsyncConnectionErrorRetryHandler(max_retry_count=3),
            AsyncRateLimitErrorRetryHandler(max_retry_count=5),
            AsyncServerErrorRetryHandler(max_retry_count=3),
        ],
    )


def _web_api_logger(settings: Settings) -> logging.Logger:
    """slack_sdk's client logger with its own level set. slack_sdk writes each request's
    and response's whole body into a debug line whenever that logger's level is unset (it
    reads `logger.level`, not whether debug is on): for a page of history, the repr of a
    thousand messages on every call, only to be dropped."""
    logger = logging.getLogger("slack_sdk.web.async_client")
    logger.setLevel(logging.DEBUG if settings.log_level.upper() == "DEBUG" else logging.INFO)
    return logger


class _BoltTokenNotice(logging.Filter):
    """Bolt warns that the SLACK_BOT_TOKEN it finds in the environment is unused because a
    client was given. That is on purpose (the client carries the retry handlers; `authorize`
    gives each request the token), so the warning would only mislead."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != warning_client_prioritized_and_token_skipped()


logging.getLogger("slack_bolt.AsyncApp").addFilter(_BoltTokenNotice())


class _RoundSkipped(logging.Filter):
    """APScheduler warns when a periodic job (the reminder sync, the repair pass) comes
    round while its last run is still going. Skipping that round is what `max_instances=1`
    is for, so it is not worth a warning. Its own start and stop ("Added job ...") say
    nothing a person running the bot needs at INFO."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return logging.getLogger().isEnabledFor(logging.DEBUG)
        return "maximum number of running instances reached" not in record.getMessage()


logging.getLogger("apscheduler.scheduler").addFilter(_RoundSkipped())
# "Running job …" and "Job … executed successfully" for every reminder: DEBUG only.
logging.getLogger("apscheduler.executors.default").addFilter(_RoundSkipped())


class StartupError(Exception):
    """Start-up cannot go on; the message is one line for the person running the bot."""


class BotApp:
    """The running bot. `start()` and `stop()` bracket its life; tests use it in-process.

    The one place that builds and wires the parts: store, Slack gateways, operations,
    reminders, repair and listeners.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock = utcnow,
        reminder_sync_seconds: float = 30.0,
        lease_seconds: float = 30.0,
        socket_ping_seconds: float = 10.0,
        home_refresh_seconds: float = 5.0,
        nudge_seconds: float = 300.0,
    ):
        self.settings = settings
        self._socket_ping_seconds = socket_ping_seconds
        self.inflight = InFlight()
        self.metrics = Metrics()
        self.client = make_client(settings, metrics=self.metrics)
        self.store = Store(settings.database_url, timeout=settings.database_timeout_seconds)
        # How long a process may work on a claimed piece of Slack work before another one
        # takes over; renewed while the work runs.
        self.claims = Claims(self.store, clock=clock, lease=timedelta(seconds=lease_seconds))
        self.directory = Directory(self.client)
        self.surfaces = Surfaces(
            settings, self.store, self.claims, self.client, self.directory, self.inflight
        )
        # Every effect outside Slack: recorded with its change, delivered by the outbox.
        self.effects = Effects(self.store)
        self.outbox = Outbox(
            self.effects,
            {WebhookCourier.kind: WebhookCourier(settings, self._http_session)},
            clock=clock,
            on_failed=self._effect_failed,
        )
        self.outgoing = Outgoing(
            settings, self.effects, tell=self._tell, wake=self.outbox.wake, clock=clock
        )
        self._outbox_task: asyncio.Task[None] | None = None
        # What every operation reaches outside itself.
        self.deps = deps = Deps(
            settings=settings,
            store=self.store,
            claims=self.claims,
            surfaces=self.surfaces,
            directory=self.directory,
            outgoing=self.outgoing,
            clock=clock,
        )
        self.scheduler = AsyncIOScheduler(timezone=UTC)
        self.reminders = Reminders(
            deps, self.inflight, scheduler=self.scheduler, sync_seconds=reminder_sync_seconds
        )
        self.repair = Repair(deps, self.reminders)
        declarations = Declarations(deps, on_change=self.reminders.schedule)
        response = Response(deps, on_change=self.reminders.schedule)

        async def resolve_for_alerts(incident_id: int, summary: str) -> object:
            actor = self.directory.bot_user_id or ""
            return await response.resolve(incident_id, summary=summary, actor=actor)

        self.intake = Intake(deps, declarations, resolve=resolve_for_alerts)
        finder = Finder(deps)
        self.home = Home(deps, self.client, finder, self.inflight, min_seconds=home_refresh_seconds)
        self.surfaces.watchers.append(self.home.changed)
        self.nudges = Nudges(deps)
        self._nudge_seconds = nudge_seconds
        self.ops = Operations(
            settings=settings,
            find=finder,
            declarations=declarations,
            alerts=self.intake,
            drift=Drift(deps, on_change=self.reminders.schedule),
            response=response,
            timeline=Timeline(deps),
            postmortems=Postmortems(deps, functools.partial(fetch_history, self.client)),
            replies=Replies(self.client),
            reports=Reports(deps),
            home=self.home,
            slots=Slots(POOL_SIZE, while_busy=BUSY_SLOTS),
        )
        self._lease_seconds = lease_seconds
        secret = settings.slack_signing_secret
        self.bolt = AsyncApp(
            # Bolt copies this client's settings into each request's client and gives it
            # the token from `authorize`.
            client=make_client(settings, with_token=False),
            signing_secret=secret.get_secret_value() if secret else None,
            # Socket Mode is authenticated by the app token; HTTP always verifies signatures.
            request_verification_enabled=not settings.socket_mode,
            authorize=self._authorizer(),
            # Bolt answers once a listener's ack function returns, then runs its lazy work,
            # counted in flight (listeners/lazy.py).
            process_before_response=True,
        )
        listeners.register(self.bolt, self.ops, self.inflight)
        protocol.acknowledge_unused_events(self.bolt)
        self._verifier = protocol.Verifier(secret.get_secret_value()) if secret else None
        self._runner: web.AppRunner | None = None
        self._socket: SocketMode | None = None
        self._stopped = False
        self._http: aiohttp.ClientSession | None = None
        self.port: int | None = None

    def _http_session(self) -> aiohttp.ClientSession:
        assert self._http is not None, "the bot is not started"
        return self._http

    async def _tell(self, user: str, text: str) -> None:
        await self.client.chat_postMessage(channel=user, text=text)

    async def _effect_failed(self, effect: Effect) -> None:
        await self.outgoing.failed(effect)

    def _authorizer(self) -> Any:
        # The single workspace's identity is learned once at start-up (auth.test), so no
        # request ever waits for an extra Slack call before its ack.
        async def authorize(enterprise_id: str | None, team_id: str | None) -> AuthorizeResult:
            return AuthorizeResult(
                enterprise_id=enterprise_id,
                team_id=self.directory.team_id or team_id,
                bot_token=self.settings.slack_bot_token.get_secret_value(),
                bot_id=self.directory.bot_id,
                bot_user_id=self.directory.bot_user_id,
            )

        return authorize

    # --- HTTP ----------------------------------------------------------------------------

    def web_app(self) -> web.Application:
        app = web.Application()
        if not self.settings.socket_mode:
            app.router.add_post(EVENTS_PATH, self._events)
        app.router.add_get("/healthz", self._health)
        app.router.add_get("/metrics", self._metrics)
        if self.settings.alert_webhook_token is not None:
            app.router.add_post("/alerts/{source}", self._alert)
        return app

    async def _alert(self, request: web.Request) -> web.Response:
        """An alert webhook: token, size and shape checked before anything is stored."""
        token = self.settings.alert_webhook_token
        assert token is not None
        given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(given.encode(), token.get_secret_value().encode()):
            return web.json_response({"error": "missing or wrong bearer token"}, status=401)
        source = request.match_info["source"]
        if source not in payloads.SOURCES:
            return web.json_response(
                {"error": f"unknown source; use /alerts/{{{','.join(payloads.SOURCES)}}}"},
                status=404,
            )
        if request.content_type != "application/json":
            return web.json_response({"error": "send application/json"}, status=415)
        if (request.content_length or 0) > ALERT_BODY_MAX:
            return web.json_response({"error": "the body is over 1 MiB"}, status=413)
        raw = await request.content.read(ALERT_BODY_MAX + 1)
        if len(raw) > ALERT_BODY_MAX:
            return web.json_response({"error": "the body is over 1 MiB"}, status=413)
        try:
            batch = payloads.parse(source, raw)
        except payloads.Invalid as e:
            return web.json_response({"error": str(e)}, status=400)
        async with self.inflight.track(), self.ops.slots:
            try:
                received = await self.intake.receive(batch)
            except DatabaseUnavailable:
                # Nothing was stored: the sender retries, as Alertmanager and Grafana do.
                return web.json_response({"error": "the database is unavailable"}, status=503)
            except SlackFailure as e:
                log.warning("an alert's incident is recorded, but Slack refused: %s", e)
                return web.json_response({"action": "declared", "problem": str(e)}, status=202)
        log.info("alert from %s: %s", source, received.answer())
        return web.json_response(received.answer())

    async def _events(self, request: web.Request) -> web.Response:
        """Signature first, then parsing and shape (protocol.py), then Bolt."""
        self.ops.slots.arrived()
        raw = await request.read()
        if protocol.is_ssl_check(raw):
            return web.Response(status=200)
        if self._verifier is None or not protocol.signed(self._verifier, raw, request.headers):
            log.info("refused a request without a valid signature")
            return web.json_response({"error": "invalid request"}, status=401)
        try:
            body = protocol.parse(raw, request.headers.get("Content-Type", ""))
        except protocol.Malformed as e:
            log.info("refused a malformed request: %s", e)
            return web.json_response({"error": "malformed request"}, status=400)
        if protocol.quiet(body):
            return web.Response(status=200)
        # In flight until answered, as an envelope is (socket.py); the lazy work after it is
        # counted on its own.
        async with self.inflight.track():
            response = await self.bolt.async_dispatch(await to_bolt_request(request))
        return await to_aiohttp_response(response)

    async def _metrics(self, _: web.Request) -> web.Response:
        """Prometheus text: incident figures from the database, this process's counters."""
        async with self.inflight.track():
            body = await self.metrics.exposition(self.store)
        return web.Response(body=body, content_type="text/plain", charset="utf-8")

    async def _health(self, _: web.Request) -> web.Response:
        """Whether the database answers (and, with Socket Mode, the socket is connected);
        always within about HEALTH_SECONDS, whatever state the database is in."""
        database = await self.store.ping(within=HEALTH_SECONDS)
        body: dict[str, Any] = {"database": "ok" if database else "unreachable"}
        ok = database
        if self.settings.socket_mode:
            connected = self._socket is not None and await self._socket.connected()
            body["socket"] = "connected" if connected else "disconnected"
            ok = ok and connected
        body["ok"] = ok
        return web.json_response(body, status=200 if ok else 503)

    # --- life cycle ------------------------------------------------------------------------

    async def prepare(self) -> None:
        """Migrate the database and learn who the bot is."""
        try:
            await self.store.migrate()
        except DatabaseUnavailable as e:
            raise StartupError(f"cannot use DATABASE_URL: the database is unavailable ({e})") from e
        except (OSError, SQLAlchemyError) as e:
            raise StartupError(f"cannot use DATABASE_URL: {type(e).__name__}") from e
        try:
            await self.directory.connect()
        except SlackApiError as e:
            error = e.response.get("error", "unknown_error")
            raise StartupError(f"Slack refused SLACK_BOT_TOKEN ({error})") from e
        except OSError as e:
            raise StartupError(f"cannot reach Slack at SLACK_API_URL ({e.strerror or e})") from e
        if self.directory.bot_user_id:
            self.store.not_people.add(self.directory.bot_user_id)

    async def start(self, *, host: str = "0.0.0.0", port: int | None = None) -> None:  # noqa: S104
        """Migrate, learn who the bot is, serve `/healthz` (and Slack's requests over HTTP)
        on PORT, connect with Socket Mode when configured, start the schedule, then take
        Slack's envelopes."""
        # One HTTP session for every Web API call: connections (and TLS) are reused instead
        # of set up again for each call.
        self._http = aiohttp.ClientSession()
        self.client.session = self._http
        self.bolt.client.session = self._http
        await self.prepare()
        self._runner = web.AppRunner(self.web_app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, self.settings.port if port is None else port)
        await site.start()
        sockets = getattr(site._server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else port
        if self.settings.socket_mode:
            token = self.settings.slack_app_token
            assert token is not None
            self._socket = SocketMode(
                self.bolt,
                token.get_secret_value(),
                self.client,
                self.inflight,
                arrived=self.ops.slots.arrived,
                ping_interval=self._socket_ping_seconds,
            )
            try:
                await self._socket.connect_async()
            except TokenRefused as e:
                raise StartupError(f"Slack refused SLACK_APP_TOKEN ({e})") from e
        self.scheduler.start()
        await self.reminders.start()
        # Finish what a crash or a Slack outage left half-done, now and from time to
        # time (a process that died mid-way holds its lease only briefly).
        self.inflight.spawn(self.repair_pass())
        self.scheduler.add_job(
            self.repair_pass,
            "interval",
            seconds=max(self._lease_seconds / 2, 1.0),
            id="repair",
            coalesce=True,
            max_instances=1,
        )
        # Effects outside Slack, recorded by this process or another.
        self._outbox_task = asyncio.create_task(self.outbox.run())
        # Postmortems, owners, quiet incidents, archiving: looked at now and then.
        self.scheduler.add_job(
            self.nudge_pass,
            "interval",
            seconds=self._nudge_seconds,
            id="nudges",
            coalesce=True,
            max_instances=1,
        )
        if self._socket is not None:
            # Envelopes are taken from now on, once everything that serves them runs; one
            # that came earlier was not acknowledged, so Slack delivers it again.
            self._socket.accept()
            log.info(
                "connected to Slack with Socket Mode; /healthz on port %s; database %s",
                self.port,
                self._database,
            )
        else:
            log.info(
                "serving Slack requests on port %s at %s; database %s",
                self.port,
                EVENTS_PATH,
                self._database,
            )

    @property
    def _database(self) -> str:
        """The database in use, as a start-up line may show it (no password)."""
        return make_url(self.settings.database_url).render_as_string(hide_password=True)

    # The scheduler runs these passes every so often; tests that move an injected clock
    # call them to run one pass and go on once it is done, instead of waiting for it.

    async def repair_pass(self) -> None:
        await self._periodic("repair", self.repair.run)

    async def nudge_pass(self) -> None:
        await self._periodic("nudges", self.nudges.run)

    async def _periodic(self, name: str, run: Callable[[], Awaitable[None]]) -> None:
        async with self.inflight.track():
            try:
                await run()
            except asyncio.CancelledError:
                if not self._stopped:
                    raise
                # Stopped mid-pass: the next start's pass takes it from there; not an error.
                log.info("the %s pass stopped with the bot", name)
                return
            except Exception as e:
                log_failure(log, f"{name} failed", e)
            self.metrics.passes.labels(name).inc()

    def busy(self) -> int:
        """Listener runs, reminders, repairs and background work in flight (tests wait
        for it to settle)."""
        return self.inflight.count()

    async def stop(self, *, grace: float = 10.0) -> None:
        """Stop taking requests and envelopes, let work in flight finish (up to `grace` s),
        close."""
        if self._stopped:
            return
        self._stopped = True
        self.home.close()
        if self.scheduler.running:
            self.scheduler.pause()  # start nothing new
        if self._socket is not None:
            self._socket.stop_accepting()
        if self._runner is not None:
            await self._runner.shutdown()
        if self._outbox_task is not None:
            # Take no further effects; those under way finish (or are let go, to be sent
            # again with the same key) below.
            self._outbox_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._outbox_task
        await self.inflight.wait(grace)
        await self.outbox.stop(grace)
        if self.scheduler.running:
            # Cancels a job that started meanwhile; it unwinds (and gives its database
            # connection back) below, before the database is closed.
            self.scheduler.shutdown(wait=False)
            await asyncio.sleep(0)
            await self.inflight.wait(2.0)
        if self._socket is not None:
            with contextlib.suppress(Exception):
                await self._socket.close_async()
        if self._runner is not None:
            await self._runner.cleanup()
        if self._http is not None:
            await self._http.close()
        await self.store.close()
