"""Action formats: how a model writes its tool call, parsed strictly, and rendered back.

text:   the reply holds exactly one action, either a fenced ```bash block or
        an XML function call:
            <function=str_replace_editor>
            <parameter=command>view</parameter>
            <parameter=path>pkg/mod.py</parameter>
            </function>
native: the model's own function-calling channel; exactly one tool call.

Rendering is the inverse of parsing, so a step taken by a native-tool expert
can be shown to (and trained for) a text-format student, and back.
"""

from __future__ import annotations

import re
from typing import Literal

from oec.agent.actions import Action, FormatError
from oec.agent.tools import validate
from oec.models.base import Completion, ToolCall

ActionFormat = Literal["text", "native"]
#: what a user asks for on the command line: a format, or "auto" (the backend's own default)
FORMAT_CHOICES = ("auto", "text", "native")


def native_tools_option(choice: str, flag: str) -> bool | None:
    """`--student-format`/`--expert-format` value -> ModelOptions.native_tools (None: the backend's default)."""
    if choice not in FORMAT_CHOICES:
        raise ValueError(f"{flag} {choice}: expected one of {', '.join(FORMAT_CHOICES)}")
    return None if choice == "auto" else choice == "native"

_FENCE = re.compile(r"```(?:bash|sh|shell)?[ \t]*\n(.*?)```", re.DOTALL)
_FUNCTION = re.compile(r"<function=([A-Za-z_][\w-]*)>(.*?)</function>", re.DOTALL)
_PARAM = re.compile(r"<parameter=([A-Za-z_]\w*)>(.*?)</parameter>", re.DOTALL)

TEXT_FORMAT_HELP = (
    "Reply with a short thought, then EXACTLY ONE action: either a bash command in a fenced block\n"
    "```bash\nls -la\n```\n"
    "or a tool call in this XML form:\n"
    "<function=str_replace_editor>\n<parameter=command>str_replace</parameter>\n"
    "<parameter=path>pkg/module.py</parameter>\n<parameter=old_str>return a - b</parameter>\n"
    "<parameter=new_str>return a + b</parameter>\n</function>\n"
    "When you are done, submit with\n<function=submit>\n</function>"
)


def _strip_one_newline(value: str) -> str:
    if value.startswith("\n"):
        value = value[1:]
    if value.endswith("\n"):
        value = value[:-1]
    return value


def parse_text(text: str) -> tuple[str, Action]:
    """Return (thought, action) from a text-format reply; FormatError unless exactly one action is present."""
    functions = list(_FUNCTION.finditer(text))
    fences = [m for m in _FENCE.finditer(text) if not any(f.start() <= m.start() < f.end() for f in functions)]
    found = len(functions) + len(fences)
    if found == 0:
        raise FormatError("Your reply contained no action. " + TEXT_FORMAT_HELP)
    if found > 1:
        raise FormatError(f"Your reply contained {found} actions; reply with exactly one. " + TEXT_FORMAT_HELP)
    if functions:
        match = functions[0]
        params = {k: _strip_one_newline(v) for k, v in _PARAM.findall(match.group(2))}
        action = Action(tool=match.group(1), arguments=params)
    else:
        match = fences[0]
        command = match.group(1).strip()
        if not command:
            raise FormatError("Your bash block was empty. " + TEXT_FORMAT_HELP)
        action = Action(tool="submit") if command == "submit" else Action(tool="bash", arguments={"command": command})
    thought = (text[: match.start()] + text[match.end():]).strip()
    return thought, validate(action)


def holds_an_action(text: str) -> bool:
    """Whether a text-format reply so far holds a complete action (a closed fence or function call).

    A model that generates past this point writes a second action (a format error) or words no one
    reads: the local backend stops decoding here (`stop_after_action`), as SWE-agent stops at `</function>`.
    """
    return bool(_FUNCTION.search(text) or _FENCE.search(text))


def parse_native(completion: Completion) -> tuple[str, Action]:
    """Return (thought, action) from a function-calling reply; exactly one well-formed tool call."""
    calls = completion.tool_calls
    if not calls:
        raise FormatError("Your reply contained no tool call. Call exactly one of the tools.")
    if len(calls) > 1:
        raise FormatError(f"Your reply contained {len(calls)} tool calls; call exactly one tool per reply.")
    call = calls[0]
    if call.parse_error:
        raise FormatError(f"The arguments of your '{call.name}' call are not valid JSON: {call.parse_error}")
    return completion.text.strip(), validate(Action(tool=call.name, arguments=call.arguments))


def parse(completion: Completion, fmt: ActionFormat) -> tuple[str, Action]:
    return parse_native(completion) if fmt == "native" else parse_text(completion.text)


def render_text(thought: str, action: Action) -> str:
    """The text-format reply that parses back to exactly (thought, action)."""
    if action.tool == "bash" and "```" not in str(action.arguments.get("command", "")):
        block = f"```bash\n{action.arguments['command']}\n```"
    else:
        params = "".join(f"<parameter={k}>{_as_text(v)}</parameter>\n" for k, v in action.arguments.items())
        block = f"<function={action.tool}>\n{params}</function>"
    return f"{thought}\n\n{block}" if thought else block


def _as_text(value: object) -> str:
    import json

    return value if isinstance(value, str) else json.dumps(value)


def render_native(action: Action, call_id: str) -> ToolCall:
    return ToolCall(id=call_id, name=action.tool, arguments=dict(action.arguments))
