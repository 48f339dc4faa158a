"""The run directory: trajectories.jsonl (append-only, one finished rollout per line) and config.json.

trajectories.jsonl is the only record of what is done (no separate index that
could disagree with it), and only one process writes it: the driver holds an
exclusive lock (``.lock``, released by the kernel however the process dies),
so two runs started on one folder cannot both do, and both write, the same
rollouts.

Each line is written whole and fsync'd before the next, so a run killed at any
moment loses at most the rollouts in flight. On open, the file is checked:
a torn last line (no newline: killed mid-write) is set aside in
trajectories.torn.jsonl and its rollout redone; a last line that is a whole
record missing only its newline is kept; an unreadable line or a second line
for an id already present (neither can come from this writer, but a copy,
a merge or a filesystem that lost ordered writes can produce them) is set
aside too, so every (instance, strategy, sample) is in the file at most once.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from oec.collect.records import Trajectory

TRAJECTORIES = "trajectories.jsonl"
TORN = "trajectories.torn.jsonl"
CONFIG = "config.json"
LOCK = ".lock"


class RunDirError(ValueError):
    pass


def _fsync_dir(path: Path) -> None:
    """Make a created or renamed entry in `path` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _record_id(line: bytes) -> str | None:
    """The trajectory id of a line, or None if the line is not a whole trajectory record."""
    try:
        return Trajectory.model_validate_json(line).id
    except ValueError:
        return None


class RunDir:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.trajectories = path / TRAJECTORIES
        self.torn = path / TORN
        self._write_lock = threading.Lock()
        self._lock_file: IO[str] | None = None
        self._done: set[str] | None = None  # ids on disk, known once open() has checked the file

    def prepare(self, config: dict[str, Any], identity_keys: tuple[str, ...]) -> None:
        """Create the folder and config.json; refuse to mix a different run's rollouts into it."""
        self.path.mkdir(parents=True, exist_ok=True)
        self._acquire()
        config_file = self.path / CONFIG
        if config_file.exists():
            old = json.loads(config_file.read_text())
            # a key the old config lacks was added to oec after that run began: it cannot have differed
            changed = {k: (old.get(k), config.get(k)) for k in identity_keys
                       if k in old and old.get(k) != config.get(k)}
            if changed:
                details = ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in changed.items())
                raise RunDirError(f"{config_file}: this run directory holds a different run ({details}); "
                                  "use another --out or the same settings")
        tmp = config_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(config, indent=2, sort_keys=True))
        os.replace(tmp, config_file)
        self.open()

    def open(self) -> None:
        """Lock the folder for writing and check trajectories.jsonl (see the module docstring); idempotent."""
        self.path.mkdir(parents=True, exist_ok=True)
        self._acquire()
        if self._done is None:
            self._done = self._repair()

    def close(self) -> None:
        """Release the write lock (also released when the process ends, however it ends)."""
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None
        self._done = None

    def __enter__(self) -> RunDir:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _acquire(self) -> None:
        if self._lock_file is not None:
            return
        fh = open(self.path / LOCK, "a+")
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "unknown"
            fh.close()
            raise RunDirError(f"{self.path} is being written by another oec process (pid {holder}); "
                              "wait for it to end or use another --out") from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"{os.getpid()}\n")
        fh.flush()
        self._lock_file = fh

    def _repair(self) -> set[str]:
        """Set aside torn, unreadable and duplicate lines; return the ids that remain."""
        if not self.trajectories.exists():
            self.trajectories.touch()
            _fsync_dir(self.path)
            return set()
        data = self.trajectories.read_bytes()
        *lines, tail = data.split(b"\n")  # `tail` follows the last newline: b"" when the file is whole
        kept: list[bytes] = []
        aside: list[bytes] = []
        seen: set[str] = set()
        for line in lines:
            rid = _record_id(line) if line.strip() else ""
            if rid == "":
                continue  # a blank line: harmless
            if rid is None or rid in seen:
                aside.append(line)
            else:
                seen.add(rid)
                kept.append(line)
        middle_ok = not aside
        tail_id = _record_id(tail) if tail.strip() else None
        tail_whole = tail_id is not None and tail_id not in seen
        if tail_whole:
            seen.add(tail_id)  # type: ignore[arg-type]
            kept.append(tail)  # a whole record that only lacks its newline
        elif tail.strip():
            aside.append(tail)
        if aside:  # first, so that a crash from here on loses nothing
            with open(self.torn, "ab") as fh:
                fh.write(b"".join(line + b"\n" for line in aside))
                fh.flush()
                os.fsync(fh.fileno())
        if middle_ok:  # the common cases touch the tail only
            if tail.strip():
                with open(self.trajectories, "r+b") as fh:
                    if tail_whole:
                        fh.seek(0, os.SEEK_END)
                        fh.write(b"\n")
                    else:
                        fh.truncate(len(data) - len(tail))
                    fh.flush()
                    os.fsync(fh.fileno())
            return seen
        tmp = self.trajectories.with_suffix(".jsonl.tmp")
        with open(tmp, "wb") as fh:
            fh.write(b"".join(line + b"\n" for line in kept))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.trajectories)
        _fsync_dir(self.path)
        return seen

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
        if self._done is not None:
            return set(self._done)
        return {t.id for t in self.read()}

    def append(self, trajectory: Trajectory) -> None:
        """Write one finished rollout as one whole line, durable before this returns."""
        line = trajectory.model_dump_json() + "\n"
        with self._write_lock, open(self.trajectories, "a", encoding="utf-8") as fh:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())
        if self._done is not None:
            self._done.add(trajectory.id)
