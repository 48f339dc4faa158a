#!/usr/bin/env bash
# The CPU miniature of the method's comparison (configs/miniature-cpu.toml): synthesize its tasks from the
# bundled projects, split them by function into train / validation / held-out, then run the experiment.
# Every step resumes when rerun. Pass extra `oec experiment` options through, e.g. --arms base,bc,oec.
set -euo pipefail
cd "$(dirname "$0")/.."
OEC=${OEC:-.venv/bin/oec}
TASKS=runs/miniature/tasks
mkdir -p "$TASKS"
"$OEC" synth --bundled --kinds early_return,invert_condition --locate --out "$TASKS/all.jsonl" -j 2
# held-out: a quarter of the tasks, no function shared with the rest; validation: a fifth of the rest, likewise
"$OEC" synth-split "$TASKS/all.jsonl" --held-out 0.25 --by function --seed 0 \
    --train-out "$TASKS/pool.jsonl" --held-out-out "$TASKS/held-out.jsonl"
"$OEC" synth-split "$TASKS/pool.jsonl" --held-out 0.2 --by function --seed 1 \
    --train-out "$TASKS/train-all.jsonl" --held-out-out "$TASKS/validation.jsonl"
# collection covers every training task once (the data budget, 111 trajectories, is all of them)
cp "$TASKS/train-all.jsonl" "$TASKS/train.jsonl"
"$OEC" experiment configs/miniature-cpu.toml "$@"
