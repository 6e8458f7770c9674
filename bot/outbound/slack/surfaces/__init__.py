"""The only writer of an incident's Slack surfaces: its channel, invitations, pinned card,
topic, announcement, posts and uploads.

Each surface is rendered from the stored incident under a per-incident lock, and each Slack
step's result is stored at once, so a retry (another process, a repair, a restart) resumes
after the last step that was done instead of doing it twice.

One module per surface, each a layer over the ones it builds on: base.py (what they share),
posts.py, card.py (card and topic), announcement.py, provisioning.py, refresh.py, triage.py.
"""

from bot.outbound.slack.surfaces.base import Card, Channel
from bot.outbound.slack.surfaces.refresh import Refresh
from bot.outbound.slack.surfaces.triage import Triage

__all__ = ["Card", "Channel", "Surfaces"]


class Surfaces(Refresh, Triage):
    """The only writer of an incident's Slack surfaces."""
