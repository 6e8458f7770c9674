"""Help, list, bad input and Slack's 3-second budget, through the real app over HTTP."""

from __future__ import annotations

import aiohttp
import pytest

from bot.fakeslack import Reply
from tests.support import (
    ALICE,
    BOB,
    CAROL,
    TRANSPORTS,
    Bot,
    card_of,
    channel_of,
    json_of,
    texts_of,
    until,
)

SUBCOMMANDS_IN_HELP = ["declare", "list", "help"]


def ack_text(reply: Reply) -> str:
    """What the person sees of an ack: Bolt answers plain text, or JSON with blocks."""
    if reply.json is None:
        return reply.text
    text: str = reply.json.get("text", "")
    return text + "\n" + texts_of(reply.json.get("blocks", []))


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_help_is_private_and_lists_subcommands(bot: Bot) -> None:
    for text in ("", "help", "  HELP  "):
        reply = await bot.slack.command(text, user=ALICE)
        assert reply.status == 200
        assert json_of(reply).get("response_type", "ephemeral") == "ephemeral"
        shown = ack_text(reply)
        for sub in SUBCOMMANDS_IN_HELP:
            assert f"/incident {sub}" in shown
        assert "SEV1" in shown


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_unknown_subcommand_answers_with_help_and_changes_nothing(bot: Bot) -> None:
    reply = await bot.slack.command("frobnicate the <!channel>", user=ALICE)
    shown = ack_text(reply)
    assert "`frobnicate` is not an incident command" in shown
    assert "/incident declare" in shown
    await bot.settled()
    assert await bot.incidents() == []
    # Nothing but start-up (who the bot is; with Socket Mode, its connection).
    start_up = {"auth.test", "apps.connections.open"}
    assert [c.method for c in bot.fake.calls if c.method not in start_up] == []


async def test_unknown_severity_is_refused(bot: Bot) -> None:
    reply = await bot.slack.command("declare sev9 Everything is down", user=ALICE)
    shown = ack_text(reply)
    assert "`sev9` is not a severity" in shown and "SEV1" in shown and "SEV4" in shown
    await bot.settled()
    assert await bot.incidents() == []


async def test_severity_without_title_is_refused(bot: Bot) -> None:
    reply = await bot.slack.command("declare sev1   ", user=ALICE)
    assert "needs a title" in ack_text(reply)
    await bot.settled()
    assert await bot.incidents() == []
    assert bot.fake.calls_to("views.open") == []


async def test_five_thousand_character_title_is_refused(bot: Bot) -> None:
    reply = await bot.slack.command("declare " + "x" * 5000, user=ALICE)
    assert reply.status == 200
    assert "5,000 characters" in ack_text(reply)
    await bot.settled()
    assert await bot.incidents() == []
    assert bot.fake.calls_to("conversations.create") == []


async def test_list_shows_open_incidents_and_hides_private_from_outsiders(bot: Bot) -> None:
    await bot.slack.command("list", user=ALICE)
    await until(lambda: bot.fake.responses, message="empty list answer")
    assert "No open incidents" in bot.fake.responses[-1].body["text"]

    await bot.slack.command("declare sev1 Checkout down", user=ALICE)
    await bot.wait_provisioned(1)
    await bot.slack.command("declare", user=BOB)
    view = await bot.fake.wait_for(lambda: next(iter(bot.fake.views.values()), None))
    await bot.slack.submit_view(
        view["id"], user=BOB, inputs={"title": "Leaked key", "private": ["private"]}
    )
    await bot.wait_provisioned(2)

    async def listing(user: str) -> str:
        before = len(bot.fake.responses)
        reply = await bot.slack.command("list", user=user)
        assert reply.status == 200
        await until(lambda: len(bot.fake.responses) > before, message="list answer")
        answer = bot.fake.responses[-1].body
        assert answer.get("response_type") == "ephemeral"
        text: str = answer["text"]
        return text + texts_of(answer.get("blocks", []))

    inc1, inc2 = await bot.incidents()
    for_carol = await listing(CAROL)
    assert "INC-1" in for_carol and f"<#{inc1.channel_id}>" in for_carol
    assert "INC-2" not in for_carol and "Leaked key" not in for_carol
    for_bob = await listing(BOB)
    assert "INC-1" in for_bob and "INC-2" in for_bob and f"<#{inc2.channel_id}>" in for_bob


async def test_titles_are_shown_as_text_not_mentions(bot: Bot) -> None:
    # What Slack sends for a typed "@channel <!here> @bob <link> *bold*": mentions as
    # tokens, literal angle brackets as entities.
    await bot.slack.command(
        "declare <!channel> &lt;!here&gt; <@U0BOB|bob> <http://evil|click> *bold*", user=ALICE
    )
    inc = await bot.wait_provisioned(1)
    assert inc.title == "@channel <!here> @bob click (http://evil) *bold*"
    card = card_of(bot, inc)
    # Where Slack reads markup (message text, mrkdwn, the topic) nothing is live...
    marked_up = (
        card["text"]
        + texts_of(card["blocks"], kinds=("mrkdwn",))
        + bot.fake.channels[channel_of(inc)].topic["value"]
    )
    for markup in ("<!channel>", "<!here>", "<@U0BOB", "<http://evil"):
        assert markup not in marked_up
    assert "&lt;!here&gt;" in card["text"]
    assert "@channel" not in card["text"]  # a word joiner keeps it from linking
    assert "*bold*" not in card["text"]
    # ...and plain text shows it exactly as typed.
    header = card["blocks"][0]["text"]
    assert header["type"] == "plain_text"
    assert header["text"] == f"INC-1 · {inc.title}"


async def test_slash_command_acked_within_three_seconds_when_slack_is_slow(bot: Bot) -> None:
    bot.fake.delay = 2.0  # every Web API answer takes 2 s
    reply = await bot.slack.command("declare sev1 Slow Slack", user=ALICE)
    assert reply.status == 200
    # Any Web API call before the ack would take 2 s; the ack comes well within 3 s.
    assert reply.elapsed < 2.0, reply.elapsed
    inc = await bot.wait_provisioned(1, timeout=30)
    assert inc.channel_name == "inc-1-slow-slack"

    # The form opens too: the trigger is used after the ack, within its 3 s life.
    reply = await bot.slack.command("declare", user=ALICE)
    assert reply.elapsed < 2.0, reply.elapsed
    await bot.fake.wait_for(lambda: bot.fake.views, timeout=10, message="declare modal")
    assert all(c.ok for c in bot.fake.calls_to("views.open"))


async def test_expired_trigger_tells_the_person(bot: Bot) -> None:
    bot.fake.set_delay("views.open", 0)
    bot.fake.fail("views.open", error="expired_trigger_id")
    await bot.slack.command("declare", user=ALICE)
    await until(lambda: bot.fake.responses, message="answer")
    assert "took too long to open the form" in bot.fake.responses[-1].body["text"]


async def test_healthz(bot: Bot) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.get(bot.url.replace("/slack/events", "/healthz")) as resp,
    ):
        assert resp.status == 200
        assert (await resp.json())["ok"] is True
