"""A local HTTP server that answers from a queue of canned replies, fails on purpose, and records requests.

Used by the OpenAI and Anthropic backend tests: it answers every POST from a
queue of `Reply`s (the last one repeats forever), records each request, and
can delay or never answer.
"""

from __future__ import annotations

import http.server
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

@dataclass
class Reply:
    status: int = 200
    body: Any = None  # dict/list -> JSON; str -> sent as is
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    hang: bool = False  # read the request, then never answer
    close: bool = False  # read the request, then close the connection without a word


class FakeServer:
    def __init__(self, port: int = 0) -> None:
        self.replies: list[Reply] = [Reply(500, {"error": {"message": "no reply configured"}})]
        self.requests: list[dict[str, Any]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self._release = threading.Event()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                raw = self.rfile.read(int(self.headers.get("content-length", 0)))
                with server._lock:
                    headers = {k.lower(): v for k, v in self.headers.items()}
                    server.requests.append({"path": self.path, "headers": headers,
                                            "json": json.loads(raw or b"null")})
                    reply = server.replies.pop(0) if len(server.replies) > 1 else server.replies[0]
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    if reply.close:
                        self.close_connection = True
                        self.connection.shutdown(socket.SHUT_RDWR)
                        return
                    if reply.hang:
                        server._release.wait(30)
                        return
                    time.sleep(reply.delay)
                    data = reply.body if isinstance(reply.body, str) else json.dumps(reply.body)
                    payload = data.encode()
                    self.send_response(reply.status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(payload)))
                    for k, v in reply.headers.items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(payload)
                finally:
                    with server._lock:
                        server.in_flight -= 1

            def do_GET(self) -> None:  # noqa: N802 - a GET (e.g. /v1/models) gets the current reply, not consuming it
                with server._lock:
                    server.requests.append({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()},
                                            "json": None, "method": "GET"})
                    reply = server.get_reply
                if reply is None:
                    self.send_error(404)
                    return
                payload = (reply.body if isinstance(reply.body, str) else json.dumps(reply.body)).encode()
                self.send_response(reply.status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                pass

        self.get_reply: Reply | None = None  # what a GET answers (None: 404)
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.01,), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_port}"

    @property
    def attempts(self) -> int:
        """POST requests received (GETs, such as a pre-flight's model list, are not counted)."""
        return sum(r.get("method") != "GET" for r in self.requests)

    def start(self) -> "FakeServer":
        self.thread.start()
        return self

    def stop(self) -> None:
        self._release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
