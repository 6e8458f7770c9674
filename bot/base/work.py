"""Work in flight: every listener run, reminder, repair and background task is counted, so
stopping can wait for them and tests can tell when the bot has settled."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import contextvars
import gc
import math
import time
from collections.abc import AsyncIterator, Coroutine, Hashable, Iterator
from contextlib import asynccontextmanager
from typing import Any, TypeVar

T = TypeVar("T")


class InFlight:
    def __init__(self) -> None:
        self._tasks: dict[asyncio.Task[Any], int] = {}
        # Housekeeping a stop waits for but that is not work anyone is waiting on (the
        # periodic look at due times): left out of count(), so it never looks busy.
        self._housekeeping: set[asyncio.Task[Any]] = set()

    def count(self) -> int:
        return sum(self._tasks.values())

    @asynccontextmanager
    async def housekeeping(self) -> AsyncIterator[None]:
        """Let a stop wait for the current task's block, without counting it as work."""
        task = asyncio.current_task()
        assert task is not None
        self._housekeeping.add(task)
        try:
            yield
        finally:
            self._housekeeping.discard(task)

    @asynccontextmanager
    async def track(self) -> AsyncIterator[None]:
        """Count the current task's work until the block ends."""
        task = asyncio.current_task()
        assert task is not None
        self._tasks[task] = self._tasks.get(task, 0) + 1
        try:
            yield
        finally:
            left = self._tasks[task] - 1
            if left:
                self._tasks[task] = left
            else:
                del self._tasks[task]

    def spawn(self, work: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        """Run `work` in the background, counted from this moment until it ends."""
        task = asyncio.ensure_future(work)
        self._tasks[task] = self._tasks.get(task, 0) + 1
        task.add_done_callback(self._ended)
        return task

    def _ended(self, task: asyncio.Task[Any]) -> None:
        self._tasks.pop(task, None)

    async def wait(self, grace: float) -> None:
        """Wait for the work in flight (not the caller's own) to end; cancel what is left."""
        current = asyncio.current_task()
        pending = [
            t for t in (*self._tasks, *self._housekeeping) if t is not current and not t.done()
        ]
        if not pending:
            return
        _, late = await asyncio.wait(pending, timeout=grace)
        for task in late:
            task.cancel()
        if late:
            # Let the cancelled work unwind (release its database connection) before the
            # caller closes what it uses.
            await asyncio.wait(late, timeout=2.0)


class KeyedLocks:
    """One lock per key (an incident), kept only while someone holds or waits for it: a
    process that has seen thousands of incidents does not keep a lock for each. An
    operation that must wait for one (behind another's Slack work) gives its work slot
    back first, as it does for Slack's pacing: what it stored is stored, and the next one
    in line stores its change meanwhile."""

    def __init__(self) -> None:
        self._locks: dict[Hashable, tuple[asyncio.Lock, int]] = {}

    def __len__(self) -> int:
        return len(self._locks)

    @asynccontextmanager
    async def hold(self, key: Hashable) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (None, 0))
        if lock is None:
            lock = asyncio.Lock()
        self._locks[key] = (lock, users + 1)
        if lock.locked():
            give_back()
        try:
            async with lock:
                yield
        finally:
            _, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


class _Held:
    """A slot an operation holds, given back once: when the operation ends, or earlier
    when it starts waiting for Slack's pacing (`give_back`)."""

    def __init__(self, slots: Slots, previous: _Held | None):
        self.slots: Slots | None = slots
        # The slot held around this one (nested operations), held again once this ends.
        self.previous = previous

    def release(self) -> None:
        if self.slots is not None:
            slots, self.slots = self.slots, None
            slots._release()


_holding: contextvars.ContextVar[_Held | None] = contextvars.ContextVar("holding", default=None)


def give_back() -> None:
    """The operation running here will wait (for Slack's pacing) and needs no slot for that:
    its slot goes to the next one in line, whose change is then stored at once rather than
    after this wait. What it stored is stored already; it goes on without a slot."""
    held = _holding.get()
    while held is not None:
        held.release()
        held = held.previous


class Slots:
    """Operations running at once: up to `most` (the database pool), but only `while_busy`
    while people's requests keep arriving, so that their acks do not wait behind work that
    can. Waiters start in the order they came; none waits for arrivals to pause once a
    slot is free under the lower limit. An operation that waits for Slack's pacing gives
    its slot back (`give_back`)."""

    def __init__(self, most: int, *, while_busy: int, quiet: float = 0.05) -> None:
        self.most = most
        self.while_busy = while_busy
        # Arrivals this close together count as one burst.
        self.quiet = quiet
        self.running = 0
        self._busy_until = -math.inf
        self._waiting: collections.deque[asyncio.Future[None]] = collections.deque()
        self._timer: asyncio.TimerHandle | None = None

    def arrived(self) -> None:
        """A person's request came in (its ack is due)."""
        self._busy_until = time.monotonic() + self.quiet

    def _limit(self) -> int:
        return self.while_busy if time.monotonic() < self._busy_until else self.most

    async def __aenter__(self) -> None:
        await self._take()
        _holding.set(_Held(self, _holding.get()))

    async def _take(self) -> None:
        if not self._waiting and self.running < self._limit():
            self.running += 1
            return
        slot = asyncio.get_running_loop().create_future()
        self._waiting.append(slot)
        self._wake()
        try:
            await slot
        except asyncio.CancelledError:
            if slot.done() and not slot.cancelled():
                self._release()  # given a slot just as it was cancelled
            else:
                with contextlib.suppress(ValueError):
                    self._waiting.remove(slot)
            raise

    async def __aexit__(self, *exc_info: object) -> None:
        held = _holding.get()
        assert held is not None
        _holding.set(held.previous)
        held.release()

    def _release(self) -> None:
        self.running -= 1
        self._wake()

    def _wake(self) -> None:
        limit = self._limit()
        while self._waiting and self.running < limit:
            slot = self._waiting.popleft()
            if not slot.done():
                self.running += 1
                slot.set_result(None)
        if self._waiting and self.running < self.most and self._timer is None:
            # Held back by arrivals: look again when they may have paused.
            delay = max(self._busy_until - time.monotonic(), 0.001)
            self._timer = asyncio.get_running_loop().call_later(delay, self._look_again)

    def _look_again(self) -> None:
        self._timer = None
        self._wake()


async def after_its_request() -> None:
    """Two turns of the event loop: work just started sends its request, then the body,
    before the caller goes on (with something that would delay it)."""
    await asyncio.sleep(0)
    await asyncio.sleep(0)


_full_collections_held = 0
_threshold: tuple[int, int, int] | None = None


@contextlib.contextmanager
def full_collections_held() -> Iterator[None]:
    """No full garbage collection while the block runs (holds may nest and overlap).

    A postmortem compile makes hundreds of thousands of objects that all live until it
    ends; a full collection among them walks every one (185 ms with 50,000 messages, the
    whole process stalled) and frees nothing. Reference counting frees everything else as
    usual, and the first full collection after the hold finds any cycles.
    """
    global _full_collections_held, _threshold
    if _full_collections_held == 0:
        _threshold = gc.get_threshold()
        gc.set_threshold(_threshold[0], _threshold[1], 1_000_000)
    _full_collections_held += 1
    try:
        yield
    finally:
        _full_collections_held -= 1
        if _full_collections_held == 0 and _threshold is not None:
            gc.set_threshold(*_threshold)


def tune_collector() -> None:
    """The garbage collector as the bot's own process wants it, once started: called by
    its entry point (`python -m bot`), never by code that tests import, since it changes
    the whole process.

    What start-up built lives as long as the process: frozen out of the collector's sight,
    a full collection no longer walks it (shorter pauses under load). Full collections come
    a tenth as often as Python's default: under a burst each one walks every live request
    and stalls every other request while it does (the bench's longest collection went from
    about 95 ms to under 40 ms). Reference counting still frees all but cyclic garbage at
    once."""
    gc.collect()
    gc.freeze()
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, 100)
