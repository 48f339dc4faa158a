"""`judge`: every K student steps the expert is asked whether the student is on track."""

from __future__ import annotations

import re
from dataclasses import dataclass

from oec.agent.history import render
from oec.agent.tools import TOOLS
from oec.collect.divergence.watch import Counts, Watch, WatchedEnv, expert_for
from oec.collect.episode import Actor, Episode, EpisodeEnd
from oec.collect.records import Firing
from oec.models.base import Message, ModelError

JUDGE_QUESTION = (
    "Pause: do not run a command or call a tool now. You are reviewing the work above as an expert software "
    "engineer. Is the agent on track to resolve the issue? Answer with exactly one line and nothing else: "
    "ON_TRACK, or OFF_TRACK: followed by a short reason."
)
_VERDICT = re.compile(r"(ON_TRACK)|OFF_TRACK:[ \t]*(\S[^\n]{0,299})")


def parse_verdict(text: str) -> tuple[bool, str] | None:
    """(on_track, reason) from a judge's reply, or None unless the whole reply is one well-formed line.

    Strict on purpose: a rambling answer is no evidence, and an unparseable one never fires.
    """
    match = _VERDICT.fullmatch(text.strip())
    if match is None:
        return None
    return (True, "") if match.group(1) else (False, match.group(2).strip())


@dataclass
class JudgeDetector(Counts):
    """Ask the expert, every `every` student steps, whether the student is on track.

    The expert sees the same history it would act on (its own format and system prompt) plus one question;
    its reply must be ``ON_TRACK`` or ``OFF_TRACK: reason``. Each call is counted and costed in the
    episode's expert usage, like any expert call, so it also counts toward the expert's call and cost caps.
    """

    name = "judge"
    expert: Actor | None = None
    every: int = 5

    async def start(self, episode: Episode, env: WatchedEnv) -> None:
        from oec.models.oracle import OracleModel

        expert = expert_for(self.expert, "judge")
        if isinstance(expert.model, OracleModel):
            raise EpisodeEnd("model_error", "divergence judge: the oracle expert replays the gold patch and "
                                            "cannot judge; use a language-model expert or drop judge")

    async def check(self, watch: Watch) -> Firing | None:
        if watch.calls % self.every:
            return None
        expert = expert_for(self.expert, "judge")
        spent = watch.episode.usage.get(expert.role)
        if spent is not None and spent.calls >= watch.episode.limits.max_calls_per_model:
            self.extra["judge_over_budget"] += 1  # the expert's calls are spent: asking would pass its cap
            return None
        messages = render(watch.episode.task, watch.episode.steps, expert.format, expert.system_prompt)
        messages.append(Message(role="user", content=JUDGE_QUESTION))
        self.checks += 1
        try:
            completion = await expert.model.complete(messages, TOOLS if expert.format == "native" else None)
        except ModelError:
            self.extra["judge_errors"] += 1
            return None
        watch.episode.add_usage(expert, completion.usage)
        verdict = parse_verdict(completion.text) if not completion.tool_calls else None
        if verdict is None:
            self.extra["judge_unparsed"] += 1
            return None
        on_track, reason = verdict
        if on_track:
            return None
        return Firing(detector=self.name, step=watch.step.index, evidence={"answer": completion.text.strip()[:500]},
                      reason=f"the expert judged the student off track: {reason}")
