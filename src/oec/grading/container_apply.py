"""Apply a patch inside a docker session with the same fallbacks as `oec.grading.apply`.

Grading in a container must apply the patch where the tests run: the host has
no copy of the image's repository. The methods (and their order) are the local
grader's own list, so both backends accept and reject the same patches.
"""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING

from oec.grading.apply import _METHODS, MERGING_METHOD, ApplyResult

if TYPE_CHECKING:
    from oec.env.docker_backend import DockerSession

#: outside the repository, so the patch file never shows up in `git add -A`
PATCH_PATH = "/tmp/oec-grading.diff"
_CONFLICT_CHECK = "git -c safe.directory='*' diff --check"


def apply_patch_in_container(session: DockerSession, patch: str) -> ApplyResult:
    """Apply `patch` in the container's repository; on failure the tree is back at the last checkpoint."""
    if not patch.strip():
        return ApplyResult(True, "empty", "")
    if not patch.endswith("\n"):
        patch += "\n"
    session.write_file(PATCH_PATH, patch.encode("utf-8"))
    attempts: list[str] = []
    for name, argv in _METHODS:
        code, out, err = session.exec_trusted(shlex.join([*argv, PATCH_PATH]))
        if code == 0 and not (name == MERGING_METHOD and "conflict marker" in session.exec_trusted(_CONFLICT_CHECK)[1]):
            return ApplyResult(True, name, "\n".join(attempts))
        attempts.append(f"$ {name}\n{(out + err).strip()}")
        session.reset()
    return ApplyResult(False, None, "\n".join(attempts))
