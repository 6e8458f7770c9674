"""Every modal the bot opens, its block and action ids as named fields, and one reader.

The ids are the contract between a modal and the listener that reads its submission.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from slack_sdk.models.blocks import (
    Block,
    InputBlock,
    MarkdownTextObject,
    Option,
    PlainTextInputElement,
    SectionBlock,
    StaticSelectElement,
    UserSelectElement,
)
from slack_sdk.models.blocks.block_elements import CheckboxesElement
from slack_sdk.models.views import View

from bot.base.settings import Settings
from bot.model.rules import DESCRIPTION_MAX, OPEN_STATUSES, SUMMARY_MAX, TITLE_MAX
from bot.model.tables import Incident
from bot.views.blocks import severity_option, status_text
from bot.views.text import clean

# Slack shows a field's error under it; longer ones are cut.
ERROR_MAX = 150


@dataclass(frozen=True)
class Field:
    """One input of a modal: its block id and its element's action id."""

    block: str
    action: str


class DeclareForm:
    VIEW = "declare"
    TITLE = Field("title", "title")
    SEVERITY = Field("severity", "severity")
    DESCRIPTION = Field("description", "description")
    COMMANDER = Field("commander", "commander")
    PRIVATE = Field("private", "private")


class UpdateForm:
    VIEW = "update"
    STATUS = Field("status", "status")
    SUMMARY = Field("summary", "summary")


class ResolveForm:
    VIEW = "resolve"
    SUMMARY = Field("summary", "summary")


class FollowUpForm:
    VIEW = "follow_up"
    TEXT = Field("text", "text")
    OWNER = Field("owner", "owner")


class Form:
    """A submitted view, read by field: what the person entered, cleaned of control text."""

    def __init__(self, view: Mapping[str, Any]):
        self.view = view
        self.id: str = str(view.get("id", ""))
        self._values: Mapping[str, Any] = (view.get("state") or {}).get("values") or {}
        try:
            meta = json.loads(view.get("private_metadata") or "{}")
        except ValueError:
            meta = {}
        self.metadata: Mapping[str, Any] = meta if isinstance(meta, dict) else {}

    def _element(self, field: Field) -> Mapping[str, Any]:
        return self._values.get(field.block, {}).get(field.action, {}) or {}

    def text(self, field: Field) -> str:
        return clean(self._element(field).get("value") or "")

    def option(self, field: Field) -> str | None:
        value = (self._element(field).get("selected_option") or {}).get("value")
        return str(value) if value is not None else None

    def user(self, field: Field) -> str | None:
        value = self._element(field).get("selected_user")
        return str(value) if value else None

    def checked(self, field: Field) -> set[str]:
        return {str(o.get("value")) for o in self._element(field).get("selected_options") or []}

    def incident_id(self) -> int | None:
        value = self.metadata.get("incident")
        return value if isinstance(value, int) else None


def errors(by_field: Mapping[Field, str]) -> dict[str, str]:
    """Slack's `response_action: errors` payload: a message under each field."""
    return {field.block: message[:ERROR_MAX] for field, message in by_field.items()}


def _for_incident(inc: Incident) -> str:
    return json.dumps({"incident": inc.id})


def _title(text: str) -> str:
    return text[: View.title_max_length]


def declare_modal(
    settings: Settings, *, user_id: str, origin_channel: str | None, title: str = ""
) -> View:
    default = settings.severity(settings.default_severity or "") or settings.severities[0]
    options = [severity_option(s) for s in settings.severities]
    private_option = Option(
        value="private",
        text="Private incident",
        description="A private channel, left out of announcements and lists",
    )
    drill_option = Option(
        value="drill",
        text="Drill",
        description="A test incident: labelled, not announced, left out of metrics and reports",
    )
    blocks: list[Block] = [
        InputBlock(
            block_id=DeclareForm.TITLE.block,
            label="Title",
            hint="What is broken, in a few words. It names the channel.",
            element=PlainTextInputElement(
                action_id=DeclareForm.TITLE.action,
                initial_value=title[:TITLE_MAX] or None,
                max_length=TITLE_MAX,
                placeholder="Checkout latency above 5 s",
            ),
        ),
        InputBlock(
            block_id=DeclareForm.SEVERITY.block,
            label="Severity",
            element=StaticSelectElement(
                action_id=DeclareForm.SEVERITY.action,
                options=options,
                initial_option=severity_option(default),
            ),
        ),
        InputBlock(
            block_id=DeclareForm.DESCRIPTION.block,
            label="Description",
            optional=True,
            element=PlainTextInputElement(
                action_id=DeclareForm.DESCRIPTION.action,
                multiline=True,
                max_length=DESCRIPTION_MAX,
                placeholder="What do you see? Who is affected?",
            ),
        ),
        InputBlock(
            block_id=DeclareForm.COMMANDER.block,
            label="Incident Commander",
            element=UserSelectElement(action_id=DeclareForm.COMMANDER.action, initial_user=user_id),
        ),
        InputBlock(
            block_id=DeclareForm.PRIVATE.block,
            label="Options",
            optional=True,
            element=CheckboxesElement(
                action_id=DeclareForm.PRIVATE.action, options=[private_option, drill_option]
            ),
        ),
    ]
    return View(
        type="modal",
        callback_id=DeclareForm.VIEW,
        title="Declare an incident",
        submit="Declare",
        close="Cancel",
        private_metadata=json.dumps({"channel": origin_channel}),
        blocks=blocks,
    )


def update_modal(inc: Incident, settings: Settings) -> View:
    options = [Option(value=s, text=status_text(s)) for s in OPEN_STATUSES]
    current = next((o for o in options if o.value == inc.status), options[0])
    return View(
        type="modal",
        callback_id=UpdateForm.VIEW,
        title=_title(f"Update {inc.ref}"),
        submit="Post update",
        close="Cancel",
        private_metadata=_for_incident(inc),
        blocks=[
            InputBlock(
                block_id=UpdateForm.STATUS.block,
                label="Status",
                element=StaticSelectElement(
                    action_id=UpdateForm.STATUS.action, options=options, initial_option=current
                ),
            ),
            InputBlock(
                block_id=UpdateForm.SUMMARY.block,
                label="Summary",
                hint="What changed, what is next, and when the next update comes.",
                element=PlainTextInputElement(
                    action_id=UpdateForm.SUMMARY.action, multiline=True, max_length=SUMMARY_MAX
                ),
            ),
        ],
    )


def follow_up_modal(inc: Incident) -> View:
    return View(
        type="modal",
        callback_id=FollowUpForm.VIEW,
        title="Add a follow-up",
        submit="Add",
        close="Cancel",
        private_metadata=_for_incident(inc),
        blocks=[
            InputBlock(
                block_id=FollowUpForm.TEXT.block,
                label="What should be done after the incident?",
                element=PlainTextInputElement(
                    action_id=FollowUpForm.TEXT.action, multiline=True, max_length=SUMMARY_MAX
                ),
            ),
            InputBlock(
                block_id=FollowUpForm.OWNER.block,
                label="Owner",
                optional=True,
                element=UserSelectElement(action_id=FollowUpForm.OWNER.action),
            ),
        ],
    )


def resolve_modal(inc: Incident) -> View:
    return View(
        type="modal",
        callback_id=ResolveForm.VIEW,
        title=_title(f"Resolve {inc.ref}?"),
        submit="Resolve",
        close="Cancel",
        private_metadata=_for_incident(inc),
        blocks=[
            SectionBlock(
                text=MarkdownTextObject(
                    text=f"Resolving *{inc.ref}* stops update reminders and records the time."
                )
            ),
            InputBlock(
                block_id=ResolveForm.SUMMARY.block,
                label="How was it resolved?",
                element=PlainTextInputElement(
                    action_id=ResolveForm.SUMMARY.action, multiline=True, max_length=SUMMARY_MAX
                ),
            ),
        ],
    )
