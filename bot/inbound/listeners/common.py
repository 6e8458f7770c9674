"""What every listener shares: the operations it may call, and answers that always reach
the person."""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from slack_bolt.async_app import AsyncBoltContext, AsyncRespond
from slack_sdk.errors import SlackApiError
from slack_sdk.models.blocks import Block

from bot.base.errors import BadInput, DatabaseUnavailable, SlackFailure, slack_error
from bot.base.settings import Settings
from bot.base.work import Slots
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

Body = dict[str, Any]
Reply = Callable[[str, list[Block] | None], Awaitable[None]]
Matcher = str | re.Pattern[str]


@dataclass(frozen=True)
class Operations:
    """Everything a listener may call: the incident operations and the person's answers.

    Each listener takes it as its first argument, bound with functools.partial where it is
    registered; Bolt passes the rest by name. Bolt would also pass a value a middleware put
    in its context, but mypy cannot see that it is there, nor of which type: `partial`'s
    arguments it checks against the function's."""

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
    """Run a listener's lazy work in one of a bounded number of slots (`waits=False` for
    work that cannot wait, such as opening a form before its trigger expires); whatever
    fails, the person hears about it privately.

    Bolt has neither: its lazy listeners start at once, as many as come, and a failure is
    only logged. So the slot is taken here, by the work that may wait, rather than around
    all lazy work; and the answer is given here, where it is known what the person asked."""
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


def installation_team(context: AsyncBoltContext, asked: str | None) -> str:
    """The team incidents are numbered in: the installation's (learned at start-up), not the
    team a request carries (Slack Connect, Enterprise Grid); `asked` if there is none."""
    authorized = context.authorize_result
    return (authorized.team_id if authorized is not None else None) or asked or ""
