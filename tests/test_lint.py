"""Code quality is part of the suite: ruff lints and checks formatting, mypy checks types
(config in pyproject)."""

from __future__ import annotations

import subprocess
import sys

from tests.support import ROOT


def ruff(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ruff", *args, "."],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )


def test_ruff_lint() -> None:
    result = ruff("check")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format() -> None:
    result = ruff("format", "--check")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy() -> None:
    """The bot's code type-checks (strict; config in pyproject)."""
    result = subprocess.run(
        [sys.executable, "-m", "mypy"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
