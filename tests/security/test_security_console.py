"""What a model server, a task row or a model writes is printed literally, never read as console markup.

rich reads `[...]` as markup: an answer like `[/x]` used to crash `oec collect` with a MarkupError (a server
could turn its own pre-flight error into a traceback), and `[bold]...` or `[link=...]` restyled oec's output.
"""

from __future__ import annotations

import json
from pathlib import Path

from fake_http import FakeServer, Reply
from typer.testing import CliRunner

from oec.cli import app

HOSTILE = "[/oops] [bold]pwned[/bold] [link=http://evil.example]click[/link] [invalid_api_key]"


def test_a_servers_answer_with_markup_is_printed_literally_and_still_stops_the_run(swe_repo, tmp_path: Path) -> None:
    server = FakeServer().start()
    try:
        server.replies = [Reply(401, {"error": {"message": HOSTILE}})]
        tasks = tmp_path / "tasks.jsonl"
        tasks.write_text(json.dumps(swe_repo.row) + "\n")
        result = CliRunner().invoke(app, ["collect", str(tasks), "--repos", str(swe_repo.repos_dir), "--student",
                                          "openai:foo", "--student-base-url", server.url + "/v1", "--strategy",
                                          "on-policy", "--out", str(tmp_path / "run")])
    finally:
        server.stop()
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)  # no MarkupError
    assert HOSTILE in " ".join(result.output.split())
    assert not (tmp_path / "run").exists()


def test_a_task_row_with_markup_in_its_error_is_printed_literally(swe_repo, tmp_path: Path) -> None:
    bad = dict(swe_repo.row, instance_id="[/x] [bold]row")
    del bad["repo"]
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text(json.dumps(swe_repo.row) + "\n" + json.dumps(bad) + "\n" + "{[/broken json\n")
    result = CliRunner().invoke(app, ["tasks", "validate", str(tasks)])
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert f"{tasks}:3" in result.output
