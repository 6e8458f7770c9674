"""Posts and files in the incident's channel and the announcement's thread, and invitations."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.models.blocks import Block

from bot.base.errors import slack_error
from bot.model.tables import Incident, StatusUpdate, TimelineEntry
from bot.outbound.slack.surfaces.base import SurfacesBase
from bot.views import blocks

log = logging.getLogger(__name__)


class Posts(SurfacesBase):
    async def post(self, inc: Incident, text: str, body: list[Block] | None = None) -> str:
        """Post in the incident's channel; returns the message ts."""
        channel = inc.channel_id
        assert channel
        resp = await self._in_channel(
            inc,
            lambda: self.client.chat_postMessage(
                channel=channel, text=text, blocks=body, unfurl_links=False
            ),
        )
        return str(resp["ts"])

    async def post_to_announcement_thread(self, inc: Incident, text: str) -> None:
        """Reply in the public announcement's thread, unless the incident is private by now:
        decided with its public side held, so a privacy change is never overtaken."""
        channel = self.settings.announcements_channel
        if not channel or not inc.announcement_ts or inc.private:
            return  # known already, without a lock: an incident never becomes public again
        async with self.store.publicly(inc.pk) as side:
            now = side.incident
            if now.announcement_ts and self._announces(now):
                await self.client.chat_postMessage(
                    channel=channel, thread_ts=now.announcement_ts, text=text, unfurl_links=False
                )

    async def announce(self, inc: Incident, text: str, body: list[Block] | None = None) -> str:
        """Post in the channel and in the announcement's thread."""
        ts = await self.post(inc, text, body)
        await self.post_to_announcement_thread(inc, text)
        return ts

    async def post_update(self, inc: Incident, update: StatusUpdate, mark: str) -> str:
        """Post a claimed status update, keeping the claim alive while Slack answers."""
        update_id = update.pk

        async def renew(held: str) -> str | None:
            return await self.claims.take_update(update_id, held)

        text, body = blocks.status_update(inc, update, self.settings)
        try:
            ts = await self.claims.keep_alive(renew, mark, self.post(inc, text, body))
        except Exception:
            await self.store.save_update_ts(update_id, None)  # a repair posts it later
            raise
        await self.store.save_update_ts(update_id, ts)
        await self.post_to_announcement_thread(inc, text)
        return ts

    async def already_posted(
        self, inc: Incident, since: datetime, marker: str, known: set[str]
    ) -> str | None:
        """The ts of a message of ours containing `marker`, posted after `since` and not
        yet recorded: a post whose process died before it could note that it was sent."""
        assert inc.channel_id
        resp = await self.client.conversations_history(
            channel=inc.channel_id, oldest=f"{since.timestamp():.6f}", limit=100
        )
        messages: list[dict[str, Any]] = resp.get("messages", [])
        for message in messages:
            if (
                self.directory.is_mine(message)
                and marker in message.get("text", "")
                and message["ts"] not in known
            ):
                return str(message["ts"])
        return None

    async def message(self, channel: str, ts: str) -> Mapping[str, Any] | None:
        """One message of a channel, top-level or a thread reply; None when it is gone."""
        # One call finds a message whether it is top-level or a thread reply: replies
        # of the thread that holds `ts`, bounded to exactly that ts.
        try:
            resp = await self.client.conversations_replies(
                channel=channel, ts=ts, oldest=ts, latest=ts, inclusive=True, limit=2
            )
        except SlackApiError as e:
            if slack_error(e) in ("thread_not_found", "message_not_found"):
                return None
            raise
        messages: list[dict[str, Any]] = resp.get("messages", [])
        return next((m for m in messages if m.get("ts") == ts), None)

    async def upload(
        self, inc: Incident, *, content: str, filename: str, title: str, comment: str
    ) -> str | None:
        """Share a file in the incident's channel; its file id."""
        resp = await self.client.files_upload_v2(
            channel=inc.channel_id,
            content=content,
            filename=filename,
            title=title,
            initial_comment=comment,
        )
        file: dict[str, Any] = resp.get("file") or (resp.get("files") or [{}])[0]
        file_id = file.get("id")
        return str(file_id) if file_id else None

    async def invite(self, inc: Incident, users: set[str]) -> None:
        users.discard(self.directory.bot_user_id or "")
        if not users or not inc.channel_id:
            return
        try:
            await self.client.conversations_invite(channel=inc.channel_id, users=sorted(users))
        except SlackApiError as e:
            if slack_error(e) != "already_in_channel":
                # Not fatal: the incident works and people can join the channel themselves.
                log.warning("could not invite people to %s: %s", inc.ref, slack_error(e))

    async def bring_in(self, inc: Incident, severity: str) -> None:
        """Invite whom SEVERITIES names for `severity` and say once on the timeline who
        was brought in and why. People and groups Slack cannot invite are named there too;
        the incident goes on without them."""
        level = self.settings.severity(severity)
        if level is None or not level.invite or not inc.channel_id:
            return
        people = {
            w for w in level.invite if not w.startswith("@") and w[:1] in "UW" and w.isupper()
        }
        groups, unknown = await self.directory.group_members(set(level.invite) - people)
        wanted = people | {u for members in groups.values() for u in members}
        wanted.discard(self.directory.bot_user_id or "")
        brought, failed = await self._invite_each(inc, wanted)
        text = f"Brought in for {severity}: " + (
            ", ".join(f"<@{u}>" for u in sorted(brought)) or "nobody new"
        )
        if groups:
            text += " (from " + ", ".join(f"@{g}" for g in sorted(groups)) + ")"
        if failed or unknown:
            missed = [f"<@{u}>" for u in sorted(failed)] + [f"@{g}" for g in unknown]
            text += "; could not bring in " + ", ".join(missed)
        async with self.store.session() as s:
            await self.store.add_entry(
                s,
                TimelineEntry(
                    incident_id=inc.pk,
                    kind="invite",
                    happened_at=self.claims.clock(),
                    recorded_at=self.claims.clock(),
                    text=text,
                    data={"severity": severity, "users": sorted(brought), "groups": sorted(groups)},
                    source_key=f"invite:{severity}",
                ),
            )

    async def _invite_each(self, inc: Incident, users: set[str]) -> tuple[set[str], set[str]]:
        """Invite `users` in one call; when Slack refuses it, one by one to find who."""
        if not users:
            return set(), set()
        channel = str(inc.channel_id)
        try:
            await self.client.conversations_invite(channel=channel, users=sorted(users))
            return users, set()
        except SlackApiError as e:
            if slack_error(e) == "already_in_channel" and len(users) == 1:
                return users, set()
        brought: set[str] = set()
        failed: set[str] = set()
        for user in sorted(users):
            try:
                await self.client.conversations_invite(channel=channel, users=[user])
                brought.add(user)
            except SlackApiError as e:
                (brought if slack_error(e) == "already_in_channel" else failed).add(user)
        return brought, failed
