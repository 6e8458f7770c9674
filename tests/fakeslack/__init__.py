"""A fake Slack workspace for end-to-end tests: the Web API (FakeSlack) and what Slack sends
to the bot's request URL (SlackSender)."""

from .sender import Reply, SlackSender, fake_view_values
from .server import Call, Channel, FakeSlack, ResponseUrlPost, SlackError

__all__ = [
    "Call",
    "Channel",
    "FakeSlack",
    "Reply",
    "ResponseUrlPost",
    "SlackError",
    "SlackSender",
    "fake_view_values",
]
