"""Trying to break the bot: forged requests, duplicates, a misbehaving Slack, injection,
random input and secrets. Crashes (SIGKILL) are in test_crashes.py."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from typing import Any
from urllib.parse import urlencode

import pytest

from tests.support import (
    ALICE,
    BOB,
    BOT_TOKEN,
    GENERAL,
    SIGNING_SECRET,
    Bot,
    StartBot,
    card_of,
    channel_of,
    declared,
    entries,
    texts_of,
    until,
    uploaded,
)

# --- authenticity --------------------------------------------------------------------


def command_body(text: str, trigger: str = "13345224609.738474920.8088930838d88f008e0") -> bytes:
    return urlencode(
        {
            "command": "/incident",
            "text": text,
            "user_id": ALICE,
            "channel_id": GENERAL,
            "team_id": "T0TEST",
            "trigger_id": trigger,
            "response_url": "http://127.0.0.1:9/never",
        }
    ).encode()


@pytest.mark.parametrize(
    "headers",
    [
        {},  # no signature at all
        {"X-Slack-Request-Timestamp": "{now}", "X-Slack-Signature": "v0=" + "0" * 64},
        "stale",  # signed correctly, six minutes ago
        "other-secret",
    ],
)
async def test_unsigned_or_stale_requests_are_refused(bot: Bot, headers: Any) -> None:
    body = command_body("declare sev1 Forged incident")
    if headers == "stale":
        headers = bot.slack.sign(body, timestamp=int(time.time()) - 6 * 60)
    elif headers == "other-secret":
        from bot.fakeslack import SlackSender

        headers = SlackSender(bot.url, "not-the-signing-secret", bot.fake).sign(body)
    else:
        headers = {k: v.replace("{now}", str(int(time.time()))) for k, v in headers.items()}
    reply = await bot.slack.raw(
        body, {"Content-Type": "application/x-www-form-urlencoded", **headers}
    )
    assert reply.status == 401
    await bot.settled()
    assert await bot.incidents() == []
    assert [c.method for c in bot.fake.calls if c.method != "auth.test"] == []


# --- duplicates -----------------------------------------------------------------------


async def test_a_repeated_slash_command_declares_once(bot: Bot) -> None:
    body = command_body("declare sev2 Retried command", trigger="111.222.abc")
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    for _ in range(3):
        reply = await bot.slack.raw(body, {**headers, **bot.slack.sign(body)})
        assert reply.status == 200
    await bot.settled()
    assert len(await bot.incidents()) == 1
    assert len(bot.fake.calls_to("conversations.create")) == 1


async def test_duplicates_are_caught_across_processes(start_bot: StartBot) -> None:
    a, b = await start_bot(), await start_bot()
    await a.slack.command("declare", user=ALICE)
    view = await until(lambda: next(iter(a.fake.views.values()), None))
    await asyncio.gather(
        a.slack.submit_view(view["id"], user=ALICE, inputs={"title": "Shared DB"}),
        b.slack.submit_view(view["id"], user=ALICE, inputs={"title": "Shared DB"}),
    )
    inc = await a.wait_provisioned(1)
    await a.settled()
    await b.settled()
    assert len(await a.incidents()) == 1
    assert len(a.fake.calls_to("conversations.create")) == 1

    # The same pin delivered to both processes (a retry landing elsewhere): one entry.
    msg = a.fake.post_as_user(channel_of(inc), BOB, "Disk full on db-1")
    await asyncio.gather(
        a.slack.reaction_added(user=BOB, channel=channel_of(inc), ts=msg["ts"], event_id="Ev9"),
        b.slack.reaction_added(
            user=BOB, channel=channel_of(inc), ts=msg["ts"], event_id="Ev9", retry_num=1
        ),
    )
    await a.settled()
    await b.settled()
    assert len(await entries(a, inc, "message")) == 1


# --- Slack misbehaving ----------------------------------------------------------------


async def test_rate_limits_and_server_errors_slow_things_down_but_lose_nothing(
    start_bot: StartBot,
) -> None:
    bot = await start_bot(announcements_channel="C0ANNOUNCE")
    bot.fake.add_channel("incidents", id="C0ANNOUNCE", members=["UBOT"])
    bot.fake.rate_limit_fraction(0.3, retry_after=0, seed=7)
    bot.fake.fail("chat.postMessage", status=500, times=2)
    bot.fake.fail("conversations.setTopic", status=503, times=1)
    bot.fake.fail("pins.add", drop=True, times=1)

    await bot.slack.command("declare sev1 Flaky Slack", user=ALICE)
    inc = await bot.wait_provisioned(1, timeout=30)
    await bot.settled(timeout=30)
    await bot.ask("update Still flaky but fine", user=ALICE, channel=channel_of(inc))
    for i in range(30):
        bot.fake.post_as_user(channel_of(inc), BOB, f"message {i}")
    await bot.ask("postmortem", user=ALICE, channel=channel_of(inc))

    assert [c.name for c in bot.fake.channels.values() if c.name.startswith("inc-1")] == [
        "inc-1-flaky-slack"
    ]
    assert bot.fake.pins(channel_of(inc)) == [inc.card_ts]
    said = [m["text"] for m in bot.fake.messages(channel_of(inc), include_system=False)]
    assert len([t for t in said if "Still flaky but fine" in t]) == 1
    assert len(bot.fake.messages("C0ANNOUNCE", include_system=False)) == 1
    [draft] = uploaded(bot)
    assert all(f"message {i}" in draft for i in range(30))
    assert any(c.status == 429 for c in bot.fake.calls)


async def test_slack_down_during_a_declaration_is_told_then_repaired(start_bot: StartBot) -> None:
    bot = await start_bot(lease_seconds=1)
    # Down for one whole attempt: the first call and all three of slack_sdk's retries.
    bot.fake.fail("conversations.create", status=500, times=4)
    await bot.slack.command("declare sev1 Slack outage too", user=ALICE, channel=GENERAL)
    told = await until(
        lambda: [r.body["text"] for r in bot.fake.responses if "is recorded" in r.body["text"]],
        timeout=20,
        message="the person told",
    )
    assert "INC-1 is recorded" in told[0] and "would not create its channel" in told[0]
    inc = await bot.wait_provisioned(1, timeout=20)  # the repair job finishes it
    assert [c.status for c in bot.fake.calls_to("conversations.create")] == [500] * 4 + [200]
    assert inc.channel_name == "inc-1-slack-outage-too"
    assert bot.fake.pins(channel_of(inc)) == [inc.card_ts]
    assert len([c for c in bot.fake.channels.values() if c.name.startswith("inc-1")]) == 1


async def test_half_finished_declaration_is_completed_not_duplicated(start_bot: StartBot) -> None:
    bot = await start_bot(lease_seconds=1)
    bot.fake.fail("pins.add", error="internal_error", times=1)  # not retried by slack_sdk
    await bot.slack.command("declare sev2 Pins broken", user=ALICE, channel=GENERAL)
    inc = await bot.wait_provisioned(1, timeout=20)
    assert [c.ok for c in bot.fake.calls_to("pins.add")] == [False, True]
    cards = [
        m
        for m in bot.fake.messages(channel_of(inc), include_system=False)
        if m.get("blocks") and "INC-1 · Pins broken" in texts_of(m["blocks"])
    ]
    assert [c["ts"] for c in cards] == [inc.card_ts]
    assert bot.fake.pins(channel_of(inc)) == [inc.card_ts]


async def test_a_reminder_whose_post_failed_is_sent_once_later(start_bot: StartBot) -> None:
    bot = await start_bot(
        lease_seconds=1, reminder_interval_minutes=2 / 60, reminder_sync_seconds=0.3
    )
    inc = await declared(bot)
    # The reminder's post fails, slack_sdk's three retries too: claimed, not sent.
    bot.fake.fail("chat.postMessage", status=500, times=4)
    await until(lambda: entries(bot, inc, "reminder"), timeout=10, message="reminder claimed")

    def reminders() -> list[dict[str, Any]]:
        said = bot.fake.messages(channel_of(inc), include_system=False)
        return [m for m in said if "needs a status update" in m["text"]]

    async def every_claim_sent_once() -> bool:
        stored = (await bot.incidents())[0]
        claimed = await entries(bot, inc, "reminder")
        return stored.reminder_sending_since is None and len(reminders()) == len(claimed) > 0

    await until(every_claim_sent_once, timeout=20, message="the failed reminder sent later")
    assert any(c.status == 500 for c in bot.fake.calls_to("chat.postMessage"))
    await bot.app.stop()
    assert len(reminders()) == len(await entries(bot, inc, "reminder"))


async def test_a_channel_created_but_never_confirmed_is_adopted(bot: Bot) -> None:
    # Slack made the channel, but the answer never reached the bot (a crash or a lost
    # connection): the retry finds name_taken and takes its own channel.
    orphan = bot.fake.add_channel("inc-1-lost-answer", members=["UBOT"])
    orphan.creator = "UBOT"
    await bot.ask("declare sev2 Lost answer", user=ALICE, channel=GENERAL)
    inc = await bot.wait_provisioned(1)
    assert inc.channel_id == orphan.id
    assert [c.name for c in bot.fake.channels.values() if c.name.startswith("inc-1")] == [
        "inc-1-lost-answer"
    ]
    # Someone else's channel of that name is never taken.
    bot.fake.add_channel("inc-2-not-ours", members=[BOB])
    await bot.ask("declare sev2 Not ours", user=ALICE, channel=GENERAL)
    second = await bot.wait_provisioned(2)
    assert second.channel_name == "inc-2-not-ours-2"


async def test_an_action_that_still_fails_tells_the_person(bot: Bot) -> None:
    inc = await declared(bot)
    bot.fake.fail("chat.postMessage", error="restricted_action", times=5)
    [told] = await bot.ask("update Cannot post", user=ALICE, channel=channel_of(inc))
    assert "Slack refused" in told["text"] and "restricted_action" in told["text"]
    # The update is stored (nothing is lost); a later repair posts it.
    [update] = await entries(bot, inc, "update")
    assert update.text == "Cannot post"


# --- injection ------------------------------------------------------------------------

NASTY = "<!channel> <!here> <@U0BOB> <#C0GENERAL> <http://x.example|click> *bold* # Heading"
# As Slack delivers it when typed: entities for angle brackets.
NASTY_TYPED = NASTY.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
LIVE = ("<!channel>", "<!here>", "<@U0BOB>", "<#C0GENERAL>", "<http://x.example")


def markup_of(message: dict[str, Any]) -> str:
    """Everything Slack would parse as markup in a message: text and mrkdwn objects."""
    text: str = message.get("text", "")
    return text + "\n" + texts_of(message.get("blocks", []), kinds=("mrkdwn",))


async def test_peoples_text_never_becomes_a_mention_or_link(start_bot: StartBot) -> None:
    bot = await start_bot(
        announcements_channel="C0ANNOUNCE",
        reminder_interval_minutes=0.01,
        reminder_sync_seconds=0.2,
    )
    bot.fake.add_channel("incidents", id="C0ANNOUNCE", members=["UBOT"])
    await bot.ask(f"declare sev2 {NASTY_TYPED}", user=ALICE, channel=GENERAL)
    inc = await bot.wait_provisioned(1)
    assert inc.title == NASTY
    ch = channel_of(inc)
    await bot.ask(f"update {NASTY_TYPED}", user=ALICE, channel=ch)
    await bot.ask(f"note {NASTY_TYPED}", user=ALICE, channel=ch)
    await bot.ask(f"action {NASTY_TYPED}", user=ALICE, channel=ch)
    await until(
        lambda: any("needs a status update" in m["text"] for m in bot.fake.messages(ch)),
        message="a reminder",
    )
    await bot.ask(f"resolve {NASTY_TYPED}", user=ALICE, channel=ch)
    await bot.ask("postmortem", user=ALICE, channel=ch)

    surfaces = [markup_of(m) for m in bot.fake.messages(ch, include_system=False)]
    surfaces += [markup_of(m) for m in bot.fake.messages("C0ANNOUNCE", include_system=False)]
    surfaces += [markup_of(card_of(bot, inc)), bot.fake.channels[ch].topic["value"]]
    surfaces += [r.body.get("text", "") for r in bot.fake.responses]
    for surface in surfaces:
        for live in LIVE:
            assert live not in surface, (live, surface)
    [draft] = uploaded(bot)
    assert "](http://x.example)" not in draft  # no Markdown link made from typed text
    assert not any(line.startswith("# Heading") for line in draft.splitlines())
    assert "<!channel>" not in draft and "<script" not in draft


# --- random input ---------------------------------------------------------------------

SUBCOMMANDS = [
    "", "help", "declare", "declare sev1", "severity", "sev", "commander", "comms", "role",
    "update", "status", "note", "action", "resolve", "reopen", "postmortem", "list", "zzz",
]  # fmt: skip


def random_text(rng: random.Random) -> str:
    size = rng.choice([0, 1, 5, 40, 300, 3000, 10_000])
    pools = [
        (0x20, 0x7E),
        (0xA0, 0x24F),
        (0x370, 0x3FF),
        (0x400, 0x4FF),
        (0x590, 0x6FF),
        (0x3040, 0x30FF),
        (0x4E00, 0x9FFF),
        (0x1F300, 0x1FAFF),
        (0x0, 0x1F),
        (0x200B, 0x202E),
    ]
    out = []
    for _ in range(size):
        lo, hi = rng.choice(pools)
        out.append(chr(rng.randint(lo, hi)))
    text = "".join(out)
    for token in ("<@U0BOB|bob>", "&lt;", "<!channel>", "@here", "me", "sev1", "\n"):
        if rng.random() < 0.1:
            text += " " + token
    return text


async def test_random_command_text_always_gets_a_prompt_answer(bot: Bot) -> None:
    inc = await declared(bot)
    rng = random.Random(20261123)
    for i in range(120):
        text = f"{rng.choice(SUBCOMMANDS)} {random_text(rng)}".strip()
        channel = channel_of(inc) if i % 2 else GENERAL
        reply = await bot.slack.command(text, user=ALICE, channel=channel)
        assert reply.status == 200, text[:200]
        assert reply.elapsed < 3, (reply.elapsed, text[:200])
        assert "Traceback" not in reply.text and "Error:" not in reply.text
    await bot.settled(timeout=60)
    for response in bot.fake.responses:
        assert "Traceback" not in str(response.body)
        assert "went wrong" not in str(response.body), response.body


# --- secrets ----------------------------------------------------------------------------


async def test_web_api_bodies_are_only_written_out_at_debug(
    bot: Bot, caplog: pytest.LogCaptureFixture
) -> None:
    # Every logger open, yet at LOG_LEVEL=INFO slack_sdk is not asked to turn each request
    # and response (a page of history is a thousand messages) into a debug line.
    caplog.set_level(logging.DEBUG)
    await bot.ask("declare sev2 Quiet client", user=ALICE, channel=GENERAL)
    await bot.wait_provisioned(1)
    assert bot.fake.calls
    written = [r.getMessage() for r in caplog.records if r.name.startswith("slack_sdk.web.")]
    assert not [m for m in written if "Received the following response" in m]
    assert not [m for m in written if "Sending a request" in m]


async def test_no_secret_in_any_log_line_during_a_full_incident(
    start_bot: StartBot, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    # LOG_LEVEL=DEBUG: slack_sdk writes every request and response into its debug lines.
    bot = await start_bot(log_level="DEBUG")
    await bot.ask("declare sev1 Logged incident", user=ALICE, channel=GENERAL)
    inc = await bot.wait_provisioned(1)
    await bot.ask("update Watching", user=ALICE, channel=channel_of(inc))
    await bot.ask("commander <@U0BOB|bob>", user=ALICE, channel=channel_of(inc))
    await bot.ask("resolve Done", user=ALICE, channel=channel_of(inc))
    await bot.ask("postmortem", user=ALICE, channel=channel_of(inc))
    await bot.slack.raw(b"command=/incident&text=help", {"X-Slack-Signature": "v0=bad"})
    logged = "\n".join(f"{r.getMessage()} {r.exc_text or ''} {r.args!r}" for r in caplog.records)
    # DEBUG really was on, down to the Web API's bodies.
    assert "Received the following response" in logged
    assert "conversations.create" in logged
    for secret in (BOT_TOKEN, SIGNING_SECRET):
        assert secret not in logged
    [draft] = uploaded(bot)
    assert BOT_TOKEN not in draft and SIGNING_SECRET not in draft
