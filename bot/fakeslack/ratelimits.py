"""Slack's rate limits, as ``FakeSlack(rate_limits=True)`` enforces them: each method's tier as
Slack's method reference gives it (``reference/rate_limits.json``), at the floor of the tier.
It fakes no Slack method itself; ``workspace.py`` counts the calls against these limits.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

RATE_LIMITS_FILE = Path(__file__).resolve().parent / "reference" / "rate_limits.json"


@dataclass(frozen=True)
class RateLimit:
    """At most ``calls`` accepted calls in any sliding window of ``window`` seconds, per
    workspace and method (and per channel when ``per_channel``)."""

    calls: int
    window: float
    per_channel: bool = False

    @property
    def per_minute(self) -> float:
        return self.calls * 60 / self.window


# Slack's documented tiers ("Rate limits" in Slack's API documentation), at their floor:
# Tier 1 1+ per minute, Tier 2 20+, Tier 3 50+, Tier 4 100+.
TIERS: dict[int, RateLimit] = {
    1: RateLimit(1, 60.0),
    2: RateLimit(20, 60.0),
    3: RateLimit(50, 60.0),
    4: RateLimit(100, 60.0),
}
# chat.postMessage's special tier: about one message a second per channel, short bursts
# allowed (three within three seconds here). Its workspace-wide limit is undocumented and
# left out.
POSTING = RateLimit(3, 3.0, per_channel=True)


def load_rate_limits(path: Path = RATE_LIMITS_FILE) -> dict[str, RateLimit]:
    """Each method's documented limit; methods of the special tier other than
    chat.postMessage (auth.test, chat.getPermalink) have no published number and get none."""
    limits: dict[str, RateLimit] = {}
    for method, tier in json.loads(path.read_text(encoding="utf-8")).items():
        if tier == "special":
            if method == "chat.postMessage":
                limits[method] = POSTING
        else:
            limits[method] = TIERS[int(tier)]
    return limits
