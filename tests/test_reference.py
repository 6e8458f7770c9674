"""The Slack reference data in bot/fakeslack/reference: well-formed, in step with the fake,
and reproducible by its generator."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import jsonschema  # type: ignore[import-untyped]

from bot.fakeslack import FakeSlack
from bot.fakeslack.reference import generate
from bot.fakeslack.server import REFERENCE_FILE, load_reference

REFERENCE = REFERENCE_FILE.parent
FACTS = {"required", "errors", "scopes", "json_input_supported"}


def strings(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) and v for v in value)


def test_methods_json_is_well_formed() -> None:
    methods = load_reference()
    assert len(methods) >= 40
    for method, ref in methods.items():
        assert set(ref) == FACTS, method
        assert strings(ref["required"]) and ref["required"][:1] == ["token"], method
        assert strings(ref["errors"]) and ref["errors"] == sorted(set(ref["errors"])), method
        assert set(ref["scopes"]) == {"bot", "user"}, method
        assert all(strings(s) for s in ref["scopes"].values()), method
        assert isinstance(ref["json_input_supported"], bool), method
    # Written by the generator: byte for byte what it would write for the same facts.
    assert REFERENCE_FILE.read_text(encoding="utf-8") == generate.dump(methods)


def test_every_method_the_fake_implements_is_in_the_reference() -> None:
    implemented = set(FakeSlack()._handlers)
    assert implemented == set(load_reference())


def test_every_method_has_its_rate_limit_tier() -> None:
    tiers = json.loads((REFERENCE / "rate_limits.json").read_text(encoding="utf-8"))
    assert set(tiers) == set(load_reference())
    assert all(t in (1, 2, 3, 4, "special") for t in tiers.values()), tiers
    assert tiers["chat.postMessage"] == "special"


def test_manifest_schema_is_a_draft7_schema() -> None:
    schema = json.loads((REFERENCE / "manifest.schema.1.0.0.json").read_text(encoding="utf-8"))
    jsonschema.Draft7Validator.check_schema(schema)


def test_generator_keeps_only_the_facts_used(tmp_path: Path) -> None:
    source, target = tmp_path / "source", tmp_path / "target"
    (source / "methods").mkdir(parents=True)
    target.mkdir()
    for name in generate.COPIED:
        shutil.copyfile(REFERENCE / name, source / name)
    spec = {
        "desc": "Pins an item to a channel.",
        "http_method": "POST",
        "scope": {"bot": ["pins:write"], "user": ["pins:write"], "seamless_user": ["x"]},
        "json_input_supported": True,
        "args": {"type": "object", "required": ["token", "channel", "timestamp"]},
        "errors": {"not_pinnable": "This message cannot be pinned.", "bad_timestamp": "..."},
        "examples": {"success": {"example": {"ok": True}}},
    }
    (source / "methods" / "pins.add.json").write_text(json.dumps(spec))
    (source / "methods" / "auth.test.json").write_text(json.dumps({"args": {}}))

    generate.generate(source, target)

    assert json.loads((target / generate.METHODS).read_text()) == {
        "auth.test": {
            "required": [],
            "errors": [],
            "scopes": {"bot": [], "user": []},
            "json_input_supported": False,
        },
        "pins.add": {
            "required": ["token", "channel", "timestamp"],
            "errors": ["bad_timestamp", "not_pinnable"],
            "scopes": {"bot": ["pins:write"], "user": ["pins:write"]},
            "json_input_supported": True,
        },
    }
    for name in generate.COPIED:
        assert (target / name).read_bytes() == (REFERENCE / name).read_bytes()
