"""The agent's tools (bash, str_replace_editor, submit): their schemas and how they run in a sandbox."""

from __future__ import annotations

import base64
import json
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from oec.agent.actions import Action, FormatError
from oec.models.base import ToolSpec

EDITOR_SCRIPT = Path(__file__).with_name("editor_script.py")
EDITOR_STATE = ".git/oec-editor"  # relative to the workspace; never part of the diff

BASH = ToolSpec(
    name="bash",
    description="Run a bash command. The first call starts in the repository root; the working directory, "
                "exported environment variables, shell functions and aliases persist between calls (other shell "
                "variables, shell options and background processes do not; a command that times out loses its "
                "changes). No network, no interactive programs.",
    parameters={"type": "object", "properties": {"command": {"type": "string", "description": "the command"}},
                "required": ["command"]},
)
EDITOR = ToolSpec(
    name="str_replace_editor",
    description="View, create and edit files. `view` shows a file with line numbers (or lists a directory); "
                "`create` writes a new file; `str_replace` replaces old_str (must occur exactly once) by new_str; "
                "`insert` adds new_str after line insert_line; `undo_edit` reverts the last edit of a file.",
    parameters={
        "type": "object",
        "properties": {
            "command": {"type": "string", "enum": ["view", "create", "str_replace", "insert", "undo_edit"]},
            "path": {"type": "string", "description": "file or directory, absolute or relative to the repository "
                                                      "root (not to bash's working directory)"},
            "file_text": {"type": "string", "description": "content for `create`"},
            "old_str": {"type": "string", "description": "text to replace for `str_replace`"},
            "new_str": {"type": "string", "description": "replacement for `str_replace`, or text for `insert`"},
            "insert_line": {"type": "integer", "description": "line after which `insert` adds new_str"},
            "view_range": {"type": "array", "items": {"type": "integer"}, "description": "[start, end] for `view`"},
        },
        "required": ["command", "path"],
    },
)
SUBMIT = ToolSpec(
    name="submit",
    description="Submit your changes: the repository's diff becomes your patch and the episode ends.",
    parameters={"type": "object", "properties": {}, "required": []},
)
TOOLS: list[ToolSpec] = [BASH, EDITOR, SUBMIT]
TOOLS_BY_NAME = {t.name: t for t in TOOLS}


def validate(action: Action) -> Action:
    """Check the tool exists and its required arguments are there, coercing obvious types (XML gives strings)."""
    spec = TOOLS_BY_NAME.get(action.tool)
    if spec is None:
        raise FormatError(f"Unknown tool '{action.tool}'. Available tools: {', '.join(TOOLS_BY_NAME)}.")
    props: dict[str, Any] = spec.parameters.get("properties", {})
    unknown = set(action.arguments) - set(props)
    if unknown:
        raise FormatError(f"Tool '{action.tool}' got unknown parameter(s): {', '.join(sorted(unknown))}.")
    missing = [p for p in spec.parameters.get("required", []) if p not in action.arguments]
    if missing:
        raise FormatError(f"Tool '{action.tool}' is missing required parameter(s): {', '.join(missing)}.")
    args = dict(action.arguments)
    for key, value in args.items():
        kind = props[key].get("type")
        if isinstance(value, str) and kind == "integer":
            try:
                args[key] = int(value.strip())
            except ValueError:
                raise FormatError(f"Parameter '{key}' of '{action.tool}' must be an integer, got {value!r}.") from None
        elif isinstance(value, str) and kind == "array":
            try:
                args[key] = json.loads(value)
            except json.JSONDecodeError:
                raise FormatError(f"Parameter '{key}' of '{action.tool}' must be a JSON list, got {value!r}.") from None
    return Action(tool=action.tool, arguments=args)


class Runner(Protocol):
    """What tools need from an environment: run a command in the workspace.

    An environment may also offer `run_stateful` (same signature; both backends do): the bash tool
    then keeps its working directory and exports between calls (`oec.env.bash_state`). The editor
    always goes through `run`, a fresh shell in the repository root, so its relative paths mean
    the same whatever the model did to its shell."""

    def run(self, command: str, *, timeout_s: float | None = None, output_bytes: int | None = None): ...


@dataclass
class Observation:
    text: str
    exit_code: int | None = None
    submitted: bool = False


def truncate(text: str, max_chars: int) -> str:
    """Keep the head and the tail of a long observation, with a marker saying what was cut."""
    if len(text) <= max_chars:
        return text
    half = max_chars // 2
    return f"{text[:half]}\n[... {len(text) - 2 * half} characters elided ...]\n{text[-half:]}"


def execute(action: Action, env: Runner, *, max_observation_chars: int = 10_000) -> Observation:
    """Run one validated action in the environment and say what the agent observes."""
    if action.tool == "submit":
        return Observation("Submitted.", submitted=True)
    run = env.run
    if action.tool == "bash":
        command = str(action.arguments["command"])
        run = getattr(env, "run_stateful", None) or env.run
    else:
        blob = base64.b64encode(json.dumps(action.arguments).encode()).decode()
        # where the script lives depends on the backend (a container has its own copy)
        prefix = getattr(env, "editor_command_prefix", None) or f"python {shlex.quote(str(EDITOR_SCRIPT))}"
        command = f"{prefix} {EDITOR_STATE} {blob}"
    result = run(command)
    text = result.output
    if result.timed_out:
        text += "\n[command timed out and was killed]"
    elif action.tool == "bash" and result.exit_code not in (0, None):
        text += f"\n[exit code {result.exit_code}]"
    return Observation(truncate(text, max_observation_chars) or "(no output)", exit_code=result.exit_code)
