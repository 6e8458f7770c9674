"""What follows a change outside the bot: the effects each door records with it.

Every operation that changes an incident calls `happened` inside the transaction that
stores the change, so the change and its effects are kept together or not at all. Today's
door is the outgoing webhook (OUTGOING_WEBHOOKS); each receiver gets the events it follows,
in order per incident, through the outbox.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import event as orm_event
from sqlalchemy.ext.asyncio import AsyncSession

from bot.base.clock import Clock, utcnow
from bot.base.settings import OutgoingWebhook, Settings
from bot.model.tables import Effect, Incident
from bot.outbound.store.effects import Effects, Planned
from bot.views import blocks, webhook

WEBHOOK = "webhook"


def webhook_lane(url: str, incident_id: int) -> str:
    """One incident's events to one receiver go in order; others go side by side."""
    digest = hashlib.sha256(url.encode()).hexdigest()[:16]
    return f"{WEBHOOK}:{digest}:{incident_id}"


class Outgoing:
    def __init__(
        self,
        settings: Settings,
        effects: Effects,
        *,
        tell: Callable[[str, str], Awaitable[None]],
        wake: Callable[[], None] = lambda: None,
        clock: Clock = utcnow,
    ):
        self.settings = settings
        self.effects = effects
        self.store = effects.store
        # Says something privately to a person (their DM).
        self.tell = tell
        self.wake = wake
        self.clock = clock

    def _receivers(self, inc: Incident, name: str) -> list[OutgoingWebhook]:
        return [
            hook
            for hook in self.settings.outgoing_webhooks
            if name in hook.events and (hook.include_private or not inc.private)
        ]

    async def happened(
        self,
        session: AsyncSession,
        inc: Incident,
        name: str,
        change: dict[str, Any],
        *,
        actor: str | None,
        commander: str | None = None,
    ) -> None:
        """Record the effects of `name` having happened to `inc` (as it is now stored in
        `session`'s transaction)."""
        receivers = self._receivers(inc, name)
        if not receivers:
            return
        # Held to the end of the transaction, so one incident's effects are numbered (and
        # delivered) in the order its changes commit. Most changes hold it already.
        await self.store.locked(session, inc.pk)
        if commander is None:
            held = await self.store.current_holder(session, inc.pk, "commander")
            commander = held.user_id if held is not None else None
        now = self.clock()
        planned = []
        for hook in receivers:
            delivery = str(uuid.uuid4())
            body = webhook.event(
                inc, name, change, delivery=delivery, actor=actor, at=now, commander=commander
            )
            planned.append(
                Planned(
                    key=f"{WEBHOOK}:{delivery}",
                    kind=WEBHOOK,
                    lane=webhook_lane(hook.url, inc.pk),
                    payload={"url": hook.url, "body": body},
                    incident_id=inc.pk,
                    requested_by=actor,
                )
            )
        await self.effects.record(session, planned, now=now)
        # Deliver as soon as the change is committed, not at the next poll.
        orm_event.listen(session.sync_session, "after_commit", lambda _s: self.wake(), once=True)

    async def failed(self, effect: Effect) -> None:
        """An effect failed for good: the incident's commander and whoever caused it hear
        what, where and the remote's reason (the outbox calls this once per effect)."""
        inc = await self.store.incident(effect.incident_id) if effect.incident_id else None
        people = {effect.requested_by} if effect.requested_by else set()
        if inc is not None:
            roles = await self.store.roles(inc.pk)
            people.add(roles.get("commander") or inc.declared_by)
        text = blocks.delivery_failed(inc, effect.kind, effect.payload, effect.last_error or "")
        for user in sorted(p for p in people if p):
            await self.tell(user, text)
