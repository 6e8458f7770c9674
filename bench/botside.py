"""The measured side of a figure, in a process of its own: the real bot (or a bare Bolt app
for comparison), and nothing else. The fake Slack and the load generator run in the figure's
process, so this process's memory, event loop and garbage collections are the bot's alone.

`python -m bench.botside CONFIG_JSON` serves the app on a free port and a small control
server on another, then prints one JSON line (`{"port": …, "control": …}`). The control
server answers the figure's questions from inside the process:

- `GET /state`: work in flight, incidents provisioned, the longest event-loop stall and
  garbage collection since the last reset;
- `POST /stalls/reset`: start a new stall measurement;
- `POST /postmortem`: time the bot's compile path and, for comparison, a plain slack_sdk
  pagination loop in this same process;
- `POST /stop`: stop the app (letting work in flight finish) and report the warnings it
  logged; the process then exits.

Polling it costs the bot a little work; the figures poll at most ten times a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import json
import logging
import os
import sys
import time
from dataclasses import replace
from typing import Any

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy import func, select
from sqlmodel import col

from bench.probe import LoopStalls, Warnings, scheduler_jobs
from bot.__main__ import setup_logging
from bot.app import EVENTS_PATH, BotApp
from bot.base.settings import Settings
from bot.base.work import tune_collector
from bot.model.tables import Incident

# How often the stall probe wakes: a stall shorter than this is not seen.
TICK = 0.005


def bare_bolt(signing_secret: str, token: str, api_url: str) -> web.Application:
    """Bolt with nothing of the bot: signature checks on, one listener that only acks,
    served the same way the bot serves (aiohttp, Bolt's aiohttp adapter)."""
    bolt = AsyncApp(
        signing_secret=signing_secret,
        # The token is learned once (auth.test on the first request) and cached.
        client=AsyncWebClient(token=token, base_url=api_url),
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


async def plain_fetch(
    client: AsyncWebClient, channel_id: str, *, concurrency: int, page_limit: int
) -> tuple[int, int]:
    """The fewest-frills fetch: page history, then every thread's replies; no processing.
    Returns (top-level messages, replies)."""
    tops: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        page = await client.conversations_history(
            channel=channel_id, limit=page_limit, cursor=cursor
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
                    channel=channel_id, ts=ts, limit=page_limit, cursor=cursor
                )
                replies += len(page["messages"])
                cursor = (page.get("response_metadata") or {}).get("next_cursor") or None
                if cursor is None:
                    return

    await asyncio.gather(*(thread(m["ts"]) for m in tops if m.get("reply_count")))
    return len(tops), replies


class Side:
    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.stalls = LoopStalls(tick=TICK)
        self.warnings = Warnings()
        self.app: BotApp | None = None
        self.runner: web.AppRunner | None = None
        self.stopped = asyncio.Event()

    async def start(self) -> int:
        values = self.config["settings"]
        if self.config["mode"] == "bare":
            bare = bare_bolt(
                values["slack_signing_secret"], values["slack_bot_token"], values["slack_api_url"]
            )
            self.runner = web.AppRunner(bare, access_log=None)
            await self.runner.setup()
            site = web.TCPSite(self.runner, "127.0.0.1", 0)
            await site.start()
            return int(self.runner.addresses[0][1])
        settings = Settings(_env_file=None, **values)  # type: ignore[call-arg]
        self.app = BotApp(settings, reminder_sync_seconds=self.config["reminder_sync_seconds"])
        await self.app.start(host="127.0.0.1", port=0)
        tune_collector()  # as `python -m bot` does once started
        assert self.app.port is not None
        return int(self.app.port)

    # -- control ------------------------------------------------------------------------------

    def control_app(self) -> web.Application:
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_get("/state", self.state)
        app.router.add_post("/stalls/reset", self.reset)
        app.router.add_post("/postmortem", self.postmortem)
        app.router.add_post("/stop", self.stop)
        return app

    async def state(self, request: web.Request) -> web.Response:
        busy = 0
        provisioned = 0
        if self.app is not None:
            busy = self.app.busy() + scheduler_jobs()
            if request.query.get("provisioned"):
                async with self.app.store.sessions() as s:
                    stmt = (
                        select(func.count()).select_from(Incident).where(col(Incident.provisioned))
                    )
                    provisioned = int((await s.execute(stmt)).scalar_one())
        return web.json_response(
            {
                "busy": busy,
                "provisioned": provisioned,
                "stall": self.stalls.longest,
                "gc": self.stalls.longest_gc,
                "gc_count": self.stalls.collections,
            }
        )

    async def reset(self, request: web.Request) -> web.Response:
        before = {"stall": self.stalls.longest, "gc": self.stalls.longest_gc}
        self.stalls.reset()
        return web.json_response(before)

    async def postmortem(self, request: web.Request) -> web.Response:
        """One timed run of `what`: "compile" (the bot's compile path without storing or
        uploading: `Postmortems.draft`, with no names known as on a fresh start),
        "history" (`fetch_history` alone) or "plain" (a plain slack_sdk loop with the
        bot's concurrency)."""
        from bot.operations.postmortem import Postmortems
        from bot.outbound.slack.directory import Directory
        from bot.outbound.slack.history import PAGE_LIMIT, REPLIES_CONCURRENCY, fetch_history
        from bot.views.postmortem import PostmortemFacts

        assert self.app is not None
        app = self.app
        body = await request.json()
        channel, what = body["channel"], body["what"]
        answer: dict[str, Any] = {}
        gc.collect()
        if what == "plain":
            client = AsyncWebClient(
                token=app.settings.slack_bot_token.get_secret_value(),
                base_url=app.settings.slack_api_url,
            )
            started = time.perf_counter()
            got = await plain_fetch(
                client, channel, concurrency=REPLIES_CONCURRENCY, page_limit=PAGE_LIMIT
            )
            answer = {"seconds": time.perf_counter() - started, "got": list(got)}
        elif what == "history":
            started = time.perf_counter()
            await fetch_history(app.client, channel)
            answer = {"seconds": time.perf_counter() - started}
        else:
            directory = Directory(app.client)
            directory.bot_user_id = app.directory.bot_user_id
            directory.bot_id = app.directory.bot_id
            compiler = Postmortems(
                replace(app.deps, directory=directory),
                functools.partial(fetch_history, app.client),
            )
            gather = compiler.facts
            fetched = 0.0

            async def facts(incident_id: int) -> PostmortemFacts:
                nonlocal fetched
                found = await gather(incident_id)
                fetched = time.perf_counter()
                return found

            # The bot's own path, timed where the facts are in.
            compiler.facts = facts  # type: ignore[method-assign]
            started = time.perf_counter()
            markdown = await compiler.draft(int(body["incident_id"]))
            done = time.perf_counter()
            answer = {
                "seconds": done - started,
                "fetch": fetched - started,
                "render": done - fetched,
                "size": len(markdown.encode()),
            }
        return web.json_response(answer)

    async def stop(self, request: web.Request) -> web.Response:
        grace = float(request.query.get("grace", "30"))
        if self.app is not None:
            await self.app.stop(grace=grace)
        elif self.runner is not None:
            await self.runner.cleanup()
        self.stopped.set()
        return web.json_response({"warnings": dict(self.warnings.seen)})

    async def main(self) -> None:
        if self.config["mode"] != "bare":
            # Logged as `python -m bot` logs, at the level of its settings (INFO as
            # deployed): formatting and writing the lines is part of what is measured.
            values = self.config["settings"]
            settings = Settings(_env_file=None, **values)  # type: ignore[call-arg]
            setup_logging(settings, settings.log_level)
        logging.getLogger().addHandler(self.warnings)
        async with self.stalls:
            port = await self.start()
            control = web.AppRunner(self.control_app(), access_log=None)
            await control.setup()
            site = web.TCPSite(control, "127.0.0.1", 0)
            await site.start()
            print(
                json.dumps({"port": port, "control": control.addresses[0][1], "pid": os.getpid()}),
                flush=True,
            )
            await self.stopped.wait()
            await asyncio.sleep(0.05)  # let the answer to /stop go out
            await control.cleanup()


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.WARNING, format="    %(levelname)s %(name)s: %(message)s")
    config = json.loads(argv[0])
    side = Side(config)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(side.main())
    sys.stdout.flush()
    sys.stderr.flush()
    # A worker thread a library left behind must not hold up the figure.
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
