"""The benchmark suite runs end to end at tiny sizes and reports a row for every figure.

Only that it finishes and what it reports are checked; how fast anything is depends on the
machine, so no figure is compared with a number here.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bench.figures import _final_answer, peak_in_window
from bot.base.errors import DatabaseUnavailable
from bot.inbound.listeners.common import sorry
from bot.model.tables import Incident
from bot.views.answers import declared_answer, declared_while_paced
from tests.support import POSTGRES_URL, ROOT

# (figure, words its measure contains); the last two figures give one row per database.
EXPECTED = [
    ("1. Ack overhead", "`/incident help` ack"),
    ("1. Ack overhead", "`/incident declare <title>` ack"),
    ("1. Ack overhead", "false answers"),
    ("1. Ack overhead", "event-loop stall"),
    ("2. Declare critical path", "card pinned"),
    ("2. Declare critical path", "Web API calls per declaration"),
    ("3. Postmortem compile", "fetch_history + render"),
    ("3. Postmortem compile", "Web API calls"),
    ("3. Postmortem compile", "peak RSS"),
    ("4. Reminders at scale", "reminder lateness", "(SQLite)"),
    ("4. Reminders at scale", "peak RSS", "(SQLite;"),
    ("4. Reminders at scale", "event-loop stall", "(SQLite)"),
    ("4. Reminders at scale", "reminder lateness", "(PostgreSQL)"),
    ("4. Reminders at scale", "peak RSS", "(PostgreSQL;"),
    ("4. Reminders at scale", "event-loop stall", "(PostgreSQL)"),
    ("5. Throughput", "declarations per second", "(SQLite)"),
    ("5. Throughput", "declarations per second", "(PostgreSQL)"),
    ("6. Under Slack's rate limits", "refused with 429"),
    ("6. Under Slack's rate limits", "calls per minute per method"),
    ("6. Under Slack's rate limits", "card updates and topic changes"),
    ("7. Stored under Slack's pacing", "declarations"),
    ("7. Stored under Slack's pacing", "status updates"),
]


def table_rows(text: str) -> list[list[str]]:
    rows = []
    for line in text.splitlines():
        if line.startswith("| ") and not line.startswith(("| Figure", "| ---")):
            rows.append([cell.strip() for cell in line.strip().strip("|").split(" | ")])
    return rows


# Figures 6 and 7 wait for Slack's minute-long windows by design.
@pytest.mark.timeout(600)
def test_quick_run_reports_every_figure(tmp_path: Path) -> None:
    results = tmp_path / "RESULTS.md"
    command = [sys.executable, "-m", "bench.run", "--quick", "--out", str(results)]
    command += ["--postgres", POSTGRES_URL] if POSTGRES_URL else ["--no-postgres"]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    rows = table_rows(done.stdout)
    for figure, *words in EXPECTED:
        found = [r for r in rows if r[0] == figure and all(w in r[1] for w in words)]
        assert len(found) == 1, (figure, words, rows)
        result = found[0][2]
        if "(PostgreSQL" in found[0][1] and not POSTGRES_URL:
            assert result == "skipped", found
        else:
            assert result and result != "skipped" and not result.startswith("failed"), found
    assert len(rows) == len(EXPECTED), rows

    # The machine is described, and the same table is written to the results file.
    for label in ("CPU:", "Cores:", "Memory:", "Python:", "OS:", "slack-bolt", "slack-sdk"):
        assert label in done.stdout, label
    written = results.read_text(encoding="utf-8")
    assert "| Figure | Measure | Result | Notes |" in written
    assert table_rows(written) == rows
    assert "(tiny sizes" in written
    # Targets are listed with whether they were met; the figures measure the bot's process.
    assert "## Targets:" in written
    assert "process of its own" in written


def test_declarers_answers_are_read_as_the_bot_words_them() -> None:
    """The burst's false-answer count reads the bot's own private answers: each kind must
    be recognised, or a false failure would go uncounted."""
    incident = Incident(
        id=1,
        team_id="T0TEST",
        number=7,
        title="Checkout down",
        severity="SEV2",
        declared_by="U0ALICE",
        declared_at=datetime.now(UTC),
        declare_key="k",
    )
    assert _final_answer({"text": declared_answer(incident)}) == "declared"
    # Told its number while Slack holds the channel back: declared, truly.
    assert _final_answer({"text": declared_while_paced(incident)}) == "declared"
    incident.channel_id = "C0INC"
    assert _final_answer({"text": declared_answer(incident)}) == "declared"
    down = DatabaseUnavailable("timed out")
    assert _final_answer({"text": sorry("declare the incident", down)}) == "failed"
    assert _final_answer({"text": sorry("declare the incident", down, stored=True)}) == "stored"
    assert _final_answer({"text": sorry("declare the incident", RuntimeError())}) == "failed"
    assert _final_answer({"text": ":hourglass_flowing_sand: Declaring _x_…"}) is None


def test_peak_in_window_counts_calls_within_any_window() -> None:
    assert peak_in_window([], 60) == 0
    assert peak_in_window([0, 10, 59.9, 60, 119], 60) == 3
    assert peak_in_window([0, 1, 2, 3], 3) == 3
