"""How the fake keeps messages, for every method that writes one: threads, system messages
(joins, topics, renames, pins), the bot's own messages and the checks on what they carry (text,
blocks, attachments, metadata). It fakes no Slack method itself: chat.*, files.*, pins.* and
conversations.* build on it.
"""

from __future__ import annotations

import copy
import uuid
from typing import Any

from .blocks import check_blocks
from .model import Channel, JsonDict, SlackError, is_top_level, ts_key
from .workspace import Workspace

MAX_TEXT_LENGTH = 40_000
MAX_ATTACHMENTS = 100

# Slack answers these messages itself; helpers can leave them out of what they return.
SYSTEM_SUBTYPES = frozenset(
    {
        "channel_join",
        "channel_leave",
        "channel_topic",
        "channel_purpose",
        "channel_name",
        "channel_archive",
        "pinned_item",
    }
)


class Messages(Workspace):
    """Messages as channels hold them, and the helpers that read and write them."""

    # -- workspace setup and inspection ---------------------------------------------------------

    def post_as_user(
        self,
        channel: str,
        user: str,
        text: str,
        *,
        ts: str | None = None,
        thread_ts: str | None = None,
        subtype: str | None = None,
        **extra: Any,
    ) -> JsonDict:
        """Store a message a human wrote (no event is sent; see ``SlackSender.user_message``)."""
        ch = self._helper_channel(channel)
        if ts is not None:
            ts_key(ts)
            if ch.find(ts) is not None:
                raise ValueError(f"ts {ts} already used in {ch.id}")
        msg: JsonDict = {
            "type": "message",
            "user": user,
            "text": text,
            "ts": ts or self._new_ts(ch),
            "team": self.team_id,
        }
        if subtype is not None:
            msg["subtype"] = subtype
        else:
            msg["client_msg_id"] = str(uuid.UUID(int=self._rng.getrandbits(128), version=4))
        msg.update(extra)
        self._store(ch, msg, thread_ts=thread_ts)
        return copy.deepcopy(msg)

    def messages(self, channel: str, *, include_system: bool = True) -> list[JsonDict]:
        """Top-level messages (and thread broadcasts), oldest first, as history shows them."""
        ch = self._helper_channel(channel)
        return [
            copy.deepcopy(msg)
            for msg in ch.history
            if is_top_level(msg) and (include_system or msg.get("subtype") not in SYSTEM_SUBTYPES)
        ]

    def replies(self, channel: str, thread_ts: str) -> list[JsonDict]:
        """The replies in a thread, oldest first, without the parent."""
        ch = self._helper_channel(channel)
        return [
            copy.deepcopy(msg)
            for msg in ch.history
            if msg.get("thread_ts") == thread_ts and msg["ts"] != thread_ts
        ]

    def message(self, channel: str, ts: str) -> JsonDict | None:
        msg = self._helper_channel(channel).find(ts)
        return copy.deepcopy(msg) if msg is not None else None

    # -- internals ------------------------------------------------------------------------------

    def _check_can_post(self, ch: Channel) -> None:
        self._require_active(ch)
        if ch.is_im or self.bot_user_id in ch.members:
            return
        if self.chat_write_public and not ch.is_private:
            return
        raise SlackError("not_in_channel")

    def _message_content(
        self, args: JsonDict, *, max_blocks: int, require: bool = True
    ) -> JsonDict:
        text = args.get("text")
        blocks = args.get("blocks")
        attachments = args.get("attachments")
        markdown = args.get("markdown_text")
        content: JsonDict = {}
        if blocks is not None:
            if not isinstance(blocks, list):
                raise SlackError("invalid_blocks_format")
            errors = check_blocks(blocks, max_blocks=max_blocks)
            if errors:
                raise SlackError(
                    "invalid_blocks", errors=errors, response_metadata={"messages": errors}
                )
            content["blocks"] = self._with_ids(blocks)
        if attachments is not None:
            if not isinstance(attachments, list):
                raise SlackError("invalid_attachments")
            if len(attachments) > MAX_ATTACHMENTS:
                raise SlackError("too_many_attachments")
            content["attachments"] = [
                {**copy.deepcopy(a), "id": index + 1} for index, a in enumerate(attachments)
            ]
        if markdown:
            if text or blocks:
                raise SlackError("markdown_text_conflict")
            text = markdown
        if require and not (text or blocks or attachments):
            raise SlackError("no_text")
        if text is not None:
            text = str(text)
            if len(text) > MAX_TEXT_LENGTH:
                raise SlackError("msg_too_long")
            content["text"] = text
        if isinstance(args.get("metadata"), dict):
            content["metadata"] = copy.deepcopy(args["metadata"])
        return content

    def _bot_message(self, content: JsonDict) -> JsonDict:
        return {
            "user": self.bot_user_id,
            "type": "message",
            "ts": "",
            "bot_id": self.bot_id,
            "app_id": self.app_id,
            "text": content.get("text", ""),
            "team": self.team_id,
            "bot_profile": {
                "id": self.bot_id,
                "app_id": self.app_id,
                "name": self.bot_name,
                "deleted": False,
                "team_id": self.team_id,
                "updated": 0,
                "icons": {"image_48": "https://a.slack-edge.com/bot_48.png"},
            },
            **{k: v for k, v in content.items() if k != "text"},
        }

    def _store(
        self, ch: Channel, msg: JsonDict, *, thread_ts: str | None = None, broadcast: bool = False
    ) -> JsonDict:
        if not msg.get("ts"):
            msg["ts"] = self._new_ts(ch)
        if thread_ts is not None:
            parent = ch.find(thread_ts)
            # Replying to a reply goes to its thread, as in Slack's clients.
            if parent is not None and parent.get("thread_ts") not in (None, parent["ts"]):
                parent = ch.find(parent["thread_ts"]) or parent
            root = parent["ts"] if parent is not None else thread_ts
            msg["thread_ts"] = root
            if parent is not None:
                msg["parent_user_id"] = parent.get("user")
            if broadcast:
                msg["subtype"] = "thread_broadcast"
        ch.insert(msg)
        if thread_ts is not None:
            self._refresh_thread(ch, msg["thread_ts"])
        return msg

    def _refresh_thread(self, ch: Channel, root_ts: str) -> None:
        parent = ch.find(root_ts)
        if parent is None:
            return
        replies = [m for m in ch.history if m.get("thread_ts") == root_ts and m["ts"] != root_ts]
        if replies:
            users = list(dict.fromkeys(m.get("user") for m in replies if m.get("user")))
            parent.update(
                thread_ts=root_ts,
                reply_count=len(replies),
                reply_users=users,
                reply_users_count=len(users),
                latest_reply=replies[-1]["ts"],
                is_locked=False,
                subscribed=False,
            )
        else:
            for key in (
                "thread_ts",
                "reply_count",
                "reply_users",
                "reply_users_count",
                "latest_reply",
                "is_locked",
                "subscribed",
            ):
                parent.pop(key, None)

    def _remove(self, ch: Channel, msg: JsonDict) -> None:
        ch.history.remove(msg)
        ch.pinned.pop(msg["ts"], None)
        thread_ts = msg.get("thread_ts")
        if thread_ts and thread_ts != msg["ts"]:
            self._refresh_thread(ch, thread_ts)

    def _post_system(self, ch: Channel, user: str, subtype: str, text: str, **extra: Any) -> None:
        msg = {"type": "message", "subtype": subtype, "user": user, "text": text, "ts": "", **extra}
        self._store(ch, msg)

    def _replace_content(self, msg: JsonDict, content: JsonDict) -> None:
        if "text" in content:
            msg["text"] = content["text"]
        for key in ("blocks", "attachments"):
            if key in content:
                if content[key]:
                    msg[key] = content[key]
                else:
                    msg.pop(key, None)  # an empty array removes them, as in Slack
        if "metadata" in content:
            msg["metadata"] = content["metadata"]

    def _permalink(self, ch: Channel, msg: JsonDict) -> str:
        link = (
            f"https://{self.team_domain}.slack.com/archives/{ch.id}/p{msg['ts'].replace('.', '')}"
        )
        thread_ts = msg.get("thread_ts")
        if thread_ts and thread_ts != msg["ts"]:
            link += f"?thread_ts={thread_ts}&cid={ch.id}"
        return link
