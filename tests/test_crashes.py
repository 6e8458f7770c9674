"""Crashes: the real bot killed with SIGKILL mid-way, then started again on the same database.

Each test holds one Slack call in the fake (a delay) so the process is stuck at a chosen
point, kills it there, and starts a new process. The request the dead process had in flight
never reaches Slack: the fake drops it when its delay is over. The new process must finish
what was recorded, once: nothing stored is lost and nothing is done twice.

The processes run with a one-second provisioning lease (tests/botprocess.py), so a dead
process's work is taken over within seconds.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.fakeslack import FakeSlack
from bot.model.tables import Incident, Postmortem, StatusUpdate, TimelineEntry
from bot.outbound.store import Store
from tests.botprocess import BotProcess
from tests.support import ALICE, BOB, BOT_TOKEN, CAROL, GENERAL, SIGNING_SECRET, until

JsonDict = dict[str, Any]

# How long the fake holds a call; the kill comes well within it. Short, because the fake
# finishes a held request after its caller is gone (here: drops it), and waits for it on exit.
HOLD_SECONDS = 1.5
# How long a new process may take to finish what the killed one left (a few leases).
RECOVERY_SECONDS = 8.0


class Crashes:
    """Bot processes on one database and one fake Slack, and a look at what they stored."""

    def __init__(self, fake: FakeSlack, database_url: str, workdir: Path, store: Store):
        self.fake = fake
        self.database_url = database_url
        self.workdir = workdir
        self.store = store
        self.processes: list[BotProcess] = []

    async def start(self, **env: str) -> BotProcess:
        bot = BotProcess(
            self.fake,
            self.database_url,
            bot_token=BOT_TOKEN,
            signing_secret=SIGNING_SECRET,
            workdir=self.workdir,
            env=env,
        )
        self.processes.append(bot)
        return await bot.start()

    def logs(self) -> str:
        return "\n".join(p.describe() for p in self.processes)

    async def kill_holding(self, bot: BotProcess, method: str) -> None:
        """SIGKILL `bot` while the fake holds its `method` request; Slack never sees it."""
        # The held request leaves the process right after the step the test waited for.
        await until(
            lambda: self.fake.holding(method), timeout=10, message=f"{method} held by the fake"
        )
        seen = len(self.fake.calls)
        await bot.kill()
        self.fake.fail(method, drop=True)

        def cut_off() -> bool:
            return any(
                c.method == method and c.error == "connection_dropped"
                for c in self.fake.calls[seen:]
            )

        await until(cut_off, timeout=HOLD_SECONDS + 3, message=f"the held {method} cut off")
        self.fake.clear_faults()

    # --- the database ------------------------------------------------------------------------

    async def incident(self, number: int = 1) -> Incident | None:
        return await self.store.incident_by_number(None, number)

    async def provisioned(self, number: int = 1, timeout: float = RECOVERY_SECONDS) -> Incident:
        async def done() -> Incident | None:
            inc = await self.incident(number)
            return inc if inc is not None and inc.provisioned else None

        return await until(done, timeout=timeout, message=f"INC-{number} provisioned")

    async def rows(self, table: Any, inc: Incident) -> list[Any]:
        assert inc.id is not None
        async with self.store.sessions() as s:
            return await self.store.all_of(s, table, inc.id)

    async def entries(self, inc: Incident, kind: str) -> list[TimelineEntry]:
        assert inc.id is not None
        return [e for e in await self.store.timeline(inc.id) if e.kind == kind]

    # --- what Slack shows --------------------------------------------------------------------

    def incident_channels(self, number: int = 1) -> list[str]:
        prefix = f"inc-{number}-"
        return [c.id for c in self.fake.channels.values() if c.name.startswith(prefix)]

    def cards(self, channel: str) -> list[JsonDict]:
        return [m for m in self.fake.messages(channel, include_system=False) if is_card(m)]


async def repair_passes(bot: BotProcess) -> int:
    """How many repair passes the process has run to their end, as its /metrics tells."""
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{bot.port}/metrics") as response,
    ):
        assert response.status == 200
        text = await response.text()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "incident_bot_passes_total" and sample.labels == {"pass": "repair"}:
                return int(sample.value)
    return 0


async def repair_passes_reach(bot: BotProcess, n: int) -> bool:
    return await repair_passes(bot) >= n


def is_card(message: JsonDict) -> bool:
    return "card_severity" in json.dumps(message.get("blocks") or [])


def reminders(fake: FakeSlack, channel: str) -> list[JsonDict]:
    return [
        m
        for m in fake.messages(channel, include_system=False)
        if "needs a status update" in m.get("text", "")
    ]


def shared_files(fake: FakeSlack, channel: str) -> list[JsonDict]:
    return [f for m in fake.messages(channel, include_system=False) for f in m.get("files", [])]


@pytest.fixture
async def crashes(fake: FakeSlack, database_url: str, tmp_path: Path) -> AsyncIterator[Crashes]:
    store = Store(database_url)
    harness = Crashes(fake, database_url, tmp_path, store)
    try:
        yield harness
    finally:
        for bot in harness.processes:
            await bot.close()
        await store.close()
        # Shown by pytest when the test failed.
        print(harness.logs())


async def declare(bot: BotProcess, title: str = "Checkout is down") -> None:
    reply = await bot.slack.command(f"declare sev1 {title}", user=ALICE, channel=GENERAL)
    assert reply.status == 200, reply


async def declared(crashes: Crashes, bot: BotProcess) -> Incident:
    await declare(bot)
    inc = await crashes.provisioned(timeout=10)
    assert inc.channel_id is not None
    return inc


# --- 1. declaration, after the card and before the pin -----------------------------------------


async def test_declaration_killed_before_the_pin_is_completed_by_the_next_process(
    crashes: Crashes,
) -> None:
    fake = crashes.fake
    bot = await crashes.start()
    fake.set_delay("pins.add", HOLD_SECONDS)
    await declare(bot)

    async def card_stored() -> Incident | None:
        inc = await crashes.incident()
        return inc if inc is not None and inc.card_ts else None

    posted = await until(card_stored, timeout=10, message="card posted and stored")
    assert posted.channel_id is not None
    assert [m["ts"] for m in crashes.cards(posted.channel_id)] == [posted.card_ts]
    await crashes.kill_holding(bot, "pins.add")

    inc = await crashes.incident()
    assert inc is not None and inc.channel_id is not None
    assert not inc.provisioned and not inc.card_pinned
    assert fake.pins(inc.channel_id) == []

    await crashes.start()
    done = await crashes.provisioned()
    assert done.card_pinned
    assert crashes.incident_channels() == [inc.channel_id], "no second (-2) channel"
    assert done.channel_name == "inc-1-checkout-is-down"
    [card] = crashes.cards(inc.channel_id)
    assert card["ts"] == inc.card_ts == done.card_ts
    assert fake.pins(inc.channel_id) == [card["ts"]]


# --- 2. declaration, before the channel --------------------------------------------------------


async def test_declaration_killed_before_the_channel_exists_creates_one_channel(
    crashes: Crashes,
) -> None:
    fake = crashes.fake
    bot = await crashes.start()
    fake.set_delay("conversations.create", HOLD_SECONDS)
    await declare(bot)
    await until(crashes.incident, timeout=10, message="incident recorded")
    await crashes.kill_holding(bot, "conversations.create")

    inc = await crashes.incident()
    assert inc is not None and inc.channel_id is None and not inc.provisioned
    assert crashes.incident_channels() == []

    await crashes.start()
    done = await crashes.provisioned()
    assert done.channel_id is not None
    assert crashes.incident_channels() == [done.channel_id]
    assert done.channel_name == "inc-1-checkout-is-down"
    assert ALICE in fake.channels[done.channel_id].members
    [card] = crashes.cards(done.channel_id)
    assert card["ts"] == done.card_ts
    assert fake.pins(done.channel_id) == [card["ts"]]
    assert len(fake.calls_to("conversations.create")) == 2  # the cut-off one and the retry


# --- 3. a status update, stored but not yet posted ----------------------------------------------


async def test_update_killed_while_posting_is_posted_once_by_the_next_process(
    crashes: Crashes,
) -> None:
    fake = crashes.fake
    bot = await crashes.start()
    inc = await declared(crashes, bot)
    channel = inc.channel_id
    assert channel is not None
    fake.set_delay("chat.postMessage", HOLD_SECONDS)
    reply = await bot.slack.command("update Rolled back the deploy", user=ALICE, channel=channel)
    assert reply.status == 200, reply

    async def stored() -> list[StatusUpdate]:
        return await crashes.rows(StatusUpdate, inc)

    await until(stored, timeout=10, message="status update stored")
    await crashes.kill_holding(bot, "chat.postMessage")

    def posted() -> list[JsonDict]:
        return [
            m
            for m in fake.messages(channel, include_system=False)
            if m.get("text", "").startswith("INC-1 update (")
        ]

    assert posted() == []
    again = await crashes.start()
    await until(posted, timeout=RECOVERY_SECONDS, message="the update posted after the restart")
    # A whole repair pass after the one that posted it has had its chance to post it again:
    # at most two passes were under way when it was seen (the one at start-up, and one on
    # the schedule), so the third to end from now started after it.
    seen = await repair_passes(again)
    await until(
        lambda: repair_passes_reach(again, seen + 3),
        timeout=RECOVERY_SECONDS,
        message="three more repair passes",
    )
    [message] = posted()
    assert "Rolled back the deploy" in message["text"]

    [update] = await crashes.rows(StatusUpdate, inc)
    assert update.summary == "Rolled back the deploy"
    assert update.message_ts == message["ts"]
    [entry] = await crashes.entries(inc, "update")
    assert entry.data is not None and entry.data["update_id"] == update.id
    after = await crashes.incident()
    assert after is not None and after.last_update_at == update.posted_at


# --- 4. the postmortem, uploaded but not shared ------------------------------------------------


async def test_postmortem_killed_before_sharing_keeps_one_version(crashes: Crashes) -> None:
    fake = crashes.fake
    bot = await crashes.start()
    inc = await declared(crashes, bot)
    channel = inc.channel_id
    assert channel is not None
    fake.post_as_user(channel, BOB, "Error rate is at 40% on checkout")
    fake.post_as_user(channel, ALICE, "Rolling back the 14:02 deploy")
    fake.post_as_user(channel, CAROL, "Errors are back to normal")
    fake.set_delay("files.completeUploadExternal", HOLD_SECONDS)
    reply = await bot.slack.command("postmortem", user=ALICE, channel=channel)
    assert reply.status == 200, reply

    await until(lambda: fake.file_contents, timeout=10, message="draft uploaded")
    await crashes.kill_holding(bot, "files.completeUploadExternal")
    assert shared_files(fake, channel) == []
    [stored] = await crashes.rows(Postmortem, inc)
    assert stored.version == 1 and stored.file_id is None

    again = await crashes.start()
    reply = await again.slack.command("postmortem", user=ALICE, channel=channel)
    assert reply.status == 200, reply

    async def shared() -> list[Postmortem]:
        return [p for p in await crashes.rows(Postmortem, inc) if p.file_id]

    await until(shared, timeout=RECOVERY_SECONDS, message="the draft shared after the restart")
    drafts = await crashes.rows(Postmortem, inc)
    assert [d.version for d in drafts] == [1], "one version, not a second copy of the same"
    [file] = shared_files(fake, channel)
    assert file["name"] == "INC-1-postmortem-v1.md"
    assert file["id"] == drafts[0].file_id
    assert fake.file_contents[file["id"]].decode() == drafts[0].markdown
    assert "Rolling back the 14:02 deploy" in drafts[0].markdown


# --- 5. reminders across a crash ---------------------------------------------------------------

INTERVAL_MINUTES = 0.02  # 1.2 seconds


async def test_reminders_go_on_after_a_crash_and_none_is_doubled(crashes: Crashes) -> None:
    fake = crashes.fake
    interval = timedelta(minutes=INTERVAL_MINUTES)
    env = {"REMINDER_INTERVAL_MINUTES": str(INTERVAL_MINUTES)}
    bot = await crashes.start(**env)
    inc = await declared(crashes, bot)
    channel = inc.channel_id
    assert channel is not None

    await until(lambda: reminders(fake, channel), timeout=10, message="the first reminder")
    await bot.kill()
    killed = len(reminders(fake, channel))

    again = await crashes.start(**env)
    await until(
        lambda: len(reminders(fake, channel)) >= killed + 3,
        timeout=RECOVERY_SECONDS,
        message="three more reminders after the restart",
    )

    # Reminders go on meanwhile: wait for a moment when none is between its claim and its
    # timeline entry. A reminder posted twice would never let the counts meet.
    async def all_recorded() -> bool:
        current = await crashes.incident()
        if current is None or current.reminder_sending_since is not None:
            return False
        return len(reminders(fake, channel)) == len(await crashes.entries(inc, "reminder"))

    await until(all_recorded, timeout=RECOVERY_SECONDS, message="every reminder recorded")
    entries = await crashes.entries(inc, "reminder")
    sent = reminders(fake, channel)[: len(entries)]
    dues = [e.data["due"] for e in entries if e.data]
    assert len(sent) == len(entries) == len(set(dues)), (len(sent), dues)

    # Each due time is an interval after the previous reminder was claimed; the entries'
    # own times are when the message was posted.
    due_times = [datetime.fromisoformat(due) for due in dues]
    for earlier, later in itertools.pairwise(due_times):
        assert later - earlier >= interval, due_times
    claimed = [e.happened_at for e in entries]
    times = [float(m["ts"]) for m in sent]
    for earlier_ts, later_ts in itertools.pairwise(times):
        assert later_ts - earlier_ts > interval.total_seconds() / 2, f"doubled: {times}"
    assert all(datetime.fromisoformat(due) <= at for due, at in zip(dues, claimed, strict=True)), (
        "a reminder went out before it was due"
    )
    # A deploy after the recovery: the process stops cleanly.
    assert await again.terminate() == 0, again.describe()
