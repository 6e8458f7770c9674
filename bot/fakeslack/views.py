"""Modals and App Home: views.open, views.push, views.update and views.publish, the trigger ids
they take, and what Slack does with the bot's answer to a view_submission.
"""

from __future__ import annotations

import copy
import json
import time
from typing import Any

from .blocks import MAX_VIEW_BLOCKS, check_blocks, check_max_len, check_text_object, iter_elements
from .model import JsonDict, SlackError, Trigger, invalid_arguments, opt_str
from .workspace import Workspace


class ViewsMethods(Workspace):
    """views.*, trigger ids and view stacks."""

    # -- workspace setup and inspection ---------------------------------------------------------

    def view_stack(self, user: str | None) -> list[JsonDict]:
        """The modals open for ``user``, root first."""
        return [copy.deepcopy(self.views[vid]) for vid in self.view_stacks.get(user, [])]

    def new_trigger_id(self, user: str | None = None) -> str:
        trigger_id = f"{int(time.time())}.{next(self._seq)}.{self._rng.getrandbits(128):032x}"
        self._triggers[trigger_id] = Trigger(issued=time.monotonic(), user=user)
        return trigger_id

    def close_view(self, view_id: str) -> None:
        """Take a modal (and what was pushed on it) off its user's stack, as closing it does."""
        user = self.view_users.get(view_id)
        stack = self.view_stacks.get(user, [])
        if view_id in stack:
            for vid in stack[stack.index(view_id) :]:
                self.closed_views.add(vid)
            del stack[stack.index(view_id) :]

    def apply_view_response(self, view_id: str, body: Any) -> None:
        """Do what Slack does with the bot's answer to a view_submission.

        No ``response_action`` closes the view (and any pushed on it); ``update``, ``push``,
        ``clear`` and ``errors`` behave as documented. Raises SlackError for a view Slack
        would refuse.
        """
        action = body.get("response_action") if isinstance(body, dict) else None
        user = self.view_users.get(view_id)
        if action == "errors":
            if not isinstance(body.get("errors"), dict) or not body["errors"]:
                raise invalid_arguments("[ERROR] errors must be a non-empty object")
            return
        if action == "update":
            current = self.views[view_id]
            spec = self._view_spec(body.get("view"), {"modal"})
            self.views[view_id] = self._make_view(
                spec,
                view_id=view_id,
                root=current["root_view_id"],
                previous=current["previous_view_id"],
            )
        elif action == "push":
            stack = self.view_stacks.setdefault(user, [])
            if len(stack) >= 3:
                raise SlackError("push_limit_reached")
            spec = self._view_spec(body.get("view"), {"modal"})
            new_id = self._new_id("V")
            root = stack[0] if stack else None
            self.views[new_id] = self._make_view(
                spec, view_id=new_id, root=root, previous=stack[-1] if stack else None
            )
            self.view_users[new_id] = user
            stack.append(new_id)
        elif action == "clear":
            stack = self.view_stacks.get(user) or [view_id]
            self.close_view(stack[0])
        else:
            self.close_view(view_id)

    # -- views ----------------------------------------------------------------------------------

    def _take_trigger(self, args: JsonDict) -> str | None:
        trigger_id = opt_str(args.get("trigger_id")) or opt_str(args.get("interactivity_pointer"))
        if trigger_id is None:
            raise invalid_arguments("[ERROR] missing required field: trigger_id")
        trigger = self._triggers.get(trigger_id)
        if trigger is None:
            raise SlackError("invalid_trigger_id")
        if time.monotonic() - trigger.issued > self.trigger_ttl:
            raise SlackError("expired_trigger_id")
        if trigger.used:
            raise SlackError("exchanged_trigger_id")
        trigger.used = True
        return trigger.user

    def _view_spec(self, raw: Any, kinds: set[str]) -> JsonDict:
        if isinstance(raw, str):
            try:
                raw = json.loads(raw)
            except ValueError as exc:
                raise invalid_arguments(
                    "[ERROR] failed to parse view [json-pointer:/view]"
                ) from exc
        if not isinstance(raw, dict):
            raise invalid_arguments("[ERROR] must be an object [json-pointer:/view]")
        errors: list[str] = []
        vtype = raw.get("type")
        if vtype not in kinds:
            errors.append(f"[ERROR] must be one of {sorted(kinds)} [json-pointer:/view/type]")
        blocks = raw.get("blocks")
        errors += check_blocks(blocks, max_blocks=MAX_VIEW_BLOCKS, pointer="/view/blocks")
        if vtype == "modal":
            check_text_object(raw.get("title"), "/view/title", errors, plain=True, max_len=24)
            for key in ("submit", "close"):
                if raw.get(key) is not None:
                    check_text_object(raw[key], f"/view/{key}", errors, plain=True, max_len=24)
            has_input = isinstance(blocks, list) and any(
                isinstance(b, dict) and b.get("type") == "input" for b in blocks
            )
            if has_input and raw.get("submit") is None:
                errors.append(
                    "[ERROR] submit is required when an input block is within the blocks array "
                    "[json-pointer:/view/submit]"
                )
        check_max_len(raw.get("private_metadata"), 3000, "/view/private_metadata", errors)
        check_max_len(raw.get("callback_id"), 255, "/view/callback_id", errors)
        check_max_len(raw.get("external_id"), 255, "/view/external_id", errors)
        if errors:
            raise invalid_arguments(*errors)
        return raw

    def _make_view(
        self, spec: JsonDict, *, view_id: str, root: str | None, previous: str | None
    ) -> JsonDict:
        external_id = spec.get("external_id") or ""
        if external_id:
            for other in self.views.values():
                if other["external_id"] == external_id and other["id"] != view_id:
                    raise SlackError("duplicate_external_id")
        return {
            "id": view_id,
            "team_id": self.team_id,
            "type": spec["type"],
            "title": copy.deepcopy(spec.get("title")),
            "submit": copy.deepcopy(spec.get("submit")),
            "close": copy.deepcopy(spec.get("close")),
            "blocks": self._with_ids(spec["blocks"]),
            "private_metadata": spec.get("private_metadata") or "",
            "callback_id": spec.get("callback_id") or "",
            "external_id": external_id,
            "state": {"values": {}},
            "hash": self._new_hash(),
            "clear_on_close": bool(spec.get("clear_on_close", False)),
            "notify_on_close": bool(spec.get("notify_on_close", False)),
            "submit_disabled": bool(spec.get("submit_disabled", False)),
            "previous_view_id": previous,
            "root_view_id": root or view_id,
            "app_id": self.app_id,
            "app_installed_team_id": self.team_id,
            "bot_id": self.bot_id,
        }

    def _views_open(self, args: JsonDict) -> JsonDict:
        user = self._take_trigger(args)
        spec = self._view_spec(args["view"], {"modal"})
        view_id = self._new_id("V")
        view = self._make_view(spec, view_id=view_id, root=None, previous=None)
        self.views[view_id] = view
        self.view_users[view_id] = user
        for old in self.view_stacks.get(user, []):
            self.closed_views.add(old)
        self.view_stacks[user] = [view_id]
        return {"view": copy.deepcopy(view)}

    def _views_push(self, args: JsonDict) -> JsonDict:
        user = self._take_trigger(args)
        spec = self._view_spec(args["view"], {"modal"})
        stack = self.view_stacks.get(user) or []
        if not stack:
            raise SlackError("not_found")
        if len(stack) >= 3:
            raise SlackError("push_limit_reached")
        view_id = self._new_id("V")
        view = self._make_view(spec, view_id=view_id, root=stack[0], previous=stack[-1])
        self.views[view_id] = view
        self.view_users[view_id] = user
        stack.append(view_id)
        return {"view": copy.deepcopy(view)}

    def _views_update(self, args: JsonDict) -> JsonDict:
        view_id = opt_str(args.get("view_id"))
        external_id = opt_str(args.get("external_id"))
        if view_id is None and external_id is None:
            raise invalid_arguments("[ERROR] either view_id or external_id is required")
        current = None
        if view_id is not None:
            current = self.views.get(view_id)
        else:
            current = next(
                (v for v in self.views.values() if v["external_id"] == external_id), None
            )
        if current is None or current["id"] in self.closed_views:
            raise SlackError("not_found")
        given_hash = opt_str(args.get("hash"))
        if given_hash is not None and given_hash != current["hash"]:
            raise SlackError("hash_conflict")
        spec = self._view_spec(args["view"], {current["type"]})
        view = self._make_view(
            spec,
            view_id=current["id"],
            root=current["root_view_id"],
            previous=current["previous_view_id"],
        )
        # Slack keeps what the user typed into inputs that are still there.
        kept = {(b["block_id"], e.get("action_id")) for b, e in iter_elements(view["blocks"])}
        for block_id, actions in current["state"]["values"].items():
            for action_id, value in actions.items():
                if (block_id, action_id) in kept:
                    view["state"]["values"].setdefault(block_id, {})[action_id] = value
        self.views[current["id"]] = view
        return {"view": copy.deepcopy(view)}

    def _views_publish(self, args: JsonDict) -> JsonDict:
        user = str(args["user_id"])
        if user not in self.users:
            raise SlackError("user_not_found")
        spec = self._view_spec(args["view"], {"home"})
        current_id = self.home_views.get(user)
        given_hash = opt_str(args.get("hash"))
        if current_id is not None and given_hash not in (None, self.views[current_id]["hash"]):
            raise SlackError("hash_conflict")
        view_id = current_id or self._new_id("V")
        view = self._make_view(spec, view_id=view_id, root=None, previous=None)
        self.views[view_id] = view
        self.view_users[view_id] = user
        self.home_views[user] = view_id
        return {"view": copy.deepcopy(view)}
