"""Apply patches with SWE-bench's fallbacks, each from a clean tree, where the tests will run.

The appliers run INSIDE the session (the local sandbox, or the task's
container), never on the host: `patch` follows what a diff says, and the
tree it writes into is the one the tests then run in. Both backends offer the
same calls (`TrustedShell`), so both accept and reject the same patches. A
patch given here is the grader's canonical one
(`oec.grading.patch_policy.screen`), never a model's raw text.

Grading applies the candidate, commits it, and applies test_patch in one
script: one sandboxed process instead of one per step (each costs a
bubblewrap start). The script reports each step on lines that start with a
random marker, which no applier's output can forge.
"""

from __future__ import annotations

import shlex
import uuid
from dataclasses import dataclass
from typing import Protocol

from oec.env.git_scripts import GIT, GIT_ENV

# (name, command before the patch file); tried in order, the tree is reset between tries
_METHODS: list[tuple[str, str]] = [
    ("git apply", f"{GIT} apply --verbose --whitespace=nowarn"),
    ("git apply --3way", f"{GIT} apply --verbose --3way --whitespace=nowarn"),
    ("patch --fuzz=5", "patch --batch --forward --fuzz=5 -p1 -i"),
]
#: the one method that merges, so the one that can "succeed" with conflict markers left in the files; the
#: others write exactly the patch's lines (which may hold such markers on purpose, as test data, say)
MERGING_METHOD = "git apply --3way"
CANDIDATE_MESSAGE = "oec: candidate patch"


class TrustedShell(Protocol):
    """What applying needs of a session: oec's own commands where the tests run, and a file to give them."""

    def exec_trusted(self, script: str) -> tuple[int, str, str]: ...

    def stage_file(self, name: str, data: bytes) -> str: ...


@dataclass(frozen=True)
class ApplyResult:
    ok: bool
    method: str | None  # which method applied it; "empty" for an empty patch
    log: str            # what each failed attempt said, for the report


def _try_function(marker: str) -> str:
    """Shell function `oec_try LABEL FILE`: each method until one applies, resetting the tree after each failure.

    It reports on lines `<marker> applied|attempt|failed LABEL [METHOD]`, a failed attempt's output after its line.
    """
    body = []
    for name, command in _METHODS:
        clean = (f" && ! {GIT} diff --check 2>/dev/null | grep -q 'conflict marker'"
                 if name == MERGING_METHOD else "")
        body += [f'  if oec_out=$({command} "$2" 2>&1){clean}; then echo "{marker} applied $1 {name}"; return 0; fi',
                 f'  echo "{marker} attempt $1 {name}"; printf "%s\\n" "$oec_out"',
                 f"  {GIT} reset --quiet --hard HEAD; {GIT} clean -fdq"]
    return "\n".join(["oec_try() {", *body, f'  echo "{marker} failed $1"; return 1', "}"])


def _result(output: str, marker: str, label: str) -> ApplyResult | None:
    """What the script said about `label`'s patch (None: it never got there)."""
    blocks: list[list[str]] = []
    current: list[str] | None = None
    for line in output.splitlines():
        if not line.startswith(marker + " "):
            if current is not None:
                current.append(line)
            continue
        word, _, rest = line[len(marker) + 1:].partition(" ")
        step, _, method = rest.partition(" ")
        current = None
        if step != label:
            continue
        if word in ("applied", "failed"):
            log = "\n".join("\n".join(block).rstrip() for block in blocks)
            return ApplyResult(word == "applied", method or None, log)
        current = [f"$ {method}"]
        blocks.append(current)
    return None


def _stage(session: TrustedShell, patch: str) -> str:
    text = patch if patch.endswith("\n") else patch + "\n"
    return session.stage_file(f"oec-patch-{uuid.uuid4().hex}.diff", text.encode("utf-8"))


def _run(session: TrustedShell, steps: list[tuple[str, str]], *, commit_between: bool) -> dict[str, ApplyResult]:
    """Apply each (label, patch) in order in one script, committing between them if asked; stop at a failure."""
    marker = f"@@oec-{uuid.uuid4().hex}"
    parts = [GIT_ENV, _try_function(marker)]
    results: dict[str, ApplyResult] = {}
    for index, (label, patch) in enumerate(steps):
        if patch.strip():
            parts.append(f"oec_try {label} {shlex.quote(_stage(session, patch))} || exit 0")
        if commit_between and index < len(steps) - 1:
            parts.append(f"{GIT} add -A -- . && {GIT} -c user.name=oec -c user.email=oec@localhost "
                         f"-c commit.gpgsign=false commit --quiet --allow-empty --no-verify "
                         f"-m {shlex.quote(CANDIDATE_MESSAGE)} || {{ echo '{marker} uncommitted'; exit 0; }}")
    code, out, err = session.exec_trusted("\n".join(parts))
    if f"{marker} uncommitted" in out:
        raise RuntimeError(f"cannot commit the applied patch in the workspace: {err.strip()[-500:]}")
    for label, patch in steps:
        found = _result(out, marker, label) if patch.strip() else ApplyResult(True, "empty", "")
        if found is None:
            raise RuntimeError(f"applying the {label} patch stopped half-way (exit {code}): {err.strip()[-500:]}")
        results[label] = found
        if not found.ok:
            break
    return results


def apply_patch(session: TrustedShell, patch: str) -> ApplyResult:
    """Apply `patch` in the session; on failure the tree is back at the last commit and the log says why."""
    return _run(session, [("patch", patch)], commit_between=False)["patch"]


def apply_for_grading(session: TrustedShell, candidate: str, test_patch: str) -> tuple[ApplyResult, ApplyResult | None]:
    """The candidate patch, committed (so a failing test_patch resets to it), then test_patch: one script.

    Returns the candidate's result and test_patch's (None when the candidate did not apply).
    """
    results = _run(session, [("candidate", candidate), ("tests", test_patch)], commit_between=True)
    return results["candidate"], results.get("tests")
