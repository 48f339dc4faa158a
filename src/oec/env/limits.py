"""`SandboxLimits`: what a sandbox bounds for every command, shared by the local and the docker backends.

Its own module so the parts that enforce the limits (`oec.env.cgroups`,
`oec.env.launch`) can take it without importing the sandbox that uses them.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SandboxLimits"]


@dataclass(frozen=True)
class SandboxLimits:
    timeout_s: float = 300.0        # wall clock per command; the whole process tree is killed
    output_bytes: int = 100_000     # cap on captured output (stdout+stderr merged)
    memory_mb: int = 4096           # address-space / memory cap
    max_processes: int = 256        # fork-bomb guard
