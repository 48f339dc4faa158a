"""The shell text the docker backend runs inside a container: pure functions, so they can be tested
(and even run with a local bash) without a docker engine.

Why shell and not docker API calls: a container has no cgroup of its own per
command and the engine's exec API cannot kill an exec, so each command is
wrapped in a small script that bounds it from the inside:

- `timeout -s KILL N` kills the command's process group at the deadline;
- every process the command starts carries a random marker in its environment
  (`OEC_EXEC=<hex>`); after the command ends (normally or killed), every process
  still carrying the marker is killed, so `server &` or a `setsid` daemon does not
  survive into the next command, as with the local sandbox;
- the task's shell setup (e.g. SWE-bench's conda activation) runs first, in the
  command's own shell, and the command itself is run by `exec bash -c "$1"`,
  exactly as the local sandbox runs it.

The marker is only in the environment, so a process can drop it (`env -i`) and
outlive the reaping; oec's own commands therefore start with `sweep_script`,
which kills every process of the container but its init and `sleep`, so nothing
of the model's runs while they write their output (`DockerSession.exec_trusted`).

Git commands here are oec's own (checkout, diff, checkpoint; the text is
`oec.env.git_scripts`', shared with the local sandbox), run without these
wrappers but inside the container, never on the host: the repository is the
model's to configure, and their output must never be truncated.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable

from oec.env.git_scripts import (
    GIT,
    GIT_ENV,
    checkpoint_script,
    diff_script,
    reset_script,
)

__all__ = [
    "MARKER_VAR",
    "bug_state_script",
    "checkout_script",
    "checkpoint_script",
    "diff_script",
    "find_python_script",
    "init_processes_script",
    "isolate_history_script",
    "reap_script",
    "reset_script",
    "sweep_script",
    "wrap_command",
]

MARKER_VAR = "OEC_EXEC"
_MARKER_RE = re.compile(r"[0-9a-f]{16,64}")
_REAP_ROUNDS = 50  # a forking command keeps adding processes; pids_limit bounds how many each round finds
_HOSTNAME_RE = re.compile(r"[0-9a-zA-Z][0-9a-zA-Z.-]{0,63}")


def _check_marker(marker: str) -> str:
    """Markers go into shell text unquoted-safe, and must not be a prefix of another (fixed hex)."""
    if not _MARKER_RE.fullmatch(marker):
        raise ValueError(f"marker must be 16-64 lowercase hex digits, got {marker!r}")
    return marker


def reap_script(marker: str) -> str:
    """Shell that SIGKILLs every process whose environment holds OEC_EXEC=<marker>, until none is left.

    It reads /proc/<pid>/environ with `tr` (present in every base image, unlike `grep -z`
    or `pkill`); the shell running it does not carry the marker, so it never kills itself.
    """
    needle = f"{MARKER_VAR}={_check_marker(marker)}"
    return (
        f"oec_round=0; while [ $oec_round -lt {_REAP_ROUNDS} ]; do oec_found=0; "
        "for oec_d in /proc/[0-9]*; do "
        f"case \"$(tr '\\0' '\\n' 2>/dev/null < \"$oec_d/environ\")\" in "
        f"*{needle}*) kill -9 \"${{oec_d#/proc/}}\" 2>/dev/null && oec_found=1;; esac; "
        "done; [ $oec_found = 0 ] && break; oec_round=$((oec_round + 1)); done"
    )


def _check_hostname(hostname: str) -> str:
    if not _HOSTNAME_RE.fullmatch(hostname):
        raise ValueError(f"not a container's hostname: {hostname!r}")
    return hostname


def init_processes_script(hostname: str) -> str:
    """Print the pids of PID 1's children (in a container just started: its `sleep`), one a line; print nothing
    where the hostname is not `hostname` (not the container this was meant for). Builtins only."""
    return (f'[ "$HOSTNAME" = {_check_hostname(hostname)} ] || exit 0\n'
            "for oec_d in /proc/[0-9]*; do "
            '{ while read -r oec_k oec_v oec_rest; do '
            'if [ "$oec_k" = PPid: ]; then [ "$oec_v" = 1 ] && echo "${oec_d#/proc/}"; break; fi; '
            'done < "$oec_d/status"; } 2>/dev/null; done')


def sweep_script(keep: Iterable[int], hostname: str) -> str:
    """Bash that SIGKILLs every process of the container except PID 1, `keep` (its `sleep`) and the shell
    running it, until a round finds none alive; exit 0 then, 1 when rounds run out or the hostname is not
    `hostname` (the same text run anywhere else, e.g. on a host by a test's fake engine, kills nothing).

    Run it in a subshell, `( ... )`: its exit ends only that, and both shells are spared ($$ and $BASHPID).
    Builtins only (but the pause between rounds), so the shell has no children to spare; zombies are PID 1's.
    """
    spared = " ".join(["1", *(str(int(pid)) for pid in keep), "$$", "$BASHPID"])
    return (
        f'[ "$HOSTNAME" = {_check_hostname(hostname)} ] || exit 1\n'
        f"oec_round=0; while [ $oec_round -lt {_REAP_ROUNDS} ]; do oec_found=0; "
        "for oec_d in /proc/[0-9]*; do "
        f'case " {spared} " in *" ${{oec_d#/proc/}} "*) continue;; esac; oec_state=; '
        '{ while read -r oec_k oec_v oec_rest; do '
        'if [ "$oec_k" = State: ]; then oec_state=$oec_v; break; fi; done < "$oec_d/status"; } 2>/dev/null; '
        'case "$oec_state" in ""|Z|X) continue;; esac; '
        'kill -9 "${oec_d#/proc/}" 2>/dev/null && oec_found=1; '
        "done; [ $oec_found = 0 ] && exit 0; sleep 0.1; oec_round=$((oec_round + 1)); done; exit 1"
    )


def wrap_command(command: str, *, timeout_s: float, marker: str, setup: str | None = None) -> list[str]:
    """The argv of one docker exec running `command` with a deadline and no leftover processes.

    The exit status is the command's own (128+N when signal N killed it; 137 when the
    deadline did); the wrapper's bash does not carry the marker, so its reaping pass
    kills the command's leftovers and never itself.
    """
    inner = (setup.strip() + "\n" if setup and setup.strip() else "") + 'exec bash -c "$1"'
    script = "\n".join([
        "ulimit -c 0",
        # the braces' `2>/dev/null` silences only this bash's own "Killed" report; the
        # command's stderr goes to the saved fd 3
        (f"{{ {MARKER_VAR}={_check_marker(marker)} timeout -s KILL {max(timeout_s, 0.001):.3f} "
         f"bash -c {shlex.quote(inner)} oec-sandbox \"$1\" 2>&3 3>&-; }} 3>&2 2>/dev/null"),
        "oec_rc=$?",
        reap_script(marker),
        "exit $oec_rc",
    ])
    return ["bash", "-c", script, "oec-exec", command]


def checkout_script(commit: str) -> str:
    """Put the repository at `commit` with no local changes, and with no history: print the full sha.

    `git clean` without -x: ignored files (build outputs, *.egg-info of an editable
    install baked into the image) are part of the environment and must stay. Then
    `isolate_history_script`: the image's repository holds the commits after base
    (SWE-bench clones the whole repository), the fix among them.
    """
    ref = shlex.quote(commit)
    return (f"{GIT_ENV}\n{GIT} checkout --quiet --force --detach {ref} && {GIT} clean -fdq || "
            "exit 1\n"
            f"{isolate_history_script()}")


def bug_state_script(bug_patch_path: str, remove: list[str]) -> str:
    """A SWE-smith row's start, made from the image's clean repository: the bug applied, `remove`d files
    gone (the FAIL_TO_PASS tests' files, for the agent), committed, and the history cut; print HEAD."""
    removal = f"rm -f -- {' '.join(shlex.quote(p) for p in remove)} && " if remove else ""
    return (f"{GIT_ENV}\n{GIT} checkout --quiet --force HEAD && {GIT} clean -fdq && "
            f"{GIT} apply --whitespace=nowarn {shlex.quote(bug_patch_path)} && {removal}"
            f"{GIT} add -A -- . && {GIT} -c user.name=oec -c user.email=oec@localhost -c commit.gpgsign=false "
            f"commit --quiet --no-verify -m 'oec: task start' || exit 1\n{isolate_history_script()}")


def isolate_history_script() -> str:
    """Replace the repository's `.git` by one holding only HEAD's commit and tree, marked shallow; print HEAD.

    The working tree and the ignore rules (`.git/info/exclude`) are kept; every
    other commit, ref, tag, reflog, stash and object is gone, so no command in
    the container can read what came after (or before) the base.
    """
    return f"{GIT_ENV}\n" + " && ".join([
        f"oec_head=$({GIT} rev-parse --verify HEAD^{{commit}})",
        "oec_tmp=$(mktemp -d /tmp/oec-history.XXXXXX)",
        f'{GIT} rev-list --objects --no-walk "$oec_head" | {GIT} pack-objects --quiet "$oec_tmp/pack" >/dev/null',
        '{ cp .git/info/exclude "$oec_tmp/exclude" 2>/dev/null || true; }',
        "rm -rf .git",
        f"{GIT} init --quiet --template= .",
        "mkdir -p .git/objects/pack .git/info",
        'mv "$oec_tmp"/pack-*.pack "$oec_tmp"/pack-*.idx .git/objects/pack/',
        '{ mv "$oec_tmp/exclude" .git/info/exclude 2>/dev/null || true; }',
        'echo "$oec_head" > .git/shallow',
        f'{GIT} update-ref --no-deref HEAD "$oec_head"',
        f"{GIT} read-tree HEAD",
        f"{{ {GIT} update-index -q --refresh >/dev/null || true; }}",
        'rm -rf "$oec_tmp"',
        f"{GIT} rev-parse HEAD",
    ])


def find_python_script() -> str:
    """Print the interpreter the editor script runs with.

    SWE-bench/SWE-smith images keep a modern Python in conda's base environment, while
    the task's own `testbed` environment may be as old as 3.5; the editor needs >= 3.6.
    """
    return ("for oec_py in /opt/miniconda3/bin/python3 /opt/conda/bin/python3 python3 python; do "
            "if command -v \"$oec_py\" >/dev/null 2>&1; then command -v \"$oec_py\"; exit 0; fi; done; exit 1")
