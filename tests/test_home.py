"""The App Home: what each viewer may see, refreshed when incidents change, bounded in bursts;
its Declare button and follow-up buttons."""

from __future__ import annotations

from typing import Any

import pytest

from bot.model.tables import FollowUp, Incident
from tests.support import (
    ALICE,
    BOB,
    CAROL,
    GENERAL,
    TRANSPORTS,
    Bot,
    StartBot,
    channel_of,
    texts_of,
    until,
)


def home_of(bot: Bot, user: str) -> dict[str, Any] | None:
    view_id = bot.fake.home_views.get(user)
    return bot.fake.views[view_id] if view_id else None


def home_text(bot: Bot, user: str) -> str:
    home = home_of(bot, user)
    assert home is not None, f"no Home published for {user}"
    return texts_of(home["blocks"])


def publishes(bot: Bot, user: str) -> int:
    return sum(1 for c in bot.fake.calls_to("views.publish") if c.args.get("user_id") == user)


async def open_home(bot: Bot, user: str) -> None:
    """Slack's app_home_opened event, as sent for the Home tab (no view on a first open)."""
    before = publishes(bot, user)
    reply = await bot.slack.event(
        {"type": "app_home_opened", "user": user, "channel": f"D0{user[2:]}", "tab": "home"}
    )
    assert reply.status == 200
    await until(lambda: publishes(bot, user) > before, message=f"{user}'s Home published")
    await bot.settled()


async def publishes_done(bot: Bot) -> None:
    """Every publish the bot has coming is done: those waiting for their person's
    `home_refresh_seconds` to pass start now rather than when it has."""
    await bot.settled()
    bot.app.home.publish_waiting()
    await bot.settled()


async def declare_private(bot: Bot, title: str) -> None:
    await bot.slack.command("declare", user=ALICE, channel=GENERAL)
    views = await until(
        lambda: [v for v in bot.fake.views.values() if v["callback_id"] == "declare"],
        message="the declare form",
    )
    await bot.slack.submit_view(
        views[-1]["id"],
        user=ALICE,
        inputs={"title": title, "severity": "SEV2", "private": ["private"]},
    )
    bot.fake.views.pop(views[-1]["id"])


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_each_viewer_sees_what_they_may_and_changes_follow(start_bot: StartBot) -> None:
    # Published again at most once a minute: each change's publish waits for the test
    # (`publishes_done`).
    bot = await start_bot(home_refresh_seconds=60)
    await bot.slack.command("declare sev3 Checkout latency", user=BOB, channel=GENERAL)
    public = await bot.wait_provisioned(1)
    await declare_private(bot, "Payroll data exposure")
    private = await bot.wait_provisioned(2)
    await bot.settled()
    assert private.private

    await open_home(bot, ALICE)
    await open_home(bot, CAROL)
    alice = home_text(bot, ALICE)
    carol = home_text(bot, CAROL)
    # Alice commands the private one: it comes first, under her incidents.
    assert alice.index("Your incidents") < alice.index("INC-2") < alice.index("Open incidents")
    assert alice.index("Open incidents") < alice.index("INC-1")
    assert "You are the Incident Commander" in alice
    assert "INC-1" in carol and "Checkout latency" in carol
    assert "INC-2" not in carol and "Payroll" not in carol
    home = home_of(bot, CAROL)
    assert home is not None
    declare = [
        el
        for block in home["blocks"]
        if block["type"] == "actions"
        for el in block["elements"]
        if el["action_id"] == "home_declare"
    ]
    assert declare and declare[0]["text"]["text"] == "Declare incident"

    # A change to the public incident refreshes both Homes; to the private one, only
    # Alice's (Carol's is not even published again).
    carol_before = publishes(bot, CAROL)
    await bot.ask("severity sev1", user=BOB, channel=channel_of(public))
    await publishes_done(bot)
    assert "SEV1" in home_text(bot, CAROL)
    assert "SEV1" in home_text(bot, ALICE)
    carol_after = publishes(bot, CAROL)
    assert carol_after > carol_before
    await bot.ask("update Containment in progress", user=ALICE, channel=channel_of(private))
    await publishes_done(bot)
    assert publishes(bot, CAROL) == carol_after
    assert "INC-2" not in home_text(bot, CAROL)

    # Resolved incidents are listed with their postmortem state.
    await bot.ask("resolve Rolled back", user=BOB, channel=channel_of(public))
    await publishes_done(bot)
    assert "Recently resolved" in home_text(bot, CAROL)
    assert "no postmortem yet" in home_text(bot, CAROL)
    await bot.ask("postmortem", user=BOB, channel=channel_of(public))
    await publishes_done(bot)
    assert "postmortem draft ready" in home_text(bot, CAROL)


async def test_a_burst_of_changes_publishes_each_home_a_bounded_number_of_times(
    start_bot: StartBot,
) -> None:
    bot = await start_bot(home_refresh_seconds=60)
    await bot.slack.command("declare sev3 Flapping", user=BOB, channel=GENERAL)
    inc = await bot.wait_provisioned(1)
    await open_home(bot, CAROL)
    before = publishes(bot, CAROL)
    for text in ("sev2", "sev1", "sev2", "sev3", "sev1"):
        await bot.slack.command(f"severity {text}", user=BOB, channel=channel_of(inc))
    await bot.settled()
    # The commands ran side by side: whichever was stored last is the severity now.
    [stored] = await bot.incidents()
    shown = f"{stored.severity} ·"
    # Five changes within the minute: the Home was published at most twice (at once, then
    # once more with the latest state), and shows the stored severity.
    await publishes_done(bot)
    assert 1 <= publishes(bot, CAROL) - before <= 2
    assert shown in home_text(bot, CAROL)


async def test_the_declare_button_opens_the_form(bot: Bot) -> None:
    await open_home(bot, CAROL)
    home = home_of(bot, CAROL)
    assert home is not None
    await bot.slack.view_block_action(user=CAROL, view_id=home["id"], action_id="home_declare")
    form = await until(
        lambda: [v for v in bot.fake.views.values() if v["callback_id"] == "declare"],
        message="the declare form",
    )
    await bot.slack.submit_view(
        form[-1]["id"], user=CAROL, inputs={"title": "From the Home", "severity": "SEV4"}
    )
    inc = await bot.wait_provisioned(1)
    assert inc.declared_by == CAROL and inc.title == "From the Home"


async def test_follow_ups_are_taken_and_done_from_the_home(start_bot: StartBot) -> None:
    bot = await start_bot(home_refresh_seconds=0.1)
    await bot.slack.command("declare sev3 Cache stampede", user=ALICE, channel=GENERAL)
    inc = await bot.wait_provisioned(1)
    await bot.ask("action Add jitter to cache expiry", user=ALICE, channel=channel_of(inc))
    await bot.ask(f"action Load test the cache <@{BOB}>", user=ALICE, channel=channel_of(inc))
    await open_home(bot, CAROL)
    carol = home_text(bot, CAROL)
    assert "Follow-ups without an owner" in carol and "Add jitter to cache expiry" in carol
    # Bob's follow-up is his, not listed for Carol.
    assert "Load test the cache" not in carol

    home = home_of(bot, CAROL)
    assert home is not None
    await bot.slack.view_block_action(
        user=CAROL, view_id=home["id"], action_id="home_follow_up_take"
    )
    await until(lambda: "Your follow-ups" in home_text(bot, CAROL), message="taken")
    await bot.settled()
    carols: list[tuple[FollowUp, Incident] | None] = [
        f for f in await bot.store.open_follow_ups("T0TEST") if f[0].owner == CAROL
    ]
    [item] = carols or [None]
    assert item is not None
    # Nobody else is offered it any more.
    await open_home(bot, BOB)
    bob_home = home_of(bot, BOB)
    assert bob_home is not None
    assert "Add jitter" not in home_text(bot, BOB)

    home = home_of(bot, CAROL)
    assert home is not None
    # A Done click by someone else (a stale or borrowed Home) changes nothing, and says why.
    await bot.slack.view_block_action(user=BOB, view_id=home["id"], action_id="home_follow_up_done")
    await bot.settled()
    dm = bot.fake.dm_channel(BOB)  # from the Home, answers come as a DM
    assert dm is not None
    assert any("to mark done" in m.get("text", "") for m in bot.fake.messages(dm.id))
    assert [f for f, _ in await bot.store.open_follow_ups("T0TEST") if f.owner == CAROL]
    await bot.slack.view_block_action(
        user=CAROL, view_id=home["id"], action_id="home_follow_up_done"
    )
    await until(lambda: "Your follow-ups" not in home_text(bot, CAROL), message="done")
    await bot.settled()
    done = [f for f, _ in await bot.store.open_follow_ups("T0TEST") if f.owner == CAROL]
    assert done == []
    [follow_up] = [f for _, _, fs in await bot.store.history(None) for f in fs if f.owner == CAROL]
    assert follow_up.done_by == CAROL and follow_up.done_at is not None
    # The postmortem ticks it off.
    await bot.ask("postmortem", user=ALICE, channel=channel_of(inc))
    draft = await bot.store.latest_postmortem(inc.pk)
    assert draft is not None
    assert "- [x] Add jitter to cache expiry (owner: Carol Chen)" in draft.markdown
    assert "- [ ] Load test the cache (owner: Bob Baker)" in draft.markdown
