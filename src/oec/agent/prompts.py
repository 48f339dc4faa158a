"""System and task prompts, one pair per action format.

Each model sees the history with ITS format's system prompt; exported training
data uses the student's, so the student is trained on what it will be shown.
"""

from __future__ import annotations

from oec.agent.formats import TEXT_FORMAT_HELP, ActionFormat
from oec.tasks.model import Task

_ROLE = (
    "You are a software engineer fixing a bug in a Python repository. You work in the repository's "
    "root folder through tools. Explore the code, reproduce the problem, edit the source to fix it, "
    "run the tests, then submit. Do not modify the existing tests."
)

SYSTEM_PROMPTS: dict[ActionFormat, str] = {
    "text": (
        f"{_ROLE}\n\nTools:\n"
        "- bash: run a command (it starts in the repository root; cd and exported variables persist "
        "between calls).\n"
        "- str_replace_editor: command=view|create|str_replace|insert|undo_edit, path (relative to the "
        "repository root, or absolute), and "
        "file_text / old_str / new_str / insert_line / view_range as the command needs.\n"
        "- submit: finish; your changes become the patch.\n\n"
        f"{TEXT_FORMAT_HELP}"
    ),
    "native": f"{_ROLE}\n\nCall exactly one tool per reply. Call `submit` when the fix is done.",
}

TASK_TEMPLATE = (
    "<issue>\n{problem_statement}\n</issue>\n\n"
    "The repository is checked out in the current folder. Make the smallest change to the "
    "non-test source files that resolves the issue, check it, and submit."
)


def task_prompt(task: Task) -> str:
    return TASK_TEMPLATE.format(problem_statement=task.problem_statement.strip())


def format_error_message(error: str) -> str:
    return f"FORMAT ERROR: {error}"


def observation_message(observation: str) -> str:
    return f"OBSERVATION:\n{observation}"
