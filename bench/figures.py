"""The five figures. Each runs the real bot over HTTP against the fake Slack and returns rows.

Every figure runs in a fresh process (see `bench.run`), so one figure's leftovers (memory,
tasks, a busy database) never show up in the next one's numbers.
"""

from __future__ import annotations

import asyncio
import math
import random
import statistics
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy import select

from bench.harness import (
    ALICE,
    BOT_TOKEN,
    GENERAL,
    SIGNING_SECRET,
    CallCounter,
    Database,
    LoopStalls,
    Outcome,
    fake_slack,
    max_rss_mib,
    migrated_store,
    ms,
    percentile,
    person,
    running_bot,
    settings_for,
    wait_until,
)
from bot.app import EVENTS_PATH, BotApp
from bot.postmortem.compile import Postmortems
from bot.postmortem.history import PAGE_LIMIT, fetch_history
from bot.postmortem.render import render
from bot.slack import blocks
from bot.slack.directory import Directory
from bot.store import Incident, RoleAssignment, Store, TimelineEntry
from tests.fakeslack import FakeSlack, SlackSender


@dataclass(frozen=True)
class Sizes:
    """How much work each figure does; `QUICK` is a smoke-sized run."""

    commands: int = 2000  # /incident help, to the bot and to a bare Bolt app each
    declare_acks: int = 2000  # /incident declare <title>, ack time only
    concurrency: int = 20
    declares: int = 10  # sequential declarations timed against a slow Slack
    delay: float = 0.1  # seconds the fake waits before answering each Web API call
    messages: int = 10_000  # top-level messages in the postmortem channel
    threads: int = 300
    long_threads: tuple[int, ...] = (1200, 2400)  # reply counts that need several pages
    compiles: int = 3  # timed repetitions of the postmortem compile
    reminders: int = 2000
    spread: float = 3.0  # seconds over which the reminders fall due
    lead: float = 3.0  # seconds from seeding them to the first due time (the bot starts)
    declarers: int = 20
    incidents: int = 400  # declared by the declarers, per database
    throughput_runs: int = 3  # fresh bot and database each; the median is reported

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Sizes:
        data = dict(data)
        data["long_threads"] = tuple(data.get("long_threads", ()))
        return cls(**data)


FULL = Sizes()
QUICK = Sizes(
    commands=50,
    declare_acks=50,
    concurrency=10,
    declares=2,
    messages=200,
    threads=6,
    long_threads=(1000,),
    compiles=1,
    reminders=20,
    spread=1.0,
    lead=1.0,
    declarers=5,
    incidents=20,
    throughput_runs=1,
)


# ---------------------------------------------------------------------------------------------
# 1. Acknowledgement overhead


def bare_bolt(fake: FakeSlack) -> web.Application:
    """Bolt with nothing of the bot: signature checks on, one listener that only acks,
    served the same way the bot serves (aiohttp, Bolt's aiohttp adapter)."""
    bolt = AsyncApp(
        signing_secret=SIGNING_SECRET,
        # The token is learned once (auth.test on the first request) and cached.
        client=AsyncWebClient(token=BOT_TOKEN, base_url=fake.api_url),
        process_before_response=False,
    )

    @bolt.command("/incident")
    async def incident(ack: AsyncAck) -> None:
        await ack()

    async def events(request: web.Request) -> web.Response:
        response = await bolt.async_dispatch(await to_bolt_request(request))
        return await to_aiohttp_response(response)

    app = web.Application()
    app.router.add_post(EVENTS_PATH, events)
    return app


def cold_postmortems(app: BotApp) -> Postmortems:
    """The bot's postmortem compiler with an empty directory of names."""
    directory = Directory(app.client)
    directory.bot_user_id, directory.bot_id = app.directory.bot_user_id, app.directory.bot_id
    return Postmortems(
        app.settings,
        app.store,
        app.surfaces,
        directory,
        lambda channel: fetch_history(app.client, channel),
    )


async def send_commands(
    sender: SlackSender,
    text: Callable[[int], str],
    count: int,
    concurrency: int,
    *,
    expect: str = "",
    users: Sequence[str] = (ALICE,),
) -> list[float]:
    """`count` slash commands from `concurrency` senders at once; each one's ack time."""
    elapsed: list[float] = []
    numbers = iter(range(count))

    async def sender_loop(worker: int) -> None:
        for i in numbers:
            reply = await sender.command(text(i), user=users[worker % len(users)], channel=GENERAL)
            if reply.status != 200 or expect not in reply.text:
                raise RuntimeError(f"unexpected ack {reply.status}: {reply.text[:200]}")
            elapsed.append(reply.elapsed)

    await asyncio.gather(*(sender_loop(w) for w in range(concurrency)))
    return elapsed


async def ack_overhead(sizes: Sizes, db: Database) -> Outcome:
    out = Outcome()
    figure = "1. Ack overhead"
    conc = sizes.concurrency
    async with fake_slack() as fake, db.open() as url, running_bot(fake, url) as bot:
        runner = web.AppRunner(bare_bolt(fake), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        bare = SlackSender(
            f"http://127.0.0.1:{port}{EVENTS_PATH}", SIGNING_SECRET, fake, timeout=120
        )
        try:
            warm = max(conc, sizes.commands // 10)
            await send_commands(bot.slack, _help, warm, conc)
            await send_commands(bare, _help, warm, conc)
            bot_help: list[float] = []
            bare_help: list[float] = []
            # Alternate halves so drift (GC, caches, the machine) hits both sides alike.
            for half in (sizes.commands // 2, sizes.commands - sizes.commands // 2):
                bot_help += await send_commands(bot.slack, _help, half, conc)
                bare_help += await send_commands(bare, _help, half, conc)

            answered = len(fake.responses)
            started = time.monotonic()
            total = sizes.declare_acks
            async with LoopStalls() as stalls:
                declare_acks = await send_commands(
                    bot.slack,
                    lambda i: f"declare sev3 Ack check {i}",
                    total,
                    conc,
                    expect="Declaring",
                )
                acked = time.monotonic() - started
                await wait_until(
                    lambda: _all(bot.provisioned(), total),
                    within=600,
                    interval=0.1,
                    what="the declarations behind the acks",
                )
                await bot.idle()
            finished = time.monotonic() - started
            # What the declarers were told afterwards, privately.
            told = [r.body for r in fake.responses[answered:] if isinstance(r.body, dict)]
            apologies = sum(1 for b in told if str(b.get("text", "")).startswith(":warning:"))
        finally:
            await bare.close()
            await runner.cleanup()

    def cell(values: list[float]) -> str:
        return f"p50 {ms(percentile(values, 50))} · p99 {ms(percentile(values, 99))}"

    p50 = percentile(bot_help, 50) / percentile(bare_help, 50)
    p99 = percentile(bot_help, 99) / percentile(bare_help, 99)
    out.say(f"/incident help, bot:  {cell(bot_help)} (n={len(bot_help)}, concurrency {conc})")
    out.say(f"/incident help, bare Bolt: {cell(bare_help)} (n={len(bare_help)})")
    out.say(f"/incident declare acks: {cell(declare_acks)} (n={len(declare_acks)})")
    out.say(
        f"the {total} declarations were acked within {acked:.1f} s and all provisioned "
        f"after {finished:.1f} s; {stalls.summary()}"
    )
    out.say(f"declarers told their declaration failed: {apologies} of {total}")
    d50 = percentile(declare_acks, 50) / percentile(bare_help, 50)
    d99 = percentile(declare_acks, 99) / percentile(bare_help, 99)
    out.row(
        figure,
        f"`/incident help` ack, bot vs bare Bolt ({len(bot_help):,} each, {conc} at once)",
        f"bot {cell(bot_help)}; bare {cell(bare_help)}",
        f"ratio p50 ×{p50:.2f}, p99 ×{p99:.2f}",
    )
    out.row(
        figure,
        f"`/incident declare <title>` ack ({len(declare_acks):,}, {conc} at once)",
        cell(declare_acks),
        f"vs bare ack: p50 ×{d50:.2f}, p99 ×{d99:.2f}; acks race the declarations' "
        f"own background work; {apologies} declarers then told it failed",
    )
    return out


def _help(_: int) -> str:
    return "help"


async def _all(count: Awaitable[int], total: int) -> bool:
    return await count >= total


# ---------------------------------------------------------------------------------------------
# 2. Declare critical path


async def declare_critical_path(sizes: Sizes, db: Database) -> Outcome:
    out = Outcome()
    figure = "2. Declare critical path"
    delay = sizes.delay
    to_pin: list[float] = []
    acks: list[float] = []
    calls_made: list[int] = []
    methods: Counter[str] = Counter()
    async with fake_slack() as fake, db.open() as url, running_bot(fake, url) as bot:
        # Warm up connections, caches and the database once, with Slack answering at once.
        await bot.slack.command("declare sev2 Warm-up", user=ALICE, channel=GENERAL)
        await wait_until(lambda: _all(bot.provisioned(), 1), within=30, what="warm-up")
        await bot.idle()
        fake.delay = delay
        for i in range(sizes.declares):
            known = set(fake.channels)
            first_call = len(fake.calls)
            answered = len(fake.responses)
            started = time.monotonic()
            reply = await bot.slack.command(
                f"declare sev2 Critical path {i}", user=ALICE, channel=GENERAL
            )
            acks.append(reply.elapsed)

            def pinned(known: set[str] = known) -> bool:
                return any(ch.pinned for cid, ch in fake.channels.items() if cid not in known)

            await wait_until(pinned, within=60, interval=0.001, what="the card to be pinned")
            to_pin.append(time.monotonic() - started)
            # Then everything else the declaration does, down to telling the declarer.
            await wait_until(
                lambda answered=answered: len(fake.responses) > answered,
                within=60,
                what="the declarer's answer",
            )
            await bot.idle()
            made = fake.calls[first_call:]
            calls_made.append(len(made))
            methods.update(c.method for c in made)
        fake.delay = 0

    median = statistics.median(to_pin)
    trips = median / delay
    per = {m: n / len(to_pin) for m, n in sorted(methods.items())}
    breakdown = ", ".join(f"{m} {n:g}" for m, n in per.items())
    out.say(
        f"slash command to pinned card, Slack answering after {ms(delay)}: median {ms(median)} "
        f"(min {ms(min(to_pin))}, max {ms(max(to_pin))}, n={len(to_pin)})"
    )
    slow = sum(1 for a in acks if a >= delay)
    out.say(
        f"ack: median {ms(statistics.median(acks))}; acks that took a Slack round trip or "
        f"longer: {slow} of {len(acks)}"
    )
    out.say(f"Web API calls per declaration: {breakdown}")
    out.row(
        figure,
        f"slash command → card pinned, Slack answering each call after {ms(delay)} "
        f"(median of {len(to_pin)})",
        f"{ms(median)} = {trips:.2f} round trips in sequence",
        f"ack median {ms(statistics.median(acks))}",
    )
    out.row(
        figure,
        "Web API calls per declaration",
        f"{statistics.median(calls_made):g}",
        breakdown,
    )
    return out


# ---------------------------------------------------------------------------------------------
# 3. Postmortem compile

WORDS = [
    "checkout",
    "latency",
    "rollback",
    "deploy",
    "database",
    "replica",
    "failover",
    "cache",
    "errors",
    "queue",
    "depth",
    "alert",
    "pager",
    "dashboard",
    "region",
    "traffic",
    "timeout",
    "retry",
    "canary",
    "config",
    "flag",
    "restart",
    "node",
    "disk",
    "memory",
    "cpu",
    "saturation",
    "upstream",
    "vendor",
    "incident",
    "mitigated",
    "investigating",
]


def _text(rng: random.Random, people: int) -> str:
    words = [rng.choice(WORDS) for _ in range(rng.randint(4, 30))]
    extra = rng.random()
    if extra < 0.15:
        words.insert(rng.randrange(len(words)), f"<@{person(rng.randrange(people))}>")
    elif extra < 0.25:
        words.append("<https://grafana.example.com/d/abc|dashboard>")
    elif extra < 0.35:
        words.insert(0, "`kubectl rollout undo deploy/checkout`")
    elif extra < 0.40:
        words[0] = f"*{words[0]}*"
    return " ".join(words)


def fill_channel(
    fake: FakeSlack,
    channel_id: str,
    *,
    messages: int,
    threads: int,
    long_threads: Sequence[int],
    people: int,
    seed: int = 7,
) -> dict[str, int]:
    """Write `messages` top-level messages, `threads` of them with replies, straight into the
    fake's history (as posting them one by one would, only faster). Returns replies per
    thread."""
    rng = random.Random(seed)
    channel = fake.channels[channel_id]
    start = int(time.time()) - messages * 10 - 86_400
    threaded = sorted(rng.sample(range(messages), threads))
    counts = {
        i: (long_threads[n] if n < len(long_threads) else rng.randint(1, 40))
        for n, i in enumerate(rng.sample(threaded, len(threaded)))
    }
    history: list[dict[str, Any]] = []
    replies_of: dict[str, int] = {}
    for i in range(messages):
        micros = (start + 10 * i) * 1_000_000 + rng.randrange(1_000)
        ts = f"{micros // 1_000_000}.{micros % 1_000_000:06d}"
        user = person(rng.randrange(people))
        msg: dict[str, Any] = {
            "type": "message",
            "user": user,
            "text": _text(rng, people),
            "ts": ts,
            "team": fake.team_id,
        }
        if i % 97 == 0:
            msg.update(subtype="channel_join", text=f"<@{user}> has joined the channel")
        else:
            msg["client_msg_id"] = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        history.append(msg)
        count = counts.get(i, 0)
        if not count:
            continue
        replies = []
        for j in range(count):
            r_micros = micros + (j + 1) * 1_000
            replies.append(
                {
                    "type": "message",
                    "user": person(rng.randrange(people)),
                    "text": _text(rng, people),
                    "ts": f"{r_micros // 1_000_000}.{r_micros % 1_000_000:06d}",
                    "team": fake.team_id,
                    "thread_ts": ts,
                    "parent_user_id": user,
                    "client_msg_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                }
            )
        reply_users = list(dict.fromkeys(r["user"] for r in replies))
        msg.update(
            thread_ts=ts,
            reply_count=count,
            reply_users=reply_users,
            reply_users_count=len(reply_users),
            latest_reply=replies[-1]["ts"],
            is_locked=False,
            subscribed=False,
        )
        history.extend(replies)
        replies_of[ts] = count
    history.sort(key=lambda m: (int(m["ts"].split(".")[0]), int(m["ts"].split(".")[1])))
    channel.history = history
    return replies_of


async def plain_fetch(
    client: AsyncWebClient, channel_id: str, *, concurrency: int
) -> tuple[int, int]:
    """The fewest-frills fetch: page history, then every thread's replies; no processing.
    Returns (top-level messages, replies)."""
    tops: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        page = await client.conversations_history(
            channel=channel_id, limit=PAGE_LIMIT, cursor=cursor
        )
        tops += page["messages"]
        cursor = (page.get("response_metadata") or {}).get("next_cursor") or None
        if cursor is None:
            break
    limit = asyncio.Semaphore(concurrency)
    replies = 0

    async def thread(ts: str) -> None:
        nonlocal replies
        cursor: str | None = None
        async with limit:
            while True:
                page = await client.conversations_replies(
                    channel=channel_id, ts=ts, limit=PAGE_LIMIT, cursor=cursor
                )
                replies += len(page["messages"])
                cursor = (page.get("response_metadata") or {}).get("next_cursor") or None
                if cursor is None:
                    return

    await asyncio.gather(*(thread(m["ts"]) for m in tops if m.get("reply_count")))
    return len(tops), replies


async def postmortem_compile(sizes: Sizes, db: Database) -> Outcome:
    from bot.postmortem.history import REPLIES_CONCURRENCY

    out = Outcome()
    figure = "3. Postmortem compile"
    people = 30
    async with (
        fake_slack(people=people) as fake,
        db.open() as url,
        running_bot(fake, url) as bot,
    ):
        members = [fake.bot_user_id, ALICE, *(person(i) for i in range(people))]
        channel = fake.add_channel("inc-1-postmortem-bench", members=members)
        replies_of = fill_channel(
            fake,
            channel.id,
            messages=sizes.messages,
            threads=sizes.threads,
            long_threads=sizes.long_threads,
            people=people,
        )
        replies = sum(replies_of.values())
        minimum = math.ceil(sizes.messages / PAGE_LIMIT) + sum(
            math.ceil((n + 1) / PAGE_LIMIT) for n in replies_of.values()
        )
        incident_id = await _seed_postmortem_incident(bot.app.store, fake, channel.id)
        plain_client = AsyncWebClient(token=BOT_TOKEN, base_url=fake.api_url)

        plain_times: list[float] = []
        bot_times: list[float] = []
        fetch_times: list[float] = []
        render_times: list[float] = []
        bot_calls: Counter[str] = Counter()
        plain_calls = 0
        size = 0
        for _ in range(sizes.compiles):
            first = len(fake.calls)
            started = time.perf_counter()
            got = await plain_fetch(plain_client, channel.id, concurrency=REPLIES_CONCURRENCY)
            plain_times.append(time.perf_counter() - started)
            plain_calls = len(fake.calls) - first
            assert got == (sizes.messages, replies + len(replies_of)), got

            first = len(fake.calls)
            compiler = cold_postmortems(bot.app)  # no names known, as on a fresh start
            started = time.perf_counter()
            facts = await compiler.facts(incident_id)
            fetched = time.perf_counter()
            markdown = render(facts)
            done = time.perf_counter()
            bot_times.append(done - started)
            fetch_times.append(fetched - started)
            render_times.append(done - fetched)
            bot_calls = Counter(c.method for c in fake.calls[first:])
            size = len(markdown.encode())

        started = time.perf_counter()
        await fetch_history(bot.app.client, channel.id)
        history_only = time.perf_counter() - started

        # The same plain fetch on one shared aiohttp session (the bot's client opens a new
        # connection for every call).
        async with aiohttp.ClientSession() as session:
            shared = AsyncWebClient(token=BOT_TOKEN, base_url=fake.api_url, session=session)
            started = time.perf_counter()
            await plain_fetch(shared, channel.id, concurrency=REPLIES_CONCURRENCY)
            shared_time = time.perf_counter() - started

        # The whole command once, as a person runs it: compile, store, upload the file.
        # Meanwhile: how long does the event loop (every other request) wait at a time?
        first = len(fake.calls)
        async with LoopStalls() as stalls:
            started = time.perf_counter()
            reply = await bot.slack.command("postmortem", user=ALICE, channel=channel.id)
            assert reply.status == 200, reply
            await wait_until(
                lambda: any(c.method == "files.completeUploadExternal" for c in fake.calls[first:]),
                within=300,
                interval=0.02,
                what="the postmortem file",
            )
            await bot.idle()
        command_time = time.perf_counter() - started

    plain = statistics.median(plain_times)
    compiled = statistics.median(bot_times)
    fetched_calls = bot_calls["conversations.history"] + bot_calls["conversations.replies"]
    others = {m: n for m, n in sorted(bot_calls.items()) if not m.startswith("conversations.")}
    shape = (
        f"{sizes.messages:,} messages, {len(replies_of)} threads with {replies:,} replies "
        f"(longest {max(replies_of.values()):,})"
    )
    out.say(f"channel: {shape}; draft {size / 1024:.0f} KiB")
    out.say(
        f"bot facts()+render(): median {compiled:.2f} s of {len(bot_times)} "
        f"(facts incl. fetch_history {statistics.median(fetch_times):.2f} s, "
        f"render {statistics.median(render_times):.2f} s); fetch_history alone "
        f"{history_only:.2f} s"
    )
    out.say(
        f"plain slack_sdk loop ({REPLIES_CONCURRENCY} threads at once, like the bot): median "
        f"{plain:.2f} s; same loop on one shared HTTP session {shared_time:.2f} s"
    )
    out.say(
        f"calls: bot {fetched_calls} history+replies (minimum {minimum}, plain loop "
        f"{plain_calls}); other calls {others}"
    )
    out.say(f"/incident postmortem end to end (compile, store, upload): {command_time:.2f} s")
    out.say(
        f"during that command: {stalls.summary()}; meanwhile no other request is read and "
        "no ack is sent"
    )
    out.row(
        figure,
        f"fetch_history + render vs plain slack_sdk pagination ({shape})",
        f"bot {compiled:.2f} s; plain {plain:.2f} s",
        f"ratio ×{compiled / plain:.2f}; render alone {statistics.median(render_times):.2f} s; "
        f"whole `/incident postmortem` {command_time:.2f} s, stalling the event loop for up "
        f"to {ms(stalls.longest)}",
    )
    out.row(
        figure,
        "Web API calls: history + replies vs the minimum",
        f"{fetched_calls} vs {minimum}",
        ", ".join(f"+{n} {m}" for m, n in others.items()) or "no other calls",
    )
    return out


async def _seed_postmortem_incident(store: Store, fake: FakeSlack, channel_id: str) -> int:
    history = fake.channels[channel_id].history
    declared_at = datetime.fromtimestamp(float(history[0]["ts"]), UTC)
    async with store.session() as s:
        incident = Incident(
            team_id=fake.team_id,
            number=1,
            title="Postmortem benchmark",
            description="Checkout errors after a deploy.",
            severity="SEV2",
            declared_by=ALICE,
            declared_at=declared_at,
            declare_key="bench:postmortem",
            channel_id=channel_id,
            channel_name=fake.channels[channel_id].name,
            provisioned=True,
            card_pinned=True,
        )
        s.add(incident)
        await s.flush()
        assert incident.id is not None
        s.add(
            RoleAssignment(
                incident_id=incident.id,
                role="commander",
                user_id=ALICE,
                assigned_by=ALICE,
                assigned_at=declared_at,
            )
        )
        for n in range(20):
            at = declared_at + timedelta(minutes=5 * n)
            s.add(
                TimelineEntry(
                    incident_id=incident.id,
                    kind="declared" if n == 0 else "note",
                    happened_at=at,
                    recorded_at=at,
                    actor=ALICE,
                    text=f"Timeline entry {n}",
                    source_key=f"bench:{n}",
                )
            )
        return incident.id


# ---------------------------------------------------------------------------------------------
# 4. Reminders at scale


def _lateness_measure(sizes: Sizes, db: Database) -> str:
    return (
        f"reminder lateness, {sizes.reminders:,} incidents due within {sizes.spread:g} s "
        f"({db.label})"
    )


def _memory_measure(db: Database) -> str:
    return f"peak memory while they go out ({db.label}; ru_maxrss, bot + fake Slack)"


async def reminders_at_scale(sizes: Sizes, db: Database) -> Outcome:
    out = Outcome()
    figure = "4. Reminders at scale"
    n = sizes.reminders
    lead = sizes.lead
    rss_start = max_rss_mib()
    async with fake_slack() as fake, db.open() as url:
        # Each incident has its channel (the bot a member) and its card, as after declaring.
        cards: dict[str, str] = {}
        channel_ids: list[str] = []
        for i in range(n):
            channel = fake.add_channel(f"inc-{i + 1}-reminder-bench", members=[fake.bot_user_id])
            card = fake.post_as_user(channel.id, fake.bot_user_id, "card", bot_id=fake.bot_id)
            cards[channel.id] = card["ts"]
            channel_ids.append(channel.id)
        due = await _seed_reminders(url, fake, channel_ids, cards, lead, sizes.spread)
        topics = {c: fake.channels[c].topic["value"] for c in channel_ids}
        rss_seeded = max_rss_mib()

        started = time.monotonic()
        async with (
            LoopStalls() as stalls,
            running_bot(fake, url, reminder_interval_minutes=60) as bot,
        ):
            scheduled = time.monotonic() - started
            past_due = datetime.now(UTC) > due[0]
            calls = CallCounter(fake)
            # A reminder that fails is sent again by the next sync (every 30 s).
            deadline = lead + sizes.spread + 120
            try:
                await wait_until(
                    lambda: calls.ok(["chat.postMessage"])[0] >= n,
                    within=deadline,
                    interval=0.05,
                    what="every reminder",
                )
            except TimeoutError:
                out.say(f"not every reminder went out within {deadline:.0f} s")
            # Then each one re-renders the card and the topic.
            await bot.idle(within=120)
            rss_peak = max_rss_mib()
            late: list[float] = []
            for i, channel_id in enumerate(channel_ids):
                msg = _reminder(fake.channels[channel_id].history, cards[channel_id])
                if msg is not None:
                    sent = datetime.fromtimestamp(float(msg["ts"]), UTC)
                    late.append((sent - due[i]).total_seconds())
            failed = sum(1 for c in fake.calls if not c.ok)
            made = Counter(c.method for c in fake.calls[calls.first :])
            same_topic = sum(
                1
                for c in fake.calls[calls.first :]
                if c.method == "conversations.setTopic"
                and c.args.get("topic") == topics[c.args["channel"]]
            )

    got = len(late)
    out.say(
        f"{db.label}: {n} open incidents due over {sizes.spread:g} s; bot start (migrate, read, "
        f"schedule) {scheduled:.2f} s{' — past the first due time' if past_due else ''}"
    )
    if late:
        spread = ", ".join(f"p{p} {percentile(late, p):.2f} s" for p in (1, 10, 50, 90, 99))
        out.say(
            f"lateness: {spread}, max {max(late):.2f} s; {got}/{n} delivered; "
            f"{failed} failed Web API calls"
        )
    per = ", ".join(f"{m} {k / max(1, got):.2g}" for m, k in sorted(made.items()))
    topics_set = made["conversations.setTopic"]
    out.say(
        f"Web API calls per reminder: {per}; "
        + (
            f"{same_topic} of {topics_set} topics set were the topic the channel already had"
            if topics_set
            else "no topic set"
        )
        + f"; {stalls.summary()}"
    )
    out.say(
        f"peak RSS {rss_peak:.0f} MiB (after imports {rss_start:.0f} MiB, with the fake "
        f"workspace seeded {rss_seeded:.0f} MiB)"
    )
    result = (
        f"p50 {ms(percentile(late, 50))} · p99 {ms(percentile(late, 99))} · max {ms(max(late))}"
        if late
        else "none delivered"
    )
    out.row(
        figure,
        _lateness_measure(sizes, db),
        result,
        f"{got:,}/{n:,} delivered; {sum(made.values()) / max(1, got):.3g} Web API calls each"
        + (f" ({same_topic:,} topics re-set unchanged)" if same_topic else ""),
    )
    out.row(
        figure,
        _memory_measure(db),
        f"{rss_peak:.0f} MiB",
        f"+{rss_peak - rss_seeded:.0f} MiB over the seeded workspace before the bot started",
    )
    return out


async def _seed_reminders(
    url: str,
    fake: FakeSlack,
    channel_ids: Sequence[str],
    cards: dict[str, str],
    lead: float,
    spread: float,
) -> list[datetime]:
    """Open, provisioned incidents whose next update falls due `lead` s from now, spread
    evenly over `spread` s. Returns each one's due time."""
    n = len(channel_ids)
    store = await migrated_store(url)
    now = datetime.now(UTC)
    first = now + timedelta(seconds=lead)
    due = [first + timedelta(seconds=spread * i / max(1, n - 1)) for i in range(n)]
    try:
        async with store.session() as s:
            for i, channel_id in enumerate(channel_ids):
                incident = Incident(
                    team_id=fake.team_id,
                    number=i + 1,
                    title=f"Reminder bench {i + 1}",
                    severity="SEV2",
                    declared_by=ALICE,
                    declared_at=now - timedelta(minutes=30),
                    declare_key=f"bench:reminder:{i}",
                    channel_id=channel_id,
                    channel_name=fake.channels[channel_id].name,
                    card_ts=cards[channel_id],
                    card_pinned=True,
                    provisioned=True,
                    next_update_due=due[i],
                )
                s.add(incident)
                await s.flush()
                assert incident.id is not None
                s.add(
                    RoleAssignment(
                        incident_id=incident.id,
                        role="commander",
                        user_id=ALICE,
                        assigned_by=ALICE,
                        assigned_at=now,
                    )
                )
            await s.flush()
            # The topic each channel got when it was declared.
            settings = settings_for(fake, url)
            for incident in (await s.execute(select(Incident))).scalars():
                state = blocks.IncidentState(incident, {"commander": ALICE})
                topic = blocks.topic(state, settings)
                if "topic" in Incident.model_fields:  # the bot remembers the topic it set
                    incident.topic = topic
                assert incident.channel_id is not None
                fake.channels[incident.channel_id].topic = {
                    "value": topic,
                    "creator": fake.bot_user_id,
                    "last_set": int(time.time()),
                }
    finally:
        await store.close()
    return due


def _reminder(history: list[dict[str, Any]], card_ts: str) -> dict[str, Any] | None:
    for msg in history:
        if msg.get("bot_id") and msg["ts"] != card_ts and not msg.get("subtype"):
            return msg
    return None


# ---------------------------------------------------------------------------------------------
# 5. Throughput


def _throughput_measure(sizes: Sizes, db: Database) -> str:
    return (
        f"declarations per second, {sizes.declarers} declarers at once, {sizes.incidents:,} "
        f"incidents ({db.label})"
    )


async def throughput(sizes: Sizes, db: Database) -> Outcome:
    out = Outcome()
    n = sizes.incidents
    rates: list[float] = []
    acks: list[float] = []
    for run in range(sizes.throughput_runs):
        rate, run_acks, detail = await _declare_many(sizes, db)
        rates.append(rate)
        acks += run_acks
        out.say(f"{db.label}, run {run + 1}: {detail}")
    rate = statistics.median(rates)
    spread = f" (runs: {', '.join(f'{r:.1f}' for r in rates)})" if len(rates) > 1 else ""
    out.row(
        "5. Throughput",
        _throughput_measure(sizes, db),
        f"{rate:.1f} /s" + (f", median of {len(rates)}" if len(rates) > 1 else ""),
        f"{n} provisioned in {n / rate:.1f} s{spread}; ack p99 {ms(percentile(acks, 99))}",
    )
    return out


async def _declare_many(sizes: Sizes, db: Database) -> tuple[float, list[float], str]:
    """One timed burst on a fresh bot and database: (rate, ack times, what happened)."""
    n = sizes.incidents
    users = [person(i) for i in range(sizes.declarers)]
    async with (
        fake_slack(people=sizes.declarers) as fake,
        db.open() as url,
        running_bot(fake, url) as bot,
        LoopStalls() as stalls,
    ):
        started = time.monotonic()
        acks = await send_commands(
            bot.slack,
            lambda i: f"declare sev{1 + i % 4} Throughput {i}",
            n,
            sizes.declarers,
            expect="Declaring",
            users=users,
        )
        acked = time.monotonic() - started
        await wait_until(
            lambda: _all(bot.provisioned(), n),
            within=600,
            interval=0.05,
            what="every declaration provisioned",
        )
        elapsed = time.monotonic() - started
        await bot.idle()
        pins = sum(len(ch.pinned) for ch in fake.channels.values())
        numbers = [i.number for i in await _incidents(bot.app.store)]
    if pins != n or sorted(numbers) != list(range(1, n + 1)):
        raise RuntimeError(f"{n} declarations gave {pins} pinned cards, numbers {numbers[:5]}…")
    detail = (
        f"{n} declarations acked within {acked:.2f} s, all provisioned (channel, invite, "
        f"topic, card pinned) after {elapsed:.2f} s; ack p50 {ms(percentile(acks, 50))}, "
        f"p99 {ms(percentile(acks, 99))}; {stalls.summary()}"
    )
    return n / elapsed, acks, detail


async def _incidents(store: Store) -> list[Incident]:
    async with store.sessions() as s:
        return list((await s.execute(select(Incident))).scalars())


# --- what `bench.run` runs ----------------------------------------------------------------------

Figure = Callable[[Sizes, Database], Awaitable[Outcome]]

FIGURES: dict[str, Figure] = {
    "ack": ack_overhead,
    "declare": declare_critical_path,
    "postmortem": postmortem_compile,
    "reminders": reminders_at_scale,
    "throughput": throughput,
}
# Figures measured on each database; the others run on SQLite.
PER_DATABASE = frozenset({"reminders", "throughput"})


def skipped(name: str, sizes: Sizes, db: Database, reason: str) -> Outcome:
    """The rows a figure would have given on `db`, saying why it did not run."""
    out = Outcome()
    if name == "reminders":
        out.row("4. Reminders at scale", _lateness_measure(sizes, db), "skipped", reason)
        out.row("4. Reminders at scale", _memory_measure(db), "skipped", reason)
    elif name == "throughput":
        out.row("5. Throughput", _throughput_measure(sizes, db), "skipped", reason)
    return out
