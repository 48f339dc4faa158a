"""The scripted agent every rollout follows, and the target the benchmark is judged by.

Kept apart because both the server (which answers with these calls) and the client side (which
checks that every rollout made exactly these calls) read it.
"""

from __future__ import annotations

from typing import Any

#: the scripted agent: one model call per entry, the last one submits; the python step writes a file, so
#: every rollout has a real (new-file) patch for the grader to apply before it runs the task's tests
SCRIPT: list[tuple[str, dict[str, Any]]] = [
    ("bash", {"command": "ls"}),
    ("bash", {"command": "grep -n def -r ."}),
    ("bash", {"command": "python -c \"open('bench_note.txt', 'w').write('written by the benchmark\\n')\""}),
    ("submit", {}),
]
CALLS_PER_ROLLOUT = len(SCRIPT)
TARGET_CONCURRENCY = 32
TARGET_RATIO = 0.8
MODEL_NAME = "bench-expert"
#: oec's ModelOptions default, which `oec collect` / `oec eval` / `oec run` use as is
CLI_MODEL_SLOTS = 8
