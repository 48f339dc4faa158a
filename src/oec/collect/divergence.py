"""Divergence switching: the expert takes over when the student is seen going off course.

A random switch step spends expert calls on students that were doing fine and
misses the moment a student breaks. Here small typed detectors watch the
rollout after every STUDENT step and, when one fires, the expert takes over at
once (no earlier than `min`, and always by `max`, the cap). Each firing says
why (`Firing`: detector, step, evidence, reason) and is written into the
trajectory, so a report can tell a loop takeover from a broken test.

Spec (`oec collect --switch`), parsed strictly (never code from a string)::

    divergence:DETECTOR[,DETECTOR...][;min=A][,max=B]

    loop[=N]          the same action N times in a row, or the same (action, observation) N times (N >= 2; 3)
    errors[=N]        N format errors or failing commands in a row (N >= 1; 3)
    regression[=K]    a PASS_TO_PASS test that passed at the start fails after a student edit; the tests run
                      at most every K student steps and only when the diff changed (K >= 1; 5)
    judge[=K]         every K student steps the expert is asked whether the student is on track (K >= 1; 5)
    likelihood[=LP]   the expert's mean log-probability of the student's last reply is below LP (LP <= 0; -4)
    oracle            privileged, the task's gold patch: the student edited a file the gold patch does not
                      touch, or removed a line of the fix it had added
    min=A             never switch before A student calls (a firing before that waits for step A)
    max=B             always switch by B student calls (the cap; the record says "cap")

e.g. ``divergence:loop=3,errors=3,regression=5,judge=5,likelihood=-4.0,oracle;min=2,max=30``.

The sampler (`DivergenceSwitch`) is a frozen, picklable value shared by every
rollout of a run (it travels to Ray workers); the per-rollout state lives in a
`DivergenceMonitor`, which the episode calls after each student step and which
records the first firing on `episode.progress.divergence`, where the sampler's
`should_switch` reads it.
"""

from __future__ import annotations

import asyncio
import re
import shlex
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Protocol

from oec.agent.history import Step, render, render_step
from oec.agent.tools import TOOLS, Runner
from oec.collect.episode import Actor, Episode, EpisodeEnd
from oec.collect.records import Firing
from oec.collect.schedules import StudentProgress
from oec.data.filters import find_repetition
from oec.grading.log_parsers import PASSING, parse_pytest_log
from oec.grading.patch_files import PatchParseError, files_touched
from oec.models.base import Message, ModelError

__all__ = [
    "DETECTORS",
    "JUDGE_QUESTION",
    "DivergenceMonitor",
    "DivergenceSwitch",
    "Firing",
    "monitor_for",
    "parse_divergence",
    "parse_verdict",
    "switch_record",
]

#: detector names in the order they run after a step (cheap ones first: a firing skips the costly ones)
DETECTORS = ("loop", "errors", "oracle", "regression", "likelihood", "judge")
_CANONICAL_ORDER = ("loop", "errors", "regression", "judge", "likelihood", "oracle")
_DEFAULTS: dict[str, float] = {"loop": 3, "errors": 3, "regression": 5, "judge": 5, "likelihood": -4.0}
FORMS = ("divergence:DETECTOR[,DETECTOR...][;min=A][,max=B] with detectors loop[=N>=2], errors[=N>=1], "
         "regression[=K>=1], judge[=K>=1], likelihood[=LOGPROB<=0], oracle; "
         "e.g. divergence:loop=3,errors=3,regression=5,judge=5,likelihood=-4.0,oracle;min=2,max=30")


# ----------------------------------------------------------------------------- the sampler


@dataclass(frozen=True)
class DivergenceSwitch:
    """Switch when a detector fires (after `min_step` student calls), or at `max_step` calls whatever happens.

    A detector is on when its setting is not None (`oracle`: True). Values: loop/errors a count, regression
    and judge a period in student steps, likelihood a mean log-probability threshold.
    """

    loop: int | None = None
    errors: int | None = None
    regression: int | None = None
    judge: int | None = None
    likelihood: float | None = None
    oracle: bool = False
    min_step: int = 0
    max_step: int | None = None

    @property
    def detectors(self) -> tuple[str, ...]:
        """The detectors that are on, in canonical order."""
        return tuple(n for n in _CANONICAL_ORDER if (getattr(self, n) is not None and getattr(self, n) is not False))

    @property
    def spec(self) -> str:
        """The canonical spec: detectors in a fixed order, so equal samplers compare equal in run configs."""
        parts = []
        for name in self.detectors:
            value = getattr(self, name)
            parts.append(name if value is True else f"{name}={value:g}" if name == "likelihood" else f"{name}={value}")
        options = ([f"min={self.min_step}"] if self.min_step else []) + (
            [f"max={self.max_step}"] if self.max_step is not None else [])
        return "divergence:" + ",".join(parts) + (";" + ",".join(options) if options else "")

    def plan(self, rng: Any) -> None:
        """Nothing is drawn up front: the switch step depends on what the student does."""

    def should_switch(self, progress: StudentProgress, planned: int | None) -> bool:
        if progress.calls < self.min_step:
            return False
        return progress.divergence is not None or (self.max_step is not None and progress.calls >= self.max_step)


def _bad(spec: str, problem: str) -> ValueError:
    return ValueError(f"--switch {spec!r}: {problem} (forms: {FORMS})")


def _int_at_least(spec: str, name: str, text: str, low: int) -> int:
    if not re.fullmatch(r"\d+", text):
        raise _bad(spec, f"{name}={text} is not a whole number")
    value = int(text)
    if value < low:
        raise _bad(spec, f"{name}={value} must be at least {low}")
    return value


def parse_divergence(spec: str) -> DivergenceSwitch:
    """Parse ``divergence:...`` (grammar in the module docstring); a ValueError names the problem and the forms."""
    text = spec.strip().lower()
    head, colon, body = text.partition(":")
    if head != "divergence":
        raise _bad(spec, "not a divergence spec")
    if not colon or not body.strip():
        raise _bad(spec, "names no detector")
    detector_part, semi, option_part = body.partition(";")
    if semi and not option_part.strip():
        raise _bad(spec, "';' must be followed by min=A and/or max=B")
    settings: dict[str, Any] = {}
    for token in (t.strip() for t in detector_part.split(",")):
        name, eq, value = token.partition("=")
        if name not in _CANONICAL_ORDER:
            raise _bad(spec, f"unknown detector {token!r}" if token else "an empty detector")
        if name in settings:
            raise _bad(spec, f"detector {name} is given twice")
        if eq and not value:
            raise _bad(spec, f"{name}= needs a value")
        if name == "oracle":
            if eq:
                raise _bad(spec, "oracle takes no value")
            settings[name] = True
        elif name == "likelihood":
            if not eq:
                settings[name] = _DEFAULTS[name]
                continue
            if not re.fullmatch(r"[-+]?(\d+(\.\d*)?|\.\d+)", value):
                raise _bad(spec, f"likelihood={value} is not a number")
            if float(value) > 0:
                raise _bad(spec, f"likelihood={value}: a mean log-probability is at most 0")
            settings[name] = float(value)
        else:
            settings[name] = _int_at_least(spec, name, value, 2 if name == "loop" else 1) if eq else int(_DEFAULTS[name])
    options: dict[str, int] = {}
    if semi:
        for token in (t.strip() for t in option_part.split(",")):
            name, eq, value = token.partition("=")
            if name not in ("min", "max") or not eq:
                raise _bad(spec, f"unknown option {token!r}; options are min=A and max=B")
            if name in options:
                raise _bad(spec, f"option {name} is given twice")
            options[name] = _int_at_least(spec, name, value, 0)
    low, high = options.get("min", 0), options.get("max")
    if high is not None and low > high:
        raise _bad(spec, f"min={low} is after max={high}")
    return DivergenceSwitch(**settings, min_step=low, max_step=high)


# ----------------------------------------------------------------------------- what a detector sees


class WatchedEnv(Runner, Protocol):
    """The rollout's environment as detectors use it: run a command, read the diff (both backends have both)."""

    def diff(self) -> str: ...


@dataclass
class Watch:
    """One look at the rollout after a student step: the episode, the env, and the diff read at most once."""

    episode: Episode
    env: WatchedEnv
    step: Step
    _diff: str | None = None

    async def diff(self) -> str:
        if self._diff is None:
            self._diff = await asyncio.to_thread(self.env.diff)
        return self._diff

    @property
    def student_steps(self) -> list[Step]:
        return [s for s in self.episode.steps if s.source == "student"]

    @property
    def calls(self) -> int:
        """Student calls so far (this step included)."""
        return self.episode.progress.calls


class Detector(Protocol):
    """Small and typed: `check` returns a Firing or None; `checks` counts the times it actually looked."""

    name: str
    checks: int

    async def start(self, episode: Episode, env: WatchedEnv) -> None: ...

    async def check(self, watch: Watch) -> Firing | None: ...


@dataclass
class _Base:
    name: str = field(default="", init=False)
    checks: int = field(default=0, init=False)
    extra: Counter[str] = field(default_factory=Counter, init=False)  # more counts for the record: errors, ...

    async def start(self, episode: Episode, env: WatchedEnv) -> None:
        return None


# ----------------------------------------------------------------------------- the detectors


@dataclass
class LoopDetector(_Base):
    """The repetition filter's rule, applied while the student acts: loops are cut before they are paid for."""

    repeat: int = 3

    def __post_init__(self) -> None:
        self.name = "loop"

    async def check(self, watch: Watch) -> Firing | None:
        self.checks += 1
        found = find_repetition(watch.student_steps, self.repeat)
        if found is None:
            return None
        evidence = {"kind": found.kind, "action": found.key[:200], "count": found.count, "first_step": found.first}
        return Firing(detector=self.name, step=watch.step.index, evidence=evidence, reason=found.describe())


def _failed(step: Step) -> bool:
    """A format error, a command that exited non-zero, or one the sandbox killed."""
    if step.format_error is not None:
        return True
    if step.exit_code not in (0, None):
        return True
    return step.exit_code is None and step.action is not None and "[command timed out" in step.observation


@dataclass
class ErrorsDetector(_Base):
    """A student stuck on errors (unparseable replies, failing commands) rarely recovers by itself."""

    limit: int = 3

    def __post_init__(self) -> None:
        self.name = "errors"

    async def check(self, watch: Watch) -> Firing | None:
        self.checks += 1
        run: list[Step] = []
        for step in reversed(watch.student_steps):
            if not _failed(step):
                break
            run.append(step)
        if len(run) < self.limit:
            return None
        run.reverse()
        kinds = ["format" if s.format_error is not None else f"exit {s.exit_code}" for s in run]
        evidence = {"count": len(run), "first_step": run[0].index, "kinds": kinds}
        return Firing(detector=self.name, step=watch.step.index, evidence=evidence,
                      reason=f"{len(run)} failed steps in a row (from step {run[0].index})")


def regression_command(test_ids: list[str]) -> str:
    """Just the given tests, quietly, leaving nothing behind in the tree (no bytecode, no pytest cache);
    -rA makes pytest print a status line per test, which the grader's log parser reads."""
    return "PYTHONDONTWRITEBYTECODE=1 " + shlex.join(
        ["python", "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider", *test_ids])


@dataclass
class RegressionDetector(_Base):
    """A student edit that breaks a test that passed at the start is a wrong turn the student may never see.

    The baseline runs once, before the student's first step (the tree is the base commit then); tests that
    do not pass there (missing, or broken in this environment) are never blamed. Only the task's
    PASS_TO_PASS ids run, at most every `every` student steps and only when the diff changed since the
    last run. These runs are not agent steps and leave no trace in the history.
    """

    every: int = 5
    timeout_s: float = 300.0
    baseline: frozenset[str] = field(default=frozenset(), init=False)
    last_calls: int = field(default=0, init=False)
    last_diff: str = field(default="", init=False)

    def __post_init__(self) -> None:
        self.name = "regression"

    async def _passing(self, env: WatchedEnv, ids: list[str]) -> set[str] | None:
        result = await asyncio.to_thread(env.run, regression_command(ids), timeout_s=self.timeout_s)
        self.checks += 1
        if result.timed_out:
            self.extra["regression_timeouts"] += 1
            return None
        statuses = parse_pytest_log(result.output)
        return {t for t in ids if statuses.get(t) in PASSING}

    async def start(self, episode: Episode, env: WatchedEnv) -> None:
        ids = list(dict.fromkeys(episode.task.PASS_TO_PASS))
        self.baseline = frozenset(await self._passing(env, ids) or ()) if ids else frozenset()
        self.last_diff = await asyncio.to_thread(env.diff)

    async def check(self, watch: Watch) -> Firing | None:
        if not self.baseline or watch.calls - self.last_calls < self.every:
            return None
        diff = await watch.diff()
        if diff == self.last_diff:
            return None
        self.last_calls, self.last_diff = watch.calls, diff
        passing = await self._passing(watch.env, sorted(self.baseline))
        if passing is None:
            return None
        broken = sorted(self.baseline - passing)
        if not broken:
            return None
        evidence = {"broken": broken[:20], "broken_count": len(broken), "baseline_passing": len(self.baseline)}
        return Firing(detector=self.name, step=watch.step.index, evidence=evidence,
                      reason=f"{len(broken)} test(s) that passed at the start now fail: {', '.join(broken[:3])}")


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


def _expert_model(expert: Actor | None, what: str) -> Actor:
    if expert is None:
        raise EpisodeEnd("model_error", f"divergence {what}: there is no expert to ask")
    return expert


@dataclass
class JudgeDetector(_Base):
    """Ask the expert, every `every` student steps, whether the student is on track.

    The expert sees the same history it would act on (its own format and system prompt) plus one question;
    its reply must be ``ON_TRACK`` or ``OFF_TRACK: reason``. Each call is counted and costed in the
    episode's expert usage, like any expert call, so it also counts toward the expert's call and cost caps.
    """

    expert: Actor | None = None
    every: int = 5

    def __post_init__(self) -> None:
        self.name = "judge"

    async def start(self, episode: Episode, env: WatchedEnv) -> None:
        from oec.models.oracle import OracleModel

        expert = _expert_model(self.expert, "judge")
        if isinstance(expert.model, OracleModel):
            raise EpisodeEnd("model_error", "divergence judge: the oracle expert replays the gold patch and "
                                            "cannot judge; use a language-model expert or drop judge")

    async def check(self, watch: Watch) -> Firing | None:
        if watch.calls % self.every:
            return None
        expert = _expert_model(self.expert, "judge")
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


@dataclass
class LikelihoodDetector(_Base):
    """The student's last reply is one the expert would very unlikely write: a cheap sign of a wrong turn.

    Scored with the expert's `mean_logprob(messages, continuation)` (the hf backend; others may add it):
    the history before the step rendered for the expert, and the step's reply as text (a text-format
    student's own words; a native one's rendered as text). Steps without a valid action are left to the
    errors detector. Scoring is a forward pass, not a completion, so it adds no calls to the expert's usage.
    """

    expert: Actor | None = None
    threshold: float = -4.0

    def __post_init__(self) -> None:
        self.name = "likelihood"

    async def start(self, episode: Episode, env: WatchedEnv) -> None:
        expert = _expert_model(self.expert, "likelihood")
        if not callable(getattr(expert.model, "mean_logprob", None)):
            raise EpisodeEnd("model_error", f"divergence likelihood: the expert {expert.spec} gives no "
                                            "log-probabilities (mean_logprob); use an hf: expert or drop likelihood")

    async def check(self, watch: Watch) -> Firing | None:
        step = watch.step
        if step.action is None:
            return None
        expert = _expert_model(self.expert, "likelihood")
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


_HUNK = re.compile(r"^@@ -\d+(?:,(\d+))? \+\d+(?:,(\d+))? @@")


def added_lines(patch: str) -> dict[str, set[str]]:
    """Per file, the stripped lines a unified diff adds that carry code (at least one letter or digit).

    Hunk bodies are read by their header counts, so an added line starting with ``++`` is not a header.
    """
    out: dict[str, set[str]] = {}
    path: str | None = None
    old_left = new_left = 0
    for line in patch.splitlines():
        if old_left > 0 or new_left > 0:
            tag, text = line[:1], line[1:]
            if tag == "+":
                new_left -= 1
                if path is not None and re.search(r"\w", text):
                    out.setdefault(path, set()).add(text.strip())
            elif tag == "-":
                old_left -= 1
            elif tag in (" ", ""):
                old_left, new_left = old_left - 1, new_left - 1
            continue
        if line.startswith("+++ "):
            name = line[4:].split("\t")[0].strip()
            path = None if name == "/dev/null" else (name[2:] if name[:2] in ("a/", "b/") else name)
        elif match := _HUNK.match(line):
            old_left = int(match.group(1)) if match.group(1) is not None else 1
            new_left = int(match.group(2)) if match.group(2) is not None else 1
    return out


@dataclass
class OracleDetector(_Base):
    """Privileged (the task's gold patch): edits outside the files the fix touches, or a fix line undone.

    A gold-added line "undone" is one that was in the student's diff at an earlier check and is gone now.
    Off when the task has no gold patch. Runs only when the diff changed.
    """

    gold_files: frozenset[str] = field(default=frozenset(), init=False)
    gold_added: dict[str, set[str]] = field(default_factory=dict, init=False)
    seen: dict[str, set[str]] = field(default_factory=dict, init=False)
    last_diff: str | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.name = "oracle"

    async def start(self, episode: Episode, env: WatchedEnv) -> None:
        self.gold_files = frozenset(files_touched(episode.task.fix_patch))
        self.gold_added = added_lines(episode.task.fix_patch)

    async def check(self, watch: Watch) -> Firing | None:
        if not self.gold_files:
            return None
        diff = await watch.diff()
        if diff == self.last_diff:
            return None
        self.last_diff = diff
        self.checks += 1
        try:
            touched = files_touched(diff)
        except PatchParseError:  # a diff the parser cannot read names no file it could call stray
            touched = []
        stray = [f for f in touched if f not in self.gold_files]
        if stray:
            return Firing(detector=self.name, step=watch.step.index, evidence={"files": stray[:20]},
                          reason=f"edited {', '.join(stray[:3])}, which the gold patch does not touch")
        now = added_lines(diff)
        undone: dict[str, list[str]] = {}
        for path, gold in self.gold_added.items():
            present = gold & now.get(path, set())
            lost = self.seen.get(path, set()) - present
            if lost:
                undone[path] = sorted(lost)[:10]
            self.seen.setdefault(path, set()).update(present)
        if undone:
            count = sum(len(v) for v in undone.values())
            return Firing(detector=self.name, step=watch.step.index, evidence={"undone": undone},
                          reason=f"removed {count} line(s) of the fix it had added, in {', '.join(undone)}")
        return None


# ----------------------------------------------------------------------------- the per-rollout monitor


def _detectors(switch: DivergenceSwitch, expert: Actor | None) -> list[Detector]:
    made: dict[str, Detector] = {}
    if switch.loop is not None:
        made["loop"] = LoopDetector(repeat=switch.loop)
    if switch.errors is not None:
        made["errors"] = ErrorsDetector(limit=switch.errors)
    if switch.oracle:
        made["oracle"] = OracleDetector()
    if switch.regression is not None:
        made["regression"] = RegressionDetector(every=switch.regression)
    if switch.likelihood is not None:
        made["likelihood"] = LikelihoodDetector(expert=expert, threshold=switch.likelihood)
    if switch.judge is not None:
        made["judge"] = JudgeDetector(expert=expert, every=switch.judge)
    return [made[n] for n in DETECTORS if n in made]


class DivergenceMonitor:
    """One rollout's detectors (a `StepObserver` of the episode): run them after each student step until one
    fires, and leave the first firing on `episode.progress.divergence` for `DivergenceSwitch.should_switch`.

    A detector that raises (a sandbox hiccup, a model error) does not end the rollout: it is counted as
    ``<name>_failed`` and the others go on. After the first firing nothing more runs (no extra cost).
    """

    def __init__(self, switch: DivergenceSwitch, expert: Actor | None) -> None:
        self.switch = switch
        self.detectors = _detectors(switch, expert)
        self.failed: Counter[str] = Counter()

    async def start(self, episode: Episode, env: WatchedEnv) -> None:
        """Set each detector up (the regression baseline runs here). A detector that cannot work with this
        expert ends the rollout with its reason (EpisodeEnd); one whose setup breaks is dropped and counted."""
        usable = []
        for detector in self.detectors:
            try:
                await detector.start(episode, env)
            except EpisodeEnd:
                raise
            except Exception:  # noqa: BLE001 - e.g. the sandbox failed the baseline run: go on without it
                self.failed[f"{detector.name}_failed"] += 1
                continue
            usable.append(detector)
        self.detectors = usable

    async def after_student_step(self, episode: Episode, step: Step, env: WatchedEnv) -> None:
        if episode.progress.divergence is not None:
            return
        watch = Watch(episode, env, step)
        for detector in self.detectors:
            try:
                firing = await detector.check(watch)
            except EpisodeEnd:
                raise
            except Exception:  # noqa: BLE001 - a broken check is no evidence; the rollout goes on
                self.failed[f"{detector.name}_failed"] += 1
                continue
            if firing is not None:
                episode.progress.divergence = firing
                return

    def checks(self) -> dict[str, int]:
        """How often each detector looked, plus its error counts (for the trajectory's divergence_checks)."""
        counts: dict[str, int] = {d.name: d.checks for d in self.detectors}
        for detector in self.detectors:
            counts.update(getattr(detector, "extra", {}))
        counts.update(self.failed)
        return counts


def monitor_for(switch: object, expert: Actor | None) -> DivergenceMonitor | None:
    """The rollout's monitor when it switches on divergence, else None (other samplers need none)."""
    return DivergenceMonitor(switch, expert) if isinstance(switch, DivergenceSwitch) else None


def switch_record(episode: Episode) -> tuple[Firing | None, dict[str, int]]:
    """What the trajectory records: the firing (or "cap" when the cap handed over with none) and the checks.

    A firing is recorded even when the switch never came (the student submitted before `min`), so the
    record says what was seen; `switch_step` says whether the expert acted.
    """
    monitor = episode.observer
    if not isinstance(monitor, DivergenceMonitor):
        return None, {}
    firing = episode.progress.divergence
    if firing is None and episode.switch_step is not None:
        cap = monitor.switch.max_step
        if cap is None or cap > episode.call_cap("student"):
            cap = episode.call_cap("student")  # the student's call cap handed over (Episode.next_actor)
        firing = Firing(detector="cap", step=episode.switch_step, evidence={"max": cap},
                        reason=f"no detector fired in {episode.switch_step} student steps; the cap (max={cap}) "
                               "handed over")
    return firing, monitor.checks()
