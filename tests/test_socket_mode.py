"""Socket Mode, the README's default: reconnects, a health port, start-up that ends, and a
stop that drains. The flows themselves (declaring, the card, forms, events) run over both
transports in their own test modules (`TRANSPORTS`)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.fakeslack import FakeSlack, SocketModeSender
from bot.outbound.store import Store
from tests.botprocess import free_port
from tests.support import (
    ALICE,
    BOT_TOKEN,
    GENERAL,
    ROOT,
    Bot,
    StartBot,
    tasks_running,
    until,
)

over_socket_mode = pytest.mark.parametrize("transport", ["socket"])


@over_socket_mode
async def test_refresh_requested_reconnects_and_work_goes_on(bot: Bot) -> None:
    hub = bot.fake.socket_mode
    old = hub.open_connections[-1]
    await hub.disconnect("refresh_requested", connection=old)
    new = await hub.wait_connected(after=old)
    await until(lambda: not old.open, message="the old socket closed")
    assert new.number > old.number

    reply = await bot.slack.command("declare sev2 Payments failing", user=ALICE, channel=GENERAL)
    assert reply.status == 200 and reply.acked_in_time
    await bot.wait_provisioned(1)


@over_socket_mode
async def test_link_disabled_and_warning_reconnect(bot: Bot) -> None:
    hub = bot.fake.socket_mode
    for reason in ("warning", "link_disabled"):
        old = hub.open_connections[-1]
        await hub.disconnect(reason, connection=old)
        await hub.wait_connected(after=old)
    reply = await bot.slack.command("help", user=ALICE, channel=GENERAL)
    assert reply.status == 200 and "/incident declare" in reply.text


@over_socket_mode
async def test_healthz_says_whether_the_socket_is_connected(bot: Bot) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{bot.app.port}/healthz") as r,
    ):
        assert r.status == 200
        assert await r.json() == {"ok": True, "database": "ok", "socket": "connected"}
        # The health port does not take Slack's requests in Socket Mode.
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"http://127.0.0.1:{bot.app.port}/slack/events", data=b"{}") as r,
    ):
        assert r.status in (404, 405)


@over_socket_mode
async def test_stopping_takes_no_new_envelope_and_never_reconnects(
    start_bot: StartBot,
) -> None:
    bot = await start_bot()
    hub = bot.fake.socket_mode
    opened = len(hub.connections)
    bot.fake.set_delay("conversations.create", 0.8)
    first = await bot.slack.command("declare sev1 Checkout down", user=ALICE, channel=GENERAL)
    assert first.status == 200

    stopping = asyncio.ensure_future(bot.app.stop(grace=10))
    await asyncio.sleep(0.05)
    late = await SocketModeSender(bot.fake, ack_timeout=1.0).command(
        "declare sev3 Arrived while stopping", user=ALICE, channel=GENERAL
    )
    await stopping

    incidents = await bot.incidents()
    first_incident = next(i for i in incidents if i.title == "Checkout down")
    assert first_incident.provisioned  # acknowledged, so finished before the stop
    if late.status == 200:  # acknowledged: then it was done too
        assert any(i.title == "Arrived while stopping" and i.provisioned for i in incidents)
    else:
        assert all(i.title != "Arrived while stopping" for i in incidents)
    # Nothing of the Socket Mode client is left running (its session monitor is what
    # reconnects, once a ping interval): no reconnect can come, however long one waits.
    await until(lambda: not tasks_running("slack_sdk.socket_mode"), message="the client ended")
    assert len(hub.connections) == opened
    assert hub.open_connections == []


# --- the real process -------------------------------------------------------------------------


def environment(fake: FakeSlack, tmp_path: Path) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(ROOT),
        "PYTHONUNBUFFERED": "1",
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_APP_TOKEN": fake.app_token,
        "SLACK_API_URL": fake.api_url,
        "DATABASE_URL": f"sqlite:///{tmp_path}/bot.db",
        "PORT": str(free_port()),
    }


async def launch(env: dict[str, str], cwd: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        env=env,
        cwd=cwd,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def collect(stream: asyncio.StreamReader | None, into: list[str]) -> None:
    assert stream is not None
    while line := await stream.readline():
        into.append(line.decode(errors="replace"))


@pytest.mark.parametrize(
    "error", ["invalid_auth", "access_denied", "team_access_not_granted", "ekm_access_denied"]
)
async def test_a_refused_app_token_ends_start_up_with_one_line(
    fake: FakeSlack, tmp_path: Path, error: str
) -> None:
    """Any refusal that does not pass with time ends start-up; none is retried."""
    if error == "invalid_auth":
        fake.revoke_app_token()
    else:
        fake.socket_mode_refuse(error)
    proc = await launch(environment(fake, tmp_path), tmp_path)
    out, err = await asyncio.wait_for(proc.communicate(), 10)
    assert proc.returncode == 2
    lines = err.decode().strip().splitlines()
    assert lines[-1] == f"incident-bot: Slack refused SLACK_APP_TOKEN ({error})"
    assert len(fake.calls_to("apps.connections.open")) == 1
    assert fake.app_token not in err.decode() + out.decode()


@pytest.mark.parametrize("refusal", ["service_unavailable", "ratelimited"])
async def test_a_refusal_that_passes_is_tried_again_until_slack_lets_in(
    fake: FakeSlack, tmp_path: Path, refusal: str
) -> None:
    if refusal == "ratelimited":
        fake.socket_mode_refuse(retry_after=1)
    else:
        fake.socket_mode_refuse(refusal)
    proc = await launch(environment(fake, tmp_path), tmp_path)
    err: list[str] = []
    reader = asyncio.ensure_future(collect(proc.stderr, err))
    try:
        await until(
            lambda: len(fake.calls_to("apps.connections.open")) >= 2,
            timeout=30,
            message="asked again after a refusal that passes",
        )
        fake.socket_mode_refuse(None)
        await until(
            lambda: any("connected to Slack with Socket Mode" in line for line in err),
            timeout=30,
            message="connected once Slack lets it in",
        )
    finally:
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), 10)
    assert code == 0, "".join(err)
    await reader


async def test_sigterm_while_connecting_to_an_unreachable_slack(
    fake: FakeSlack, tmp_path: Path
) -> None:
    fake.socket_mode_unreachable()
    proc = await launch(environment(fake, tmp_path), tmp_path)
    err: list[str] = []
    reader = asyncio.ensure_future(collect(proc.stderr, err))
    # Tried again with a log line per attempt, backing off.
    await until(
        lambda: sum("cannot connect to Slack with Socket Mode" in line for line in err) >= 2,
        timeout=30,
        message="two connection attempts logged",
    )
    proc.send_signal(signal.SIGTERM)
    code = await asyncio.wait_for(proc.wait(), 10)
    await reader
    assert code == 0, "".join(err)
    attempts = [line for line in err if "cannot connect" in line]
    assert "attempt 1, next in 1 s" in attempts[0] and "attempt 2, next in 2 s" in attempts[1]


async def test_the_real_process_drains_on_sigterm_and_starts_without_warnings(
    fake: FakeSlack, tmp_path: Path
) -> None:
    env = environment(fake, tmp_path)
    proc = await launch(env, tmp_path)
    err: list[str] = []
    reader = asyncio.ensure_future(collect(proc.stderr, err))
    hub = fake.socket_mode
    await hub.wait_connected(timeout=20)
    await until(lambda: any("connected to Slack with Socket Mode" in line for line in err))
    assert [line for line in err if " WARNING " in line or " ERROR " in line] == []

    fake.set_delay("conversations.create", 1.0)
    slack = SocketModeSender(fake, ack_timeout=2.0)
    first = await slack.command("declare sev1 Orders stuck", user=ALICE, channel=GENERAL)
    assert first.status == 200
    opened = len(hub.connections)
    proc.send_signal(signal.SIGTERM)
    await asyncio.sleep(0.1)
    late: Any = await slack.command("declare sev3 During the stop", user=ALICE, channel=GENERAL)
    code = await asyncio.wait_for(proc.wait(), 20)
    await reader
    assert code == 0, "".join(err)
    assert len(hub.connections) == opened  # no reconnect after SIGTERM

    store = Store(env["DATABASE_URL"])
    try:
        first_incident = await store.incident_by_number(None, 1)
        assert first_incident is not None, "".join(err)
        assert first_incident.title == "Orders stuck"
        assert first_incident.provisioned and first_incident.card_pinned
        second = await store.incident_by_number(None, 2)
        if late.status == 200:
            assert second is not None and second.provisioned
        else:
            assert second is None
    finally:
        await store.close()
