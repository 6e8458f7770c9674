"""A fake Slack workspace for end-to-end tests: the Web API (FakeSlack), its Socket Mode
WebSocket (FakeSlack.socket_mode, a SocketModeHub), and what Slack sends the bot, either to
its request URL (SlackSender) or as Socket Mode envelopes (SocketModeSender)."""

from .model import Call, Channel, ResponseUrlPost, SlackError
from .ratelimits import RateLimit
from .sender import Reply, SlackSender, SocketModeSender, fake_view_values
from .server import FakeSlack
from .socket_mode import SLACK_ACK_DEADLINE, Delivery, SocketConnection, SocketModeHub

__all__ = [
    "SLACK_ACK_DEADLINE",
    "Call",
    "Channel",
    "Delivery",
    "FakeSlack",
    "RateLimit",
    "Reply",
    "ResponseUrlPost",
    "SlackError",
    "SlackSender",
    "SocketConnection",
    "SocketModeHub",
    "SocketModeSender",
    "fake_view_values",
]
