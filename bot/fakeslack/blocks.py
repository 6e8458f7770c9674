"""Block Kit checks: the limits real Slack enforces and bots most often trip over.

The methods that take blocks answer with these ``[ERROR] ... [json-pointer:...]`` messages:
chat.postMessage, chat.update, chat.postEphemeral and files.completeUploadExternal (as
``invalid_blocks``, see ``messages.py``), and views.open, views.push, views.update and
views.publish (as ``invalid_arguments``, see ``views.py``). The senders read a view's elements
with ``iter_elements`` and ``options_of``. It fakes no Slack method itself."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .model import JsonDict

MAX_MESSAGE_BLOCKS = 50
MAX_VIEW_BLOCKS = 100

STATEFUL_ELEMENTS = frozenset(
    {
        "plain_text_input",
        "email_text_input",
        "url_text_input",
        "number_input",
        "rich_text_input",
        "static_select",
        "external_select",
        "users_select",
        "conversations_select",
        "channels_select",
        "multi_static_select",
        "multi_external_select",
        "multi_users_select",
        "multi_conversations_select",
        "multi_channels_select",
        "radio_buttons",
        "checkboxes",
        "datepicker",
        "timepicker",
        "datetimepicker",
        "file_input",
    }
)
ELEMENT_TYPES = STATEFUL_ELEMENTS | {"button", "overflow", "image", "workflow_button"}
BLOCK_TYPES = frozenset(
    {
        "section",
        "divider",
        "image",
        "actions",
        "context",
        "input",
        "header",
        "rich_text",
        "markdown",
        "video",
        "file",
        "call",
        "table",
        "context_actions",
    }
)
OPTION_LIMITS: dict[str, tuple[int, int]] = {
    "static_select": (1, 100),
    "multi_static_select": (1, 100),
    "overflow": (1, 5),
    "radio_buttons": (1, 10),
    "checkboxes": (1, 10),
}


def check_text_object(
    obj: Any, ptr: str, errors: list[str], *, plain: bool = False, max_len: int | None = None
) -> None:
    allowed = {"plain_text"} if plain else {"plain_text", "mrkdwn"}
    if not isinstance(obj, dict) or obj.get("type") not in allowed:
        kinds = " or ".join(sorted(allowed))
        errors.append(f"[ERROR] must be a {kinds} text object [json-pointer:{ptr}]")
        return
    text = obj.get("text")
    if not isinstance(text, str) or not text:
        errors.append(f"[ERROR] must be more than 0 characters [json-pointer:{ptr}/text]")
    elif max_len is not None and len(text) > max_len:
        errors.append(
            f"[ERROR] must be less than {max_len + 1} characters [json-pointer:{ptr}/text]"
        )


def check_max_len(value: Any, limit: int, ptr: str, errors: list[str]) -> None:
    if value is not None and (not isinstance(value, str) or len(value) > limit):
        errors.append(
            f"[ERROR] must be a string of at most {limit} characters [json-pointer:{ptr}]"
        )


def options_of(element: JsonDict) -> list[JsonDict]:
    options = list(element.get("options") or [])
    for group in element.get("option_groups") or []:
        options.extend(group.get("options") or [])
    return options


def _check_options(element: JsonDict, ptr: str, errors: list[str]) -> None:
    etype = element["type"]
    plain = etype not in {"radio_buttons", "checkboxes"}
    if "options" not in element and "option_groups" not in element:
        errors.append(f"[ERROR] must provide either options or option_groups [json-pointer:{ptr}]")
        return
    options = options_of(element)
    low, high = OPTION_LIMITS[etype]
    if not low <= len(options) <= high:
        errors.append(
            f"[ERROR] must have between {low} and {high} options [json-pointer:{ptr}/options]"
        )
    values = set()
    for index, option in enumerate(options):
        optr = f"{ptr}/options/{index}"
        if not isinstance(option, dict):
            errors.append(f"[ERROR] must be an option object [json-pointer:{optr}]")
            continue
        check_text_object(option.get("text"), f"{optr}/text", errors, plain=plain, max_len=75)
        value = option.get("value")
        if etype != "overflow" or value is not None:
            check_max_len(value if value is not None else 0, 150, f"{optr}/value", errors)
        values.add(value)
    initial = [element["initial_option"]] if element.get("initial_option") else []
    initial += element.get("initial_options") or []
    for option in initial:
        if not isinstance(option, dict) or option.get("value") not in values:
            errors.append(
                f"[ERROR] must match one of the options [json-pointer:{ptr}/initial_option]"
            )


def _check_element(element: Any, ptr: str, errors: list[str]) -> None:
    if not isinstance(element, dict) or element.get("type") not in ELEMENT_TYPES:
        errors.append(f"[ERROR] unsupported element type [json-pointer:{ptr}/type]")
        return
    etype = element["type"]
    check_max_len(element.get("action_id"), 255, f"{ptr}/action_id", errors)
    if etype == "button":
        check_text_object(element.get("text"), f"{ptr}/text", errors, plain=True, max_len=75)
        check_max_len(element.get("value"), 2000, f"{ptr}/value", errors)
        check_max_len(element.get("url"), 3000, f"{ptr}/url", errors)
        if element.get("style") not in (None, "primary", "danger"):
            errors.append(f"[ERROR] must be primary or danger [json-pointer:{ptr}/style]")
    elif etype in OPTION_LIMITS:
        _check_options(element, ptr, errors)
    elif etype == "image":
        check_max_len(element.get("alt_text") or 0, 2000, f"{ptr}/alt_text", errors)
    if "placeholder" in element:
        check_text_object(
            element["placeholder"], f"{ptr}/placeholder", errors, plain=True, max_len=150
        )
    if etype == "plain_text_input":
        max_length = element.get("max_length")
        if max_length is not None and not (isinstance(max_length, int) and max_length <= 3000):
            errors.append(f"[ERROR] must be at most 3000 [json-pointer:{ptr}/max_length]")


def check_blocks(blocks: Any, *, max_blocks: int, pointer: str = "/blocks") -> list[str]:
    """Slack-style ``[ERROR] ... [json-pointer:...]`` messages for a blocks array."""
    if not isinstance(blocks, list):
        return [f"[ERROR] must be an array [json-pointer:{pointer}]"]
    errors: list[str] = []
    if len(blocks) > max_blocks:
        errors.append(f"[ERROR] no more than {max_blocks} items allowed [json-pointer:{pointer}]")
    block_ids: set[str] = set()
    for index, block in enumerate(blocks):
        ptr = f"{pointer}/{index}"
        if not isinstance(block, dict) or block.get("type") not in BLOCK_TYPES:
            errors.append(f"[ERROR] unsupported block type [json-pointer:{ptr}/type]")
            continue
        block_id = block.get("block_id")
        if block_id is not None:
            check_max_len(block_id, 255, f"{ptr}/block_id", errors)
            if block_id in block_ids:
                errors.append(f"[ERROR] duplicate block_id [json-pointer:{ptr}/block_id]")
            block_ids.add(block_id)
        btype = block["type"]
        if btype == "section":
            if "text" in block or "fields" not in block:
                check_text_object(block.get("text"), f"{ptr}/text", errors, max_len=3000)
            fields = block.get("fields")
            if fields is not None:
                if not isinstance(fields, list) or len(fields) > 10:
                    errors.append(
                        f"[ERROR] no more than 10 items allowed [json-pointer:{ptr}/fields]"
                    )
                else:
                    for fi, item in enumerate(fields):
                        check_text_object(item, f"{ptr}/fields/{fi}", errors, max_len=2000)
            if "accessory" in block:
                _check_element(block["accessory"], f"{ptr}/accessory", errors)
        elif btype == "header":
            check_text_object(block.get("text"), f"{ptr}/text", errors, plain=True, max_len=150)
        elif btype == "image":
            if not block.get("image_url") and not block.get("slack_file"):
                errors.append(f"[ERROR] missing required field: image_url [json-pointer:{ptr}]")
            alt = block.get("alt_text")
            if not isinstance(alt, str) or not alt or len(alt) > 2000:
                errors.append(f"[ERROR] must be 1-2000 characters [json-pointer:{ptr}/alt_text]")
        elif btype == "context":
            elements = block.get("elements")
            if not isinstance(elements, list) or not 1 <= len(elements) <= 10:
                errors.append(f"[ERROR] must have 1-10 elements [json-pointer:{ptr}/elements]")
            else:
                for ei, element in enumerate(elements):
                    eptr = f"{ptr}/elements/{ei}"
                    if isinstance(element, dict) and element.get("type") == "image":
                        _check_element(element, eptr, errors)
                    else:
                        check_text_object(element, eptr, errors)
        elif btype == "actions":
            elements = block.get("elements")
            if not isinstance(elements, list) or not 1 <= len(elements) <= 25:
                errors.append(f"[ERROR] must have 1-25 elements [json-pointer:{ptr}/elements]")
            else:
                action_ids: set[str] = set()
                for ei, element in enumerate(elements):
                    _check_element(element, f"{ptr}/elements/{ei}", errors)
                    action_id = element.get("action_id") if isinstance(element, dict) else None
                    if action_id is not None and action_id in action_ids:
                        errors.append(
                            f"[ERROR] duplicate action_id [json-pointer:{ptr}/elements/{ei}]"
                        )
                    if action_id is not None:
                        action_ids.add(action_id)
        elif btype == "input":
            check_text_object(block.get("label"), f"{ptr}/label", errors, plain=True, max_len=2000)
            if "element" not in block:
                errors.append(f"[ERROR] missing required field: element [json-pointer:{ptr}]")
            else:
                _check_element(block["element"], f"{ptr}/element", errors)
            if "hint" in block:
                check_text_object(block["hint"], f"{ptr}/hint", errors, plain=True, max_len=2000)
    return errors


def iter_elements(blocks: Iterable[JsonDict]) -> Iterable[tuple[JsonDict, JsonDict]]:
    """(block, element) for every interactive element, in the order a user sees them."""
    for block in blocks:
        if not isinstance(block, dict):
            continue
        btype = block.get("type")
        if btype == "section" and isinstance(block.get("accessory"), dict):
            yield block, block["accessory"]
        elif btype == "actions":
            for element in block.get("elements") or []:
                if isinstance(element, dict):
                    yield block, element
        elif btype == "input" and isinstance(block.get("element"), dict):
            yield block, block["element"]
