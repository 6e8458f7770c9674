"""docs/reliability.md names the test behind every failure mode; those tests must exist."""

from __future__ import annotations

import re

from tests.support import ROOT


def test_every_test_named_in_the_reliability_doc_exists() -> None:
    doc = (ROOT / "docs" / "reliability.md").read_text()
    named = set(re.findall(r"`(test_\w+\.py)::(test_\w+)`", doc))
    assert len(named) > 40
    for file, test in sorted(named):
        source = (ROOT / "tests" / file).read_text()
        assert re.search(rf"def {test}\(", source), f"{file}::{test} is gone"
