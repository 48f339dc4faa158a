"""A dead, wrong or dying model server costs a clear message and a retry, never a run or a resolve rate.

Real servers, started here: a small HTTP server that answers 401, 404, 500, garbage or closes the
connection (tests/fake_http.py), nothing at all on a free port, and (in test_models_llamacpp.py) the
llama.cpp server. Collection runs through the real paths (workspaces, sandbox, grading).
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pytest
from fake_http import FakeServer, Reply, free_port
from typer.testing import CliRunner

from oec.cli import app
from oec.collect.attempts import AttemptLog
from oec.collect.rollout import RolloutConfig
from oec.collect.run_dir import RunDir
from oec.collect.runner import CircuitOpen, collect
from oec.env.repos import RepoIndex
from oec.eval.evaluate import summarize
from oec.models.registry import ModelOptions, make_provider

SUBMIT = {"id": "c", "object": "chat.completion", "created": 0, "model": "m", "choices": [{
    "index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant", "content": "Done.", "tool_calls": [
        {"id": "call_0", "type": "function", "function": {"name": "submit", "arguments": "{}"}}]}}],
    "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}}


@pytest.fixture
def server():
    s = FakeServer().start()
    yield s
    s.stop()


def tasks_file(swe_repo, tmp_path: Path) -> Path:
    path = tmp_path / "tasks.jsonl"
    path.write_text(json.dumps(swe_repo.row) + "\n")
    return path


def collect_cli(swe_repo, tmp_path: Path, url: str, *extra: str):
    return CliRunner().invoke(app, ["collect", str(tasks_file(swe_repo, tmp_path)), "--repos",
                                    str(swe_repo.repos_dir), "--student", "openai:foo", "--student-base-url", url,
                                    "--strategy", "on-policy", "--out", str(tmp_path / "run"), *extra])


@pytest.mark.parametrize("reply,expected", [
    (Reply(401, {"error": {"message": "Incorrect API key provided"}}), "auth: HTTP 401: Incorrect API key provided"),
    (Reply(404, {"error": {"message": "The model `foo` does not exist."}}), "HTTP 404: The model `foo` does not exist"),
    (Reply(500, {"error": {"message": "CUDA out of memory"}}), "server: HTTP 500: CUDA out of memory"),
    (Reply(200, "<html>loading...</html>"), "bad_response"),
    (Reply(close=True), "connection"),
    (Reply(400, {"error": {"message": '"auto" tool choice requires --enable-auto-tool-choice'}}),
     "HTTP 400: \"auto\" tool choice requires --enable-auto-tool-choice"),
])
def test_preflight_stops_the_run_naming_the_spec_the_url_and_the_answer(swe_repo, tmp_path: Path, server: FakeServer,
                                                                        reply: Reply, expected: str) -> None:
    server.replies = [reply]
    result = collect_cli(swe_repo, tmp_path, server.url + "/v1")
    assert result.exit_code == 2, result.output
    text = " ".join(result.output.split())
    assert f"student openai:foo: foo at {server.url}/v1" in text and expected in text
    assert not (tmp_path / "run").exists()  # nothing written
    assert server.attempts == 1  # one probe, no retries, no rollout


def test_preflight_names_what_the_model_list_says(swe_repo, tmp_path: Path, server: FakeServer) -> None:
    server.get_reply = Reply(200, {"object": "list", "data": [{"id": "Qwen2.5-Coder-7B", "object": "model"}]})
    result = collect_cli(swe_repo, tmp_path, server.url + "/v1")
    assert result.exit_code == 2
    assert "does not serve 'foo'; it serves: Qwen2.5-Coder-7B" in " ".join(result.output.split())
    server.get_reply = Reply(401, {"error": {"message": "bad key"}})
    result = collect_cli(swe_repo, tmp_path, server.url + "/v1")
    assert result.exit_code == 2 and "HTTP 401: bad key" in result.output


def test_nothing_listening_is_a_clear_error_not_18_model_errors(swe_repo, tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    result = collect_cli(swe_repo, tmp_path, url)
    assert result.exit_code == 2 and f"foo at {url}" in result.output and "connection" in result.output
    assert not (tmp_path / "run").exists()


def _config(swe_repo, url: str) -> RolloutConfig:
    options = ModelOptions(base_url=url, api_key="sk-test", max_retries=1, retry_base_s=0.01, retry_max_s=0.02,
                           timeout_s=2.0)
    return RolloutConfig(strategy="on-policy", student=make_provider("openai:m", options), expert=None, switch=None,
                         repos=RepoIndex([swe_repo.repos_dir]), grade=False)


def test_a_server_that_dies_mid_run_and_comes_back_gets_exactly_the_failed_rollouts_retried(swe_repo,
                                                                                            tmp_path: Path) -> None:
    port = free_port()
    first = FakeServer(port).start()
    first.replies = [Reply(200, SUBMIT)]
    url = f"http://127.0.0.1:{port}/v1"

    def die_after_the_first(trajectory) -> None:
        first.stop()  # the server goes away: the next rollouts cannot reach it

    summary = asyncio.run(collect([swe_repo.task], [_config(swe_repo, url)], RunDir(tmp_path / "run"), samples=4,
                                  concurrency=1, on_finish=die_after_the_first, max_consecutive_failures=0))
    assert len(summary.finished) == 1 and len(summary.failed) == 3
    assert {a.exit_reason for a in summary.failed} == {"model_error"} and {a.error_kind for a in summary.failed} == {
        "connection"}
    assert [t.id for t in RunDir(tmp_path / "run").read()] == ["acme__calc-1/on-policy/0"]  # failures not written

    back = FakeServer(port).start()  # the server is back
    back.replies = [Reply(200, SUBMIT)]
    try:
        again = asyncio.run(collect([swe_repo.task], [_config(swe_repo, url)], RunDir(tmp_path / "run"), samples=4,
                                    concurrency=1))
    finally:
        back.stop()
    assert again.skipped == 1 and sorted(t.sample_index for t in again.finished) == [1, 2, 3] and not again.failed
    assert back.attempts == 3  # exactly the failed rollouts, one call each
    ids = [t.id for t in RunDir(tmp_path / "run").read()]
    assert sorted(ids) == [f"acme__calc-1/on-policy/{i}" for i in range(4)]  # every rollout ran, once
    assert [a.attempt for a in AttemptLog(tmp_path / "run").read()] == [1, 1, 1]  # the failures stay on record
    # an evaluation of this run directory counts the 4 that ran; none is an unresolved failure
    assert summarize(RunDir(tmp_path / "run"), "openai:m", None, None).not_run == 0


def test_attempts_are_capped_and_an_eval_does_not_score_what_did_not_run(swe_repo, tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    for _ in range(3):
        asyncio.run(collect([swe_repo.task], [_config(swe_repo, url)], RunDir(tmp_path / "run"), samples=2,
                            concurrency=1, max_attempts=2, max_consecutive_failures=0))
    attempts = AttemptLog(tmp_path / "run").read()
    assert sorted((a.sample_index, a.attempt) for a in attempts) == [(0, 1), (0, 2), (1, 1), (1, 2)]
    summary = summarize(RunDir(tmp_path / "run"), "openai:m", None, None)
    assert summary.n == 0 and summary.not_run == 2 and summary.not_run_reasons == {"model_error": 2}


def test_the_breaker_stops_a_run_whose_server_is_gone(swe_repo, tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    with pytest.raises(CircuitOpen) as stopped:
        asyncio.run(collect([swe_repo.task], [_config(swe_repo, url)], RunDir(tmp_path / "run"), samples=8,
                            concurrency=1, max_consecutive_failures=3))
    assert len(stopped.value.summary.failed) == 3 and "3 rollouts in a row failed to run: model_error" in str(
        stopped.value) and "connection" in str(stopped.value)
    assert len(AttemptLog(tmp_path / "run").read()) == 3 and list(RunDir(tmp_path / "run").read()) == []


def test_the_cli_breaker_exits_3_keeping_what_finished(swe_repo, tmp_path: Path, server: FakeServer) -> None:
    """A key revoked mid-run (401 is not retried): the breaker stops the run after 2, not after every task."""
    server.replies = [Reply(401, {"error": {"message": "key revoked"}})]
    result = collect_cli(swe_repo, tmp_path, server.url + "/v1", "--no-preflight", "--samples", "6",
                         "--concurrency", "1", "--max-consecutive-failures", "2")
    assert result.exit_code == 3, result.output
    text = " ".join(result.output.split())
    assert "stopped after 2 rollouts in a row failed to run: model_error (auth: HTTP 401: key revoked)" in text
    found = re.search(r"0 rollout\(s\) finished and were kept; .* the (\d) that failed are retried", text)
    assert found and 2 <= int(found.group(1)) < 6  # the ones in flight when it tripped end too; not all six
    assert len(AttemptLog(tmp_path / "run").read()) == int(found.group(1)) < server.attempts + 1
