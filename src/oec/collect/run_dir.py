"""The run directory: trajectories.jsonl (append-only, one finished rollout per line) and config.json.

Each line is written whole and fsync'd before the next, so a run killed at any
moment loses at most the rollouts in flight; a torn last line is set aside in
trajectories.torn.jsonl and its rollout is redone.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any, Iterator

from oec.collect.records import Trajectory

TRAJECTORIES = "trajectories.jsonl"
TORN = "trajectories.torn.jsonl"
CONFIG = "config.json"


class RunDirError(ValueError):
    pass


class RunDir:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.trajectories = path / TRAJECTORIES
        self._lock = threading.Lock()

    def prepare(self, config: dict[str, Any], identity_keys: tuple[str, ...]) -> None:
        """Create the folder and config.json; refuse to mix a different run's rollouts into it."""
        self.path.mkdir(parents=True, exist_ok=True)
        config_file = self.path / CONFIG
        if config_file.exists():
            old = json.loads(config_file.read_text())
            changed = {k: (old.get(k), config.get(k)) for k in identity_keys if old.get(k) != config.get(k)}
            if changed:
                details = ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in changed.items())
                raise RunDirError(f"{config_file}: this run directory holds a different run ({details}); "
                                  "use another --out or the same settings")
        tmp = config_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(config, indent=2, sort_keys=True))
        os.replace(tmp, config_file)
        self.open()

    def open(self) -> None:
        """Make sure the folder exists and a torn tail from a killed run is set aside (idempotent)."""
        self.path.mkdir(parents=True, exist_ok=True)
        self._set_aside_torn_tail()

    def _set_aside_torn_tail(self) -> None:
        """A killed writer can leave a last line without its newline: move it out so it is redone."""
        if not self.trajectories.exists() or self.trajectories.stat().st_size == 0:
            return
        data = self.trajectories.read_bytes()
        if data.endswith(b"\n"):
            return
        cut = data.rfind(b"\n") + 1
        with open(self.path / TORN, "ab") as torn:
            torn.write(data[cut:] + b"\n")
        with open(self.trajectories, "r+b") as fh:
            fh.truncate(cut)

    def read(self) -> Iterator[Trajectory]:
        if not self.trajectories.exists():
            return
        with open(self.trajectories, encoding="utf-8") as fh:
            for number, line in enumerate(fh, start=1):
                if line.strip():
                    try:
                        yield Trajectory.model_validate_json(line)
                    except ValueError as exc:
                        raise RunDirError(f"{self.trajectories}:{number}: not a trajectory record: {exc}") from exc

    def done_ids(self) -> set[str]:
        return {t.id for t in self.read()}

    def append(self, trajectory: Trajectory) -> None:
        line = trajectory.model_dump_json() + "\n"
        with self._lock, open(self.trajectories, "a", encoding="utf-8") as fh:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())
