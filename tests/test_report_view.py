"""`oec view`: the report opens in headless Chromium without console errors and shows what the run holds.

Chromium (Debian's `chromium`) is started by the test: `--dump-dom` gives the
DOM after the page's script ran, `--enable-logging=stderr` prints every
console message and uncaught exception, and `--screenshot` shows what a
person would see. A canary page with a deliberate error proves the console
check can fail, so a silent change in Chromium's logging cannot make it pass.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import ClassVar

import pytest
from typer.testing import CliRunner

from oec.agent.actions import Action
from oec.agent.formats import render_text
from oec.agent.history import Step
from oec.cli import app
from oec.collect.records import ModelUsage, Trajectory
from oec.collect.run_dir import RunDir
from oec.data.filters import apply_filters, repetition, resolved
from oec.eval.evaluate import EvalSummary
from oec.grading.grader import GradeResult, TestGroup
from oec.models.base import Usage
from oec.report import write_report

HOSTILE = '<script>window.__pwned = 1; console.error("pwned")</script></pre><img src=x onerror="console.error(2)">'
PATCH = ("diff --git a/calc/__init__.py b/calc/__init__.py\n--- a/calc/__init__.py\n+++ b/calc/__init__.py\n"
         "@@ -1,2 +1,2 @@\n def add(a, b):\n-    return a - b\n+    return a + b\n")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run",
                  "--disable-component-update", "--disable-sync", "--hide-scrollbars"]
CONSOLE_LINE = re.compile(r":CONSOLE[:(\]]")


def bash(command: str) -> Action:
    return Action(tool="bash", arguments={"command": command})


def step(index: int, source: str, action: Action | None, observation: str = "", error: str | None = None) -> Step:
    fmt = "text" if source == "student" else "native"
    raw = "I will just think out loud" if action is None else (render_text("look", action) if fmt == "text" else "look")
    return Step(index=index, source=source, model="hf:tiny" if source == "student" else "oracle", format=fmt,
                raw_text=raw, thought="look" if action else "", action=action, observation=observation,
                format_error=error, exit_code=0 if action else None, usage=Usage(prompt_tokens=100, completion_tokens=10))


def trajectory(instance: str, strategy: str, sources: list[str], *, switch: int | None = None, solved: bool = False,
               patch: str = "", actions: list[Action | None] | None = None, observations: list[str] | None = None
               ) -> Trajectory:
    actions = actions or [bash(f"ls {i}") for i in range(len(sources))]
    observations = observations or [f"out {i}" for i in range(len(sources))]
    steps = [step(i, src, act, obs, None if act else "no action") for i, (src, act, obs)
             in enumerate(zip(sources, actions, observations))]
    reward = GradeResult(
        instance_id=instance, resolved=solved, status="resolved" if solved else "unresolved",
        tests={"tests/test_calc.py::test_add": "PASSED" if solved else "FAILED", "tests/test_calc.py::test_mul": "PASSED"},
        fail_to_pass=TestGroup(**({"success": ["tests/test_calc.py::test_add"]} if solved
                                  else {"failure": ["tests/test_calc.py::test_add"]})),
        pass_to_pass=TestGroup(success=["tests/test_calc.py::test_mul"]), test_cmd="python -m pytest -rA",
        status_source="report", dropped={} if solved else {"<b>conftest.py": "test infrastructure"})
    usage = {}
    if "student" in sources:
        usage["student"] = ModelUsage(spec="hf:tiny", calls=sources.count("student"), prompt_tokens=100, cost_usd=None)
    if "expert" in sources:
        usage["expert"] = ModelUsage(spec="oracle", calls=sources.count("expert"), prompt_tokens=200, cost_usd=0.5)
    return Trajectory(id=f"{instance}/{strategy}/0", instance_id=instance, strategy=strategy, sample_index=0,
                      run_seed=0, seed=1, student="hf:tiny", expert="oracle", switch_step=switch, steps=steps,
                      patch=patch, reward=reward, usage=usage, exit_reason="submitted")


def make_run(collect: Path) -> list[Trajectory]:
    """bc, on-policy (with a format error and a hostile observation), oec switched at k=2 (resolved), oec k=0."""
    runs = [
        trajectory("acme__calc-1", "bc", ["expert"] * 3, switch=0),
        trajectory("acme__calc-1", "on-policy", ["student"] * 3, actions=[bash("cat x"), None, bash("ls")],
                   observations=[HOSTILE, "", "a\nb"]),
        trajectory("acme__calc-2", "oec", ["student", "student", "expert", "expert"], switch=2, solved=True,
                   patch=PATCH, actions=[bash("ls"), bash("ls"),
                                         Action(tool="str_replace_editor", arguments={
                                             "command": "str_replace", "path": "calc/__init__.py",
                                             "old_str": "return a - b", "new_str": "return a + b"}),
                                         Action(tool="submit")]),
        trajectory("acme__calc-3", "oec", ["expert"] * 2, switch=0),
    ]
    run_dir = RunDir(collect)
    run_dir.open()
    for t in runs:
        run_dir.append(t)
    report = apply_filters(runs, [resolved(), repetition(3)])
    (collect / "filter_report.json").write_text(json.dumps(report.to_json()))
    return runs


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail("Debian's chromium is not installed: run `make test` (it installs it), "
                    "or apt-get install -y chromium")
    return path


def run_chromium(tmp_path: Path, url: str, *extra: str) -> subprocess.CompletedProcess[str]:
    profile = tmp_path / f"chromium-profile-{len(list(tmp_path.glob('chromium-profile-*')))}"
    return subprocess.run([chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *extra, url],
                          check=False, capture_output=True, text=True, timeout=180)


def load(tmp_path: Path, page: Path) -> tuple[str, list[str]]:
    """The DOM after the page's scripts ran, and every console message Chromium logged."""
    result = run_chromium(tmp_path, page.as_uri(), "--enable-logging=stderr", "--v=0", "--dump-dom")
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout, [line for line in result.stderr.splitlines() if CONSOLE_LINE.search(line)]


class Outline(HTMLParser):
    """Each trajectory entry, and the ordered children of its .turns box (turns and switch markers)."""

    VOID: ClassVar[set[str]] = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}

    def __init__(self) -> None:
        super().__init__()
        self.entries: dict[str, list[tuple[str, dict[str, str | None]]]] = {}
        self.scripts = 0
        self.html_attrs: dict[str, str | None] = {}
        self.urls: list[str] = []
        self._entry: str | None = None
        self._depth = 0
        self._turns_depth: int | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        classes = (a.get("class") or "").split()
        self.urls += [v or "" for k, v in attrs if k in ("src", "href")]
        if tag == "html":
            self.html_attrs = a
        if tag == "script":
            self.scripts += 1
        if tag == "details" and "traj" in classes:
            self._entry = a["data-id"] or ""
            self.entries[self._entry] = []
        if self._turns_depth is not None and self._depth == self._turns_depth + 1 and self._entry:
            self.entries[self._entry].append((tag, a))
        if tag == "div" and "turns" in classes:
            self._turns_depth = self._depth
        if tag not in self.VOID:
            self._depth += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in self.VOID:
            return
        self._depth -= 1
        if self._turns_depth is not None and self._depth == self._turns_depth:
            self._turns_depth = None


def outline(html: str) -> Outline:
    parser = Outline()
    parser.feed(html)
    return parser


@pytest.fixture
def report(tmp_path: Path) -> tuple[Path, list[Trajectory]]:
    collect = tmp_path / "run"
    runs = make_run(collect)
    return write_report(collect), runs


def test_console_check_catches_errors(tmp_path: Path) -> None:
    """The canary: if Chromium stopped logging console errors this way, the real check would be vacuous."""
    page = tmp_path / "broken.html"
    page.write_text("<html><body><script>console.error('canary'); notDefined();</script></body></html>")
    _, console = load(tmp_path, page)
    text = "\n".join(console)
    assert "canary" in text and "Uncaught" in text


def test_report_opens_without_errors_and_shows_the_run(report: tuple[Path, list[Trajectory]], tmp_path: Path) -> None:
    path, runs = report
    dom, console = load(tmp_path, path)
    assert console == [], "console messages while loading the report:\n" + "\n".join(console)
    page = outline(dom)
    assert page.html_attrs.get("data-ready") == "1", "the page's script did not run to its end"
    assert len(page.entries) == len(runs)
    assert set(page.entries) == {t.id for t in runs}
    assert page.scripts == 1  # ours; the hostile observation's <script> stayed text

    children = page.entries["acme__calc-2/oec/0"]  # switched at k=2
    kinds = ["marker" if "switch-marker" in (a.get("class") or "") else a.get("data-source") for _, a in children]
    assert kinds == ["student", "student", "marker", "expert", "expert"]
    before, marker, after = children[1][1], children[2][1], children[3][1]
    assert (before["data-index"], before["data-source"]) == ("1", "student")
    assert marker["data-switch-step"] == "2"
    assert (after["data-index"], after["data-source"]) == ("2", "expert")
    # an OEC rollout where the expert acted from the start is marked before its first turn; bc is not marked
    assert "switch-marker" in (page.entries["acme__calc-3/oec/0"][0][1].get("class") or "")
    assert not any("switch-marker" in (a.get("class") or "") for _, a in page.entries["acme__calc-1/bc/0"])

    shot = tmp_path / "report.png"
    result = run_chromium(tmp_path, path.as_uri() + "#open=traj-2", "--window-size=1280,3000",
                          f"--screenshot={shot}")
    assert result.returncode == 0 and shot.is_file(), result.stderr[-3000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert (int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")) == (1280, 3000)
    assert len(data) > 30_000
    from matplotlib.image import imread

    pixels = imread(str(shot))
    assert pixels.std() > 0.05  # not a blank page


def test_report_escapes_text_and_needs_no_network(report: tuple[Path, list[Trajectory]]) -> None:
    path, _ = report
    html = path.read_text()
    assert "window.__pwned" in html
    assert "<script>window.__pwned" not in html and "<img src=x" not in html
    assert "&lt;script&gt;window.__pwned = 1; console.error(&quot;pwned&quot;)&lt;/script&gt;" in html
    page = outline(html)
    assert page.urls and all(u.startswith(("data:", "#")) for u in page.urls)
    assert "Content-Security-Policy" in html and "default-src 'none'" in html


def test_report_content(report: tuple[Path, list[Trajectory]]) -> None:
    path, _ = report
    html = path.read_text()
    assert html.count('<img alt="') >= 3  # by strategy, by switch step, length by source
    assert "filtered out: resolved" in html and "not resolved (unresolved)" in html  # filter report and why
    assert '<span class="add">+    return a + b</span>' in html  # the final patch as a coloured diff
    assert '<td class="PASSED">PASSED</td>' in html and "FAIL_TO_PASS" in html  # per-test grading
    assert "statuses from the report" in html and "left out of the graded patch" in html  # what grading dropped
    assert "<code>&lt;b&gt;conftest.py</code></td><td>test infrastructure" in html
    assert 'class="format-error"' in html  # the on-policy rollout's invalid reply
    assert "$ ls 0" in html and "str_replace_editor <b>str_replace</b>" in html
    assert "<details class=\"observation\">" in html
    assert "hf:tiny" in html and "unknown" in html and "$1.5000" in html  # usage: cost unknown for the student


def test_oec_run_dir_with_evaluations_and_shift(tmp_path: Path) -> None:
    """An `oec run` folder: RUN/collect, RUN/eval/<label>/eval.json, RUN/shift.json are all picked up."""
    make_run(tmp_path / "run" / "collect")
    for label, k in (("base", 1), ("trained", 3)):
        folder = tmp_path / "run" / "eval" / label
        folder.mkdir(parents=True)
        (folder / "eval.json").write_text(EvalSummary(model="m", label=label, n=5, resolved=k, rate=k / 5,
                                                      ci_low=0.1, ci_high=0.9).model_dump_json())
    (tmp_path / "run" / "shift.json").write_text(json.dumps({
        "student_strategy": "on-policy", "expert_strategy": "bc", "tasks": 3, "method": {"ridge": "1e-3"},
        "turns": [{"turn": 0, "n_student": 3, "n_expert": 3, "frechet": 0.1, "frechet_ci": [0.05, 0.2],
                   "kl": 1.0, "kl_ci": [0.5, 2.0]}]}))
    result = CliRunner().invoke(app, ["view", str(tmp_path / "run"), "--out", str(tmp_path / "r.html")])
    assert result.exit_code == 0, result.output
    html = (tmp_path / "r.html").read_text()
    assert "<h2>evaluations</h2>" in html and "trained" in html
    assert "covariate shift (on-policy vs bc" in html
    assert html.count('<img alt="') == 5


def test_view_says_what_is_missing(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["view", str(tmp_path)])
    assert result.exit_code == 2
    assert "trajectories.jsonl" in result.output


def test_switch_criteria_are_tabled_side_by_side(tmp_path: Path) -> None:
    """`oec view RUN --compare OTHER` puts each switch criterion's numbers in one table."""
    uniform = trajectory("acme__calc-2", "oec", ["student", "expert", "expert"], switch=1, solved=True)
    uniform.switch_criterion = "uniform:0-3"
    diverged = trajectory("acme__calc-2", "oec", ["student", "student", "expert"], switch=2)
    diverged.switch_criterion = "divergence:loop=2"
    for name, t in (("uniform", uniform), ("divergence", diverged)):
        run = RunDir(tmp_path / name)
        run.open()
        run.append(t)
    result = CliRunner().invoke(app, ["view", str(tmp_path / "uniform"), "--compare", str(tmp_path / "divergence"),
                                      "--out", str(tmp_path / "r.html")])
    assert result.exit_code == 0, result.output
    html = (tmp_path / "r.html").read_text()
    section = html[html.index("<h2>switch criteria</h2>"):html.index("<h2>", html.index("<h2>switch criteria</h2>") + 5)]
    assert "uniform:0-3" in section and "divergence: divergence:loop=2" in section
    assert "100.0%" in section and "0.0%" in section  # resolve rates, one per criterion
