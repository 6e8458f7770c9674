"""A fake of Slack's Web API: an aiohttp app on a local port with an in-memory workspace.

The bot under test talks to it through its real ``AsyncWebClient`` (``base_url=fake.api_url``).
Required arguments and error codes follow Slack's machine-readable method reference, kept in
``reference/methods.json`` (see ``reference/NOTICE.md``): a method missing there answers
``unknown_method``, so the bot cannot come to depend on a method the project has not reviewed.

Socket Mode: ``apps.connections.open`` takes the app-level token (``app_token``) and answers a
``ws://`` URL served on the same port by ``fake.socket_mode`` (see ``socket_mode.py``);
``revoke_app_token``, ``socket_mode_refuse`` and ``socket_mode_unreachable`` break it.

``FakeSlack`` is put together here from one class per family of methods: ``users.py``,
``conversations.py``, ``chat.py``, ``pins.py`` (and reactions, bookmarks), ``views.py`` and
``files.py`` (and canvases), over the shared ``workspace.py`` (state, HTTP, dispatch,
reference checks, faults, rate limits) and ``messages.py`` (how messages are kept). Block Kit
checks are in ``blocks.py``, the shared types in ``model.py``.
"""

from __future__ import annotations

from aiohttp import web

from .blocks import STATEFUL_ELEMENTS, check_blocks, iter_elements, options_of
from .chat import ChatMethods
from .conversations import ConversationsMethods
from .files import FilesMethods
from .model import Call, Channel, JsonDict, ResponseUrlPost, SlackError, as_typed
from .pins import PinsMethods
from .ratelimits import RateLimit, load_rate_limits
from .users import UsersMethods
from .views import ViewsMethods
from .workspace import REFERENCE_FILE, Handler, load_reference

# Names this module has always offered, wherever they are defined now.
__all__ = [
    "REFERENCE_FILE",
    "STATEFUL_ELEMENTS",
    "Call",
    "Channel",
    "FakeSlack",
    "JsonDict",
    "RateLimit",
    "ResponseUrlPost",
    "SlackError",
    "as_typed",
    "check_blocks",
    "iter_elements",
    "load_rate_limits",
    "load_reference",
    "options_of",
]


class FakeSlack(
    UsersMethods, ConversationsMethods, ChatMethods, PinsMethods, ViewsMethods, FilesMethods
):
    """An in-memory Slack workspace served over HTTP on 127.0.0.1.

    Use ``async with FakeSlack() as fake:``; point the bot's client at ``fake.api_url``.
    Helpers return copies, so tests can't corrupt the workspace by editing what they read.
    """

    def _api_handlers(self) -> dict[str, Handler]:
        return {
            "auth.test": self._auth_test,
            "apps.connections.open": self._apps_connections_open,
            "team.info": self._team_info,
            "users.info": self._users_info,
            "users.list": self._users_list,
            "users.lookupByEmail": self._users_lookup_by_email,
            "bots.info": self._bots_info,
            "usergroups.list": self._usergroups_list,
            "usergroups.users.list": self._usergroups_users_list,
            "conversations.create": self._conversations_create,
            "conversations.info": self._conversations_info,
            "conversations.list": self._conversations_list,
            "conversations.invite": self._conversations_invite,
            "conversations.join": self._conversations_join,
            "conversations.members": self._conversations_members,
            "conversations.setTopic": self._conversations_set_topic,
            "conversations.setPurpose": self._conversations_set_purpose,
            "conversations.rename": self._conversations_rename,
            "conversations.archive": self._conversations_archive,
            "conversations.history": self._conversations_history,
            "conversations.replies": self._conversations_replies,
            "conversations.canvases.create": self._conversations_canvases_create,
            "chat.postMessage": self._chat_post_message,
            "chat.update": self._chat_update,
            "chat.delete": self._chat_delete,
            "chat.postEphemeral": self._chat_post_ephemeral,
            "chat.getPermalink": self._chat_get_permalink,
            "pins.add": self._pins_add,
            "pins.remove": self._pins_remove,
            "pins.list": self._pins_list,
            "reactions.add": self._reactions_add,
            "bookmarks.add": self._bookmarks_add,
            "bookmarks.list": self._bookmarks_list,
            "views.open": self._views_open,
            "views.push": self._views_push,
            "views.update": self._views_update,
            "views.publish": self._views_publish,
            "files.getUploadURLExternal": self._files_get_upload_url,
            "files.completeUploadExternal": self._files_complete_upload,
            "files.info": self._files_info,
            "canvases.create": self._canvases_create,
            "canvases.edit": self._canvases_edit,
        }

    def _add_routes(self, app: web.Application) -> None:
        app.router.add_post("/upload/{file_id}", self._handle_upload)
        app.router.add_get("/files-pri/{file_id}/{name}", self._handle_download)
        app.router.add_post("/response/{key}", self._handle_response_url)
