"""Messages the bot sends: chat.postMessage, chat.update, chat.delete, chat.postEphemeral and
chat.getPermalink; what Slack does with a post to a response_url and with a slash command's
immediate answer; and what only one person sees (``private_answers``).
"""

from __future__ import annotations

import copy
import json
import time
from typing import Any

from aiohttp import web

from .blocks import MAX_MESSAGE_BLOCKS
from .messages import Messages
from .model import Channel, JsonDict, ResponseTarget, ResponseUrlPost, SlackError, as_bool, opt_str


class ChatMethods(Messages):
    """chat.*, response URLs and the answers only one person sees."""

    # -- workspace setup and inspection ---------------------------------------------------------

    def private_answers(self, user: str) -> list[JsonDict]:
        """What only `user` sees, oldest first: chat.postEphemeral messages and the bot's
        ephemeral answers through response URLs, each with its channel."""
        answers = [dict(e) for e in self.ephemerals if e.get("user") == user]
        for post in self.responses:
            target = self._response_targets.get(post.key)
            body = post.body
            if target is None or target.user != user or not isinstance(body, dict):
                continue
            if body.get("response_type") == "in_channel" or as_bool(body.get("replace_original")):
                continue
            if as_bool(body.get("delete_original")):
                continue
            answers.append(
                {
                    "channel": target.channel,
                    "user": user,
                    "text": body.get("text", ""),
                    "blocks": body.get("blocks"),
                    # Ordered with the channel's messages by when it arrived.
                    "ts": f"{post.wall:.6f}",
                }
            )
        return sorted(answers, key=lambda a: float(a["ts"]))

    def new_response_url(
        self,
        *,
        channel: str | None = None,
        user: str | None = None,
        message_ts: str | None = None,
        ephemeral: bool = False,
    ) -> tuple[str, str]:
        """A response_url; ``message_ts`` lets replace_original/delete_original act on it."""
        key = f"{next(self._seq):06d}{self._rng.getrandbits(64):016x}"
        self._response_targets[key] = ResponseTarget(channel, user, message_ts, ephemeral)
        return f"{self.base_url}/response/{key}", key

    # -- chat -----------------------------------------------------------------------------------

    def _chat_post_message(self, args: JsonDict) -> JsonDict:
        ch = self._post_target(args["channel"])
        self._check_can_post(ch)
        content = self._message_content(args, max_blocks=MAX_MESSAGE_BLOCKS)
        msg = self._bot_message(content)
        if args.get("username"):
            msg["username"] = str(args["username"])
        self._store(
            ch,
            msg,
            thread_ts=opt_str(args.get("thread_ts")),
            broadcast=as_bool(args.get("reply_broadcast")),
        )
        return {"channel": ch.id, "ts": msg["ts"], "message": copy.deepcopy(msg)}

    def _own_message(self, args: JsonDict, ts_arg: str, not_yours: str) -> tuple[Channel, JsonDict]:
        ch = self._post_target(args["channel"])
        msg = ch.find(str(args[ts_arg]))
        if msg is None:
            raise SlackError("message_not_found")
        if msg.get("bot_id") != self.bot_id and msg.get("user") != self.bot_user_id:
            raise SlackError(not_yours)
        return ch, msg

    def _chat_update(self, args: JsonDict) -> JsonDict:
        ch, msg = self._own_message(args, "ts", "cant_update_message")
        if not any(
            args.get(k) is not None for k in ("text", "blocks", "attachments", "markdown_text")
        ):
            raise SlackError("no_text")
        content = self._message_content(args, max_blocks=MAX_MESSAGE_BLOCKS, require=False)
        self._replace_content(msg, content)
        msg["edited"] = {"user": self.bot_user_id, "ts": self._new_ts()}
        return {
            "channel": ch.id,
            "ts": msg["ts"],
            "text": msg.get("text", ""),
            "message": copy.deepcopy(msg),
        }

    def _chat_delete(self, args: JsonDict) -> JsonDict:
        ch, msg = self._own_message(args, "ts", "cant_delete_message")
        self._remove(ch, msg)
        return {"channel": ch.id, "ts": msg["ts"]}

    def _chat_post_ephemeral(self, args: JsonDict) -> JsonDict:
        ch = self._post_target(args["channel"])
        self._check_can_post(ch)
        user = str(args["user"])
        if user not in ch.members:
            raise SlackError("user_not_in_channel")
        content = self._message_content(args, max_blocks=MAX_MESSAGE_BLOCKS)
        ts = self._new_ts()
        self.ephemerals.append(
            {
                "channel": ch.id,
                "user": user,
                "text": content.get("text", ""),
                "blocks": content.get("blocks"),
                "attachments": content.get("attachments"),
                "thread_ts": opt_str(args.get("thread_ts")),
                "ts": ts,
            }
        )
        return {"message_ts": ts}

    def _chat_get_permalink(self, args: JsonDict) -> JsonDict:
        ch = self._channel(args)
        msg = ch.find(str(args["message_ts"]))
        if msg is None:
            raise SlackError("message_not_found")
        return {"channel": ch.id, "permalink": self._permalink(ch, msg)}

    def _post_target(self, value: Any) -> Channel:
        """chat.* take a conversation id, a user id (their DM with the bot) or a channel name."""
        name = str(value or "")
        if name in self.channels:
            return self._channel({"channel": name})
        if name in self.users:
            if self.users[name]["deleted"]:
                raise SlackError("channel_not_found")
            return self._open_dm(name)
        ch = self.channel_by_name(name)
        if ch is None:
            raise SlackError("channel_not_found")
        return self._channel({"channel": ch.id})

    def _open_dm(self, user: str) -> Channel:
        ch = self.dm_channel(user)
        if ch is None:
            ch = Channel(id=self._new_id("D"), name="", is_im=True, im_user=user)
            ch.members = [self.bot_user_id, user]
            self.channels[ch.id] = ch
        return ch

    # -- response URLs and command answers ------------------------------------------------------

    async def _handle_response_url(self, request: web.Request) -> web.StreamResponse:
        key = request.match_info["key"]
        target = self._response_targets.get(key)
        if target is None:
            return web.Response(status=404, text="expired_url")
        raw = await request.read()
        try:
            body = json.loads(raw)
        except ValueError:
            body = raw.decode(errors="replace")
        self.responses.append(ResponseUrlPost(key, body, time.monotonic(), time.time()))
        if not isinstance(body, dict):
            return web.Response(status=400, text="invalid_payload")
        try:
            self._apply_response(target, body)
        except SlackError as exc:
            return web.Response(status=400, text=exc.error)
        return web.Response(text="ok")

    def command_answered(self, *, channel: str, user: str, body: JsonDict) -> None:
        """What Slack does with a slash command's immediate answer (the body of its
        acknowledgement): shown only to the person who typed it, or posted in the channel
        as the app when its `response_type` is `in_channel`."""
        if not body.get("text") and not body.get("blocks"):
            return  # an empty acknowledgement shows nothing
        content = self._message_content(body, max_blocks=MAX_MESSAGE_BLOCKS)
        ch = self.channels.get(channel)
        if body.get("response_type") == "in_channel" and ch is not None:
            self._store(ch, self._bot_message(content), thread_ts=None)
            return
        self.ephemerals.append(
            {
                "channel": channel,
                "user": user,
                "text": content.get("text", ""),
                "blocks": content.get("blocks"),
                "attachments": content.get("attachments"),
                "thread_ts": None,
                "ts": self._new_ts(),
            }
        )

    def _apply_response(self, target: ResponseTarget, body: JsonDict) -> None:
        ch = self.channels.get(target.channel or "")
        if as_bool(body.get("delete_original")):
            if target.message_ts is None:
                return
            if target.ephemeral:
                self.ephemerals = [e for e in self.ephemerals if e["ts"] != target.message_ts]
            elif ch is not None and (msg := ch.find(target.message_ts)) is not None:
                self._remove(ch, msg)
            return
        content = self._message_content(body, max_blocks=MAX_MESSAGE_BLOCKS)
        if as_bool(body.get("replace_original")) and target.message_ts is not None:
            if target.ephemeral:
                for eph in self.ephemerals:
                    if eph["ts"] == target.message_ts:
                        eph.update(content)
            elif ch is not None and (msg := ch.find(target.message_ts)) is not None:
                self._replace_content(msg, content)
            return
        if body.get("response_type") == "in_channel" and ch is not None:
            msg = self._bot_message(content)
            self._store(ch, msg, thread_ts=opt_str(body.get("thread_ts")))
