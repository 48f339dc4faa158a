"""Output capture: what a command printed, capped, and how it ended (`CommandResult`).

A command may print without end. Every backend (the local sandbox, docker)
keeps only the head and the tail of the merged stdout+stderr in an `OutputCap`,
kills a command that prints past `output_ceiling`, and builds its result with
`command_result`, so both truncate, and say so, alike.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CEILING_FACTOR", "MIN_CEILING", "TRUSTED_OUTPUT_BYTES", "CommandResult", "OutputCap", "command_result",
           "output_ceiling"]

CEILING_FACTOR = 20          # an endless printer is killed after this many times output_bytes ...
MIN_CEILING = 4 << 20        # ... but never before 4 MiB, so a chatty build log is not cut short

#: oec's own commands (a rollout's diff) may print this much before they are refused as too big
TRUSTED_OUTPUT_BYTES = 64 << 20


@dataclass
class CommandResult:
    command: str
    exit_code: int | None           # None when killed by the sandbox
    output: str                     # merged stdout+stderr, truncated with a visible marker
    truncated: bool
    timed_out: bool
    killed_reason: str | None       # "timeout" | "output_limit" | None
    duration_s: float


class OutputCap:
    """Keeps the first and last bytes of a stream within `limit`, counting what falls between."""

    def __init__(self, limit: int) -> None:
        self.head_limit = max(limit, 0) // 2
        self.tail_limit = max(limit, 0) - self.head_limit
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        room = self.head_limit - len(self.head)
        if room > 0:
            self.head += chunk[:room]
            chunk = chunk[room:]
        if chunk:
            self.tail += chunk
            excess = len(self.tail) - self.tail_limit
            if excess > 0:
                del self.tail[:excess]

    @property
    def dropped(self) -> int:
        return self.total - len(self.head) - len(self.tail)

    def text(self) -> str:
        if not self.dropped:
            return (self.head + self.tail).decode("utf-8", errors="replace")
        head = self.head.decode("utf-8", errors="replace")
        tail = self.tail.decode("utf-8", errors="replace")
        return f"{head}\n[... {self.dropped} bytes truncated ...]\n{tail}"


def output_ceiling(cap: OutputCap) -> int:
    """How many bytes a command may print in all before it is killed as an endless printer."""
    return max(CEILING_FACTOR * (cap.head_limit + cap.tail_limit), MIN_CEILING)


def command_result(command: str, cap: OutputCap, reason: str | None, exit_code: int | None, timeout: float,
                   ceiling: int, duration_s: float) -> CommandResult:
    """What every backend returns: the capped output, the same note when the sandbox killed the command."""
    output = cap.text()
    if reason == "timeout":
        output += f"\n[... command timed out after {timeout:g} s; its processes were killed ...]"
    elif reason == "output_limit":
        output += f"\n[... command killed: it printed more than {ceiling} bytes ...]"
    return CommandResult(command=command, exit_code=None if reason else exit_code, output=output,
                         truncated=cap.dropped > 0, timed_out=reason == "timeout", killed_reason=reason,
                         duration_s=duration_s)
