"""The Task record: one SWE-bench style instance.

SWE-bench, SWE-Gym and SWE-smith rows share these keys, so a row from any of
them validates as a Task. FAIL_TO_PASS / PASS_TO_PASS arrive either as lists
or as the JSON-encoded strings that SWE-bench's parquet/JSON rows carry.
"""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

#: field -> (the whole value must match, what the error says a good value is)
_PLAIN_NAMES = {
    "instance_id": (re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+=-]{0,199}"),
                    "a plain id: letters, digits and '_', '.', '+', '=', '-', starting with a letter or digit "
                    "(no '/', '\\', spaces)"),
    "repo": (re.compile(r"([A-Za-z0-9_.-]+/)?[A-Za-z0-9_.-]+"),
             "'owner/name' (letters, digits, '_', '.', '-'; no absolute path, no '.' or '..' component)"),
    "base_commit": (re.compile(r"[A-Za-z0-9][A-Za-z0-9_./^~-]*"), "a commit hash or ref name"),
}


class Task(BaseModel):
    """A software-engineering task: a repository at a commit, an issue, and tests that decide it."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    instance_id: str = Field(min_length=1)
    repo: str = Field(min_length=1, description="owner/name, e.g. 'astropy/astropy'")
    base_commit: str | None = Field(
        default=None, min_length=4,
        description="the commit the agent starts from; none in SWE-smith rows, whose `patch` is the bug",
    )
    problem_statement: str
    patch: str = Field(default="", description="gold patch (diff against base_commit); SWE-smith rows: the bug")
    test_patch: str = Field(default="", description="diff adding the tests that decide the task")
    FAIL_TO_PASS: list[str] = Field(default_factory=list)
    PASS_TO_PASS: list[str] = Field(default_factory=list)
    version: str | None = None
    environment_setup_commit: str | None = None
    image_name: str | None = None
    test_cmd: str | None = Field(
        default=None,
        description="command that runs the deciding tests; default: pytest -rA over test_patch's files",
    )
    python_env: str | None = Field(
        default=None,
        description="bin folder of a Python environment to put first on PATH (e.g. a per-repo venv)",
    )

    @field_validator("instance_id", "repo", "base_commit")
    @classmethod
    def _plain_name(cls, value: str | None, info: ValidationInfo) -> str | None:
        """These reach paths and command lines: `instance_id` names workspaces, containers and files, `repo`
        picks a folder under --repos DIR, `base_commit` goes to git. None may be a path or an option."""
        if value is None:
            return value
        pattern, expected = _PLAIN_NAMES[info.field_name]
        dot_parts = any(part in (".", "..") for part in value.split("/"))
        if not pattern.fullmatch(value) or dot_parts:
            raise ValueError(f"{value!r} is not {expected}")
        return value

    @field_validator("FAIL_TO_PASS", "PASS_TO_PASS", mode="before")
    @classmethod
    def _decode_test_list(cls, value: Any) -> Any:
        if value is None:
            return []
        if isinstance(value, str):
            text = value.strip()
            if not text:
                return []
            try:
                decoded = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ValueError(f"not a JSON list of test ids: {exc.msg}") from exc
            return decoded
        if hasattr(value, "tolist"):  # numpy / pyarrow arrays from parquet
            return value.tolist()
        return value

    @field_validator("version", mode="before")
    @classmethod
    def _version_as_text(cls, value: Any) -> Any:
        if isinstance(value, (int, float)):
            return str(value)
        return value

    @property
    def bug_shaped(self) -> bool:
        """A SWE-smith row: no base_commit, `patch` is the bug that turns the image's clean repository into the
        task's start (the agent works without the FAIL_TO_PASS tests' files; grading puts them back)."""
        return self.base_commit is None

    @property
    def fix_patch(self) -> str:
        """The gold fix: `patch`, or for a SWE-smith row its reverse."""
        if not self.bug_shaped or not self.patch.strip():
            return self.patch
        from oec.grading.patch_files import reverse_patch

        return reverse_patch(self.patch)

    @property
    def repo_dirname(self) -> str:
        """Folder name of the repository in a repos dir: owner__name (SWE-bench's convention)."""
        return self.repo.replace("/", "__")
