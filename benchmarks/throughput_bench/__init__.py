"""Rollout throughput of oec's collection path against a model server with a fixed latency per call.

Run it through its entry script, from the repository root (see benchmarks/README.md):

    .venv/bin/python benchmarks/throughput.py [--quick] [--latency 1.0] [--concurrency 1,8,32,64] [--json PATH]

What it does:

1. Starts a scripted OpenAI-compatible chat-completions server in its own
   process (asyncio, raw HTTP/1.1 with keep-alive; it serves hundreds of
   connections at once and only sleeps, so it is never the bottleneck). It
   stands in for a GPU model server: every call answers after exactly
   ``--latency`` seconds, with a native tool call of a fixed script (``ls``,
   ``grep -n def -r .``, a ``python -c`` that writes a file, then ``submit``):
   the same number of calls in every rollout, no format errors, and a real
   patch for the grader.
2. Runs ``bc`` rollouts (that server as the expert, ``openai:NAME`` through
   oec's own OpenAI backend) on the bundled suite through
   ``oec.collect.runner.collect``: real workspaces, the real sandbox
   (bubblewrap where it works), a real run directory, and grading ON as in a
   real run, then again with ``RolloutConfig(grade=False)`` (a zero-overhead
   client would not grade). Each concurrency level runs ``--waves`` rollouts
   per slot (tasks repeated with sample indices).
3. Prints per level: rollouts, wall seconds, rollouts per minute, the latency
   bound and the ratio to it, where the bound is what a zero-overhead client
   would reach with the same slots::

       bound = N / (ceil(N / c) * calls * latency) * 60   rollouts per minute

   (= c * 60 / (calls * latency) when c divides N, and capped by the N
   rollouts in flight when N <= c). PASS/FAIL against the target, ratio >=
   0.8 at concurrency 32, is printed for both grading modes (the bound knows
   nothing of grading, so the graded ratio shows what grading costs). A
   second table says where the time goes: setup, sandbox commands and
   queueing, grading, client vs server call time, event-loop lag, and CPU
   per rollout (with the other users of the machine, who skew it all).
4. Measures the per-command sandbox overhead: the same command run N times
   through ``Sandbox.run`` and through plain ``subprocess.run(["bash", "-c",
   cmd])`` (same workspace, same minimal environment, interleaved), with the
   mean milliseconds and their ratio.
5. Unless ``--quick`` or ``--no-experiments``: other client setups at
   c = 32, applied inside this process only (an option passed, the loop's
   executor replaced), never in src/, to show what the shipped choices are
   worth (see benchmarks/README.md):

   ``--model-slots cli``           ModelOptions' default of 8 model slots, which
                                   `oec collect` used before it passed
                                   max_concurrency = --concurrency;
   ``--threads N|auto``            the event loop's default thread pool (where
                                   ``asyncio.to_thread`` runs every sandbox
                                   command, workspace and grading) sized N
                                   (auto: c + 4) instead of asyncio's
                                   min(32, cpus + 4);
   ``--grading-slots concurrency`` as many gradings at once as rollouts,
                                   instead of one per core.

   The flags also apply to the main table when given.

``--json PATH`` writes every number printed. ``main(argv)`` returns the same
dict (the smoke test calls it).

The modules, one job each, in the order a run uses them:

- ``script``: the scripted agent (the four tool calls) and the target;
- ``server``: the scripted OpenAI-compatible server and its child-process handle;
- ``measure``: CPU accounting (cgroup cpuacct, rusage, /proc/stat) and event-loop lag;
- ``levels``: one concurrency level through ``collect()`` and its row of numbers;
- ``run``: the levels, the waves, the other client setups and the verdicts;
- ``sandbox_overhead``: Sandbox.run against plain subprocess.run, per command;
- ``report``: the tables;
- ``cli``: the options and ``main``.

Nothing here imports oec or rich at import time: the server process (``--serve``) needs neither.
"""
