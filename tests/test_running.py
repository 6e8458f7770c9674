"""The bot as a person runs it: `python -m bot`, settings from the environment, signals."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from bot.fakeslack import FakeSlack, SlackSender
from tests.support import ALICE, BOT_TOKEN, GENERAL, ROOT, SIGNING_SECRET, StartBot, until


def run_bot(
    env: dict[str, str], cwd: Path, timeout: float = 20
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot"],
        env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT), **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.mark.parametrize(
    ("env", "named", "secret"),
    [
        ({}, "SLACK_BOT_TOKEN", None),
        ({"SLACK_BOT_TOKEN": "hunter2-not-a-token"}, "SLACK_BOT_TOKEN", "hunter2-not-a-token"),
        ({"SLACK_BOT_TOKEN": BOT_TOKEN}, "SLACK_SIGNING_SECRET", None),
        (
            {"SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_SIGNING_SECRET": "s", "PORT": "eighty"},
            "PORT",
            None,
        ),
        (
            {"SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_APP_TOKEN": "xoxb-wrong-kind-secret"},
            "SLACK_APP_TOKEN",
            "xoxb-wrong-kind-secret",
        ),
        (
            {
                "SLACK_BOT_TOKEN": BOT_TOKEN,
                "SLACK_SIGNING_SECRET": "s",
                "DATABASE_URL": "mysql://x",
            },
            "DATABASE_URL",
            None,
        ),
        (
            {
                "SLACK_BOT_TOKEN": BOT_TOKEN,
                "SLACK_SIGNING_SECRET": "s",
                "REMINDER_INTERVAL_MINUTES": "-5",
            },
            "REMINDER_INTERVAL_MINUTES",
            None,
        ),
        (
            {
                "SLACK_BOT_TOKEN": BOT_TOKEN,
                "SLACK_SIGNING_SECRET": "s",
                "ANNOUNCEMENTS_CHANNEL": "#general",
            },
            "ANNOUNCEMENTS_CHANNEL",
            None,
        ),
        (
            {"SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_SIGNING_SECRET": "s", "SEVERITIES": "[{oops"},
            "SEVERITIES",
            None,
        ),
    ],
)
def test_bad_settings_stop_start_up_with_one_line(
    env: dict[str, str], named: str, secret: str | None, tmp_path: Path
) -> None:
    result = run_bot(env, tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert named in lines[0]
    assert "Traceback" not in result.stderr
    if secret:
        assert secret not in result.stderr + result.stdout
    assert BOT_TOKEN not in result.stderr + result.stdout


async def test_a_token_slack_refuses_stops_start_up_with_one_line(tmp_path: Path) -> None:
    async with FakeSlack(bot_token="xoxb-the-right-one") as fake:
        env = {
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_API_URL": fake.api_url,
            "PORT": str(free_port()),
        }
        result = await asyncio.to_thread(run_bot, env, tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "incident-bot: Slack refused SLACK_BOT_TOKEN (invalid_auth)"
    )
    assert BOT_TOKEN not in result.stderr and "Traceback" not in result.stderr


def test_settings_come_from_dotenv(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(f"SLACK_BOT_TOKEN={BOT_TOKEN}\nPORT=not-a-port\n")
    result = run_bot({"SLACK_SIGNING_SECRET": "s"}, tmp_path)
    assert result.returncode == 2
    assert "PORT" in result.stderr and "SLACK_BOT_TOKEN" not in result.stderr


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def launch_healthy(
    fake: FakeSlack, tmp_path: Path, port: int, **extra: str
) -> asyncio.subprocess.Process:
    """`python -m bot` with only environment settings, as the README runs it, once its
    /healthz answers."""
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(ROOT),
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": fake.api_url,
        "PORT": str(port),
        **extra,
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with aiohttp.ClientSession() as http:

        async def healthy() -> bool:
            try:
                async with http.get(f"http://127.0.0.1:{port}/healthz") as r:
                    return r.status == 200
            except aiohttp.ClientError:
                return False

        try:
            await until(healthy, timeout=20, message="bot healthy")
        except BaseException:
            proc.kill()
            await proc.communicate()
            raise
    return proc


async def test_the_real_process_serves_declares_and_stops_cleanly(tmp_path: Path) -> None:
    """`python -m bot` with only environment settings, as the README runs it."""
    async with FakeSlack(bot_token=BOT_TOKEN) as fake:
        fake.add_user(ALICE, "alice")
        port = free_port()
        proc = await launch_healthy(fake, tmp_path, port, LOG_LEVEL="DEBUG")
        try:
            # The default database is a SQLite file in the working directory.
            assert (tmp_path / "incident-bot.db").exists()
            async with SlackSender(
                f"http://127.0.0.1:{port}/slack/events", SIGNING_SECRET, fake
            ) as slack:
                reply = await slack.command("declare sev1 Real process", user=ALICE)
                assert reply.status == 200
                channel = await fake.wait_for(lambda: fake.channel_by_name("inc-1-real-process"))
                await fake.wait_for(lambda: fake.pins(channel.id), message="card pinned")
                # Unsigned requests are refused.
                bad = await slack.raw(
                    b"command=/incident&text=help", {"X-Slack-Signature": "v0=00"}
                )
                assert bad.status == 401
        finally:
            proc.send_signal(signal.SIGTERM)
            _, err = await asyncio.wait_for(proc.communicate(), 15)
        assert proc.returncode == 0, err.decode()
        log = err.decode()
        assert "serving Slack requests" in log
        assert BOT_TOKEN not in log and SIGNING_SECRET not in log


async def test_a_start_says_in_a_few_lines_what_the_bot_is_doing(tmp_path: Path) -> None:
    """At INFO: one line per migration applied, then where it serves and on which database;
    no library set-up chatter."""
    async with FakeSlack(bot_token=BOT_TOKEN) as fake:
        port = free_port()
        proc = await launch_healthy(fake, tmp_path, port)
        assert proc.stderr is not None
        # /healthz answers before start-up ends: read until the line that ends it.
        lines: list[str] = []
        while not any("serving Slack requests" in line for line in lines):
            line = await asyncio.wait_for(proc.stderr.readline(), 15)
            assert line, "\n".join(lines)
            lines.append(line.decode().rstrip("\n"))
        proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(proc.communicate(), 15)
    assert proc.returncode == 0, err.decode()
    serving = next(i for i, line in enumerate(lines) if "serving Slack requests" in line)
    assert f"port {port}" in lines[serving]
    assert "database sqlite:///incident-bot.db" in lines[serving]
    migrations = sorted(
        (ROOT / "bot" / "outbound" / "store" / "migrations" / "versions").glob("0*.py")
    )
    assert len(migrations) >= 8
    before = lines[:serving]
    assert len(before) == len(migrations), "\n".join(before)
    assert all("Running upgrade" in line for line in before), "\n".join(before)


async def test_starting_the_bot_in_process_leaves_the_collector_as_it_was(
    start_bot: StartBot,
) -> None:
    """Tuning the garbage collector is the bot's own process's business (`python -m bot`
    does it once started): a bot started in a test process changes neither the frozen
    objects nor the thresholds."""
    frozen, thresholds = gc.get_freeze_count(), gc.get_threshold()
    bot = await start_bot()
    await bot.slack.command("help", user=ALICE, channel=GENERAL)
    await bot.app.stop()
    assert gc.get_threshold() == thresholds
    assert gc.get_freeze_count() == frozen


async def test_a_stop_during_a_repair_pass_is_not_logged_as_an_error(
    start_bot: StartBot, caplog: pytest.LogCaptureFixture
) -> None:
    """A pass still waiting on Slack when the bot stops ends there (the next start's pass
    takes over); that is said at INFO, not as an error with a traceback."""
    bot = await start_bot()
    await bot.slack.command("declare sev3 Slow pins", user=ALICE, channel=GENERAL)
    await bot.wait_provisioned(1)
    await bot.settled()
    bot.fake.set_delay("pins.list", 3)
    passing = asyncio.ensure_future(bot.app.repair_pass())
    await until(lambda: bot.fake.holding("pins.list"), message="the pass waiting for pins.list")
    with caplog.at_level("INFO"):
        await bot.app.stop(grace=0.1)
    await passing
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")]
    assert any("the repair pass stopped with the bot" in r.getMessage() for r in caplog.records)
