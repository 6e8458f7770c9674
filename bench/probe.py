"""What the bot's own process measures about itself: event-loop stalls, garbage
collections, warnings logged, work in the scheduler. Imports nothing of the fake Slack, so
the bot's process carries none of it."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import re
import time
from collections import Counter


class LoopStalls:
    """Measures how long the event loop goes without running other work: a task asks to
    wake every `tick` s and records how late it wakes. A request arriving meanwhile (an
    ack Slack waits for) waits at least that long. Garbage collections are timed too, as
    one cause of stalls."""

    def __init__(self, tick: float = 0.005) -> None:
        self.tick = tick
        self.longest = 0.0
        self.longest_gc = 0.0
        self.collections = 0
        self._gc_started = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _watch(self) -> None:
        while True:
            before = time.perf_counter()
            await asyncio.sleep(self.tick)
            self.longest = max(self.longest, time.perf_counter() - before - self.tick)

    def _gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._gc_started = time.perf_counter()
        else:
            self.collections += 1
            self.longest_gc = max(self.longest_gc, time.perf_counter() - self._gc_started)

    def reset(self) -> None:
        self.longest = self.longest_gc = 0.0
        self.collections = 0

    def summary(self) -> str:
        return (
            f"longest event-loop stall {self.longest * 1000:.0f} ms (longest garbage "
            f"collection {self.longest_gc * 1000:.0f} ms)"
        )

    async def __aenter__(self) -> LoopStalls:
        gc.callbacks.append(self._gc)
        self._task = asyncio.create_task(self._watch())
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        gc.callbacks.remove(self._gc)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


class Warnings(logging.Handler):
    """Counts the warnings and errors logged while a figure runs, by logger and message."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.seen: Counter[str] = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        # One entry per kind of message: numbers and times vary between repeats.
        shape = re.sub(r"\d[\d:.\-]*", "N", message)[:160]
        self.seen[f"{record.name}: {shape}"] += 1

    def __enter__(self) -> Warnings:
        logging.getLogger().addHandler(self)
        return self

    def __exit__(self, *exc_info: object) -> None:
        logging.getLogger().removeHandler(self)

    def summary(self) -> str:
        if not self.seen:
            return "no warnings logged"
        return "warnings logged: " + "; ".join(f"{n}× {what}" for what, n in self.seen.items())


def scheduler_jobs() -> int:
    """APScheduler's own job-running tasks in flight (around what `BotApp.busy()` counts)."""
    running = 0
    for task in asyncio.all_tasks():
        code = getattr(task.get_coro(), "cr_code", None)
        if "apscheduler" in (getattr(code, "co_filename", "") or ""):
            running += 1
    return running
