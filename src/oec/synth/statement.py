"""Problem statements for synthesized tasks, written from the failing tests, never from the fix.

The default is a template: which tests fail, each with pytest's one-line
failure message, and how to run them. It names no source file, function or
kind of change. `--writer MODEL_SPEC` asks a model for an issue-style text
instead, from the same facts (failing tests, their messages and source);
the model never sees the diff. Either text is checked against the fix: a
statement holding a line the fix adds is refused (the template drops that
message; a model's text falls back to the template).
"""

from __future__ import annotations

import asyncio
import re

from oec.grading.patch_files import parse_patch_files

__all__ = ["leaks_fix", "location_hint", "template_statement", "write_with_model"]

_TRIVIAL = re.compile(r"^(return|pass|break|continue|else:|try:|finally:|\)|\]|\}|[-+*/%=<>!:()\[\]{} ,.'\"]*)$")
MAX_LISTED = 8
#: one provider per writer spec, made on first use
_PROVIDERS: dict = {}


def fix_lines(fix_patch: str) -> list[str]:
    """The lines the fix adds (stripped), except those too short or generic to give anything away.

    Read with the project's patch model: an added line that itself starts with "++" is one too."""
    lines = []
    for added in (line for change in parse_patch_files(fix_patch) for line in change.added_lines):
        text = added.strip()
        if len(text) >= 5 and not _TRIVIAL.match(text):
            lines.append(text)
    return lines


def leaks_fix(text: str, fix_patch: str) -> str | None:
    """The first line of the fix that `text` contains (whitespace-insensitive), or None."""
    squashed = re.sub(r"\s+", "", text)
    for line in fix_lines(fix_patch):
        if re.sub(r"\s+", "", line) in squashed:
            return line
    return None


def template_statement(fail_to_pass: list[str], messages: dict[str, str], test_cmd: str, fix_patch: str,
                       p2p_count: int = 0) -> str:
    """An issue from the failing tests: their ids and failure messages, and the command that shows them."""
    names = [t.rsplit("::", 1)[-1] for t in fail_to_pass]
    if len(fail_to_pass) == 1:
        title = f"`{names[0]}` fails"
    else:
        title = f"`{names[0]}` and {len(fail_to_pass) - 1} other test(s) fail"
    lines = [title, "", "These tests fail on the current code:", ""]
    for test_id in fail_to_pass[:MAX_LISTED]:
        message = messages.get(test_id, "")
        if message and leaks_fix(message, fix_patch):
            message = ""
        lines.append(f"- `{test_id}`" + (f": {message}" if message else ""))
    if len(fail_to_pass) > MAX_LISTED:
        lines.append(f"- ... and {len(fail_to_pass) - MAX_LISTED} more")
    lines += ["", "To reproduce:", "", "```", test_cmd, "```", ""]
    lines.append("The tests describe the intended behaviour; the code under test needs fixing"
                 + (f", and the {p2p_count} test(s) that pass now must keep passing." if p2p_count else "."))
    return "\n".join(lines) + "\n"


def location_hint(function: str, path: str) -> str:
    """Where the bug is, by name: the function (its own name, what a `grep` finds) and the file. Never the line
    or the change."""
    name = function.rsplit(".", 1)[-1]
    where = f"`{function}`" if name == function else f"`{name}` (`{function}`)"
    return f"The bug is in the function {where} in `{path}`."


_WRITER_PROMPT = """You write GitHub issues for a Python project. A change broke some tests. Write a short, \
realistic issue a user might file: a title line, what they observed (use the failing tests' names and \
messages below as the evidence; you may show a small snippet that reproduces it, built from the test code), \
and what they expected. Do not guess at or mention the cause, the fix, or which source file is wrong. \
Reply with the issue text only.

Failing tests and their messages:
{failures}

Source of the failing tests:
{sources}
"""


def write_with_model(spec: str, fail_to_pass: list[str], messages: dict[str, str], test_sources: dict[str, str],
                     fix_patch: str, *, provider=None) -> str | None:
    """An issue-style statement written by the model `spec`; None when the model fails or its text leaks."""
    from oec.models.base import Message
    from oec.models.registry import make_provider

    failures = "\n".join(f"- {t}: {messages.get(t, '(no message)')}" for t in fail_to_pass[:MAX_LISTED])
    sources = "\n\n".join(f"# {name}\n{code}" for name, code in list(test_sources.items())[:MAX_LISTED])
    prompt = _WRITER_PROMPT.format(failures=failures, sources=sources[:12000])
    try:
        if provider is None:
            provider = _PROVIDERS.get(spec) or _PROVIDERS.setdefault(spec, make_provider(spec))
        model = provider.for_task(None)
        completion = asyncio.run(model.complete([Message(role="user", content=prompt)]))
    except Exception:  # a model that fails writes nothing; the template stands in
        return None
    text = completion.text.strip()
    if not text or leaks_fix(text, fix_patch):
        return None
    return text + "\n"
