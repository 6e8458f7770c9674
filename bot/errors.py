"""What goes wrong, and who hears about it.

| exception      | raised by                            | reaches                                  |
|----------------|--------------------------------------|------------------------------------------|
| BadInput       | rules, operations, the directory     | the person, privately: its message       |
| SlackFailure   | surfaces: a Slack step with no way   | the person, privately: its message       |
|                | left (no channel could be created)   |                                          |
| SlackApiError  | slack_sdk, once its retries are done | the person, with Slack's error code;     |
|                |                                      | background work: the log, one line       |
| anything else  | the database, bugs                   | the log with a traceback; the person is  |
|                |                                      | told something went wrong                |

Listeners turn these into answers (`slack.listeners.common.sorry`); background work
(repair, reminders) logs them with `log_failure`.
"""

from __future__ import annotations

import logging

from slack_sdk.errors import SlackApiError


class BadInput(Exception):
    """A mistake a person made; the message tells them what to do instead."""


class SlackFailure(Exception):
    """Slack would not do something even after retries; the message is for the person."""


def slack_error(e: BaseException) -> str:
    """Slack's error code for a Web API error, else the exception's type name."""
    if isinstance(e, SlackApiError):
        return str(e.response.get("error", "unknown_error"))
    return type(e).__name__


def log_failure(log: logging.Logger, what: str, e: BaseException) -> None:
    """Log a failure of background work: one line for a Slack error (Slack said no, and
    its code says why); a traceback for anything else, which a maintainer must read."""
    if isinstance(e, SlackApiError | SlackFailure):
        log.warning("%s: %s", what, slack_error(e))
    else:
        log.error("%s", what, exc_info=e)
