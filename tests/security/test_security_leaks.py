"""Leaks: a rollout reads neither the fix from git nor anything of the host beyond the system and its Python."""

from __future__ import annotations

import os
import socket
import uuid
from pathlib import Path

import pytest
from attacks import FIXED_LINE, TASK, attack, observations, run_cli

import oec.env.workspace as workspace_module
from oec.env.base_store import base_store
from oec.env.repos import RepoIndex
from oec.tasks.bundled import (
    BUNDLED_TASKS_FILE,
    PROJECTS_DIR,
    bundled_repos_dir,
    load_bundled_tasks,
)

pytestmark = pytest.mark.filterwarnings("ignore::oec.env.sandbox.SandboxWarning")

GIT_PROBES = [
    "git log --all --oneline",
    "git diff HEAD~1",
    "git show main:textkit/slug.py",
    f"git show {TASK.instance_id}:textkit/slug.py",
    "git tag; git branch -a; git stash list; git reflog",
    "cat .git/objects/info/alternates; git count-objects -v",
    "git cat-file --batch-all-objects --batch-check | wc -l",
    "git fsck --lost-found 2>&1 | tail -3",
    # what the fix's file looks like in every object the workspace can read
    "for o in $(git cat-file --batch-all-objects --batch-check='%(objectname) %(objecttype)' | "
    "awk '$2==\"blob\"{print $1}'); do git cat-file -p $o; done | grep -c 'max_length + 1' || true",
]


def test_the_fix_cannot_be_read_back_from_git_in_a_rollout(tmp_path: Path) -> None:
    record = attack(tmp_path, GIT_PROBES)
    seen = observations(record)
    assert FIXED_LINE not in seen and "max_length + 1" not in seen.replace("grep -c 'max_length + 1'", "")
    assert "unknown revision" in seen or "bad revision" in seen  # HEAD~1 does not exist: base is a root


def test_no_bundled_workspace_can_read_its_fix_and_the_check_would_say_so(monkeypatch, tmp_path: Path) -> None:
    """`oec tasks validate` finds every bundled fix in its source history, none in what a workspace reads;
    with workspaces borrowing the source repo's whole object store (oec before), it reports the leak."""
    code, output = run_cli("tasks", "validate")
    assert code == 0, output
    assert output.count("holds the fix") == 18 and "LEAKS" not in output and "not checked" not in output

    # the way workspaces were made before: borrowing the source repository's objects (history, tags, main)
    def whole_store(repo: Path, commit: str, **_: object) -> Path:
        return Path(os.path.realpath(repo / ".git"))

    monkeypatch.setattr(workspace_module, "base_store", whole_store)
    one = tmp_path / "one.jsonl"
    one.write_text(TASK.model_dump_json() + "\n")
    code, output = run_cli("tasks", "validate", one, "--repos", bundled_repos_dir())
    assert code == 1 and "LEAKS textkit/slug.py" in output, output


@pytest.fixture
def host_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A secret in oec's environment and in a file of the home folder, a unix socket in /run, an abstract
    socket and a TCP port on loopback."""
    secret = f"sk-oec-test-{uuid.uuid4().hex}"
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    monkeypatch.setenv("ANTHROPIC_API_KEY", secret)
    path_socket = Path("/run") / f"oec-test-{uuid.uuid4().hex[:8]}.sock"
    listeners = []
    for family, address in ((socket.AF_UNIX, str(path_socket)), (socket.AF_UNIX, f"\0oec-test-{secret[-8:]}"),
                            (socket.AF_INET, ("127.0.0.1", 0))):
        server = socket.socket(family, socket.SOCK_STREAM)
        server.bind(address)
        server.listen(8)
        listeners.append(server)
    port = listeners[2].getsockname()[1]
    home_file = Path.home() / f".oec-test-credentials-{uuid.uuid4().hex[:8]}"
    home_file.write_text(secret)
    yield {"secret": secret, "socket": path_socket, "abstract": f"oec-test-{secret[-8:]}", "port": port,
           "home_file": home_file}
    for server in listeners:
        server.close()
    path_socket.unlink(missing_ok=True)
    home_file.unlink(missing_ok=True)


def test_the_host_is_not_there_from_inside_the_sandbox(tmp_path: Path, host_secrets: dict) -> None:
    neighbour = workspace_module.default_work_root() / f"neighbour-{uuid.uuid4().hex[:8]}"
    neighbour.mkdir()
    (neighbour / "secret.txt").write_text("another rollout's work\n")
    # another task of the same project: its base tree holds THIS task's fixed file (only its own bug is in it)
    other = next(t for t in load_bundled_tasks() if t.repo == TASK.repo and t.instance_id != TASK.instance_id)
    other_store = base_store(RepoIndex([bundled_repos_dir()]).locate(other), other.base_commit)
    hidden = [
        other_store, host_secrets["home_file"], Path("/home"), Path("/run"), Path("/var/run/docker.sock"), host_secrets["socket"],
        BUNDLED_TASKS_FILE, PROJECTS_DIR, bundled_repos_dir(),                    # gold patches, fixed sources
        Path(__file__).resolve().parents[2] / "pyproject.toml",                   # the project tree
        tmp_path / "run-attack",                                                  # this run's records
        neighbour / "secret.txt",                                                 # another rollout's workspace
        Path("/etc/shadow"),
    ]
    probe = "for p in " + " ".join(f"'{p}'" for p in hidden) + \
        '; do if [ -e "$p" ]; then echo "VISIBLE $p"; else echo "HIDDEN $p"; fi; done'
    connect = (
        "python -c \"import socket,sys\n"
        "for fam, addr in ((socket.AF_UNIX, sys.argv[1]), (socket.AF_UNIX, chr(0) + sys.argv[2]), "
        "(socket.AF_INET, ('127.0.0.1', int(sys.argv[3])))):\n"
        "    s = socket.socket(fam)\n"
        "    try:\n        s.connect(addr); print('CONNECTED', addr)\n"
        "    except OSError as e:\n        print('REFUSED', e.errno)\n\" "
        f"{host_secrets['socket']} {host_secrets['abstract']} {host_secrets['port']}"
    )
    record = attack(tmp_path, [probe, connect, "env; cat /proc/*/environ 2>/dev/null | tr '\\0' '\\n'"])
    seen = observations(record)
    assert "VISIBLE" not in seen and seen.count("HIDDEN") == len(hidden), seen
    assert "CONNECTED" not in seen and seen.count("REFUSED") == 3, seen
    assert host_secrets["secret"] not in seen and "OPENAI_API_KEY" not in seen
    (neighbour / "secret.txt").unlink()
    neighbour.rmdir()


def test_the_system_and_the_task_python_still_work_inside(tmp_path: Path) -> None:
    """What hiding the host must not break: the shell tools, git, python with its standard library, pytest."""
    record = attack(tmp_path, [
        "ls /usr/bin/git && git status --short && echo GIT-OK",
        "python -c 'import json, sqlite3, ssl, multiprocessing, tempfile; tempfile.mkstemp(); print(\"PY-OK\")'",
        "python -m pytest -q tests/test_slug.py -p no:cacheprovider 2>&1 | tail -1",
        "id -un; echo HOME=$HOME; touch /tmp/scratch && echo TMP-OK; touch /usr/x 2>/dev/null || echo RO-OK",
    ])
    seen = observations(record)
    for token in ("GIT-OK", "PY-OK", "passed", "root", "HOME=/tmp", "TMP-OK", "RO-OK"):
        assert token in seen, seen
