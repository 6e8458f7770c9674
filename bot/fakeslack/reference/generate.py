"""Regenerate the Slack reference data the fake Slack and the tests read.

    python bot/fakeslack/reference/generate.py SOURCE_DIR

SOURCE_DIR is a checkout of the Slack reference data: ``methods/*.json`` (one file per Web API
method, in the shape of slack-ruby/slack-api-ref), ``manifest.schema.1.0.0.json`` (from
slackapi/manifest-schema) and the two licence files. From each method this keeps only what is
used here: its required arguments, its error codes, its bot and user scopes and whether it
accepts a JSON body. The output is deterministic: the same source gives the same bytes.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
METHODS = "methods.json"
# Methods the reference's scrape lacks, written by hand from Slack's documentation in the same
# shape as methods.json; a method the source has is always taken from the source.
SUPPLEMENT = "supplement.json"
# Copied unchanged.
COPIED = ("manifest.schema.1.0.0.json", "LICENSE-slack-api-ref.md", "LICENSE-manifest-schema")


def method_facts(spec: dict[str, Any]) -> dict[str, Any]:
    """What the fake and the tests use of one method's reference."""
    scope = spec.get("scope") or {}
    return {
        # In the reference's order: the fake reports the first missing one.
        "required": list((spec.get("args") or {}).get("required") or []),
        "errors": sorted(spec.get("errors") or {}),
        "scopes": {kind: list(scope.get(kind) or []) for kind in ("bot", "user")},
        "json_input_supported": spec.get("json_input_supported") is True,
    }


def dump(facts: dict[str, Any]) -> str:
    """The text of methods.json: sorted keys, one value a line, a final newline."""
    return json.dumps(facts, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def methods_json(source: Path, supplement: Path) -> str:
    files = sorted((source / "methods").glob("*.json"))
    if not files:
        raise SystemExit(f"no methods/*.json in {source}")
    facts = {path.stem: method_facts(json.loads(path.read_text("utf-8"))) for path in files}
    if supplement.exists():
        for method, extra in json.loads(supplement.read_text("utf-8")).items():
            facts.setdefault(method, extra)
    return dump(facts)


def generate(source: Path, target: Path = HERE) -> None:
    (target / METHODS).write_text(methods_json(source, target / SUPPLEMENT), encoding="utf-8")
    for name in COPIED:
        shutil.copyfile(source / name, target / name)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    generate(Path(argv[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
