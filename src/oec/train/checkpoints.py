"""The work folder beside OUT: periodic Trainer checkpoints, and the identity of the run that wrote them.

Why beside OUT rather than in it: OUT holds only a finished checkpoint (it is
renamed into place at the end), so `hf:OUT` never picks up a half-trained
model. `OUT.work/` holds `checkpoint-K/` folders (weights or adapter,
optimizer, scheduler, RNG states, trainer state with the loss log) and
`oec_run.json`, what was being trained: the data file's hash, the model and
every hyperparameter that changes the result. `--resume` continues from the
latest complete checkpoint only when all of those match, so a resumed run
ends where the uninterrupted one would have. The folder is removed once OUT
is written.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path
from typing import Any

WORK_SUFFIX = ".work"
RUN_FILE = "oec_run.json"
#: settings --resume may change: they change how the run is carried out, not what it computes
RESUME_MAY_CHANGE = frozenset({"gradient_checkpointing", "save_steps"})
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


class ResumeError(ValueError):
    """The work folder cannot be resumed (or would be silently discarded); the message says what to do."""


def work_dir(out: Path) -> Path:
    """`OUT.work`, a sibling of OUT."""
    return out.with_name(out.name + WORK_SUFFIX)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def run_identity(data: Path, model_spec: str, hyperparameters: dict[str, Any]) -> dict[str, Any]:
    """What a checkpoint must match to be resumed: data content, model, result-changing hyperparameters."""
    return {"data": str(data), "data_sha256": file_sha256(data), "model": model_spec,
            "hyperparameters": {k: v for k, v in sorted(hyperparameters.items()) if k not in RESUME_MAY_CHANGE}}


def latest_checkpoint(work: Path) -> Path | None:
    """The highest `checkpoint-K` whose `trainer_state.json` exists (the Trainer writes it last)."""
    if not work.is_dir():
        return None
    found = [(int(m.group(1)), p) for p in work.iterdir()
             if (m := _CHECKPOINT.match(p.name)) and (p / "trainer_state.json").is_file()]
    return max(found)[1] if found else None


def differences(recorded: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Human-readable `name: was X, now Y` for each field of the identity that changed."""
    out = []
    if recorded.get("data_sha256") != current["data_sha256"]:
        out.append(f"data file content changed ({recorded.get('data')} -> {current['data']})")
    if recorded.get("model") != current["model"]:
        out.append(f"model: was {recorded.get('model')}, now {current['model']}")
    was, now = recorded.get("hyperparameters", {}), current["hyperparameters"]
    for key in sorted(set(was) | set(now)):
        if was.get(key) != now.get(key):
            out.append(f"{key}: was {was.get(key)!r}, now {now.get(key)!r}")
    return out


def prepare_work(work: Path, identity: dict[str, Any], *, resume: bool, overwrite: bool,
                 is_main: bool) -> Path | None:
    """Check the work folder and return the checkpoint to resume from (None: start from the base model).

    Without `resume`, checkpoints of an interrupted run are an error unless
    `overwrite` (they would be thrown away); with it, they must come from the
    same run. Only the main process changes the folder; `record_run` writes
    the identity once training is about to start.
    """
    latest = latest_checkpoint(work)
    if resume and latest is not None:
        recorded_file = work / RUN_FILE
        if not recorded_file.is_file():
            raise ResumeError(f"--resume: {work} has checkpoints but no {RUN_FILE}, so it cannot be checked "
                              "against this run; remove the folder or pass --overwrite without --resume")
        changed = differences(json.loads(recorded_file.read_text(encoding="utf-8")), identity)
        if changed:
            raise ResumeError(f"--resume: {latest} is from a different run: " + "; ".join(changed)
                              + ". Rerun with the interrupted run's data and settings, or drop --resume "
                              "and pass --overwrite to start over")
        return latest
    if latest is not None and not overwrite:
        raise ResumeError(f"{work} holds checkpoints of an interrupted run (latest: {latest.name}); pass "
                          "--resume to continue it, or --overwrite to start over")
    if is_main:
        shutil.rmtree(work, ignore_errors=True)
    return None


def record_run(work: Path, identity: dict[str, Any]) -> None:
    """Write what this run trains, for a later --resume to check (just before training starts)."""
    work.mkdir(parents=True, exist_ok=True)
    (work / RUN_FILE).write_text(json.dumps(identity, indent=1) + "\n", encoding="utf-8")
