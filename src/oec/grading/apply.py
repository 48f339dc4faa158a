"""Apply a patch to a workspace with SWE-bench's fallbacks, each from a clean tree."""

from __future__ import annotations

import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from oec.env.workspace import Workspace

# (name, argv before the patch file); tried in order, the tree is reset between tries
_METHODS: list[tuple[str, list[str]]] = [
    ("git apply", ["git", "apply", "--verbose", "--whitespace=nowarn"]),
    ("git apply --3way", ["git", "apply", "--verbose", "--3way", "--whitespace=nowarn"]),
    ("patch --fuzz=5", ["patch", "--batch", "--forward", "--fuzz=5", "-p1", "-i"]),
]
#: the one method that merges, so the one that can "succeed" with conflict markers left in the files; the
#: others write exactly the patch's lines (which may hold such markers on purpose, as test data, say)
MERGING_METHOD = "git apply --3way"


@dataclass(frozen=True)
class ApplyResult:
    ok: bool
    method: str | None  # which method applied it; "empty" for an empty patch
    log: str            # what each failed attempt said, for the report


def _has_conflict_markers(path: Path) -> bool:
    out = subprocess.run(["git", "-c", "safe.directory=*", "diff", "--check"], cwd=path, capture_output=True, text=True)
    return "conflict marker" in out.stdout


def apply_patch(workspace: Workspace, patch: str) -> ApplyResult:
    """Apply `patch` to the workspace; on failure the tree is back at base_commit and the log says why."""
    if not patch.strip():
        return ApplyResult(True, "empty", "")
    if not patch.endswith("\n"):
        patch += "\n"
    attempts: list[str] = []
    with tempfile.NamedTemporaryFile("w", suffix=".diff", delete=False, encoding="utf-8") as fh:
        fh.write(patch)
        patch_file = fh.name
    try:
        for name, argv in _METHODS:
            proc = subprocess.run(
                [*argv, patch_file], cwd=workspace.path, capture_output=True, text=True, errors="replace"
            )
            if proc.returncode == 0 and not (name == MERGING_METHOD and _has_conflict_markers(workspace.path)):
                return ApplyResult(True, name, "\n".join(attempts))
            attempts.append(f"$ {name}\n{(proc.stdout + proc.stderr).strip()}")
            workspace.reset()
    finally:
        Path(patch_file).unlink(missing_ok=True)
    return ApplyResult(False, None, "\n".join(attempts))


def files_touched(patch: str) -> list[str]:
    """Paths a unified diff touches (new side; deletions keep the old path), in order, no duplicates."""
    paths: list[str] = []
    old: str | None = None
    for line in patch.splitlines():
        if line.startswith("--- "):
            old = line[4:].split("\t")[0].strip()
        elif line.startswith("+++ "):
            new = line[4:].split("\t")[0].strip()
            chosen = old if new == "/dev/null" else new
            if chosen and chosen != "/dev/null":
                chosen = chosen[2:] if chosen[:2] in {"a/", "b/"} else chosen
                if chosen not in paths:
                    paths.append(chosen)
    return paths
