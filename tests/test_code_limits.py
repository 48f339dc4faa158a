"""The code-size limits in pyproject.toml ([tool.ruff.lint]: complexity, branches, statements, nesting) hold.

Run by `make test` like any test, so a function that grows past them fails CI until it is split or listed,
with its reason, under per-file-ignores.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_no_function_is_past_the_complexity_limits() -> None:
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "--output-format", "concise",
                             "src", "benchmarks", "scripts", "tests"], cwd=ROOT, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, f"split these functions (or list them, with why, in pyproject.toml):\n" \
                                   f"{result.stdout}{result.stderr}"


def test_the_limits_are_the_documented_ones() -> None:
    """Loosening a limit is a visible change to this file, not a quiet edit of pyproject.toml."""
    import tomllib

    lint = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["ruff"]["lint"]
    assert set(lint["select"]) == {"C901", "PLR0912", "PLR0915", "PLR1702"}
    assert lint["mccabe"]["max-complexity"] == 12
    assert (lint["pylint"]["max-branches"], lint["pylint"]["max-statements"], lint["pylint"]["max-nested-blocks"]) \
        == (12, 50, 5)
