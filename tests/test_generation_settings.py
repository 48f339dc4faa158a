"""Per-role generation settings and the one student format, as a user sets them on the command line."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
from typer.testing import CliRunner

from oec.cli import app
from oec.models.base import Message
from oec.models.portable import PortableProvider
from oec.models.registry import ModelOptions, make_provider
from oec.models.scripted import register_script

register_script("gen-student", [], final="```bash\nls\n```")
register_script("gen-expert", [{"text": "Done.", "tool_calls": [{"name": "submit", "arguments": {}}]}],
                native_tools=True)


def collect_args(swe_repo, tmp_path: Path, *extra: str) -> list[str]:
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text(json.dumps(swe_repo.row) + "\n")
    return ["collect", str(tasks), "--repos", str(swe_repo.repos_dir), "--student", "scripted:gen-student",
            "--expert", "scripted:gen-expert", "--switch", "fixed:1", "--out", str(tmp_path / "run"), *extra]


def test_each_role_gets_its_own_tokens_and_temperature_recorded_in_the_run(swe_repo, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, collect_args(swe_repo, tmp_path, "--max-tokens", "300", "--expert-max-tokens",
                                                  "4096", "--student-temperature", "0.7"))
    assert result.exit_code == 0, result.output
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["generation"] == {"student": {"max_tokens": 300, "temperature": 0.7},
                                    "expert": {"max_tokens": 4096, "temperature": 0.0}}
    assert config["student_format"] == "text" and config["expert_format"] == "native"


def test_a_run_keeps_its_student_format(swe_repo, tmp_path: Path) -> None:
    assert CliRunner().invoke(app, collect_args(swe_repo, tmp_path)).exit_code == 0
    again = CliRunner().invoke(app, collect_args(swe_repo, tmp_path, "--student-format", "native"))
    assert again.exit_code == 2 and "student_format: 'text' -> 'native'" in again.output
    assert CliRunner().invoke(app, ["filter", str(tmp_path / "run"), "--no-resolved"]).exit_code == 0
    tasks = str(tmp_path / "tasks.jsonl")
    export = CliRunner().invoke(app, ["export", str(tmp_path / "run"), "--format", "messages", "--tasks", tasks,
                                      "--student-format", "native", "--out", str(tmp_path / "sft.jsonl")])
    assert export.exit_code == 2 and "the run's student speaks text" in export.output
    assert not (tmp_path / "sft.jsonl").exists()
    ok = CliRunner().invoke(app, ["export", str(tmp_path / "run"), "--format", "messages", "--tasks", tasks,
                                  "--out", str(tmp_path / "sft.jsonl")])
    assert ok.exit_code == 0, ok.output
    assert {json.loads(line)["student_format"] for line in (tmp_path / "sft.jsonl").read_text().splitlines()} == {
        "text"}


def test_the_oracle_refuses_the_text_format(swe_repo, tmp_path: Path) -> None:
    args = collect_args(swe_repo, tmp_path, "--expert-format", "text")
    args[args.index("scripted:gen-expert")] = "oracle"
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and "oracle speaks native tool calls only" in result.output


def test_openai_requests_carry_the_roles_settings() -> None:
    from oec.models.openai_backend import OpenAIModel

    body = OpenAIModel("m", ModelOptions(max_tokens=33, temperature=0.7, api_key="k")).request_body(
        [Message(role="user", content="hi")], None)
    assert body["max_tokens"] == 33 and body["temperature"] == 0.7


def test_anthropic_refuses_a_temperature_it_cannot_send_and_travels_without_one() -> None:
    with pytest.raises(ValueError, match="no sampling parameters"):
        make_provider("anthropic:claude-x", ModelOptions(temperature=0.3, api_key="k"))
    provider = PortableProvider("anthropic:claude-x", ModelOptions(max_tokens=2048, api_key="k"))
    copy = pickle.loads(pickle.dumps(provider))  # a Ray worker rebuilds it from the options that were set
    model = copy.resolve().for_task(None)
    assert model.request_body([Message(role="user", content="hi")], None)["max_tokens"] == 2048
