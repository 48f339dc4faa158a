"""Apply a patch with SWE-bench's fallbacks, each from a clean tree, where the tests will run.

The appliers run INSIDE the session (the local sandbox, or the task's
container), never on the host: `patch` follows what a diff says, and the
tree it writes into is the one the tests then run in. Both backends offer the
same three calls (`TrustedShell`), so both accept and reject the same
patches. The patch given here is the grader's canonical one
(`oec.grading.patch_policy.screen`), never a model's raw text.
"""

from __future__ import annotations

import shlex
import uuid
from dataclasses import dataclass
from typing import Protocol

from oec.env.git_scripts import GIT, GIT_ENV

# (name, argv before the patch file); tried in order, the tree is reset between tries
_METHODS: list[tuple[str, str]] = [
    ("git apply", f"{GIT} apply --verbose --whitespace=nowarn"),
    ("git apply --3way", f"{GIT} apply --verbose --3way --whitespace=nowarn"),
    ("patch --fuzz=5", "patch --batch --forward --fuzz=5 -p1 -i"),
]
#: the one method that merges, so the one that can "succeed" with conflict markers left in the files; the
#: others write exactly the patch's lines (which may hold such markers on purpose, as test data, say)
MERGING_METHOD = "git apply --3way"
_CONFLICT_CHECK = f"{GIT_ENV}\n{GIT} diff --check"


class TrustedShell(Protocol):
    """What applying needs of a session: oec's own commands where the tests run, a file to read, a reset."""

    def exec_trusted(self, script: str) -> tuple[int, str, str]: ...

    def stage_file(self, name: str, data: bytes) -> str: ...

    def reset(self) -> None: ...


@dataclass(frozen=True)
class ApplyResult:
    ok: bool
    method: str | None  # which method applied it; "empty" for an empty patch
    log: str            # what each failed attempt said, for the report


def apply_patch(session: TrustedShell, patch: str) -> ApplyResult:
    """Apply `patch` in the session; on failure the tree is back at the last checkpoint and the log says why."""
    if not patch.strip():
        return ApplyResult(True, "empty", "")
    if not patch.endswith("\n"):
        patch += "\n"
    path = session.stage_file(f"oec-patch-{uuid.uuid4().hex}.diff", patch.encode("utf-8"))
    attempts: list[str] = []
    for name, command in _METHODS:
        code, out, err = session.exec_trusted(f"{GIT_ENV}\n{command} {shlex.quote(path)}")
        if code == 0 and not (name == MERGING_METHOD and "conflict marker" in session.exec_trusted(_CONFLICT_CHECK)[1]):
            return ApplyResult(True, name, "\n".join(attempts))
        attempts.append(f"$ {name}\n{(out + err).strip()}")
        session.reset()
    return ApplyResult(False, None, "\n".join(attempts))
