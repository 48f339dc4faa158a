"""The scripted OpenAI-compatible server that stands in for a GPU model server, and its handle.

It runs in a child process (``throughput.py --serve``) so that its work never shares the client's
GIL; it speaks just enough HTTP/1.1 (keep-alive, content-length bodies) for oec's OpenAI backend,
answers every chat completion after exactly ``latency`` seconds with the next call of the script,
and reports what it saw on ``GET /stats`` (``?reset=1`` starts a new count).
"""

from __future__ import annotations

import asyncio
import functools
import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from .script import MODEL_NAME, SCRIPT

#: the script this package runs from; ``--serve`` makes it the server
ENTRY = Path(__file__).resolve().parents[1] / "throughput.py"


def completion_body(request: dict[str, Any], serial: int) -> dict[str, Any]:
    """The scripted reply: the step is the number of assistant turns already in the conversation."""
    messages = request.get("messages") or []
    step = sum(1 for m in messages if isinstance(m, dict) and m.get("role") == "assistant")
    tool, arguments = SCRIPT[min(step, len(SCRIPT) - 1)]
    prompt_tokens = sum(len(str(m.get("content") or "")) for m in messages if isinstance(m, dict)) // 4
    return {
        "id": f"chatcmpl-bench-{serial}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": request.get("model") or MODEL_NAME,
        "choices": [{
            "index": 0,
            "finish_reason": "tool_calls",
            "message": {
                "role": "assistant",
                "content": f"Step {step + 1}.",
                "tool_calls": [{"id": f"call_{serial}", "type": "function",
                                "function": {"name": tool, "arguments": json.dumps(arguments)}}],
            },
        }],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": 16, "total_tokens": prompt_tokens + 16},
    }


class _ServerStats:
    def __init__(self) -> None:
        self.serial = 0  # completions ever started (never reset): numbers the replies
        self.requests = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.connections = 0
        self.held_s = 0.0  # request read -> response written, summed

    def snapshot(self, reset: bool) -> dict[str, Any]:
        out = {"requests": self.requests, "max_in_flight": self.max_in_flight, "connections": self.connections,
               "mean_held_s": round(self.held_s / self.requests, 4) if self.requests else 0.0,
               "cpu_s": round(time.process_time(), 3)}
        if reset:
            self.requests, self.max_in_flight, self.held_s = 0, self.in_flight, 0.0
        return out


async def _read_headers(reader: asyncio.StreamReader) -> dict[str, str]:
    headers: dict[str, str] = {}
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b"\n", b""):
            return headers
        key, _, value = line.decode("latin-1").partition(":")
        headers[key.strip().lower()] = value.strip()


async def _read_request(reader: asyncio.StreamReader) -> tuple[str, str, dict[str, str], bytes] | None:
    """(method, target, headers, body) of the next request on the connection; None when the client left."""
    request_line = await reader.readline()
    if not request_line:
        return None
    method, target, _ = request_line.decode("latin-1").split(" ", 2)
    headers = await _read_headers(reader)
    body = await reader.readexactly(int(headers.get("content-length") or 0))
    return method, target, headers, body


async def _complete(stats: _ServerStats, latency: float, body: bytes) -> dict[str, Any]:
    """One chat completion: hold it `latency` seconds, counted in flight meanwhile."""
    stats.serial += 1
    stats.requests += 1
    stats.in_flight += 1
    stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
    try:
        number = stats.serial
        await asyncio.sleep(latency)
        return completion_body(json.loads(body), number)
    finally:
        stats.in_flight -= 1


async def _route(method: str, target: str, body: bytes, stats: _ServerStats,
                 latency: float) -> tuple[int, dict[str, Any], float | None]:
    """(status, payload, when a completion's hold began or None)."""
    if method == "POST" and target.rstrip("/").endswith("/chat/completions"):
        held_since = time.monotonic()
        return 200, await _complete(stats, latency, body), held_since
    if method == "GET" and target.startswith("/stats"):
        return 200, stats.snapshot(reset="reset" in target), None
    return 404, {"error": {"message": f"no route {method} {target}"}}, None


def _response(status: int, payload: dict[str, Any], close: bool) -> bytes:
    data = json.dumps(payload).encode()
    head = (f"HTTP/1.1 {status} {'OK' if status == 200 else 'Not Found'}\r\n"
            f"content-type: application/json\r\ncontent-length: {len(data)}\r\n"
            f"connection: {'close' if close else 'keep-alive'}\r\n\r\n")
    return head.encode() + data


async def _serve_one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, stats: _ServerStats,
                     latency: float) -> bool:
    """Answer the next request; False once the connection is done."""
    request = await _read_request(reader)
    if request is None:
        return False
    method, target, headers, body = request
    status, payload, held_since = await _route(method, target, body, stats, latency)
    close = headers.get("connection", "").lower() == "close"
    writer.write(_response(status, payload, close))
    await writer.drain()
    if held_since is not None:
        stats.held_s += time.monotonic() - held_since
    return not close


async def _handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, stats: _ServerStats,
                  latency: float) -> None:
    stats.connections += 1
    try:
        while await _serve_one(reader, writer, stats, latency):
            pass
    except (ConnectionError, asyncio.IncompleteReadError, ValueError):
        return
    finally:
        writer.close()


async def serve(latency: float) -> None:
    """Serve on a free local port until killed; the first line printed is ``PORT <n>``."""
    handler = functools.partial(_handle, stats=_ServerStats(), latency=latency)
    server = await asyncio.start_server(handler, "127.0.0.1", 0, backlog=4096)
    print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


class ModelServer:
    """The scripted server in a child process (so its work never shares this process's GIL)."""

    def __init__(self, latency: float) -> None:
        self.latency = latency
        self.proc = subprocess.Popen(
            [sys.executable, str(ENTRY), "--serve", "--latency", repr(latency)],
            stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if not line.startswith("PORT "):
            self.close()
            raise RuntimeError(f"the model server did not start (said {line!r})")
        self.port = int(line.split()[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def stats(self, reset: bool = False) -> dict[str, Any]:
        url = f"http://127.0.0.1:{self.port}/stats" + ("?reset=1" if reset else "")
        with urllib.request.urlopen(url, timeout=10) as response:
            return json.loads(response.read())

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
