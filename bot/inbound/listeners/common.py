"""What every listener shares: the operations it may call, registration that counts work in
flight, and answers that always reach the person."""

from __future__ import annotations

import asyncio
import functools
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from slack_bolt.async_app import AsyncApp, AsyncRespond
from slack_sdk.errors import SlackApiError
from slack_sdk.models.blocks import Block

from bot.base.errors import BadInput, DatabaseUnavailable, SlackFailure, log_failure, slack_error
from bot.base.settings import Settings
from bot.base.work import InFlight, Slots
from bot.model.rules import Changed
from bot.model.tables import Incident
from bot.operations.alerts import Intake
from bot.operations.home import Home
from bot.operations.incidents.declare import Declaration, Declarations
from bot.operations.incidents.drift import Drift
from bot.operations.incidents.find import Finder
from bot.operations.incidents.response import Response
from bot.operations.incidents.timeline import Timeline
from bot.operations.postmortem import Postmortems
from bot.operations.report import Reports
from bot.outbound.slack.replies import Replies
from bot.outbound.store.engine import watching_writes
from bot.views import answers

log = logging.getLogger(__name__)

COMMAND = "/incident"

Reply = Callable[[str, list[Block] | None], Awaitable[None]]
F = TypeVar("F", bound=Callable[..., Awaitable[Any]])
Matcher = str | re.Pattern[str]


@dataclass(frozen=True)
class Operations:
    """Everything a listener may call: the incident operations and the person's answers."""

    settings: Settings
    find: Finder
    declarations: Declarations
    alerts: Intake
    drift: Drift
    response: Response
    timeline: Timeline
    postmortems: Postmortems
    replies: Replies
    reports: Reports
    home: Home
    # Operations running at once, sized to the database pool: a burst waits in line here,
    # holding no connection and little memory, instead of every operation waiting for a
    # connection at once (and some running out of time).
    slots: Slots


class Listen:
    """Bolt's registration: each listener answers Slack as soon as it acks, and its work
    goes on, counted as work in flight until it ends."""

    def __init__(self, bolt: AsyncApp, inflight: InFlight, slots: Slots):
        self.bolt = bolt
        self.inflight = inflight
        self.slots = slots

    def _on(self, register: Callable[[Callable[..., Any]], Any]) -> Callable[[F], F]:
        def decorate(fn: F) -> F:
            register(self._answering_at_ack(fn))
            return fn

        return decorate

    def _answering_at_ack(self, fn: F) -> F:
        """Bolt (with process_before_response) answers the request when the listener
        returns; left to itself it would poll every 10 ms for an ack while the listener
        goes on. So the listener runs as a task of its own, and this returns once it has
        acked (or ended, or failed before acking, which Bolt then reports). The wrapper
        keeps `fn`'s signature visible: Bolt reads the argument names to know what to
        pass."""

        @functools.wraps(fn)
        async def run(**kwargs: Any) -> None:
            acked = asyncio.Event()
            ack = kwargs.get("ack")
            if ack is not None:

                async def ack_and_answer(*args: Any, **kw: Any) -> Any:
                    try:
                        return await ack(*args, **kw)
                    finally:
                        acked.set()

                kwargs["ack"] = ack_and_answer
            task: asyncio.Task[Any] = self.inflight.spawn(_coroutine(fn(**kwargs)))
            if ack is None:
                # Events: nobody waits for an answer, and Bolt acks them itself.
                task.add_done_callback(_log_unexpected)
                return
            waiting = asyncio.ensure_future(acked.wait())
            try:
                await asyncio.wait({task, waiting}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                waiting.cancel()
            if task.done():
                task.result()  # a failure before any ack is Bolt's to report
            else:
                task.add_done_callback(_log_unexpected)

        return cast(F, run)

    def command(self, name: str) -> Callable[[F], F]:
        return self._on(self.bolt.command(name))

    def action(self, action_id: Matcher) -> Callable[[F], F]:
        return self._on(self.bolt.action(action_id))

    def view(self, callback_id: str) -> Callable[[F], F]:
        return self._on(self.bolt.view(callback_id))

    def event(self, event: str) -> Callable[[F], F]:
        """An Events API listener. Nobody waits for its answer, so a failure is logged:
        one line for Slack or the database saying no, a traceback for anything else."""
        register = self._on(self.bolt.event(event))

        def decorate(fn: F) -> F:
            @functools.wraps(fn)
            async def logged(*args: Any, **kwargs: Any) -> None:
                async with self.slots:
                    try:
                        await fn(*args, **kwargs)
                    except Exception as e:
                        log_failure(log, f"could not handle a {event} event", e)

            register(cast(F, logged))
            return fn

        return decorate

    def shortcut(self, callback_id: str) -> Callable[[F], F]:
        return self._on(self.bolt.shortcut(callback_id))


async def _coroutine(work: Awaitable[Any]) -> Any:
    return await work


def _log_unexpected(task: asyncio.Task[Any]) -> None:
    """A listener's failure after its ack (guarded work tells the person itself)."""
    if not task.cancelled() and task.exception() is not None:
        log.error("a listener failed after answering Slack", exc_info=task.exception())


def sorry(action: str, e: Exception, *, stored: bool = False) -> str:
    """What the person hears when `action` failed with `e`; `stored` when something of
    it had been stored already (so it must not be retried)."""
    if isinstance(e, BadInput | SlackFailure):
        return f":warning: {e}"
    if isinstance(e, DatabaseUnavailable):
        if stored:
            return (
                ":warning: Your change was saved, but the database stopped answering before "
                "the bot had finished. Slack catches up once the database is back; "
                "there is no need to try again."
            )
        return (
            f":warning: Could not {action}: the database is unavailable, so nothing was "
            "changed. Please try again in a minute."
        )
    if isinstance(e, SlackApiError):
        return f":warning: Slack refused to {action} (`{slack_error(e)}`). Please try again."
    return (
        f":warning: Something went wrong while trying to {action}. "
        "The details are in the bot's log; please try again."
    )


async def guarded(
    ops: Operations,
    action: str,
    reply: Reply,
    work: Callable[[], Awaitable[None]],
    *,
    waits: bool = True,
) -> None:
    """Run work after the ack, in one of a bounded number of slots (`waits=False` for work
    that cannot wait, such as opening a form before its trigger expires); whatever fails,
    the person hears about it privately."""
    if not waits:
        await _guarded(action, reply, work)
        return
    async with ops.slots:
        await _guarded(action, reply, work)


async def _guarded(action: str, reply: Reply, work: Callable[[], Awaitable[None]]) -> None:
    with watching_writes() as writes:
        try:
            await work()
        except (BadInput, SlackFailure) as e:
            await reply(sorry(action, e), None)
        except DatabaseUnavailable as e:
            log.warning("could not %s: the database is unavailable (%s)", action, e)
            await reply(sorry(action, e, stored=writes.stored), None)
        except Exception as e:
            log.exception("failed to %s", action)
            await reply(sorry(action, e), None)


def responder(respond: AsyncRespond) -> Reply:
    """Answer through the command's response URL, visible only to the person."""

    async def reply(text: str, body: list[Block] | None = None) -> None:
        await respond(text=text, blocks=body, response_type="ephemeral", replace_original=False)

    return reply


def privately(ops: Operations, channel: str | None, user: str) -> Reply:
    """Answer privately where the person is; a DM when the bot cannot post there."""

    async def reply(text: str, body: list[Block] | None = None) -> None:
        await ops.replies.privately(channel, user, text, body)

    return reply


async def tell(done: Changed, reply: Reply, *, always: bool = False) -> None:
    """Answer an operation honestly: when it did nothing (a repeat, or no change), when it
    is stored but Slack did not show it everywhere, or (`always`) that it is done. A
    change that shows in the channel needs no other answer."""
    if done.changed and done.problems:
        await reply(answers.stored_but(done.message, done.problems), None)
    elif (always or not done.changed) and done.message:
        await reply(done.message, None)


async def open_form(ops: Operations, trigger_id: str, view: Any, reply: Reply) -> None:
    if not await ops.replies.open_form(trigger_id, view):
        await reply(":hourglass: Slack took too long to open the form. Please try again.", None)


async def declare(ops: Operations, request: Declaration, reply: Reply) -> None:
    """The one declare path of the command and the form: declare, then say where."""

    async def paced(incident: Incident) -> None:
        await reply(answers.declared_while_paced(incident), None)

    async def ready(incident: Incident) -> None:
        await reply(answers.declared_answer(incident), None)

    declared = await ops.declarations.declare(request, paced=paced, ready=ready)
    if declared.created and not declared.queued:
        await reply(answers.declared_answer(declared.incident), None)
