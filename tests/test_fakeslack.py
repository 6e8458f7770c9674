"""The fake Slack behaves like Slack where the bot depends on it."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs

import aiohttp
import pytest
from aiohttp import web
from slack_bolt.app.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.http_retry.builtin_interval_calculators import FixedValueRetryIntervalCalculator
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from bot.fakeslack import FakeSlack, SlackSender, fake_view_values
from tests.support import ALICE, BOB, GENERAL

SECRET = "test-signing-secret"


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as fake:
        fake.add_user(ALICE, "alice", real_name="Alice Example")
        fake.add_user(BOB, "bob")
        fake.add_channel("general", id=GENERAL, members=[ALICE, BOB, fake.bot_user_id])
        yield fake


@pytest.fixture
def client(fake: FakeSlack) -> AsyncWebClient:
    return AsyncWebClient(base_url=fake.api_url, token=fake.bot_token, retry_handlers=[])


def stored(fake: FakeSlack, channel: str, ts: str) -> dict[str, Any]:
    message = fake.message(channel, ts)
    assert message is not None, f"no message {ts} in {channel}"
    return message


async def slack_error(call: Any) -> str:
    """The error code of an awaited Web API call that must fail."""
    with pytest.raises(SlackApiError) as info:
        await call
    return str(info.value.response["error"])


# -- protocol -----------------------------------------------------------------------------------


async def test_auth_and_unknown_method(fake: FakeSlack, client: AsyncWebClient) -> None:
    me = await client.auth_test()
    assert (me["user_id"], me["bot_id"], me["team_id"]) == ("UBOT", "BBOT", "T0TEST")
    assert me["url"] == "https://acme.slack.com/"
    assert await slack_error(client.auth_test(token="xoxb-wrong")) == "invalid_auth"
    anonymous = AsyncWebClient(base_url=fake.api_url, retry_handlers=[])
    assert await slack_error(anonymous.auth_test()) == "not_authed"
    assert await slack_error(client.api_call("conversations.open")) == "unknown_method"
    assert [c.error for c in fake.calls] == [None, "invalid_auth", "not_authed", "unknown_method"]


async def test_missing_required_args_fail_for_every_reference_method(
    fake: FakeSlack, client: AsyncWebClient
) -> None:
    checked = 0
    for method, ref in fake.reference.items():
        if ref["required"] == ["token"]:
            continue
        checked += 1
        error = await slack_error(client.api_call(method))
        documented = {*ref["errors"], "invalid_arguments", "missing_argument"}
        assert error in documented, (method, error)
    assert checked > 30
    assert await slack_error(client.chat_postMessage(channel="", text="x")) == "channel_not_found"
    # bookmarks.add needs channel_id although the reference scrape leaves it out.
    add = client.api_call(
        "bookmarks.add", params={"title": "Runbook", "type": "link", "link": "https://x.test"}
    )
    assert await slack_error(add) == "channel_not_found"
    await client.bookmarks_add(
        channel_id=GENERAL, title="Runbook", type="link", link="https://x.test"
    )
    assert fake.channels[GENERAL].bookmarks[0]["title"] == "Runbook"


async def test_form_query_and_json_bodies(fake: FakeSlack, client: AsyncWebClient) -> None:
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*form*"}}]
    await client.api_call(
        "chat.postMessage", data={"channel": GENERAL, "text": "f", "blocks": json.dumps(blocks)}
    )
    await client.api_call("chat.postMessage", params={"channel": GENERAL, "text": "q"})
    await client.chat_postMessage(channel=GENERAL, text="j", blocks=blocks)
    texts = [m["text"] for m in fake.messages(GENERAL)]
    assert texts == ["f", "q", "j"]
    assert fake.messages(GENERAL)[0]["blocks"][0]["text"]["text"] == "*form*"
    # Slack gives blocks without a block_id one of its own.
    assert fake.messages(GENERAL)[0]["blocks"][0]["block_id"]
    # Methods without JSON support ignore a JSON body, as Slack does.
    info = client.api_call("conversations.info", json={"channel": GENERAL})
    assert await slack_error(info) == "channel_not_found"


# -- conversations ------------------------------------------------------------------------------


async def test_conversations_create_rules(fake: FakeSlack, client: AsyncWebClient) -> None:
    created = await client.conversations_create(name="inc-42-db_down", is_private=True)
    channel = created["channel"]
    assert channel["id"].startswith("C") and channel["is_private"] and channel["is_member"]
    assert fake.channels[channel["id"]].members == ["UBOT"]
    assert await slack_error(client.conversations_create(name="inc-42-db_down")) == "name_taken"
    assert await slack_error(client.conversations_create(name="Inc-43")) == "invalid_name_specials"
    assert await slack_error(client.conversations_create(name="a b")) == "invalid_name_specials"
    too_long = client.conversations_create(name="x" * 81)
    assert await slack_error(too_long) == "invalid_name_maxlength"
    assert await slack_error(client.conversations_create(name="")) == "invalid_name_required"
    listed = await client.conversations_list(types="private_channel")
    assert [c["name"] for c in listed["channels"]] == ["inc-42-db_down"]


async def test_membership_errors(fake: FakeSlack, client: AsyncWebClient) -> None:
    outside = fake.add_channel("random", members=[ALICE])
    assert await slack_error(client.chat_postMessage(channel=outside.id, text="x")) == (
        "not_in_channel"
    )
    assert await slack_error(client.conversations_history(channel=outside.id)) == "not_in_channel"
    topic = client.conversations_setTopic(channel=outside.id, topic="t")
    assert await slack_error(topic) == "not_in_channel"
    invite = client.conversations_invite(channel=outside.id, users=[BOB])
    assert await slack_error(invite) == "not_in_channel"
    assert await slack_error(client.chat_postMessage(channel="C404", text="x")) == (
        "channel_not_found"
    )
    secret = fake.add_channel("secret", is_private=True, members=[ALICE])
    assert await slack_error(client.conversations_info(channel=secret.id)) == "channel_not_found"

    await client.conversations_join(channel=outside.id)
    assert await slack_error(client.conversations_invite(channel=outside.id, users="UBOT")) == (
        "cant_invite_self"
    )
    assert await slack_error(client.conversations_invite(channel=outside.id, users="U404")) == (
        "user_not_found"
    )
    assert await slack_error(client.conversations_invite(channel=outside.id, users=ALICE)) == (
        "already_in_channel"
    )
    await client.conversations_invite(channel=outside.id, users=[ALICE, BOB])
    assert fake.channels[outside.id].members == [ALICE, "UBOT", BOB]
    await client.conversations_setTopic(channel=outside.id, topic="SEV1: checkout down")
    last = fake.messages(outside.id)[-1]
    assert last["subtype"] == "channel_topic" and last["topic"] == "SEV1: checkout down"
    members = await client.conversations_members(channel=outside.id, limit=2)
    assert members["members"] == [ALICE, "UBOT"] and members["response_metadata"]["next_cursor"]


async def test_history_pagination_with_threads(fake: FakeSlack, client: AsyncWebClient) -> None:
    parents = [fake.post_as_user(GENERAL, ALICE, f"m{i}")["ts"] for i in range(23)]
    for i in range(3):
        fake.post_as_user(GENERAL, BOB, f"r{i}", thread_ts=parents[5])
    await client.chat_postMessage(channel=GENERAL, thread_ts=parents[5], text="bot reply")

    seen: list[dict[str, Any]] = []
    pages = 0
    async for page in await client.conversations_history(channel=GENERAL, limit=5):
        pages += 1
        assert page["has_more"] == (pages < 5)
        seen.extend(page["messages"])
    assert pages == 5
    assert [m["text"] for m in seen] == [f"m{i}" for i in reversed(range(23))]
    parent = next(m for m in seen if m["ts"] == parents[5])
    assert parent["reply_count"] == 4 and parent["thread_ts"] == parents[5]
    assert parent["reply_users"] == [BOB, "UBOT"]
    assert parent["latest_reply"] == fake.replies(GENERAL, parents[5])[-1]["ts"]

    window = await client.conversations_history(
        channel=GENERAL, oldest=parents[2], latest=parents[4], inclusive=True
    )
    assert [m["text"] for m in window["messages"]] == ["m4", "m3", "m2"]
    window = await client.conversations_history(
        channel=GENERAL, oldest=parents[2], latest=parents[4]
    )
    assert [m["text"] for m in window["messages"]] == ["m3"]

    thread: list[str] = []
    async for page in await client.conversations_replies(channel=GENERAL, ts=parents[5], limit=2):
        thread.extend(m["text"] for m in page["messages"])
    assert thread == ["m5", "r0", "r1", "r2", "bot reply"]
    assert await slack_error(client.conversations_history(channel=GENERAL, cursor="nope")) == (
        "invalid_cursor"
    )


async def test_chat_rules(fake: FakeSlack, client: AsyncWebClient) -> None:
    nothing = client.api_call("chat.postMessage", json={"channel": GENERAL})
    assert await slack_error(nothing) == "no_text"
    divider = {"type": "divider"}
    too_many = client.chat_postMessage(channel=GENERAL, text="x", blocks=[divider] * 51)
    assert await slack_error(too_many) == "invalid_blocks"
    empty = [{"type": "section", "text": {"type": "mrkdwn", "text": ""}}]
    empty_section = client.chat_postMessage(channel=GENERAL, text="x", blocks=empty)
    assert await slack_error(empty_section) == "invalid_blocks"
    long = client.chat_postMessage(channel=GENERAL, text="x" * 40_001)
    assert await slack_error(long) == "msg_too_long"

    dm = await client.chat_postMessage(channel=ALICE, text="psst")
    assert dm["channel"].startswith("D") and fake.messages(ALICE)[0]["text"] == "psst"

    human = fake.post_as_user(GENERAL, ALICE, "hello")
    update = client.chat_update(channel=GENERAL, ts=human["ts"], text="edited")
    assert await slack_error(update) == "cant_update_message"
    assert await slack_error(client.chat_update(channel=GENERAL, ts="1.000001", text="x")) == (
        "message_not_found"
    )
    posted = await client.chat_postMessage(channel=GENERAL, text="card")
    await client.chat_update(channel=GENERAL, ts=posted["ts"], text="card v2")
    assert stored(fake, GENERAL, posted["ts"])["text"] == "card v2"

    eph = client.chat_postEphemeral(channel=GENERAL, user="U404", text="x")
    assert await slack_error(eph) == "user_not_in_channel"
    await client.chat_postEphemeral(channel=GENERAL, user=ALICE, text="only you")
    assert fake.ephemerals[-1]["user"] == ALICE and fake.ephemerals[-1]["text"] == "only you"

    link = await client.chat_getPermalink(channel=GENERAL, message_ts=posted["ts"])
    assert link["permalink"] == (
        f"https://acme.slack.com/archives/{GENERAL}/p{posted['ts'].replace('.', '')}"
    )
    await client.pins_add(channel=GENERAL, timestamp=posted["ts"])
    assert await slack_error(client.pins_add(channel=GENERAL, timestamp=posted["ts"])) == (
        "already_pinned"
    )
    assert await slack_error(client.pins_add(channel=GENERAL)) == "no_item_specified"
    assert fake.pins(GENERAL) == [posted["ts"]]
    await client.reactions_add(channel=GENERAL, timestamp=posted["ts"], name="eyes")
    assert stored(fake, GENERAL, posted["ts"])["reactions"][0]["users"] == ["UBOT"]
    await client.chat_delete(channel=GENERAL, ts=posted["ts"])
    assert fake.message(GENERAL, posted["ts"]) is None


# -- faults -------------------------------------------------------------------------------------


async def test_429_retry_after_is_honoured(
    fake: FakeSlack, monkeypatch: pytest.MonkeyPatch
) -> None:
    # slack_sdk sleeps Retry-After plus up to 1 s of jitter; pin the jitter to keep this exact.
    monkeypatch.setattr("slack_sdk.http_retry.builtin_async_handlers.random.random", lambda: 0.0)
    retrying = AsyncWebClient(
        base_url=fake.api_url,
        token=fake.bot_token,
        retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=1)],
    )
    fake.fail("chat.postMessage", retry_after=1)
    started = time.monotonic()
    await retrying.chat_postMessage(channel=GENERAL, text="after the wait")
    assert time.monotonic() - started >= 1.0
    first, second = fake.calls_to("chat.postMessage")
    assert (first.status, first.error, second.ok) == (429, "ratelimited", True)
    assert second.at - first.at >= 1.0
    assert len(fake.messages(GENERAL)) == 1


async def test_500_is_retried(fake: FakeSlack, client: AsyncWebClient) -> None:
    retrying = AsyncWebClient(
        base_url=fake.api_url,
        token=fake.bot_token,
        retry_handlers=[
            AsyncServerErrorRetryHandler(
                max_retry_count=2, interval_calculator=FixedValueRetryIntervalCalculator(0.01)
            )
        ],
    )
    fake.fail("conversations.info", status=500, times=2)
    info = await retrying.conversations_info(channel=GENERAL)
    assert info["channel"]["name"] == "general"
    assert [c.status for c in fake.calls_to("conversations.info")] == [500, 500, 200]
    fake.fail("*", error="fatal_error")
    assert await slack_error(client.auth_test()) == "fatal_error"


async def test_delays(fake: FakeSlack, client: AsyncWebClient) -> None:
    fake.set_delay("chat.postMessage", 0.2)
    started = time.monotonic()
    await client.auth_test()
    assert time.monotonic() - started < 0.2
    await client.chat_postMessage(channel=GENERAL, text="slow")
    assert time.monotonic() - started >= 0.2
    fake.delay = 0.1
    started = time.monotonic()
    await client.auth_test()
    assert time.monotonic() - started >= 0.1


async def test_dropped_connection(fake: FakeSlack, client: AsyncWebClient) -> None:
    fake.fail("chat.postMessage", drop=True)
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await client.chat_postMessage(channel=GENERAL, text="lost")
    # slack_sdk's connection-error handler retries once, and the retry gets through.
    retrying = AsyncWebClient(
        base_url=fake.api_url,
        token=fake.bot_token,
        retry_handlers=[
            AsyncConnectionErrorRetryHandler(
                interval_calculator=FixedValueRetryIntervalCalculator(0.01)
            )
        ],
    )
    fake.fail("chat.postMessage", drop=True)
    await retrying.chat_postMessage(channel=GENERAL, text="resent")
    assert [c.error for c in fake.calls_to("chat.postMessage")] == [
        "connection_dropped",
        "connection_dropped",
        None,
    ]
    # The dropped request was never acted on.
    assert [m["text"] for m in fake.messages(GENERAL)] == ["resent"]


async def test_rate_limit_fraction_is_deterministic(
    fake: FakeSlack, client: AsyncWebClient
) -> None:
    async def statuses() -> list[int]:
        fake.rate_limit_fraction(0.5, seed=7)
        result = []
        for _ in range(20):
            try:
                answer = await client.auth_test()
                result.append(answer.status_code)
            except SlackApiError as exc:
                result.append(exc.response.status_code)
        return result

    first = await statuses()
    assert await statuses() == first
    assert 3 < first.count(429) < 17
    assert all(c.error == "ratelimited" for c in fake.calls if c.status == 429)


# -- files, views, response_url -----------------------------------------------------------------


async def test_upload_flow(fake: FakeSlack, client: AsyncWebClient) -> None:
    parent = await client.chat_postMessage(channel=GENERAL, text="incident")
    done = await client.files_upload_v2(
        channel=GENERAL,
        content="timeline\n10:00 paged",
        filename="timeline.txt",
        title="Timeline",
        initial_comment="Postmortem draft",
        thread_ts=parent["ts"],
    )
    file_id = done["file"]["id"]
    assert fake.file_contents[file_id] == b"timeline\n10:00 paged"
    reply = fake.replies(GENERAL, parent["ts"])[-1]
    assert reply["text"] == "Postmortem draft" and reply["files"][0]["id"] == file_id
    info = await client.files_info(file=file_id)
    assert info["file"]["title"] == "Timeline" and GENERAL in info["file"]["channels"]
    assert info["file"]["size"] == len(b"timeline\n10:00 paged")

    pending = await client.files_getUploadURLExternal(filename="never.txt", length=3)
    never = client.files_completeUploadExternal(
        files=[{"id": pending["file_id"], "title": "never"}], channel_id=GENERAL
    )
    assert await slack_error(never) == "file_not_found"
    assert await slack_error(client.files_info(file="F404")) == "file_not_found"


MODAL = {
    "type": "modal",
    "callback_id": "declare",
    "private_metadata": "C0GENERAL",
    "title": {"type": "plain_text", "text": "Declare incident"},
    "submit": {"type": "plain_text", "text": "Declare"},
    "blocks": [
        {
            "type": "input",
            "block_id": "title",
            "label": {"type": "plain_text", "text": "Title"},
            "element": {"type": "plain_text_input", "action_id": "title"},
        },
        {
            "type": "input",
            "block_id": "severity",
            "label": {"type": "plain_text", "text": "Severity"},
            "element": {
                "type": "static_select",
                "action_id": "severity",
                "options": [
                    {"text": {"type": "plain_text", "text": "SEV1"}, "value": "sev1"},
                    {"text": {"type": "plain_text", "text": "SEV2"}, "value": "sev2"},
                ],
            },
        },
        {
            "type": "input",
            "block_id": "lead",
            "optional": True,
            "label": {"type": "plain_text", "text": "Lead"},
            "element": {"type": "users_select", "action_id": "lead"},
        },
    ],
}


async def test_triggers_and_views(fake: FakeSlack, client: AsyncWebClient) -> None:
    trigger = fake.new_trigger_id(ALICE)
    opened = await client.views_open(trigger_id=trigger, view=MODAL)
    view = opened["view"]
    assert view["id"].startswith("V") and view["callback_id"] == "declare"
    assert view["state"] == {"values": {}} and fake.view_users[view["id"]] == ALICE
    assert await slack_error(client.views_open(trigger_id=trigger, view=MODAL)) == (
        "exchanged_trigger_id"
    )
    assert await slack_error(client.views_open(trigger_id="1.2.3", view=MODAL)) == (
        "invalid_trigger_id"
    )
    fake.trigger_ttl = 0.05
    stale = fake.new_trigger_id(ALICE)
    await asyncio.sleep(0.06)
    assert await slack_error(client.views_open(trigger_id=stale, view=MODAL)) == (
        "expired_trigger_id"
    )
    no_submit = {k: v for k, v in MODAL.items() if k != "submit"}
    fake.trigger_ttl = 3.0
    bad = client.views_open(trigger_id=fake.new_trigger_id(ALICE), view=no_submit)
    assert await slack_error(bad) == "invalid_arguments"

    updated = await client.views_update(view_id=view["id"], hash=view["hash"], view=MODAL)
    assert updated["view"]["id"] == view["id"] and updated["view"]["hash"] != view["hash"]
    stale_hash = client.views_update(view_id=view["id"], hash=view["hash"], view=MODAL)
    assert await slack_error(stale_hash) == "hash_conflict"

    values = fake_view_values(fake.views[view["id"]], title="DB down", severity="sev1")
    assert values["title"]["title"] == {"type": "plain_text_input", "value": "DB down"}
    assert values["severity"]["severity"]["selected_option"]["value"] == "sev1"
    assert values["lead"]["lead"] == {"type": "users_select", "selected_user": None}


async def test_response_url_recording(fake: FakeSlack) -> None:
    posted = fake.post_as_user(GENERAL, ALICE, "original")
    url, key = fake.new_response_url(channel=GENERAL, user=ALICE, message_ts=posted["ts"])
    webhook = AsyncWebhookClient(url)
    answer = await webhook.send(text="only you can see this")
    assert (answer.status_code, answer.body) == (200, "ok")
    await webhook.send(text="replaced", replace_original=True)
    await webhook.send_dict({"text": "for all", "response_type": "in_channel"})
    assert [r.key for r in fake.responses] == [key] * 3
    assert fake.responses[0].body["text"] == "only you can see this"
    assert stored(fake, GENERAL, posted["ts"])["text"] == "replaced"
    assert fake.messages(GENERAL)[-1]["text"] == "for all"


# -- what the bot receives ----------------------------------------------------------------------


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[str, list[web.Request], list[bytes]]]:
    """A stand-in request URL that records what arrives and answers 200."""
    requests: list[web.Request] = []
    bodies: list[bytes] = []

    async def handle(request: web.Request) -> web.Response:
        requests.append(request)
        bodies.append(await request.read())
        if b"view_submission" in bodies[-1]:
            return web.json_response({"response_action": "clear"})
        return web.Response(text="")

    app = web.Application()
    app.router.add_post("/slack/events", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    yield f"http://{host}:{port}/slack/events", requests, bodies
    await runner.cleanup()


async def test_sender_signs_and_builds_payloads(
    fake: FakeSlack,
    client: AsyncWebClient,
    receiver: tuple[str, list[web.Request], list[bytes]],
) -> None:
    url, requests, bodies = receiver
    verifier = SignatureVerifier(SECRET)
    card = await client.chat_postMessage(
        channel=GENERAL,
        text="Incident",
        blocks=[
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "action_id": "ack",
                        "text": {"type": "plain_text", "text": "Ack"},
                        "value": "inc-1",
                    },
                    {
                        "type": "static_select",
                        "action_id": "sev",
                        "options": MODAL["blocks"][1]["element"]["options"],  # type: ignore[index]
                    },
                ],
            }
        ],
    )
    async with SlackSender(url, SECRET, fake) as sender:
        await sender.command("declare DB down", user=ALICE, channel=GENERAL)
        await sender.block_action(user=BOB, channel=GENERAL, message_ts=card["ts"], action_id="ack")
        await sender.block_action(
            user=BOB,
            channel=GENERAL,
            message_ts=card["ts"],
            action_id="sev",
            selected_option="sev2",
        )
        await sender.event({"type": "app_mention", "user": ALICE, "text": "hi"}, retry_num=1)
        stale = await sender.command("late", timestamp=int(time.time()) - 600)
        with pytest.raises(AssertionError, match="no element with action_id"):
            await sender.block_action(
                user=BOB, channel=GENERAL, message_ts=card["ts"], action_id="missing"
            )
        opened = await client.views_open(trigger_id=fake.new_trigger_id(ALICE), view=MODAL)
        with pytest.raises(AssertionError, match="required"):
            await sender.submit_view(opened["view"]["id"], user=ALICE, inputs={"title": "x"})
        await sender.submit_view(
            opened["view"]["id"], user=ALICE, inputs={"title": "DB down", "severity": "sev1"}
        )
    assert stale.status == 200
    for request, body in zip(requests, bodies, strict=True):
        valid = verifier.is_valid_request(body, dict(request.headers))
        assert valid == (b"late" not in body), body[:80]

    command = {k: v[0] for k, v in parse_qs(bodies[0].decode()).items()}
    assert command["command"] == "/incident" and command["text"] == "declare DB down"
    assert command["channel_name"] == "general" and command["user_name"] == "alice"
    assert command["response_url"].startswith(fake.base_url)

    def payload(index: int) -> dict[str, Any]:
        form = parse_qs(bodies[index].decode())
        body: dict[str, Any] = json.loads(form["payload"][0])
        return body

    click = payload(1)
    assert click["type"] == "block_actions" and click["container"]["message_ts"] == card["ts"]
    assert click["actions"][0]["value"] == "inc-1" and click["actions"][0]["block_id"]
    assert click["message"]["ts"] == card["ts"] and click["user"]["id"] == BOB
    chosen = payload(2)["actions"][0]
    assert chosen["selected_option"]["value"] == "sev2"
    assert chosen["selected_option"]["text"]["text"] == "SEV2"

    assert requests[3].headers["X-Slack-Retry-Num"] == "1"
    envelope = json.loads(bodies[3])
    assert envelope["type"] == "event_callback" and envelope["event"]["type"] == "app_mention"
    assert envelope["authorizations"][0]["user_id"] == "UBOT"

    submitted = payload(5)
    assert submitted["type"] == "view_submission"
    state = submitted["view"]["state"]["values"]
    assert state["severity"]["severity"]["selected_option"]["value"] == "sev1"
    assert fake.view_stack(ALICE) == []  # the bot answered response_action "clear"


async def test_bolt_app_round_trip(fake: FakeSlack) -> None:
    """A real Bolt app routes what the sender sends, and its calls land in the fake."""
    app = AsyncApp(
        client=AsyncWebClient(base_url=fake.api_url, token=fake.bot_token),
        signing_secret=SECRET,
    )

    @app.command("/incident")
    async def declare(ack: Any, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        await client.views_open(trigger_id=body["trigger_id"], view=MODAL)

    @app.view("declare")
    async def submitted(ack: Any, view: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        title = view["state"]["values"]["title"]["title"]["value"]
        await client.chat_postMessage(channel=view["private_metadata"], text=f"Declared: {title}")

    runner = web.AppRunner(app.web_app(path="/slack/events"), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        async with SlackSender(f"http://{host}:{port}/slack/events", SECRET, fake) as sender:
            reply = await sender.command("", user=ALICE, channel=GENERAL)
            assert reply.status == 200 and reply.acked_in_time
            view = await fake.wait_for(lambda: fake.view_stack(ALICE), message="modal opened")
            await sender.submit_view(
                view[0]["id"], user=ALICE, inputs={"title": "API 500s", "severity": "sev2"}
            )
            await fake.wait_for(
                lambda: any(m["text"] == "Declared: API 500s" for m in fake.messages(GENERAL))
            )
            forged = await sender.raw(b"token=x", {"X-Slack-Signature": "v0=bad"})
            assert forged.status == 401
    finally:
        await runner.cleanup()


async def test_wait_for_reports_recent_calls(fake: FakeSlack, client: AsyncWebClient) -> None:
    await client.auth_test()
    with pytest.raises(AssertionError, match=r"card posted.*auth\.test ok"):
        await fake.wait_for(lambda: False, timeout=0.05, message="card posted")


async def test_sender_modal_interactions_and_events(
    fake: FakeSlack,
    client: AsyncWebClient,
    receiver: tuple[str, list[web.Request], list[bytes]],
) -> None:
    url, _requests, bodies = receiver
    modal = json.loads(json.dumps(MODAL))
    modal["blocks"].append(
        {
            "type": "actions",
            "block_id": "more",
            "elements": [
                {
                    "type": "button",
                    "action_id": "add_responder",
                    "text": {"type": "plain_text", "text": "Add responder"},
                }
            ],
        }
    )
    opened = await client.views_open(trigger_id=fake.new_trigger_id(ALICE), view=modal)
    view_id = opened["view"]["id"]
    posted = fake.post_as_user(GENERAL, ALICE, "checkout is failing")
    async with SlackSender(url, SECRET, fake) as sender:
        clicked = await sender.view_block_action(
            user=ALICE, view_id=view_id, action_id="add_responder", inputs={"title": "Checkout"}
        )
        # The bot redraws the modal; what the user typed survives, as in Slack.
        await client.views_update(view_id=view_id, view=modal)
        await client.views_push(trigger_id=clicked.trigger_id, view=MODAL)
        assert len(fake.view_stack(ALICE)) == 2
        await sender.message_shortcut(
            callback_id="declare_from_message", user=BOB, channel=GENERAL, message_ts=posted["ts"]
        )
        await sender.shortcut(callback_id="declare_global", user=BOB)
        await sender.reaction_added(user=BOB, channel=GENERAL, ts=posted["ts"])
        await sender.user_message(user=BOB, channel=GENERAL, text="on it")
        await sender.submit_view(view_id, user=ALICE, inputs={"severity": "sev2"})

    payloads = [
        json.loads(parse_qs(b.decode())["payload"][0]) for b in bodies if b[:8] == b"payload="
    ]
    in_view = payloads[0]
    assert in_view["container"] == {"type": "view", "view_id": view_id}
    assert in_view["view"]["state"]["values"]["title"]["title"]["value"] == "Checkout"
    assert in_view["actions"][0]["action_id"] == "add_responder"
    assert payloads[1]["type"] == "message_action"
    assert payloads[1]["message"]["text"] == "checkout is failing"
    assert payloads[2]["type"] == "shortcut" and payloads[2]["callback_id"] == "declare_global"
    submitted = payloads[3]["view"]["state"]["values"]
    assert submitted["title"]["title"]["value"] == "Checkout"
    assert submitted["severity"]["severity"]["selected_option"]["value"] == "sev2"

    events = [json.loads(b)["event"] for b in bodies if b[:1] == b"{"]
    assert events[0]["type"] == "reaction_added" and events[0]["item"]["ts"] == posted["ts"]
    assert stored(fake, GENERAL, posted["ts"])["reactions"][0]["users"] == [BOB]
    assert events[1]["type"] == "message" and events[1]["channel_type"] == "channel"
    assert fake.messages(GENERAL)[-1]["text"] == "on it"
    # The receiver answered the submission with "clear": every modal of the stack is gone.
    assert fake.view_stack(ALICE) == []
    stale = client.views_update(view_id=view_id, view=MODAL)
    assert await slack_error(stale) == "not_found"


# -- Slack's rate-limit tiers ---------------------------------------------------------------------


class Clock:
    """Real time plus whatever a test skips forward."""

    def __init__(self) -> None:
        self.skipped = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.skipped


@pytest.fixture
async def limited() -> AsyncIterator[tuple[FakeSlack, Clock]]:
    clock = Clock()
    async with FakeSlack(rate_limits=True, clock=clock) as fake:
        fake.add_user(ALICE, "alice", real_name="Alice Example")
        fake.add_channel("general", id=GENERAL, members=[ALICE, fake.bot_user_id])
        fake.add_channel("random", id="C0RANDOM", members=[ALICE, fake.bot_user_id])
        yield fake, clock


async def test_a_tier_2_method_answers_429_past_20_calls_a_minute(
    limited: tuple[FakeSlack, Clock],
) -> None:
    fake, clock = limited
    async with aiohttp.ClientSession() as http:

        async def set_topic(topic: str) -> tuple[int, str | None, Any]:
            async with http.post(
                f"{fake.api_url}conversations.setTopic",
                headers={"Authorization": f"Bearer {fake.bot_token}"},
                data={"channel": GENERAL, "topic": topic},
            ) as response:
                return response.status, response.headers.get("Retry-After"), await response.json()

        for i in range(20):
            status, _, body = await set_topic(f"topic {i}")
            assert (status, body["ok"]) == (200, True), i
        clock.skipped += 20
        status, retry_after, body = await set_topic("one too many")
        # Exactly what Slack answers: HTTP 429, whole seconds to wait, and this body.
        assert status == 429
        assert body == {"ok": False, "error": "ratelimited"}
        assert retry_after is not None and retry_after.isdigit()
        assert 39 <= int(retry_after) <= 41
        assert fake.channels[GENERAL].topic["value"] == "topic 19"
        # The window slides: once the first calls are a minute old, calls go through again.
        clock.skipped += int(retry_after)
        status, _, body = await set_topic("after the window")
    assert (status, body["ok"]) == (200, True)
    assert fake.channels[GENERAL].topic["value"] == "after the window"
    # Limits are per method: a Tier 3 method is still free meanwhile.
    client = AsyncWebClient(base_url=fake.api_url, token=fake.bot_token, retry_handlers=[])
    assert (await client.conversations_info(channel=GENERAL))["ok"]


async def test_slack_sdk_retry_handler_waits_out_the_window(
    limited: tuple[FakeSlack, Clock], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake, clock = limited
    monkeypatch.setattr("slack_sdk.http_retry.builtin_async_handlers.random.random", lambda: 0.0)
    retrying = AsyncWebClient(
        base_url=fake.api_url,
        token=fake.bot_token,
        retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=2)],
    )
    for _ in range(20):
        await retrying.pins_list(channel=GENERAL)
    # The first of those calls leaves the window in under a second.
    clock.skipped += 59.5
    started = time.monotonic()
    answer = await retrying.pins_list(channel=GENERAL)
    assert answer["ok"]
    assert time.monotonic() - started >= 1.0
    statuses = [c.status for c in fake.calls_to("pins.list")]
    assert statuses == [200] * 20 + [429, 200]
    assert fake.calls_to("pins.list")[20].response == {"ok": False, "error": "ratelimited"}


async def test_posting_is_limited_per_channel(limited: tuple[FakeSlack, Clock]) -> None:
    fake, clock = limited
    client = AsyncWebClient(base_url=fake.api_url, token=fake.bot_token, retry_handlers=[])
    for i in range(3):  # a short burst is allowed
        await client.chat_postMessage(channel=GENERAL, text=f"burst {i}")
    with pytest.raises(SlackApiError) as refused:
        await client.chat_postMessage(channel=GENERAL, text="too fast")
    assert refused.value.response.status_code == 429
    assert refused.value.response["error"] == "ratelimited"
    assert refused.value.response.headers["Retry-After"] in ("1", "2", "3")
    # Another channel has its own allowance.
    await client.chat_postMessage(channel="C0RANDOM", text="elsewhere")
    clock.skipped += 3
    await client.chat_postMessage(channel=GENERAL, text="a moment later")
    texts = [m["text"] for m in fake.messages(GENERAL, include_system=False)]
    assert texts == ["burst 0", "burst 1", "burst 2", "a moment later"]


async def test_rate_limits_are_off_unless_asked(fake: FakeSlack, client: AsyncWebClient) -> None:
    for i in range(30):
        await client.conversations_setTopic(channel=GENERAL, topic=f"topic {i}")
    assert all(c.ok for c in fake.calls_to("conversations.setTopic"))
