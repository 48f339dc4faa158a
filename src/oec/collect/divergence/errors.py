"""`errors`: N format errors or failing commands in a row."""

from __future__ import annotations

from dataclasses import dataclass

from oec.agent.history import Step
from oec.collect.divergence.watch import Counts, Watch
from oec.collect.records import Firing


def failed(step: Step) -> bool:
    """A format error, a command that exited non-zero, or one the sandbox killed."""
    if step.format_error is not None:
        return True
    if step.exit_code not in (0, None):
        return True
    return step.exit_code is None and step.action is not None and "[command timed out" in step.observation


@dataclass
class ErrorsDetector(Counts):
    """A student stuck on errors (unparseable replies, failing commands) rarely recovers by itself."""

    name = "errors"
    limit: int = 3

    async def check(self, watch: Watch) -> Firing | None:
        self.checks += 1
        run: list[Step] = []
        for step in reversed(watch.student_steps):
            if not failed(step):
                break
            run.append(step)
        if len(run) < self.limit:
            return None
        run.reverse()
        kinds = ["format" if s.format_error is not None else f"exit {s.exit_code}" for s in run]
        evidence = {"count": len(run), "first_step": run[0].index, "kinds": kinds}
        return Firing(detector=self.name, step=watch.step.index, evidence=evidence,
                      reason=f"{len(run)} failed steps in a row (from step {run[0].index})")
