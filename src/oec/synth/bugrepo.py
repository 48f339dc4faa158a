"""The repository the synthesized tasks run on: the clean history plus one commit per bug, beside the output.

The user's REPO_DIR is only read (a bare clone of it is made once). Each bug
is a commit whose parent is the clean commit and whose tree differs from it
in one file; it is kept reachable by `refs/synth/<instance_id>` so gc keeps
it. Commits are made with a fixed identity, date and a neutral message
(nothing about the bug), so rebuilding gives the same hashes. The folder is
laid out like oec's `--repos` folders: `<OUT_DIR>/repos/<owner>__<name>`.

The fix is the bug commit's parent, which the source repository holds; an
oec workspace borrows only the bug commit's own objects
(`oec.env.base_store`), so no rollout can read it (`oec tasks validate
--repos` checks this per task).
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

from oec.env.git import HARDENING, GitError
from oec.env.host_env import scrubbed_env

__all__ = ["BugRepo", "repo_name_for"]

_DATE = "2025-01-01T00:00:00+00:00"
_IDENTITY = {
    "GIT_AUTHOR_NAME": "oec synth", "GIT_AUTHOR_EMAIL": "synth@oec.invalid", "GIT_AUTHOR_DATE": _DATE,
    "GIT_COMMITTER_NAME": "oec synth", "GIT_COMMITTER_EMAIL": "synth@oec.invalid", "GIT_COMMITTER_DATE": _DATE,
}


def _git(args: list[str], cwd: Path | None = None, *, input: str | None = None,
         extra_env: dict[str, str] | None = None, allow_file: bool = False) -> str:
    options = list(HARDENING)
    if allow_file:  # a local clone of the user's own repository (HARDENING forbids every transport)
        options += ["-c", "protocol.file.allow=always"]
    proc = subprocess.run(["git", *options, *args], cwd=cwd, input=input, capture_output=True, encoding="utf-8",
                          env=scrubbed_env({**_IDENTITY, **(extra_env or {})}), errors="replace")
    if proc.returncode != 0:
        raise GitError(f"`git {' '.join(args)}` failed in {cwd}: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout


def repo_name_for(repo_dir: Path) -> str:
    """`owner/name` for a repository folder: `owner__name` folders keep theirs, others are `local/<folder>`."""
    name = repo_dir.resolve().name
    if "__" in name:
        owner, _, rest = name.partition("__")
        if owner and rest:
            return f"{owner}/{rest}"
    return f"local/{name}"


class BugRepo:
    """A bare repository at `path` holding `clean` and the bug commits on top of it."""

    def __init__(self, path: Path, clean: str) -> None:
        self.path = path
        self.clean = clean

    @classmethod
    def prepare(cls, source: Path, dest: Path, commit: str = "HEAD") -> "BugRepo":
        """Clone `source` (bare) into `dest` once; `commit` of the source is the clean commit."""
        if not (source / ".git").exists() and not (source / "HEAD").is_file():
            raise GitError(f"{source} is not a git repository (run `git init` and commit the clean tree)")
        clean = _git(["rev-parse", "--verify", f"{commit}^{{commit}}"], cwd=source).strip()
        if not (dest / "HEAD").is_file():
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=dest.name + ".", dir=dest.parent))
            try:
                _git(["clone", "--quiet", "--bare", "--no-hardlinks", str(source.resolve()), str(tmp / "r")],
                     allow_file=True)
                os.replace(tmp / "r", dest)
            finally:
                subprocess.run(["rm", "-rf", str(tmp)], check=False)
        try:
            _git(["cat-file", "-e", f"{clean}^{{commit}}"], cwd=dest)
        except GitError:
            _git(["fetch", "--quiet", "--no-tags", str(source.resolve()), f"+{commit}:refs/synth-clean/{clean}"],
                 cwd=dest, allow_file=True)
        _git(["update-ref", f"refs/synth-clean/{clean}", clean], cwd=dest)
        return cls(dest, clean)

    def files(self) -> dict[str, str]:
        """{path: text} of the clean commit's Python files (regular files only, UTF-8)."""
        listing = _git(["ls-tree", "-r", "-z", self.clean], cwd=self.path)
        wanted = []
        for entry in listing.split("\0"):
            if not entry:
                continue
            meta, _, path = entry.partition("\t")
            mode, kind, blob = meta.split()
            if kind == "blob" and mode in ("100644", "100755") and path.endswith(".py"):
                wanted.append((path, blob))
        if not wanted:
            return {}
        batch = "".join(f"{blob}\n" for _, blob in wanted)
        proc = subprocess.run(["git", *HARDENING, "cat-file", "--batch"], cwd=self.path, input=batch.encode(),
                              capture_output=True, env=scrubbed_env(), check=True)
        out, files, pos = proc.stdout, {}, 0
        for path, _ in wanted:
            header_end = out.index(b"\n", pos)
            size = int(out[pos:header_end].split()[2])
            data = out[header_end + 1: header_end + 1 + size]
            pos = header_end + 1 + size + 1
            try:
                files[path] = data.decode("utf-8")
            except UnicodeDecodeError:
                continue
        return files

    def commit_bug(self, instance_id: str, path: str, content: str) -> str:
        """The bug commit (parent: clean) with `path` holding `content`; made once, kept by a ref."""
        ref = f"refs/synth/{instance_id}"
        existing = _git(["rev-parse", "--verify", "--quiet", ref], cwd=self.path, input=None).strip() \
            if self._has_ref(ref) else ""
        if existing:
            return existing
        mode = _git(["ls-tree", self.clean, "--", path], cwd=self.path).split()[0]
        blob = _git(["hash-object", "-w", "--stdin", "--path", path], cwd=self.path, input=content).strip()
        with tempfile.TemporaryDirectory() as tmp:
            env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
            _git(["read-tree", self.clean], cwd=self.path, extra_env=env)
            _git(["update-index", "--cacheinfo", f"{mode},{blob},{path}"], cwd=self.path, extra_env=env)
            tree = _git(["write-tree"], cwd=self.path, extra_env=env).strip()
        commit = _git(["commit-tree", tree, "-p", self.clean, "-m", f"oec synth {instance_id}"],
                      cwd=self.path).strip()
        _git(["update-ref", ref, commit], cwd=self.path)
        return commit

    def _has_ref(self, ref: str) -> bool:
        proc = subprocess.run(["git", *HARDENING, "show-ref", "--verify", "--quiet", ref], cwd=self.path,
                              env=scrubbed_env(), capture_output=True)
        return proc.returncode == 0

    def fix_patch(self, bug: str) -> str:
        """The gold patch: bug commit -> clean commit, as `git diff` writes it."""
        return _git(["diff", "--no-color", "--no-ext-diff", "--no-renames", "--full-index", bug, self.clean],
                    cwd=self.path)
