"""SWE-bench predictions files: {instance_id, model_name_or_path, model_patch} per row."""

from __future__ import annotations

import json
from pathlib import Path


class PredictionsError(ValueError):
    pass


def load_predictions(path: Path) -> dict[str, str]:
    """instance_id -> model_patch from a .json list / dict or a .jsonl file; errors name file and line."""
    text = path.read_text(encoding="utf-8")
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
        patches[row["instance_id"]] = patch or ""
    return patches


def looks_like_predictions(path: Path) -> bool:
    return path.suffix.lower() in {".json", ".jsonl"}
