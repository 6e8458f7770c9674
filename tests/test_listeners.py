"""How the bot runs Bolt's lazy listeners (bot/inbound/listeners/lazy.py), on a bare Bolt app:
work follows only an accepted ack, counted in flight, with the Web API client's session
shared, and a failure after the ack is logged."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest
from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncBoltContext
from slack_bolt.authorization import AuthorizeResult
from slack_bolt.request.async_request import AsyncBoltRequest

from bot.base.work import InFlight
from bot.inbound.listeners.lazy import LazyWork, accept, acknowledge

FORM: dict[str, str | Sequence[str]] = {"content-type": "application/x-www-form-urlencoded"}


async def _authorize(enterprise_id: str | None, team_id: str | None) -> AuthorizeResult:
    return AuthorizeResult(enterprise_id=None, team_id="T1", bot_token="xoxb-1", bot_user_id="UB")


@pytest.fixture
async def bolt() -> AsyncIterator[tuple[AsyncApp, InFlight]]:
    app = AsyncApp(
        authorize=_authorize,
        signing_secret="unused",
        request_verification_enabled=False,
        process_before_response=True,
    )
    inflight = InFlight()
    LazyWork.install(app, inflight)
    # As the bot runs: one HTTP session, shared by every Web API client (BotApp.start).
    async with aiohttp.ClientSession() as session:
        app.client.session = session
        yield app, inflight


def command(text: str) -> AsyncBoltRequest:
    body = {"command": "/x", "text": text, "user_id": "U1", "team_id": "T1"}
    return AsyncBoltRequest(body=urlencode({**body, "response_url": "https://x"}), headers=FORM)


async def test_work_follows_an_accepted_ack_counted_in_flight(
    bolt: tuple[AsyncApp, InFlight],
) -> None:
    app, inflight = bolt
    release, seen = asyncio.Event(), []

    async def work(body: dict[str, Any]) -> None:
        await release.wait()
        seen.append(body["text"])

    app.command("/x")(ack=acknowledge, lazy=[work])
    response = await app.async_dispatch(command("go"))
    assert response.status == 200
    assert inflight.count() == 1  # counted before Slack has its answer
    release.set()
    await inflight.wait(1.0)
    assert seen == ["go"] and inflight.count() == 0


async def test_a_refused_or_failed_ack_has_no_work(bolt: tuple[AsyncApp, InFlight]) -> None:
    app, inflight = bolt
    seen: list[str] = []

    async def check(ack: AsyncAck, body: dict[str, Any], context: AsyncBoltContext) -> None:
        if body["text"] == "fail":
            raise RuntimeError("before the ack")
        if body["text"] == "bad":
            await ack(text=":warning: no")
            return
        await accept(ack, context, text="on it")

    async def work(body: dict[str, Any]) -> None:
        seen.append(body["text"])

    app.command("/x")(ack=check, lazy=[work])
    refused = await app.async_dispatch(command("bad"))
    assert (refused.status, refused.body) == (200, ":warning: no")
    failed = await app.async_dispatch(command("fail"))
    assert failed.status == 500
    accepted = await app.async_dispatch(command("good"))
    assert (accepted.status, accepted.body) == (200, "on it")
    await inflight.wait(1.0)
    assert seen == ["good"]


async def test_a_failure_after_the_ack_is_logged(
    bolt: tuple[AsyncApp, InFlight], caplog: pytest.LogCaptureFixture
) -> None:
    app, inflight = bolt

    async def work(event: dict[str, Any]) -> None:
        raise RuntimeError("after the ack")

    app.event("pin_added")(ack=acknowledge, lazy=[work])
    event = {"type": "event_callback", "team_id": "T1", "event": {"type": "pin_added"}}
    request = AsyncBoltRequest(body=json.dumps(event), headers={"content-type": "application/json"})
    with caplog.at_level(logging.INFO):
        response = await app.async_dispatch(request)
        await inflight.wait(1.0)
    assert response.status == 200
    [logged] = [r for r in caplog.records if r.name == "bot.inbound.listeners.lazy"]
    assert logged.getMessage() == "could not handle a pin_added event"
    assert logged.exc_info is not None
