"""`oec synth`: SWE-smith-style tasks from a Python repository; `oec synth-split`: a function-disjoint split."""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from pathlib import Path
from typing import Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from oec.cli.common import console, fail, load_task_source, report_errors
from oec.cli.execution import IsolationOption, check_isolation


def _write_jsonl(rows: list[dict], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    os.replace(tmp, out)


def _bucket(value: int, edges: tuple[int, ...]) -> str:
    for low, high in zip(edges, edges[1:]):
        if low <= value < high:
            return str(low) if high == low + 1 else f"{low}-{high - 1}"
    return f"{edges[-1]}+"


def difficulty_spread(rows: list) -> dict[str, dict[str, int]]:
    """How the tasks spread over F2P counts and changed lines (proxies for difficulty), per kind too."""
    spread: dict[str, Counter] = {"fail_to_pass": Counter(), "lines_changed": Counter(), "kind": Counter()}
    for row in rows:
        meta = (row.model_extra or {}).get("synth", {})
        spread["fail_to_pass"][_bucket(meta.get("f2p", 0), (1, 2, 4, 11))] += 1
        spread["lines_changed"][_bucket(meta.get("lines_changed", 0), (1, 2, 3, 6))] += 1
        spread["kind"][meta.get("kind", "?")] += 1
    return {name: dict(sorted(counter.items())) for name, counter in spread.items()}


def synth_command(
    repo_dirs: Optional[list[Path]] = typer.Argument(None, help="git repositories with a test suite (their HEAD "
                                                               "is the clean commit)"),
    out: Path = typer.Option(..., "--out", help="tasks.jsonl to write; its folder gets repos/, the state file "
                                                "and the report"),
    bundled: bool = typer.Option(False, "--bundled", help="also every bundled project (the suite's clean trees)"),
    test_cmd: Optional[str] = typer.Option(None, "--test-cmd", help="command that runs the tests (default: "
                                           "python -m pytest -rA -p no:cacheprovider, the whole suite)"),
    max_candidates: Optional[int] = typer.Option(None, "--max", help="candidates tried per repository"),
    kinds: Optional[str] = typer.Option(None, "--kinds", help="comma-separated families (default: all): "
                                        "op_swap, compare_swap, off_by_one, invert_condition, remove_statement, "
                                        "remove_branch, swap_args, change_constant, change_default, early_return"),
    seed: int = typer.Option(0, "--seed", help="order of candidates"),
    concurrency: int = typer.Option(min(4, os.cpu_count() or 1), "--concurrency", "-j",
                                    help="candidates validated at once"),
    writer: Optional[str] = typer.Option(None, "--writer", help="MODEL_SPEC that writes issue-style statements "
                                         "(default: a template from the failing tests)"),
    locate: bool = typer.Option(False, "--locate", help="the statement also names the function and file the bug "
                                "is in (an easier task family, for small students)"),
    python_env: Optional[str] = typer.Option(None, "--python-env", help="bin folder of the venv the tests need"),
    commit: str = typer.Option("HEAD", "--commit", help="the clean commit of each repository"),
    isolation: IsolationOption = "auto",
    timeout: Optional[float] = typer.Option(None, "--timeout", help="seconds per candidate's test run "
                                            "(default: 10x the clean run, at least 10)"),
) -> None:
    """Inject procedural bugs into each repository's functions, keep those that break tests, write task rows.

    Resumable: rerun the same command after a kill; finished candidates are read from OUT's folder.
    """
    from oec.synth.runner import SynthConfig
    from oec.synth.state import StateFile

    check_isolation(isolation)
    sources = _sources(repo_dirs, bundled)
    out_dir = out.parent
    config = SynthConfig(kinds=_chosen_kinds(kinds), seed=seed, max_candidates=max_candidates,
                         concurrency=concurrency, test_cmd=test_cmd, python_env=python_env,
                         isolation=isolation, writer=writer, locate=locate, commit=commit, timeout_s=timeout)  # type: ignore[arg-type]
    state = StateFile(out_dir / (out.name + ".state.jsonl"))
    started = time.monotonic()
    results = _synth_all(sources, out_dir, config, state)
    rows = [row for result in results for row in result.rows]
    _write_jsonl([row.model_dump(exclude_none=True) for row in rows], out)
    elapsed = time.monotonic() - started
    counts = _Counts.of(results)
    table = counts.table()
    table.caption = (f"not run: {dict(counts.generation) or 'none'} (same diff twice, or no longer compiles); "
                     f"{counts.reused} outcome(s) reused from {state.path.name}")
    console.print(table, width=max(console.width, 132))
    rate = sum(r.new_valid for r in results) / (elapsed / 60) if elapsed else 0.0
    spread = difficulty_spread(rows)
    validated = counts.candidates - counts.reused
    validated_s = sum(r.validated_seconds for r in results)
    console.print(f"difficulty spread: F2P tests {spread['fail_to_pass']}; lines changed {spread['lines_changed']}",
                  soft_wrap=True)
    console.print(f"{len(rows)} task(s) -> {out}; bug commits in {out_dir / 'repos'} "
                  f"(grade with --repos {out_dir / 'repos'}); {elapsed:.0f}s, {validated} candidate(s) validated"
                  + (f" ({validated / validated_s * 60:.0f}/min)" if validated and validated_s else "")
                  + f", {rate:.1f} new task(s)/min overall", soft_wrap=True)
    report = {
        "tasks": len(rows), "candidates": counts.candidates, "valid": counts.totals["valid"], "reused": counts.reused,
        "dropped": {r: counts.totals[r] for r in counts.all_reasons if counts.totals[r]},
        "not_run": dict(counts.generation), "per_kind": {k: dict(v) for k, v in counts.per_kind.items()},
        "difficulty": spread, "seconds": round(elapsed, 1), "tasks_per_minute": round(rate, 2),
        "validation_seconds": round(validated_s, 1), "validated": validated,
        "repos": [{"repo": r.repo, "path": str(r.repo_path), "clean_commit": r.baseline.commit,
                   "tests_passing": len(r.baseline.passing), "flaky": r.baseline.flaky,
                   "clean_run_s": r.baseline.duration_s} for r in results],
    }
    (out_dir / (out.name + ".report.json")).write_text(json.dumps(report, indent=1), encoding="utf-8")


def _chosen_kinds(kinds: str | None) -> tuple[str, ...]:
    """--kinds as a tuple of known families (all by default); an unknown one is an error naming the known."""
    from oec.synth.modifiers import KINDS

    chosen = tuple(k.strip() for k in kinds.split(",") if k.strip()) if kinds else tuple(KINDS)
    unknown = [k for k in chosen if k not in KINDS]
    if unknown:
        raise fail(f"--kinds: unknown {', '.join(unknown)}; known: {', '.join(KINDS)}")
    return chosen


def _sources(repo_dirs: list[Path] | None, bundled: bool) -> list[Path]:
    """The repositories to synthesize from: those named, plus the bundled projects with --bundled."""
    sources = [Path(p) for p in repo_dirs or []]
    if bundled:
        from oec.tasks.bundled import bundled_repos_dir

        sources += sorted(p for p in bundled_repos_dir().iterdir() if p.is_dir())
    if not sources:
        raise fail("name at least one REPO_DIR, or --bundled")
    for source in sources:
        if not source.is_dir():
            raise fail(f"{source}: not a directory")
    return sources


def _synth_all(sources: list[Path], out_dir: Path, config: object, state: object) -> list:
    """Synthesize from each repository in turn, one progress bar each; Ctrl-C keeps what finished."""
    from oec.synth.runner import synth_repo

    results = []
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("valid {task.fields[valid]}"), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        for source in sources:
            bar = progress.add_task(f"{source.name}: preparing", total=None, valid=0)

            def on_start(repo: str, n: int, bar=bar) -> None:
                progress.update(bar, description=f"{repo}: validating", total=n)

            def on_done(outcome, bar=bar) -> None:
                valid = progress.tasks[bar].fields["valid"] + (outcome.status == "valid")
                progress.update(bar, advance=1, valid=valid)

            try:
                results.append(synth_repo(source, out_dir, config, state, on_start=on_start, on_done=on_done))
            except KeyboardInterrupt:
                console.print(f"[yellow]interrupted: finished candidates are in {state.path}; rerun to continue[/]")
                raise typer.Exit(130) from None
            except Exception as exc:
                raise fail(f"{source}: {exc}") from exc
    return results


class _Counts:
    """Candidates by kind and outcome over every repository: the summary table and the report's numbers."""

    def __init__(self, per_kind: dict[str, Counter], generation: Counter, reused: int) -> None:
        from oec.synth.validate import DROP_REASONS

        self.per_kind, self.generation, self.reused = per_kind, generation, reused
        self.all_reasons = DROP_REASONS
        self.totals: Counter = sum(per_kind.values(), Counter())
        self.candidates = sum(self.totals.values())
        self.reasons = [r for r in DROP_REASONS if self.totals[r]]

    @classmethod
    def of(cls, results: list) -> "_Counts":
        per_kind: dict[str, Counter] = {}
        generation: Counter = Counter()
        for result in results:
            for kind, counter in result.by_kind().items():
                per_kind.setdefault(kind, Counter()).update(counter)
            generation.update(result.generation)
        return cls(per_kind, generation, sum(r.reused for r in results))

    def table(self) -> Table:
        from oec.synth.modifiers import KINDS

        table = Table(title="oec synth: candidates by kind")
        for column in ("kind", "candidates", "valid", "kept", *self.reasons):
            table.add_column(column, justify="right" if column != "kind" else "left")
        for kind in [k for k in KINDS if k in self.per_kind]:
            table.add_row(kind, *self._cells(self.per_kind[kind]))
        table.add_row("[bold]all[/]", *self._cells(self.totals))
        return table

    def _cells(self, counter: Counter) -> list[str]:
        n = sum(counter.values())
        return [str(n), str(counter["valid"]), f"{counter['valid'] / n:.0%}" if n else "-",
                *(str(counter[r]) for r in self.reasons)]


def synth_split_command(
    file: Path = typer.Argument(..., help="task file written by oec synth"),
    held_out: float = typer.Option(0.2, "--held-out", help="fraction of tasks held out"),
    by: str = typer.Option("function", "--by", help="function | file: what train and held-out never share"),
    seed: int = typer.Option(0, "--seed"),
    train_out: Path = typer.Option(..., "--train-out"),
    held_out_out: Path = typer.Option(..., "--held-out-out"),
) -> None:
    """Split FILE into train and held-out task files that share no function (or no file)."""
    from oec.synth.split import split_tasks

    if by not in ("function", "file"):
        raise fail(f"--by {by}: expected function or file")
    loaded = load_task_source(file)
    report_errors(loaded)
    try:
        train, held = split_tasks(loaded.tasks, held_out, by=by, seed=seed)  # type: ignore[arg-type]
    except ValueError as exc:
        raise fail(str(exc)) from exc
    _write_jsonl([t.model_dump(exclude_none=True) for t in train], train_out)
    _write_jsonl([t.model_dump(exclude_none=True) for t in held], held_out_out)
    console.print(f"train {len(train)} -> {train_out}; held out {len(held)} -> {held_out_out} (disjoint by {by})")
