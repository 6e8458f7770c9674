"""Channels: conversations.create, conversations.info, conversations.list,
conversations.invite, conversations.join, conversations.members, conversations.setTopic,
conversations.setPurpose, conversations.rename, conversations.archive, conversations.history
and conversations.replies, and ``add_channel`` for tests. (conversations.canvases.create is
with the other canvas methods, in ``files.py``.)
"""

from __future__ import annotations

import copy
import re
import time
from collections.abc import Iterable
from typing import Any

from .messages import Messages
from .model import (
    Channel,
    JsonDict,
    SlackError,
    as_bool,
    decode_cursor,
    encode_cursor,
    is_top_level,
    opt_str,
    page_limit,
    paginate,
    ts_key,
)

MAX_TOPIC_LENGTH = 250
MAX_CHANNEL_NAME = 80

CHANNEL_NAME_OK = re.compile(r"[a-z0-9_-]+")
CHANNEL_TYPES = frozenset({"public_channel", "private_channel", "mpim", "im"})


class ConversationsMethods(Messages):
    """conversations.*, all but conversations.canvases.create."""

    # -- workspace setup ------------------------------------------------------------------------

    def add_channel(
        self,
        name: str,
        *,
        is_private: bool = False,
        members: Iterable[str] = (),
        id: str | None = None,
        topic: str = "",
        purpose: str = "",
    ) -> Channel:
        if self.channel_by_name(name) is not None:
            raise ValueError(f"channel name {name!r} is taken")
        cid = id or self._new_id("C")
        if cid in self.channels:
            raise ValueError(f"channel id {cid!r} is taken")
        channel = Channel(
            id=cid,
            name=name,
            is_private=is_private,
            members=list(dict.fromkeys(members)),
            is_general=name == "general",
        )
        if topic:
            channel.topic = {"value": topic, "creator": "", "last_set": channel.created}
        if purpose:
            channel.purpose = {"value": purpose, "creator": "", "last_set": channel.created}
        self.channels[cid] = channel
        return channel

    # -- conversations --------------------------------------------------------------------------

    def _conversations_create(self, args: JsonDict) -> JsonDict:
        name = self._check_name(args.get("name"))
        ch = Channel(
            id=self._new_id("C"),
            name=name,
            is_private=as_bool(args.get("is_private")),
            members=[self.bot_user_id],
            creator=self.bot_user_id,
        )
        self.channels[ch.id] = ch
        self._post_system(
            ch, self.bot_user_id, "channel_join", f"<@{self.bot_user_id}> has joined the channel"
        )
        return {"channel": self._channel_api(ch)}

    def _conversations_info(self, args: JsonDict) -> JsonDict:
        ch = self._channel(args)
        return {
            "channel": self._channel_api(ch, num_members=as_bool(args.get("include_num_members")))
        }

    def _conversations_list(self, args: JsonDict) -> JsonDict:
        types = {
            t.strip() for t in str(args.get("types") or "public_channel").split(",") if t.strip()
        }
        if not types or not types <= CHANNEL_TYPES:
            raise SlackError("invalid_types")
        exclude_archived = as_bool(args.get("exclude_archived"))
        selected = []
        for ch in self.channels.values():
            if ch.is_im:
                wanted = "im" in types
            elif ch.is_private:
                wanted = "private_channel" in types and self.bot_user_id in ch.members
            else:
                wanted = "public_channel" in types
            if wanted and not (exclude_archived and ch.is_archived):
                selected.append(ch)
        limit = page_limit(args, 100, 1000)
        page, cursor = paginate(selected, [c.id for c in selected], args, limit, "team")
        return {
            "channels": [self._channel_api(c, num_members=not c.is_im) for c in page],
            "response_metadata": {"next_cursor": cursor},
        }

    def _conversations_invite(self, args: JsonDict) -> JsonDict:
        ch = self._channel(args)
        raw = args["users"]
        users = [
            u.strip() for u in (raw if isinstance(raw, list) else str(raw).split(",")) if u.strip()
        ]
        if not users:
            raise SlackError("no_user")
        if ch.is_im:
            raise SlackError("method_not_supported_for_channel_type")
        self._require_active(ch)
        self._require_member(ch)
        for user in users:
            if user == self.bot_user_id:
                raise SlackError("cant_invite_self")
            if user not in self.users:
                raise SlackError("user_not_found")
            if self.users[user]["deleted"]:
                raise SlackError("cant_invite")
        new = [u for u in dict.fromkeys(users) if u not in ch.members]
        if not new:
            raise SlackError("already_in_channel")
        for user in new:
            ch.members.append(user)
            self._post_system(
                ch,
                user,
                "channel_join",
                f"<@{user}> has joined the channel",
                inviter=self.bot_user_id,
            )
        return {"channel": self._channel_api(ch)}

    def _conversations_join(self, args: JsonDict) -> JsonDict:
        ch = self._channel(args)
        if ch.is_im or ch.is_private:
            raise SlackError("method_not_supported_for_channel_type")
        self._require_active(ch)
        if self.bot_user_id in ch.members:
            return {
                "channel": self._channel_api(ch),
                "warning": "already_in_channel",
                "response_metadata": {"warnings": ["already_in_channel"]},
            }
        ch.members.append(self.bot_user_id)
        self._post_system(
            ch, self.bot_user_id, "channel_join", f"<@{self.bot_user_id}> has joined the channel"
        )
        return {"channel": self._channel_api(ch)}

    def _conversations_members(self, args: JsonDict) -> JsonDict:
        ch = self._channel(args)
        limit = page_limit(args, 100, 1000)
        page, cursor = paginate(ch.members, ch.members, args, limit, "user")
        return {"members": list(page), "response_metadata": {"next_cursor": cursor}}

    def _set_text_field(self, args: JsonDict, key: str) -> JsonDict:
        ch = self._channel(args)
        if ch.is_im:
            raise SlackError("method_not_supported_for_channel_type")
        self._require_active(ch)
        self._require_member(ch)
        value = str(args[key])
        if len(value) > MAX_TOPIC_LENGTH:
            raise SlackError("too_long")
        now = int(time.time())
        record = {"value": value, "creator": self.bot_user_id, "last_set": now}
        if key == "topic":
            ch.topic = record
            text = f"set the channel topic: {value}" if value else "cleared the channel topic"
            self._post_system(ch, self.bot_user_id, "channel_topic", text, topic=value)
        else:
            ch.purpose = record
            text = (
                f"set the channel description: {value}"
                if value
                else "cleared the channel description"
            )
            self._post_system(ch, self.bot_user_id, "channel_purpose", text, purpose=value)
        return {"channel": self._channel_api(ch)}

    def _conversations_set_topic(self, args: JsonDict) -> JsonDict:
        return self._set_text_field(args, "topic")

    def _conversations_set_purpose(self, args: JsonDict) -> JsonDict:
        return self._set_text_field(args, "purpose")

    def _conversations_rename(self, args: JsonDict) -> JsonDict:
        ch = self._channel(args)
        if ch.is_im:
            raise SlackError("method_not_supported_for_channel_type")
        self._require_active(ch)
        self._require_member(ch)
        name = self._check_name(args.get("name"), exclude=ch)
        if name != ch.name:
            old = ch.name
            ch.previous_names.insert(0, old)
            ch.name = name
            self._post_system(
                ch,
                self.bot_user_id,
                "channel_name",
                f'renamed the channel from "{old}" to "{name}"',
                old_name=old,
                name=name,
            )
        return {"channel": self._channel_api(ch)}

    def _conversations_archive(self, args: JsonDict) -> JsonDict:
        ch = self._channel(args)
        if ch.is_im:
            raise SlackError("method_not_supported_for_channel_type")
        if ch.is_archived:
            raise SlackError("already_archived")
        if ch.is_general:
            raise SlackError("cant_archive_general")
        self._require_member(ch)
        self._post_system(ch, self.bot_user_id, "channel_archive", "archived the channel")
        ch.is_archived = True
        return {}

    def _ts_bounds(self, args: JsonDict) -> tuple[int, int, bool]:
        try:
            oldest = ts_key(str(args.get("oldest") or "0"))
        except ValueError as exc:
            raise SlackError("invalid_ts_oldest") from exc
        latest_arg = opt_str(args.get("latest"))
        try:
            latest = ts_key(latest_arg) if latest_arg and latest_arg != "now" else 1 << 62
        except ValueError as exc:
            raise SlackError("invalid_ts_latest") from exc
        return oldest, latest, as_bool(args.get("inclusive"))

    def _conversations_history(self, args: JsonDict) -> JsonDict:
        ch = self._channel(args)
        self._require_member(ch)
        oldest, latest, inclusive = self._ts_bounds(args)

        def wanted(msg: JsonDict) -> bool:
            key = ts_key(msg["ts"])
            low = key > oldest or (inclusive and key == oldest)
            high = key < latest or (inclusive and key == latest)
            return low and high

        items = [m for m in reversed(ch.history) if is_top_level(m) and wanted(m)]
        cursor = opt_str(args.get("cursor"))
        if cursor is not None:
            try:
                start_key = int(decode_cursor(cursor, "next_ts"))
            except ValueError as exc:
                raise SlackError("invalid_cursor") from exc
            items = [m for m in items if ts_key(m["ts"]) <= start_key]
        limit = page_limit(args, 100, 999)
        page, rest = items[:limit], items[limit:]
        next_cursor = encode_cursor("next_ts", str(ts_key(rest[0]["ts"]))) if rest else ""
        return {
            "messages": copy.deepcopy(page),
            "has_more": bool(rest),
            "pin_count": len(ch.pinned),
            "channel_actions_ts": None,
            "channel_actions_count": 0,
            "response_metadata": {"next_cursor": next_cursor},
        }

    def _conversations_replies(self, args: JsonDict) -> JsonDict:
        ch = self._channel(args)
        self._require_member(ch)
        msg = ch.find(str(args["ts"]))
        if msg is None:
            raise SlackError("thread_not_found")
        root_ts = msg.get("thread_ts") or msg["ts"]
        parent = ch.find(root_ts) or msg
        oldest, latest, inclusive = self._ts_bounds(args)

        def wanted(reply: JsonDict) -> bool:
            key = ts_key(reply["ts"])
            low = key > oldest or (inclusive and key == oldest)
            high = key < latest or (inclusive and key == latest)
            return low and high

        replies = [
            m for m in ch.history if m.get("thread_ts") == root_ts and m is not parent and wanted(m)
        ]
        items = [parent, *replies]
        cursor = opt_str(args.get("cursor"))
        if cursor is not None:
            try:
                start_key = int(decode_cursor(cursor, "next_ts"))
            except ValueError as exc:
                raise SlackError("invalid_cursor") from exc
            items = [m for m in items if m is not parent and ts_key(m["ts"]) >= start_key]
        limit = page_limit(args, 1000, 1000)
        page, rest = items[:limit], items[limit:]
        next_cursor = encode_cursor("next_ts", str(ts_key(rest[0]["ts"]))) if rest else ""
        return {
            "messages": copy.deepcopy(page),
            "has_more": bool(rest),
            "response_metadata": {"next_cursor": next_cursor},
        }

    # -- internals ------------------------------------------------------------------------------

    def _channel_api(self, ch: Channel, *, num_members: bool = False) -> JsonDict:
        return ch.to_api(self.team_id, self.bot_user_id, num_members=num_members)

    def _check_name(self, name: Any, *, exclude: Channel | None = None) -> str:
        name = str(name or "")
        if not name:
            raise SlackError("invalid_name_required")
        if len(name) > MAX_CHANNEL_NAME:
            raise SlackError("invalid_name_maxlength")
        if not CHANNEL_NAME_OK.fullmatch(name):
            raise SlackError("invalid_name_specials")
        if not re.search(r"[a-z0-9]", name):
            raise SlackError("invalid_name_punctuation")
        taken = self.channel_by_name(name)
        if taken is not None and taken is not exclude:
            raise SlackError("name_taken")
        return name
