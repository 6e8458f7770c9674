"""The fake's Socket Mode behaves like Slack's, as slack_sdk's own clients see it.

Some tests pin down what slack_sdk does rather than what a bot would like it to do: it treats
every ``disconnect`` (``link_disabled`` included) as a request to reconnect, its ``connect()``
never gives up on a refused app token, and ``disconnect()`` alone does not stop it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.app.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.async_client import AsyncBaseSocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.web.async_client import AsyncWebClient

from bot.fakeslack import FakeSlack, SocketConnection, SocketModeSender
from tests.support import ALICE, BOB, GENERAL, tasks_running

# slack_sdk pings, checks its socket and retries a failed connect every ping_interval.
PING_INTERVAL = 0.1

MODAL = {
    "type": "modal",
    "callback_id": "declare",
    "title": {"type": "plain_text", "text": "Declare incident"},
    "submit": {"type": "plain_text", "text": "Declare"},
    "blocks": [
        {
            "type": "input",
            "block_id": "title",
            "label": {"type": "plain_text", "text": "Title"},
            "element": {"type": "plain_text_input", "action_id": "title"},
        }
    ],
}
CARD = [
    {
        "type": "actions",
        "elements": [
            {
                "type": "button",
                "action_id": "ack",
                "text": {"type": "plain_text", "text": "Ack"},
                "value": "inc-1",
            }
        ],
    }
]


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as fake:
        fake.add_user(ALICE, "alice", real_name="Alice Example")
        fake.add_user(BOB, "bob")
        fake.add_channel("general", id=GENERAL, members=[ALICE, BOB, fake.bot_user_id])
        yield fake


@pytest.fixture
def web_client(fake: FakeSlack) -> AsyncWebClient:
    return AsyncWebClient(base_url=fake.api_url, retry_handlers=[])


async def slack_error(call: Any) -> str:
    with pytest.raises(SlackApiError) as info:
        await call
    return str(info.value.response["error"])


@dataclass
class BoltOverSocket:
    """A minimal Bolt app connected to the fake through slack_sdk's aiohttp client."""

    app: AsyncApp
    handler: AsyncSocketModeHandler
    messages: list[dict[str, Any]] = field(default_factory=list)

    @property
    def client(self) -> SocketModeClient:
        client: SocketModeClient = self.handler.client
        return client


def bolt_app(fake: FakeSlack, app_token: str | None = None) -> BoltOverSocket:
    app = AsyncApp(
        client=AsyncWebClient(base_url=fake.api_url, token=fake.bot_token),
        request_verification_enabled=False,
    )
    handler = AsyncSocketModeHandler(app, app_token or fake.app_token, ping_interval=PING_INTERVAL)
    running = BoltOverSocket(app, handler)

    async def record(
        _client: AsyncBaseSocketModeClient, message: dict[str, Any], _raw: Any
    ) -> None:
        running.messages.append(message)

    handler.client.message_listeners.append(record)
    return running


@pytest.fixture
async def bolt(fake: FakeSlack) -> AsyncIterator[BoltOverSocket]:
    running = bolt_app(fake)
    await running.handler.connect_async()  # type: ignore[no-untyped-call]
    await fake.socket_mode.wait_connected()
    yield running
    await running.handler.close_async()  # type: ignore[no-untyped-call]


def opens(fake: FakeSlack) -> list[str | None]:
    """The error of each apps.connections.open call (None: it gave a URL)."""
    return [call.error for call in fake.calls_to("apps.connections.open")]


# -- apps.connections.open ------------------------------------------------------------------------


async def test_apps_connections_open_takes_only_the_app_token(
    fake: FakeSlack, web_client: AsyncWebClient
) -> None:
    opened = await web_client.apps_connections_open(app_token=fake.app_token)
    assert opened["url"].startswith(fake.base_url.replace("http://", "ws://") + "/link/?ticket=")
    assert opened["url"].endswith(f"&app_id={fake.app_id}")

    wrong = web_client.apps_connections_open
    assert await slack_error(wrong(app_token=fake.bot_token)) == "not_allowed_token_type"
    assert await slack_error(wrong(app_token="xoxp-1-user-token")) == "not_allowed_token_type"
    assert await slack_error(wrong(app_token="xapp-1-A0TEST-1-unknown")) == "invalid_auth"
    anonymous = web_client.api_call("apps.connections.open")
    assert await slack_error(anonymous) == "not_authed"
    # Slack reads this method's token from the Authorization header only.
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            fake.api_url + "apps.connections.open", data={"token": fake.app_token}
        ) as resp,
    ):
        assert (await resp.json())["error"] == "invalid_auth"
    # Other methods want the bot token, not the app's.
    assert await slack_error(web_client.auth_test(token=fake.app_token)) == (
        "not_allowed_token_type"
    )

    fake.revoke_app_token()
    assert await slack_error(wrong(app_token=fake.app_token)) == "invalid_auth"
    fake.app_token = "xapp-1-A0TEST-2-rotated"
    assert (await wrong(app_token=fake.app_token))["ok"]
    assert opens(fake) == [
        None,
        "not_allowed_token_type",
        "not_allowed_token_type",
        "invalid_auth",
        "not_authed",
        "invalid_auth",
        "invalid_auth",
        None,
    ]


async def test_refused_and_unreachable(fake: FakeSlack, web_client: AsyncWebClient) -> None:
    fake.socket_mode_refuse("service_unavailable")
    opening = web_client.apps_connections_open
    assert await slack_error(opening(app_token=fake.app_token)) == "service_unavailable"
    fake.socket_mode_refuse(retry_after=7)
    with pytest.raises(SlackApiError) as limited:
        await opening(app_token=fake.app_token)
    assert limited.value.response.status_code == 429
    assert limited.value.response.headers["Retry-After"] == "7"
    fake.socket_mode_refuse(None)
    url = (await opening(app_token=fake.app_token))["url"]

    fake.socket_mode_unreachable()
    with pytest.raises(aiohttp.ClientError):
        await opening(app_token=fake.app_token)
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientError):
            await session.ws_connect(url)
        fake.socket_mode_unreachable(False)
        async with session.ws_connect(url) as ws:
            assert (await ws.receive_json())["type"] == "hello"
    assert opens(fake)[-1] == "connection_dropped"


# -- the WebSocket, with a plain aiohttp client --------------------------------------------------


async def connect(
    fake: FakeSlack, session: aiohttp.ClientSession
) -> aiohttp.ClientWebSocketResponse:
    opened = await AsyncWebClient(base_url=fake.api_url).apps_connections_open(
        app_token=fake.app_token
    )
    return await session.ws_connect(opened["url"], autoping=False)


async def test_hello_tickets_pings_and_acks(fake: FakeSlack) -> None:
    hub = fake.socket_mode
    async with aiohttp.ClientSession() as session:
        first = await connect(fake, session)
        hello = await first.receive_json()
        assert hello == {
            "type": "hello",
            "num_connections": 1,
            "debug_info": hello["debug_info"],
            "connection_info": {"app_id": fake.app_id},
        }
        assert {"host", "started", "build_number", "approximate_connection_time"} <= set(
            hello["debug_info"]
        )
        second = await connect(fake, session)
        assert (await second.receive_json())["num_connections"] == 2
        # A ticket is good for one connection.
        used = hub.connections[0].ticket
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await session.ws_connect(f"{fake.base_url}/link/?ticket={used}")
        assert refused.value.status == 401
        assert hub.rejected_tickets == [used]

        await first.ping(b"sdk-ping-pong:1")
        pong = await first.receive()
        assert (pong.type, pong.data) == (aiohttp.WSMsgType.PONG, b"sdk-ping-pong:1")
        assert hub.connections[0].pings == 1

        # Envelopes go to the newest connection unless told otherwise.
        command = await hub.send("slash_commands", {"command": "/incident", "text": "help"})
        assert command.connection is hub.connections[1]
        envelope = await second.receive_json()
        assert envelope == command.envelope
        assert envelope["accepts_response_payload"] is True
        assert "retry_attempt" not in envelope
        await second.send_json({"envelope_id": envelope["envelope_id"], "payload": {"text": "ok"}})
        assert await command.wait(1.0)
        assert command.ack_payload == {"text": "ok"} and command.acked_in_time

        click = await hub.send(
            "interactive", {"type": "block_actions", "actions": []}, connection=hub.connections[0]
        )
        envelope = await first.receive_json()
        assert envelope["type"] == "interactive" and envelope["accepts_response_payload"] is False
        await first.send_json({"envelope_id": envelope["envelope_id"]})
        await first.send_json({"envelope_id": envelope["envelope_id"]})
        await first.send_json({"envelope_id": "not-one-of-ours"})
        await first.send_str("not json")
        await fake.wait_for(lambda: hub.stray_acks)
        assert click.acked and click.ack_payload is None and len(click.extra_acks) == 1
        assert click.ack_connection is hub.connections[0]
        assert hub.connections[0].received[-1] == "not json"

        event = await hub.send("events_api", {"type": "event_callback"}, retry_attempt=2)
        assert event.envelope["retry_attempt"] == 2 and event.envelope["retry_reason"] == ""
        assert event.envelope["accepts_response_payload"] is False
        submission = hub.envelope("interactive", {"type": "view_submission"})
        assert submission["accepts_response_payload"] is True
        assert [d.envelope_id for d in hub.unacked()] == [event.envelope_id]

        hub.policy = "round_robin"
        turns = [await hub.send("interactive", {"type": "shortcut"}) for _ in range(4)]
        assert [d.connection for d in turns] == [hub.connections[i] for i in (0, 1, 0, 1)]
        await first.close()
        await second.close()
    await fake.wait_for(lambda: not hub.open_connections)
    assert [c.closed_by for c in hub.connections] == ["client", "client"]
    orphan = await hub.send("events_api", {"type": "event_callback"})
    assert orphan.undeliverable and not await orphan.wait(0.01)


async def test_disconnects_close_the_socket_like_slack(fake: FakeSlack) -> None:
    hub = fake.socket_mode
    hub.disconnect_grace = 0.2
    async with aiohttp.ClientSession() as session:
        ws = await connect(fake, session)
        await ws.receive_json()
        told = await hub.disconnect("warning")
        assert told == hub.connections
        assert await ws.receive_json() == {
            "type": "disconnect",
            "reason": "warning",
            "debug_info": {"host": "applink-fake-1"},
        }
        assert not hub.accepting_connections and hub.connections[0].open
        assert (await hub.send("interactive", {"type": "shortcut"})).undeliverable
        closing = await ws.receive()  # after the grace, without the client doing anything
        assert closing.type == aiohttp.WSMsgType.CLOSE
        await ws.close()
        conn = hub.connections[0]
        assert conn.closed_by == "slack" and conn.close_code == 1000
        assert conn.closed_at is not None and conn.closed_at - conn.opened_at >= 0.2

        ws = await connect(fake, session)
        await ws.receive_json()
        await hub.disconnect("link_disabled")
        assert (await ws.receive_json())["reason"] == "link_disabled"
        assert (await ws.receive()).type == aiohttp.WSMsgType.CLOSE  # at once
        await ws.close()

        hub.max_connections = 1
        one = await connect(fake, session)
        await one.receive_json()
        two = await connect(fake, session)
        assert (await two.receive_json())["reason"] == "too_many_websockets"
        await two.close()
        hub.drop()
        assert (await one.receive()).type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR)
    assert [c.closed_by for c in hub.connections] == ["slack", "slack", "dropped", "slack"]


# -- slack_sdk and Bolt against the fake ----------------------------------------------------------


async def test_bolt_app_over_socket_mode(fake: FakeSlack, bolt: BoltOverSocket) -> None:
    app, seen = bolt.app, []
    hello = (await fake.wait_for(lambda: bolt.messages))[0]
    assert hello["type"] == "hello" and hello["connection_info"] == {"app_id": fake.app_id}

    @app.command("/incident")
    async def declare(ack: Any, command: dict[str, Any]) -> None:
        await ack(f"Got {command['text']}")

    @app.action("ack")
    async def clicked(ack: Any, body: dict[str, Any]) -> None:
        await ack()
        seen.append(body["actions"][0]["value"])

    @app.event("app_mention")
    async def mentioned(event: dict[str, Any]) -> None:
        seen.append(event["text"])

    @app.view("declare")
    async def submitted(ack: Any, view: dict[str, Any]) -> None:
        await ack(response_action="errors", errors={"title": "Too short"})

    web_client = AsyncWebClient(base_url=fake.api_url, token=fake.bot_token)
    card_ts = (await web_client.chat_postMessage(channel=GENERAL, text="Card", blocks=CARD))["ts"]
    opened = await web_client.views_open(trigger_id=fake.new_trigger_id(ALICE), view=MODAL)
    view = opened["view"]
    async with SocketModeSender(fake) as slack:
        said = await slack.command("declare DB down", user=ALICE, channel=GENERAL)
        pressed = await slack.block_action(
            user=BOB, channel=GENERAL, message_ts=card_ts, action_id="ack"
        )
        mention = await slack.event({"type": "app_mention", "user": ALICE, "text": "<@UBOT> hi"})
        refused = await slack.submit_view(view["id"], user=ALICE, inputs={"title": "x"})
        with pytest.raises(AssertionError, match="no url_verification"):
            await slack.url_verification()

    assert said.status == 200 and said.acked_in_time
    assert said.json == {"text": "Got declare DB down"} and json.loads(said.text) == said.json
    assert said.trigger_id and said.response_url_key
    assert (pressed.status, pressed.json, pressed.text) == (200, None, "")
    assert mention.status == 200 and mention.json is None
    assert refused.json == {"response_action": "errors", "errors": {"title": "Too short"}}
    assert [v["id"] for v in fake.view_stack(ALICE)] == [view["id"]]  # errors keep it open
    await fake.wait_for(lambda: len(seen) == 2)
    assert sorted(seen) == ["<@UBOT> hi", "inc-1"]

    hub = fake.socket_mode
    command, action, event, submission = (
        hub.delivery(r.envelope_id or "") for r in (said, pressed, mention, refused)
    )
    assert (command.type, command.envelope["accepts_response_payload"]) == ("slash_commands", True)
    assert command.payload["command"] == "/incident" and command.payload["user_name"] == "alice"
    assert all(isinstance(v, str) for v in command.payload.values())  # form fields, as over HTTP
    assert (action.type, action.payload["type"]) == ("interactive", "block_actions")
    assert action.payload["actions"][0]["block_id"]
    assert action.ack == {"envelope_id": action.envelope_id}  # an ack without a payload
    assert event.type == "events_api" and event.payload["type"] == "event_callback"
    assert event.payload["event"]["type"] == "app_mention"
    assert (event.envelope["retry_attempt"], event.envelope["retry_reason"]) == (0, "")
    assert submission.envelope["accepts_response_payload"] is True
    assert hub.unacked() == [] and len(hub.connections) == 1


async def test_refresh_requested_moves_the_client_to_a_new_socket(
    fake: FakeSlack, bolt: BoltOverSocket
) -> None:
    @bolt.app.command("/incident")
    async def command(ack: Any) -> None:
        await ack()

    hub = fake.socket_mode
    old = hub.connections[0]
    assert await hub.disconnect("refresh_requested") == [old]
    new = await hub.wait_connected(after=old)
    assert opens(fake) == [None, None]
    await fake.wait_for(lambda: not old.open)
    # slack_sdk closes the old socket itself before it opens the new one.
    assert old.closed_by == "client" and old.closed_at is not None
    assert old.closed_at <= new.opened_at
    async with SocketModeSender(fake) as slack:
        reply = await slack.command("help", user=ALICE, channel=GENERAL)
    assert reply.status == 200 and hub.delivery(reply.envelope_id or "").connection is new


async def test_link_disabled_makes_slack_sdk_reconnect(
    fake: FakeSlack, bolt: BoltOverSocket
) -> None:
    """slack_sdk treats link_disabled as any other disconnect: it opens a new socket at once,
    and its message listeners never see the disconnect message.

    A bot that should stay away once Socket Mode is turned off has to close its client itself.
    """
    old = fake.socket_mode.connections[0]
    await fake.socket_mode.disconnect("link_disabled")
    await fake.socket_mode.wait_connected(after=old)
    assert not old.open and old.sent[-1]["reason"] == "link_disabled"
    assert opens(fake)[:2] == [None, None]
    assert [m["type"] for m in bolt.messages] == ["hello"] * len(bolt.messages)


async def test_refused_app_token_makes_connect_retry_forever(fake: FakeSlack) -> None:
    """slack_sdk's connect() logs the SlackApiError and tries again every ping_interval."""
    for token, error in (
        (fake.bot_token, "not_allowed_token_type"),
        ("xapp-1-bad", "invalid_auth"),
    ):
        fake.calls.clear()
        running = bolt_app(fake, app_token=token)
        connecting = asyncio.ensure_future(running.handler.connect_async())  # type: ignore[no-untyped-call]
        await fake.wait_for(lambda: len(opens(fake)) >= 2, 10, "a second try")
        assert not connecting.done()  # still trying: connect never raises
        connecting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await connecting
        await running.handler.close_async()  # type: ignore[no-untyped-call]
        assert len(opens(fake)) >= 2 and set(opens(fake)) == {error}
    assert fake.socket_mode.connections == []


async def test_disconnect_alone_does_not_stop_the_client(fake: FakeSlack) -> None:
    """handler.disconnect_async() closes the socket, and slack_sdk's monitor opens another
    within ping_interval; close_async() stops it for good."""
    running = bolt_app(fake)
    await running.handler.connect_async()  # type: ignore[no-untyped-call]
    first = await fake.socket_mode.wait_connected()
    await running.handler.disconnect_async()  # type: ignore[no-untyped-call]
    second = await fake.socket_mode.wait_connected()
    assert second is not first and first.closed_by == "client"
    await running.handler.close_async()  # type: ignore[no-untyped-call]
    await fake.wait_for(lambda: not second.open)
    # Nothing of the client is left running, its session monitor included: no reconnect
    # can come, however long one waits.
    await fake.wait_for(lambda: not tasks_running("slack_sdk.socket_mode"))
    assert len(fake.socket_mode.connections) == 2


async def test_pings_are_answered_and_a_silent_socket_is_replaced(
    fake: FakeSlack, bolt: BoltOverSocket
) -> None:
    first = fake.socket_mode.connections[0]
    await fake.wait_for(lambda: first.pings >= 2)
    assert bolt.client.last_ping_pong_time is not None
    fake.socket_mode.answer_pings = False
    await fake.socket_mode.wait_connected(timeout=5, after=first)
    assert not first.open


async def test_unreachable_slack_drops_the_socket_until_it_is_back(
    fake: FakeSlack, bolt: BoltOverSocket
) -> None:
    first = fake.socket_mode.connections[0]
    fake.socket_mode_unreachable()
    assert first.closed_by == "dropped"
    await fake.wait_for(lambda: "connection_dropped" in opens(fake))
    async with SocketModeSender(fake) as slack:
        lost = await slack.command("help", user=ALICE, channel=GENERAL)
    assert lost.status == 0 and not lost.acked_in_time
    assert fake.socket_mode.delivery(lost.envelope_id or "").undeliverable
    fake.socket_mode_unreachable(False)
    await fake.socket_mode.wait_connected(timeout=5, after=first)


async def test_an_envelope_acked_too_late_answers_status_0(fake: FakeSlack) -> None:
    release = asyncio.Event()

    async def slow(client: AsyncBaseSocketModeClient, request: SocketModeRequest) -> None:
        await release.wait()
        await client.send_socket_mode_response(SocketModeResponse(request.envelope_id))

    client = SocketModeClient(
        fake.app_token,
        web_client=AsyncWebClient(base_url=fake.api_url),
        ping_interval=PING_INTERVAL,
    )
    client.socket_mode_request_listeners.append(slow)
    await client.connect()  # type: ignore[no-untyped-call]
    try:
        await fake.socket_mode.wait_connected()
        slack = SocketModeSender(fake, ack_timeout=0.2)
        reply = await slack.shortcut(callback_id="declare", user=ALICE)
        assert (reply.status, reply.json) == (0, None) and reply.elapsed >= 0.2
        assert not reply.acked_in_time
        release.set()
        late = fake.socket_mode.delivery(reply.envelope_id or "")
        assert await late.wait(1.0) and late.elapsed is not None and late.elapsed >= 0.2
    finally:
        await client.close()  # type: ignore[no-untyped-call]


async def test_socket_sender_builds_the_same_payloads(fake: FakeSlack) -> None:
    """No socket: everything is undeliverable, but the envelopes show what would have gone."""
    posted = fake.post_as_user(GENERAL, ALICE, "checkout is failing")
    async with SocketModeSender(fake) as slack:
        replies = [
            await slack.message_shortcut(
                callback_id="from_message", user=BOB, channel=GENERAL, message_ts=posted["ts"]
            ),
            await slack.reaction_added(user=BOB, channel=GENERAL, ts=posted["ts"], retry_num=1),
            await slack.user_message(user=BOB, channel=GENERAL, text="on it"),
        ]
    assert [(r.status, r.elapsed) for r in replies] == [(0, 0.0)] * 3
    shortcut, reaction, message = fake.socket_mode.deliveries
    assert shortcut.payload["type"] == "message_action"
    assert shortcut.payload["message"]["text"] == "checkout is failing"
    assert (reaction.envelope["retry_attempt"], reaction.envelope["retry_reason"]) == (1, "timeout")
    assert reaction.payload["event"]["item"] == {
        "type": "message",
        "channel": GENERAL,
        "ts": posted["ts"],
    }
    assert message.payload["event"]["text"] == "on it"
    assert all(d.undeliverable and not d.acked for d in fake.socket_mode.deliveries)


def test_connections_are_plain_records() -> None:
    conn = SocketConnection(number=1, ticket="t", opened_at=0.0)
    assert conn.open and conn.accepting
    conn.disconnect_reason = "warning"
    assert conn.open and not conn.accepting
