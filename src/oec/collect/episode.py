"""One rollout: the student acts until the switch, then the expert continues from the same history.

Control flow by exceptions that carry the exit reason, as in mini-swe-agent:
the loop below is the whole algorithm; everything it calls does one job.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Protocol

from oec.agent.actions import FormatError
from oec.agent.formats import ActionFormat, parse
from oec.agent.history import Source, Step, render
from oec.agent.prompts import SYSTEM_PROMPTS
from oec.agent.tools import TOOLS, Runner, execute
from oec.collect.records import Firing, ModelUsage
from oec.collect.schedules import StudentProgress, SwitchSampler
from oec.models.base import Completion, Model, ModelError, Usage
from oec.tasks.model import Task


@dataclass(frozen=True)
class Actor:
    """A model in a role, with the format and system prompt it is shown the history in."""

    role: Source
    spec: str
    model: Model

    @property
    def format(self) -> ActionFormat:
        return "native" if self.model.native_tools else "text"

    @property
    def system_prompt(self) -> str:
        return SYSTEM_PROMPTS[self.format]


@dataclass(frozen=True)
class EpisodeLimits:
    max_calls_per_model: int = 75
    max_student_calls: int | None = None  # a tighter cap for the student (small CPU runs); None = max_calls_per_model
    max_steps: int = 150
    max_cost_usd: float | None = None
    max_observation_chars: int = 10_000
    #: end the rollout after this many format errors in a row (SWE-agent's requery limit); None = never.
    #: A student an expert will take over from (OEC) is left to its switch.
    max_format_errors: int | None = None


class StepObserver(Protocol):
    """Watches the student while it acts (divergence detectors): may run checks in the env and call models
    (adding their usage with `Episode.add_usage`). It signals nothing by itself: the episode asks it for a
    verdict after each student step and keeps the first firing."""

    async def start(self, episode: Episode, env: Runner) -> None: ...

    async def verdict(self, episode: Episode, step: Step, env: Runner) -> Firing | None: ...


class EpisodeEnd(Exception):
    def __init__(self, reason: str, detail: str | None = None) -> None:
        super().__init__(reason)
        self.reason, self.detail = reason, detail


@dataclass
class Episode:
    task: Task
    student: Actor | None
    expert: Actor | None
    switch: SwitchSampler | None  # None: the student never hands over (on-policy)
    planned_switch: int | None = None
    limits: EpisodeLimits = field(default_factory=EpisodeLimits)
    steps: list[Step] = field(default_factory=list)
    switch_step: int | None = None
    usage: dict[str, ModelUsage] = field(default_factory=dict)
    progress: StudentProgress = field(default_factory=StudentProgress)
    detail: str | None = None  # why the episode ended, beyond its reason
    observer: StepObserver | None = None  # asked after each student step, before the next switch decision
    firing: Firing | None = None  # the observer's first firing (divergence switching), kept by the episode

    async def run(self, env: Runner) -> str:
        """Act until submitted or a limit; return the exit reason (the patch is the env's diff)."""
        try:
            if self.observer is not None:
                await self.observer.start(self, env)
            while True:
                if self.switch_due():
                    self.hand_over()
                actor = self.current_actor()
                self.check_limits(actor)
                messages = render(self.task, self.steps, actor.format, actor.system_prompt)
                step = self.record(actor, await self.call(actor, messages))
                await self.run_action(step, env)
                if actor.role == "student":
                    await self.watch(step, env)
        except EpisodeEnd as end:
            self.detail = end.detail
            return end.reason

    def switch_due(self) -> bool:
        """Whether the expert takes over before the next call (a query: it changes nothing).

        A rollout without a student (bc) hands over at once, one without a sampler (on-policy) never; else
        the sampler decides, given the monitor's firing. In an OEC rollout the student's call cap is the last
        point of hand-over: a switch that depends on what the student spends (tokens, cost, divergence
        without `max`) and has not fired by then switches there, rather than the rollout ending with no
        expert turn (caps that cut off a switch known up front are refused at start, see
        `check_switch_fits`)."""
        if self.switch_step is not None:
            return False
        if self.student is None:
            return True
        if self.switch is None:
            return False
        return self.switch.should_switch(self.progress, self.planned_switch, self.firing) or self._student_at_cap()

    def hand_over(self) -> None:
        """Record the switch: the expert acts from this step on, for good (the episode ends without one)."""
        if self.expert is None:
            raise EpisodeEnd("call_limit", "no expert to hand over to")
        self.switch_step = len(self.steps)

    def current_actor(self) -> Actor:
        """The student before the switch, the expert from it on."""
        actor = self.student if self.switch_step is None else self.expert
        assert actor is not None, "switch_due hands over when there is no student, and only to an expert"
        return actor

    async def run_action(self, step: Step, env: Runner) -> None:
        """Run the step's action (if it parsed) and keep what it printed; a submit ends the episode."""
        if step.action is None:
            return
        observation = await asyncio.to_thread(
            execute, step.action, env, max_observation_chars=self.limits.max_observation_chars)
        step.observation, step.exit_code = observation.text, observation.exit_code
        if observation.submitted:
            raise EpisodeEnd("submitted")

    async def watch(self, step: Step, env: Runner) -> None:
        """Ask the observer for its verdict on a student step and keep the first firing (then stop asking)."""
        if self.observer is not None and self.firing is None:
            self.firing = await self.observer.verdict(self, step, env)

    def call_cap(self, role: Source) -> int:
        """How many calls `role` may make in this rollout."""
        cap = self.limits.max_calls_per_model
        if role == "student" and self.limits.max_student_calls is not None:
            cap = min(cap, self.limits.max_student_calls)
        return cap

    def _student_at_cap(self) -> bool:
        return self.expert is not None and self.progress.calls >= self.call_cap("student")

    def check_limits(self, actor: Actor) -> None:
        if len(self.steps) >= self.limits.max_steps:
            raise EpisodeEnd("step_limit")
        cap = self.call_cap(actor.role)
        if self.usage.get(actor.role, ModelUsage(spec=actor.spec)).calls >= cap:
            raise EpisodeEnd("call_limit", f"{actor.role} made {cap} calls")
        streak = self.format_error_streak(actor.role)
        if (self.limits.max_format_errors is not None and streak >= self.limits.max_format_errors
                and not self._expert_takes_over(actor)):
            raise EpisodeEnd("format_errors", f"{streak} replies in a row held no valid action")
        spent = sum(u.cost_usd or 0.0 for u in self.usage.values())
        if self.limits.max_cost_usd is not None and spent >= self.limits.max_cost_usd:
            raise EpisodeEnd("cost_limit", f"spent ${spent:.4f}")

    def _expert_takes_over(self, actor: Actor) -> bool:
        """Whether an expert will take over from this student in this rollout (OEC): its switch, not a
        format-error streak, ends the student's turn."""
        return actor.role == "student" and self.expert is not None and self.switch is not None

    def format_error_streak(self, role: Source) -> int:
        """How many of `role`'s last steps in a row failed to parse (a model that never writes an action
        would otherwise spend its whole call budget on replies nothing runs). An expert taking over from a
        lost student starts at 0."""
        streak = 0
        for step in reversed(self.steps):
            if step.action is not None or step.source != role:
                break
            streak += 1
        return streak

    async def call(self, actor: Actor, messages: list) -> Completion:
        try:
            return await actor.model.complete(messages, TOOLS if actor.format == "native" else None)
        except ModelError as exc:
            raise EpisodeEnd("context" if exc.kind == "context_length" else "model_error", str(exc)) from exc
        except Exception as exc:  # a backend bug (not a ModelError) ends this rollout, not the run
            raise EpisodeEnd("model_error", f"other: {type(exc).__name__}: {exc}") from exc

    def record(self, actor: Actor, completion: Completion) -> Step:
        """Append the step for this completion (parsed, or with its format error) and count its usage."""
        step = Step(index=len(self.steps), source=actor.role, model=actor.spec, format=actor.format,
                    raw_text=completion.text, usage=completion.usage, latency_s=completion.latency_s)
        try:
            step.thought, step.action = parse(completion, actor.format)
        except FormatError as exc:
            step.format_error = str(exc)
        self.steps.append(step)
        self.add_usage(actor, completion.usage)
        if actor.role == "student":
            self.progress.calls += 1
            self.progress.tokens += completion.usage.prompt_tokens + completion.usage.completion_tokens
            self.progress.cost_usd += completion.usage.cost_usd or 0.0
        return step

    def add_usage(self, actor: Actor, used: Usage) -> None:
        """Count one call of `actor` (a step, or a side call such as a divergence judge's) toward its usage."""
        usage = self.usage.setdefault(actor.role, ModelUsage(spec=actor.spec))
        usage.calls += 1
        usage.prompt_tokens += used.prompt_tokens
        usage.completion_tokens += used.completion_tokens
        usage.cost_usd = None if used.cost_usd is None or usage.cost_usd is None else usage.cost_usd + used.cost_usd
