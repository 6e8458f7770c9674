"""`incident-bot sandbox`: the real bot against a local stand-in for Slack, with a web page
to use it, for trying the bot without a Slack workspace.

One process: the Slack stand-in (the same one the tests use, checking each call against
Slack's method reference) serves the Web API and the page on 127.0.0.1; the bot, unchanged,
runs over HTTP with requests signed as Slack signs them, and stores incidents in SQLite in
the working directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from dataclasses import dataclass, field
from typing import Any

from bot.fakeslack import FakeSlack, SlackSender
from bot.sandbox.page import Page

log = logging.getLogger(__name__)

TOKEN = "xoxb-0-0-localsandbox"  # noqa: S105 - a token only the local stand-in knows
SECRET = "local-sandbox-signing-secret"  # noqa: S105 - signs requests to the local bot only
GENERAL = "C0GENERAL"
ANNOUNCEMENTS = "C0ANNOUNCE"
PEOPLE = {
    "U0ALICE": ("alice", "Alice Archer"),
    "U0BOB": ("bob", "Bob Baker"),
    "U0CAROL": ("carol", "Carol Chen"),
    "U0DAVE": ("dave", "Dave Diaz"),
}
DEFAULT_DATABASE = "sqlite:///incident-bot-sandbox.db"


def workspace() -> FakeSlack:
    """A small workspace: a few people, #general and an announcements channel."""
    fake = FakeSlack(bot_token=TOKEN, team_name="Sandbox", team_domain="sandbox")
    for uid, (name, real) in PEOPLE.items():
        fake.add_user(uid, name, real_name=real)
    everyone = [*PEOPLE, fake.bot_user_id]
    fake.add_channel("general", id=GENERAL, members=everyone, topic="Company-wide")
    fake.add_channel(
        "incident-announcements", id=ANNOUNCEMENTS, members=everyone, topic="Incidents, as declared"
    )
    fake.channels[GENERAL].is_general = True
    return fake


@dataclass
class Sandbox:
    """The stand-in, the page and the bot, started and stopped together."""

    port: int = 3000
    reminder_minutes: float = 1.0
    database_url: str = DEFAULT_DATABASE
    options: dict[str, Any] = field(default_factory=dict)

    async def start(self) -> str:
        from bot.app import BotApp
        from bot.base.settings import Settings

        self.fake = workspace()
        self.page = Page(self.fake, list(PEOPLE))
        await self.fake.start(port=self.port, extend=self.page.routes)
        # Validated from these values alone: nothing from the environment or a .env file.
        settings = Settings.model_validate(
            {
                "slack_bot_token": TOKEN,
                "slack_signing_secret": SECRET,
                "slack_api_url": self.fake.api_url,
                "database_url": self.database_url,
                "announcements_channel": ANNOUNCEMENTS,
                "reminder_interval_minutes": self.reminder_minutes,
                "port": 3001,  # unused: the bot listens on a free port
            }
        )
        self.app = BotApp(settings, **self.options)
        await self.app.start(host="127.0.0.1", port=0)
        self.sender = SlackSender(
            f"http://127.0.0.1:{self.app.port}/slack/events", SECRET, self.fake
        )
        self.page.sender = self.sender
        return self.fake.base_url

    async def stop(self) -> None:
        await self.sender.close()
        await self.app.stop()
        await self.fake.stop()


async def run(port: int, reminder_minutes: float, database_url: str) -> int:
    """Run the sandbox until SIGTERM or Ctrl-C."""
    sandbox = Sandbox(port=port, reminder_minutes=reminder_minutes, database_url=database_url)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        url = await sandbox.start()
    except OSError as e:
        print(f"incident-bot sandbox: cannot listen on 127.0.0.1:{port} ({e.strerror or e})")
        with contextlib.suppress(Exception):
            await sandbox.fake.stop()
        return 2
    log.info(
        "LOCAL SANDBOX: a stand-in for Slack, not a real workspace; nothing leaves this machine"
    )
    print(f"Local sandbox (no Slack workspace involved): open {url}", flush=True)
    await stop.wait()
    log.info("stopping the local sandbox")
    await sandbox.stop()
    return 0
