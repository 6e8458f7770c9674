"""The real bot in a process of its own, with short leases, for tests that kill it.

`python -m tests.botprocess` starts the bot from the environment exactly as `python -m bot`
does (settings, logging, SIGTERM), except that the provisioning lease and the reminder sync
period come from BOT_LEASE_SECONDS and BOT_SYNC_SECONDS (default 1 and 0.5 seconds), so
what a killed process left half-done is picked up by the next one within seconds, and
that reminder intervals may be shorter than a minute.

`BotProcess` launches it from a test against a FakeSlack and a database, waits until it is
healthy, and can kill it (SIGKILL) or stop it (SIGTERM). Its output goes to a log file that
`output()` returns, for failure messages.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING

import aiohttp

from bot.base.settings import SettingsError, load_settings

if TYPE_CHECKING:
    from bot.fakeslack import FakeSlack, SlackSender

ROOT = Path(__file__).resolve().parent.parent
LEASE_ENV = "BOT_LEASE_SECONDS"
SYNC_ENV = "BOT_SYNC_SECONDS"
DEFAULT_LEASE_SECONDS = 1.0
DEFAULT_SYNC_SECONDS = 0.5


# --- the process ---------------------------------------------------------------------------


def seconds_from_env(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    value = float(raw)
    if value <= 0:
        raise ValueError(f"{name} must be a number of seconds greater than 0")
    return value


def main() -> int:
    from bot.__main__ import serve, setup_logging
    from bot.base import settings as bot_settings
    from tests.support import TEST_REMINDER_MINUTES

    bot_settings.REMINDER_MINUTES = TEST_REMINDER_MINUTES
    try:
        settings = load_settings(http=None)
    except SettingsError as e:
        for line in e.lines:
            print(f"incident-bot: {line}", file=sys.stderr)
        return 2
    setup_logging(settings, settings.log_level)
    try:
        lease = seconds_from_env(LEASE_ENV, DEFAULT_LEASE_SECONDS)
        sync = seconds_from_env(SYNC_ENV, DEFAULT_SYNC_SECONDS)
    except ValueError as e:
        print(f"incident-bot: {e}", file=sys.stderr)
        return 2
    try:
        return asyncio.run(serve(settings, lease_seconds=lease, reminder_sync_seconds=sync))
    except KeyboardInterrupt:
        return 130


# --- launching it from a test --------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class BotProcess:
    """One `python -m tests.botprocess` against a FakeSlack and a database.

    Use `async with BotProcess(...) as bot:` or `await bot.start()` / `await bot.close()`.
    """

    _launched = 0

    def __init__(
        self,
        fake: FakeSlack,
        database_url: str,
        *,
        bot_token: str,
        signing_secret: str,
        workdir: Path,
        env: Mapping[str, str] | None = None,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        sync_seconds: float = DEFAULT_SYNC_SECONDS,
    ):
        BotProcess._launched += 1
        self.name = f"bot-{BotProcess._launched}"
        self.fake = fake
        self.database_url = database_url
        self.workdir = workdir
        self.signing_secret = signing_secret
        self.extra_env = dict(env or {})
        self.lease_seconds = lease_seconds
        self.sync_seconds = sync_seconds
        self.bot_token = bot_token
        self.log_path = workdir / f"{self.name}.log"
        self.port: int | None = None
        self.proc: asyncio.subprocess.Process | None = None
        self._slack: SlackSender | None = None
        self._log: IO[bytes] | None = None

    # -- what tests use -----------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The request URL Slack posts to."""
        if self.port is None:
            raise RuntimeError(f"{self.name} is not started")
        return f"http://127.0.0.1:{self.port}/slack/events"

    @property
    def slack(self) -> SlackSender:
        """Sends this process what Slack sends, signed."""
        if self._slack is None:
            from bot.fakeslack import SlackSender

            self._slack = SlackSender(self.url, self.signing_secret, self.fake)
        return self._slack

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    def output(self) -> str:
        """Everything the process wrote to stdout and stderr so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def describe(self) -> str:
        code = self.proc.returncode if self.proc is not None else None
        return f"--- {self.name} (pid {self.pid}, exit {code}) ---\n{self.output()}"

    # -- life cycle ---------------------------------------------------------------------------

    def environment(self, port: int) -> dict[str, str]:
        env = {
            "PATH": os.environ.get("PATH", ""),
            "PYTHONPATH": str(ROOT),
            "PYTHONUNBUFFERED": "1",
            "SLACK_BOT_TOKEN": self.bot_token,
            "SLACK_SIGNING_SECRET": self.signing_secret,
            "SLACK_API_URL": self.fake.api_url,
            "DATABASE_URL": self.database_url,
            "PORT": str(port),
            LEASE_ENV: str(self.lease_seconds),
            SYNC_ENV: str(self.sync_seconds),
        }
        env.update(self.extra_env)
        return env

    async def start(self, timeout: float = 30.0) -> BotProcess:
        """Launch the process and wait until /healthz answers (a few tries for a free port)."""
        if self.running:
            raise RuntimeError(f"{self.name} is already running")
        self.workdir.mkdir(parents=True, exist_ok=True)
        for _ in range(3):
            port = free_port()
            await self._spawn(port)
            if await self._healthy(port, timeout):
                self.port = port
                return self
            if "cannot start" not in self.output():
                break  # not a port taken in between: no point in another try
        await self.close()
        raise RuntimeError(f"{self.name} did not become healthy\n{self.describe()}")

    async def _spawn(self, port: int) -> None:
        if self._log is not None:
            self._log.close()
        # Appending keeps what an earlier try said; a file never blocks a chatty process.
        self._log = self.log_path.open("ab")
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.botprocess",
            cwd=self.workdir,
            env=self.environment(port),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=self._log,
            stderr=asyncio.subprocess.STDOUT,
        )

    async def _healthy(self, port: int, timeout: float) -> bool:
        assert self.proc is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http:
            while loop.time() < deadline:
                if self.proc.returncode is not None:
                    return False
                try:
                    async with http.get(f"http://127.0.0.1:{port}/healthz") as r:
                        if r.status == 200:
                            return True
                except (aiohttp.ClientError, TimeoutError):
                    pass
                await asyncio.sleep(0.05)
        return False

    async def kill(self) -> None:
        """SIGKILL: no shutdown, no cleanup, whatever was in flight is cut off."""
        if self.proc is None or self.proc.returncode is not None:
            return
        self.proc.kill()
        await self.proc.wait()

    async def terminate(self, timeout: float = 15.0) -> int:
        """SIGTERM, as a deploy stops it; returns the exit code (SIGKILL after `timeout`)."""
        assert self.proc is not None, f"{self.name} was never started"
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), timeout)
            except TimeoutError:
                await self.kill()
        assert self.proc.returncode is not None
        return self.proc.returncode

    async def close(self) -> None:
        """Make sure the process is gone and release what the helper holds."""
        await self.kill()
        if self._slack is not None:
            await self._slack.close()
            self._slack = None
        if self._log is not None:
            self._log.close()
            self._log = None

    async def __aenter__(self) -> BotProcess:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


if __name__ == "__main__":
    sys.exit(main())
