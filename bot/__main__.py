"""`python -m bot` / `incident-bot`: run the bot, try it in a sandbox, print an incident's
postmortem or a report."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import re
import signal
import sys
from collections.abc import Sequence
from typing import Any

from bot.base.settings import Settings, SettingsError, load_settings

log = logging.getLogger("bot")

TOKEN_SHAPE = re.compile(r"\bx(?:ox[abposre]|app)-[A-Za-z0-9-]+")


class RedactingFormatter(logging.Formatter):
    """Secrets never reach a log line, whatever a library decided to print."""

    def __init__(self, fmt: str, secrets: Sequence[str]):
        super().__init__(fmt)
        self.secrets = [s for s in secrets if len(s) >= 6]

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        for secret in self.secrets:
            text = text.replace(secret, "[redacted]")
        return TOKEN_SHAPE.sub("[redacted]", text)


def setup_logging(settings: Settings | None, level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        RedactingFormatter(
            "%(asctime)s %(levelname)s %(name)s: %(message)s",
            settings.secrets() if settings else [],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


async def serve(settings: Settings, **options: Any) -> int:
    """Run until SIGTERM or Ctrl-C, which also end a start-up still connecting; `options`
    go to BotApp (tests shorten its periods)."""
    from bot.app import BotApp, StartupError
    from bot.base.work import tune_collector

    app = BotApp(settings, **options)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    starting = asyncio.ensure_future(app.start())
    stopping = asyncio.ensure_future(stop.wait())
    await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
    if not starting.done():
        log.info("stopping before start-up finished")
        starting.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await starting
        await app.stop()  # whatever was acknowledged meanwhile still finishes
        return 0
    try:
        starting.result()
    except (StartupError, OSError) as e:
        stopping.cancel()
        await app.stop(grace=0)
        # Last, so the reason is the line a person sees at the end of the output.
        reason = str(e) if isinstance(e, StartupError) else f"cannot start: {e.strerror or e}"
        print(f"incident-bot: {reason}", file=sys.stderr)
        return 2
    tune_collector()
    await stopping
    log.info("stopping: finishing work in flight")
    await app.stop()
    return 0


async def print_postmortem(ref: str) -> int:
    """Print the latest stored postmortem draft of an incident to stdout."""
    from pydantic import ValidationError

    from bot.base.settings import DatabaseSettings, describe
    from bot.outbound.store import Store

    match = re.fullmatch(r"(?i)(?:inc-?)?(\d+)", ref.strip())
    if match is None:
        print(f"incident-bot: {ref!r} is not an incident; use e.g. INC-42", file=sys.stderr)
        return 2
    try:
        url = DatabaseSettings().database_url
    except ValidationError as e:
        for line in describe(e):
            print(f"incident-bot: {line}", file=sys.stderr)
        return 2
    store = Store(url)
    try:
        await store.migrate()
        incident = await store.incident_by_number(None, int(match[1]))
        if incident is None:
            print(f"incident-bot: there is no INC-{match[1]}", file=sys.stderr)
            return 1
        draft = await store.latest_postmortem(incident.pk)
        if draft is None:
            print(
                f"incident-bot: {incident.ref} has no postmortem yet; "
                "run /incident postmortem in its channel",
                file=sys.stderr,
            )
            return 1
        sys.stdout.write(draft.markdown)
        return 0
    finally:
        await store.close()


def report_settings() -> Settings | None:
    """The settings a report reads (severities, reminder intervals, the database); a
    report needs no Slack token, so a missing one is not a problem here."""
    try:
        try:
            return load_settings(http=False)
        except SettingsError as e:
            if not all("SLACK_BOT_TOKEN" in line for line in e.lines):
                raise
            placeholder = "xoxb-not-needed-for-a-report"  # never sent anywhere
            return load_settings(http=False, slack_bot_token=placeholder)
    except SettingsError as e:
        for line in e.lines:
            print(f"incident-bot: {line}", file=sys.stderr)
        return None


async def print_report(since: str, fmt: str) -> int:
    """Print incident figures since `since` (e.g. 30d) as Markdown, CSV or JSON."""
    from bot.base.clock import utcnow
    from bot.model import report
    from bot.outbound.store import Store
    from bot.views.report import render

    now = utcnow()
    try:
        start = report.parse_since(since, now)
    except ValueError as e:
        print(f"incident-bot: --since: {e}", file=sys.stderr)
        return 2
    settings = report_settings()
    if settings is None:
        return 2
    store = Store(settings.database_url, timeout=settings.database_timeout_seconds)
    try:
        await store.migrate()
        history = await store.history(start)
    finally:
        await store.close()
    sys.stdout.write(render(report.build(history, settings, since=start, now=now), fmt))
    return 0


async def test_webhook(url: str) -> int:
    """Send a signed sample event (a drill's `declared`) to a receiver in OUTGOING_WEBHOOKS
    and print what it answered."""
    import time
    import uuid

    import aiohttp

    from bot.base.clock import utcnow
    from bot.model.tables import Incident
    from bot.outbound.outbox import Passing, Refused
    from bot.outbound.webhooks import encode, post
    from bot.views import webhook

    settings = report_settings()
    if settings is None:
        return 2
    hook = next((h for h in settings.outgoing_webhooks if h.url == url), None)
    if hook is None:
        known = ", ".join(h.url for h in settings.outgoing_webhooks) or "none"
        print(f"incident-bot: {url} is not in OUTGOING_WEBHOOKS (configured: {known})")
        return 2
    now = utcnow()
    sample = Incident(
        team_id="T0SAMPLE",
        number=1,
        title="Webhook test from incident-bot",
        severity=settings.default_severity or "SEV3",
        drill=True,
        declared_by="U0SAMPLE",
        declared_at=now,
        declare_key="webhook-test",
    )
    delivery = str(uuid.uuid4())
    body = webhook.event(
        sample,
        "declared",
        {"title": sample.title, "severity": sample.severity, "description": ""},
        delivery=delivery,
        actor="U0SAMPLE",
        at=now,
        commander="U0SAMPLE",
    )
    try:
        async with aiohttp.ClientSession() as http, asyncio.timeout(10):
            answer = await post(
                http,
                url,
                encode(body),
                secret=hook.secret.get_secret_value(),
                delivery=delivery,
                event="declared",
                timestamp=int(time.time()),
            )
    except (Passing, Refused) as e:
        print(f"incident-bot: {url} answered {e}")
        return 1
    except TimeoutError:
        print(f"incident-bot: {url} did not answer within 10 s")
        return 1
    except aiohttp.ClientError as e:
        print(f"incident-bot: could not reach {url} ({type(e).__name__}: {e})")
        return 1
    print(f"incident-bot: {url} answered {answer['status']} to delivery {delivery}")
    return 0


def sandbox(port: int, reminder_minutes: float, database: str | None) -> int:
    from bot import sandbox

    if not 1 <= port <= 65535 or not 0 < reminder_minutes <= 1440:
        print("incident-bot sandbox: --port 1-65535, --reminder-minutes above 0, at most 1440")
        return 2
    # The sandbox's bot logs like the real one, labelled so nobody mistakes it for one.
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s [local sandbox] %(levelname)s %(name)s: %(message)s"
    )
    try:
        return asyncio.run(
            sandbox.run(port, reminder_minutes, database or sandbox.DEFAULT_DATABASE)
        )
    except KeyboardInterrupt:
        return 130


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="incident-bot", description="Slack incident-management bot."
    )
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("run", help="run the bot (the default)")
    pm = sub.add_parser("postmortem", help="print an incident's latest postmortem draft")
    pm.add_argument("incident", help="the incident, e.g. INC-42")
    rp = sub.add_parser(
        "report", help="incident figures: response times, update cadence, follow-ups"
    )
    rp.add_argument("--since", default="30d", help="period: 30d, 12h, 2w or a date (default 30d)")
    rp.add_argument("--format", choices=("markdown", "csv", "json"), default="markdown")
    sb = sub.add_parser(
        "sandbox", help="try the bot in the browser against a local stand-in for Slack"
    )
    sb.add_argument("--port", type=int, default=3000, help="the page's port (default 3000)")
    sb.add_argument(
        "--reminder-minutes",
        type=float,
        default=1.0,
        help="minutes without an update before a reminder (default 1, to see one soon)",
    )
    sb.add_argument("--database", default=None, help="SQLAlchemy URL (default: a SQLite file here)")
    wh = sub.add_parser("webhooks", help="outgoing webhooks")
    wh_sub = wh.add_subparsers(dest="webhooks_command", required=True)
    wt = wh_sub.add_parser("test", help="send a signed sample event and print the answer")
    wt.add_argument("url", help="a receiver's URL, as in OUTGOING_WEBHOOKS")
    args = parser.parse_args(argv)
    if args.command == "postmortem":
        return asyncio.run(print_postmortem(args.incident))
    if args.command == "report":
        return asyncio.run(print_report(args.since, args.format))
    if args.command == "webhooks":
        return asyncio.run(test_webhook(args.url))
    if args.command == "sandbox":
        return sandbox(args.port, args.reminder_minutes, args.database)

    try:
        settings = load_settings(http=None)
    except SettingsError as e:
        for line in e.lines:
            print(f"incident-bot: {line}", file=sys.stderr)
        return 2
    setup_logging(settings, settings.log_level)
    try:
        return asyncio.run(serve(settings))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
