"""The seven figures. Each runs the real bot over HTTP against the fake Slack and returns rows.

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
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlmodel import col

from bench.harness import (
    ALICE,
    GENERAL,
    CallCounter,
    Database,
    Outcome,
    RunningBot,
    bare_bolt,
    fake_slack,
    migrated_store,
    ms,
    percentile,
    person,
    running_bot,
    settings_for,
    wait_until,
)
from bot.fakeslack import Call, FakeSlack, SlackSender
from bot.model.tables import Incident, RoleAssignment, StatusUpdate, TimelineEntry
from bot.outbound.slack.history import PAGE_LIMIT
from bot.outbound.store import Store
from bot.views import blocks


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
    compiles: int = 5  # timed repetitions of the postmortem compile
    reminders: int = 2000
    spread: float = 3.0  # seconds over which the reminders fall due
    # Seconds from seeding them to the first due time: the bot's process starts meanwhile.
    lead: float = 8.0
    declarers: int = 20
    incidents: int = 400  # declared by the declarers, per database
    throughput_runs: int = 3  # fresh bot and database each; the median is reported
    big_messages: int = 50_000  # the large postmortem channel, compiled once for memory
    big_threads: int = 1_500
    limited_declares: int = 24  # declared at once with Slack's rate limits enforced
    limited_changed: int = 2  # incidents whose severity then changes repeatedly
    limited_changes: int = 10  # severity changes in each of them, as fast as acked
    stored_declares: int = 500  # declared at once under Slack's tiers: acked -> stored
    stored_incidents: int = 20  # incidents whose severity then changes under the tiers
    stored_changes: int = 15  # changes in each of them, as fast as acked (300 in all)

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
    lead=4.0,
    declarers=5,
    incidents=20,
    throughput_runs=1,
    big_messages=500,
    big_threads=5,
    limited_declares=3,
    limited_changed=1,
    limited_changes=2,
    stored_declares=20,
    stored_incidents=3,
    stored_changes=3,
)


# ---------------------------------------------------------------------------------------------
# 1. Acknowledgement overhead


async def send_commands(
    sender: SlackSender,
    text: Callable[[int], str],
    count: int,
    concurrency: int,
    *,
    expect: str = "",
    users: Sequence[str] = (ALICE,),
    channel: str | Callable[[int], str] = GENERAL,
    keys: dict[int, str] | None = None,
) -> list[float]:
    """`count` slash commands from `concurrency` senders at once; each one's ack time."""
    elapsed: list[float] = []
    numbers = iter(range(count))

    async def sender_loop(worker: int) -> None:
        for i in numbers:
            where = channel(i) if callable(channel) else channel
            reply = await sender.command(text(i), user=users[worker % len(users)], channel=where)
            if reply.status != 200 or expect not in reply.text:
                raise RuntimeError(f"unexpected ack {reply.status}: {reply.text[:200]}")
            elapsed.append(reply.elapsed)
            if keys is not None and reply.response_url_key is not None:
                keys[i] = reply.response_url_key

    await asyncio.gather(*(sender_loop(w) for w in range(concurrency)))
    return elapsed


async def ack_overhead(sizes: Sizes, db: Database) -> Outcome:
    out = Outcome()
    figure = "1. Ack overhead"
    conc = sizes.concurrency
    async with (
        fake_slack() as fake,
        db.open() as url,
        running_bot(fake, url) as bot,
        bare_bolt(fake) as bare,
    ):
        warm = max(conc, sizes.commands // 10)
        await send_commands(bot.slack, _help, warm, conc)
        await send_commands(bare.slack, _help, warm, conc)
        bot_help: list[float] = []
        bare_help: list[float] = []
        # Alternate halves so drift (GC, caches, the machine) hits both sides alike.
        for half in (sizes.commands // 2, sizes.commands - sizes.commands // 2):
            bot_help += await send_commands(bot.slack, _help, half, conc)
            bare_help += await send_commands(bare.slack, _help, half, conc)

        started = time.monotonic()
        total = sizes.declare_acks
        await bot.side.reset_stalls()
        keys: dict[int, str] = {}
        declare_acks = await send_commands(
            bot.slack,
            lambda i: f"declare sev3 Ack check {i}",
            total,
            conc,
            expect="Declaring",
            keys=keys,
        )
        acked = time.monotonic() - started
        # Every declarer hears how it went; then the bot settles.
        try:
            await wait_until(
                lambda: _answered(fake, keys.values()) >= total,
                within=600,
                interval=0.1,
                what="an answer to every declarer",
            )
        except TimeoutError as e:
            out.say(str(e))
        # Paced as deployed, Slack creates 20 channels a minute: the rest of the burst's
        # channels follow long after every declarer has heard; this figure ends here.
        finished = time.monotonic() - started
        provisioned = await bot.provisioned()
        state = await bot.side.state()
        memory = bot.side.memory()
        store = Store(url)
        try:
            incidents = await _incidents(store)
        finally:
            await store.close()
        truth = _declare_truth(fake, keys, incidents, "Ack check")

    def cell(values: list[float]) -> str:
        return f"p50 {ms(percentile(values, 50))} · p99 {ms(percentile(values, 99))}"

    p50 = percentile(bot_help, 50) / percentile(bare_help, 50)
    p99 = percentile(bot_help, 99) / percentile(bare_help, 99)
    out.say(f"/incident help, bot:  {cell(bot_help)} (n={len(bot_help)}, concurrency {conc})")
    out.say(f"/incident help, bare Bolt: {cell(bare_help)} (n={len(bare_help)})")
    out.say(f"/incident declare acks: {cell(declare_acks)} (n={len(declare_acks)})")
    out.say(
        f"the {total} declarations were acked within {acked:.1f} s and every declarer "
        f"answered after {finished:.1f} s ({provisioned} channels set up by then, at Slack's "
        f"pace); bot process: {stall_text(state)}, peak RSS "
        f"{memory.get('VmHWM', 0):.0f} MiB"
    )
    out.say(truth.summary(total))
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
        f"`/incident declare <title>` ack during a burst of {len(declare_acks):,} ({conc} at once)",
        f"p99 ×{d99:.2f} bare Bolt's p99 {target(d99 <= 1.5, 'target ≤ ×1.5')}",
        f"p50 {ms(percentile(declare_acks, 50))} (×{d50:.2f}), p99 "
        f"{ms(percentile(declare_acks, 99))}; bare Bolt p99 {ms(percentile(bare_help, 99))}",
    )
    out.row(
        figure,
        f"false answers in that burst ({total:,} declarers)",
        f"{truth.false} {target(truth.false == 0, 'target 0')}",
        truth.notes(),
    )
    out.row(
        figure,
        f"longest event-loop stall / garbage collection during the {total:,}-declaration burst",
        f"{ms(state['stall'])} / {ms(state['gc'])} "
        f"{target(state['gc'] < 0.1, 'GC target < 100 ms')}",
        f"{state['gc_count']:,} collections; peak RSS {memory.get('VmHWM', 0):.0f} MiB",
    )
    return out


def target(met: bool, what: str) -> str:
    return f"({'✅ meets' if met else '❌ misses'} {what})"


def stall_text(state: dict[str, Any]) -> str:
    return (
        f"longest event-loop stall {ms(state['stall'])} (longest garbage collection "
        f"{ms(state['gc'])}, {state['gc_count']:,} collections)"
    )


def _answered(fake: FakeSlack, keys: Iterable[str]) -> int:
    told = {r.key for r in fake.responses if _final_answer(r.body)}
    return sum(1 for k in keys if k in told)


def _final_answer(body: Any) -> str | None:
    """What kind of final answer a declarer got: "declared", "stored" (saved, do not retry),
    "failed"; None for an ack-like progress note."""
    if not isinstance(body, dict):
        return None
    text = str(body.get("text", ""))
    if ":rotating_light:" in text or " declared" in text:
        return "declared"
    if "saved" in text or "no need to try again" in text:
        return "stored"
    if text.startswith(":warning:"):
        return "failed"
    return None


@dataclass
class DeclareTruth:
    """What each declarer was told, against what the database holds."""

    told: Counter[str]
    false_failures: int  # told it failed (nothing changed / try again), yet it exists
    false_successes: int  # told it was declared, yet nothing exists
    silent: int  # no final answer at all
    duplicates: int  # titles stored more than once

    @property
    def false(self) -> int:
        return self.false_failures + self.false_successes + self.duplicates

    def notes(self) -> str:
        told = ", ".join(f"{n:,} {k}" for k, n in sorted(self.told.items()))
        return (
            f"told: {told or 'nothing'}; false failures {self.false_failures} (told it failed, "
            f"incident exists), false successes {self.false_successes} (told declared, no "
            f"incident), duplicates {self.duplicates}, no answer {self.silent}"
        )

    def summary(self, total: int) -> str:
        return f"what the {total} declarers were told: {self.notes()}"


def _declare_truth(
    fake: FakeSlack, keys: dict[int, str], incidents: Sequence[Incident], prefix: str
) -> DeclareTruth:
    stored = Counter(i.title for i in incidents if i.title.startswith(prefix))
    answers: dict[str, str] = {}
    for r in fake.responses:
        kind = _final_answer(r.body)
        if kind is not None:
            answers[r.key] = kind  # the last word counts
    told: Counter[str] = Counter()
    false_failures = false_successes = silent = 0
    for i, key in keys.items():
        kind = answers.get(key)
        exists = stored[f"{prefix} {i}"] > 0
        told[kind or "nothing"] += 1
        if kind is None:
            silent += 1
        elif kind == "failed" and exists:
            false_failures += 1
        elif kind == "declared" and not exists:
            false_successes += 1
    duplicates = sum(n - 1 for n in stored.values() if n > 1)
    return DeclareTruth(told, false_failures, false_successes, silent, duplicates)


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
    service: list[float] = []
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
            # Ends when the fake pinned it and answered, not when this loop next looked.
            pins = [c for c in fake.calls[first_call:] if c.method == "pins.add" and c.ok]
            to_pin.append((pins[0].answered if pins else time.monotonic()) - started)
            # Then everything else the declaration does, down to telling the declarer.
            await wait_until(
                lambda answered=answered: len(fake.responses) > answered,  # type: ignore[misc]
                within=60,
                what="the declarer's answer",
            )
            await bot.idle()
            made = fake.calls[first_call:]
            calls_made.append(len(made))
            methods.update(c.method for c in made)
            # How long the fake really took to answer each call of the path: its timer
            # fires a little after the delay it was given, and that is not the bot's time.
            service.extend(
                c.answered - c.at
                for c in made
                if c.method in ("conversations.create", "chat.postMessage", "pins.add")
            )
        fake.delay = 0

    median = statistics.median(to_pin)
    trip = statistics.median(service)
    trips = median / trip
    per = {m: n / len(to_pin) for m, n in sorted(methods.items())}
    breakdown = ", ".join(f"{m} {n:g}" for m, n in per.items())
    out.say(
        f"slash command to pinned card, Slack answering after {ms(delay)}: median {ms(median)} "
        f"(min {ms(min(to_pin))}, max {ms(max(to_pin))}, n={len(to_pin)})"
    )
    out.say(
        f"the fake's answer to each call on the path (create, post, pin), arrival to answer: "
        f"median {ms(trip)} (max {ms(max(service))}); one round trip in the figure"
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
        f"{ms(median)} = {trips:.2f} round trips of {ms(trip)} in sequence "
        f"{target(trips <= 3.1, 'target ≤ 3.1')}",
        f"the least possible is 3 (create the channel → post the card → pin it); ack median "
        f"{ms(statistics.median(acks))}",
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


def _minimum_calls(messages: int, replies_of: dict[str, int]) -> int:
    return math.ceil(messages / PAGE_LIMIT) + sum(
        math.ceil((n + 1) / PAGE_LIMIT) for n in replies_of.values()
    )


async def postmortem_compile(sizes: Sizes, db: Database) -> Outcome:
    out = Outcome()
    figure = "3. Postmortem compile"
    people = 30
    async with (
        fake_slack(people=people) as fake,
        db.open() as url,
        # Pacing off here alone: Slack's tier 3 (50 history pages a minute) would set the
        # time, and this compares the bot's own work with a plain loop over the same pages.
        running_bot(fake, url, slack_pacing=False) as bot,
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
        minimum = _minimum_calls(sizes.messages, replies_of)
        store = Store(url)
        try:
            incident_id = await _seed_postmortem_incident(store, fake, channel.id, number=1)
        finally:
            await store.close()

        # In the bot's process, one after the other: the plain loop, then the bot's compile.
        plain_times: list[float] = []
        bot_times: list[float] = []
        fetch_times: list[float] = []
        render_times: list[float] = []
        bot_calls: Counter[str] = Counter()
        plain_calls = 0
        size = 0
        for _ in range(sizes.compiles):
            first = len(fake.calls)
            plain_run = await bot.side.postmortem("plain", channel.id)
            plain_times.append(plain_run["seconds"])
            plain_calls = len(fake.calls) - first
            got = tuple(plain_run["got"])
            if got != (sizes.messages, replies + len(replies_of)):
                raise RuntimeError(f"the plain loop read {got}")
            first = len(fake.calls)
            run = await bot.side.postmortem("compile", channel.id, incident_id)
            bot_calls = Counter(c.method for c in fake.calls[first:])
            bot_times.append(run["seconds"])
            fetch_times.append(run["fetch"])
            render_times.append(run["render"])
            size = run["size"]
        history_only = (await bot.side.postmortem("history", channel.id))["seconds"]

        # The whole command once, as a person runs it: compile, store, upload the file.
        # Meanwhile: how long does the bot's event loop (every other request) wait at a time?
        await bot.side.reset_stalls()
        first = len(fake.calls)
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
        state = await bot.side.state()

        # A channel five times that size, compiled once end to end, for the bot's peak memory.
        big = await _big_postmortem(sizes, fake, url, bot, people, members)

    plain = statistics.median(plain_times)
    compiled = statistics.median(bot_times)
    fetched_calls = bot_calls["conversations.history"] + bot_calls["conversations.replies"]
    others = {m: n for m, n in sorted(bot_calls.items()) if not m.startswith("conversations.")}
    shape = (
        f"{sizes.messages:,} messages, {len(replies_of)} threads with {replies:,} replies "
        f"(longest {max(replies_of.values()):,})"
    )
    ratio = compiled / plain
    out.say(f"channel: {shape}; draft {size / 1024:.0f} KiB")
    out.say(
        f"bot draft() (facts, then render): median {compiled:.2f} s of {len(bot_times)} "
        f"(facts incl. fetch_history {statistics.median(fetch_times):.2f} s, "
        f"render {statistics.median(render_times):.2f} s); fetch_history alone "
        f"{history_only:.2f} s"
    )
    out.say(
        f"plain slack_sdk loop (same concurrency as the bot, in the bot's process): median "
        f"{plain:.2f} s"
    )
    out.say(
        f"calls: bot {fetched_calls} history+replies (minimum {minimum}, plain loop "
        f"{plain_calls}); other calls {others}"
    )
    out.say(f"/incident postmortem end to end (compile, store, upload): {command_time:.2f} s")
    out.say(
        f"during that command, in the bot's process: {stall_text(state)}; meanwhile no other "
        "request is read and no ack is sent"
    )
    out.say(big.detail)
    out.row(
        figure,
        f"fetch_history + render vs plain slack_sdk pagination ({shape})",
        f"×{ratio:.2f} the plain loop {target(ratio <= 1.2, 'target ≤ ×1.2')}",
        f"bot {compiled:.2f} s; plain loop {plain:.2f} s; render alone "
        f"{statistics.median(render_times):.2f} s; whole `/incident postmortem` "
        f"{command_time:.2f} s, stalling the bot's event loop for up to {ms(state['stall'])}",
    )
    out.row(
        figure,
        "Web API calls: history + replies vs the minimum",
        f"{fetched_calls} vs {minimum}",
        ", ".join(f"+{n} {m}" for m, n in others.items()) or "no other calls",
    )
    out.row(figure, big.measure, big.result, big.notes)
    return out


@dataclass
class BigCompile:
    measure: str
    result: str
    notes: str
    detail: str


async def _big_postmortem(
    sizes: Sizes,
    fake: FakeSlack,
    url: str,
    bot: RunningBot,
    people: int,
    members: list[str],
) -> BigCompile:
    channel = fake.add_channel("inc-2-postmortem-big", members=members)
    replies_of = fill_channel(
        fake,
        channel.id,
        messages=sizes.big_messages,
        threads=sizes.big_threads,
        long_threads=sizes.long_threads,
        people=people,
        seed=11,
    )
    replies = sum(replies_of.values())
    store = Store(url)
    try:
        await _seed_postmortem_incident(store, fake, channel.id, number=2)
    finally:
        await store.close()
    # Start from the bot's resident memory now, so the peak is this compile's.
    before = bot.side.memory()
    peak_reset = bot.side.reset_peak()
    await bot.side.reset_stalls()
    first = len(fake.calls)
    started = time.perf_counter()
    reply = await bot.slack.command("postmortem", user=ALICE, channel=channel.id)
    assert reply.status == 200, reply
    await wait_until(
        lambda: any(c.method == "files.completeUploadExternal" for c in fake.calls[first:]),
        within=600,
        interval=0.05,
        what="the big postmortem file",
    )
    await bot.idle(within=600)
    elapsed = time.perf_counter() - started
    after = bot.side.memory()
    state = await bot.side.state()
    upload = next((c for c in fake.calls[first:] if c.method == "files.getUploadURLExternal"), None)
    size = int(upload.args.get("length", 0)) if upload is not None else 0
    shape = f"{sizes.big_messages:,} messages, {len(replies_of)} threads, {replies:,} replies"
    growth = after.get("VmHWM", 0) - before.get("VmRSS", 0)
    since = "since just before the command" if peak_reset else "over the process's life"
    return BigCompile(
        measure=f"`/incident postmortem` of a {sizes.big_messages:,}-message channel: "
        "the bot's peak RSS",
        result=f"{after.get('VmHWM', 0):.0f} MiB (+{growth:.0f} MiB)",
        notes=f"{shape}; draft {size / 1024:.0f} KiB; {elapsed:.1f} s end to end; peak {since}; "
        f"longest stall {ms(state['stall'])}",
        detail=f"{shape}: /incident postmortem in {elapsed:.1f} s; bot RSS before "
        f"{before.get('VmRSS', 0):.0f} MiB, peak {after.get('VmHWM', 0):.0f} MiB ({since}), "
        f"after {after.get('VmRSS', 0):.0f} MiB; draft {size / 1024:.0f} KiB; {stall_text(state)}",
    )


async def _seed_postmortem_incident(
    store: Store, fake: FakeSlack, channel_id: str, *, number: int
) -> int:
    history = fake.channels[channel_id].history
    declared_at = datetime.fromtimestamp(float(history[0]["ts"]), UTC)
    async with store.session() as s:
        incident = Incident(
            team_id=fake.team_id,
            number=number,
            title=f"Postmortem benchmark {number}",
            description="Checkout errors after a deploy.",
            severity="SEV2",
            declared_by=ALICE,
            declared_at=declared_at,
            declare_key=f"bench:postmortem:{number}",
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
                    source_key=f"bench:{number}:{n}",
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


def _memory_measure(sizes: Sizes, db: Database) -> str:
    return (
        f"the bot process's peak RSS with {sizes.reminders:,} open incidents while they go "
        f"out ({db.label}; VmHWM)"
    )


async def reminders_at_scale(sizes: Sizes, db: Database) -> Outcome:
    out = Outcome()
    figure = "4. Reminders at scale"
    n = sizes.reminders
    lead = sizes.lead
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
        started = time.monotonic()
        async with running_bot(fake, url, reminder_interval_minutes=60) as bot:
            scheduled = time.monotonic() - started
            rss_started = bot.side.memory().get("VmRSS", 0)
            await bot.side.reset_stalls()  # from here on: while the reminders go out
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
            # Then each one re-renders the card (and the topic), at Slack's pace: chat.update
            # allows 50 a minute, so 2,000 cards take a while; they follow in the background.
            try:
                await bot.idle(within=30)
            except TimeoutError:
                out.say("the cards were still catching up at Slack's pace 30 s later")
            memory = bot.side.memory()
            rss_peak, rss_now = memory.get("VmHWM", 0), memory.get("VmRSS", 0)
            state = await bot.side.state()
            late: list[float] = []
            twice = 0
            for i, channel_id in enumerate(channel_ids):
                history = fake.channels[channel_id].history
                msg = _reminder(history, cards[channel_id])
                twice += max(0, _reminders(history, cards[channel_id]) - 1)
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
    )
    out.say(f"bot process: {stall_text(state)}")
    out.say(
        f"bot process RSS: {rss_started:.0f} MiB once started with {n:,} open incidents, peak "
        f"{rss_peak:.0f} MiB while the reminders went out, {rss_now:.0f} MiB after"
    )
    if twice:
        out.say(f"reminders sent more than once: {twice}")
    p99 = percentile(late, 99) if late else math.inf
    result = (
        f"p50 {ms(percentile(late, 50))} · p99 {ms(p99)} · max {ms(max(late))} "
        f"{target(p99 < 2 and got == n and not twice, 'target p99 < 2 s, each once')}"
        if late
        else "none delivered"
    )
    out.row(
        figure,
        _lateness_measure(sizes, db),
        result,
        f"{got:,}/{n:,} delivered, {twice} twice; {sum(made.values()) / max(1, got):.3g} Web API "
        "calls each" + (f" ({same_topic:,} topics re-set unchanged)" if same_topic else ""),
    )
    out.row(
        figure,
        _memory_measure(sizes, db),
        f"{rss_peak:.0f} MiB {target(rss_peak < 150, 'target < 150 MiB')}",
        f"{rss_started:.0f} MiB once started; the fake Slack's workspace is in another process",
    )
    out.row(
        figure,
        f"longest event-loop stall / garbage collection while they go out ({db.label})",
        f"{ms(state['stall'])} / {ms(state['gc'])} "
        f"{target(state['gc'] < 0.1, 'GC target < 100 ms')}",
        f"{state['gc_count']:,} collections in the bot's process",
    )
    return out


def _is_reminder(msg: dict[str, Any]) -> bool:
    """A reminder message: the bot's, with the reminder's "Post update" button."""
    if not msg.get("bot_id") or msg.get("subtype"):
        return False
    return any(
        element.get("action_id") == blocks.REMINDER_UPDATE
        for block in msg.get("blocks") or []
        for element in block.get("elements") or [block.get("accessory") or {}]
        if isinstance(element, dict)
    )


def _reminders(history: list[dict[str, Any]], card_ts: str) -> int:
    return sum(1 for m in history if m["ts"] != card_ts and _is_reminder(m))


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
        if msg["ts"] != card_ts and _is_reminder(msg):
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
        # Pacing off here alone: the bot's own capacity. Paced, Slack's 20 new channels a
        # minute would set the rate (figure 7 measures the bot under that pacing).
        running_bot(fake, url, slack_pacing=False) as bot,
    ):
        await bot.side.reset_stalls()
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
        state = await bot.side.state()
        pins = sum(len(ch.pinned) for ch in fake.channels.values())
        store = Store(url)
        try:
            numbers = [i.number for i in await _incidents(store)]
        finally:
            await store.close()
    if pins != n or sorted(numbers) != list(range(1, n + 1)):
        raise RuntimeError(f"{n} declarations gave {pins} pinned cards, numbers {numbers[:5]}…")
    detail = (
        f"{n} declarations acked within {acked:.2f} s, all provisioned (channel, invite, "
        f"topic, card pinned) after {elapsed:.2f} s; ack p50 {ms(percentile(acks, 50))}, "
        f"p99 {ms(percentile(acks, 99))}; bot process: {stall_text(state)}"
    )
    return n / elapsed, acks, detail


async def _incidents(store: Store) -> list[Incident]:
    async with store.sessions() as s:
        return list((await s.execute(select(Incident))).scalars())


# ---------------------------------------------------------------------------------------------
# 7. Under Slack's rate limits


def _tiers_measure(sizes: Sizes) -> str:
    return (
        f"{sizes.limited_declares} declarations at once, then {sizes.limited_changes} severity "
        f"changes in each of {sizes.limited_changed} incidents, Slack's tiers enforced"
    )


def peak_in_window(times: Sequence[float], window: float) -> int:
    """The most of `times` (sorted) that fall within any `window` seconds."""
    best = start = 0
    for end, t in enumerate(times):
        while t - times[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


async def under_tiers(sizes: Sizes, db: Database) -> Outcome:
    out = Outcome()
    figure = "6. Under Slack's rate limits"
    n = sizes.limited_declares
    users = [person(i) for i in range(8)]
    async with (
        fake_slack(people=len(users), rate_limits=True) as fake,
        db.open() as url,
        running_bot(fake, url) as bot,
    ):
        await bot.side.reset_stalls()
        first = len(fake.calls)
        started = time.monotonic()
        keys: dict[int, str] = {}
        await send_commands(
            bot.slack,
            lambda i: f"declare sev3 Tier check {i}",
            n,
            len(users),
            expect="Declaring",
            users=users,
            keys=keys,
        )
        try:
            await wait_until(
                lambda: _all(bot.provisioned(), n),
                within=420,
                interval=0.5,
                what="every declaration provisioned",
            )
        except TimeoutError as e:
            out.say(str(e))
        provisioned_after = time.monotonic() - started
        store = Store(url)
        try:
            incidents = sorted(await _incidents(store), key=lambda i: i.number)
        finally:
            await store.close()
        changed = [i for i in incidents if i.channel_id][: sizes.limited_changed]
        changes_from = len(fake.calls)
        change_started = time.monotonic()

        async def change(incident: Incident) -> None:
            assert incident.channel_id is not None
            for k in range(sizes.limited_changes):
                reply = await bot.slack.command(
                    f"severity sev{1 + k % 2}", user=ALICE, channel=incident.channel_id
                )
                if reply.status != 200:
                    raise RuntimeError(f"unexpected ack {reply.status}: {reply.text[:200]}")

        await asyncio.gather(*(change(i) for i in changed))
        try:
            await bot.idle(within=420)
        except TimeoutError as e:
            out.say(str(e))
        settled = time.monotonic() - change_started
        elapsed = time.monotonic() - started
        state = await bot.side.state()
        store = Store(url)
        try:
            incidents = await _incidents(store)
        finally:
            await store.close()
        truth = _declare_truth(fake, keys, incidents, "Tier check")
        calls = fake.calls[first:]
        change_calls = fake.calls[changes_from:]
        limits = dict(fake.rate_limits)
        changed_channels = {i.channel_id for i in changed}
        shown = {
            i.channel_id: fake.channels[i.channel_id].topic["value"]
            for i in incidents
            if i.channel_id in changed_channels and i.channel_id is not None
        }
        final_severity = {i.channel_id: i.severity for i in incidents if i.channel_id in shown}

    attempts: Counter[str] = Counter(c.method for c in calls)
    refused: Counter[str] = Counter(c.method for c in calls if c.status == 429)
    total = sum(attempts.values())
    limited_total = sum(refused.values())
    share = limited_total / total if total else 0.0
    lines = []
    within = True
    over = 0.0  # the most calls tried in a window, as a multiple of its limit
    for method in sorted(attempts):
        limit = limits.get(method)
        accepted = [c for c in calls if c.method == method and c.status != 429]
        if limit is None:
            lines.append(f"{method} {attempts[method]} (no published limit)")
            continue
        tried = [c for c in calls if c.method == method]
        if limit.per_channel:

            def per_channel(these: list[Call], window: float) -> int:
                by_channel: dict[str, list[float]] = {}
                for c in these:
                    by_channel.setdefault(str(c.args.get("channel")), []).append(c.at)
                return max((peak_in_window(t, window) for t in by_channel.values()), default=0)

            peak = per_channel(accepted, limit.window)
            tried_peak = per_channel(tried, limit.window)
            budget = (
                f"at most {peak} accepted and {tried_peak} tried in "
                f"{limit.window:g} s in one channel (limit {limit.calls})"
            )
        else:
            peak = peak_in_window([c.at for c in accepted], limit.window)
            tried_peak = peak_in_window([c.at for c in tried], limit.window)
            budget = (
                f"at most {peak} accepted and {tried_peak} tried in a minute (tier "
                f"{limit.calls}/min)"
            )
        within = within and peak <= limit.calls
        over = max(over, tried_peak / limit.calls)
        lines.append(f"{method} {attempts[method]} calls, {refused[method]} refused, {budget}")
    for line in lines:
        out.say(line)
    posts_refused = [c for c in calls if c.method == "chat.postMessage" and c.status == 429]
    if posts_refused:
        where = Counter(
            "the channels whose severity changed" if c.args.get("channel") in shown else "others"
            for c in posts_refused
        )
        out.say("chat.postMessage refused in: " + ", ".join(f"{w} {k}" for w, k in where.items()))
    changes = sizes.limited_changes * len(changed)
    updates = sum(
        1 for c in change_calls if c.method == "chat.update" and c.args.get("channel") in shown
    )
    topics = sum(
        1
        for c in change_calls
        if c.method == "conversations.setTopic" and c.args.get("channel") in shown
    )
    converged = all(
        severity.lower() in topic.lower()
        for topic, severity in ((shown[c], str(final_severity[c])) for c in shown)
    )
    out.say(
        f"{n} declarations provisioned after {provisioned_after:.1f} s; {changes} severity "
        f"changes settled {settled:.1f} s later; {elapsed:.1f} s in all"
    )
    out.say(
        f"for the {changes} changes: {updates} card updates and {topics} topic changes in the "
        f"changed channels (fewest that show the final state: {len(shown)} each, at most "
        f"{changes} each without coalescing); topics show the final severity: "
        f"{'yes' if converged else 'NO'}"
    )
    out.say(truth.summary(n))
    out.say(f"bot process: {stall_text(state)}")
    out.row(
        figure,
        f"Web API calls refused with 429 ({_tiers_measure(sizes)})",
        f"{limited_total} of {total} ({share:.1%}) {target(share < 0.01, 'target < 1%')}",
        f"{elapsed:.0f} s; " + "; ".join(f"{m} {refused[m]}/{attempts[m]}" for m in sorted(refused))
        if refused
        else f"{elapsed:.0f} s; none refused",
    )
    out.row(
        figure,
        "calls per minute per method vs its tier",
        ("accepted within every tier" if within else "accepted OVER a tier")
        + f"; tried at most ×{over:.2f} a limit",
        "; ".join(line for line in lines if "refused" in line and not line.startswith("auth.")),
    )
    out.row(
        figure,
        f"card updates and topic changes for {changes} severity changes",
        f"{updates} chat.update, {topics} conversations.setTopic",
        f"minimum {len(shown)} each (latest state wins), {changes} each without coalescing; "
        f"final state shown: {'yes' if converged else 'no'}; declarers: {truth.notes()}",
    )
    return out


# ---------------------------------------------------------------------------------------------
# 7. Stored under Slack's pacing


async def _stored_times(url: str, text: Any, at: Any, prefix: str) -> dict[str, float]:
    """When each row whose `text` column starts with `prefix` was stored: its own `at`
    timestamp, taken in the transaction that stores it, by its text."""
    store = Store(url)
    try:
        async with store.sessions() as s:
            rows = await s.execute(select(text, at).where(text.startswith(prefix)))
            return {str(t): _epoch(when) for t, when in rows.all()}
    finally:
        await store.close()


async def _declared_times(url: str, prefix: str) -> dict[str, float]:
    return await _stored_times(url, col(Incident.title), col(Incident.declared_at), prefix)


async def _update_times(url: str, prefix: str) -> dict[str, float]:
    return await _stored_times(url, col(StatusUpdate.summary), col(StatusUpdate.posted_at), prefix)


def _epoch(at: datetime) -> float:
    return (at if at.tzinfo else at.replace(tzinfo=UTC)).timestamp()


async def stored_under_pacing(sizes: Sizes, db: Database) -> Outcome:
    """Acknowledged work is stored within about a second whatever Slack's budget says:
    a burst of declarations while conversations.create allows 20 a minute, then quick
    changes while the topic's and the card's calls are paced. The fake enforces the tiers
    and the bot paces itself, as deployed."""
    out = Outcome()
    figure = "7. Stored under Slack's pacing"
    n = sizes.stored_declares
    users = [person(i) for i in range(8)]
    async with (
        fake_slack(people=len(users), rate_limits=True) as fake,
        db.open() as url,
        running_bot(fake, url) as bot,
    ):
        await bot.side.reset_stalls()
        acked: dict[str, float] = {}
        keys: dict[int, str] = {}
        numbers = iter(range(n))

        async def declarer(worker: int) -> None:
            for i in numbers:
                title = f"Stored check {i}"
                reply = await bot.slack.command(
                    f"declare sev3 {title}", user=users[worker % len(users)]
                )
                acked[title] = time.time()
                if reply.status != 200 or "Declaring" not in reply.text:
                    raise RuntimeError(f"unexpected ack {reply.status}: {reply.text[:200]}")
                if reply.response_url_key is not None:
                    keys[i] = reply.response_url_key

        started = time.monotonic()
        await asyncio.gather(*(declarer(w) for w in range(sizes.concurrency)))

        async def all_stored() -> dict[str, float] | None:
            times = await _declared_times(url, "Stored check")
            return times if len(times) >= n else None

        try:
            stored = await wait_until(all_stored, within=300, interval=0.25, what="every one")
        except TimeoutError as e:
            out.say(str(e))
            stored = await _declared_times(url, "Stored check")
        stored_after = time.monotonic() - started
        try:
            await wait_until(
                lambda: _answered(fake, keys.values()) >= n,
                within=300,
                interval=0.25,
                what="an answer to every declarer",
            )
        except TimeoutError as e:
            out.say(str(e))
        told_after = time.monotonic() - started
        state = await bot.side.state()
        incidents = await _incidents_at(url)
        truth = _declare_truth(fake, keys, incidents, "Stored check")
        early = sum(
            1
            for r in fake.responses
            if r.key in set(keys.values()) and "is declared and recorded" in str(r.body)
        )
        created = sum(1 for c in fake.calls if c.method == "conversations.create" and c.ok)
    declare_lag = [max(0.0, stored[t] - acked[t]) for t in acked if t in stored]
    out.say(
        f"{n} declarations acked, {len(stored)} stored after {stored_after:.1f} s, every "
        f"declarer answered after {told_after:.1f} s ({early} told their number while Slack "
        f"held the channel back); {created} channels created by then (Slack allows 20 a "
        f"minute); bot process: {stall_text(state)}"
    )
    out.say(truth.summary(n))
    p99 = percentile(declare_lag, 99) if declare_lag else math.inf
    out.row(
        figure,
        f"acked → stored, a burst of {n:,} declarations ({sizes.concurrency} at once) while "
        "conversations.create allows 20 a minute",
        f"p50 {ms(percentile(declare_lag, 50))} · p99 {ms(p99)} "
        f"{target(p99 <= 1.0 and len(stored) == n, 'target p99 ≤ 1 s, every one stored')}",
        f"{len(stored):,}/{n:,} stored; {early:,} declarers told their number at once while the "
        f"channel waits; {truth.notes()}",
    )

    # Quick changes while the card's and the topic's calls are paced.
    m, k = sizes.stored_incidents, sizes.stored_changes
    async with (
        fake_slack(people=1, rate_limits=True) as fake,
        db.open() as url,
        running_bot(fake, url) as bot,
    ):
        for i in range(m):
            reply = await bot.slack.command(f"declare sev3 Quick changes {i}", user=ALICE)
            if reply.status != 200:
                raise RuntimeError(f"unexpected ack {reply.status}: {reply.text[:200]}")
        await wait_until(
            lambda: _all(bot.provisioned(), m), within=300, interval=0.25, what="provisioned"
        )
        await bot.idle(within=300)
        incidents = sorted(await _incidents_at(url), key=lambda i: i.number)
        calls_from = len(fake.calls)
        acked_changes: dict[str, float] = {}
        await bot.side.reset_stalls()
        started = time.monotonic()

        async def change(incident: Incident) -> None:
            # Status updates: each one distinct, so each is matched with its own ack
            # whatever order the bot takes them in.
            assert incident.channel_id is not None
            for j in range(k):
                summary = f"Quick change {incident.number}.{j}"
                reply = await bot.slack.command(
                    f"update {summary}", user=ALICE, channel=incident.channel_id
                )
                acked_changes[summary] = time.time()
                if reply.status != 200:
                    raise RuntimeError(f"unexpected ack {reply.status}: {reply.text[:200]}")

        await asyncio.gather(*(change(i) for i in incidents))

        async def all_changes() -> dict[str, float] | None:
            times = await _update_times(url, "Quick change")
            return times if len(times) >= m * k else None

        try:
            changed = await wait_until(all_changes, within=300, interval=0.25, what="changes")
        except TimeoutError as e:
            out.say(str(e))
            changed = await _update_times(url, "Quick change")
        changes_stored = time.monotonic() - started
        state = await bot.side.state()
        try:
            await bot.idle(within=600)
        except TimeoutError as e:
            out.say(str(e))
        settled = time.monotonic() - started
        calls = fake.calls[calls_from:]
        channels = {i.channel_id for i in incidents}
        updates = sum(
            1 for c in calls if c.method == "chat.update" and c.args.get("channel") in channels
        )
        posted = sum(
            1
            for ch in channels
            for msg in fake.channels[str(ch)].history
            if "Quick change" in str(msg.get("text", ""))
        )
        refused = sum(1 for c in calls if c.status == 429)
        shown = all(i.shown_version >= i.version for i in await _incidents_at(url))
    change_lag = [max(0.0, changed[t] - acked_changes[t]) for t in acked_changes if t in changed]
    out.say(
        f"{m * k} status updates to {m} incidents acked; stored after {changes_stored:.1f} s; "
        f"Slack showed every one after {settled:.1f} s; bot process: {stall_text(state)}"
    )
    p99 = percentile(change_lag, 99) if change_lag else math.inf
    out.row(
        figure,
        f"acked → stored, {m * k} quick status updates to {m} incidents while the card's and "
        "the channel's calls are paced",
        f"p50 {ms(percentile(change_lag, 50))} · p99 {ms(p99)} "
        f"{target(p99 <= 1.0 and len(changed) == m * k, 'target p99 ≤ 1 s, every one stored')}",
        f"{len(changed)}/{m * k} stored; {posted} posted in their channels; then {updates} card "
        f"updates (fewest that show the latest state: {m}; {m * k} without coalescing); "
        f"every card shows the latest state: {'yes' if shown else 'NO'}; {refused} calls refused "
        "with 429",
    )
    return out


async def _incidents_at(url: str) -> list[Incident]:
    store = Store(url)
    try:
        return await _incidents(store)
    finally:
        await store.close()


# --- what `bench.run` runs ----------------------------------------------------------------------

Figure = Callable[[Sizes, Database], Coroutine[Any, Any, Outcome]]

FIGURES: dict[str, Figure] = {
    "ack": ack_overhead,
    "declare": declare_critical_path,
    "postmortem": postmortem_compile,
    "reminders": reminders_at_scale,
    "throughput": throughput,
    "tiers": under_tiers,
    "stored": stored_under_pacing,
}
# Figures measured on each database; the others run on SQLite.
PER_DATABASE = frozenset({"reminders", "throughput"})


def skipped(name: str, sizes: Sizes, db: Database, reason: str) -> Outcome:
    """The rows a figure would have given on `db`, saying why it did not run."""
    out = Outcome()
    if name == "reminders":
        out.row("4. Reminders at scale", _lateness_measure(sizes, db), "skipped", reason)
        out.row("4. Reminders at scale", _memory_measure(sizes, db), "skipped", reason)
        out.row(
            "4. Reminders at scale",
            f"longest event-loop stall / garbage collection while they go out ({db.label})",
            "skipped",
            reason,
        )
    elif name == "throughput":
        out.row("5. Throughput", _throughput_measure(sizes, db), "skipped", reason)
    return out
