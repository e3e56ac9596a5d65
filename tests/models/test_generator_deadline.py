"""A model server that trickles its reply cannot hold a completion past the generator's timeout."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tether.errors import TransientError
from tether.models import Message, OpenAICompatGenerator

REPLY = b'{"choices": [{"message": {"content": "hello"}}], "usage": {"prompt_tokens": 3, "completion_tokens": 1}}'


class _Trickle(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(REPLY)))
        self.end_headers()
        for i in range(len(REPLY)):  # one byte every 0.1 s: each read is quick, the whole reply takes 10 s
            try:
                self.wfile.write(REPLY[i : i + 1])
                self.wfile.flush()
            except OSError:
                return
            time.sleep(0.1)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def trickle_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Trickle)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_trickling_reply_is_cut_at_the_timeout(trickle_url: str) -> None:
    gen = OpenAICompatGenerator(trickle_url, "m", timeout_s=1.0, retries=0)
    t0 = time.monotonic()
    with pytest.raises(TransientError, match="did not finish its reply within 1s"):
        gen.complete([Message(role="user", content="hi")])
    assert time.monotonic() - t0 < 4.0  # not the 10 s the server would take
    gen.close()
