"""What an outgoing webhook receives: one JSON event per change (docs/webhook-event.json).

The incident's fields are those anyone in the workspace may see of a public incident; the
change carries what the event is about. A private incident's event goes only to receivers
marked for private incidents; drills say so.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bot.model.tables import Incident

# The body's shape; bumped when a field changes meaning or goes.
VERSION = 1


def _when(at: datetime | None) -> str | None:
    return at.isoformat().replace("+00:00", "Z") if at is not None else None


def incident_fields(inc: Incident, *, commander: str | None) -> dict[str, Any]:
    return {
        "ref": inc.ref,
        "number": inc.number,
        "title": inc.title,
        "severity": inc.severity,
        "status": inc.status,
        "private": inc.private,
        "drill": inc.drill,
        "declared_at": _when(inc.declared_at),
        "declared_by": inc.declared_by,
        "resolved_at": _when(inc.resolved_at),
        "commander": commander,
        "channel_id": inc.channel_id,
    }


def event(
    inc: Incident,
    name: str,
    change: dict[str, Any],
    *,
    delivery: str,
    actor: str | None,
    at: datetime,
    commander: str | None,
) -> dict[str, Any]:
    """The body of one delivery: the same on every attempt (`delivery` is its id)."""
    return {
        "version": VERSION,
        "delivery": delivery,
        "event": name,
        "occurred_at": _when(at),
        "actor": actor,
        "drill": inc.drill,
        "incident": incident_fields(inc, commander=commander),
        "change": change,
    }
