"""One trajectory as HTML: turns in order, the switch marked, the patch as a diff, the grading.

Every piece of text that came from a model, a repository or a test log goes
through `esc` (html.escape with quotes): observations hold arbitrary code,
including `<script>` tags, and the report must show them, never run them.
"""

from __future__ import annotations

import difflib
import json
from html import escape
from typing import Any

from oec.agent.actions import Action
from oec.agent.history import Step
from oec.collect.records import Trajectory
from oec.grading.grader import GradeResult
from oec.report.summary import source_counts

#: an observation longer than this is cut in the page (the agent already truncates what models see)
MAX_OBSERVATION_CHARS = 50_000
MAX_PATCH_CHARS = 200_000


def esc(value: object) -> str:
    return escape(str(value), quote=True)


def pre(text: str, cls: str = "") -> str:
    return f'<pre class="{esc(cls)}">{esc(text)}</pre>' if cls else f"<pre>{esc(text)}</pre>"


def clip(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n... [{len(text) - limit} more characters not shown]"


def render_diff(patch: str, headers: bool = True) -> str:
    """A unified diff with added, removed, hunk and file lines coloured apart (`headers`: a git diff, not an edit)."""
    lines = []
    for line in clip(patch, MAX_PATCH_CHARS).splitlines():
        if headers and line.startswith(("+++", "---", "diff ", "index ", "new file", "deleted file", "similarity", "rename ")):
            cls = "meta"
        elif headers and line.startswith("@@"):
            cls = "hunk"
        elif line.startswith("+"):
            cls = "add"
        elif line.startswith("-"):
            cls = "del"
        else:
            cls = "ctx"
        lines.append(f'<span class="{cls}">{esc(line) or " "}</span>')
    return '<pre class="diff">' + "".join(lines) + "</pre>"


def _edit_diff(old: str, new: str) -> str:
    """An editor str_replace as a small line diff: unchanged lines as context, the rest as -/+."""
    a, b = old.splitlines(), new.splitlines()
    body: list[str] = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if tag == "equal":
            body.extend(f" {line}" for line in a[i1:i2])
        else:
            body.extend(f"-{line}" for line in a[i1:i2])
            body.extend(f"+{line}" for line in b[j1:j2])
    return render_diff("\n".join(body), headers=False)


def render_action(action: Action) -> str:
    """A bash command as a shell line; an editor call as its command, path and edit; anything else as JSON."""
    args = dict(action.arguments)
    if action.tool == "bash":
        return '<div class="action-label">bash</div>' + pre("$ " + str(args.get("command", "")), "action bash")
    if action.tool == "str_replace_editor":
        command = str(args.pop("command", "?"))
        path = str(args.pop("path", ""))
        head = f'<div class="action-label">str_replace_editor <b>{esc(command)}</b> <code>{esc(path)}</code>'
        extras = []
        if "view_range" in args:
            extras.append(f"lines {esc(args.pop('view_range'))}")
        if "insert_line" in args:
            extras.append(f"after line {esc(args.pop('insert_line'))}")
        head += (" · " + ", ".join(extras) if extras else "") + "</div>"
        body = ""
        if command == "str_replace" and ("old_str" in args or "new_str" in args):
            body = _edit_diff(str(args.pop("old_str", "")), str(args.pop("new_str", "")))
        elif command == "insert" and "new_str" in args:
            body = _edit_diff("", str(args.pop("new_str")))
        elif command == "create" and "file_text" in args:
            body = pre(str(args.pop("file_text")), "action")
        if args:
            body += pre(json.dumps(args, indent=1, ensure_ascii=False, default=str), "action")
        return head + body
    if action.tool == "submit" and not args:
        return '<div class="action-label">submit</div>'
    return f'<div class="action-label">{esc(action.tool)}</div>' + pre(
        json.dumps(args, indent=1, ensure_ascii=False, default=str), "action")


def render_step(step: Step) -> str:
    usage = step.usage
    facts = [f"step {step.index}", esc(step.model), esc(step.format),
             f"{usage.prompt_tokens}+{usage.completion_tokens} tokens", f"{step.latency_s:.2f}s"]
    if step.exit_code is not None:
        facts.append(f"exit {step.exit_code}")
    parts = [f'<section class="turn {esc(step.source)}" data-source="{esc(step.source)}" data-index="{step.index}">',
             f'<div class="turn-head"><span class="badge {esc(step.source)}">{esc(step.source.upper())}</span>'
             + " · ".join(facts) + "</div>"]
    if step.action is None:
        parts.append('<div class="action-label">reply (no valid action)</div>' + pre(step.raw_text or "(empty)"))
    else:
        if step.thought.strip():
            parts.append(f'<div class="thought">{esc(step.thought.strip())}</div>')
        parts.append(render_action(step.action))
    if step.format_error:
        parts.append(f'<div class="format-error"><b>format error:</b> {esc(step.format_error)}</div>')
    if step.observation:
        lines = step.observation.count("\n") + 1
        parts.append(f"<details class=\"observation\"><summary>observation ({lines} lines, "
                     f"{len(step.observation)} chars)</summary>{pre(clip(step.observation, MAX_OBSERVATION_CHARS))}"
                     "</details>")
    parts.append("</section>")
    return "".join(parts)


def switch_marker(trajectory: Trajectory) -> str:
    k = trajectory.switch_step
    what = "expert from the start" if k == 0 else f"after {k} student step{'s' if k != 1 else ''}"
    return (f'<div class="switch-marker" data-switch-step="{k}" role="separator">'
            f"&#x21e3; switch to expert at step {k} ({what}) &#x21e3;</div>")


def shows_switch(trajectory: Trajectory) -> bool:
    """Mark the switch on OEC rollouts, and wherever a student hands over to an expert mid-rollout."""
    if trajectory.switch_step is None:
        return False
    return trajectory.strategy == "oec" or trajectory.switch_step > 0


def render_grading(reward: GradeResult | None) -> str:
    if reward is None:
        return '<p class="muted">not graded</p>'
    group = {t: "FAIL_TO_PASS" for t in reward.fail_to_pass.success + reward.fail_to_pass.failure}
    group.update({t: "PASS_TO_PASS" for t in reward.pass_to_pass.success + reward.pass_to_pass.failure})
    facts = [f"status <b>{esc(reward.status)}</b>"]
    if reward.apply_method:
        facts.append(f"patch applied with {esc(reward.apply_method)}")
    if reward.status_source:
        facts.append(f"statuses from the {esc(reward.status_source)}")
    facts.append(f"{reward.duration_s:.1f}s")
    out = ["<p>" + " · ".join(facts) + "</p>"]
    if reward.reason:
        out.append(pre(reward.reason))
    if reward.dropped:
        rows = "".join(f"<tr><td><code>{esc(path)}</code></td><td>{esc(why)}</td></tr>"
                       for path, why in reward.dropped.items())
        out.append('<div class="action-label">left out of the graded patch</div>'
                   f'<table class="grading"><tr><th>file</th><th>why</th></tr>{rows}</table>')
    if reward.test_cmd:
        out.append('<div class="action-label">test command</div>' + pre(reward.test_cmd))
    if reward.tests:
        rows = "".join(f"<tr><td><code>{esc(test)}</code></td><td>{esc(group.get(test, '-'))}</td>"
                       f'<td class="{esc(status)}">{esc(status)}</td></tr>' for test, status in reward.tests.items())
        out.append(f'<table class="grading"><tr><th>test</th><th>group</th><th>status</th></tr>{rows}</table>')
    if reward.log_excerpt:
        out.append(f"<details><summary>test log (last {len(reward.log_excerpt)} chars)</summary>"
                   f"{pre(reward.log_excerpt)}</details>")
    return "".join(out)


def render_trajectory(trajectory: Trajectory, drop: tuple[str, str] | None, filtered: bool, anchor: str) -> str:
    """A collapsible entry (element id `anchor`, so report.html#anchor opens it); data-* attributes feed the filters."""
    student, expert = source_counts(trajectory)
    resolved = "yes" if trajectory.resolved else "no"
    kept = "" if not filtered else ("no" if drop else "yes")
    outcome = "resolved" if trajectory.resolved else (trajectory.reward.status if trajectory.reward else "not graded")
    badges = [f'<span class="badge strategy">{esc(trajectory.strategy)}</span>',
              f'<span class="badge {"resolved" if trajectory.resolved else "unresolved"}">{esc(outcome)}</span>']
    if drop:
        badges.append(f'<span class="badge dropped" title="{esc(drop[1])}">filtered out: {esc(drop[0])}</span>')
    switch = f" · switch k={trajectory.switch_step}" if shows_switch(trajectory) else ""
    head = (f"<summary>{''.join(badges)} <b>{esc(trajectory.instance_id)}</b> #{trajectory.sample_index}"
            f' · <span class="c-student">{student} student</span> + '
            f'<span class="c-expert">{expert} expert</span> steps{switch} · exit {esc(trajectory.exit_reason)}'
            "</summary>")
    body: list[str] = []
    facts: dict[str, Any] = {"id": trajectory.id, "student": trajectory.student, "expert": trajectory.expert,
                             "switch criterion": trajectory.switch_criterion, "planned switch": trajectory.planned_switch,
                             "seed": trajectory.seed, "started": trajectory.started_at}
    body.append('<p class="muted">' + " · ".join(f"{esc(k)}: {esc(v)}" for k, v in facts.items() if v not in (None, ""))
                + "</p>")
    if drop:
        body.append(f'<p><span class="badge dropped">filtered out</span> by <b>{esc(drop[0])}</b>: {esc(drop[1])}</p>')
    if trajectory.error:
        body.append('<div class="format-error"><b>error:</b> ' + esc(trajectory.error) + "</div>")
    return _assemble(trajectory, head, body, resolved, kept, anchor)


def _assemble(trajectory: Trajectory, head: str, preamble: list[str], resolved: str, kept: str, anchor: str) -> str:
    """The turns in order, with the switch marker written just before the first expert turn."""
    turns: list[str] = []
    marker_pending = shows_switch(trajectory)
    for step in trajectory.steps:
        if marker_pending and step.index == trajectory.switch_step:
            turns.append(switch_marker(trajectory))
            marker_pending = False
        turns.append(render_step(step))
    if marker_pending:  # the switch was planned at the very end: nothing after it, mark it last
        turns.append(switch_marker(trajectory))
    patch = render_diff(trajectory.patch) if trajectory.patch.strip() else '<p class="muted">no patch</p>'
    return (f'<details class="traj" id="{esc(anchor)}" data-id="{esc(trajectory.id)}" data-strategy="{esc(trajectory.strategy)}" '
            f'data-resolved="{resolved}" data-kept="{kept}" '
            f'data-switch="{"" if trajectory.switch_step is None else trajectory.switch_step}">'
            f'{head}<div class="traj-body">{"".join(preamble)}<h3>turns</h3><div class="turns">{"".join(turns)}</div>'
            f"<h3>final patch</h3>{patch}<h3>grading</h3>{render_grading(trajectory.reward)}</div></details>")
