"""What the bot attaches to messages and channels: pins.add, pins.remove, pins.list,
reactions.add, bookmarks.add and bookmarks.list.
"""

from __future__ import annotations

import copy
import re
import string
import time

from .messages import Messages
from .model import Channel, JsonDict, SlackError, opt_str, ts_key

REACTION_NAME_OK = re.compile(r"[\w+'-]+(::skin-tone-[2-6])?")


class PinsMethods(Messages):
    """pins.*, reactions.* and bookmarks.*."""

    # -- workspace setup and inspection ---------------------------------------------------------

    def add_reaction(self, channel: str, ts: str, user: str, name: str) -> None:
        ch = self._helper_channel(channel)
        msg = ch.find(ts)
        if msg is None:
            raise KeyError(f"no message {ts} in {ch.id}")
        self._react(msg, user, name)

    def pins(self, channel: str) -> list[str]:
        return list(self._helper_channel(channel).pinned)

    # -- pins, reactions, bookmarks -------------------------------------------------------------

    def _pin_target(self, args: JsonDict) -> tuple[Channel, JsonDict]:
        ch = self._channel(args)
        ts = opt_str(args.get("timestamp"))
        if ts is None:
            raise SlackError("no_item_specified")
        try:
            ts_key(ts)
        except ValueError as exc:
            raise SlackError("bad_timestamp") from exc
        msg = ch.find(ts)
        if msg is None:
            raise SlackError("message_not_found")
        return ch, msg

    def _pins_add(self, args: JsonDict) -> JsonDict:
        ch, msg = self._pin_target(args)
        self._require_member(ch)
        if msg["ts"] in ch.pinned:
            raise SlackError("already_pinned")
        ch.pinned[msg["ts"]] = {"created": int(time.time()), "created_by": self.bot_user_id}
        msg.setdefault("pinned_to", []).append(ch.id)
        self._post_system(
            ch,
            self.bot_user_id,
            "pinned_item",
            f"<@{self.bot_user_id}> pinned a message to this channel.",
            item_type="C",
            item={"type": "message", "channel": ch.id, "ts": msg["ts"]},
        )
        return {}

    def _pins_remove(self, args: JsonDict) -> JsonDict:
        ch, msg = self._pin_target(args)
        if ch.pinned.pop(msg["ts"], None) is None:
            raise SlackError("no_pin")
        pinned_to = [c for c in msg.get("pinned_to", []) if c != ch.id]
        if pinned_to:
            msg["pinned_to"] = pinned_to
        else:
            msg.pop("pinned_to", None)
        return {}

    def _pins_list(self, args: JsonDict) -> JsonDict:
        ch = self._channel(args)
        items = []
        for ts, pin in ch.pinned.items():
            msg = ch.find(ts)
            if msg is None:
                continue
            items.append(
                {
                    "type": "message",
                    "channel": ch.id,
                    "created": pin["created"],
                    "created_by": pin["created_by"],
                    "message": {**copy.deepcopy(msg), "permalink": self._permalink(ch, msg)},
                }
            )
        return {"items": items}

    def _reactions_add(self, args: JsonDict) -> JsonDict:
        ch = self._channel(args)
        self._require_active(ch)
        name = str(args["name"])
        if not REACTION_NAME_OK.fullmatch(name):
            raise SlackError("invalid_name")
        ts = str(args["timestamp"])
        try:
            ts_key(ts)
        except ValueError as exc:
            raise SlackError("bad_timestamp") from exc
        msg = ch.find(ts)
        if msg is None:
            raise SlackError("message_not_found")
        if not self._react(msg, self.bot_user_id, name):
            raise SlackError("already_reacted")
        return {}

    def _react(self, msg: JsonDict, user: str, name: str) -> bool:
        reactions = msg.setdefault("reactions", [])
        for reaction in reactions:
            if reaction["name"] == name:
                if user in reaction["users"]:
                    return False
                reaction["users"].append(user)
                reaction["count"] += 1
                return True
        reactions.append({"name": name, "users": [user], "count": 1})
        return True

    def _bookmarks_add(self, args: JsonDict) -> JsonDict:
        ch = self._channel(args, "channel_id")
        if args["type"] != "link":
            raise SlackError("invalid_bookmark_type")
        link = opt_str(args.get("link"))
        if link is None or not link.startswith(("http://", "https://")):
            raise SlackError("invalid_link")
        bookmark = {
            "id": self._new_id("Bk"),
            "channel_id": ch.id,
            "title": str(args["title"]),
            "link": link,
            "emoji": opt_str(args.get("emoji")),
            "icon_url": None,
            "type": "link",
            "entity_id": None,
            "date_created": int(time.time()),
            "date_updated": 0,
            "rank": string.ascii_lowercase[len(ch.bookmarks) % 26],
            "last_updated_by_user_id": self.bot_user_id,
            "last_updated_by_team_id": self.team_id,
            "shortcut_id": None,
            "app_id": self.app_id,
        }
        ch.bookmarks.append(bookmark)
        return {"bookmark": copy.deepcopy(bookmark)}

    def _bookmarks_list(self, args: JsonDict) -> JsonDict:
        ch = self._channel(args, "channel_id")
        return {"bookmarks": copy.deepcopy(ch.bookmarks)}
