"""`likelihood`: the expert's mean log-probability of the student's last reply is below a threshold."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from oec.agent.history import render, render_step
from oec.collect.divergence.watch import Counts, Watch, WatchedEnv, expert_for
from oec.collect.episode import Actor, Episode, EpisodeEnd
from oec.collect.records import Firing
from oec.models.base import ModelError


@dataclass
class LikelihoodDetector(Counts):
    """The student's last reply is one the expert would very unlikely write: a cheap sign of a wrong turn.

    Scored with the expert's `mean_logprob(messages, continuation)` (the hf backend; others may add it):
    the history before the step rendered for the expert, and the step's reply as text (a text-format
    student's own words; a native one's rendered as text). Steps without a valid action are left to the
    errors detector. Scoring is a forward pass, not a completion, so it adds no calls to the expert's usage.
    """

    name = "likelihood"
    expert: Actor | None = None
    threshold: float = -4.0

    async def start(self, episode: Episode, env: WatchedEnv) -> None:
        expert = expert_for(self.expert, "likelihood")
        if not callable(getattr(expert.model, "mean_logprob", None)):
            raise EpisodeEnd("model_error", f"divergence likelihood: the expert {expert.spec} gives no "
                                            "log-probabilities (mean_logprob); use an hf: expert or drop likelihood")

    async def check(self, watch: Watch) -> Firing | None:
        step = watch.step
        if step.action is None:
            return None
        expert = expert_for(self.expert, "likelihood")
        history = [s for s in watch.episode.steps if s.index < step.index]
        messages = render(watch.episode.task, history, expert.format, expert.system_prompt)
        text = render_step(step, "text")[0].content
        if not text.strip():
            return None
        self.checks += 1
        try:
            score = await asyncio.to_thread(expert.model.mean_logprob, messages, text)  # type: ignore[attr-defined]
        except (ModelError, ValueError):  # too long for the expert's context, or nothing to score
            self.extra["likelihood_errors"] += 1
            return None
        if score >= self.threshold:
            return None
        return Firing(detector=self.name, step=step.index,
                      evidence={"mean_logprob": round(score, 4), "threshold": self.threshold},
                      reason=f"the expert's mean log-probability of the reply is {score:.2f} < {self.threshold:g}")
