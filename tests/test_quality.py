"""ruff (lint and format) and mypy --strict stay clean on the package."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, check=False
    )


def test_ruff_check_and_format() -> None:
    pytest.importorskip("ruff", reason="install the dev extra: pip install -e '.[dev]'")
    lint = run("ruff", "check", "shapecalc", "tests", "scripts", "benchmarks")
    assert lint.returncode == 0, lint.stdout + lint.stderr
    fmt = run("ruff", "format", "--check", "shapecalc", "tests", "scripts", "benchmarks")
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr


def test_mypy_strict() -> None:
    pytest.importorskip("mypy", reason="install the dev extra: pip install -e '.[dev]'")
    done = run("mypy", "--strict", "shapecalc")
    assert done.returncode == 0, done.stdout + done.stderr
