"""The bundled suite in a real docker engine, as SWE-bench and SWE-smith rows: collect, grade and eval.

Images are built here (`docker_images`): one per bundled project with its
repository (every task's base commit in it) at /testbed, like SWE-bench's; and,
for rows in SWE-smith's published shape (no base_commit, no test_patch, `patch`
the bug), one per task holding only the clean tree with its tests, like
SWE-smith's. `make test` starts the engine; without one these tests fail and say
why.
"""

from __future__ import annotations

import json
from pathlib import Path

import docker_images
import pytest
from typer.testing import CliRunner

from oec.cli import app
from oec.env.docker_backend import DockerSession
from oec.grading.patch_files import reverse_patch
from oec.tasks.bundled import (
    PROJECTS_DIR,
    bundled_repos_dir,
    commit_all,
    copy_project_tree,
    git,
    init_repo,
    load_bundled_tasks,
)
from oec.tasks.model import Task

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::oec.env.sandbox.SandboxWarning")]
BUNDLED = load_bundled_tasks()
#: SWE-smith-shaped rows are built for these (one image each)
SWESMITH_CHOICE = ("oec-bundled__textkit-1", "oec-bundled__calc-3")


def run_cli(*args: object) -> tuple[int, str]:
    result = CliRunner().invoke(app, [str(a) for a in args])
    return result.exit_code, result.output


@pytest.fixture(scope="module")
def swebench_rows(engine, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled suite as a task file whose rows name an image per project (the repository at /testbed)."""
    repos = bundled_repos_dir()
    suffix = repos.name.rsplit("-", 1)[-1]  # the suite's content hash: a changed suite gets new images
    images = {}
    for task in BUNDLED:
        if task.repo not in images:
            tag = f"oec-test-{task.repo_dirname.lower().replace('__', '-')}:{suffix}"
            images[task.repo] = docker_images.repository_image(engine, tag, repos / task.repo_dirname)
    path = tmp_path_factory.mktemp("rows") / "swebench.jsonl"
    path.write_text("".join(task.model_copy(update={"image_name": images[task.repo]}).model_dump_json() + "\n"
                            for task in BUNDLED))
    return path


def _swesmith_row(engine, task: Task, workdir: Path) -> Task:
    """The task as SWE-smith publishes one: an image of the clean tree with every test, and the bug as `patch`."""
    project = task.repo.split("/", 1)[1]
    clean = workdir / f"clean-{task.instance_id}"
    init_repo(clean)
    copy_project_tree(PROJECTS_DIR / project, clean)
    git(clean, "apply", "--whitespace=nowarn", "-", stdin=task.test_patch)  # the deciding tests are in the repo
    head = commit_all(clean, f"Clean tree of {project}")
    name = f"oec-bundled__{project}.{head[:8]}"
    tag = docker_images.repository_image(engine, f"oec-test-swesmith-{project}-{task.instance_id.rsplit('-', 1)[1]}:"
                                                 f"{head[:12]}", clean)
    return Task.model_validate({
        "instance_id": f"{name}.func_pm_{task.instance_id.rsplit('-', 1)[1]}", "repo": f"swesmith/{name}",
        "image_name": tag, "patch": reverse_patch(task.patch), "problem_statement": task.problem_statement,
        "FAIL_TO_PASS": task.FAIL_TO_PASS, "PASS_TO_PASS": task.PASS_TO_PASS})


@pytest.fixture(scope="module")
def swesmith_rows(engine, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Task]]:
    workdir = tmp_path_factory.mktemp("swesmith")
    rows = [_swesmith_row(engine, task, workdir) for task in BUNDLED if task.instance_id in SWESMITH_CHOICE]
    path = workdir / "swesmith.jsonl"
    # as published: no base_commit and no test_patch keys at all
    path.write_text("".join(json.dumps(row.model_dump(exclude={"base_commit", "test_patch"}, exclude_none=True)) + "\n"
                            for row in rows))
    return path, rows


def _graded(tmp_path: Path, rows: Path, patch: str, name: str) -> list[dict]:
    out = tmp_path / f"{name}.json"
    code, output = run_cli("grade", rows, "--env", "docker", "--patch", patch, "--out", out, "--jobs", "2")
    assert code == 0, output
    return json.loads(out.read_text())


def test_the_bundled_suite_grades_in_docker_as_it_does_locally(swebench_rows: Path, tmp_path: Path) -> None:
    gold = _graded(tmp_path, swebench_rows, "gold", "gold")
    assert len(gold) == 18 and all(r["resolved"] for r in gold), [r["reason"] for r in gold if not r["resolved"]]
    assert all(r["status_source"] == "report" for r in gold)
    empty = _graded(tmp_path, swebench_rows, "empty", "empty")
    assert sum(r["resolved"] for r in empty) == 0 and all(r["status"] == "unresolved" for r in empty)


def test_collect_and_eval_in_docker_with_predictions_the_grader_agrees_with(swebench_rows: Path,
                                                                             tmp_path: Path) -> None:
    chosen = tmp_path / "three.jsonl"
    chosen.write_text("".join(swebench_rows.read_text().splitlines(keepends=True)[:3]))
    run = tmp_path / "run"
    code, output = run_cli("collect", chosen, "--env", "docker", "--strategy", "bc", "--expert", "oracle",
                           "--out", run, "--concurrency", "2")
    assert code == 0, output
    records = [json.loads(line) for line in (run / "trajectories.jsonl").read_text().splitlines()]
    assert len(records) == 3 and all(r["reward"]["resolved"] for r in records), [r["error"] for r in records]

    first = Task.model_validate_json(chosen.read_text().splitlines()[0])
    script = tmp_path / "student.json"  # a student that writes the gold fix with git apply, then submits
    script.write_text(json.dumps([f"Fix.\n```bash\ncat > /tmp/fix.diff <<'EOF'\n{first.patch}EOF\n"
                                  "git apply /tmp/fix.diff\n```", "Done.\n<function=submit>\n</function>"]))
    one = tmp_path / "one.jsonl"
    one.write_text(chosen.read_text().splitlines(keepends=True)[0])
    predictions = tmp_path / "predictions.jsonl"
    code, output = run_cli("eval", "--model", f"scripted:@{script}", "--tasks", one, "--env", "docker",
                           "--out", tmp_path / "eval", "--predictions-out", predictions, "--max-calls", "3")
    assert code == 0, output
    summary = json.loads((tmp_path / "eval" / "eval.json").read_text())
    assert summary["n"] == 1 and summary["resolved"] == 1, output
    (row,) = [json.loads(line) for line in predictions.read_text().splitlines()]
    assert row["instance_id"] == first.instance_id and row["model_name_or_path"] == f"scripted:@{script}"
    regraded = _graded(tmp_path, one, str(predictions), "regraded")
    assert regraded[0]["resolved"]  # the predictions file grades the same


def test_swesmith_rows_load_as_published_and_grade_from_the_clean_image(swesmith_rows, tmp_path: Path) -> None:
    path, rows = swesmith_rows
    code, output = run_cli("tasks", "validate", path, "--no-leaks")
    assert code == 0, output
    gold = _graded(tmp_path, path, "gold", "gold")  # gold: the published patch (the bug), reversed
    assert all(r["resolved"] for r in gold), [(r["reason"], r["log_excerpt"][-500:]) for r in gold]
    empty = _graded(tmp_path, path, "empty", "empty")
    assert not any(r["resolved"] for r in empty)
    assert all(t in r["tests"] and r["tests"][t] == "FAILED" for r, row in zip(empty, rows) for t in row.FAIL_TO_PASS)


def test_the_agent_starts_from_the_bug_without_the_failing_tests_and_no_history(swesmith_rows) -> None:
    _, rows = swesmith_rows
    row = rows[0]
    test_file = row.FAIL_TO_PASS[0].split("::")[0]
    with DockerSession.open(row) as session:
        assert session.run(f"test -e {test_file} || echo gone").output.strip() == "gone"
        assert session.run("git log --all --format=%s").output.split("\n")[0] == "oec: task start"
        assert session.run("git log --all --oneline | wc -l").output.strip() == "1"
        assert session.run("git status --short").output.strip() == ""
        fixed_line = [l[1:] for l in row.fix_patch.splitlines() if l.startswith("+") and not l.startswith("+++")][0]
        blobs = session.run("for o in $(git cat-file --batch-all-objects --batch-check='%(objectname) %(objecttype)'"
                            " | awk '$2==\"blob\"{print $1}'); do git cat-file -p $o; done").output
        assert fixed_line.strip() not in blobs  # the clean tree's version of the buggy file is gone
    with DockerSession.open(row, purpose="grading") as grading:
        assert grading.run(f"test -e {test_file} && echo back").output.strip() == "back"


def test_the_oracle_fixes_swesmith_rows_in_docker(swesmith_rows, tmp_path: Path) -> None:
    path, rows = swesmith_rows
    code, output = run_cli("collect", path, "--env", "docker", "--strategy", "bc", "--expert", "oracle",
                           "--out", tmp_path / "run", "--concurrency", "2")
    assert code == 0, output
    records = [json.loads(line) for line in (tmp_path / "run" / "trajectories.jsonl").read_text().splitlines()]
    assert len(records) == len(rows) and all(r["reward"]["resolved"] for r in records), \
        [(r["error"], r["reward"] and r["reward"]["reason"]) for r in records]


def test_time_per_graded_rollout_locally_and_in_docker(swebench_rows: Path, tmp_path: Path) -> None:
    """Not a target, a figure for the record: the mean grading time per rollout of each backend, one at a time."""
    times = {}
    for env in ("local", "docker"):
        out = tmp_path / f"{env}.json"
        code, output = run_cli("grade", swebench_rows, "--env", env, "--patch", "gold", "--out", out, "--jobs", "1")
        assert code == 0, output
        results = json.loads(out.read_text())
        assert all(r["resolved"] for r in results)
        times[env] = sum(r["duration_s"] for r in results) / len(results)
    print(f"\nmean seconds per graded rollout (18 gold patches, one at a time): local {times['local']:.2f}, "
          f"docker {times['docker']:.2f}")
