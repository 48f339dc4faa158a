"""The resumable record of a synth run: one JSON line per candidate outcome, appended as each finishes.

A killed `oec synth` leaves every finished outcome here (a torn last line is
ignored); the rerun skips those candidates and validates the rest. Valid
outcomes carry the bug's file content (zlib + base64), so the bug commits and
rows can be rebuilt from this file alone.
"""

from __future__ import annotations

import base64
import json
import zlib
from dataclasses import asdict
from pathlib import Path

from oec.appendlog import AppendLog
from oec.synth.validate import Outcome

__all__ = ["StateFile", "pack_content", "unpack_content"]


def pack_content(text: str) -> str:
    return base64.b64encode(zlib.compress(text.encode("utf-8"), 9)).decode("ascii")


def unpack_content(data: str) -> str:
    return zlib.decompress(base64.b64decode(data)).decode("utf-8")


class StateFile:
    """Append-only JSONL of {"repo", "commit", "test_cmd", "outcome", "content"?} records."""

    def __init__(self, path: Path) -> None:
        self.log = AppendLog(path)
        self.path = self.log.path

    def load(self) -> list[dict]:
        """Every outcome recorded so far (a torn last line of a killed run is skipped)."""
        return self.log.read(_outcome_record)

    def done(self, repo: str, commit: str, test_cmd: str) -> dict[str, dict]:
        """Outcomes already recorded for this repository, clean commit and test command, by candidate id."""
        return {r["outcome"]["id"]: r for r in self.load()
                if r.get("repo") == repo and r.get("commit") == commit and r.get("test_cmd") == test_cmd}

    def append(self, repo: str, commit: str, test_cmd: str, outcome: Outcome, content: str | None) -> None:
        record = {"repo": repo, "commit": commit, "test_cmd": test_cmd, "outcome": asdict(outcome)}
        if content is not None:
            record["content"] = pack_content(content)
        self.log.append(json.dumps(record, sort_keys=True))


def _outcome_record(line: str) -> dict | None:
    record = json.loads(line)
    return record if isinstance(record, dict) and isinstance(record.get("outcome"), dict) else None
