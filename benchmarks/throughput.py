"""Rollout throughput of oec's collection path against a model server with a fixed latency per call.

Run from the repository root:

    .venv/bin/python benchmarks/throughput.py                      # the normal run (about 7 minutes on 2 cores)
    .venv/bin/python benchmarks/throughput.py --quick              # a short run (one wave per level)
    .venv/bin/python benchmarks/throughput.py --latency 1.0 --concurrency 1,8,32,64 --json results.json

The benchmark itself is the package next to this file, ``benchmarks/throughput_bench/``: its
``__init__`` says what a run does and which module does what (see also benchmarks/README.md). This
script only makes that package importable and runs its ``main``; it is also the model server's
process (``--serve``, internal). ``main(argv)`` returns every number (the smoke test calls it).
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:  # loaded by path (the smoke test) rather than run as a script
    sys.path.insert(0, _HERE)

from throughput_bench.cli import main, parse_args
from throughput_bench.levels import Variant, latency_bound, run_level, split_rollouts
from throughput_bench.script import CALLS_PER_ROLLOUT, SCRIPT, TARGET_CONCURRENCY, TARGET_RATIO

__all__ = ["CALLS_PER_ROLLOUT", "SCRIPT", "TARGET_CONCURRENCY", "TARGET_RATIO", "Variant", "latency_bound", "main",
           "parse_args", "run_level", "split_rollouts"]

if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
