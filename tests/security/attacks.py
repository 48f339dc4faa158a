"""What the security tests share: an attacker agent run through `oec collect`, and patches for `oec grade`.

The attacker is a scripted student (text format): each command is one
```bash block, then a submit. Everything goes through the real paths: the
CLI, the bubblewrap sandbox, the workspace, the diff, the grader.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

from typer.testing import CliRunner

from oec.cli import app
from oec.tasks.bundled import load_bundled_tasks
from oec.tasks.model import Task

#: the target: slugify() cuts one word too many; its fix changes `max_length` to `max_length + 1`
TASK: Task = next(t for t in load_bundled_tasks() if t.instance_id == "oec-bundled__textkit-1")
FIXED_LINE = "cut = slug.rfind(sep, 0, max_length + 1)"
F2P = TASK.FAIL_TO_PASS
SOURCE = "textkit/slug.py"
TEST_FILE = "tests/test_slug.py"


def run_cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, [str(a) for a in args])
    return result.exit_code, result.output


def task_file(tmp_path: Path, task: Task = TASK) -> Path:
    path = tmp_path / "tasks.jsonl"
    path.write_text(task.model_dump_json() + "\n")
    return path


def attack(tmp_path: Path, commands: list[str], *, name: str = "attack", task: Task = TASK) -> dict:
    """Run one on-policy rollout whose student runs `commands` then submits; return its trajectory record."""
    script = tmp_path / f"{name}.json"
    replies = [f"Next.\n```bash\n{command}\n```" for command in commands] + ["Done.\n<function=submit>\n</function>"]
    script.write_text(json.dumps(replies))
    out = tmp_path / f"run-{name}"
    code, output = run_cli("collect", task_file(tmp_path, task), "--student", f"scripted:@{script}",
                           "--strategy", "on-policy", "--out", out, "--concurrency", "1",
                           "--max-calls", str(len(replies) + 1))
    assert code == 0, output
    (record,) = [json.loads(line) for line in (out / "trajectories.jsonl").read_text().splitlines()]
    return record


def observations(record: dict) -> str:
    return "\n".join(step["observation"] for step in record["steps"])


def new_file_patch(path: str, text: str) -> str:
    """A git-style patch adding `path` with `text`."""
    lines = text.splitlines()
    body = "".join(f"+{line}\n" for line in lines)
    return (f"diff --git a/{path} b/{path}\nnew file mode 100644\n--- /dev/null\n+++ b/{path}\n"
            f"@@ -0,0 +1,{len(lines)} @@\n{body}")


def grade_patch(tmp_path: Path, patch: str, name: str = "attack.diff") -> dict:
    """`oec grade --patch FILE --out OUT.json` on the target task; the one result."""
    diff = tmp_path / name
    diff.write_text(patch)
    out = tmp_path / f"{name}.json"
    code, output = run_cli("grade", task_file(tmp_path), "--patch", diff, "--out", out)
    assert code == 0, output
    (result,) = json.loads(out.read_text())
    return result


def dedent(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")
