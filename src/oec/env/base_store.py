"""A task's base commit with nothing around it: the only git objects a workspace may borrow.

A workspace that borrows the source repository's whole object store holds
the fix: SWE-smith-style and bundled bugs are commits on top of the fixed
tree (`git diff HEAD~1` prints the gold patch), and a SWE-bench clone holds
the future commit that fixed the issue. So a workspace borrows from a store of
its own base commit: that commit object and its tree, nothing else, packed once
per commit into the cache and shared by every rollout of that commit. The
workspace marks the commit as shallow, so git treats it as a root: the parent
it names is not there to be read, and no ref, tag, reflog or stash leads
anywhere else.

Stores are content-addressed (a commit hash names its whole tree), so one
folder per commit serves every repository that has that commit.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path

from oec.cache import build_once, cache_root
from oec.env.git import GitError, git_bytes

_FULL_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
_build_lock = threading.Lock()


def stores_dir(cache_dir: Path | None = None) -> Path:
    return cache_root(cache_dir) / "base-stores"


def base_store(repo: Path, commit: str, *, cache_dir: Path | None = None) -> Path:
    """The store for `commit` (a full hash in `repo`): a folder whose `objects/` holds only that commit and its tree."""
    if not _FULL_SHA.fullmatch(commit):
        raise ValueError(f"base_store needs a full commit hash, not {commit!r}")

    def build(folder: Path) -> None:
        pack_dir = folder / "objects" / "pack"
        pack_dir.mkdir(parents=True)
        (folder / "objects" / "info").mkdir()
        listing = git_bytes(["rev-list", "--objects", "--no-walk", commit], cwd=repo)
        if not listing.strip():
            raise GitError(f"{commit} lists no objects in {repo}")
        git_bytes(["pack-objects", "--quiet", str(pack_dir / "pack")], cwd=repo, input=listing)
        for path in folder.rglob("*"):
            path.chmod(0o755 if path.is_dir() else 0o444)

    final = stores_dir(cache_dir) / commit
    if final.is_dir():
        return final
    with _build_lock:  # threads of one process build a store once; processes race harmlessly (build_once)
        return build_once(final, build)
