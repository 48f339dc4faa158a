"""`oec synth`: SWE-smith-style tasks from any Python repository with a test suite.

modifiers (libcst, one transformer per bug family) -> candidates (functions x sites, seeded order, deduplicated)
-> validate (sandboxed test runs: clean twice, then with the bug) -> rows (bug commit as base_commit, the fix as
`patch`, a statement from the failing tests) ; state (resumable JSONL), bugrepo (where bug commits live),
split (function-disjoint train/held-out), runner (one repository end to end).
"""
