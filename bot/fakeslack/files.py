"""Files and canvases: files.getUploadURLExternal, the upload to the URL it answers and
files.completeUploadExternal (the external upload flow, "upload v2"); files.info and the
download of a file's ``url_private``; canvases.create, canvases.edit and
conversations.canvases.create.
"""

from __future__ import annotations

import copy
import mimetypes
import time

from aiohttp import web

from .blocks import MAX_MESSAGE_BLOCKS
from .messages import Messages
from .model import Channel, JsonDict, SlackError, form_value, invalid_arguments, opt_str


class FilesMethods(Messages):
    """files.*, canvases.* and conversations.canvases.create."""

    # -- files ----------------------------------------------------------------------------------

    def _files_get_upload_url(self, args: JsonDict) -> JsonDict:
        try:
            length = int(args["length"])
        except (TypeError, ValueError) as exc:
            raise invalid_arguments("[ERROR] must be an integer [json-pointer:/length]") from exc
        if length < 1:
            raise SlackError("missing_argument")
        name = str(args["filename"])
        file_id = self._new_id("F")
        now = int(time.time())
        mimetype = mimetypes.guess_type(name)[0] or "application/octet-stream"
        filetype = name.rsplit(".", 1)[-1].lower() if "." in name else "binary"
        self.files[file_id] = {
            "id": file_id,
            "created": now,
            "timestamp": now,
            "name": name,
            "title": name,
            "mimetype": mimetype,
            "filetype": filetype,
            "pretty_type": filetype.upper(),
            "user": self.bot_user_id,
            "user_team": self.team_id,
            "editable": False,
            "size": length,
            "mode": "hosted",
            "is_external": False,
            "external_type": "",
            "is_public": False,
            "public_url_shared": False,
            "display_as_bot": False,
            "username": "",
            "url_private": f"{self.base_url}/files-pri/{file_id}/{name}",
            "url_private_download": f"{self.base_url}/files-pri/{file_id}/{name}",
            "permalink": f"https://{self.team_domain}.slack.com/files/{self.bot_user_id}/{file_id}/{name}",
            "permalink_public": f"https://slack-files.com/{self.team_id}-{file_id}",
            "comments_count": 0,
            "is_starred": False,
            "shares": {},
            "channels": [],
            "groups": [],
            "ims": [],
            "has_rich_preview": False,
            "file_access": "visible",
            "alt_txt": opt_str(args.get("alt_txt")),
        }
        return {"upload_url": f"{self.base_url}/upload/{file_id}", "file_id": file_id}

    async def _handle_upload(self, request: web.Request) -> web.StreamResponse:
        file_id = request.match_info["file_id"]
        if file_id not in self.files:
            return web.Response(status=404, text="file_not_found")
        if request.content_type.startswith("multipart/"):
            form = await request.post()
            parts = [form_value(v) for v in form.values() if not isinstance(v, str)]
            data = parts[0] if parts and isinstance(parts[0], bytes) else b""
        else:
            data = await request.read()
        self.file_contents[file_id] = data
        self.files[file_id]["size"] = len(data)
        return web.Response(text=f"OK - {len(data)}")

    def _files_complete_upload(self, args: JsonDict) -> JsonDict:
        items = args["files"]
        if (
            not isinstance(items, list)
            or not items
            or not all(isinstance(i, dict) and i.get("id") for i in items)
        ):
            raise invalid_arguments(
                "[ERROR] must be a non-empty array of {id, title} [json-pointer:/files]"
            )
        for item in items:
            if item["id"] not in self.files or item["id"] not in self.file_contents:
                raise SlackError("file_not_found")
        channel_ids = []
        if opt_str(args.get("channel_id")):
            channel_ids.append(str(args["channel_id"]))
        elif opt_str(args.get("channels")):
            channel_ids += [c.strip() for c in str(args["channels"]).split(",") if c.strip()]
        targets = [self._channel({"channel": cid}) for cid in channel_ids]
        for ch in targets:
            self._check_can_post(ch)
        for item in items:
            if item.get("title"):
                self.files[item["id"]]["title"] = str(item["title"])
        thread_ts = opt_str(args.get("thread_ts"))
        for ch in targets:
            content = self._message_content(args, max_blocks=MAX_MESSAGE_BLOCKS, require=False)
            content["text"] = str(args.get("initial_comment") or "")
            msg = self._bot_message(content)
            msg.update(upload=True, display_as_bot=False, ts=self._new_ts(ch))
            for item in items:
                file = self.files[item["id"]]
                share: JsonDict = {
                    "ts": msg["ts"],
                    "channel_name": ch.name,
                    "team_id": self.team_id,
                    "share_user_id": self.bot_user_id,
                    "source": "UNKNOWN",
                }
                if thread_ts:
                    share["thread_ts"] = thread_ts
                visibility = "private" if ch.is_private or ch.is_im else "public"
                file["shares"].setdefault(visibility, {}).setdefault(ch.id, []).append(share)
                bucket = "ims" if ch.is_im else "groups" if ch.is_private else "channels"
                if ch.id not in file[bucket]:
                    file[bucket].append(ch.id)
                file["is_public"] = file["is_public"] or visibility == "public"
            msg["files"] = [copy.deepcopy(self.files[item["id"]]) for item in items]
            self._store(ch, msg, thread_ts=thread_ts)
        return {"files": [{"id": i["id"], "title": self.files[i["id"]]["title"]} for i in items]}

    def _files_info(self, args: JsonDict) -> JsonDict:
        file = self.files.get(str(args["file"]))
        if file is None:
            raise SlackError("file_not_found")
        return {
            "file": copy.deepcopy(file),
            "comments": [],
            "response_metadata": {"next_cursor": ""},
        }

    async def _handle_download(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Authorization") != f"Bearer {self.bot_token}":
            return web.Response(status=403, text="forbidden")
        data = self.file_contents.get(request.match_info["file_id"])
        if data is None:
            return web.Response(status=404, text="not found")
        return web.Response(body=data, content_type="application/octet-stream")

    # -- canvases -------------------------------------------------------------------------------

    def _new_canvas(self, args: JsonDict, ch: Channel | None) -> str:
        canvas_id = self._new_id("F")
        self.canvases[canvas_id] = {
            "id": canvas_id,
            "title": opt_str(args.get("title")) or "",
            "channel_id": ch.id if ch else None,
            "document_content": copy.deepcopy(args.get("document_content")),
            "changes": [],
        }
        return canvas_id

    def _canvases_create(self, args: JsonDict) -> JsonDict:
        ch = self._channel(args, "channel_id") if opt_str(args.get("channel_id")) else None
        return {"canvas_id": self._new_canvas(args, ch)}

    def _canvases_edit(self, args: JsonDict) -> JsonDict:
        canvas = self.canvases.get(str(args["canvas_id"]))
        if canvas is None:
            raise SlackError("canvas_not_found")
        changes = args["changes"]
        if not isinstance(changes, list):
            raise invalid_arguments("[ERROR] must be an array [json-pointer:/changes]")
        canvas["changes"].extend(copy.deepcopy(changes))
        return {}

    def _conversations_canvases_create(self, args: JsonDict) -> JsonDict:
        ch = self._channel(args, "channel_id")
        if ch.canvas_id is not None:
            raise SlackError("channel_canvas_already_exists")
        canvas_id = self._new_canvas(args, ch)
        ch.canvas_id = canvas_id
        return {"canvas_id": canvas_id}
