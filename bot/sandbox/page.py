"""The sandbox's web page and the small JSON API behind it.

The page is a stand-in for Slack's client: what a person does there (a message, a slash
command, a click, a form) goes to the bot exactly as Slack would send it, signed, through
the same sender the tests use; what the page shows is read from the Slack stand-in.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from functools import cache
from importlib import resources
from typing import Any

import emoji
from aiohttp import web

from bot.fakeslack import FakeSlack, SlackSender
from bot.fakeslack.server import Channel, as_typed

log = logging.getLogger(__name__)

JsonDict = dict[str, Any]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
STATIC = {"index.html": "text/html", "app.css": "text/css", "app.js": "text/javascript"}
# The message shortcut the manifest declares.
TIMELINE_SHORTCUT = "add_to_timeline"


def _static(name: str) -> bytes:
    return resources.files("bot.sandbox").joinpath("static", name).read_bytes()


@cache
def emoji_names() -> dict[str, str]:
    """Emoji shortcodes as Slack's client reads them (`hourglass_flowing_sand` → ⏳), from
    the `emoji` package's names and aliases: the page draws what the bot writes."""
    names: dict[str, str] = {}
    for char, data in emoji.EMOJI_DATA.items():
        for name in [data["en"], *data.get("alias", [])]:
            names.setdefault(name.strip(":"), char)
    return names


class Page:
    def __init__(self, fake: FakeSlack, people: list[str]):
        self.fake = fake
        self.people = people
        self.sender: SlackSender | None = None

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/", self.index)
        app.router.add_get("/static/{name}", self.static)
        app.router.add_get("/sandbox/state", self.state)
        app.router.add_get("/sandbox/files/{file_id}", self.file)
        app.router.add_get("/sandbox/emoji", self.emoji)
        for name, handler in {
            "send": self.send,
            "action": self.action,
            "view_action": self.view_action,
            "submit": self.submit,
            "close": self.close,
            "react": self.react,
            "shortcut": self.shortcut,
            "home": self.home,
        }.items():
            app.router.add_post(f"/sandbox/{name}", self._guard(handler))

    # -- reading ----------------------------------------------------------------------------

    async def index(self, _: web.Request) -> web.Response:
        return web.Response(body=_static("index.html"), content_type="text/html")

    async def static(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in STATIC:
            raise web.HTTPNotFound()
        return web.Response(body=_static(name), content_type=STATIC[name])

    def _visible(self, user: str, ch: Channel) -> bool:
        if ch.is_im:
            return ch.im_user == user
        return not ch.is_private or user in ch.members

    async def state(self, request: web.Request) -> web.Response:
        user = request.query.get("user") or self.people[0]
        fake = self.fake
        channels = [
            {
                "id": ch.id,
                "name": f"{fake.bot_name} (direct message)" if ch.is_im else ch.name,
                "private": ch.is_private,
                "im": ch.is_im,
                "archived": ch.is_archived,
                "topic": ch.topic.get("value", ""),
                "member": user in ch.members or ch.is_im,
            }
            for ch in fake.channels.values()
            if self._visible(user, ch)
        ]
        current = fake.channels.get(request.query.get("channel", ""))
        messages: list[JsonDict] = []
        if current is not None and self._visible(user, current):
            replies: dict[str, list[JsonDict]] = {}
            for msg in current.history:
                root = msg.get("thread_ts")
                if root and root != msg["ts"]:
                    replies.setdefault(root, []).append(msg)
            for msg in current.history:
                root = msg.get("thread_ts")
                if root and root != msg["ts"] and msg.get("subtype") != "thread_broadcast":
                    continue
                messages.append(
                    {
                        **msg,
                        "pinned": msg["ts"] in current.pinned,
                        "thread": replies.get(msg["ts"], []),
                    }
                )
            for answer in fake.private_answers(user):
                if answer.get("channel") == current.id:
                    messages.append({**answer, "ephemeral": True, "thread": []})
            messages.sort(key=lambda m: float(m["ts"]))
        names = {uid: (u.get("real_name") or u.get("name")) for uid, u in fake.users.items()}
        files = {
            fid: {"name": f.get("name"), "title": f.get("title"), "url": f"/sandbox/files/{fid}"}
            for fid, f in fake.files.items()
        }
        body = {
            "team": fake.team_name,
            "bot": fake.bot_user_id,
            "people": [{"id": p, "name": names.get(p, p)} for p in self.people],
            "names": names,
            "channel_names": {ch.id: ch.name for ch in fake.channels.values()},
            "channels": channels,
            "messages": messages,
            "views": fake.view_stack(user),
            # The bot's App Home as published for this person (None until first opened).
            "home": fake.views.get(fake.home_views.get(user, "")),
            "files": files,
        }
        return web.json_response(body, dumps=_dumps)

    async def emoji(self, _: web.Request) -> web.Response:
        return web.json_response(emoji_names(), headers={"Cache-Control": "max-age=3600"})

    async def file(self, request: web.Request) -> web.Response:
        data = self.fake.file_contents.get(request.match_info["file_id"])
        if data is None:
            raise web.HTTPNotFound()
        return web.Response(body=data, content_type="text/plain", charset="utf-8")

    # -- acting -------------------------------------------------------------------------------

    def _guard(self, handler: Callable[[JsonDict], Awaitable[JsonDict]]) -> Handler:
        """Read the JSON body, run the act, answer what happened (or why it could not)."""

        async def run(request: web.Request) -> web.Response:
            try:
                body = await request.json()
            except ValueError:
                return web.json_response({"error": "expected a JSON body"}, status=400)
            if not isinstance(body, dict) or body.get("user") not in self.people:
                return web.json_response({"error": "unknown person"}, status=400)
            try:
                return web.json_response(await handler(body))
            except (AssertionError, KeyError, ValueError) as e:
                # What Slack's own client would not let a person do (a required field left
                # empty, a message that is gone): said on the page, not sent to the bot.
                return web.json_response({"error": str(e)}, status=400)

        return run

    @property
    def _sender(self) -> SlackSender:
        if self.sender is None:
            raise ValueError("the bot is still starting")
        return self.sender

    async def send(self, body: JsonDict) -> JsonDict:
        user, channel = body["user"], body["channel"]
        text = str(body.get("text", "")).strip()
        if not text:
            raise ValueError("type a message or a /incident command")
        if text.startswith("/"):
            command, _, rest = text.partition(" ")
            if command != "/incident":
                raise ValueError(f"{command} is not a command here; try /incident help")
            reply = await self._sender.command(as_typed(rest.strip()), user=user, channel=channel)
            if reply.status == 200 and (reply.json is not None or reply.text):
                # The command's own reply, shown as Slack shows it: only to this person,
                # or in the channel when it says `in_channel`.
                answer = reply.json if isinstance(reply.json, dict) else {"text": reply.text}
                self.fake.command_answered(channel=channel, user=user, body=answer)
        else:
            self._join(user, channel)
            reply = await self._sender.user_message(
                user=user,
                channel=channel,
                text=as_typed(text),
                thread_ts=body.get("thread_ts") or None,
            )
        return {"status": reply.status, "answer": reply.json if reply.status == 200 else None}

    async def home(self, body: JsonDict) -> JsonDict:
        """The person opens the bot's Home tab: Slack's app_home_opened event."""
        user = str(body["user"])
        reply = await self._sender.event(
            {"type": "app_home_opened", "user": user, "channel": f"D{user[1:]}", "tab": "home"}
        )
        return {"status": reply.status}

    def _join(self, user: str, channel: str) -> None:
        ch = self.fake.channels[channel]
        if user not in ch.members and not ch.is_im:
            ch.members.append(user)

    async def action(self, body: JsonDict) -> JsonDict:
        reply = await self._sender.block_action(
            user=body["user"],
            channel=body["channel"],
            message_ts=body["ts"],
            action_id=body["action_id"],
            value=body.get("value"),
            selected_option=body.get("selected_option"),
            selected_user=body.get("selected_user"),
        )
        return {"status": reply.status}

    async def view_action(self, body: JsonDict) -> JsonDict:
        reply = await self._sender.view_block_action(
            user=body["user"],
            view_id=body["view_id"],
            action_id=body["action_id"],
            value=body.get("value"),
            selected_option=body.get("selected_option"),
            selected_user=body.get("selected_user"),
            inputs=body.get("inputs") or None,
        )
        return {"status": reply.status}

    async def submit(self, body: JsonDict) -> JsonDict:
        reply = await self._sender.submit_view(
            body["view_id"], user=body["user"], inputs=body.get("inputs") or {}
        )
        answer = reply.json if isinstance(reply.json, dict) else {}
        errors = answer.get("errors") if answer.get("response_action") == "errors" else None
        return {"status": reply.status, "errors": errors or {}}

    async def close(self, body: JsonDict) -> JsonDict:
        reply = await self._sender.close_view(body["view_id"], user=body["user"])
        return {"status": reply.status if reply is not None else 200}

    async def react(self, body: JsonDict) -> JsonDict:
        reply = await self._sender.reaction_added(
            user=body["user"],
            channel=body["channel"],
            ts=body["ts"],
            reaction=str(body.get("reaction") or "pushpin"),
        )
        return {"status": reply.status}

    async def shortcut(self, body: JsonDict) -> JsonDict:
        reply = await self._sender.message_shortcut(
            callback_id=TIMELINE_SHORTCUT,
            user=body["user"],
            channel=body["channel"],
            message_ts=body["ts"],
        )
        return {"status": reply.status}


def _dumps(value: Any) -> str:
    import json

    return json.dumps(value, default=str)
