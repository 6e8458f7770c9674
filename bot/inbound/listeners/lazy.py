"""Bolt's lazy listeners as the bot runs them.

Each listener is registered as `ack=`, run before Slack has its answer (with
`process_before_response`, Bolt answers when the ack function returns), and `lazy=[...]`,
the work after it. What only the ack can say stays in the ack function: help, a command's
refusal, a form's errors. Bolt's own runner does not fit this bot as it is, in four ways,
so `LazyWork` starts lazy work instead:

- Bolt starts lazy work on a deep copy of the request (made for adapters that invoke the
  app again, as on AWS Lambda). The copy takes in the request's Web API client, whose
  aiohttp session (shared with the bot's own client, see `BotApp.start`) cannot be copied:
  Bolt answers Slack with a 500. Here the work runs in this process after the answer, so it
  reads the request itself.
- Bolt starts it as a bare task; here it is work in flight (`InFlight`), which stopping waits
  for and tests settle on.
- Bolt starts it whatever the ack said; here only after the ack function `accept`ed the
  request (a refused form or command, or an ack function that failed, has no work).
- Bolt logs a failure as one line with no traceback; here as every background failure is.

The slot the work runs in, and the person's answer when it fails, are the work's own
(`common.guarded`): Bolt has neither.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncBoltContext
from slack_bolt.kwargs_injection.async_utils import build_async_required_kwargs
from slack_bolt.listener.asyncio_runner import AsyncioListenerRunner
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.util.utils import get_arg_names_of_callable

from bot.base.errors import log_failure
from bot.base.work import InFlight

log = logging.getLogger(__name__)

# Set in the request's context by `accept`; read by LazyWork.
ACCEPTED = "lazy_work_accepted"


async def accept(ack: AsyncAck, context: AsyncBoltContext, **answer: Any) -> None:
    """Ack (with `answer`, if any), and let the listener's lazy work follow."""
    await ack(**answer)
    context[ACCEPTED] = True


async def acknowledge(ack: AsyncAck, context: AsyncBoltContext) -> None:
    """The ack function of a listener that has nothing to check before its work."""
    await accept(ack, context)


class LazyWork(AsyncioListenerRunner):
    """Bolt's listener runner, starting lazy work as the module docstring says."""

    def __init__(self, bolt: AsyncApp, inflight: InFlight):
        bolts = bolt.listener_runner
        super().__init__(
            logger=bolts.logger,
            process_before_response=bolts.process_before_response,
            listener_error_handler=bolts.listener_error_handler,
            listener_start_handler=bolts.listener_start_handler,
            listener_completion_handler=bolts.listener_completion_handler,
            lazy_listener_runner=bolts.lazy_listener_runner,
        )
        self.inflight = inflight

    @classmethod
    def install(cls, bolt: AsyncApp, inflight: InFlight) -> None:
        # AsyncApp takes no runner of one's own; it runs every request through this one.
        bolt._async_listener_runner = cls(bolt, inflight)

    def _start_lazy_function(
        self, lazy_func: Callable[..., Awaitable[None]], request: AsyncBoltRequest
    ) -> None:
        if request.context.get(ACCEPTED) is True:
            self.inflight.spawn(self._run(lazy_func, request))

    async def _run(self, work: Callable[..., Awaitable[None]], request: AsyncBoltRequest) -> None:
        kwargs = build_async_required_kwargs(
            logger=self.logger,
            required_arg_names=get_arg_names_of_callable(work),
            request=request,
            response=None,
            this_func=work,
        )
        try:
            await work(**kwargs)
        except Exception as e:
            event = request.body.get("event")
            if request.body.get("type") == "event_callback" and isinstance(event, dict):
                log_failure(log, f"could not handle a {event.get('type')} event", e)
            else:
                # Guarded work tells the person itself; this is a failure outside it.
                log.error("a listener failed after answering Slack", exc_info=e)
