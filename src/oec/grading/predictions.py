"""SWE-bench predictions files: {instance_id, model_name_or_path, model_patch} per row."""

from __future__ import annotations

import json
from pathlib import Path


class PredictionsError(ValueError):
    pass


def load_predictions(path: Path) -> dict[str, str]:
    """instance_id -> model_patch from a .json list / dict or a .jsonl file; errors name file and line."""
    text = read_utf8(path)
    rows: list[tuple[int, object]] = []
    if path.suffix.lower() == ".jsonl":
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    rows.append((number, json.loads(line)))
                except json.JSONDecodeError as exc:
                    raise PredictionsError(f"{path}:{number}: invalid JSON: {exc.msg}") from exc
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise PredictionsError(f"{path}:{exc.lineno}: invalid JSON: {exc.msg}") from exc
        if isinstance(data, dict) and all(isinstance(v, dict) for v in data.values()):
            data = [{"instance_id": k, **v} for k, v in data.items()]  # SWE-bench's dict form
        if not isinstance(data, list):
            raise PredictionsError(f"{path}: expected a list of predictions")
        rows = [(i + 1, row) for i, row in enumerate(data)]
    patches: dict[str, str] = {}
    for number, row in rows:
        if not isinstance(row, dict) or not isinstance(row.get("instance_id"), str):
            raise PredictionsError(f"{path}:{number}: field 'instance_id': missing or not a string")
        patch = row.get("model_patch", row.get("patch"))
        if patch is not None and not isinstance(patch, str):
            raise PredictionsError(f"{path}:{number}: field 'model_patch': not a string")
        problem = binary_patch_problem(patch or "")
        if problem:
            raise PredictionsError(f"{path}:{number}: field 'model_patch': {problem}")
        patches[row["instance_id"]] = patch or ""
    return patches


def read_utf8(path: Path) -> str:
    """A text file that must be UTF-8; otherwise an error naming the line and the byte, not a traceback."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise PredictionsError(f"{path}:{line}: not UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
                               "patches are graded as UTF-8 text") from None


def binary_patch_problem(patch: str) -> str | None:
    """Why a patch cannot be graded as given (it carries binary file contents), or None."""
    for line in patch.splitlines():
        if line.startswith("GIT binary patch") or (line.startswith("Binary files ") and line.endswith(" differ")):
            return f"a binary patch ({line.strip()[:60]!r}): only text changes are graded"
    if "\0" in patch:
        return "a NUL byte: a patch is text"
    return None


def load_patch_file(path: Path) -> str:
    """One diff file to grade: UTF-8 text, no binary hunks; errors name the file and line."""
    text = read_utf8(path)
    problem = binary_patch_problem(text)
    if problem:
        raise PredictionsError(f"{path}: {problem}")
    return text


def looks_like_predictions(path: Path) -> bool:
    return path.suffix.lower() in {".json", ".jsonl"}
