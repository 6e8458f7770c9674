"""`python -m bot` / `incident-bot`: run the bot, or print an incident's postmortem."""

from __future__ import annotations

import argparse
import asyncio
import logging
import re
import signal
import sys
from collections.abc import Sequence

from bot.settings import Settings, SettingsError, load_settings

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


async def serve(settings: Settings) -> int:
    from slack_sdk.errors import SlackApiError

    from bot.app import BotApp

    app = BotApp(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await app.start()
    except SlackApiError as e:
        error = e.response.get("error", "unknown_error")
        print(f"incident-bot: Slack refused SLACK_BOT_TOKEN ({error})", file=sys.stderr)
        await app.stop(grace=0)
        return 2
    except OSError as e:
        print(f"incident-bot: cannot start: {e.strerror or e}", file=sys.stderr)
        await app.stop(grace=0)
        return 2
    await stop.wait()
    log.info("stopping: finishing work in flight")
    await app.stop()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="incident-bot", description="Slack incident-management bot."
    )
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("run", help="run the bot (the default)")
    args = parser.parse_args(argv)

    try:
        settings = load_settings(http=None)
    except SettingsError as e:
        for line in e.lines:
            print(f"incident-bot: {line}", file=sys.stderr)
        return 2
    setup_logging(settings, settings.log_level)
    if args.command in (None, "run"):
        try:
            return asyncio.run(serve(settings))
        except KeyboardInterrupt:
            return 130
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
