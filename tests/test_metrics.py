"""GET /metrics: Prometheus text whose numbers follow a scripted incident."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.model.tables import Incident
from tests.support import (
    ALICE,
    TRANSPORTS,
    Bot,
    StartBot,
    card_ts_of,
    channel_of,
    declared,
    entries,
    until,
    view_of,
)


async def scrape(bot: Bot) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{bot.app.port}/metrics") as response,
    ):
        assert response.status == 200
        assert response.content_type == "text/plain"
        text = await response.text()
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict[Any, float], name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_metrics_follow_an_incident_from_declaration_to_resolution(
    start_bot: StartBot,
) -> None:
    bot = await start_bot()
    before = await scrape(bot)
    assert value(before, "incident_bot_incidents_declared_total", severity="SEV2") is None

    inc = await declared(bot, "declare sev2 Checkout latency")
    samples = await scrape(bot)
    assert (
        value(samples, "incident_bot_incidents_open", severity="SEV2", status="investigating") == 1
    )
    assert value(samples, "incident_bot_incidents_declared_total", severity="SEV2") == 1
    assert value(samples, "incident_bot_slack_api_calls_total", method="conversations.create") == 1
    assert value(samples, "incident_bot_slack_api_calls_total", method="pins.add") == 1
    assert (value(samples, "incident_bot_slack_api_seconds_count", method="pins.add") or 0) == 1

    await bot.slack.block_action(
        user=ALICE, channel=channel_of(inc), message_ts=card_ts_of(inc), action_id="card_update"
    )
    view = await until(lambda: view_of(bot, "update"), message="the update form")
    await bot.slack.submit_view(
        view["id"], user=ALICE, inputs={"status": "monitoring", "summary": "Rolled back."}
    )
    await until(lambda: _has(bot, inc, "update"), message="the update")
    await bot.settled()
    samples = await scrape(bot)
    # Posted well before it was due.
    assert value(samples, "incident_bot_status_updates_total", timeliness="on_time") == 1
    assert value(samples, "incident_bot_status_updates_total", timeliness="late") == 0
    assert value(samples, "incident_bot_incidents_open", severity="SEV2", status="monitoring") == 1

    await bot.slack.command("resolve Fixed by the rollback", user=ALICE, channel=channel_of(inc))
    await until(lambda: _has(bot, inc, "resolved"), message="resolved")
    await bot.settled()
    samples = await scrape(bot)
    assert value(samples, "incident_bot_incidents_resolved_total", severity="SEV2") == 1
    assert (
        value(samples, "incident_bot_incidents_open", severity="SEV2", status="monitoring") is None
    )
    assert value(samples, "incident_bot_time_to_resolve_seconds_count", severity="SEV2") == 1
    assert (
        value(samples, "incident_bot_time_to_resolve_seconds_bucket", severity="SEV2", le="300.0")
        == 1
    )


async def test_slack_refusals_are_counted_by_method_and_error(start_bot: StartBot) -> None:
    bot = await start_bot()
    bot.fake.fail("conversations.create", error="restricted_action")
    await bot.slack.command("declare sev3 Refused", user=ALICE, channel="C0GENERAL")
    await bot.settled()
    samples = await scrape(bot)
    assert (
        value(
            samples,
            "incident_bot_slack_api_errors_total",
            method="conversations.create",
            error="restricted_action",
        )
        == 1
    )


async def test_periodic_passes_are_counted_as_they_end(bot: Bot) -> None:
    """Each pass the scheduler runs is counted once it has ended, so a pass that stopped
    running shows as a counter that stopped rising."""
    await bot.settled()  # the repair pass at start-up
    samples = await scrape(bot)
    assert value(samples, "incident_bot_passes_total", **{"pass": "repair"}) == 1
    assert value(samples, "incident_bot_passes_total", **{"pass": "nudges"}) is None
    await bot.nudge_pass()
    await bot.repair_pass()
    samples = await scrape(bot)
    assert value(samples, "incident_bot_passes_total", **{"pass": "nudges"}) == 1
    assert value(samples, "incident_bot_passes_total", **{"pass": "repair"}) == 2


async def _has(bot: Bot, inc: Incident, kind: str) -> bool:
    return bool(await entries(bot, inc, kind))
