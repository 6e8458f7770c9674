"""What goes wrong, and who hears about it.

| exception           | raised by                          | reaches                               |
|---------------------|------------------------------------|---------------------------------------|
| BadInput            | rules, operations, the directory   | the person, privately: its message    |
| SlackFailure        | surfaces: a Slack step with no way | the person, privately: its message    |
|                     | left (no channel could be created) |                                       |
| SlackApiError       | slack_sdk, once its retries are    | the person, with Slack's error code;  |
|                     | done                               | background work: the log, one line    |
| DatabaseUnavailable | the store: a wait for the database | the person: the database is           |
|                     | ran out (connecting, a pooled      | unavailable, nothing was changed (or, |
|                     | connection, a lock, a statement),  | if their change was already stored,   |
|                     | or the connection was lost         | that Slack catches up); background    |
|                     |                                    | work: the log, one line               |
| anything else       | bugs, other database errors        | the log with a traceback; the person  |
|                     |                                    | is told something went wrong          |

Listeners turn these into answers (`bot.inbound.listeners.common.sorry`); background work
(repair, reminders) logs them with `log_failure`.
"""

from __future__ import annotations

import logging

from slack_sdk.errors import SlackApiError


class BadInput(Exception):
    """A mistake a person made; the message tells them what to do instead."""


class SlackFailure(Exception):
    """Slack would not do something even after retries; the message is for the person."""


class DatabaseUnavailable(Exception):
    """The database did not answer within its bound, or the connection to it was lost.

    Raised by the store in place of the driver's error; the message says what ran out
    (never a statement or its parameters).
    """


def slack_error(e: BaseException) -> str:
    """Slack's error code for a Web API error, else the exception's type name."""
    if isinstance(e, SlackApiError):
        return str(e.response.get("error", "unknown_error"))
    return type(e).__name__


def log_failure(log: logging.Logger, what: str, e: BaseException) -> None:
    """Log a failure of background work: one line for a Slack error (Slack said no, and
    its code says why) or an unavailable database; a traceback for anything else, which a
    maintainer must read."""
    if isinstance(e, SlackApiError | SlackFailure):
        log.warning("%s: %s", what, slack_error(e))
    elif isinstance(e, DatabaseUnavailable):
        log.warning("%s: %s", what, e)
    else:
        log.error("%s", what, exc_info=e)


def problem(surface: str, e: BaseException) -> str:
    """What a stored change could not do, as `surface: reason` for the person's answer."""
    if isinstance(e, DatabaseUnavailable):
        return "database: unavailable"
    return f"{surface}: {slack_error(e)}"
