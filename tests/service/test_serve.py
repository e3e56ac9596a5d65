"""`tether serve` as a real process on loopback: readiness, SIGTERM with a request in flight, and ingest jobs that a
killed service left behind running again at the next start."""

from __future__ import annotations

import contextlib
import json
import signal
import threading
import time
from pathlib import Path

import httpx
from service_env import free_port, make_env, start_serve, wait_ready

from tether.service._data import ServiceData


def test_sigterm_lets_the_request_in_flight_finish(tmp_path: Path) -> None:
    t, keys = make_env(tmp_path)
    t.close()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = start_serve(tmp_path, port, "--no-warm")  # the first ask then loads the models: seconds in flight
    try:
        wait_ready(base, proc)
        got: dict[str, httpx.Response] = {}

        def ask() -> None:
            got["r"] = httpx.post(
                base + "/v1/ask",
                headers={"Authorization": f"Bearer {keys['acme']}"},
                json={"question": "How many vacation days do employees get?"},
                timeout=120,
            )

        worker = threading.Thread(target=ask)
        worker.start()
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        worker.join(120)
        assert got["r"].status_code == 200 and "25 vacation days" in got["r"].text
        assert proc.wait(60) in (0, 143)  # 143: the SIGTERM re-raised after the drain, as a shell reports it
        with contextlib.suppress(httpx.TransportError):
            httpx.get(base + "/healthz", timeout=2)
            raise AssertionError("still accepting connections after SIGTERM")
        log = proc.stdout.read() if proc.stdout else ""
        lines = [json.loads(ln) for ln in log.splitlines() if ln.startswith("{")]
        assert {"method": "POST", "route": "/v1/ask", "status": 200, "tenant": "acme"}.items() <= next(
            ln for ln in lines if ln.get("route") == "/v1/ask"
        ).items()
        assert "Traceback" not in log
    finally:
        if proc.poll() is None:
            proc.kill()


def test_jobs_left_running_by_a_killed_service_run_at_the_next_start(tmp_path: Path) -> None:
    t, keys = make_env(tmp_path)
    data_path = t.settings.root / ".tether" / "service.db"
    t.close()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = start_serve(tmp_path, port, "--no-warm")
    h = {"Authorization": f"Bearer {keys['globex']}"}
    try:
        wait_ready(base, proc)
        files = [
            ("files", (f"note{i}.md", f"# Note {i}\n\nGlobex note {i} says {i * 11}.\n".encode())) for i in range(3)
        ]
        job = httpx.post(base + "/v1/documents", headers=h, files=files, timeout=30).json()
        proc.kill()  # kill -9, whatever the job was doing
        proc.wait(30)
        # as a kill -9 can leave it: the job marked running, its files uploaded, none or some ingested
        data = ServiceData(data_path)
        data.update_job(job["id"], status="running")
        data.close()
        proc = start_serve(tmp_path, port, "--no-warm")
        wait_ready(base, proc)
        deadline = time.monotonic() + 120
        while (got := httpx.get(f"{base}/v1/jobs/{job['id']}", headers=h, timeout=10).json())["status"] != "done":
            assert got["status"] != "failed" and time.monotonic() < deadline, got
            time.sleep(0.2)
        docs = httpx.get(base + "/v1/documents", headers=h, timeout=10).json()["documents"]
        assert sorted(Path(d["path"]).name for d in docs) == ["note0.md", "note1.md", "note2.md"]  # each once
    finally:
        proc.kill()
        proc.wait(30)
