"""str_replace_editor, run INSIDE the sandbox as a standalone script (stdlib only).

It runs where the agent's commands run, so it sees exactly the files they see
and can write only where they can. Arguments arrive as one base64 JSON blob;
edit history for undo_edit lives under the workspace's .git folder so it never
shows up in the patch.

Usage: python editor_script.py <state_dir> <base64 json {command, path, ...}>
"""

import base64
import json
import os
import sys

SNIPPET_LINES = 4
MAX_VIEW_CHARS = 30000


class EditorError(Exception):
    pass


def _numbered(text, start=1):
    return "\n".join(f"{i:6d}\t{line}" for i, line in enumerate(text.split("\n"), start=start))


def _history_file(state_dir, path):
    key = base64.urlsafe_b64encode(os.path.abspath(path).encode()).decode().rstrip("=")
    return os.path.join(state_dir, key[-200:] + ".json")


def _push_history(state_dir, path, old_text):
    os.makedirs(state_dir, exist_ok=True)
    hist_path = _history_file(state_dir, path)
    history = []
    if os.path.exists(hist_path):
        with open(hist_path) as fh:
            history = json.load(fh)
    history.append(old_text)
    with open(hist_path, "w") as fh:
        json.dump(history[-20:], fh)


def _read(path):
    if not os.path.exists(path):
        raise EditorError(f"The path {path} does not exist.")
    if os.path.isdir(path):
        raise EditorError(f"The path {path} is a directory; only `view` works on directories.")
    with open(path, encoding="utf-8", errors="replace") as fh:
        return fh.read()


def _write(path, text):
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text)


def _snippet(text, around_line, extra_lines):
    lines = text.split("\n")
    start = max(0, around_line - SNIPPET_LINES)
    end = min(len(lines), around_line + SNIPPET_LINES + extra_lines + 1)
    return _numbered("\n".join(lines[start:end]), start=start + 1)


def view(path, view_range=None, **_):
    if os.path.isdir(path):
        entries = []
        for root, dirs, files in os.walk(path):
            dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d != "__pycache__")
            depth = os.path.relpath(root, path).count(os.sep) + (0 if root == path else 1)
            if depth >= 2:
                dirs[:] = []
            for name in sorted(dirs) + sorted(f for f in files if not f.startswith(".")):
                entries.append(os.path.join(root, name))
        return f"Files and directories up to 2 levels deep in {path}, excluding hidden items:\n" + "\n".join(entries)
    text = _read(path)
    start = 1
    if view_range:
        if len(view_range) != 2 or not all(isinstance(v, int) for v in view_range):
            raise EditorError("view_range must be a list of two integers, e.g. [10, 40].")
        lines = text.split("\n")
        first, last = view_range
        if first < 1 or first > len(lines):
            raise EditorError(f"view_range start {first} is outside the file's lines [1, {len(lines)}].")
        last = len(lines) if last == -1 else min(last, len(lines))
        if last < first:
            raise EditorError(f"view_range end {last} is before its start {first}.")
        text, start = "\n".join(lines[first - 1:last]), first
    out = _numbered(text, start)
    if len(out) > MAX_VIEW_CHARS:
        out = out[:MAX_VIEW_CHARS] + "\n<file too long: output clipped; use view_range to see the rest>"
    return f"Here's the result of running `cat -n` on {path}:\n{out}"


def create(path, file_text=None, state_dir=None, **_):
    if file_text is None:
        raise EditorError("Parameter `file_text` is required for command: create.")
    if os.path.exists(path):
        raise EditorError(f"File already exists at: {path}. Cannot overwrite files using command `create`.")
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    _write(path, file_text)
    return f"File created successfully at: {path}"


def str_replace(path, old_str=None, new_str="", state_dir=None, **_):
    if old_str is None:
        raise EditorError("Parameter `old_str` is required for command: str_replace.")
    text = _read(path)
    count = text.count(old_str)
    if count == 0:
        raise EditorError(f"No replacement was performed, old_str `{old_str}` did not appear verbatim in {path}.")
    if count > 1:
        lines = [i + 1 for i, line in enumerate(text.split("\n")) if old_str.split("\n")[0] in line]
        raise EditorError(f"No replacement was performed. Multiple occurrences of old_str `{old_str}` "
                          f"in lines {lines}. Please ensure it is unique.")
    new_str = new_str or ""
    _push_history(state_dir, path, text)
    new_text = text.replace(old_str, new_str)
    _write(path, new_text)
    line = text.split(old_str)[0].count("\n")
    return (f"The file {path} has been edited. Here's the result of running `cat -n` on a snippet of {path}:\n"
            f"{_snippet(new_text, line, new_str.count(chr(10)))}\n"
            "Review the changes and make sure they are as expected. Edit the file again if necessary.")


def insert(path, insert_line=None, new_str=None, state_dir=None, **_):
    if insert_line is None or new_str is None:
        raise EditorError("Parameters `insert_line` and `new_str` are required for command: insert.")
    text = _read(path)
    lines = text.split("\n")
    if not isinstance(insert_line, int) or insert_line < 0 or insert_line > len(lines):
        raise EditorError(f"Invalid `insert_line` {insert_line}: it should be within [0, {len(lines)}].")
    _push_history(state_dir, path, text)
    new_lines = new_str.split("\n")
    new_text = "\n".join(lines[:insert_line] + new_lines + lines[insert_line:])
    _write(path, new_text)
    return (f"The file {path} has been edited. Here's the result of running `cat -n` on a snippet of the edited file:\n"
            f"{_snippet(new_text, insert_line, len(new_lines))}\n"
            "Review the changes and make sure they are as expected. Edit the file again if necessary.")


def undo_edit(path, state_dir=None, **_):
    hist_path = _history_file(state_dir, path)
    history = []
    if os.path.exists(hist_path):
        with open(hist_path) as fh:
            history = json.load(fh)
    if not history:
        raise EditorError(f"No edit history found for {path}.")
    _write(path, history.pop())
    with open(hist_path, "w") as fh:
        json.dump(history, fh)
    return f"Last edit to {path} undone successfully. Here's the result of running `cat -n` on {path}:\n" + _numbered(_read(path))


COMMANDS = {"view": view, "create": create, "str_replace": str_replace, "insert": insert, "undo_edit": undo_edit}


def main(argv):
    state_dir = argv[1]
    args = json.loads(base64.b64decode(argv[2]).decode("utf-8"))
    command = args.pop("command", None)
    if command not in COMMANDS:
        raise EditorError(f"Unrecognized command {command!r}. Allowed commands are: {', '.join(COMMANDS)}.")
    path = args.pop("path", None)
    if not path:
        raise EditorError("Parameter `path` is required.")
    full = os.path.abspath(path)
    try:
        out = COMMANDS[command](full, state_dir=state_dir, **args)
    except EditorError as exc:
        raise EditorError(_as_given(str(exc), full, path)) from None
    return _as_given(out, full, path)


def _as_given(text, full, path):
    """Name the file as the model wrote it: the absolute path of a workspace is a random temp folder
    that differs in every rollout (noise a student would learn to copy, and host detail)."""
    return text if os.path.isabs(path) else text.replace(full, os.path.normpath(path))


if __name__ == "__main__":
    try:
        print(main(sys.argv))
    except EditorError as exc:
        print(f"ERROR: {exc}")
        sys.exit(1)
    except TypeError as exc:  # unexpected parameter names
        print(f"ERROR: invalid parameters: {exc}")
        sys.exit(1)
