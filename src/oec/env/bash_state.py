"""The agent's bash session: its working directory, exported variables, functions and aliases persist.

SWE-agent keeps one interactive shell per rollout; oec keeps every sandbox
limit per command instead (a fresh, killable, capped shell each time), so the
state travels in a file: every agent command runs as

    restore the saved state  (one line)
    the command, byte for byte as the model wrote it

and an EXIT trap saves the state again when the shell ends, whether the command
succeeded, failed or called `exit`. Both backends run this same text.

Why so:

- The state file is bash that the SANDBOXED shell writes and sources; the host
  never reads or parses it. The model can edit it (it lives in the sandbox's
  /tmp, outside the repository, so never in a diff); that changes only its own
  later commands, which run under every limit anyway.
- oec's own commands (diff, checkpoint, grading, `run_trusted`, divergence
  detectors) never go through here, so an exported GIT_DIR or a PATH trick
  cannot change how oec reads or grades a rollout. The editor tool does not
  either: it resolves relative paths against the repository root, always.
- A damaged state (garbage written by hand, a directory in its place, a
  working directory since deleted) is reported in the command's output, and
  the next save writes a clean state again. A file whose first line is not
  oec's header is not sourced at all, so random bytes never run as commands;
  one that keeps the header is the model's own shell code, and runs as such.
- A model that redefines `builtin` or `command` as functions breaks its own
  state saving; nothing else.

By design: a command the sandbox kills (timeout, output flood) saves
nothing, so the state is the one from before it; the same for a command that
`exec`s another program or replaces the EXIT trap. Shell options (`set -e`),
traps, non-exported variables and background jobs do not persist. Aliases are
expanded (`expand_aliases` is on), as in an interactive shell.
"""

from __future__ import annotations

import shlex

__all__ = ["STATE_FILE_NAME", "stateful_script"]

#: the state file's name in the sandbox's private /tmp (locally) or the container's /tmp (docker)
STATE_FILE_NAME = "oec-bash-state"

#: the state file's first line: a file without it is not sourced at all (random bytes would run as commands)
_HEADER = "# oec: the agent's bash state, sourced before each of its commands and rewritten after"
#: exported names never saved nor unset: bash's own (read-only, or kept up to date by the shell), and the
#: docker backend's per-command marker (a saved one would let the next command's leftovers escape the reaper)
_KEEP = ("OEC_EXEC", "PWD", "OLDPWD", "SHLVL", "_", "SHELLOPTS", "BASHOPTS", "BASHPID", "EUID", "UID",
         "PPID", "BASH_VERSINFO", "BASH_ARGV0", "IFS")
#: every variable name, as quoted words: "${!A@}" expands to the names starting with A (no subshell, no IFS)
_ALL_NAMES = " ".join(f'"${{!{c}@}}"' for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_")


def _for_exported(body: str) -> str:
    """Shell running `body` once per exported variable, its name in $__oec_n (`compgen -e` would cost a fork)."""
    return f"for __oec_n in {_ALL_NAMES}; do [[ ${{!__oec_n@a}} == *x* ]] || continue; {body}; done"


def _note(text: str) -> str:
    """Shell that tells the model (on stderr, so in its observation) what happened to its shell state."""
    return f"builtin echo {shlex.quote(f'[oec: {text}]')} >&2"


def _restore(path: str) -> str:
    """One line: source the state, unset what the model had unset, go back to its directory; then arm the save.

    One line, so the model's command keeps its own line numbers from the second line on
    (a syntax error is reported one line later than the model wrote it); parsed before
    the state is sourced, so none of the model's functions or aliases can change it.
    """
    p = shlex.quote(path)
    keep = " ".join(_KEEP)
    unset_dropped = _for_exported('case " ' + keep + '${__oec_names-} " in *" $__oec_n "*) ;; '
                                  '*) builtin unset -v -- "$__oec_n";; esac')
    back = ('builtin cd -- "$__oec_cwd" 2>/dev/null || builtin echo "[oec: the saved working directory '
            '$__oec_cwd is gone; this command starts in the repository root]" >&2')
    damaged = _note(f"the saved shell state ({path}) is damaged and was not fully restored; this command "
                    "starts from what could be restored, and the state is saved afresh when it ends")
    unusable = _note(f"the saved shell state ({path}) is not one oec wrote (not a regular file, or its first "
                     "line was changed): it is ignored and this command starts in a fresh shell; the state is "
                     "saved afresh when it ends (if it is a directory, remove it)")
    return (f"builtin shopt -s expand_aliases; "
            f"if [[ -f {p} ]] && IFS= builtin read -r __oec_head < {p} && [[ $__oec_head == {shlex.quote(_HEADER)} ]]; "
            f"then builtin . {p}; "
            f"if [[ ${{__oec_state_ok-}} == 1 ]]; then {unset_dropped}; {back}; else {damaged}; fi; "
            f"elif [[ -e {p} || -L {p} ]]; then {unusable}; fi; "
            f"builtin unset -v __oec_head __oec_cwd __oec_names __oec_state_ok __oec_n; "
            f"builtin trap -- {_one_line(_save(path))} EXIT")


def _save(path: str) -> str:
    """The EXIT trap: write the state to a temporary file, then rename it over the old (never half-written).

    The first line (its builtins quoted, so no alias replaces them) turns off tracing and
    alias expansion before the rest is even parsed,
    so a model's `set -x` or its aliases do not reach the save; builtins are called as
    `builtin`, and `mv` by the default PATH, past the model's functions and PATH.
    """
    p, tmp = shlex.quote(path), shlex.quote(f"{path}.tmp")
    keep = " ".join(_KEEP)
    return "\n".join([
        "{ \\builtin set +xv; } 2>/dev/null; \\builtin shopt -u expand_aliases",
        "builtin set +eu +o pipefail; builtin umask 077; __oec_names=",
        "{",
        f"builtin printf '%s\\n' {shlex.quote(_HEADER)}",
        "builtin printf '__oec_cwd=%q\\n' \"$PWD\"",
        _for_exported(f'case " {keep} " in *" $__oec_n "*) continue;; esac; '
                      'builtin declare -p -- "$__oec_n" && __oec_names="$__oec_names $__oec_n"'),
        # `declare -F` lists `declare -f NAME` (which would print the body) or `declare -fx NAME` (exported)
        "builtin declare -f; builtin printf '{ :\\n'; builtin declare -F; builtin printf '} >/dev/null\\n'",
        "builtin alias -p",
        "builtin printf '__oec_names=%q\\n__oec_state_ok=1\\n' \"$__oec_names \"",
        f"}} >| {tmp} 2>/dev/null && command -p mv -f -- {tmp} {p}",
    ])


def _one_line(text: str) -> str:
    """`text` as one bash word on one line ($'...' quoting), so the restore line stays one line."""
    escaped = []
    for char in text:
        if char in "\\'":
            escaped.append("\\" + char)
        elif char == "\n":
            escaped.append("\\n")
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            escaped.append(f"\\x{ord(char):02x}")
        else:
            escaped.append(char)
    return "$'" + "".join(escaped) + "'"


def stateful_script(command: str, state_path: str) -> str:
    """The text `bash -c` runs for one agent command: restore the state at `state_path`, run, save.

    `state_path` is where the sandboxed shell sees the file (outside the repository).
    """
    return f"{_restore(state_path)}\n{command}"
