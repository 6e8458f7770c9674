"""The workspace's identity and people: auth.test, apps.connections.open (Socket Mode; its
app-token checks are in ``workspace.py``), team.info, users.info, users.list,
users.lookupByEmail, bots.info, usergroups.list and usergroups.users.list, and the helpers
that add bots and user groups (``add_user`` is in ``workspace.py``: the bot is a user from the
start).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterable

from .model import JsonDict, SlackError, as_bool, page_limit, paginate
from .workspace import Workspace


class UsersMethods(Workspace):
    """auth.*, apps.connections.open, team.*, users.*, bots.* and usergroups.*."""

    # -- workspace setup ------------------------------------------------------------------------

    def add_usergroup(
        self,
        handle: str,
        *,
        name: str | None = None,
        users: Iterable[str] = (),
        id: str | None = None,
    ) -> JsonDict:
        gid = id or self._new_id("S")
        now = int(time.time())
        group: JsonDict = {
            "id": gid,
            "team_id": self.team_id,
            "is_usergroup": True,
            "name": name or handle,
            "description": "",
            "handle": handle,
            "is_external": False,
            "date_create": now,
            "date_update": now,
            "date_delete": 0,
            "auto_type": None,
            "created_by": self.bot_user_id,
            "updated_by": self.bot_user_id,
            "deleted_by": None,
            "prefs": {"channels": [], "groups": []},
            "users": list(users),
        }
        self.usergroups[gid] = group
        return copy.deepcopy(group)

    def add_bot(self, bot_id: str, name: str, *, user_id: str | None = None) -> JsonDict:
        """An app's bot, as bots.info describes it."""
        bot: JsonDict = {
            "id": bot_id,
            "deleted": False,
            "name": name,
            "updated": int(time.time()),
            "app_id": self._new_id("A"),
            "icons": {"image_36": "https://a.slack-edge.com/bot_36.png"},
        }
        if user_id is not None:
            bot["user_id"] = user_id
        self.bots[bot_id] = bot
        return copy.deepcopy(bot)

    # -- auth, team, users ----------------------------------------------------------------------

    def _apps_connections_open(self, args: JsonDict) -> JsonDict:
        return {"url": self.socket_mode.new_url()}

    def _auth_test(self, args: JsonDict) -> JsonDict:
        return {
            "url": f"https://{self.team_domain}.slack.com/",
            "team": self.team_name,
            "user": self.bot_name,
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
            "is_enterprise_install": False,
        }

    def _team_info(self, args: JsonDict) -> JsonDict:
        if args.get("team") not in (None, "", self.team_id):
            raise SlackError("team_not_found")
        return {
            "team": {
                "id": self.team_id,
                "name": self.team_name,
                "url": f"https://{self.team_domain}.slack.com/",
                "domain": self.team_domain,
                "email_domain": "",
                "icon": {"image_default": True},
                "avatar_base_url": "https://ca.slack-edge.com/",
                "is_verified": False,
            }
        }

    def _users_info(self, args: JsonDict) -> JsonDict:
        if str(args["user"]) in self.invisible_users:
            raise SlackError("user_not_visible")
        user = self.users.get(str(args["user"]))
        if user is None:
            raise SlackError("user_not_found")
        return {"user": copy.deepcopy(user)}

    def _bots_info(self, args: JsonDict) -> JsonDict:
        bot = self.bots.get(str(args.get("bot") or ""))
        if bot is None:
            raise SlackError("bot_not_found")
        return {"bot": copy.deepcopy(bot)}

    def _users_list(self, args: JsonDict) -> JsonDict:
        users = list(self.users.values())
        limit = page_limit(args, len(users) or 1, 1000)
        page, cursor = paginate(users, [u["id"] for u in users], args, limit, "users")
        return {
            "members": copy.deepcopy(page),
            "cache_ts": int(time.time()),
            "response_metadata": {"next_cursor": cursor},
        }

    def _users_lookup_by_email(self, args: JsonDict) -> JsonDict:
        email = str(args["email"]).lower()
        for user in self.users.values():
            if str(user["profile"].get("email", "")).lower() == email:
                return {"user": copy.deepcopy(user)}
        raise SlackError("users_not_found")

    def _usergroups_list(self, args: JsonDict) -> JsonDict:
        groups = []
        for group in self.usergroups.values():
            data = copy.deepcopy(group)
            users = data.pop("users")
            if as_bool(args.get("include_users")):
                data["users"] = users
            if as_bool(args.get("include_count")):
                data["user_count"] = len(users)
            groups.append(data)
        return {"usergroups": groups}

    def _usergroups_users_list(self, args: JsonDict) -> JsonDict:
        group = self.usergroups.get(str(args["usergroup"]))
        if group is None:
            raise SlackError("no_such_subteam")
        return {"users": list(group["users"])}
