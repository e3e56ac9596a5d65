"""Shared fixtures: a small real HTTP server on loopback that plays an OpenAI-compatible model server."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


class FakeModelServer:
    """Replies from a script: each entry is (status, body-text). The last entry repeats.

    A body starting "CUT:" promises more bytes than it sends, then hangs up; "SLEEP:<s>:" waits s seconds first.
    """

    def __init__(self) -> None:
        self.script: list[tuple[int, str]] = []
        self.requests: list[dict[str, object]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length", 0))
                server.requests.append(json.loads(self.rfile.read(length)))
                status, body = server.script.pop(0) if len(server.script) > 1 else server.script[0]
                if body.startswith("SLEEP:"):  # a slow server: wait, then answer the rest
                    seconds, body = body.removeprefix("SLEEP:").split(":", 1)
                    time.sleep(float(seconds))
                cut = body.startswith("CUT:")  # promise more bytes than are sent, then hang up
                data = body.removeprefix("CUT:").encode()
                self.send_response(status)
                self.send_header(
                    "Content-Type",
                    "text/event-stream" if body.removeprefix("CUT:").startswith("data:") else "application/json",
                )
                self.send_header("Content-Length", str(len(data) + (1000 if cut else 0)))
                self.end_headers()
                self.wfile.write(data)
                self.wfile.flush()
                if cut:
                    self.close_connection = True

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def reply(self, content: str) -> tuple[int, str]:
        return 200, json.dumps(
            {
                "model": "test-model",
                "choices": [{"message": {"role": "assistant", "content": content}}],
                "usage": {"prompt_tokens": 50, "completion_tokens": 10},
            }
        )


@pytest.fixture
def model_server() -> Iterator[FakeModelServer]:
    s = FakeModelServer()
    yield s
    s.httpd.shutdown()
