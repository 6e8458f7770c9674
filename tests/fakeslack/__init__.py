"""A fake Slack workspace for end-to-end tests: the Web API (FakeSlack) with its Socket Mode
WebSocket (FakeSlack.socket_mode), and what Slack sends to the bot's request URL (SlackSender)."""

from .sender import Reply, SlackSender, fake_view_values
from .server import Call, Channel, FakeSlack, ResponseUrlPost, SlackError
from .socket_mode import SLACK_ACK_DEADLINE, Delivery, SocketConnection, SocketModeHub

__all__ = [
    "SLACK_ACK_DEADLINE",
    "Call",
    "Channel",
    "Delivery",
    "FakeSlack",
    "Reply",
    "ResponseUrlPost",
    "SlackError",
    "SlackSender",
    "SocketConnection",
    "SocketModeHub",
    "fake_view_values",
]
