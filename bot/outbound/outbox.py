"""The outbox: one way out of the bot for every effect on an outside system.

An operation records each effect (`Planned`) in the same transaction as the change that
causes it, so a change is never stored without its effects, nor an effect without its
change. The worker below delivers them through the gateway (`Courier`) of their kind.

| what happens                               | what the outbox does                          |
|--------------------------------------------|-----------------------------------------------|
| two processes see the same due effect      | one claims it (compare-and-set on its lease); |
|                                            | the other moves on                            |
| the remote says no for now (429, 5xx,      | tries again with backoff (doubling from       |
| timeout, connection refused)               | `first_retry`, at most `longest_retry`,       |
|                                            | later if the remote says when); the remote's  |
|                                            | reason is kept on the row                     |
| the remote refuses for good (other 4xx)    | failed, with the remote's reason; no retry    |
| still failing after the kind's patience    | failed, with the last reason                  |
| (`Courier.give_up_after`)                  |                                               |
| the process dies between sending and       | the claim lapses; another process sends       |
| recording                                  | again with the same key, which the remote     |
|                                            | uses to refuse doing it twice                 |
| the remote does the work but answers after | a passing failure; the next attempt carries   |
| the attempt's timeout                      | the same key, so the work is not done twice   |
| a slow remote                              | delays only its own lane: lanes are delivered |
|                                            | side by side, `CONCURRENCY` at a time         |
| an effect fails for good                   | `on_failed` tells people once (across         |
|                                            | processes), then the row is marked reported   |

Effects of one lane (say, one incident's events to one URL) are delivered in the order
they were recorded: only the oldest pending effect of a lane may be claimed.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol

import aiohttp

from bot.base.clock import Clock, utcnow
from bot.base.errors import log_failure
from bot.model.tables import Effect
from bot.outbound.store.effects import Effects

log = logging.getLogger(__name__)

# Effects delivered side by side (different lanes); a slow remote holds only its own.
CONCURRENCY = 8
# Effects looked at per pass.
BATCH = 50


class Passing(Exception):
    """The remote could not do it now; worth trying again (optionally not before
    `retry_after` seconds, as the remote asked)."""

    def __init__(self, reason: str, *, retry_after: float | None = None):
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class Refused(Exception):
    """The remote refused for good (a bad token, a missing project, an invalid payload)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class Courier(Protocol):
    """A gateway's delivery of one kind of effect.

    `deliver` must be safe to call twice for one effect: it sends `effect.key` where the
    remote takes an idempotency key, or asks the remote first whether the work is done.
    It returns what the remote gave back (stored on the row), or raises `Passing` or
    `Refused`.
    """

    kind: str
    # Seconds one attempt may take; an attempt still waiting then counts as passing.
    timeout: float
    # How long to keep trying before the effect fails for good.
    give_up_after: timedelta

    async def deliver(self, effect: Effect) -> dict[str, Any] | None: ...


@dataclass(frozen=True)
class Backoff:
    first_retry: float = 5.0
    longest_retry: float = 600.0

    def delay(self, effect: Effect, asked: float | None) -> float:
        """Doubling from `first_retry` per attempt, spread by the effect's key so a burst
        that failed together does not come back together; never sooner than the remote
        asked."""
        base = min(self.longest_retry, self.first_retry * 2 ** max(effect.attempts - 1, 0))
        spread = int(hashlib.sha256(effect.key.encode()).hexdigest()[:4], 16) / 0xFFFF
        wait = base * (0.5 + spread / 2)
        return float(max(wait, asked or 0.0))


def process_name() -> str:
    """Who holds a claim: this host and process (and a nonce, for restarts reusing a pid)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Outbox:
    """Delivers recorded effects through their couriers, in the background.

    `wake()` after a commit that recorded effects delivers them at once; without it (say,
    another process recorded them) the next poll finds them.
    """

    def __init__(
        self,
        effects: Effects,
        couriers: Mapping[str, Courier],
        *,
        clock: Clock = utcnow,
        owner: str | None = None,
        backoff: Backoff | None = None,
        poll: float = 2.0,
        on_failed: Callable[[Effect], Awaitable[None]] | None = None,
    ):
        self.effects = effects
        self.couriers = dict(couriers)
        self.clock = clock
        self.owner = owner or process_name()
        self.backoff = backoff or Backoff()
        self.poll = poll
        self.on_failed = on_failed
        self._wake = asyncio.Event()
        self._lanes: dict[str, asyncio.Task[None]] = {}

    def wake(self) -> None:
        self._wake.set()

    def _lease(self, courier: Courier) -> timedelta:
        # Longer than any attempt, so a live process never loses its claim mid-attempt.
        return timedelta(seconds=max(60.0, 2 * courier.timeout))

    async def run(self) -> None:
        """Deliver until cancelled: a pass whenever woken, or every `poll` seconds."""
        while True:
            # Cleared before the pass, so a wake during it brings another pass at once.
            self._wake.clear()
            try:
                await self.run_once()
                await self.report_failures()
            except Exception as e:
                log_failure(log, "The outbox could not look for effects to deliver", e)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll)

    async def run_once(self) -> int:
        """Start delivering what is due now (lanes not already being delivered here);
        returns how many were claimed. `settle()` waits for them."""
        # A lane stays busy until its attempt's callback lets it go.
        busy = list(self._lanes)
        room = CONCURRENCY - len(busy)
        if room <= 0 or not self.couriers:
            return 0
        now = self.clock()
        started = 0
        # Claim no more than can be attempted at once, so no claim waits out its lease;
        # only kinds this process can deliver.
        due = await self.effects.due(now, limit=room, skip_lanes=busy, kinds=list(self.couriers))
        for effect in due:
            courier = self.couriers[effect.kind]
            assert effect.id is not None
            if not await self.effects.claim(
                effect.id, self.owner, now=now, until=now + self._lease(courier)
            ):
                continue
            effect.attempts += 1
            task = asyncio.create_task(self._attempt(effect, courier))
            self._lanes[effect.lane] = task
            task.add_done_callback(functools.partial(self._finished, effect.lane))
            started += 1
        return started

    def _finished(self, lane: str, _task: asyncio.Task[None]) -> None:
        self._lanes.pop(lane, None)
        # The lane's next effect may be due now.
        self._wake.set()

    async def settle(self) -> None:
        """Wait for the attempts under way in this process."""
        while self._lanes:
            await asyncio.gather(*self._lanes.values(), return_exceptions=True)

    async def stop(self, grace: float) -> None:
        """Let the attempts under way finish for up to `grace` seconds; those still waiting
        then are let go, to be sent again (with the same key) by the next process."""
        pending = list(self._lanes.values())
        if not pending:
            return
        _, late = await asyncio.wait(pending, timeout=grace)
        for task in late:
            task.cancel()
        if late:
            await asyncio.wait(late)

    async def drain(self) -> None:
        """Deliver everything due now, lane by lane, until nothing more is (tests, CLI)."""
        while await self.run_once():
            await self.settle()

    async def _attempt(self, effect: Effect, courier: Courier) -> None:
        assert effect.id is not None
        try:
            async with asyncio.timeout(courier.timeout):
                result = await courier.deliver(effect)
        except asyncio.CancelledError:
            # Stopping: give the claim back so the next process need not wait out the
            # lease. The remote may have done it; the key keeps a second send harmless.
            await asyncio.shield(
                self.effects.again(
                    effect.id, self.owner, "stopped before an answer", at=self.clock()
                )
            )
            raise
        except Refused as e:
            await self._failed(effect, e.reason)
        except Passing as e:
            await self._again(effect, courier, e.reason, e.retry_after)
        except TimeoutError:
            await self._again(effect, courier, f"no answer within {courier.timeout:g} s", None)
        except aiohttp.ClientError as e:
            await self._again(effect, courier, f"{type(e).__name__}: {e}", None)
        except Exception as e:
            # A fault of ours, not the remote's: logged in full, and tried again so a
            # fixed deployment delivers it.
            log_failure(log, f"Delivering {effect.kind} {effect.key} failed", e)
            await self._again(effect, courier, f"internal error: {type(e).__name__}", None)
        else:
            await self.effects.done(effect.id, result, now=self.clock())
            log.info("Delivered %s %s (attempt %d)", effect.kind, effect.key, effect.attempts)

    async def _again(
        self, effect: Effect, courier: Courier, reason: str, asked: float | None
    ) -> None:
        assert effect.id is not None
        now = self.clock()
        if now - effect.created_at >= courier.give_up_after:
            await self._failed(effect, reason)
            return
        at = now + timedelta(seconds=self.backoff.delay(effect, asked))
        await self.effects.again(effect.id, self.owner, reason, at=at)
        log.info(
            "Will try %s %s again at %s: %s", effect.kind, effect.key, f"{at:%H:%M:%S}", reason
        )

    async def _failed(self, effect: Effect, reason: str) -> None:
        assert effect.id is not None
        if await self.effects.failed(effect.id, self.owner, reason, now=self.clock()):
            log.warning("Gave up on %s %s: %s", effect.kind, effect.key, reason)
            self._wake.set()

    async def report_failures(self) -> None:
        """Tell people of effects that failed for good, each once across processes."""
        if self.on_failed is None:
            return
        for effect in await self.effects.to_report():
            assert effect.id is not None
            if not await self.effects.reporting(effect.id):
                continue
            try:
                await self.on_failed(effect)
            except Exception as e:
                log_failure(log, f"Could not tell anyone that {effect.key} failed", e)
                # Told nobody: the next pass (here or elsewhere) tries again.
                await self.effects.unreported(effect.id)
